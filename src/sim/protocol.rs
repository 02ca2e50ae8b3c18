//! The contract between the world and a simulated node.

use std::net::SocketAddr;

use crate::swim::Time;

// A node's outputs are the protocol core's own types: the simulator runs
// `swim::Core` through this trait, so one definition serves both. In the world,
// `StreamError::Timeout` comes at exactly the request's deadline, `Refused` one
// link delay after the request when no node has the address (a round trip when
// the node is dead), and `Closed` when `handle_stream` returned `None`.
pub use crate::swim::{StreamError, StreamId, StreamRequest, Transmit};

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

/// What a stream carries in the world: the world counts its bytes and
/// fingerprints it into the trace, nothing more.
pub trait StreamBody {
    /// Bytes it takes on the stream.
    fn wire_len(&self) -> usize;
    /// Bytes mixed into the trace fingerprint (empty if the body has none).
    fn trace_bytes(&self) -> &[u8];
}

impl StreamBody for Vec<u8> {
    fn wire_len(&self) -> usize {
        self.len()
    }
    fn trace_bytes(&self) -> &[u8] {
        self
    }
}

/// A [`SwimNode`](super::SwimNode) stream: bytes, or with `--skip-wire` an
/// unencoded push/pull, counted at its encoded length and fingerprinted by
/// that length alone.
impl StreamBody for crate::swim::StreamContent {
    fn wire_len(&self) -> usize {
        crate::swim::StreamContent::wire_len(self)
    }
    fn trace_bytes(&self) -> &[u8] {
        match self {
            Self::Bytes(bytes) => bytes,
            Self::PushPull(_) => &[],
        }
    }
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
///   When the peer is there, the world asks [`Protocol::stream_connected`]
///   for the request's bytes as it opens the stream.
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
    /// What its streams carry (requests and replies).
    type Body: StreamBody;
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
    /// Stream `id` is connected: the bytes to write on it. Not asked when
    /// the dial is refused or hangs (a partition).
    fn stream_connected(&mut self, id: StreamId) -> Self::Body;
    /// The outcome of the stream exchange `id` this node opened.
    fn handle_stream_reply(&mut self, id: StreamId, reply: Result<Self::Body, StreamError>, now: Time);
    /// A peer opened a stream and sent `body`; the reply, or `None` to close
    /// without one.
    fn handle_stream(&mut self, from: SocketAddr, body: Self::Body, now: Time) -> Option<Self::Body>;
}
