//! The engine: real sockets and clocks driving [`swim::Core`](crate::swim::Core)
//! through the driver contract ([`swim::driver`](crate::swim::driver)).
//!
//! - [`Runtime`] runs engine threads, each owning one [`shard`]: the nodes it
//!   hosts (their cores, timers and connections), touched by no other thread.
//!   [`Runtime::host`] starts a node on the next thread; [`Memberlist`] is
//!   the embedder's handle on it, and [`Memberlist::create`] the one-node
//!   path.
//! - `shard` does everything that is not a system call: the per-node drain,
//!   sealing packets into the send buffer, the timer heap, the TCP
//!   exchanges as state machines (`conn`), the API's commands.
//! - `spread`: one busy node on several threads
//!   ([`Runtime::host_spread`]): the other threads open its datagrams and
//!   hand the messages to the owner's shard in batches.
//! - `portable/` moves the bytes with epoll (`mio`); [`uring`] (Linux) with
//!   io_uring, through a safe API over the raw `io-uring` crate — the only
//!   module of the crate without `#![forbid(unsafe_code)]`. Both are driven
//!   by the same shard.

mod api;
#[cfg(feature = "cli")]
pub mod bench;
pub mod cluster;
mod conn;
mod portable;
mod runtime;
mod shard;
mod spread;
mod telemetry;
#[cfg(target_os = "linux")]
pub mod uring;

pub use api::{Error, MemberInfo, Memberlist};
pub use runtime::{Backend, BackendChoice, EngineStats, Runtime, RuntimeOptions};
pub use shard::MAX_INBOUND_CONNECTIONS;

/// How late a timer may run so that timers close together run in one
/// wake-up of the thread (a node's gossip and probe timers, over thousands
/// of nodes, otherwise wake it thousands of times a second). Packets and
/// commands are handled at once; only timers wait. Go's own timers are
/// no finer (its runtime's timer granularity is about a millisecond).
pub(crate) const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(2);

/// Pins the calling thread to CPU `index` (modulo the CPUs this process may
/// use); a refusal is not fatal (the thread runs unpinned).
pub(crate) fn pin_to_cpu(index: usize) {
    if let Some(cores) = core_affinity::get_core_ids()
        && !cores.is_empty()
    {
        core_affinity::set_for_current(cores[index % cores.len()]);
    }
}
