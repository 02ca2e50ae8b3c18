//! Packets and streams as JSON: the contract of `ringswim decode` and
//! `ringswim encode`, which operators use on captured traffic.
//!
//! ```json
//! {"encrypted":false,"compressed":true,"crc":false,"label":null,
//!  "encryption_version":null,"compression":"lzw","truncated":0,
//!  "messages":[{"type":"ping","fields":{"SeqNo":1,"Node":"a",...}}]}
//! ```
//! Field names are Go's struct field names; every field is present. Go strings
//! are JSON strings; Go `[]byte`/`net.IP` (including `Vsn`) are lowercase hex;
//! integers and bools are JSON numbers and bools. Encoding reads the same
//! `messages` array; missing fields are zero values.
#![forbid(unsafe_code)]

use serde_json::{Map, Value, json};

use crate::wire::{
    self, Accusation, Ack, Alive, Compression, EncryptionVersion, ErrResp, IndirectPing, Keyring, Message, Nack, Ping,
    PushNodeState, PushPull,
};

/// Why a decode or encode request failed (the CLI prints it and exits 1).
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The bytes were rejected by the wire layer.
    #[error("{0}")]
    Wire(#[from] wire::Error),
    /// A key given on the command line is unusable.
    #[error("key: {0}")]
    Key(#[from] wire::KeyError),
    /// The JSON input does not describe valid messages.
    #[error("json: {0}")]
    Json(String),
    /// No key was given and the packet does not decode as plaintext, but it
    /// has the shape of an encrypted one (see [`looks_encrypted`]). Without
    /// this, an encrypted packet reads as a corrupt ping or indirect ping:
    /// version bytes 0 and 1 are also those message types.
    #[error(
        "the packet looks encrypted (encryption version {version}, {len} bytes without the label); pass its key with --key (read as plaintext: {source})"
    )]
    LooksEncrypted {
        /// The first byte, read as the encryption version.
        version: u8,
        /// Bytes after the label header: version, nonce, ciphertext, tag.
        len: usize,
        /// Why the bytes do not decode as plaintext.
        #[source]
        source: wire::Error,
    },
}

fn bad(msg: impl Into<String>) -> InspectError {
    InspectError::Json(msg.into())
}

/// Builds a keyring from keys in order: the first is the primary.
pub fn keyring_from(keys: &[Vec<u8>]) -> Result<Option<Keyring>, InspectError> {
    let Some((primary, rest)) = keys.split_first() else {
        return Ok(None);
    };
    let rest: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
    Ok(Some(Keyring::new(&rest, Some(primary))?))
}

/// What `decode` needs besides the bytes.
#[derive(Clone, Debug, Default)]
pub struct DecodeRequest {
    /// Keys to decrypt with; when any is given, the input must be encrypted.
    pub keys: Vec<Vec<u8>>,
    /// The label the input must carry; `None` accepts any label (and none).
    pub label: Option<String>,
    /// Decode one TCP stream message instead of a UDP packet.
    pub stream: bool,
}

/// Decodes a packet or stream message to the JSON object of the contract.
/// Any bad part makes the whole request fail: no partial output.
pub fn decode_to_json(bytes: &[u8], req: &DecodeRequest) -> Result<Value, InspectError> {
    let keyring = keyring_from(&req.keys)?;
    let opts = wire::DecodeOptions {
        keyring: keyring.as_ref(),
        verify_incoming: true,
        label: req.label.as_deref().unwrap_or(""),
        skip_label_check: req.label.is_none(),
        limits: wire::Limits::default(),
    };
    let mut buf = bytes.to_vec();
    if req.stream {
        let mut dec = wire::StreamDecoder::new();
        let got = dec.decode(&mut buf, &opts)?;
        Ok(packet_json(&got.layers, vec![message_json(&got.message)]))
    } else {
        let mut dec = wire::PacketDecoder::new();
        let decoded = dec.decode(&mut buf, &opts).and_then(|packet| {
            let layers = packet.layers;
            packet.into_messages().map(|messages| packet_json(&layers, messages.iter().map(message_json).collect()))
        });
        decoded.map_err(|source| match looks_encrypted(bytes) {
            // A label error is about the label, whatever follows it.
            Some(version) if keyring.is_none() && source.reason() != "label" => {
                let len = wire::frame::strip_label(bytes).map_or(bytes.len(), |(_, body)| body.len());
                InspectError::LooksEncrypted { version: version as u8, len, source }
            }
            _ => InspectError::Wire(source),
        })
    }
}

