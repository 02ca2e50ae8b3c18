//! TCP stream messages: push/pull, user messages, TCP pings and their acks,
//! and error replies.
//!
//! ```text
//! [label header]?  then either
//!   [10][len: u32 BE][version][nonce][ciphertext][tag]   (encrypted; AD = the 5
//!                                                         header bytes ++ label)
//! or the plaintext:
//!   [9]{Algo, Buf}  whose Buf inflates to [type][body]   (compressed)
//!   [type][body]
//! body: push/pull  = header{Nodes, UserStateLen, Join} + Nodes states + user state
//!       user       = header{UserMsgLen} + UserMsgLen bytes
//!       ping/ack/err = the msgpack struct
//! ```
//!
//! A stream has no outer length unless encrypted. A reader finds where a
//! message ends with a [`StreamFramer`], which walks the framing of the
//! bytes read so far (label, encryption header, msgpack values, push/pull
//! and user message headers) without decoding, decompressing or decrypting
//! anything, as Go's `readStream` / `readRemoteState` read a connection
//! piece by piece; then [`StreamDecoder::decode`] decodes the complete
//! message once.

use rmp::Marker;

use super::compress;
use super::frame;
use super::message::{self, Message, MessageType, PushPullHeader};
use super::msgpack::Reader;
use super::packet::{self, DecodeOptions, EncodeOptions, Layers};
use super::{Error, Limits};

/// A decoded stream message.
#[derive(Clone, Copy, Debug)]
pub struct StreamMessage<'a> {
    /// Label, encryption, compression (CRC is never used on streams).
    pub layers: Layers<'a>,
    /// The message.
    pub message: Message<'a>,
}

/// Reusable buffer for decompressed stream contents.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    inflated: Vec<u8>,
}

const ENCRYPT_HEADER_LEN: usize = 5;

impl StreamDecoder {
    /// A decoder with no buffer yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one stream message from the start of `buf` (decrypting in place).
    pub fn decode<'a>(&'a mut self, buf: &'a mut [u8], opts: &DecodeOptions<'_>) -> Result<StreamMessage<'a>, Error> {
        let limits = opts.limits;
        let mut layers = Layers::default();
        let (label, rest) = frame::strip_label(buf)?;
        let (label_len, start) = (label.len(), buf.len() - rest.len());
        let label_range = start - label_len..start;
        packet::check_label(&buf[label_range.clone()], opts)?;
        let keyring = opts.keyring.filter(|k| k.is_enabled());
        let first = *buf.get(start).ok_or(Error::Truncated { what: "stream message type" })?;

        let mut plain = start..buf.len();
        if first == MessageType::Encrypt as u8 {
            let keyring = keyring.ok_or(Error::NoKeys)?;
            let header = buf
                .get(start..start + ENCRYPT_HEADER_LEN)
                .ok_or(Error::Truncated { what: "encrypted stream header" })?;
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            if len > limits.max_stream {
                return Err(Error::TooLarge { what: "encrypted stream", len, limit: limits.max_stream });
            }
            let body_start = start + ENCRYPT_HEADER_LEN;
            if buf.len() - body_start < len {
                return Err(Error::Truncated { what: "encrypted stream" });
            }
            let ad = stream_ad(&buf[start..body_start], &buf[label_range.clone()]);
            let (range, version) = keyring.decrypt_in_place(&mut buf[body_start..body_start + len], ad.as_slice())?;
            layers.encryption = Some(version);
            plain = body_start + range.start..body_start + range.end;
        } else if keyring.is_some() && opts.verify_incoming {
            return Err(Error::NotEncrypted);
        }

        let buf: &'a [u8] = buf;
        layers.label = std::str::from_utf8(&buf[label_range]).map_err(|_| Error::InvalidUtf8 { field: "label" })?;
        let mut content = &buf[plain];
        if content.first() == Some(&(MessageType::Compress as u8)) {
            let (algo, data) = compress::read_compressed(&content[1..])?;
            layers.compression = Some(algo);
            self.inflated.clear();
            compress::decompress(algo, data, limits.max_stream, &mut self.inflated)?;
            content = &self.inflated;
        }
        let message = decode_stream_body(content)?;
        Ok(StreamMessage { layers, message })
    }
}

