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
//! - `portable/` moves the bytes with epoll (`mio`); `uring/` with io_uring.
//!   Both are driven by the same shard.

mod api;
mod conn;
mod portable;
mod runtime;
mod shard;

pub use api::{Error, MemberInfo, Memberlist};
pub use runtime::{Backend, BackendChoice, Runtime, RuntimeOptions};

/// Pins the calling thread to CPU `index` (modulo the CPUs this process may
/// use); a refusal is not fatal (the thread runs unpinned).
pub(crate) fn pin_to_cpu(index: usize) {
    if let Some(cores) = core_affinity::get_core_ids()
        && !cores.is_empty()
    {
        core_affinity::set_for_current(cores[index % cores.len()]);
    }
}
