//! Checks shared by the fuzz targets of `ringswim::wire` and `ringswim::inspect`.
//!
//! Every `check_*` function takes arbitrary bytes and panics — which libFuzzer
//! reports as a crash — when:
//! - a decoder panics (it must return a typed `wire::Error` instead);
//! - a decoded message does not survive re-encoding: `Message::to_vec` then
//!   `Message::decode` must give an equal message, and the decoded messages
//!   re-encoded as a packet/stream (same compression and CRC) must decode to the
//!   same messages;
//! - encryption with the right key is not transparent: the same bytes sealed
//!   with the fuzz keyring must decode exactly as the plaintext does.
//!
//! The sealing lets the fuzzer explore everything behind the AES-GCM layer,
//! which it could never reach by mutating ciphertext.

use std::sync::OnceLock;

use ringswim::inspect::{self, DecodeRequest, EncodeRequest};
use ringswim::wire::{
    self, Compression, DecodeOptions, EncodeOptions, EncryptionVersion, Error, Keyring, Limits, Message, PacketDecoder,
    StreamDecoder, compress, crypto, frame, message, msgpack,
};
use serde_json::{Value, json};

/// The fuzz keyring's keys: primary first (AES-256), then AES-128 and AES-192.
pub const KEYS: [&[u8]; 3] = [&[0x11; 32], &[0x22; 16], &[0x33; 24]];
/// The label used when the fuzzer's bytes are wrapped in a label header.
pub const LABEL: &str = "fuzz";
const NONCE: [u8; crypto::NONCE_SIZE] = [0x5a; crypto::NONCE_SIZE];
/// Limits for decoding what the checks re-encode: the re-encoded form may be a
/// little larger than the original (e.g. an inflated payload sent uncompressed).
const ROOMY: Limits = Limits { max_packet: 1 << 24, max_packet_inflated: 1 << 24, max_stream: 1 << 24 };

/// The fuzz keyring (all three key sizes installed).
pub fn keyring() -> &'static Keyring {
    static RING: OnceLock<Keyring> = OnceLock::new();
    RING.get_or_init(|| Keyring::new(&KEYS[1..], Some(KEYS[0])).expect("valid fuzz keys"))
}

/// The decode configurations every input is tried with.
fn option_sets() -> [DecodeOptions<'static>; 5] {
    let ring = keyring();
    [
        // No keys, no label.
        DecodeOptions::default(),
        // Keys, GossipVerifyIncoming on: plaintext refused.
        DecodeOptions { keyring: Some(ring), verify_incoming: true, ..Default::default() },
        // Keys, verify off: plaintext fallback after a failed decryption.
        DecodeOptions { keyring: Some(ring), verify_incoming: false, ..Default::default() },
        // A label, but any label (or none) accepted.
        DecodeOptions { label: LABEL, skip_label_check: true, ..Default::default() },
        // A label that must match, with keys and fallback.
        DecodeOptions { keyring: Some(ring), verify_incoming: false, label: LABEL, ..Default::default() },
    ]
}

/// Message-level round trip: encode, decode, compare.
pub fn check_message_round_trip(m: &Message<'_>) {
    let bytes = m.to_vec();
    let again = Message::decode(&bytes).unwrap_or_else(|e| panic!("re-encoded {m:?} fails to decode: {e:?}"));
    assert_eq!(&again, m, "message changed by re-encoding");
    if let Message::PushPull(pp) = m {
        // Node states were validated when decoded, so all of them iterate.
        assert_eq!(pp.states().count(), pp.node_count(), "push/pull states() lost node states");
    }
}

/// What a packet decoded to, owned, so two decodes can be compared.
#[derive(Debug, PartialEq)]
struct PacketOutcome {
    label: String,
    encryption: Option<EncryptionVersion>,
    crc: bool,
    compression: Option<Compression>,
    truncated: usize,
    messages: Vec<Result<Vec<u8>, Error>>,
}