/// An encrypted stream's additional data: its 5-byte header, then the label
/// (at most 255 bytes), on the stack.
struct StreamAd {
    bytes: [u8; ENCRYPT_HEADER_LEN + frame::LABEL_MAX_LEN],
    len: usize,
}

impl StreamAd {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn stream_ad(header: &[u8], label: &[u8]) -> StreamAd {
    let mut ad = StreamAd { bytes: [0; ENCRYPT_HEADER_LEN + frame::LABEL_MAX_LEN], len: 0 };
    // Both lengths are bounded by the framing (a 5-byte header, a label
    // whose length is one byte); `take` keeps this panic-free regardless.
    for b in header.iter().take(ENCRYPT_HEADER_LEN).chain(label.iter().take(frame::LABEL_MAX_LEN)) {
        ad.bytes[ad.len] = *b;
        ad.len += 1;
    }
    ad
}

/// How far a stream message is read ([`StreamFramer::advance`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The first `len` bytes are one whole stream message (its label header
    /// included): hand them to the decoder.
    Complete {
        /// Bytes of the message.
        len: usize,
    },
    /// The message goes on: read at least `at_least` more bytes (exactly
    /// that many once a length is known: an encrypted stream, a user
    /// message, a push/pull's user state, a msgpack string or binary).
    Incomplete {
        /// Bytes still missing at the least (1 or more).
        at_least: usize,
    },
}

/// Where the framer is in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Before the label header and the type byte.
    Start,
    /// Walking `pending` msgpack values from `pos`; then `then`.
    Values { pending: usize, then: AfterValues },
    /// The message ends at this offset.
    EndsAt(usize),
}

/// What follows a run of msgpack values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterValues {
    /// The message ends.
    End,
    /// They were a push/pull header, starting at this offset: its node
    /// states and user state follow.
    PushPullHeader(usize),
    /// They were a push/pull's node states: its user state of this many
    /// bytes follows.
    UserState(usize),
    /// They were a user message header, starting at this offset: the
    /// message's bytes follow.
    UserHeader(usize),
}

/// Finds where one stream message ends, from the bytes read so far, without
/// decoding or decrypting them (the driver's buffer is only read): a driver
/// reads from the connection, calls [`StreamFramer::advance`] with
/// everything read so far, and reads more until [`Framing::Complete`].
/// Each call resumes where the last stopped, so reading a message in many
/// pieces costs one pass over it.
///
/// Go 0.2.2 reads the same framing from the connection (`readStream`: the
/// type byte, an encrypted message's 4-byte length, a compressed message's
/// msgpack struct; `readRemoteState`: the push/pull header, `Nodes` node
/// states, `UserStateLen` bytes; `readUserMsg`: the header, `UserMsgLen`
/// bytes).
///
/// # Errors
/// - [`Error::TooLarge`] once the message is known to exceed
///   [`Limits::max_stream`] (Go's `maxPushStateBytes`, 20 MiB): a claimed
///   encrypted length, counts or lengths that cannot fit, or more bytes read
///   without an end. The reader stops there.
/// - [`Error::UnknownMessageType`], [`Error::UnexpectedMessageType`],
///   [`Error::EmptyLabel`], [`Error::MsgpackMarker`] and the msgpack errors
///   of a push/pull or user message header: bytes that are no stream
///   message.
///
/// The framer does not check the label, keys or content: the decoder does.
#[derive(Clone, Debug)]
pub struct StreamFramer {
    limits: Limits,
    stage: Stage,
    /// Where the message proper starts (after the label header).
    start: usize,
    /// Bytes walked so far.
    pos: usize,
}