/// Whether a packet has the shape of an encrypted one (Go `encryptPayload`'s
/// output after an optional label): a version byte of 0 or 1, then room for
/// the 12-byte nonce and 16-byte tag, and for version 0 a PKCS#7-padded
/// ciphertext (a positive multiple of 16 bytes). Plaintext packets can have
/// this shape too (0 and 1 are the ping and indirect-ping types): only
/// meaningful for a packet that does not decode as plaintext.
pub fn looks_encrypted(packet: &[u8]) -> Option<EncryptionVersion> {
    let (_, body) = wire::frame::strip_label(packet).ok()?;
    use wire::crypto::{BLOCK_SIZE, NONCE_SIZE, TAG_SIZE, VERSION_SIZE};
    let version = EncryptionVersion::from_byte(*body.first()?)?;
    // At least one byte of message, as Go never encrypts an empty one.
    let ciphertext = body.len().checked_sub(VERSION_SIZE + NONCE_SIZE + TAG_SIZE).filter(|&n| n > 0)?;
    let fits = match version {
        EncryptionVersion::V0 => ciphertext % BLOCK_SIZE == 0,
        EncryptionVersion::V1 => true,
    };
    fits.then_some(version)
}

fn packet_json(layers: &wire::Layers<'_>, messages: Vec<Value>) -> Value {
    json!({
        "encrypted": layers.encryption.is_some(),
        "compressed": layers.compression.is_some(),
        "crc": layers.crc,
        "label": if layers.label.is_empty() { Value::Null } else { Value::from(layers.label) },
        "encryption_version": layers.encryption.map(|v| v as u8),
        "compression": layers.compression.map(Compression::name),
        "truncated": layers.truncated,
        "messages": messages,
    })
}

