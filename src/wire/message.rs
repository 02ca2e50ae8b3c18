//! The messages of memberlist 0.2.2, decoded by borrowing from the packet.
//!
//! Each struct mirrors a Go struct field for field (same names in the msgpack
//! map, same `omitempty`). Go's codec writes map keys sorted by name, not in
//! declaration order, so every `write` below lists its keys alphabetically. Decoding accepts keys in any order and
//! skips unknown ones, as Go's decoder does; missing keys keep zero values.

use super::Error;
use super::msgpack::{self, Reader};

/// The type byte that starts every message (Go's `messageType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Direct probe.
    Ping = 0,
    /// Probe on behalf of another member.
    IndirectPing = 1,
    /// Answer to a ping.
    Ack = 2,
    /// A member is suspected.
    Suspect = 3,
    /// A member is alive (also: join, refute).
    Alive = 4,
    /// A member is dead (also: leave).
    Dead = 5,
    /// Full state exchange (streams).
    PushPull = 6,
    /// Several messages in one packet.
    Compound = 7,
    /// Application data.
    User = 8,
    /// A compressed message.
    Compress = 9,
    /// An encrypted stream message.
    Encrypt = 10,
    /// Indirect probe failed.
    Nack = 11,
    /// CRC32 header.
    HasCrc = 12,
    /// Error relayed over a stream.
    Err = 13,
    /// memberlist 0.5 label header.
    HasLabel = 244,
}

impl MessageType {
    /// Parses a type byte.
    pub fn from_byte(b: u8) -> Result<Self, Error> {
        Ok(match b {
            0 => Self::Ping,
            1 => Self::IndirectPing,
            2 => Self::Ack,
            3 => Self::Suspect,
            4 => Self::Alive,
            5 => Self::Dead,
            6 => Self::PushPull,
            7 => Self::Compound,
            8 => Self::User,
            9 => Self::Compress,
            10 => Self::Encrypt,
            11 => Self::Nack,
            12 => Self::HasCrc,
            13 => Self::Err,
            244 => Self::HasLabel,
            _ => return Err(Error::UnknownMessageType(b)),
        })
    }
}

/// Direct probe (Go `ping`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ping<'a> {
    /// Sequence number echoed by the ack.
    pub seq_no: u32,
    /// Intended recipient's name (protects against a restart under a new name).
    pub node: &'a str,
    /// Address to answer to (omitted when empty).
    pub source_addr: &'a [u8],
    /// Port to answer to (omitted when 0).
    pub source_port: u16,
    /// Name of the sender (omitted when empty).
    pub source_node: &'a str,
}

/// Request to probe `target` on our behalf (Go `indirectPingReq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndirectPing<'a> {
    /// Sequence number the final ack/nack carries.
    pub seq_no: u32,
    /// Target IP bytes.
    pub target: &'a [u8],
    /// Target port.
    pub port: u16,
    /// Target name.
    pub node: &'a str,
    /// Whether a nack is wanted when the target does not answer.
    pub nack: bool,
    /// Address to answer to (omitted when empty).
    pub source_addr: &'a [u8],
    /// Port to answer to (omitted when 0).
    pub source_port: u16,
    /// Name of the requester (omitted when empty).
    pub source_node: &'a str,
}

/// Answer to a ping (Go `ackResp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The ping's sequence number.
    pub seq_no: u32,
    /// PingDelegate payload (nil when empty).
    pub payload: &'a [u8],
}

/// Indirect probe failed (Go `nackResp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nack {
    /// The indirect ping's sequence number.
    pub seq_no: u32,
}

/// Error relayed by the remote end of a stream (Go `errResp`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrResp<'a> {
    /// The error text.
    pub error: &'a str,
}

/// Suspicion or death of a member (Go `suspect` and `dead` have the same shape).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accusation<'a> {
    /// Incarnation the accusation is about.
    pub incarnation: u32,
    /// Accused member.
    pub node: &'a str,
    /// Accuser (for dead: equal to `node` means the member left).
    pub from: &'a str,
}

