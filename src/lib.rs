//! ringswim: SWIM + Lifeguard cluster membership, wire-compatible with
//! HashiCorp memberlist 0.2.2.
//!
//! The crate is split the way data flows (see `README.md`):
//! - [`wire`]: the bytes — messages, msgpack in Go's dialect, compound packets,
//!   CRC, labels, compression, encryption, stream framing. No I/O, no state.
//! - [`config`]: every field of Go's `Config`, with Go's defaults.
//! - [`engine`]: the I/O that drives the protocol on real sockets.
//! - [`inspect`]: packets ↔ JSON, the contract of `ringswim decode`/`encode`
//!   (feature `cli`).
//!
//! # Features
//! - `cli` (default): the `ringswim` binary and the JSON it speaks
//!   ([`inspect`], `sim::scenario::Report::to_json`), with their
//!   dependencies (clap, serde_json, hex, base64). A library user who needs
//!   neither sets `default-features = false`.
// Every module but `engine::uring` (SQE pushes, kernel-shared buffers)
// starts with `#![forbid(unsafe_code)]`; one crate-wide could not be
// lifted for that one module.
// `sim::scenario::Report::to_json` is one long `json!` object.
#![recursion_limit = "256"]

pub mod config;
pub mod delegate;
pub mod engine;
#[cfg(feature = "cli")]
pub mod inspect;
pub mod name;
pub mod sim;
pub mod swim;
pub mod wire;
