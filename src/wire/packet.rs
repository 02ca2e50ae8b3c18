//! UDP packets: the layers around messages, in Go's order.
//!
//! Sending: messages → compound (2+ messages) → compress → CRC → encrypt →
//! label header. Receiving undoes it: label → decrypt → CRC → then compound and
//! compress layers, which may nest (Go's `handleCommand` recurses).
//!
//! Decoding is zero-copy where the bytes allow it: decryption works in place in
//! the caller's buffer, and messages borrow from it. Only decompression makes
//! new bytes; those live in a [`PacketDecoder`]'s reusable buffers.

use std::ops::Range;

use super::compress::{self, Compression};
use super::crypto::{Encryption, EncryptionVersion, Keyring};
use super::frame::{self, CompoundParts};
use super::message::{Message, MessageType};
use super::{Error, Limits};

/// How to treat incoming packets.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions<'k> {
    /// Keys to decrypt with; `None` or an empty keyring means plaintext.
    pub keyring: Option<&'k Keyring>,
    /// Go's `GossipVerifyIncoming`: with keys installed, refuse plaintext. When
    /// false, a packet that fails to decrypt is read as plaintext (Go's upgrade
    /// path from unencrypted to encrypted clusters).
    pub verify_incoming: bool,
    /// The label this node uses ("" for none). The packet's label must equal it
    /// unless `skip_label_check` is set.
    pub label: &'k str,
    /// memberlist 0.5 `SkipInboundLabelCheck`.
    pub skip_label_check: bool,
    /// Size limits.
    pub limits: Limits,
}

/// What the outer layers of a packet were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layers<'a> {
    /// The label carried ("" for none).
    pub label: &'a str,
    /// Encryption version, if the packet was encrypted.
    pub encryption: Option<EncryptionVersion>,
    /// Whether a valid CRC header was present.
    pub crc: bool,
    /// The first compression algorithm met, if any layer was compressed.
    pub compression: Option<Compression>,
    /// Compound parts dropped because the packet ended before them (Go's `trunc`).
    pub truncated: usize,
}

/// A decoded packet: its layers and one result per message (a bad part of a
/// compound does not spoil the others, as in Go). It borrows the packet and
/// the [`PacketDecoder`]'s buffers; each message is decoded as
/// [`Packet::messages`] reaches it, so reading one allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// The layers that were unwrapped.
    pub layers: Layers<'a>,
    packet: &'a [u8],
    inflated: &'a [Vec<u8>],
    leaves: &'a [Leaf],
}

impl<'a> Packet<'a> {
    /// The messages, in order: each decoded, or why its part was unreadable.
    pub fn messages(&self) -> impl ExactSizeIterator<Item = Result<Message<'a>, Error>> + 'a {
        self.parts().map(|part| part.map(|(msg, _)| msg))
    }

    /// The messages, in order, each decoded with the bytes it was decoded
    /// from (type byte and body, opened: decrypted and decompressed), or
    /// why its part was unreadable. The bytes are what a receiving thread
    /// copies to hand a message to the thread that handles it
    /// ([`Message::decode`] reads them again there without allocating).
    pub fn parts(&self) -> impl ExactSizeIterator<Item = Result<(Message<'a>, &'a [u8]), Error>> + 'a {
        let (packet, inflated) = (self.packet, self.inflated);
        self.leaves.iter().map(move |leaf| {
            let bytes = match leaf {
                Leaf::Bytes { source: None, range } => &packet[range.clone()],
                Leaf::Bytes { source: Some(i), range } => &inflated[*i][range.clone()],
                Leaf::Failed(err) => return Err(err.clone()),
            };
            Message::decode(bytes).map(|msg| (msg, bytes))
        })
    }

    /// All messages, or the first error among them.
    pub fn into_messages(self) -> Result<Vec<Message<'a>>, Error> {
        self.messages().collect()
    }
}

/// Reusable state for decoding packets: decompression buffers, and the list of
/// where each message lies. Keep one per receive loop.
#[derive(Debug, Default)]
pub struct PacketDecoder {
    inflated: Vec<Vec<u8>>,
    inflated_used: usize,
    leaves: Vec<Leaf>,
}

