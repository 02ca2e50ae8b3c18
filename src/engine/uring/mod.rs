//! The io_uring layer of the engine: a safe API over the raw `io-uring` crate,
//! so that the worker that drives the protocol needs no `unsafe`.
//!
//! This module is the only place in the crate where `unsafe` code is allowed
//! (every other module forbids it). Every `unsafe` block carries a `// SAFETY:`
//! comment (enforced by `clippy::undocumented_unsafe_blocks`), and the unsafe
//! acts are few: pushing an SQE (the memory it points to must stay valid until
//! its CQE), registering a provided buffer ring, and reading a buffer the
//! kernel handed back in a CQE.
//!
//! - [`probe`](mod@probe): what the running kernel allows (ring creation, opcodes,
//!   multishot receive/accept, buffer rings, setup flags), as a [`Support`],
//!   or a typed [`ProbeError`] saying why io_uring is refused.
//! - `bufs`: the provided buffer ring (receive) and the fixed pool of send
//!   slots; memory is allocated once and handed to the kernel.
//! - [`ring`]: the [`Ring`] — registered UDP sockets with multishot
//!   `recvmsg`, batched `sendmsg`, TCP accept/connect/read/write/close, one
//!   wait timeout per turn and a cross-thread [`Waker`].
//! - [`echo`]: a bare UDP echo on one [`Ring`], the `"backend":"echo"`
//!   baseline of the engine benchmark.
//! - `worker`: the backend's engine thread: one [`Ring`] driving one
//!   shard, as `portable/` does with epoll.
//!
//! Ownership rule (tokio-uring's `Lifecycle::Ignored`): a buffer, address or
//! header that an SQE points to is owned by this layer until the CQE of that
//! SQE arrives, even when the stream it belongs to was closed meanwhile. A
//! [`Ring`] that is dropped cancels what is in flight and waits (bounded) for
//! the CQEs; memory the kernel may still touch is leaked rather than freed.
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

mod bufs;
pub mod echo;
pub mod probe;
pub mod ring;
mod slab;
pub(crate) mod worker;

pub use echo::{EchoConfig, EchoReport, run_echo};
pub use probe::{Cause, Ops, ProbeError, SetupFlags, Support, probe};
pub use ring::{
    Completion, Io, ListenerId, ReadOutcome, Ring, RingConfig, RingError, RingStats, SendError, SocketId, StreamError,
    StreamId, Waker,
};
