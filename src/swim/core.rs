//! The member table and Go's state rules (memberlist `state.go`: `aliveNode`,
//! `suspectNode`, `deadNode`, `refute`, `mergeState`; `memberlist.go`:
//! `setAlive`, `UpdateNode`, `Leave`; `net.go`: `mergeRemoteState`), as a
//! sans-IO state machine.
//!
//! See [`Core`] for the method classes, the drain order and what differs
//! from Go.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::Rng;

use super::members::{
    Member, MemberIndex, NodeBroadcast, PushState, VersionError, ip_from_wire, ip_to_wire, set_vsn, verify_protocol,
    vsn_well_formed,
};
use super::metrics::{DROPPED, GO_DEGRADED, MSG_ALIVE, MSG_DEAD, MSG_SUSPECT, Sample, Samples};
use super::queue::{TransmitLimitedQueue, retransmit_limit};
use super::timers::{Timer, Timers};
use super::{Awareness, Metrics, Suspicion, Time, move_dead_nodes, random_offset, shuffle, suspicion_timeout};
use crate::config::{Config, ConfigError, META_MAX_SIZE};
use crate::delegate::{Node, NodeEvent, NodeEventKind, NodeState};
use crate::name::Name;
use crate::wire::SharedKeyring;
use crate::wire::message::{Accusation, Alive, Message, PushNodeState};

/// Something the driver must act on, drained with [`Core::poll_effect`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// A member joined, left (dead or left) or changed its meta: what
    /// `EventDelegate::notify_*` receives. The local node's own join (from
    /// [`Core::new`]) is one too, as in Go.
    Event(NodeEvent),
    /// An alive message claimed `existing`'s name with another address while
    /// `existing` is not reclaimable (Go `ConflictDelegate::NotifyConflict`).
    /// The message was ignored.
    Conflict {
        /// The member as the table knows it.
        existing: Node,
        /// The claim.
        other: Node,
    },
    /// A user message arrived in a packet or stream (Go
    /// `Delegate::NotifyMsg`).
    UserMessage(Vec<u8>),
    /// The answer to a [`Core::ping`] (Go `Ping`'s return): the round trip
    /// time, or `None` when no ack came within `probe_interval` (Go's
    /// `NoPingResponseError`).
    PingCompleted {
        /// The number [`Core::ping`] returned.
        seq_no: u32,
        /// The name pinged.
        node: String,
        /// Round trip time.
        rtt: Option<std::time::Duration>,
    },
    /// A [`Core::join`] is over: every address answered or failed (Go
    /// `Join`'s return: the count, and an error only if it is 0).
    JoinCompleted {
        /// The number [`Core::join`] returned.
        join: u64,
        /// Push/pulls that succeeded.
        contacted: usize,
        /// Those that did not, with why.
        errors: Vec<(SocketAddr, String)>,
    },
}

/// Errors of the core's commands and of push/pull merges.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `Delegate::node_meta` returned more than [`META_MAX_SIZE`] bytes (Go
    /// panics).
    #[error("node meta data is {len} bytes, longer than the limit of {META_MAX_SIZE}")]
    MetaTooLarge {
        /// Length returned.
        len: usize,
    },
    /// A push/pull peer's versions are incompatible (Go `verifyProtocol`).
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The local node's own alive was refused (by `Config::alive`, by
    /// `cidrs_allowed`, or for bad versions). Go's `Create` goes on without
    /// the local node in its table and fails later.
    #[error("the local node's own alive message was refused")]
    LocalNodeRejected,
    /// The merge delegate refused a join (Go `NotifyMerge` error).
    #[error("merge rejected: {0}")]
    MergeRejected(String),
    /// A best-effort user message does not fit one datagram
    /// ([`Core::send_best_effort`]).
    #[error("user message of {len} bytes does not fit a datagram: at most {limit} bytes")]
    MessageTooLarge {
        /// Length of the message.
        len: usize,
        /// The most that fits.
        limit: usize,
    },
    /// [`Core::new`] was given a [`Config`] that [`Config::validate`]
    /// refuses (Go's `Create` errors, and values that would break the
    /// protocol); [`ConfigError::field`] names the Go field.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// [`Config::require_node_names`] is set and the destination has no
    /// name (Go `errNodeNamesAreRequired`); nothing was sent.
    #[error("node names are required by configuration but the destination has none")]
    NodeNameRequired,
}

/// An alive message's fields, owned, to build one while the table is
/// borrowed mutably.
struct OwnedAlive {
    incarnation: u32,
    addr: Vec<u8>,
    port: u16,
    meta: Vec<u8>,
    vsn: [u8; 6],
}

impl OwnedAlive {
    fn as_alive<'a>(&'a self, node: &'a str) -> Alive<'a> {
        let (addr, meta, vsn) = (&self.addr, &self.meta, &self.vsn);
        Alive { incarnation: self.incarnation, node, addr, port: self.port, meta, vsn }
    }
}

/// A running suspicion about a member (Go's `nodeTimers` entry): the Lifeguard
/// timer and the state change it belongs to.
#[derive(Clone, Debug)]
struct SuspicionTimer {
    suspicion: Suspicion,
    /// The member's `state_change` when suspected: if it differs when the timer
    /// fires, the suspicion is stale (Go's `changeTime` check).
    change_time: Time,
    /// The last-chance ping has gone out and the deadline moved past it
    /// ([`Extensions::last_chance_ping`](crate::config::Extensions::last_chance_ping)).
    last_chance: bool,
}