impl PacketOutcome {
    /// The outcome with the outer layers (label, encryption) forgotten.
    fn inner(self) -> Self {
        Self { label: String::new(), encryption: None, ..self }
    }
}

fn decode_packet(bytes: &[u8], opts: &DecodeOptions<'_>) -> Result<PacketOutcome, Error> {
    let mut buf = bytes.to_vec();
    let mut dec = PacketDecoder::new();
    let pkt = dec.decode(&mut buf, opts)?;
    for m in pkt.messages().flatten() {
        check_message_round_trip(&m);
    }
    Ok(PacketOutcome {
        label: pkt.layers.label.to_owned(),
        encryption: pkt.layers.encryption,
        crc: pkt.layers.crc,
        compression: pkt.layers.compression,
        truncated: pkt.layers.truncated,
        messages: pkt.messages().map(|m| m.as_ref().map(Message::to_vec).map_err(Clone::clone)).collect(),
    })
}

/// Re-encodes the messages of a decoded packet with the same compression and
/// CRC layers and checks they decode to the same messages.
fn check_packet_reencode(out: &PacketOutcome) {
    let Ok(msgs) = out.messages.iter().cloned().collect::<Result<Vec<Vec<u8>>, Error>>() else {
        return;
    };
    let enc = EncodeOptions {
        compression: out.compression,
        force_compression: true,
        crc: out.crc,
        encryption: None,
        label: "",
    };
    let mut bytes = Vec::new();
    match wire::encode_packet(&msgs, &enc, &mut bytes) {
        Ok(()) => {}
        // A compound built from nested compounds may hold more parts, or longer
        // ones, than a single compound can carry.
        Err(Error::TooManyParts(_) | Error::PartTooLong(_)) => return,
        Err(e) => panic!("encode_packet of decoded messages failed: {e:?}"),
    }
    let opts = DecodeOptions { limits: ROOMY, ..Default::default() };
    let again = decode_packet(&bytes, &opts).unwrap_or_else(|e| panic!("re-encoded packet fails to decode: {e:?}"));
    assert_eq!(again.messages, out.messages, "packet messages changed by re-encoding");
    assert_eq!(again.crc, out.crc);
    assert_eq!(again.compression, out.compression);
    assert_eq!(again.truncated, 0);
}

/// Seals `plain` as an encrypted packet with the fuzz keyring's primary key.
pub fn seal_packet(plain: &[u8], version: EncryptionVersion, label: &str) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_label(&mut out, label).expect("short label");
    keyring().encrypt_into(version, &NONCE, plain, label.as_bytes(), &mut out).expect("primary key");
    out
}

/// Seals `plain` as an encrypted stream message (`[10][len]` header as AD).
pub fn seal_stream(plain: &[u8], version: EncryptionVersion, label: &str) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_label(&mut out, label).expect("short label");
    let len = u32::try_from(version.encrypted_len(plain.len())).expect("small input");
    let mut header = vec![message::MessageType::Encrypt as u8];
    header.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&header);
    header.extend_from_slice(label.as_bytes());
    keyring().encrypt_into(version, &NONCE, plain, &header, &mut out).expect("primary key");
    out
}

/// Picks an encryption version and label from the input, so both get fuzzed.
fn wrapping(data: &[u8]) -> (EncryptionVersion, &'static str) {
    let h = data.iter().fold(data.len(), |a, &b| a.wrapping_mul(31).wrapping_add(usize::from(b)));
    let version = if h & 1 == 0 { EncryptionVersion::V0 } else { EncryptionVersion::V1 };
    (version, if h & 2 == 0 { "" } else { LABEL })
}