/// The contract's name for a message type.
pub fn type_name(msg: &Message<'_>) -> &'static str {
    match msg {
        Message::Ping(_) => "ping",
        Message::IndirectPing(_) => "indirect_ping",
        Message::Ack(_) => "ack",
        Message::Nack(_) => "nack",
        Message::Err(_) => "err",
        Message::Suspect(_) => "suspect",
        Message::Alive(_) => "alive",
        Message::Dead(_) => "dead",
        Message::PushPull(_) => "push_pull",
        Message::User(_) => "user",
    }
}

/// One message as `{"type": .., "fields": {..}}`.
pub fn message_json(msg: &Message<'_>) -> Value {
    let fields = match msg {
        Message::Ping(m) => json!({
            "SeqNo": m.seq_no, "Node": m.node, "SourceAddr": hex::encode(m.source_addr),
            "SourcePort": m.source_port, "SourceNode": m.source_node,
        }),
        Message::IndirectPing(m) => json!({
            "SeqNo": m.seq_no, "Target": hex::encode(m.target), "Port": m.port, "Node": m.node, "Nack": m.nack,
            "SourceAddr": hex::encode(m.source_addr), "SourcePort": m.source_port, "SourceNode": m.source_node,
        }),
        Message::Ack(m) => json!({ "SeqNo": m.seq_no, "Payload": hex::encode(m.payload) }),
        Message::Nack(m) => json!({ "SeqNo": m.seq_no }),
        Message::Err(m) => json!({ "Error": m.error }),
        Message::Suspect(m) | Message::Dead(m) => {
            json!({ "Incarnation": m.incarnation, "Node": m.node, "From": m.from })
        }
        Message::Alive(m) => json!({
            "Incarnation": m.incarnation, "Node": m.node, "Addr": hex::encode(m.addr), "Port": m.port,
            "Meta": hex::encode(m.meta), "Vsn": hex::encode(m.vsn),
        }),
        Message::PushPull(m) => {
            let states: Vec<Value> = m
                .states()
                .map(|s| {
                    json!({
                        "Name": s.name, "Addr": hex::encode(s.addr), "Port": s.port, "Meta": hex::encode(s.meta),
                        "Incarnation": s.incarnation, "State": s.state, "Vsn": hex::encode(s.vsn),
                    })
                })
                .collect();
            json!({
                "Nodes": m.node_count(), "UserStateLen": m.user_state.len(), "Join": m.join,
                "NodeStates": states, "UserState": hex::encode(m.user_state),
            })
        }
        Message::User(payload) => json!({ "Payload": hex::encode(payload) }),
    };
    json!({ "type": type_name(msg), "fields": fields })
}

/// What `encode` needs besides the messages.
#[derive(Clone, Debug, Default)]
pub struct EncodeRequest {
    /// Compress (always kept, even when not smaller: the operator asked for it).
    pub compression: Option<Compression>,
    /// Add a CRC header (packets only).
    pub crc: bool,
    /// Encrypt with the first key.
    pub keys: Vec<Vec<u8>>,
    /// Encryption format version.
    pub encryption_version: EncryptionVersion,
    /// Label header ("" for none).
    pub label: String,
    /// Build one TCP stream message instead of a UDP packet.
    pub stream: bool,
}

/// Encodes `{"messages":[...]}` into packet (or stream) bytes. Several messages
/// make one compound packet; more than 127 are refused, because Go 0.2.2
/// mis-decodes compounds of 128 parts or more.
pub fn encode_from_json(input: &Value, req: &EncodeRequest) -> Result<Vec<u8>, InspectError> {
    let list = input
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("expected an object with a \"messages\" array"))?;
    let parsed: Vec<JsonMessage> = list
        .iter()
        .enumerate()
        .map(|(i, m)| JsonMessage::parse(m).map_err(|e| bad(format!("messages[{i}]: {e}"))))
        .collect::<Result<_, _>>()?;
    let messages: Vec<Message> = parsed
        .iter()
        .enumerate()
        .map(|(i, m)| m.to_message().map_err(|e| bad(format!("messages[{i}]: {e}"))))
        .collect::<Result<_, _>>()?;
    if messages.is_empty() {
        return Err(bad("no messages"));
    }
    let keyring = keyring_from(&req.keys)?;
    let opts = wire::EncodeOptions {
        compression: req.compression,
        force_compression: true,
        crc: req.crc,
        // A fresh nonce from the OS: the wire layer draws none itself.
        encryption: keyring.as_ref().map(|keyring| wire::Encryption {
            keyring,
            version: req.encryption_version,
            nonce: rand::random(),
        }),
        label: &req.label,
    };
    let mut out = Vec::new();
    if req.stream {
        let [one] = messages.as_slice() else {
            return Err(bad("a stream carries exactly one message"));
        };
        wire::encode_stream(one, &opts, &mut out)?;
    } else {
        if messages.len() > wire::frame::MAX_COMPOUND_PARTS_FOR_GO {
            return Err(bad(format!(
                "{} messages: a compound of more than {} parts is mis-decoded by Go memberlist 0.2.2",
                messages.len(),
                wire::frame::MAX_COMPOUND_PARTS_FOR_GO
            )));
        }
        let encoded: Vec<Vec<u8>> = messages.iter().map(Message::to_vec).collect();
        wire::encode_packet(&encoded, &opts, &mut out)?;
    }
    Ok(out)
}