/// A member is alive (Go `alive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alive<'a> {
    /// The member's incarnation.
    pub incarnation: u32,
    /// Member name.
    pub node: &'a str,
    /// IP bytes (4 or 16).
    pub addr: &'a [u8],
    /// Port.
    pub port: u16,
    /// Delegate metadata (nil when empty).
    pub meta: &'a [u8],
    /// Versions: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: &'a [u8],
}

/// One member in a push/pull (Go `pushNodeState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushNodeState<'a> {
    /// Member name.
    pub name: &'a str,
    /// IP bytes.
    pub addr: &'a [u8],
    /// Port.
    pub port: u16,
    /// Delegate metadata.
    pub meta: &'a [u8],
    /// Incarnation.
    pub incarnation: u32,
    /// Go `NodeStateType`: 0 alive, 1 suspect, 2 dead, 3 left (kept raw).
    pub state: i64,
    /// Versions: pmin, pmax, pcur, dmin, dmax, dcur.
    pub vsn: &'a [u8],
}

/// A push/pull exchange: header, node states, user state.
///
/// The node states stay encoded: they were validated once when the message was
/// decoded and are decoded again, allocation-free, by [`PushPull::states`]. A
/// header claiming millions of nodes therefore costs nothing but the bytes sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushPull<'a> {
    /// Join (true) or periodic anti-entropy (false).
    pub join: bool,
    node_count: usize,
    encoded_states: &'a [u8],
    /// Delegate state (`UserStateLen` bytes after the node states).
    pub user_state: &'a [u8],
}

