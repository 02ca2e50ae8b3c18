//! What the world needs of a node beyond the driver contract
//! ([`swim::Protocol`](crate::swim::Protocol), which the world drives with
//! [`swim::drain`](crate::swim::drain)): how a node is built ([`NodeCtx`]) and
//! how its stream bodies are counted ([`StreamBody`]).
//!
//! In the world, `StreamError::Timeout` comes at exactly the request's
//! deadline, `Refused` one link delay after the request when no node has the
//! address (a round trip when the node is dead), and `Closed` when
//! `handle_stream` returned `None` (see [`Link`](super::Link) for how loss
//! and delay reach streams).

use std::net::SocketAddr;

use crate::swim::Time;

pub use crate::swim::{Protocol, StreamError, StreamId, StreamRequest, Transmit};

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