/// The member table and the rules that change it: alive / suspect / dead
/// messages, refutation, Lifeguard suspicion timers, awareness, and the
/// broadcast queue they feed; and the network protocol around it: packets in
/// and out, probes (direct, indirect, TCP fallback), gossip, push/pull and
/// join (`net.rs`, `streams.rs`).
///
/// # Shape (after quinn-proto's `Connection`)
/// Methods fall into four classes:
/// - **getters** (`&self`): [`Core::member`], [`Core::members`],
///   [`Core::local_node`], [`Core::num_nodes`], [`Core::health_score`], …
/// - **inputs** (`handle_*`, each carrying `now`): [`Core::handle_packet`]
///   (a datagram), [`Core::handle_message`] (one message of a datagram an
///   [`Opener`] opened on another thread), [`Core::handle_stream`] (a
///   stream a peer opened; returns the reply), [`Core::handle_stream_reply`]
///   (the answer to a stream we opened), [`Core::handle_timeout`]; and the
///   message-level inputs
///   [`Core::handle_alive`], [`Core::handle_suspect`], [`Core::handle_dead`].
/// - **commands**: [`Core::new`] (our own alive), [`Core::start`] (arm the
///   probe, gossip and push/pull tickers, Go `schedule`), [`Core::stop`],
///   [`Core::join`], [`Core::update_node`], [`Core::leave`], [`Core::ping`],
///   [`Core::send_best_effort`], [`Core::send_reliable`], and
///   [`Core::keyring`] (install, use and remove keys while running, Go's
///   rules).
/// - **outputs**: [`Core::poll_transmit`] (complete datagrams) or
///   [`Core::poll_packet`] (packet bodies with their destination and
///   layers, for a [`Sealer`] on another thread; the two take from one
///   queue),
///   [`Core::poll_stream`] (streams to open), [`Core::poll_effect`] (events
///   for the [`EventDelegate`](crate::delegate::EventDelegate), conflicts for
///   the [`ConflictDelegate`](crate::delegate::ConflictDelegate), user
///   messages, join results) and [`Core::poll_timeout`] (the earliest timer:
///   call [`Core::handle_timeout`] then).
///
/// The single protocol steps (Go's `probe`, `probeNode`, `gossip`,
/// `pushPull`, `mergeState`, `resetNodes`) and the hooks that Go's ported
/// tests use to look inside (the suspicion deadlines, the awareness, the
/// broadcast queue's reset) are not public: timers run the steps, and the
/// hooks are `#[cfg(test)]`.
///
/// After every input or command the driver drains the core with
/// [`drain`](super::drain) (the [`driver`](super::driver) contract, which
/// [`Core`] implements as [`Protocol`](super::Protocol)): `poll_transmit`,
/// `poll_stream` and `poll_effect` until `None`, then `poll_timeout` to
/// re-arm its one timer. `now` must never go backwards from one call to the
/// next. For each [`StreamRequest`] the driver dials,
/// asks [`Core::stream_connected`] for the bytes once connected (a push/pull
/// encodes our state then, as Go does after its dial), and answers with
/// [`Core::handle_stream_reply`]; the request's `deadline` is one of the
/// core's own timers, so a request the driver never answers ends as a
/// timeout then (a probe's TCP fallback holds the probe open until then, as
/// in Go). A stream a peer opens is handed to [`Core::handle_stream`] once
/// complete ([`StreamFramer`](crate::wire::stream::StreamFramer) says when),
/// and a push/pull's place is given back with [`Core::stream_reply_done`]
/// once its reply is written.
///
/// Delegates that answer or veto ([`AliveDelegate`](crate::delegate::AliveDelegate),
/// [`MergeDelegate`](crate::delegate::MergeDelegate),
/// [`Delegate::node_meta`](crate::delegate::Delegate::node_meta)) are user code,
/// not I/O: they are called inline from the [`Config`], as Go does.
/// Notifications (join / leave / update / conflict / user messages) are
/// queued as [`Effect`]s instead, and [`drain`](super::drain) hands them to
/// `Config::events`, `Config::conflict` and `Delegate::notify_msg`.
///
/// # Differences from Go 0.2.2 (none visible on the wire)
/// - Go's `refute` queues its alive message under the *address* string
///   (`me.Addr.String()`), not the node name, so it never replaces older news
///   about the local node; here it is queued under the node name like every
///   other alive.
/// - Where Go would panic (a `Vsn` of 1–5 bytes in an accepted alive, in
///   `verifyProtocol` or for the merge delegate; local meta over 512 bytes),
///   the core ignores the versions, or returns an [`Error`].
/// - An alive or push/pull entry whose address is neither 4 nor 16 bytes is
///   ignored (Go stores it and fails when dialling it); push/pull entries with
///   an unknown state are skipped (Go's `mergeState` skips them too but passes
///   them to the merge delegate).
/// - A suspicion timer that fires is dropped even when the member has moved on
///   (Go leaves it in its map; it can only happen if the state is edited behind
///   `suspectNode`'s back).
/// - A local node that its own alive delegate, `cidrs_allowed` or version
///   check refuses makes [`Core::new`] fail ([`Error::LocalNodeRejected`]);
///   Go's `Create` succeeds without the local node in its table.
/// - Left members are reaped like dead ones, `gossip_to_the_dead_time`
///   after they left (as later Go versions do), and every queue and table
///   is bounded, each drop counted in [`Core::metrics`] ([`QueueLengths`]
///   lists the bounds).
/// - A stream the driver does not answer by its deadline ends inside the
///   core (Go's connection deadline does the same in Go).
///
/// Visible on the wire: an incoming push/pull beyond Go's
/// `maxPushPullRequests` gets an error reply ("too many pending push/pull
/// requests"); Go closes the connection without one. A Go peer reports
/// either as a failed push/pull.
pub struct Core<R> {
    config: Config,
    rng: R,
    /// Members in probe order (Go `nodes`): a new member goes to a random
    /// position.
    members: Vec<Member>,
    /// Name → position in `members` (Go `nodeMap`).
    index: MemberIndex,
    /// Our incarnation counter (Go `m.incarnation`); the local member's
    /// `incarnation` is the last one announced.
    incarnation: u32,
    /// Running suspicions by member name (Go `nodeTimers`); their deadlines
    /// are in `timers`.
    suspicions: BTreeMap<Name, SuspicionTimer>,
    /// Every timer (see `timers.rs`).
    timers: Timers,
    /// Every drop, rejection, refusal (see `metrics.rs`).
    metrics: Metrics,
    awareness: Awareness,
    broadcasts: TransmitLimitedQueue<NodeBroadcast>,
    effects: VecDeque<Effect>,
    /// Set by [`Core::leave`] (Go `m.leave`).
    left: bool,
    /// Set once the leave broadcast has been sent out fully or replaced (Go
    /// `leaveBroadcast`).
    leave_sent: Arc<AtomicBool>,
    /// Set once the last [`Core::update_node`] broadcast went out.
    update_sent: Arc<AtomicBool>,
    /// Packets, probes, gossip (see `net.rs`).
    net: net::Net,
    /// While a push/pull is merged: the reduced `retransmit_mult` of
    /// [`Extensions::merge_retransmit_mult`](crate::config::Extensions)
    /// (see `Core::merge_push_pull`).
    merge_budget: Option<usize>,
    /// Go's timers and sizes, until the driver takes them.
    samples: Samples,
}