/// The fields each message type has (anything else in the input is a typo).
fn known_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "ping" => &["SeqNo", "Node", "SourceAddr", "SourcePort", "SourceNode"],
        "indirect_ping" => &["SeqNo", "Target", "Port", "Node", "Nack", "SourceAddr", "SourcePort", "SourceNode"],
        "ack" => &["SeqNo", "Payload"],
        "nack" => &["SeqNo"],
        "err" => &["Error"],
        "suspect" | "dead" => &["Incarnation", "Node", "From"],
        "alive" => &["Incarnation", "Node", "Addr", "Port", "Meta", "Vsn"],
        "user" => &["Payload"],
        "push_pull" => &["Nodes", "UserStateLen", "Join", "NodeStates", "UserState"],
        _ => return None,
    })
}

/// Go `[]byte` fields: hex in JSON.
const BYTE_FIELDS: [&str; 7] = ["SourceAddr", "Target", "Payload", "Addr", "Meta", "Vsn", "UserState"];
const STATE_FIELDS: [&str; 7] = ["Name", "Addr", "Port", "Meta", "Incarnation", "State", "Vsn"];

/// One JSON object of Go fields. Parsing is two-phase so the message can
/// borrow: hex fields are decoded into `bytes` first, then strings borrow from
/// the JSON and byte slices from `bytes`.
struct Fields<'v> {
    map: &'v Map<String, Value>,
    bytes: Vec<(&'static str, Vec<u8>)>,
}

impl<'v> Fields<'v> {
    fn parse(map: &'v Map<String, Value>, known: &[&'static str]) -> Result<Self, String> {
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!("unknown field {unknown:?}"));
        }
        let mut bytes = Vec::new();
        for &name in known.iter().filter(|n| BYTE_FIELDS.contains(n)) {
            let decoded = match map.get(name).filter(|v| !v.is_null()) {
                None => Vec::new(),
                Some(v) => {
                    let text = v.as_str().ok_or_else(|| format!("{name}: expected a hex string"))?;
                    hex::decode(text).map_err(|e| format!("{name}: {e}"))?
                }
            };
            bytes.push((name, decoded));
        }
        Ok(Self { map, bytes })
    }

    fn get(&self, name: &str) -> Option<&'v Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn str(&self, name: &str) -> Result<&'v str, String> {
        self.get(name).map_or(Ok(""), |v| v.as_str().ok_or_else(|| format!("{name}: expected a string")))
    }

    fn bytes(&self, name: &str) -> &[u8] {
        self.bytes.iter().find(|(n, _)| *n == name).map_or(&[], |(_, b)| b)
    }

    fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<T, String> {
        let Some(v) = self.get(name) else { return T::try_from(0).map_err(|_| name.to_owned()) };
        v.as_i64()
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| format!("{name}: expected an integer in range of Go's type"))
    }

    fn bool(&self, name: &str) -> Result<bool, String> {
        self.get(name).map_or(Ok(false), |v| v.as_bool().ok_or_else(|| format!("{name}: expected true or false")))
    }
}

/// A message parsed from JSON: its fields, plus (push/pull) its node states
/// already encoded.
struct JsonMessage<'v> {
    kind: &'v str,
    fields: Fields<'v>,
    states: Vec<u8>,
    state_count: usize,
}

impl<'v> JsonMessage<'v> {
    fn parse(v: &'v Value) -> Result<Self, String> {
        let kind = v.get("type").and_then(Value::as_str).ok_or("missing \"type\"")?;
        let known = known_fields(kind).ok_or_else(|| format!("unknown message type {kind:?}"))?;
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let map = match v.get("fields") {
            None | Some(Value::Null) => EMPTY.get_or_init(Map::new),
            Some(Value::Object(m)) => m,
            Some(_) => return Err("\"fields\" must be an object".into()),
        };
        let mut m = JsonMessage { kind, fields: Fields::parse(map, known)?, states: Vec::new(), state_count: 0 };
        if kind == "push_pull" {
            m.encode_states()?;
        }
        Ok(m)
    }

