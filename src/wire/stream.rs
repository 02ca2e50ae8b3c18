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
//! A stream has no outer length unless encrypted, so [`StreamDecoder::decode`]
//! reports [`Error::Truncated`] while the message is incomplete: a reader keeps
//! reading (up to [`crate::wire::Limits::max_stream`]) and tries again.

use super::Error;
use super::compress;
use super::frame;
use super::message::{self, Message, MessageType};
use super::msgpack::Reader;
use super::packet::{self, DecodeOptions, EncodeOptions, Layers};

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