impl<R: Rng> Core<R> {
    /// A core whose only member is the local node, alive at incarnation 1 and
    /// announced in the broadcast queue (Go `Create` → `setAlive`).
    ///
    /// `advertise` is the address peers reach us at (Go's final advertise
    /// address, which the driver resolves, e.g. with
    /// [`Config::advertise_address`]). The meta comes from
    /// `Config::delegate` (`node_meta(512)`). The [`Effect::Event`] join of the
    /// local node is queued.
    ///
    /// # Errors
    /// [`Error::Config`] when [`Config::validate`] refuses `config` (before
    /// anything else is looked at), [`Error::MetaTooLarge`],
    /// [`Error::LocalNodeRejected`].
    pub fn new(config: Config, advertise: SocketAddr, now: Time, rng: R) -> Result<Core<R>, Error> {
        config.validate()?;
        let meta = local_meta(&config)?;
        let keyring = config.effective_keyring()?;
        let mut core = Core {
            net: net::Net::new(&config, SharedKeyring::new(keyring.unwrap_or_default())),
            awareness: Awareness::new(config.awareness_max_multiplier),
            broadcasts: TransmitLimitedQueue::new(config.effective_retransmit_mult()),
            config,
            rng,
            members: Vec::new(),
            index: MemberIndex::default(),
            incarnation: 0,
            suspicions: BTreeMap::new(),
            timers: Timers::default(),
            metrics: Metrics::new(),
            effects: VecDeque::new(),
            left: false,
            leave_sent: Arc::new(AtomicBool::new(false)),
            update_sent: Arc::new(AtomicBool::new(false)),
            merge_budget: None,
            samples: Samples::default(),
        };
        let incarnation = core.next_incarnation();
        let name = core.config.name.clone();
        let addr = ip_to_wire(advertise.ip());
        let vsn = core.config.build_vsn_array();
        let alive = Alive { incarnation, node: &name, addr: &addr, port: advertise.port(), meta: &meta, vsn: &vsn };
        core.alive_node(&alive, None, true, now);
        if core.position(&name).is_none() {
            return Err(Error::LocalNodeRejected);
        }
        Ok(core)
    }
}

/// Room for effects kept once they are drained (see [`Core::poll_effect`]).
const EFFECTS_KEPT: usize = 16;

/// The highest incarnation an alive may carry: ringswim refuses (and counts
/// as `implausible_incarnation`) alive messages and push/pull entries
/// above it, and its own incarnation never passes it.
///
/// Incarnations are Go `uint32`s that only their member raises, by one per
/// refutation, so honest values stay small. Go adopts any number it hears:
/// one suspect at 4294967295 about a node makes its refutation wrap to 0,
/// after which its peers keep it suspect and declare it dead, for good
/// (hashicorp/memberlist #358). The ceilings make every accusation a
/// ringswim node accepts one it can beat: an accusation that would *raise*
/// a member's incarnation past [`MAX_ACCUSED_INCARNATION`] is refused, so
/// a member is accused at most there (or at an incarnation it announced
/// itself), refutes at most 65,536 higher, and peers take that alive.
/// Accusations at the incarnation a member announced are always taken,
/// however high: a member that once refuted into the last 2¹⁷ values is
/// still suspected, declared dead and seen leave (until, 65,536 refutations
/// later, it reaches this ceiling and can refute no more).
pub const MAX_INCARNATION: u32 = u32::MAX - (1 << 16);

/// The highest incarnation a suspect or dead message (or a push/pull entry
/// in those states) may raise a member to; see [`MAX_INCARNATION`]. An
/// accusation above both this and the incarnation the member announced
/// (as far as the receiver knows) is refused and counted as
/// `implausible_incarnation`: only the member raises its incarnation, so
/// the accuser cannot know it.
pub const MAX_ACCUSED_INCARNATION: u32 = MAX_INCARNATION - (1 << 16);

/// Effects that may wait for [`Core::poll_effect`] whatever the cluster's
/// size (see [`Core::effect_bound`]).
pub const MIN_EFFECT_BOUND: usize = 4096;

/// How many of each table and queue the core holds now
/// ([`Core::queue_lengths`]), for a driver's gauges and for checkers that
/// hold the core to its bounds. The bounds: `members` is the cluster (dead
/// and left members are reaped after `gossip_to_the_dead_time`);
/// `suspicions` and `broadcasts` hold at most one entry per member;
/// `effects` at most [`Core::effect_bound`]; `transmits`
/// [`MAX_QUEUED_TRANSMITS`](super::MAX_QUEUED_TRANSMITS); `user_carry` 1,024;
/// `relays` [`MAX_RELAYS`](super::MAX_RELAYS); `pings`
/// [`MAX_PINGS`](super::MAX_PINGS); `streams` (and `outgoing_streams`,
/// `joins`, each join waiting on a stream)
/// [`MAX_PENDING_STREAMS`](super::MAX_PENDING_STREAMS); `inbound_push_pulls`
/// [`MAX_PUSH_PULL_REQUESTS`](super::MAX_PUSH_PULL_REQUESTS) - 1;
/// `reconnect_candidates` [`MAX_RECONNECT_CANDIDATES`](super::MAX_RECONNECT_CANDIDATES);
/// `timers` the sum of what they time (seven periodic and probe timers, one
/// per suspicion, relay, ping, stream and inbound push/pull).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueLengths {
    /// Members in the table, the local node included.
    pub members: usize,
    /// Running suspicions.
    pub suspicions: usize,
    /// Queued membership broadcasts.
    pub broadcasts: usize,
    /// Effects not yet polled.
    pub effects: usize,
    /// Datagrams not yet polled.
    pub transmits: usize,
    /// User broadcasts carried to the next packet.
    pub user_carry: usize,
    /// Indirect pings being relayed.
    pub relays: usize,
    /// [`Core::ping`]s waiting for an ack.
    pub pings: usize,
    /// Outgoing streams waiting for their outcome.
    pub streams: usize,
    /// Of those, the ones not yet polled ([`Core::poll_stream`]).
    pub outgoing_streams: usize,
    /// [`Core::join`]s in progress.
    pub joins: usize,
    /// Incoming push/pulls whose reply the driver may still be writing.
    pub inbound_push_pulls: usize,
    /// Reconnect candidates.
    pub reconnect_candidates: usize,
    /// Timers set.
    pub timers: usize,
}

/// The local meta from the delegate, checked against [`META_MAX_SIZE`].
fn local_meta(config: &Config) -> Result<Vec<u8>, Error> {
    let meta = config.delegate.as_ref().map(|d| d.node_meta(META_MAX_SIZE)).unwrap_or_default();
    if meta.len() > META_MAX_SIZE {
        return Err(Error::MetaTooLarge { len: meta.len() });
    }
    Ok(meta)
}