/// A message found while unwrapping: where its bytes are (in the packet, or in
/// an inflated buffer), or why the compound part that held it was unreadable.
#[derive(Clone, Debug)]
enum Leaf {
    Bytes { source: Option<usize>, range: Range<usize> },
    Failed(Error),
}

/// Deepest nesting of compound/compress layers accepted (Go sends at most
/// compress → compound; anything deeper is hostile).
const MAX_NESTING: usize = 4;

impl PacketDecoder {
    /// A decoder with no buffers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a packet. `packet` is modified in place when it is decrypted.
    pub fn decode<'a>(&'a mut self, packet: &'a mut [u8], opts: &DecodeOptions<'_>) -> Result<Packet<'a>, Error> {
        if packet.len() > opts.limits.max_packet {
            return Err(Error::TooLarge { what: "packet", len: packet.len(), limit: opts.limits.max_packet });
        }
        let mut layers = Layers::default();

        // Label: split the header off; check it against ours.
        let (label, rest) = frame::strip_label(packet)?;
        let (label_len, body_start) = (label.len(), packet.len() - rest.len());
        let label_range = body_start - label_len..body_start;
        check_label(&packet[label_range.clone()], opts)?;

        // Encryption: the packet body is [version][nonce][ciphertext][tag].
        let mut plain = body_start..packet.len();
        if let Some(keyring) = opts.keyring.filter(|k| k.is_enabled()) {
            let (label_part, body) = packet.split_at_mut(body_start);
            let ad = &label_part[label_range.clone()];
            // Go's fallback needs the ciphertext intact after a failed attempt.
            let backup = (!opts.verify_incoming).then(|| body.to_vec());
            match keyring.decrypt_in_place(body, ad) {
                Ok((range, version)) => {
                    layers.encryption = Some(version);
                    plain = body_start + range.start..body_start + range.end;
                }
                Err(err) => match backup {
                    Some(original) => body.copy_from_slice(&original),
                    None => return Err(err),
                },
            }
        }

        // CRC header.
        let mut start = plain.start;
        if frame::strip_crc(&packet[plain.clone()])?.is_some() {
            layers.crc = true;
            start += frame::CRC_HEADER_LEN;
        }
        let packet: &'a [u8] = packet;
        layers.label = std::str::from_utf8(&packet[label_range]).map_err(|_| Error::InvalidUtf8 { field: "label" })?;

        // Compound and compress layers, then the messages.
        self.inflated_used = 0;
        self.leaves.clear();
        let mut budget = opts.limits.max_packet_inflated;
        self.walk(packet, None, start..plain.end, 0, &mut layers, &mut budget)?;
        Ok(Packet { layers, packet, inflated: &self.inflated[..self.inflated_used], leaves: &self.leaves })
    }

    fn bytes<'s>(&'s self, packet: &'s [u8], source: Option<usize>) -> &'s [u8] {
        match source {
            None => packet,
            Some(i) => &self.inflated[i],
        }
    }

    fn walk(
        &mut self,
        packet: &[u8],
        source: Option<usize>,
        range: Range<usize>,
        depth: usize,
        layers: &mut Layers<'_>,
        budget: &mut usize,
    ) -> Result<(), Error> {
        if depth > MAX_NESTING {
            return Err(Error::NestingTooDeep);
        }
        // Field borrows, not `self.bytes()`: `buf` borrows `inflated` while
        // `leaves` grows.
        let buf = match source {
            None => &packet[range.clone()],
            Some(i) => &self.inflated[i][range.clone()],
        };
        let Some(&kind) = buf.first() else {
            return Err(Error::Truncated { what: "message type" });
        };
        match kind {
            k if k == MessageType::Compound as u8 => {
                let mut parts = CompoundParts::parse(&buf[1..])?;
                // The common case, a compound of plain messages, is recorded
                // without allocating; nested layers take the general path below.
                let is_layer = |p: &[u8]| matches!(p.first(), Some(&t) if t == MessageType::Compound as u8 || t == MessageType::Compress as u8);
                if !parts.clone().any(is_layer) {
                    for p in parts.by_ref() {
                        let span = span_in(&range, buf, p);
                        self.leaves.push(if p.is_empty() {
                            Leaf::Failed(Error::Truncated { what: "message type" })
                        } else {
                            Leaf::Bytes { source, range: span }
                        });
                    }
                    layers.truncated += parts.truncated();
                    return Ok(());
                }
                let spans: Vec<Range<usize>> = parts.by_ref().map(|p| span_in(&range, buf, p)).collect();
                layers.truncated += parts.truncated();
                // As in Go, an unreadable part (bad compression, too deep) spoils
                // only itself; the other parts are still delivered.
                for span in spans {
                    if let Err(err) = self.walk(packet, source, span, depth + 1, layers, budget) {
                        self.leaves.push(Leaf::Failed(err));
                    }
                }
            }
            k if k == MessageType::Compress as u8 => {
                let (algo, data) = compress::read_compressed(&buf[1..])?;
                layers.compression.get_or_insert(algo);
                let data_range = span_in(&range, buf, data);
                let mut out = self.take_buffer();
                let data = &self.bytes(packet, source)[data_range];
                let res = compress::decompress(algo, data, *budget, &mut out);
                let slot = self.inflated_used;
                self.inflated_used += 1;
                let len = out.len();
                if slot < self.inflated.len() {
                    self.inflated[slot] = out;
                } else {
                    self.inflated.push(out);
                }
                res?;
                *budget -= len;
                self.walk(packet, Some(slot), 0..len, depth + 1, layers, budget)?;
            }
            _ => self.leaves.push(Leaf::Bytes { source, range }),
        }
        Ok(())
    }

    fn take_buffer(&mut self) -> Vec<u8> {
        let mut buf = self.inflated.get_mut(self.inflated_used).map(std::mem::take).unwrap_or_default();
        buf.clear();
        buf
    }
}

