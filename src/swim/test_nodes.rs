//! Addresses, names and times of the small clusters the core's unit tests
//! build (`extensions_tests.rs`, `fault_tests.rs`): node `i` is `node{i}` at
//! `127.0.0.{i + 1}:7946`, and time starts at an arbitrary non-zero epoch.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::swim::Time;

/// Every test node's port (memberlist's default).
pub(crate) const PORT: u16 = 7946;

/// Node `i`'s address.
pub(crate) fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i + 1)), PORT)
}

/// Node `i`'s name.
pub(crate) fn name(i: u8) -> String {
    format!("node{i}")
}

/// `ms` milliseconds after the tests' epoch.
pub(crate) fn at(ms: u64) -> Time {
    Time::from_epoch(Duration::from_secs(1_000) + Duration::from_millis(ms))
}
