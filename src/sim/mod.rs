//! The deterministic world the protocol runs in (after TigerBeetle's VOPR):
//! the real sans-IO protocol code, many nodes of it, under virtual time, one
//! seeded RNG and a fault-injecting network.
//!
//! - [`Protocol`]: what a simulated node implements — the driver contract of
//!   [`swim::driver`](crate::swim::driver), which [`swim::Core`](crate::swim::Core)
//!   implements; the world is one of its drivers and drains every node with
//!   [`swim::drain`](crate::swim::drain).
//! - [`World`]: the nodes, the event queue (a min-heap on
//!   `(virtual time, sequence number)`, so ties replay in insertion order),
//!   the [`Link`] model (loss, duplication, corruption, [`Delay`], for
//!   datagrams and streams), and the [`Fault`]s that can be applied now or
//!   scheduled: partitions and heals, slow / paused nodes, kill / restart,
//!   joins. [`World::observe`] shows an observer every node after every
//!   input ([`Drained`]).
//! - [`swarm`]: random worlds under invariant checkers ([`check`]) that
//!   live outside the core (`ringswim swarm`).
//! - Accounting: [`NodeStats`] per node, [`Totals`] for the world, and a
//!   trace hash (FNV-1a over every input a node handled) that two runs with
//!   the same seed must share.
//!
//! Nothing here reads the real clock, spawns a thread or iterates a
//! `HashMap`: the same seed gives the same trace, on every run and platform.
#![forbid(unsafe_code)]

pub mod check;
mod net;
mod protocol;
pub mod scenario;
pub mod swarm;
mod swim_node;
mod world;

#[cfg(test)]
mod tests;

pub use net::{Delay, Jitter, Link, MAX_STREAM_RETRIES, STREAM_RTO, STREAM_SEGMENT};
pub use protocol::{NodeCtx, Protocol, StreamBody, StreamError, StreamId, StreamRequest, Transmit};
pub use swim_node::{Gossip, Log, SeededRng, SharedLog, SwimNode, node_name, parse_node_name};
pub use world::{Drained, Fault, NodeId, NodeStats, Totals, World};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The port every simulated node listens on (memberlist's default).
pub const PORT: u16 = 7946;

/// Most nodes a world can address (`127.0.0.1` … `127.255.255.254`).
pub const MAX_NODES: usize = (1 << 24) - 2;

/// Node `id`'s address: `127.x.y.z:7946` with `x.y.z` = `id + 1` in base 256.
///
/// # Panics
/// If `id >= MAX_NODES`.
pub fn node_addr(id: NodeId) -> SocketAddr {
    assert!(id < MAX_NODES, "node id {id} beyond the 127/8 address space");
    let n = u32::try_from(id + 1).expect("checked above");
    let [_, x, y, z] = n.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, x, y, z)), PORT)
}

/// The node id behind a simulated address, the inverse of [`node_addr`]
/// (whether or not such a node exists yet).
pub fn node_id(addr: SocketAddr) -> Option<NodeId> {
    let SocketAddr::V4(v4) = addr else { return None };
    let [a, x, y, z] = v4.ip().octets();
    if a != 127 || v4.port() != PORT {
        return None;
    }
    let n = u32::from_be_bytes([0, x, y, z]);
    let id = usize::try_from(n).ok()?.checked_sub(1)?;
    (id < MAX_NODES).then_some(id)
}