impl StreamFramer {
    /// A framer for a new stream message.
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer { limits, stage: Stage::Start, start: 0, pos: 0 }
    }

    /// Frames `buf`, every byte of the stream read so far (the same bytes as
    /// at the last call, and maybe more). See [`StreamFramer`].
    pub fn advance(&mut self, buf: &[u8]) -> Result<Framing, Error> {
        loop {
            match self.stage {
                Stage::Start => {
                    if let Some(need) = self.start(buf)? {
                        return Ok(Framing::Incomplete { at_least: need });
                    }
                }
                Stage::EndsAt(end) => {
                    return Ok(match end.checked_sub(buf.len()) {
                        Some(missing) if missing > 0 => Framing::Incomplete { at_least: missing },
                        _ => Framing::Complete { len: end },
                    });
                }
                Stage::Values { pending: 0, then } => self.after_values(buf, then)?,
                Stage::Values { pending, then } => match element(&buf[self.pos.min(buf.len())..])? {
                    Element::Missing(need) => {
                        // The element ends `need` bytes past what was read
                        // at the least (exactly, once its length is read).
                        self.check_len(buf.len().saturating_add(need))?;
                        return Ok(Framing::Incomplete { at_least: need });
                    }
                    Element::Whole { len, children } => {
                        self.pos += len;
                        let pending = pending - 1 + children;
                        // Each value takes a byte at least: a count that
                        // cannot fit is refused before any is read.
                        self.check_len(self.pos.saturating_add(pending))?;
                        self.stage = Stage::Values { pending, then };
                    }
                },
            }
        }
    }

    /// Reads the label header and the type byte; the bytes missing, if any.
    fn start(&mut self, buf: &[u8]) -> Result<Option<usize>, Error> {
        let Some(&first) = buf.first() else { return Ok(Some(1)) };
        let start = if first == MessageType::HasLabel as u8 {
            let Some(&len) = buf.get(1) else { return Ok(Some(1)) };
            if len == 0 {
                return Err(Error::EmptyLabel);
            }
            2 + usize::from(len)
        } else {
            0
        };
        let Some(&kind) = buf.get(start) else { return Ok(Some(start + 1 - buf.len())) };
        self.start = start;
        self.pos = start + 1;
        self.stage = match MessageType::from_byte(kind)? {
            MessageType::Encrypt => {
                let Some(header) = buf.get(start + 1..start + ENCRYPT_HEADER_LEN) else {
                    return Ok(Some(start + ENCRYPT_HEADER_LEN - buf.len()));
                };
                let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
                if len > self.limits.max_stream {
                    return Err(Error::TooLarge { what: "encrypted stream", len, limit: self.limits.max_stream });
                }
                Stage::EndsAt(start + ENCRYPT_HEADER_LEN + len)
            }
            MessageType::PushPull => Stage::Values { pending: 1, then: AfterValues::PushPullHeader(self.pos) },
            MessageType::User => Stage::Values { pending: 1, then: AfterValues::UserHeader(self.pos) },
            MessageType::Compound | MessageType::HasCrc | MessageType::HasLabel => {
                return Err(Error::UnexpectedMessageType(kind));
            }
            // A compressed message's `{Algo, Buf}`, or a ping, ack, error…
            _ => Stage::Values { pending: 1, then: AfterValues::End },
        };
        Ok(None)
    }

    /// The values of a run are all read: what comes next.
    fn after_values(&mut self, buf: &[u8], then: AfterValues) -> Result<(), Error> {
        let pos = self.pos;
        // The header's bytes (`at..pos`) were walked in this same call.
        let header = |at: usize| buf.get(at..pos).ok_or(Error::Truncated { what: "stream header" });
        self.stage = match then {
            AfterValues::End => Stage::EndsAt(pos),
            AfterValues::PushPullHeader(at) => {
                let header = PushPullHeader::read(&mut Reader::new(header(at)?))?;
                self.check_len(pos.saturating_add(header.nodes))?;
                Stage::Values { pending: header.nodes, then: AfterValues::UserState(header.user_state_len) }
            }
            AfterValues::UserState(len) => Stage::EndsAt(pos.saturating_add(len)),
            AfterValues::UserHeader(at) => {
                let len = message::read_user_msg_header(&mut Reader::new(header(at)?))?;
                Stage::EndsAt(pos.saturating_add(len))
            }
        };
        if let Stage::EndsAt(end) = self.stage {
            self.check_len(end)?;
        }
        Ok(())
    }

    /// Refuses a message that would reach offset `end`, past the limit.
    fn check_len(&self, end: usize) -> Result<(), Error> {
        let len = end.saturating_sub(self.start);
        if len > self.limits.max_stream {
            return Err(Error::TooLarge { what: "stream", len, limit: self.limits.max_stream });
        }
        Ok(())
    }
}