/// Where `inner` (a sub-slice of `outer`, which itself lies at `outer_range` of
/// its buffer) lies in that buffer. Ranges instead of slices let the decoder
/// add buffers while it walks.
fn span_in(outer_range: &Range<usize>, outer: &[u8], inner: &[u8]) -> Range<usize> {
    // Every caller passes a sub-slice; should one not, an empty span is safe.
    match (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize) {
        Some(offset) if offset + inner.len() <= outer.len() => {
            let start = outer_range.start + offset;
            start..start + inner.len()
        }
        _ => outer_range.start..outer_range.start,
    }
}

/// The label rule shared by packets and streams: equal to ours unless the
/// check is skipped (memberlist 0.5's `SkipInboundLabelCheck`).
pub(super) fn check_label(got: &[u8], opts: &DecodeOptions<'_>) -> Result<(), Error> {
    if opts.skip_label_check || got == opts.label.as_bytes() {
        return Ok(());
    }
    Err(Error::LabelMismatch { expected: opts.label.to_owned(), got: String::from_utf8_lossy(got).into_owned() })
}

/// How to build outgoing packets and stream messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct EncodeOptions<'k> {
    /// Compress the (compound) payload. Go only keeps the compressed form of
    /// a packet when it is smaller; so does [`seal_packet`] unless
    /// `force_compression`. Streams always keep it.
    pub compression: Option<Compression>,
    /// Keep the compressed form even when it is not smaller.
    pub force_compression: bool,
    /// Add a CRC header (Go does for peers speaking protocol 5; never on
    /// streams).
    pub crc: bool,
    /// Encrypt with the keyring's primary key, in this format version, with
    /// this nonce.
    pub encryption: Option<Encryption<'k>>,
    /// Label header and additional data ("" for none).
    pub label: &'k str,
}

/// Builds one packet from encoded messages (each with its type byte), appending
/// it to `out`. Two or more messages go into one compound; at most 255 parts
/// (Go peers: keep to [`frame::MAX_COMPOUND_PARTS_FOR_GO`]). The compound is
/// built in a temporary buffer: a sender that cares writes the payload
/// itself and calls [`seal_packet`].
pub fn encode_packet<M: AsRef<[u8]>>(messages: &[M], opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    match messages {
        [one] => seal_packet(one.as_ref(), opts, out),
        _ => {
            let mut compound = Vec::new();
            frame::write_compound(&mut compound, messages)?;
            seal_packet(&compound, opts, out)
        }
    }
}

