//! The protocol core: SWIM with the Lifeguard extensions, as a sans-IO state
//! machine. Nothing here reads a clock, spawns a thread, touches a socket or
//! uses a global RNG: time arrives as [`Time`] with every input, randomness
//! from an RNG the driver seeds. `engine/` (real sockets) and `sim/` (virtual
//! time) are its two drivers.
//!
//! Built so far (issue 3 in progress): the self-contained parts of memberlist's
//! protocol, each with Go's own test cases ported, and [`Core`]: the member
//! table with Go's alive / suspect / dead / refute / merge rules, suspicion
//! timers and the system broadcast queue, and the network half: packets in
//! ([`Core::handle_packet`], or [`Opener`] + [`Core::handle_message`]) and
//! out ([`Core::poll_transmit`], or [`Core::poll_packet`] + [`Sealer`]), the probe
//! loop (direct, indirect with nacks, TCP fallback) with Lifeguard
//! awareness, gossip, push/pull and join as stream requests
//! ([`Core::poll_stream`]).
//!
//! [`driver`] is the contract every driver (engine, simulator, tests) runs a
//! core by: the [`Protocol`] trait, which [`Core`] implements, and [`drain`],
//! the one loop that takes a node's outputs and reaches its delegates.
#![forbid(unsafe_code)]

mod awareness;
mod core;
pub mod driver;
mod handoff;
mod members;
pub mod metrics;
pub mod queue;
mod suspicion;
mod time;
mod timers;
mod util;

pub use awareness::Awareness;
pub use core::{
    Core, Effect, Error, LocalState, MAX_ACCUSED_INCARNATION, MAX_INCARNATION, MAX_PENDING_STREAMS, MAX_PINGS,
    MAX_PUSH_PULL_REQUESTS, MAX_QUEUED_TRANSMITS, MAX_RECONNECT_CANDIDATES, MAX_RELAYS, MIN_EFFECT_BOUND, Opener,
    OutgoingPacket, PacketLayers, QueueLengths, STALE_ANSWERS_PER_PROBE_INTERVAL, Sealer, StreamContent, StreamError,
    StreamId, StreamKind, StreamRequest, Transmit, max_udp_payload,
};
pub use driver::{Delegates, Outbox, Protocol, Sink, drain};
pub use handoff::HandoffQueue;
pub use members::{
    Member, NodeBroadcast, PushState, VersionError, ip_from_wire, ip_to_wire, verify_protocol, vsn_well_formed,
};
pub use metrics::{Metrics, Sample};
pub use queue::{Broadcast, TransmitLimitedQueue, retransmit_limit};
pub use suspicion::{Suspicion, lifeguard_timeout};
pub use time::Time;
pub use util::{
    PUSH_PULL_SCALE_THRESHOLD, RandomPicks, k_random_nodes, move_dead_nodes, push_pull_scale, random_offset, shuffle,
    suspicion_timeout,
};