/// One msgpack element at the start of a buffer.
enum Element {
    /// It takes `len` bytes and heads `children` values (an array's items,
    /// a map's keys and values).
    Whole { len: usize, children: usize },
    /// At least this many more bytes are needed to have it whole.
    Missing(usize),
}

/// The element at the start of `buf`, sized from its marker and length
/// field (the same table as `Reader::skip`).
fn element(buf: &[u8]) -> Result<Element, Error> {
    let Some(&byte) = buf.first() else { return Ok(Element::Missing(1)) };
    // A length field of `width` bytes after the marker.
    let field = |width: usize| -> Option<usize> {
        let b = buf.get(1..1 + width)?;
        Some(b.iter().fold(0usize, |n, &x| (n << 8) | usize::from(x)))
    };
    let sized = |header: usize, len: usize, children: usize| {
        let len = header.saturating_add(len);
        match len.checked_sub(buf.len()) {
            Some(missing) if missing > 0 => Element::Missing(missing),
            _ => Element::Whole { len, children },
        }
    };
    let with_field = |width: usize, extra: usize, f: &dyn Fn(usize) -> (usize, usize)| match field(width) {
        Some(n) => {
            let (payload, children) = f(n);
            sized(1 + width + extra, payload, children)
        }
        None => Element::Missing(1 + width - buf.len()),
    };
    Ok(match Marker::from_u8(byte) {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => sized(1, 0, 0),
        Marker::U8 | Marker::I8 => sized(1, 1, 0),
        Marker::U16 | Marker::I16 => sized(1, 2, 0),
        Marker::U32 | Marker::I32 | Marker::F32 => sized(1, 4, 0),
        Marker::U64 | Marker::I64 | Marker::F64 => sized(1, 8, 0),
        Marker::FixStr(n) => sized(1, usize::from(n), 0),
        Marker::Str8 | Marker::Bin8 => with_field(1, 0, &|n| (n, 0)),
        Marker::Str16 | Marker::Bin16 => with_field(2, 0, &|n| (n, 0)),
        Marker::Str32 | Marker::Bin32 => with_field(4, 0, &|n| (n, 0)),
        Marker::FixArray(n) => sized(1, 0, usize::from(n)),
        Marker::Array16 => with_field(2, 0, &|n| (0, n)),
        Marker::Array32 => with_field(4, 0, &|n| (0, n)),
        Marker::FixMap(n) => sized(1, 0, 2 * usize::from(n)),
        Marker::Map16 => with_field(2, 0, &|n| (0, 2 * n)),
        Marker::Map32 => with_field(4, 0, &|n| (0, n.saturating_mul(2))),
        Marker::FixExt1 => sized(2, 1, 0),
        Marker::FixExt2 => sized(2, 2, 0),
        Marker::FixExt4 => sized(2, 4, 0),
        Marker::FixExt8 => sized(2, 8, 0),
        Marker::FixExt16 => sized(2, 16, 0),
        // Length, then the type byte, then the data.
        Marker::Ext8 => with_field(1, 1, &|n| (n, 0)),
        Marker::Ext16 => with_field(2, 1, &|n| (n, 0)),
        Marker::Ext32 => with_field(4, 1, &|n| (n, 0)),
        Marker::Reserved => return Err(Error::MsgpackMarker(byte)),
    })
}

/// Decodes `[type][body]` of a stream (user messages carry a length header here).
fn decode_stream_body(content: &[u8]) -> Result<Message<'_>, Error> {
    let (&kind, body) = content.split_first().ok_or(Error::Truncated { what: "stream message type" })?;
    match MessageType::from_byte(kind)? {
        MessageType::User => {
            let mut r = Reader::new(body);
            let len = message::read_user_msg_header(&mut r)?;
            let rest = r.rest();
            if len > rest.len() {
                return Err(Error::Truncated { what: "user message" });
            }
            Ok(Message::User(&rest[..len]))
        }
        other => Message::decode_body(other, body),
    }
}