impl<R> Core<R> {
    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The member called `name`, if known (in any state).
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.position(name).map(|i| &self.members[i])
    }

    /// Position of the member called `name` in [`Core::members`].
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(&self.members, name)
    }

    /// Every known member, in probe order, the local node included.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The local node (Go `LocalNode`).
    pub fn local_node(&self) -> &Node {
        &self.local().node
    }

    fn local(&self) -> &Member {
        // `new` puts the local node in the table and nothing removes it.
        let i = self.position(&self.config.name);
        &self.members[i.expect("the local node is a member")]
    }

    /// Every member, any state, in table order, as a push/pull exchange sends
    /// them (Go `sendLocalState`'s node list; the driver adds the header and
    /// the user state).
    pub(crate) fn local_state(&self) -> Vec<PushState> {
        self.members.iter().map(PushState::from_member).collect()
    }

    /// Our incarnation counter (the last incarnation we announced or skipped
    /// to).
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// Every member in the table, any state (Go `estNumNodes`): the `n` of the
    /// suspicion and retransmit formulas.
    pub fn num_nodes(&self) -> usize {
        self.members.len()
    }

    /// Members neither dead nor left, the local node included (Go
    /// `NumMembers`).
    pub fn num_alive(&self) -> usize {
        self.members.iter().filter(|m| !m.is_dead_or_left()).count()
    }

    /// Whether some other member is neither dead nor left (Go `anyAlive`):
    /// whether a leave or update broadcast has anyone to reach.
    pub fn any_alive(&self) -> bool {
        self.members.iter().any(|m| !m.is_dead_or_left() && m.node.name != self.config.name)
    }

    /// Lifeguard health score, 0 is healthy (Go `GetHealthScore`).
    pub fn health_score(&self) -> usize {
        self.awareness.health_score()
    }

    /// Mutable awareness, for the probe loop's deltas.
    #[cfg(test)]
    pub(crate) fn awareness_mut(&mut self) -> &mut Awareness {
        &mut self.awareness
    }

    /// Whether [`Core::leave`] was called.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Whether the leave broadcast has been sent its full count (Go's
    /// `leaveBroadcast` channel). `Leave` waits for this when
    /// [`Core::any_alive`].
    pub fn leave_broadcast_sent(&self) -> bool {
        self.leave_sent.load(Ordering::Acquire)
    }

    /// Whether the last [`Core::update_node`] broadcast has been sent its full
    /// count.
    pub fn update_broadcast_sent(&self) -> bool {
        self.update_sent.load(Ordering::Acquire)
    }

    /// The system broadcast queue (alive / suspect / dead), for inspection.
    pub fn broadcasts(&self) -> &TransmitLimitedQueue<NodeBroadcast> {
        &self.broadcasts
    }

    /// Drops every queued system broadcast (Go `broadcasts.Reset()`).
    #[cfg(test)]
    pub(crate) fn reset_broadcasts(&mut self) {
        self.broadcasts.reset();
    }

    /// When the earliest timer is due (quinn's `poll_timeout`): call
    /// [`Core::handle_timeout`] at or after it. `None` when no timer is set.
    /// O(1): every timer (probe stages, ticks, suspicions, relays, pings,
    /// stream deadlines) is in one table.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// The counters of every drop, rejection and refusal (see
    /// [`metrics`](super::metrics) for the names). Clone it to count from
    /// the driver's side ([`HandoffQueue`](super::HandoffQueue)).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Takes the timers and sizes Go records with go-metrics
    /// (`memberlist.probeNode`, `gossip`, `pushPullNode`, `size.local`,
    /// `size.remote`: see [`Sample`]) measured since the last call, oldest
    /// first. Only the latest [`SAMPLES_KEPT`](super::metrics::SAMPLES_KEPT)
    /// are kept between calls.
    pub fn drain_samples(&mut self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.drain()
    }

    /// The queue a driver hands decoded messages to this core through, from
    /// the threads that decode them: `Config::handoff_queue_depth` deep,
    /// counting its drops into [`Core::metrics`] (Go `HandoffQueueDepth`;
    /// see [`HandoffQueue`](super::HandoffQueue)).
    pub fn handoff_queue<T>(&self) -> super::HandoffQueue<T> {
        super::HandoffQueue::new(self.config.handoff_queue_depth, self.metrics.clone())
    }

    /// How many entries each table and queue holds now (see
    /// [`QueueLengths`] for their bounds).
    pub fn queue_lengths(&self) -> QueueLengths {
        let (net, streams) = (&self.net, &self.net.streams);
        QueueLengths {
            members: self.members.len(),
            suspicions: self.suspicions.len(),
            broadcasts: self.broadcasts.num_queued(),
            effects: self.effects.len(),
            transmits: net.outbox.len(),
            user_carry: net.user_carry.len(),
            relays: net.relays.len(),
            pings: net.pings.len(),
            streams: streams.pending.len(),
            outgoing_streams: streams.outgoing.len(),
            joins: streams.joins.len(),
            inbound_push_pulls: streams.inbound.len(),
            reconnect_candidates: streams.failed.len(),
            timers: self.timers.len(),
        }
    }

    /// Effects that may wait for [`Core::poll_effect`]:
    /// [`MIN_EFFECT_BOUND`] plus two per member (one input, a push/pull,
    /// can bring an event about every member). Beyond it an effect is
    /// dropped and counted (`ringswim.dropped{reason="effect_queue_full"}`):
    /// a driver that drains after every input never gets there.
    pub fn effect_bound(&self) -> usize {
        MIN_EFFECT_BOUND.saturating_add(self.members.len().saturating_mul(2))
    }

    /// The deadline of the suspicion about `name`, if one runs.
    #[cfg(test)]
    pub(crate) fn suspicion_deadline(&self, name: &str) -> Option<Time> {
        self.suspicions.get(name).map(|t| t.suspicion.deadline())
    }

    // ----- outputs -----

    /// The next effect to act on, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        let effect = self.effects.pop_front();
        if effect.is_none() {
            // A push/pull from a large cluster queues an event per member it
            // brings: do not keep room for that many in every core.
            self.effects.shrink_to(EFFECTS_KEPT);
        }
        effect
    }

    /// Every pending effect, oldest first.
    #[cfg(test)]
    pub(crate) fn drain_effects(&mut self) -> impl Iterator<Item = Effect> + '_ {
        self.effects.drain(..)
    }

    /// The alive / suspect / dead messages to piggyback on one packet (Go
    /// `broadcasts.GetBroadcasts`): each costs `overhead` plus its length,
    /// together at most `limit`. User broadcasts
    /// (`Delegate::get_broadcasts`) are the driver's to add in the space left.
    #[cfg(test)]
    pub(crate) fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Arc<[u8]>> {
        let n = self.members.len();
        self.broadcasts.get_broadcasts(overhead, limit, n)
    }

    // ----- helpers -----

    /// One above our incarnation, never past [`MAX_INCARNATION`] (Go's
    /// `atomic.AddUint32` wraps).
    fn next_incarnation(&mut self) -> u32 {
        self.incarnation = self.incarnation.saturating_add(1).min(MAX_INCARNATION);
        self.incarnation
    }

    fn is_local(&self, name: &str) -> bool {
        name == self.config.name
    }

    fn queue(&mut self, name: &str, msg: &Message<'_>, notify: Option<Arc<AtomicBool>>) {
        if self.merge_budget.is_some() && self.in_storm() {
            // In a storm the push/pulls carry what a merge teaches: only
            // older news about the member goes (nothing is encoded).
            self.broadcasts.invalidate(name);
            if let Some(notify) = notify {
                notify.store(true, Ordering::Release);
            }
            return;
        }
        let b = NodeBroadcast::new(name, msg.to_vec(), notify);
        match self.merge_budget {
            // Counted as partly sent: after fresh news, and fewer times.
            Some(budget) => {
                let n = self.members.len();
                let sent =
                    retransmit_limit(self.broadcasts.retransmit_mult, n).saturating_sub(retransmit_limit(budget, n));
                self.broadcasts.queue_with_transmits(b, sent);
            }
            None => self.broadcasts.queue_broadcast(b),
        }
    }

    fn event(&mut self, kind: NodeEventKind, idx: usize) {
        let node = self.members[idx].node.clone();
        self.push_effect(Effect::Event(NodeEvent { kind, node }));
    }

    /// Queues `effect` for the driver, unless [`Core::effect_bound`] wait
    /// already (then counted).
    fn push_effect(&mut self, effect: Effect) {
        if self.effects.len() >= self.effect_bound() {
            self.metrics.count(DROPPED, "effect_queue_full");
            return;
        }
        self.effects.push_back(effect);
    }

    /// Starts the suspicion about `name` and its timer.
    fn start_suspicion(&mut self, name: &str, suspicion: Suspicion, change_time: Time) {
        let name = Name::from(name);
        self.timers.set(Timer::Suspicion(name.clone()), suspicion.deadline());
        self.suspicions.insert(name, SuspicionTimer { suspicion, change_time, last_chance: false });
    }

    /// Counts `from`'s confirmation of the suspicion about `name`
    /// ([`Suspicion::confirm`]), moving its timer: whether it is news, or
    /// `None` when no suspicion runs.
    fn confirm_suspicion(&mut self, name: &str, from: &str, now: Time) -> Option<bool> {
        let timer = self.suspicions.get_mut(name)?;
        let before = timer.suspicion.deadline();
        let news = timer.suspicion.confirm(from, now);
        let after = timer.suspicion.deadline();
        if after != before {
            self.timers.set(Timer::Suspicion(Name::from(name)), after);
        }
        Some(news)
    }

    /// Ends the suspicion about `name`, if one runs, and its timer.
    fn stop_suspicion(&mut self, name: &str) {
        if let Some((key, _)) = self.suspicions.remove_entry(name) {
            self.timers.cancel(&Timer::Suspicion(key));
        }
    }

    /// What holds between inputs: the index maps every member to its position
    /// and nothing else, the local node is in the table and never dead, and
    /// suspicions run only for suspect members. O(n): for `debug_assert!`.
    fn invariants(&self) -> bool {
        let indexed = self.index.len() == self.members.len()
            && self.members.iter().enumerate().all(|(i, m)| self.position(&m.node.name) == Some(i));
        let local = self.member(&self.config.name).is_some_and(|m| m.state() != NodeState::Dead);
        let suspicions = self.suspicions.iter().all(|(name, t)| {
            self.member(name).is_some_and(|m| m.state() == NodeState::Suspect)
                && self.timers.get(&Timer::Suspicion(name.clone())) == Some(t.suspicion.deadline())
        });
        let broadcasts = self.broadcasts.num_queued() <= self.members.len();
        indexed && local && suspicions && broadcasts && self.timers.is_consistent()
    }

    /// Go `refute`: beat `accused` with a fresh incarnation, announce it, and
    /// take an awareness point for having been accused. Go's arithmetic
    /// wraps (accused at `u32::MAX`, it announces 0); here the incarnation
    /// stops at [`MAX_INCARNATION`], above anything a peer lets anyone
    /// accuse us of.
    fn refute(&mut self, idx: usize, accused: u32) {
        self.incarnation = self.incarnation.max(accused);
        let inc = self.next_incarnation();
        if inc <= accused {
            self.reject("incarnation_exhausted");
        }
        self.members[idx].incarnation = inc;
        self.awareness.apply_delta(1);

        let (name, alive) = self.local_alive();
        self.queue(&name, &Message::Alive(alive.as_alive(&name)), None);
    }

    /// Our name and our alive message as the table holds it (the last
    /// incarnation announced).
    fn local_alive(&self) -> (crate::name::Name, OwnedAlive) {
        let me = self.local();
        let alive = OwnedAlive {
            incarnation: me.incarnation,
            addr: ip_to_wire(me.node.addr),
            port: me.node.port,
            meta: me.node.meta.clone(),
            vsn: me.node.vsn(),
        };
        (me.node.name.clone(), alive)
    }
}