    /// Encodes `NodeStates`; checks given `Nodes`/`UserStateLen` against the contents.
    fn encode_states(&mut self) -> Result<(), String> {
        let states = match self.fields.get("NodeStates") {
            None => &[][..],
            Some(v) => v.as_array().map(Vec::as_slice).ok_or("NodeStates: expected an array")?,
        };
        for (i, s) in states.iter().enumerate() {
            let map = s.as_object().ok_or_else(|| format!("NodeStates[{i}]: expected an object"))?;
            let f = Fields::parse(map, &STATE_FIELDS).map_err(|e| format!("NodeStates[{i}]: {e}"))?;
            let state = PushNodeState {
                name: f.str("Name")?,
                addr: f.bytes("Addr"),
                port: f.int("Port")?,
                meta: f.bytes("Meta"),
                incarnation: f.int("Incarnation")?,
                state: f.int("State")?,
                vsn: f.bytes("Vsn"),
            };
            state.write(&mut self.states);
        }
        self.state_count = states.len();
        if self.fields.get("Nodes").is_some() && self.fields.int::<usize>("Nodes")? != states.len() {
            return Err("Nodes does not match the number of NodeStates".into());
        }
        let user_state_len = self.fields.bytes("UserState").len();
        if self.fields.get("UserStateLen").is_some() && self.fields.int::<usize>("UserStateLen")? != user_state_len {
            return Err("UserStateLen does not match the length of UserState".into());
        }
        Ok(())
    }

