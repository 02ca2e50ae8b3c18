//! One TCP stream exchange as a state machine, shared by both backends:
//! what to do next on the connection (write these bytes, read more, close),
//! without touching a socket. The [`Shard`](super::shard::Shard) owns every
//! [`Conn`] and feeds its outcome to the node's core.
//!
//! Go memberlist opens one connection per exchange (`net.go`):
//! - **dialled** by us for a [`StreamRequest`]: connect, write the request
//!   ([`Core::stream_connected`](crate::swim::Core::stream_connected)), then
//!   read one stream message back if the kind expects a reply (push/pull
//!   state, a fallback ping's ack), framed by [`StreamFramer`], and close;
//! - **accepted** from a peer: read one stream message, hand it to the core
//!   ([`Core::handle_stream`](crate::swim::Core::handle_stream)), write its
//!   reply if any, and close.
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use crate::swim::{StreamId, StreamKind, Time};
use crate::wire::{Framing, Limits, StreamFramer};

/// Read at least this much room at a time (Go's `bufio` default).
pub(crate) const READ_CHUNK: usize = 4096;

/// Which side of the exchange we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// We dialled, for the core's stream `id`.
    Dial { id: StreamId, kind: StreamKind },
    /// A peer dialled us from `from`.
    Serve { from: SocketAddr },
}

/// Where the exchange is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Dialling: waiting for the connection.
    Connecting,
    /// Writing `buf[written..]`.
    Writing,
    /// Reading one stream message into `buf`.
    Reading,
    /// Over: the backend closes the socket.
    Done,
}

/// What the backend does next on a connection ([`Conn::want`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Wait for the connection to be established.
    Connect,
    /// Write [`Conn::unwritten`].
    Write,
    /// Read into [`Conn::read_room`] (at least `at_least` more bytes are needed).
    Read,
    /// Close the socket and report [`Shard::conn_closed`](super::shard::Shard::conn_closed).
    Close,
}

/// How a dialled exchange ended, for the core.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DialOutcome {
    /// The reply's bytes (empty for a kind that expects none).
    Reply(Vec<u8>),
    /// The dial failed.
    Refused,
    /// The peer closed, or sent something that is no stream message.
    Closed,
}

/// One exchange on one TCP connection.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The hosted node it belongs to.
    pub node: usize,
    pub role: Role,
    pub phase: Phase,
    /// When the shard gives up on it: a dial's request deadline, an
    /// accepted stream's `tcp_timeout` from its accept.
    pub deadline: Time,
    /// Bytes to write, then bytes read.
    buf: Vec<u8>,
    /// Of `buf`, written so far (Writing) or valid so far (Reading).
    pos: usize,
    framer: StreamFramer,
}

impl Conn {
    /// An exchange we dial for `id`.
    pub fn dial(node: usize, id: StreamId, kind: StreamKind, deadline: Time) -> Conn {
        Conn::new(node, Role::Dial { id, kind }, Phase::Connecting, deadline)
    }

    /// An exchange a peer at `from` opened.
    pub fn serve(node: usize, from: SocketAddr, deadline: Time) -> Conn {
        Conn::new(node, Role::Serve { from }, Phase::Reading, deadline)
    }

    fn new(node: usize, role: Role, phase: Phase, deadline: Time) -> Conn {
        Conn { node, role, phase, deadline, buf: Vec::new(), pos: 0, framer: StreamFramer::new(Limits::default()) }
    }

    /// What the backend does next.
    pub fn want(&self) -> Want {
        match self.phase {
            Phase::Connecting => Want::Connect,
            Phase::Writing => Want::Write,
            Phase::Reading => Want::Read,
            Phase::Done => Want::Close,
        }
    }

    /// Start writing `bytes` (a dial's request, a served reply).
    pub fn start_write(&mut self, bytes: Vec<u8>) {
        self.buf = bytes;
        self.pos = 0;
        self.phase = if self.buf.is_empty() { Phase::Done } else { Phase::Writing };
    }

    /// The bytes still to write.
    pub fn unwritten(&self) -> &[u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    /// `n` more bytes were written; true once everything is.
    pub fn wrote(&mut self, n: usize) -> bool {
        self.pos = (self.pos + n).min(self.buf.len());
        self.pos == self.buf.len()
    }

    /// Switch to reading one stream message.
    pub fn start_read(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.framer = StreamFramer::new(Limits::default());
        self.phase = Phase::Reading;
    }

    /// Room to read into: at least [`READ_CHUNK`] bytes past what was read.
    pub fn read_room(&mut self) -> &mut [u8] {
        if self.buf.len() < self.pos + READ_CHUNK {
            self.buf.resize(self.pos + READ_CHUNK, 0);
        }
        &mut self.buf[self.pos..]
    }

    /// `n` bytes were read into [`Conn::read_room`]: the framing so far.
    /// An error means the bytes are no stream message (or exceed the
    /// 20 MiB limit): the exchange ends.
    pub fn read(&mut self, n: usize) -> Result<Framing, crate::wire::Error> {
        self.pos += n;
        self.framer.advance(&self.buf[..self.pos])
    }

    /// The complete message of `len` bytes, taken out of the buffer.
    pub fn take_message(&mut self, len: usize) -> Vec<u8> {
        let mut msg = std::mem::take(&mut self.buf);
        msg.truncate(len);
        self.pos = 0;
        msg
    }

    /// The exchange is over.
    pub fn finish(&mut self) {
        self.phase = Phase::Done;
        self.buf = Vec::new();
    }
}
