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

/// The most a timer may run late so that timers close together run in one
/// wake-up of the thread: a node's gossip and probe timers, over hundreds
/// of nodes, otherwise wake it thousands of times a second, and each
/// wake-up (a system call, a context switch, in a VM a timer exit) cost
/// more than the work it ran. Packets and commands are handled at once;
/// only timers wait. Measured with `ringswim cluster --nodes 128|500
/// --window 20 --broadcasts 0 --kill 0 --json` (io_uring, local profile,
/// two runs each): steady CPU per node per second 0.30 ms at 2 ms of
/// slack, 0.23–0.24 at 10 ms, 0.19–0.20 at 20 ms (128 nodes); 0.175–0.193,
/// 0.140–0.142, 0.123–0.132 (500 nodes); convergence and bytes alike.
/// Periodic timers keep their phase (a late gossip round does not delay
/// the next), so only each round's moment moves.
pub(crate) const MAX_TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(20);

/// The slack a node's timers allow: [`MAX_TIMER_SLACK`], but at most a
/// tenth of its probe timeout and a fifth of its gossip interval (20 ms for
/// Go's local and LAN profiles), so that configurations with millisecond
/// timers (tests, Go's own test suite) keep their precision.
pub(crate) fn timer_slack(config: &crate::config::Config) -> std::time::Duration {
    [config.probe_timeout / 10, config.gossip_interval / 5]
        .into_iter()
        .filter(|d| !d.is_zero())
        .fold(MAX_TIMER_SLACK, std::cmp::Ord::min)
}

/// Pins the calling thread to CPU `index` (modulo the CPUs this process may
/// use); a refusal is not fatal (the thread runs unpinned).
pub(crate) fn pin_to_cpu(index: usize) {
    if let Some(cores) = core_affinity::get_core_ids()
        && !cores.is_empty()
    {
        core_affinity::set_for_current(cores[index % cores.len()]);
    }
}