impl<R: Rng> Core<R> {
    // ----- inputs -----

    /// An alive message from the network (Go `handleAlive`): addresses outside
    /// `cidrs_allowed` are blocked, a zero port (or protocol version < 2)
    /// means `bind_port`, then Go `aliveNode`'s rules.
    pub fn handle_alive(&mut self, alive: &Alive<'_>, now: Time) {
        let mut a = *alive;
        if self.config.ip_must_be_checked()
            && let Some(ip) = ip_from_wire(a.addr)
            && self.config.ip_allowed(ip).is_err()
        {
            return;
        }
        if self.config.protocol_version < 2 || a.port == 0 {
            a.port = self.config.bind_port;
        }
        let was_alive = self.member(a.node).is_some_and(|m| !m.is_dead_or_left());
        self.note_repeat(&a);
        self.alive_node(&a, None, false, now);
        if !was_alive && self.member(a.node).is_some_and(|m| m.state() == NodeState::Alive) {
            self.note_news(now);
        }
        debug_assert!(self.invariants());
    }

    /// A suspect message from the network (Go `suspectNode`).
    pub fn handle_suspect(&mut self, s: &Accusation<'_>, now: Time) {
        self.suspect_node(s, now);
        debug_assert!(self.invariants());
    }

    /// A dead message from the network (Go `deadNode`).
    pub fn handle_dead(&mut self, d: &Accusation<'_>, now: Time) {
        self.dead_node(d, now);
        debug_assert!(self.invariants());
    }