/// A decoded message. Layers (compound, compress, encrypt, CRC, label) are not
/// messages: [`super::packet`] and [`super::stream`] unwrap them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// `pingMsg`.
    Ping(Ping<'a>),
    /// `indirectPingMsg`.
    IndirectPing(IndirectPing<'a>),
    /// `ackRespMsg`.
    Ack(Ack<'a>),
    /// `nackRespMsg`.
    Nack(Nack),
    /// `errMsg`.
    Err(ErrResp<'a>),
    /// `suspectMsg`.
    Suspect(Accusation<'a>),
    /// `aliveMsg`.
    Alive(Alive<'a>),
    /// `deadMsg`.
    Dead(Accusation<'a>),
    /// `pushPullMsg`.
    PushPull(PushPull<'a>),
    /// `userMsg`: the bytes after the type byte (packets) or after the
    /// `userMsgHeader` (streams).
    User(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The type byte of this message.
    pub fn message_type(&self) -> MessageType {
        match self {
            Self::Ping(_) => MessageType::Ping,
            Self::IndirectPing(_) => MessageType::IndirectPing,
            Self::Ack(_) => MessageType::Ack,
            Self::Nack(_) => MessageType::Nack,
            Self::Err(_) => MessageType::Err,
            Self::Suspect(_) => MessageType::Suspect,
            Self::Alive(_) => MessageType::Alive,
            Self::Dead(_) => MessageType::Dead,
            Self::PushPull(_) => MessageType::PushPull,
            Self::User(_) => MessageType::User,
        }
    }

    /// Decodes one message as it appears in a packet: type byte, then body.
    /// Layer types (compound, compress, ...) are [`Error::UnexpectedMessageType`].
    pub fn decode(buf: &'a [u8]) -> Result<Self, Error> {
        let (&kind, body) = buf.split_first().ok_or(Error::Truncated { what: "message type" })?;
        Self::decode_body(MessageType::from_byte(kind)?, body)
    }

    /// Decodes a message body whose type byte was already read. A user message
    /// is the whole body; a push/pull's user state is whatever follows the node
    /// states, up to `UserStateLen`.
    pub fn decode_body(kind: MessageType, body: &'a [u8]) -> Result<Self, Error> {
        let mut r = Reader::new(body);
        let msg = match kind {
            MessageType::Ping => Self::Ping(Ping::read(&mut r)?),
            MessageType::IndirectPing => Self::IndirectPing(IndirectPing::read(&mut r)?),
            MessageType::Ack => Self::Ack(Ack::read(&mut r)?),
            MessageType::Nack => Self::Nack(Nack::read(&mut r)?),
            MessageType::Err => Self::Err(ErrResp::read(&mut r)?),
            MessageType::Suspect => Self::Suspect(Accusation::read(&mut r, "suspect")?),
            MessageType::Alive => Self::Alive(Alive::read(&mut r)?),
            MessageType::Dead => Self::Dead(Accusation::read(&mut r, "dead")?),
            MessageType::PushPull => Self::PushPull(PushPull::read(&mut r)?),
            MessageType::User => Self::User(body),
            other => return Err(Error::UnexpectedMessageType(other as u8)),
        };
        Ok(msg)
    }

    /// Appends the type byte and the body, exactly as Go's `encode()` writes
    /// them (for push/pull and user messages: the stream form).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.message_type() as u8);
        match self {
            Self::Ping(m) => m.write(out),
            Self::IndirectPing(m) => m.write(out),
            Self::Ack(m) => m.write(out),
            Self::Nack(m) => m.write(out),
            Self::Err(m) => m.write(out),
            Self::Suspect(m) | Self::Dead(m) => m.write(out),
            Self::Alive(m) => m.write(out),
            Self::PushPull(m) => m.write(out),
            Self::User(payload) => out.extend_from_slice(payload),
        }
    }

    /// The encoded message as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

// Field names are Go's, used both as map keys and in error messages.
fn key_is(key: &[u8], name: &str) -> bool {
    key == name.as_bytes()
}

impl<'a> Ping<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("ping", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = r.read_int("SeqNo")?,
                b"Node" => m.node = r.read_str("Node")?,
                b"SourceAddr" => m.source_addr = r.read_bytes("SourceAddr")?,
                b"SourcePort" => m.source_port = r.read_int("SourcePort")?,
                b"SourceNode" => m.source_node = r.read_str("SourceNode")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        let fields = 2
            + usize::from(!self.source_addr.is_empty())
            + usize::from(self.source_port != 0)
            + usize::from(!self.source_node.is_empty());
        msgpack::write_map_len(out, fields);
        msgpack::write_key(out, "Node");
        msgpack::write_raw(out, self.node.as_bytes());
        msgpack::write_key(out, "SeqNo");
        msgpack::write_uint(out, self.seq_no.into());
        write_source(out, self.source_addr, self.source_port, self.source_node);
    }
}

/// The three `omitempty` source fields shared by ping and indirect ping.
fn write_source(out: &mut Vec<u8>, addr: &[u8], port: u16, node: &str) {
    if !addr.is_empty() {
        msgpack::write_key(out, "SourceAddr");
        msgpack::write_raw(out, addr);
    }
    if !node.is_empty() {
        msgpack::write_key(out, "SourceNode");
        msgpack::write_raw(out, node.as_bytes());
    }
    if port != 0 {
        msgpack::write_key(out, "SourcePort");
        msgpack::write_uint(out, port.into());
    }
}

impl<'a> IndirectPing<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("indirect ping", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = r.read_int("SeqNo")?,
                b"Target" => m.target = r.read_bytes("Target")?,
                b"Port" => m.port = r.read_int("Port")?,
                b"Node" => m.node = r.read_str("Node")?,
                b"Nack" => m.nack = r.read_bool("Nack")?,
                b"SourceAddr" => m.source_addr = r.read_bytes("SourceAddr")?,
                b"SourcePort" => m.source_port = r.read_int("SourcePort")?,
                b"SourceNode" => m.source_node = r.read_str("SourceNode")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        let fields = 5
            + usize::from(!self.source_addr.is_empty())
            + usize::from(self.source_port != 0)
            + usize::from(!self.source_node.is_empty());
        msgpack::write_map_len(out, fields);
        msgpack::write_key(out, "Nack");
        msgpack::write_bool(out, self.nack);
        msgpack::write_key(out, "Node");
        msgpack::write_raw(out, self.node.as_bytes());
        msgpack::write_key(out, "Port");
        msgpack::write_uint(out, self.port.into());
        msgpack::write_key(out, "SeqNo");
        msgpack::write_uint(out, self.seq_no.into());
        write_source(out, self.source_addr, self.source_port, self.source_node);
        msgpack::write_key(out, "Target");
        msgpack::write_bytes(out, self.target);
    }
}

impl<'a> Ack<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("ack", |k, r| {
            match k {
                b"SeqNo" => m.seq_no = r.read_int("SeqNo")?,
                b"Payload" => m.payload = r.read_bytes("Payload")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 2);
        msgpack::write_key(out, "Payload");
        msgpack::write_bytes(out, self.payload);
        msgpack::write_key(out, "SeqNo");
        msgpack::write_uint(out, self.seq_no.into());
    }
}

impl Nack {
    fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("nack", |k, r| {
            if !key_is(k, "SeqNo") {
                return Ok(false);
            }
            m.seq_no = r.read_int("SeqNo")?;
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 1);
        msgpack::write_key(out, "SeqNo");
        msgpack::write_uint(out, self.seq_no.into());
    }
}

impl<'a> ErrResp<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("err", |k, r| {
            if !key_is(k, "Error") {
                return Ok(false);
            }
            m.error = r.read_str("Error")?;
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 1);
        msgpack::write_key(out, "Error");
        msgpack::write_raw(out, self.error.as_bytes());
    }
}

