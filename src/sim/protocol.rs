//! The contract between the world and a simulated node.

use std::net::SocketAddr;

use crate::swim::Time;

/// A datagram a node wants sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub to: SocketAddr,
    /// The packet, as it would go on the wire.
    pub bytes: Vec<u8>,
}

/// Names one stream a node opened, unique per node incarnation; chosen by
/// the node.
pub type StreamId = u64;

/// A request/response exchange over a reliable stream (memberlist's TCP
/// push/pull and fallback ping): the node sends `bytes` to `to` and expects
/// one reply by `deadline`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    /// Chosen by the node; comes back in [`Protocol::handle_stream_reply`].
    pub id: StreamId,
    /// The peer.
    pub to: SocketAddr,
    /// The request, as it would go on the stream.
    pub bytes: Vec<u8>,
    /// When the node gives up: if no reply has arrived by then it gets
    /// [`StreamError::Timeout`] at exactly this time.
    pub deadline: Time,
}

/// Why a stream exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamError {
    /// No reply by the deadline: the peer is unreachable (partitioned), too
    /// slow, paused, or the reply came too late.
    Timeout,
    /// Nothing listens at the address: a connection refused, one link delay
    /// after the request was sent when no node has the address, a round
    /// trip after it when the node is dead.
    Refused,
    /// The peer read the request and closed without a reply
    /// ([`Protocol::handle_stream`] returned `None`).
    Closed,
}

/// What the world tells a node factory about the node it is building.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeCtx {
    /// Index of the node in the world; stays the same across restarts.
    pub id: usize,
    /// Its address ([`node_addr`](super::node_addr)`(id)`).
    pub addr: SocketAddr,
    /// 0 for the first start, +1 for each restart.
    pub incarnation: u32,
    /// Drawn from the world's RNG: seed the node's own RNG with it.
    pub seed: u64,
    /// The virtual time the node starts at.
    pub now: Time,
}

/// A node the world can run: the sans-IO surface of
/// [`swim::Core`](crate::swim::Core), so that an adapter
/// `impl Protocol for swim::Core` runs the real protocol.
///
/// # Contract
/// - **Inputs** (`handle_*`) carry `now`, which never goes backwards for one
///   node. Each is one delivered event: a packet ([`Protocol::handle_packet`]),
///   the node's timer ([`Protocol::handle_timeout`]), a stream request from a
///   peer ([`Protocol::handle_stream`], answered synchronously), or the
///   outcome of a stream this node opened ([`Protocol::handle_stream_reply`],
///   exactly once per [`StreamRequest`]: a reply or a [`StreamError`]).
/// - **Outputs** are drained by the world after the node is built and after
///   every input, in this order: [`Protocol::poll_transmit`] until `None`,
///   [`Protocol::poll_stream`] until `None`, then [`Protocol::poll_timeout`].
/// - **One timer**: `poll_timeout` is the earliest time the node wants
///   `handle_timeout`; the world calls it at (or, for a slow or paused node,
///   after) that time unless an earlier input moved it. After
///   `handle_timeout(now)` it must return `None` or a time later than `now`,
///   else the node is woken again at once (the world's event budget stops a
///   node that never settles).
/// - **No I/O, no clock, no global RNG**: time comes from `now`, randomness
///   from an RNG seeded with [`NodeCtx::seed`]. A node that obeys this
///   replays bit for bit from the world's seed.
pub trait Protocol {
    /// A datagram from `from` arrived. `bytes` may be decrypted in place.
    fn handle_packet(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time);
    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The timer set by [`Protocol::poll_timeout`] is due.
    fn handle_timeout(&mut self, now: Time);
    /// When the node next wants [`Protocol::handle_timeout`].
    fn poll_timeout(&self) -> Option<Time>;
    /// The next stream exchange to open.
    fn poll_stream(&mut self) -> Option<StreamRequest>;
    /// The outcome of the stream exchange `id` this node opened.
    fn handle_stream_reply(&mut self, id: StreamId, reply: Result<Vec<u8>, StreamError>, now: Time);
    /// A peer opened a stream and sent `bytes`; the reply, or `None` to close
    /// without one.
    fn handle_stream(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time) -> Option<Vec<u8>>;
}