    /// A push/pull peer's member list (Go `mergeRemoteState`, without the
    /// user state, which the driver gives `Delegate::merge_remote_state`):
    /// versions are checked (Go `verifyProtocol`, over the entries whose
    /// versions are well formed), a join asks the merge delegate, then every
    /// entry is merged ([`Core::merge_state`]; alives with malformed versions
    /// are refused there). Zero
    /// ports (or protocol version < 2) mean `bind_port`, as Go's
    /// `readRemoteState` does.
    pub(crate) fn merge_remote_state(
        &mut self,
        states: &[PushNodeState<'_>],
        join: bool,
        now: Time,
    ) -> Result<(), Error> {
        // Entries with malformed versions (a Go peer stores and pushes
        // whatever an alive carried, zeros included) are refused one by one
        // when merged; they must not fail the whole exchange, as they do in
        // Go (hashicorp/memberlist #180).
        let checked: std::borrow::Cow<'_, [PushNodeState<'_>]> = if states.iter().all(|r| vsn_well_formed(r.vsn)) {
            states.into()
        } else {
            states.iter().filter(|r| vsn_well_formed(r.vsn)).copied().collect()
        };
        verify_protocol(self.members.iter().map(|m| &m.node), &checked)?;
        let bind_port = self.config.bind_port;
        let masked = |r: &PushNodeState<'_>| -> u16 {
            if self.config.protocol_version < 2 || r.port == 0 { bind_port } else { r.port }
        };
        if join && let Some(merge) = &self.config.merge {
            let peers: Vec<Node> = states
                .iter()
                .filter_map(|r| {
                    let state = NodeState::from_wire(r.state)?;
                    let mut node = Node::new(r.name, ip_from_wire(r.addr)?, masked(r));
                    node.meta = r.meta.to_vec();
                    node.state = state;
                    set_vsn(&mut node, r.vsn);
                    Some(node)
                })
                .collect();
            merge.notify_merge(&peers).map_err(Error::MergeRejected)?;
        }
        let ports: Vec<u16> = states.iter().map(masked).collect();
        self.merge_state(states.iter().zip(ports).map(|(r, port)| PushNodeState { port, ..*r }), now);
        Ok(())
    }

    /// Go `mergeState`: alive → [`handle_alive`](Self::handle_alive)'s rules
    /// (without its address block), left → dead from the member itself, dead
    /// or suspect → *suspect* from us (a peer's verdict of death only makes us
    /// suspect). Unknown states are skipped.
    pub(crate) fn merge_state<'a>(&mut self, states: impl IntoIterator<Item = PushNodeState<'a>>, now: Time) {
        let me = self.config.name.clone();
        for r in states {
            match NodeState::from_wire(r.state) {
                Some(NodeState::Alive) => {
                    let a = Alive {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr: r.addr,
                        port: r.port,
                        meta: r.meta,
                        vsn: r.vsn,
                    };
                    self.alive_node(&a, None, false, now);
                }
                Some(NodeState::Left) => {
                    self.dead_node(&Accusation { incarnation: r.incarnation, node: r.name, from: r.name }, now);
                }
                Some(NodeState::Dead | NodeState::Suspect) => {
                    self.suspect_node(&Accusation { incarnation: r.incarnation, node: r.name, from: &me }, now);
                }
                None => {}
            }
        }
        debug_assert!(self.invariants());
    }

    /// Every timer due at `now`, earliest first (ties: suspicions by member
    /// name, relays, pings, streams, the probe's stages, the ticks): a
    /// member still suspect since its suspicion started is declared dead by
    /// us, a relayed ping's nack goes out, a [`Core::ping`] or a stream the
    /// driver did not answer ends without an answer, the probe moves on,
    /// the tickers run. Allocates nothing of its own.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some((when, timer)) = self.timers.pop_due(now) {
            match timer {
                Timer::Suspicion(name) => self.fire_suspicion(&name, now),
                timer => self.handle_net_timer(timer, when, now),
            }
        }
        debug_assert!(self.invariants());
    }

    /// The suspicion about `name` is due: a member still suspect since it
    /// started is declared dead (after a last-chance ping, with
    /// [`Extensions::last_chance_ping`](crate::config::Extensions::last_chance_ping)).
    fn fire_suspicion(&mut self, name: &str, now: Time) {
        let Some((key, mut timer)) = self.suspicions.remove_entry(name) else { return };
        let Some(idx) = self.position(name) else { return };
        let m = &self.members[idx];
        let current = m.state() == NodeState::Suspect && m.state_change == timer.change_time;
        // Scaled by our own health, as Lifeguard scales our probes: a node
        // whose probes keep failing (it handles its input late) hears the
        // answer late too, and two such nodes need twice their lag.
        let wait = self.awareness.scale_timeout(self.config.probe_interval + self.config.probe_timeout);
        if current && self.config.extensions.last_chance_ping && !timer.last_chance && !wait.is_zero() {
            // Ask the member itself before declaring it dead: the ping
            // carries our suspicion, which it refutes or, if it already
            // has, answers with its alive.
            let (to, incarnation) = (m.node.address(), m.incarnation);
            timer.last_chance = true;
            timer.suspicion.postpone(now + wait);
            self.timers.set(Timer::Suspicion(key.clone()), timer.suspicion.deadline());
            self.suspicions.insert(key, timer);
            self.send_last_chance_ping(name, to, incarnation);
            return;
        }
        let Some(confirmations) = timer.suspicion.fire(now) else { return };
        if current {
            let expected = timer.suspicion.expected_confirmations();
            if expected > 0 && confirmations < expected {
                self.metrics.count(GO_DEGRADED, "timeout");
            }
            let incarnation = m.incarnation;
            let me = self.config.name.clone();
            self.dead_node(&Accusation { incarnation, node: name, from: &me }, now);
        }
    }

    /// Reaps members dead or left for longer than `gossip_to_the_dead_time`
    /// and shuffles the rest (Go `resetNodes`, run by the probe loop each
    /// time it wraps around the member list). News about a reaped member
    /// still queued goes with it (counted,
    /// `ringswim.dropped{reason="broadcast_of_reaped_member"}`), so that no
    /// queue outlives the table.
    ///
    /// Go 0.2.2 reaps only dead members and keeps left ones for good (until
    /// their name is reclaimed), so a table under churn grows without end;
    /// later Go versions reap both, as here. The local node is never reaped.
    pub(crate) fn reset_nodes(&mut self, now: Time) {
        let me = &self.config.name;
        let keep = move_dead_nodes(&mut self.members, self.config.gossip_to_the_dead_time, now, |m| {
            (m.is_dead_or_left() && m.node.name != *me).then_some(m.state_change)
        });
        let reaped: Vec<Member> = self.members.drain(keep..).collect();
        for member in &reaped {
            let name = member.node.name.as_str();
            self.stop_suspicion(name);
            if self.broadcasts.invalidate(name) {
                self.metrics.count(DROPPED, "broadcast_of_reaped_member");
            }
        }
        shuffle(&mut self.members, &mut self.rng);
        self.index.rebuild(&self.members);
        debug_assert!(self.invariants());
    }

    // ----- commands -----

    /// Re-announces the local node with fresh meta from `Config::delegate` and
    /// a new incarnation (Go `UpdateNode`). Go then waits for the broadcast
    /// when [`Core::any_alive`]: see [`Core::update_broadcast_sent`]. Does
    /// nothing after [`Core::leave`].
    pub fn update_node(&mut self, now: Time) -> Result<(), Error> {
        let meta = local_meta(&self.config)?;
        let incarnation = self.next_incarnation();
        let local = self.local();
        let (name, addr, port) = (local.node.name.clone(), ip_to_wire(local.node.addr), local.node.port);
        let vsn = self.config.build_vsn_array();
        let alive = Alive { incarnation, node: &name, addr: &addr, port, meta: &meta, vsn: &vsn };
        self.update_sent = Arc::new(AtomicBool::new(false));
        let notify = Arc::clone(&self.update_sent);
        self.alive_node(&alive, Some(notify), true, now);
        debug_assert!(self.invariants());
        Ok(())
    }

    /// Leaves the cluster (Go `Leave`, up to its wait): the local node becomes
    /// left and a dead message from itself is queued. Go then waits until
    /// [`Core::leave_broadcast_sent`] (when [`Core::any_alive`]) before
    /// shutting down. Calling it twice does nothing more.
    pub fn leave(&mut self, now: Time) {
        if self.left {
            return;
        }
        self.left = true;
        let local = self.local();
        let (name, incarnation) = (local.node.name.clone(), local.incarnation);
        self.dead_node(&Accusation { incarnation, node: &name, from: &name }, now);
        debug_assert!(self.invariants());
    }

    /// Undoes [`Core::leave`] for a join: alive again at the next
    /// incarnation (announced as [`Core::update_node`] does).
    pub(super) fn come_back(&mut self, now: Time) {
        self.left = false;
        // Failing only on over-long meta, which `Core::new` already refused.
        let _ = self.update_node(now);
    }

    // ----- Go's state rules -----

    /// Whether an accusation at `incarnation` about member `idx` would raise
    /// it past [`MAX_ACCUSED_INCARNATION`] (then refused and counted): a
    /// number the member never announced, so one its refutation might not
    /// beat.
    fn implausible_accusation(&self, idx: usize, incarnation: u32) -> bool {
        let implausible = incarnation > MAX_ACCUSED_INCARNATION && incarnation > self.members[idx].incarnation;
        if implausible {
            self.reject("implausible_incarnation");
        }
        implausible
    }

    /// Go `aliveNode`. `bootstrap` is true for our own announcements
    /// ([`Core::new`], [`Core::update_node`]): they are taken, not refuted.
    fn alive_node(&mut self, a: &Alive<'_>, notify: Option<Arc<AtomicBool>>, bootstrap: bool, now: Time) {
        // A queued alive about ourselves must not undo a leave.
        if self.left && self.is_local(a.node) {
            return;
        }
        if !vsn_well_formed(a.vsn) {
            self.reject("bad_vsn");
            return;
        }
        if a.incarnation > MAX_INCARNATION {
            self.reject("implausible_incarnation");
            return;
        }
        let Some(ip) = ip_from_wire(a.addr) else { return };

        if let Some(alive_delegate) = &self.config.alive {
            let mut node = Node::new(a.node, ip, a.port);
            node.meta = a.meta.to_vec();
            set_vsn(&mut node, a.vsn);
            if alive_delegate.notify_alive(&node).is_err() {
                return;
            }
        }

        let mut updates_node = false;
        let idx = match self.position(a.node) {
            None => {
                if self.config.ip_allowed(ip).is_err() {
                    return;
                }
                let mut node = Node::new(a.node, ip, a.port);
                node.meta = a.meta.to_vec();
                node.state = NodeState::Dead;
                set_vsn(&mut node, a.vsn);
                self.insert(Member { node, incarnation: 0, state_change: Time::ZERO })
            }
            Some(idx) => {
                let m = &self.members[idx];
                if m.node.addr != ip || m.node.port != a.port {
                    if self.config.ip_allowed(ip).is_err() {
                        return;
                    }
                    let reclaim = self.config.dead_node_reclaim_time;
                    let can_reclaim = !reclaim.is_zero() && now.saturating_since(m.state_change) > reclaim;
                    if m.state() == NodeState::Left || (m.state() == NodeState::Dead && can_reclaim) {
                        updates_node = true;
                    } else {
                        let mut other = Node::new(a.node, ip, a.port);
                        other.meta = a.meta.to_vec();
                        self.push_effect(Effect::Conflict { existing: m.node.clone(), other });
                        return;
                    }
                }
                idx
            }
        };

        let is_local = self.is_local(a.node);
        let known = self.members[idx].incarnation;
        // Older news about someone else is ignored, unless it reclaims a name.
        if a.incarnation <= known && !is_local && !updates_node {
            return;
        }
        // Older news about us is ignored; equal news is checked below.
        if a.incarnation < known && is_local {
            return;
        }

        self.stop_suspicion(a.node);

        let old_state = self.members[idx].state();
        let old_meta = self.members[idx].node.meta.clone();

        if !bootstrap && is_local {
            let node = &self.members[idx].node;
            // Same incarnation and same content: a replay of our own news.
            // Otherwise someone speaks for us (e.g. our previous life with
            // other meta): refute.
            if a.incarnation == known && a.meta == node.meta.as_slice() && a.vsn == node.vsn().as_slice() {
                return;
            }
            self.refute(idx, a.incarnation);
        } else {
            self.queue(a.node, &Message::Alive(*a), notify);
            let m = &mut self.members[idx];
            set_vsn(&mut m.node, a.vsn);
            m.incarnation = a.incarnation;
            m.node.meta = a.meta.to_vec();
            m.node.addr = ip;
            m.node.port = a.port;
            if m.node.state != NodeState::Alive {
                m.node.state = NodeState::Alive;
                m.state_change = now;
            }
            self.net.streams.failed.remove(a.node);
        }
        self.metrics.count_at(MSG_ALIVE);

        if matches!(old_state, NodeState::Dead | NodeState::Left) {
            self.note_learned(now);
            self.event(NodeEventKind::Join, idx);
        } else if old_meta != self.members[idx].node.meta {
            self.event(NodeEventKind::Update, idx);
        }
    }

    /// Adds a new member at a random position of the probe order (Go appends
    /// and swaps with a random offset, so that failure detection stays
    /// uniform). Returns its index.
    fn insert(&mut self, member: Member) -> usize {
        let n = self.members.len();
        let offset = random_offset(n, &mut self.rng);
        if n == self.members.capacity() {
            // Grow by a quarter rather than double: every member holds a
            // table of the whole cluster, and doubling left up to half of
            // each unused.
            self.members.reserve_exact(n / 4 + 4);
        }
        self.members.push(member);
        self.members.swap(offset, n);
        if offset != n {
            self.index.moved(&self.members, offset, n);
        }
        self.index.insert(&self.members, offset);
        offset
    }

    /// Go `suspectNode`.
    fn suspect_node(&mut self, s: &Accusation<'_>, now: Time) {
        let Some(idx) = self.position(s.node) else { return };
        if s.incarnation < self.members[idx].incarnation {
            return;
        }
        if self.implausible_accusation(idx, s.incarnation) {
            return;
        }

        // A running suspicion: a new accuser confirms it, and only news is
        // re-gossiped, so independent confirmations keep flowing. Only an
        // accusation of the same incarnation confirms: one at a higher
        // incarnation means the member refuted the suspicion we hold (its
        // alive has not reached us) and was suspected again. Go counts it
        // as a confirmation of the stale suspicion, whose shrunk timer then
        // fires at once for an incarnation the member already beat.
        let stale = self.members[idx].incarnation < s.incarnation;
        if self.suspicions.contains_key(s.node) {
            if !stale || !self.config.extensions.suspicion_per_incarnation {
                if self.confirm_suspicion(s.node, s.from, now) == Some(true) {
                    self.queue(s.node, &Message::Suspect(*s), None);
                }
                return;
            }
            // Start over at the new incarnation.
            self.stop_suspicion(s.node);
            self.members[idx].node.state = NodeState::Alive;
        }

        if self.members[idx].state() != NodeState::Alive {
            return;
        }
        if self.is_local(s.node) {
            self.refute(idx, s.incarnation);
            return;
        }
        self.queue(s.node, &Message::Suspect(*s), None);
        self.metrics.count_at(MSG_SUSPECT);

        let m = &mut self.members[idx];
        m.incarnation = s.incarnation;
        m.node.state = NodeState::Suspect;
        m.state_change = now;

        // k confirmations expected: aim at the nominal timeout two probe
        // intervals short; none if there are not enough other members
        // (n - 2: without us and the suspect).
        let n = self.members.len();
        let mut k = self.config.suspicion_mult.saturating_sub(2);
        if n.saturating_sub(2) < k {
            k = 0;
        }
        let min = suspicion_timeout(self.config.suspicion_mult, n, self.config.probe_interval);
        let max = min.saturating_mul(u32::try_from(self.config.suspicion_max_timeout_mult).unwrap_or(u32::MAX));
        let suspicion = Suspicion::new(s.from, k, min, max, now);
        self.start_suspicion(s.node, suspicion, now);
    }

    /// Go `deadNode`.
    fn dead_node(&mut self, d: &Accusation<'_>, now: Time) {
        let Some(idx) = self.position(d.node) else { return };
        if d.incarnation < self.members[idx].incarnation {
            return;
        }
        if self.implausible_accusation(idx, d.incarnation) {
            return;
        }
        self.stop_suspicion(d.node);
        if self.members[idx].is_dead_or_left() {
            return;
        }

        if self.is_local(d.node) {
            if !self.left {
                self.refute(idx, d.incarnation);
                return;
            }
            let notify = Arc::clone(&self.leave_sent);
            self.queue(d.node, &Message::Dead(*d), Some(notify));
        } else {
            self.queue(d.node, &Message::Dead(*d), None);
        }
        self.metrics.count_at(MSG_DEAD);

        let m = &mut self.members[idx];
        m.incarnation = d.incarnation;
        // A member announcing its own death has left.
        let left = d.node == d.from;
        m.node.state = if left { NodeState::Left } else { NodeState::Dead };
        m.state_change = now;
        let addr = m.node.address();
        if left {
            self.net.streams.failed.remove(d.node);
        } else if !self.is_local(d.node) {
            self.note_failed(d.node, addr, now);
        }
        self.event(NodeEventKind::Leave, idx);
    }
}

#[path = "datagram.rs"]
mod datagram;
#[path = "extensions.rs"]
mod extensions;
#[path = "net.rs"]
mod net;
#[path = "streams.rs"]
mod streams;

pub use datagram::{Opener, OutgoingPacket, PacketLayers, Sealer, Transmit};
pub use net::{MAX_PINGS, MAX_QUEUED_TRANSMITS, MAX_RELAYS, STALE_ANSWERS_PER_PROBE_INTERVAL, max_udp_payload};
pub use streams::{
    LocalState, MAX_PENDING_STREAMS, MAX_PUSH_PULL_REQUESTS, MAX_RECONNECT_CANDIDATES, StreamContent, StreamError,
    StreamId, StreamKind, StreamRequest,
};

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "net_tests.rs"]
mod net_tests;

#[cfg(test)]
#[path = "extensions_tests.rs"]
mod extensions_tests;

#[cfg(test)]
#[path = "fault_tests.rs"]
mod fault_tests;

#[cfg(test)]
#[path = "test_nodes.rs"]
mod test_nodes;

#[cfg(test)]
#[path = "bounds_tests.rs"]
mod bounds_tests;