impl<'a> Accusation<'a> {
    fn read(r: &mut Reader<'a>, what: &'static str) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct(what, |k, r| {
            match k {
                b"Incarnation" => m.incarnation = r.read_int("Incarnation")?,
                b"Node" => m.node = r.read_str("Node")?,
                b"From" => m.from = r.read_str("From")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 3);
        msgpack::write_key(out, "From");
        msgpack::write_raw(out, self.from.as_bytes());
        msgpack::write_key(out, "Incarnation");
        msgpack::write_uint(out, self.incarnation.into());
        msgpack::write_key(out, "Node");
        msgpack::write_raw(out, self.node.as_bytes());
    }
}

impl<'a> Alive<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("alive", |k, r| {
            match k {
                b"Incarnation" => m.incarnation = r.read_int("Incarnation")?,
                b"Node" => m.node = r.read_str("Node")?,
                b"Addr" => m.addr = r.read_bytes("Addr")?,
                b"Port" => m.port = r.read_int("Port")?,
                b"Meta" => m.meta = r.read_bytes("Meta")?,
                b"Vsn" => m.vsn = r.read_bytes("Vsn")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 6);
        msgpack::write_key(out, "Addr");
        msgpack::write_bytes(out, self.addr);
        msgpack::write_key(out, "Incarnation");
        msgpack::write_uint(out, self.incarnation.into());
        msgpack::write_key(out, "Meta");
        msgpack::write_bytes(out, self.meta);
        msgpack::write_key(out, "Node");
        msgpack::write_raw(out, self.node.as_bytes());
        msgpack::write_key(out, "Port");
        msgpack::write_uint(out, self.port.into());
        msgpack::write_key(out, "Vsn");
        msgpack::write_bytes(out, self.vsn);
    }
}