/// The `packet_decode` target.
pub fn check_packet(data: &[u8]) {
    for opts in option_sets() {
        if let Ok(out) = decode_packet(data, &opts) {
            check_packet_reencode(&out);
        }
    }

    // Encryption with the right key must be transparent. (A leading label
    // header would be stripped from plaintext but not from inside ciphertext.)
    let raw = decode_packet(data, &DecodeOptions::default());
    let (version, label) = wrapping(data);
    let sealed = seal_packet(data, version, label);
    if data.first() != Some(&(message::MessageType::HasLabel as u8)) && sealed.len() <= Limits::default().max_packet {
        let opts = DecodeOptions { keyring: Some(keyring()), verify_incoming: true, label, ..Default::default() };
        let wrapped = decode_packet(&sealed, &opts);
        if let Ok(w) = &wrapped {
            assert_eq!(w.encryption, Some(version));
            assert_eq!(w.label, label);
        }
        assert_eq!(
            wrapped.map(PacketOutcome::inner),
            raw.map(PacketOutcome::inner),
            "encryption layer is not transparent"
        );
    }

    let _ = inspect::decode_to_json(data, &DecodeRequest::default());
}

/// What a stream message decoded to, owned.
#[derive(Debug, PartialEq)]
struct StreamOutcome {
    label: String,
    encryption: Option<EncryptionVersion>,
    compression: Option<Compression>,
    message: Vec<u8>,
}

fn decode_stream(bytes: &[u8], opts: &DecodeOptions<'_>) -> Result<StreamOutcome, Error> {
    let mut buf = bytes.to_vec();
    let mut dec = StreamDecoder::new();
    let got = dec.decode(&mut buf, opts)?;
    assert!(!got.layers.crc, "streams carry no CRC");
    check_message_round_trip(&got.message);
    let out = StreamOutcome {
        label: got.layers.label.to_owned(),
        encryption: got.layers.encryption,
        compression: got.layers.compression,
        message: got.message.to_vec(),
    };

    // Stream-level round trip with the same compression.
    let enc = EncodeOptions { compression: out.compression, ..Default::default() };
    let mut again = Vec::new();
    wire::encode_stream(&got.message, &enc, &mut again).unwrap_or_else(|e| panic!("encode_stream failed: {e:?}"));
    let mut dec2 = StreamDecoder::new();
    let opts2 = DecodeOptions { limits: ROOMY, ..Default::default() };
    let got2 = dec2.decode(&mut again, &opts2).unwrap_or_else(|e| panic!("re-encoded stream fails to decode: {e:?}"));
    assert_eq!(got2.message, got.message, "stream message changed by re-encoding");
    assert_eq!(got2.layers.compression, out.compression);
    Ok(out)
}

/// The `stream_decode` target.
pub fn check_stream(data: &[u8]) {
    for opts in option_sets() {
        let _ = decode_stream(data, &opts);
    }

    let first = data.first().copied();
    let (version, label) = wrapping(data);
    let sealed = seal_stream(data, version, label);
    if first != Some(message::MessageType::HasLabel as u8) && first != Some(message::MessageType::Encrypt as u8) {
        let raw = decode_stream(data, &DecodeOptions::default());
        let opts = DecodeOptions { keyring: Some(keyring()), verify_incoming: true, label, ..Default::default() };
        let wrapped = decode_stream(&sealed, &opts);
        if let Ok(w) = &wrapped {
            assert_eq!(w.encryption, Some(version));
            assert_eq!(w.label, label);
        }
        let strip = |o: StreamOutcome| StreamOutcome { label: String::new(), encryption: None, ..o };
        assert_eq!(wrapped.map(strip), raw.map(strip), "stream encryption layer is not transparent");
    }

    let _ = inspect::decode_to_json(data, &DecodeRequest { stream: true, ..Default::default() });
}