/// Wraps one payload (a message or a compound, type byte first) in the
/// packet layers, as Go's `rawSendMsgPacket` does: compression (kept when
/// smaller, unless forced), CRC, encryption (the label is the additional
/// data), label header. Appends the datagram to `out`, writing every layer
/// in place: nothing is allocated once `out` has room for the datagram.
///
/// Errors: [`Error::LabelTooLong`], [`Error::NoKeys`] (encryption asked with
/// an empty keyring); `out` is left as it was.
pub fn seal_packet(payload: &[u8], opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    let sealed = seal_packet_at(payload, opts, out);
    if sealed.is_err() {
        out.truncate(start);
    }
    sealed
}

fn seal_packet_at(payload: &[u8], opts: &EncodeOptions<'_>, out: &mut Vec<u8>) -> Result<(), Error> {
    frame::write_label(out, opts.label)?;
    let body_start = match &opts.encryption {
        Some(encryption) => Some(encryption.begin(out)?),
        None => None,
    };
    let crc_at = out.len();
    if opts.crc {
        frame::reserve_crc(out);
    }
    let payload_at = out.len();
    if let Some(algo) = opts.compression {
        compress::write_compressed(out, algo, payload);
        if !opts.force_compression && out.len() - payload_at >= payload.len() {
            out.truncate(payload_at);
            out.extend_from_slice(payload);
        }
    } else {
        out.extend_from_slice(payload);
    }
    if opts.crc {
        frame::fill_crc(&mut out[crc_at..]);
    }
    if let (Some(encryption), Some(body_start)) = (&opts.encryption, body_start) {
        encryption.finish(opts.label.as_bytes(), out, body_start);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::message::{Ack, Nack};

    fn msgs() -> Vec<Vec<u8>> {
        vec![
            Message::Ack(Ack { seq_no: 1, payload: b"x" }).to_vec(),
            Message::Nack(Nack { seq_no: 2 }).to_vec(),
            Message::User(&[b'u'; 300]).to_vec(),
        ]
    }

    fn decode_all(mut bytes: Vec<u8>, opts: &DecodeOptions<'_>) -> (Layers<'static>, Vec<Vec<u8>>) {
        let mut dec = PacketDecoder::new();
        let pkt = dec.decode(&mut bytes, opts).unwrap();
        let layers = Layers { label: if pkt.layers.label.is_empty() { "" } else { "L" }, ..pkt.layers };
        (layers, pkt.into_messages().unwrap().iter().map(Message::to_vec).collect())
    }

    #[test]
    fn every_layer_combination_round_trips() {
        let ring = Keyring::new(&[], Some(&[7; 32])).unwrap();
        for compression in [None, Some(Compression::Lzw), Some(Compression::Lz4)] {
            for crc in [false, true] {
                for version in [None, Some(EncryptionVersion::V0), Some(EncryptionVersion::V1)] {
                    let encryption = version.map(|version| Encryption { keyring: &ring, version, nonce: [9; 12] });
                    for label in ["", "L"] {
                        let enc = EncodeOptions { compression, force_compression: true, crc, encryption, label };
                        let mut out = Vec::new();
                        encode_packet(&msgs(), &enc, &mut out).unwrap();
                        let dec = DecodeOptions {
                            keyring: Some(&ring),
                            verify_incoming: encryption.is_some(),
                            label,
                            ..Default::default()
                        };
                        let (layers, got) = decode_all(out, &dec);
                        assert_eq!(got, msgs());
                        assert_eq!(layers.crc, crc);
                        assert_eq!(layers.compression, compression);
                        assert_eq!(layers.encryption, version);
                    }
                }
            }
        }
    }

    #[test]
    fn plaintext_fallback_only_without_verify_incoming() {
        let ring = Keyring::new(&[], Some(&[7; 16])).unwrap();
        let mut out = Vec::new();
        encode_packet(&msgs()[..1], &EncodeOptions::default(), &mut out).unwrap();
        let lenient = DecodeOptions { keyring: Some(&ring), verify_incoming: false, ..Default::default() };
        assert_eq!(decode_all(out.clone(), &lenient).1, msgs()[..1]);
        let strict = DecodeOptions { keyring: Some(&ring), verify_incoming: true, ..Default::default() };
        let mut dec = PacketDecoder::new();
        assert!(dec.decode(&mut out, &strict).is_err());
    }

    #[test]
    fn a_bad_compound_part_spoils_only_itself() {
        let good = Message::Nack(Nack { seq_no: 3 }).to_vec();
        let mut packet = Vec::new();
        frame::write_compound(&mut packet, &[good.clone(), vec![], vec![9, 0xc1], good.clone()]).unwrap();
        let mut dec = PacketDecoder::new();
        let messages: Vec<_> = dec.decode(&mut packet, &DecodeOptions::default()).unwrap().messages().collect();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0], Ok(Message::Nack(Nack { seq_no: 3 })));
        assert_eq!(messages[1], Err(Error::Truncated { what: "message type" }));
        assert!(messages[2].is_err());
        assert_eq!(messages[3], Ok(Message::Nack(Nack { seq_no: 3 })));
    }

    #[test]
    fn compress_without_buf_is_an_error_not_a_panic() {
        // {"Algo": 0, "BPu": 102} — no Buf at all (found by fuzzing).
        let mut packet = vec![9, 0x82, 0xa4, b'A', b'l', b'g', b'o', 0, 0xa3, b'B', b'P', b'u', 0x66];
        let mut dec = PacketDecoder::new();
        assert_eq!(dec.decode(&mut packet, &DecodeOptions::default()).unwrap_err(), Error::Decompress { algo: "lzw" });
    }

    #[test]
    fn label_must_match() {
        let mut out = Vec::new();
        encode_packet(&msgs()[..1], &EncodeOptions { label: "a", ..Default::default() }, &mut out).unwrap();
        let mut dec = PacketDecoder::new();
        let other = DecodeOptions { label: "b", ..Default::default() };
        assert!(matches!(dec.decode(&mut out.clone(), &other), Err(Error::LabelMismatch { .. })));
        let none = DecodeOptions::default();
        assert!(matches!(dec.decode(&mut out.clone(), &none), Err(Error::LabelMismatch { .. })));
        let skip = DecodeOptions { skip_label_check: true, ..Default::default() };
        assert_eq!(dec.decode(&mut out, &skip).unwrap().layers.label, "a");
    }

    #[test]
    fn nested_layers_are_bounded() {
        // compress(compound(compress(compound(...)))) deeper than allowed.
        let mut inner = Message::Nack(Nack { seq_no: 1 }).to_vec();
        for _ in 0..6 {
            let mut c = Vec::new();
            frame::write_compound(&mut c, &[inner.clone()]).unwrap();
            let mut z = Vec::new();
            compress::write_compressed(&mut z, Compression::Lzw, &c);
            inner = z;
        }
        let mut dec = PacketDecoder::new();
        let packet = dec.decode(&mut inner, &DecodeOptions::default()).unwrap();
        assert_eq!(packet.into_messages().unwrap_err(), Error::NestingTooDeep);
    }

    #[test]
    fn decompression_budget_is_shared_by_all_layers() {
        let zeros = Message::User(&[0u8; 60_000]).to_vec();
        let mut z = Vec::new();
        compress::write_compressed(&mut z, Compression::Lzw, &zeros);
        let mut packet = Vec::new();
        frame::write_compound(&mut packet, &[z.clone(), z]).unwrap();
        let mut dec = PacketDecoder::new();
        let messages: Vec<_> = dec.decode(&mut packet, &DecodeOptions::default()).unwrap().messages().collect();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].is_ok(), "the first part fits the budget");
        assert!(matches!(messages[1], Err(Error::TooLarge { .. })), "{:?}", messages[1]);
    }
}