/// Appends `[type][body]` of a stream message (user messages get the length
/// header Go's `sendUserMsg` writes).
fn write_stream_body(msg: &Message<'_>, out: &mut Vec<u8>) {
    match msg {
        Message::User(payload) => {
            out.push(MessageType::User as u8);
            message::write_user_msg_header(out, payload.len());
            out.extend_from_slice(payload);
        }
        other => other.encode(out),
    }
}

/// Builds a stream message as Go's `rawSendMsgStream` does: compression (when
/// asked, always kept, as Go does for streams), then encryption with the 5-byte
/// header (and label) as additional data, with the label header in front.
/// `opts.crc` and `opts.force_compression` are ignored: streams carry no CRC
/// and always keep the compressed form. Appends to `out`; on error (a label
/// over 255 bytes, [`Error::NoKeys`], a message over 4 GiB) `out` is left
/// as it was.
pub fn encode_stream(msg: &Message<'_>, opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let encoded = encode_stream_at(msg, opts, out);
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

fn encode_stream_at(msg: &Message<'_>, opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    frame::write_label(out, opts.label)?;
    // Encrypted: `[10][len]`, then `[version][nonce]`, the plaintext written
    // straight after and encrypted in place (a push/pull can be megabytes).
    let encrypted = match &opts.encryption {
        Some(encryption) => {
            let header_at = out.len();
            out.push(MessageType::Encrypt as u8);
            out.extend_from_slice(&[0; ENCRYPT_HEADER_LEN - 1]);
            Some((encryption, header_at, encryption.begin(out)?))
        }
        None => None,
    };
    match opts.compression {
        Some(algo) => {
            let mut body = Vec::new();
            write_stream_body(msg, &mut body);
            compress::write_compressed(out, algo, &body);
        }
        None => write_stream_body(msg, out),
    }
    if let Some((encryption, header_at, body_start)) = encrypted {
        let len = encryption.version.encrypted_len(out.len() - body_start);
        let len32 =
            u32::try_from(len).map_err(|_| Error::TooLarge { what: "stream", len, limit: u32::MAX as usize })?;
        out[header_at + 1..header_at + ENCRYPT_HEADER_LEN].copy_from_slice(&len32.to_be_bytes());
        let ad = stream_ad(&out[header_at..header_at + ENCRYPT_HEADER_LEN], opts.label.as_bytes());
        encryption.finish(ad.as_slice(), out, body_start);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::compress::Compression;
    use crate::wire::message::{Ack, PushNodeState, PushPull};
    use crate::wire::{Encryption, EncryptionVersion, Keyring};

    #[test]
    fn stream_messages_round_trip_through_every_layer() {
        let ring = Keyring::new(&[&[1; 16]], Some(&[2; 24])).unwrap();
        let mut states = Vec::new();
        PushNodeState { name: "n1", addr: &[10, 0, 0, 1], port: 1, ..Default::default() }.write(&mut states);
        let msgs = [
            Message::PushPull(PushPull::from_encoded(false, 1, &states, b"state")),
            Message::User(b"hello over tcp"),
            Message::Ack(Ack { seq_no: 9, payload: &[] }),
        ];
        for msg in msgs {
            for compression in [None, Some(Compression::Lzw)] {
                for version in [None, Some(EncryptionVersion::V0), Some(EncryptionVersion::V1)] {
                    let encryption = version.map(|version| Encryption { keyring: &ring, version, nonce: [4; 12] });
                    for label in ["", "dc1"] {
                        let mut out = Vec::new();
                        let enc = EncodeOptions { compression, encryption, label, ..Default::default() };
                        encode_stream(&msg, &enc, &mut out).unwrap();
                        let dec = DecodeOptions {
                            keyring: Some(&ring),
                            verify_incoming: encryption.is_some(),
                            label,
                            ..Default::default()
                        };
                        let mut sd = StreamDecoder::new();
                        let got = sd.decode(&mut out, &dec).unwrap();
                        assert_eq!(got.message, msg);
                        assert_eq!(got.layers.compression, compression);
                        assert_eq!(got.layers.encryption, version);
                        assert_eq!(got.layers.label, label);
                    }
                }
            }
        }
    }

    /// Every stream message the core sends, through every layer.
    fn every_stream(ring: &Keyring) -> Vec<Vec<u8>> {
        let mut states = Vec::new();
        for i in 0..40u8 {
            let name = format!("node-{i}");
            PushNodeState { name: &name, addr: &[10, 0, 0, i], port: 7946, meta: &[i; 7], ..Default::default() }
                .write(&mut states);
        }
        let user_state = vec![7u8; 300];
        let big_user = vec![3u8; 70_000];
        let msgs = [
            Message::PushPull(PushPull::from_encoded(true, 40, &states, &user_state)),
            Message::PushPull(PushPull::from_encoded(false, 0, &[], &[])),
            Message::User(b"hello over tcp"),
            Message::User(&big_user),
            Message::Ack(Ack { seq_no: 9, payload: &[1, 2, 3] }),
            Message::Ping(crate::wire::Ping { seq_no: 3, node: "n", ..Default::default() }),
            Message::Err(crate::wire::ErrResp { error: "remote says no" }),
        ];
        let mut out = Vec::new();
        for msg in msgs {
            for compression in [None, Some(Compression::Lzw)] {
                for encryption in [
                    None,
                    Some(crate::wire::Encryption { keyring: ring, version: EncryptionVersion::V1, nonce: [7; 12] }),
                ] {
                    for label in ["", "dc1"] {
                        let mut bytes = Vec::new();
                        let enc = EncodeOptions { compression, encryption, label, ..Default::default() };
                        encode_stream(&msg, &enc, &mut bytes).unwrap();
                        out.push(bytes);
                    }
                }
            }
        }
        out
    }

    /// Read a few bytes at a time, a stream is incomplete until its last
    /// byte and complete at exactly its length, whatever follows; the bytes
    /// asked for never go past its end; resuming agrees with starting over.
    #[test]
    fn the_framer_finds_the_end_of_every_stream_message() {
        let ring = Keyring::new(&[], Some(&[2; 16])).unwrap();
        for msg in every_stream(&ring) {
            let mut with_next = msg.clone();
            with_next.extend_from_slice(&[MessageType::Ping as u8, 0x80, 0xff, 0xff]);
            let mut framer = StreamFramer::new(Limits::default());
            let mut read = 0;
            let steps = [1, 3, 64, 1000];
            for step in steps.iter().cycle() {
                let prefix = &with_next[..read.min(with_next.len())];
                let got = framer.advance(prefix).unwrap();
                assert_eq!(StreamFramer::new(Limits::default()).advance(prefix).unwrap(), got, "resumed vs fresh");
                match got {
                    Framing::Complete { len } => {
                        assert_eq!(len, msg.len(), "complete at exactly its length");
                        assert!(read >= msg.len());
                        break;
                    }
                    Framing::Incomplete { at_least } => {
                        assert!(read < msg.len(), "incomplete with {read} of {} bytes", msg.len());
                        assert!(at_least >= 1 && read + at_least <= msg.len(), "asks {at_least} at {read}");
                        // Reads may run past the end, into the next message.
                        read += at_least.max(*step);
                    }
                }
            }
            // The decoder agrees on what the framer framed.
            let mut framed = msg.clone();
            let dec = DecodeOptions { keyring: Some(&ring), label: "", skip_label_check: true, ..Default::default() };
            StreamDecoder::new().decode(&mut framed, &dec).unwrap();
        }
    }

    /// Lengths are known ahead where the framing says them: an encrypted
    /// stream's, a user message's, a push/pull's user state.
    #[test]
    fn the_framer_asks_for_exactly_what_a_length_says() {
        let ring = Keyring::new(&[], Some(&[2; 16])).unwrap();
        let mut enc = Vec::new();
        let encryption =
            Some(crate::wire::Encryption { keyring: &ring, version: EncryptionVersion::V1, nonce: [7; 12] });
        encode_stream(&Message::User(&[5; 1000]), &EncodeOptions { encryption, ..Default::default() }, &mut enc)
            .unwrap();
        let mut framer = StreamFramer::new(Limits::default());
        assert_eq!(framer.advance(&enc[..5]).unwrap(), Framing::Incomplete { at_least: enc.len() - 5 });

        let mut user = Vec::new();
        encode_stream(&Message::User(&[5; 1000]), &EncodeOptions::default(), &mut user).unwrap();
        let header = user.len() - 1000;
        let mut framer = StreamFramer::new(Limits::default());
        assert_eq!(framer.advance(&user[..header]).unwrap(), Framing::Incomplete { at_least: 1000 });

        let mut pp = Vec::new();
        let push_pull = Message::PushPull(PushPull::from_encoded(false, 0, &[], &[9; 5000]));
        encode_stream(&push_pull, &EncodeOptions::default(), &mut pp).unwrap();
        let mut framer = StreamFramer::new(Limits::default());
        assert_eq!(framer.advance(&pp[..pp.len() - 5000]).unwrap(), Framing::Incomplete { at_least: 5000 });
    }

    /// Over the limit is refused as soon as it is known, before the bytes
    /// are read: a claimed encrypted length, a node count, a user message
    /// length, a msgpack binary, or bytes that go on past it.
    #[test]
    fn the_framer_refuses_streams_over_the_limit() {
        let limits = Limits::default();
        let too_large = |bytes: &[u8], limits: Limits| {
            let got = StreamFramer::new(limits).advance(bytes);
            assert!(matches!(got, Err(Error::TooLarge { .. })), "{bytes:02x?}: {got:?}");
        };
        // Encrypted, 20 MiB + 1.
        let claim = u32::try_from(limits.max_stream + 1).unwrap().to_be_bytes();
        too_large(&[MessageType::Encrypt as u8, claim[0], claim[1], claim[2], claim[3]], limits);
        // A push/pull claiming 2^40 node states.
        let mut pp = vec![MessageType::PushPull as u8];
        PushPullHeader { nodes: 1 << 40, user_state_len: 0, join: false }.write(&mut pp);
        too_large(&pp, limits);
        // A user message of 4 GiB.
        let mut user = vec![MessageType::User as u8];
        message::write_user_msg_header(&mut user, u32::MAX as usize);
        too_large(&user, limits);
        // A compressed message whose `Buf` claims 4 GiB.
        too_large(&[MessageType::Compress as u8, 0x81, 0xa3, b'B', b'u', b'f', 0xc6, 0xff, 0xff, 0xff, 0xff], limits);
        // A map of maps that never ends, past a small limit.
        let small = Limits { max_stream: 64, ..limits };
        let mut endless = vec![MessageType::Ack as u8];
        endless.extend(std::iter::repeat_n(0x81, 100));
        too_large(&endless, small);
        // Not a stream message at all.
        assert_eq!(StreamFramer::new(limits).advance(&[200]), Err(Error::UnknownMessageType(200)));
        assert_eq!(StreamFramer::new(limits).advance(&[7, 1]), Err(Error::UnexpectedMessageType(7)));
        assert_eq!(StreamFramer::new(limits).advance(&[244, 0]), Err(Error::EmptyLabel));
    }

    #[test]
    fn incomplete_streams_say_truncated_and_huge_claims_are_refused() {
        let mut out = Vec::new();
        encode_stream(&Message::User(b"0123456789"), &EncodeOptions::default(), &mut out).unwrap();
        let mut sd = StreamDecoder::new();
        let cut = out.len() - 3;
        assert_eq!(
            sd.decode(&mut out[..cut], &DecodeOptions::default()).unwrap_err(),
            Error::Truncated { what: "user message" }
        );

        let ring = Keyring::new(&[], Some(&[2; 16])).unwrap();
        let mut hostile = vec![10, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        let dec = DecodeOptions { keyring: Some(&ring), ..Default::default() };
        assert!(matches!(sd.decode(&mut hostile, &dec), Err(Error::TooLarge { .. })));
        let mut plain = out.clone();
        let strict = DecodeOptions { keyring: Some(&ring), verify_incoming: true, ..Default::default() };
        assert_eq!(sd.decode(&mut plain, &strict).unwrap_err(), Error::NotEncrypted);
        let mut enc = Vec::new();
        encode_stream(
            &Message::User(b"x"),
            &EncodeOptions {
                encryption: Some(Encryption { keyring: &ring, version: EncryptionVersion::V1, nonce: [0; 12] }),
                ..Default::default()
            },
            &mut enc,
        )
        .unwrap();
        assert_eq!(sd.decode(&mut enc, &DecodeOptions::default()).unwrap_err(), Error::NoKeys);
    }
}