/// The `message_decode` target: one message, and the wire primitives below it.
pub fn check_message(data: &[u8]) {
    if let Ok(m) = Message::decode(data) {
        check_message_round_trip(&m);
    }

    // msgpack reader: skipping values walks the input without panicking.
    let mut r = msgpack::Reader::new(data);
    while !r.rest().is_empty() && r.skip().is_ok() {}
    let _ = message::PushPullHeader::read(&mut msgpack::Reader::new(data));
    let _ = message::read_user_msg_header(&mut msgpack::Reader::new(data));

    // Framing.
    if let Ok(mut parts) = frame::CompoundParts::parse(data) {
        let announced = parts.announced();
        let got = parts.by_ref().count();
        assert_eq!(got + parts.truncated(), announced);
    }
    let _ = frame::strip_crc(data);
    let _ = frame::strip_label(data);

    // Compression, bounded output, and round trip of what inflated.
    const LIMIT: usize = 1 << 16;
    let mut inputs: Vec<(Compression, &[u8])> = vec![(Compression::Lzw, data), (Compression::Lz4, data)];
    if let Ok(found) = compress::read_compressed(data) {
        inputs.push(found);
    }
    for (algo, input) in inputs {
        let mut out = Vec::new();
        let res = compress::decompress(algo, input, LIMIT, &mut out);
        assert!(out.len() <= LIMIT + 1, "{algo:?} produced {} bytes past a limit of {LIMIT}", out.len());
        if res.is_ok() {
            let packed = compress::compress(algo, &out);
            let mut again = Vec::new();
            compress::decompress(algo, &packed, LIMIT, &mut again)
                .unwrap_or_else(|e| panic!("{algo:?} round trip: {e:?}"));
            assert_eq!(again, out, "{algo:?} round trip changed the data");
        }
    }

    // Decryption of arbitrary bytes.
    let mut buf = data.to_vec();
    let _ = keyring().decrypt_in_place(&mut buf, b"");
}

/// The encode configurations `json_encode` tries.
fn encode_requests() -> Vec<EncodeRequest> {
    let key = |k: &[u8]| vec![k.to_vec()];
    vec![
        EncodeRequest::default(),
        EncodeRequest {
            compression: Some(Compression::Lzw),
            crc: true,
            keys: key(KEYS[0]),
            encryption_version: EncryptionVersion::V1,
            label: LABEL.into(),
            stream: false,
        },
        EncodeRequest {
            compression: Some(Compression::Lz4),
            keys: key(KEYS[1]),
            encryption_version: EncryptionVersion::V0,
            ..Default::default()
        },
        EncodeRequest { stream: true, ..Default::default() },
        EncodeRequest {
            compression: Some(Compression::Lzw),
            keys: key(KEYS[2]),
            encryption_version: EncryptionVersion::V0,
            label: "x".into(),
            stream: true,
            crc: false,
        },
        EncodeRequest { compression: Some(Compression::Lz4), keys: key(KEYS[0]), stream: true, ..Default::default() },
    ]
}

/// The `json_encode` target: arbitrary bytes parsed as JSON, encoded, and —
/// when that succeeds — decoded back; decoding's output encodes and decodes to
/// itself.
pub fn check_json(data: &[u8]) {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for req in encode_requests() {
        let Ok(bytes) = inspect::encode_from_json(&input, &req) else {
            continue;
        };
        let dreq = DecodeRequest { keys: req.keys.clone(), label: None, stream: req.stream };
        let first = match inspect::decode_to_json(&bytes, &dreq) {
            Ok(v) => v,
            // Encoding has no size limit; decoding does.
            Err(inspect::InspectError::Wire(Error::TooLarge { .. })) => continue,
            Err(e) => panic!("encode_from_json output fails to decode ({req:?}): {e}"),
        };
        let label = if req.label.is_empty() { Value::Null } else { Value::from(req.label.as_str()) };
        assert_eq!(first["label"], label);
        assert_eq!(first["encrypted"], !req.keys.is_empty());
        assert_eq!(first["compressed"], req.compression.is_some());
        let again = inspect::encode_from_json(&json!({ "messages": first["messages"].clone() }), &req)
            .unwrap_or_else(|e| panic!("decoded JSON does not encode: {e}"));
        let second = inspect::decode_to_json(&again, &dreq).unwrap_or_else(|e| panic!("second decode failed: {e}"));
        assert_eq!(second["messages"], first["messages"], "JSON round trip changed the messages");
    }
}