impl<'a> PushNodeState<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let mut m = Self::default();
        r.read_struct("push node state", |k, r| {
            match k {
                b"Name" => m.name = r.read_str("Name")?,
                b"Addr" => m.addr = r.read_bytes("Addr")?,
                b"Port" => m.port = r.read_int("Port")?,
                b"Meta" => m.meta = r.read_bytes("Meta")?,
                b"Incarnation" => m.incarnation = r.read_int("Incarnation")?,
                b"State" => m.state = r.read_int("State")?,
                b"Vsn" => m.vsn = r.read_bytes("Vsn")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(m)
    }

    /// Bytes [`PushNodeState::write`] appends, counted without writing.
    pub fn encoded_len(&self) -> usize {
        use msgpack::{bytes_len, int_len, key_len, map_len_len, raw_len, uint_len};
        map_len_len(7)
            + key_len("Addr")
            + bytes_len(self.addr.len())
            + key_len("Incarnation")
            + uint_len(self.incarnation.into())
            + key_len("Meta")
            + bytes_len(self.meta.len())
            + key_len("Name")
            + raw_len(self.name.len())
            + key_len("Port")
            + uint_len(self.port.into())
            + key_len("State")
            + int_len(self.state)
            + key_len("Vsn")
            + bytes_len(self.vsn.len())
    }

    /// Appends this node state as Go's encoder writes it.
    pub fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 7);
        msgpack::write_key(out, "Addr");
        msgpack::write_bytes(out, self.addr);
        msgpack::write_key(out, "Incarnation");
        msgpack::write_uint(out, self.incarnation.into());
        msgpack::write_key(out, "Meta");
        msgpack::write_bytes(out, self.meta);
        msgpack::write_key(out, "Name");
        msgpack::write_raw(out, self.name.as_bytes());
        msgpack::write_key(out, "Port");
        msgpack::write_uint(out, self.port.into());
        msgpack::write_key(out, "State");
        msgpack::write_int(out, self.state);
        msgpack::write_key(out, "Vsn");
        msgpack::write_bytes(out, self.vsn);
    }
}

/// Go `pushPullHeader`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushPullHeader {
    /// Number of node states that follow.
    pub nodes: usize,
    /// Bytes of user state after the node states.
    pub user_state_len: usize,
    /// Join or anti-entropy.
    pub join: bool,
}