    fn to_message(&self) -> Result<Message<'_>, String> {
        let f = &self.fields;
        Ok(match self.kind {
            "ping" => Message::Ping(Ping {
                seq_no: f.int("SeqNo")?,
                node: f.str("Node")?,
                source_addr: f.bytes("SourceAddr"),
                source_port: f.int("SourcePort")?,
                source_node: f.str("SourceNode")?,
            }),
            "indirect_ping" => Message::IndirectPing(IndirectPing {
                seq_no: f.int("SeqNo")?,
                target: f.bytes("Target"),
                port: f.int("Port")?,
                node: f.str("Node")?,
                nack: f.bool("Nack")?,
                source_addr: f.bytes("SourceAddr"),
                source_port: f.int("SourcePort")?,
                source_node: f.str("SourceNode")?,
            }),
            "ack" => Message::Ack(Ack { seq_no: f.int("SeqNo")?, payload: f.bytes("Payload") }),
            "nack" => Message::Nack(Nack { seq_no: f.int("SeqNo")? }),
            "err" => Message::Err(ErrResp { error: f.str("Error")? }),
            "suspect" | "dead" => {
                let m = Accusation { incarnation: f.int("Incarnation")?, node: f.str("Node")?, from: f.str("From")? };
                if self.kind == "dead" { Message::Dead(m) } else { Message::Suspect(m) }
            }
            "alive" => Message::Alive(Alive {
                incarnation: f.int("Incarnation")?,
                node: f.str("Node")?,
                addr: f.bytes("Addr"),
                port: f.int("Port")?,
                meta: f.bytes("Meta"),
                vsn: f.bytes("Vsn"),
            }),
            "push_pull" => Message::PushPull(PushPull::from_encoded(
                f.bool("Join")?,
                self.state_count,
                &self.states,
                f.bytes("UserState"),
            )),
            _ => Message::User(f.bytes("Payload")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping_json() -> Value {
        json!({"messages": [{"type": "ping", "fields": {"SeqNo": 1, "Node": "a"}}]})
    }

    #[test]
    fn encrypted_packet_without_key_says_so() {
        for (version, label) in
            [(EncryptionVersion::V0, ""), (EncryptionVersion::V1, ""), (EncryptionVersion::V1, "blue")]
        {
            let req = EncodeRequest {
                keys: vec![vec![7; 16]],
                encryption_version: version,
                label: label.into(),
                ..Default::default()
            };
            let bytes = encode_from_json(&ping_json(), &req).unwrap();
            assert_eq!(looks_encrypted(&bytes), Some(version));
            let err = decode_to_json(&bytes, &DecodeRequest::default()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, InspectError::LooksEncrypted { .. }), "{version:?} {label:?}: {msg}");
            assert!(msg.contains("looks encrypted") && msg.contains("--key"), "{msg}");
            // With the key it decodes.
            let with_key = DecodeRequest { keys: vec![vec![7; 16]], ..Default::default() };
            assert_eq!(decode_to_json(&bytes, &with_key).unwrap()["encrypted"], true);
        }
    }

    #[test]
    fn plaintext_faults_are_not_called_encrypted() {
        let plain = encode_from_json(&ping_json(), &EncodeRequest::default()).unwrap();
        // A ping starts with type 0, the byte of encryption version 0, but
        // decodes: no guessing then.
        assert_eq!(plain[0], 0);
        assert_eq!(decode_to_json(&plain, &DecodeRequest::default()).unwrap()["messages"][0]["type"], "ping");
        // Truncated: too short to hold a nonce and a tag.
        let err = decode_to_json(&plain[..plain.len() - 1], &DecodeRequest::default()).unwrap_err();
        assert!(matches!(err, InspectError::Wire(_)), "{err}");
        // A label mismatch is reported as such.
        let req = EncodeRequest { keys: vec![vec![7; 16]], label: "blue".into(), ..Default::default() };
        let bytes = encode_from_json(&ping_json(), &req).unwrap();
        let err =
            decode_to_json(&bytes, &DecodeRequest { label: Some("red".into()), ..Default::default() }).unwrap_err();
        assert!(err.to_string().contains("label mismatch"), "{err}");
        // Version 0's ciphertext is whole AES blocks.
        let mut odd = vec![0u8; 1 + 12 + 16 + 17];
        odd[1] = 0xff;
        assert_eq!(looks_encrypted(&odd), None);
        odd.pop();
        assert_eq!(looks_encrypted(&odd), Some(EncryptionVersion::V0));
    }

    #[test]
    fn json_round_trip_through_bytes() {
        let input = json!({"messages": [
            {"type": "ping", "fields": {"SeqNo": 5, "Node": "b", "SourceAddr": "7f000001", "SourcePort": 7946, "SourceNode": "a"}},
            {"type": "alive", "fields": {"Incarnation": 2, "Node": "b", "Addr": "0a000002", "Port": 7946, "Meta": "", "Vsn": "010502000000"}},
            {"type": "user", "fields": {"Payload": "68656c6c6f"}},
        ]});
        let req = EncodeRequest {
            compression: Some(Compression::Lzw),
            crc: true,
            keys: vec![vec![9; 32]],
            label: "blue".into(),
            ..Default::default()
        };
        let bytes = encode_from_json(&input, &req).unwrap();
        let out =
            decode_to_json(&bytes, &DecodeRequest { keys: vec![vec![9; 32]], label: None, stream: false }).unwrap();
        assert_eq!(out["encrypted"], true);
        assert_eq!(out["compressed"], true);
        assert_eq!(out["crc"], true);
        assert_eq!(out["label"], "blue");
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[0]["fields"]["SourcePort"], 7946);
        assert_eq!(msgs[1]["fields"]["Vsn"], "010502000000");
        assert_eq!(msgs[2], json!({"type": "user", "fields": {"Payload": "68656c6c6f"}}));
    }

    #[test]
    fn bad_json_names_the_problem() {
        let err = |v: Value| encode_from_json(&v, &EncodeRequest::default()).unwrap_err().to_string();
        assert!(err(json!({"messages": [{"type": "ping", "fields": {"SeqNo": -1}}]})).contains("SeqNo"));
        assert!(
            err(json!({"messages": [{"type": "ping", "fields": {"Sequence": 1}}]}))
                .contains("unknown field \"Sequence\"")
        );
        assert!(err(json!({"messages": [{"type": "bogus"}]})).contains("bogus"));
        assert!(err(json!({"messages": []})).contains("no messages"));
        let many = json!({"messages": vec![json!({"type": "user", "fields": {"Payload": "00"}}); 128]});
        assert!(err(many).contains("127"));
    }
}