impl PushPullHeader {
    /// Reads the header; negative counts (which make Go panic) are errors.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, Error> {
        let mut h = Self::default();
        r.read_struct("push/pull header", |k, r| {
            match k {
                b"Nodes" => h.nodes = r.read_int("Nodes")?,
                b"UserStateLen" => h.user_state_len = r.read_int("UserStateLen")?,
                b"Join" => h.join = r.read_bool("Join")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(h)
    }

    /// Bytes [`PushPullHeader::write`] appends, counted without writing.
    pub fn encoded_len(&self) -> usize {
        use msgpack::{key_len, map_len_len, uint_len};
        map_len_len(3)
            + key_len("Join")
            + 1
            + key_len("Nodes")
            + uint_len(self.nodes as u64)
            + key_len("UserStateLen")
            + uint_len(self.user_state_len as u64)
    }

    /// Appends the header as Go writes it.
    pub fn write(&self, out: &mut Vec<u8>) {
        msgpack::write_map_len(out, 3);
        msgpack::write_key(out, "Join");
        msgpack::write_bool(out, self.join);
        msgpack::write_key(out, "Nodes");
        msgpack::write_uint(out, self.nodes as u64);
        msgpack::write_key(out, "UserStateLen");
        msgpack::write_uint(out, self.user_state_len as u64);
    }
}

/// Go `userMsgHeader`: the length of a user message sent over a stream.
pub fn read_user_msg_header(r: &mut Reader<'_>) -> Result<usize, Error> {
    let mut len = 0usize;
    r.read_struct("user message header", |k, r| {
        if !key_is(k, "UserMsgLen") {
            return Ok(false);
        }
        len = r.read_int("UserMsgLen")?;
        Ok(true)
    })?;
    Ok(len)
}

/// Appends Go's `userMsgHeader{UserMsgLen: len}`.
pub fn write_user_msg_header(out: &mut Vec<u8>, len: usize) {
    msgpack::write_map_len(out, 1);
    msgpack::write_key(out, "UserMsgLen");
    msgpack::write_uint(out, len as u64);
}

impl<'a> PushPull<'a> {
    /// Builds a push/pull from already-encoded node states (see
    /// [`PushNodeState::write`]); `node_count` states must be in `encoded_states`.
    pub fn from_encoded(join: bool, node_count: usize, encoded_states: &'a [u8], user_state: &'a [u8]) -> Self {
        Self { join, node_count, encoded_states, user_state }
    }

    /// Bytes of its plain stream encoding: type byte, header, node states
    /// and user state, before compression and encryption (what Go's
    /// `memberlist.size.local|remote` sample).
    pub fn plain_len(&self) -> usize {
        let header = PushPullHeader { nodes: self.node_count, user_state_len: self.user_state.len(), join: self.join };
        1 + header.encoded_len() + self.encoded_states.len() + self.user_state.len()
    }

    /// Number of node states (Go's header `Nodes`).
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The node states, decoded on the fly without allocating.
    pub fn states(&self) -> impl Iterator<Item = PushNodeState<'a>> + 'a {
        let mut r = Reader::new(self.encoded_states);
        // Validated when the message was decoded (or built by us), so a failure
        // here cannot happen for a decoded message; it ends the iteration.
        (0..self.node_count).map_while(move |_| PushNodeState::read(&mut r).ok())
    }

    fn read(r: &mut Reader<'a>) -> Result<Self, Error> {
        let header = PushPullHeader::read(r)?;
        // Every node state takes at least one byte: a cheap bound before the loop.
        if header.nodes > r.rest().len() {
            return Err(Error::Truncated { what: "push/pull node states" });
        }
        let start = r.rest();
        for _ in 0..header.nodes {
            PushNodeState::read(r)?;
        }
        let encoded_states = &start[..start.len() - r.rest().len()];
        let rest = r.rest();
        if header.user_state_len > rest.len() {
            return Err(Error::Truncated { what: "push/pull user state" });
        }
        Ok(Self {
            join: header.join,
            node_count: header.nodes,
            encoded_states,
            user_state: &rest[..header.user_state_len],
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        PushPullHeader { nodes: self.node_count, user_state_len: self.user_state.len(), join: self.join }.write(out);
        out.extend_from_slice(self.encoded_states);
        out.extend_from_slice(self.user_state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_without_source_is_a_two_entry_map() {
        let bytes = Message::Ping(Ping { seq_no: 7, node: "n", ..Default::default() }).to_vec();
        assert_eq!(bytes, [0, 0x82, 0xa4, b'N', b'o', b'd', b'e', 0xa1, b'n', 0xa5, b'S', b'e', b'q', b'N', b'o', 7]);
        assert_eq!(
            Message::decode(&bytes).unwrap(),
            Message::Ping(Ping { seq_no: 7, node: "n", ..Default::default() })
        );
    }

    #[test]
    fn every_message_round_trips() {
        let mut states = Vec::new();
        let s = PushNodeState {
            name: "a",
            addr: &[10, 0, 0, 1],
            port: 7946,
            meta: b"m",
            incarnation: 3,
            state: 2,
            vsn: &[1, 5, 2, 0, 0, 0],
        };
        s.write(&mut states);
        s.write(&mut states);
        let msgs = [
            Message::Ping(Ping {
                seq_no: 1,
                node: "x",
                source_addr: &[127, 0, 0, 1],
                source_port: 9,
                source_node: "y",
            }),
            Message::IndirectPing(IndirectPing {
                seq_no: 2,
                target: &[1, 2, 3, 4],
                port: 5,
                node: "t",
                nack: true,
                ..Default::default()
            }),
            Message::Ack(Ack { seq_no: u32::MAX, payload: b"p" }),
            Message::Nack(Nack { seq_no: 128 }),
            Message::Err(ErrResp { error: "boom" }),
            Message::Suspect(Accusation { incarnation: 65536, node: "n", from: "f" }),
            Message::Alive(Alive {
                incarnation: 1,
                node: "n",
                addr: &[0; 16],
                port: 1,
                meta: &[],
                vsn: &[1, 5, 2, 0, 0, 0],
            }),
            Message::Dead(Accusation { incarnation: 0, node: "n", from: "n" }),
            Message::PushPull(PushPull::from_encoded(true, 2, &states, b"user")),
            Message::User(b"hello"),
        ];
        for m in msgs {
            let bytes = m.to_vec();
            assert_eq!(Message::decode(&bytes).unwrap(), m, "{m:?}");
        }
        let Message::PushPull(pp) = msgs[8] else { unreachable!() };
        assert_eq!(pp.states().collect::<Vec<_>>(), vec![s, s]);
    }

    #[test]
    fn hostile_push_pull_headers_are_rejected_before_any_work() {
        let mut bytes = vec![MessageType::PushPull as u8];
        PushPullHeader { nodes: 1 << 40, user_state_len: 0, join: false }.write(&mut bytes);
        assert_eq!(Message::decode(&bytes), Err(Error::Truncated { what: "push/pull node states" }));
        let mut bytes = vec![MessageType::PushPull as u8];
        PushPullHeader { nodes: 0, user_state_len: 5, join: false }.write(&mut bytes);
        assert_eq!(Message::decode(&bytes), Err(Error::Truncated { what: "push/pull user state" }));
        // Negative Nodes (Go panics in make()).
        let bytes = [6, 0x81, 0xa5, b'N', b'o', b'd', b'e', b's', 0xff];
        assert_eq!(Message::decode(&bytes), Err(Error::OutOfRange { field: "Nodes" }));
    }

    #[test]
    fn unknown_keys_are_skipped_and_wrong_kinds_rejected() {
        // {"Zzz": [1, 2], "SeqNo": 5}
        let bytes = [11, 0x82, 0xa3, b'Z', b'z', b'z', 0x92, 1, 2, 0xa5, b'S', b'e', b'q', b'N', b'o', 5];
        assert_eq!(Message::decode(&bytes).unwrap(), Message::Nack(Nack { seq_no: 5 }));
        let bytes = [11, 0x81, 0xa5, b'S', b'e', b'q', b'N', b'o', 0xa1, b'x'];
        assert_eq!(Message::decode(&bytes), Err(Error::MsgpackType { what: "SeqNo", expected: "integer" }));
        assert_eq!(Message::decode(&[99]), Err(Error::UnknownMessageType(99)));
        assert_eq!(Message::decode(&[7, 0]), Err(Error::UnexpectedMessageType(7)));
    }

    #[test]
    fn encoded_lengths_are_counted_exactly() {
        let long = "n".repeat(40);
        let meta = vec![1u8; 300];
        for (name, addr, meta, incarnation, state) in [
            ("a", &[10u8, 0, 0, 1][..], &[][..], 0u32, 0i64),
            (long.as_str(), &[0u8; 16][..], &meta[..], u32::MAX, 3),
            ("b", &[][..], &b"m"[..], 200, -40),
        ] {
            let s = PushNodeState { name, addr, port: 7946, meta, incarnation, state, vsn: &[1, 5, 2, 0, 0, 0] };
            let mut out = Vec::new();
            s.write(&mut out);
            assert_eq!(s.encoded_len(), out.len(), "{name}");
        }
        for (nodes, user_state_len, join) in [(0, 0, false), (10_000, 70_000, true)] {
            let h = PushPullHeader { nodes, user_state_len, join };
            let mut out = Vec::new();
            h.write(&mut out);
            assert_eq!(h.encoded_len(), out.len());
        }
    }
}
