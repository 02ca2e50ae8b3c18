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
        let packet = dec.decode(&mut buf, &opts)?;
        let layers = packet.layers;
        let messages = packet.into_messages()?;
        Ok(packet_json(&layers, messages.iter().map(message_json).collect()))
    }
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
    let owned: Vec<OwnedMessage> = list
        .iter()
        .enumerate()
        .map(|(i, m)| OwnedMessage::parse(m).map_err(|e| bad(format!("messages[{i}]: {e}"))))
        .collect::<Result<_, _>>()?;
    if owned.is_empty() {
        return Err(bad("no messages"));
    }
    let keyring = keyring_from(&req.keys)?;
    let opts = wire::EncodeOptions {
        compression: req.compression,
        force_compression: true,
        crc: req.crc,
        encryption: keyring.as_ref().map(|k| (k, req.encryption_version)),
        label: &req.label,
    };
    let mut out = Vec::new();
    if req.stream {
        let [one] = owned.as_slice() else {
            return Err(bad("a stream carries exactly one message"));
        };
        wire::encode_stream(&one.as_message(), &opts, &mut out)?;
    } else {
        if owned.len() > wire::frame::MAX_COMPOUND_PARTS_FOR_GO {
            return Err(bad(format!(
                "{} messages: a compound of more than {} parts is mis-decoded by Go memberlist 0.2.2",
                owned.len(),
                wire::frame::MAX_COMPOUND_PARTS_FOR_GO
            )));
        }
        let encoded: Vec<Vec<u8>> = owned.iter().map(|m| m.as_message().to_vec()).collect();
        wire::encode_packet(&encoded, &opts, &mut out)?;
    }
    Ok(out)
}

/// A message parsed from JSON, owning its bytes until it is encoded. The slots
/// hold the fields of whichever message `kind` is; `parse` and `as_message`
/// assign them the same way per type.
#[derive(Debug)]
struct OwnedMessage {
    kind: String,
    strings: [String; 3],
    bytes: [Vec<u8>; 3],
    ints: [u64; 4],
    flag: bool,
    state_count: usize,
}

/// Reads the `fields` object of one message, remembering which keys were used
/// so that unknown (misspelt) ones are reported.
struct Fields<'v> {
    map: &'v Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'v> Fields<'v> {
    fn get(&mut self, name: &'static str) -> Option<&'v Value> {
        self.used.push(name);
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn string(&mut self, name: &'static str) -> Result<String, String> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(v) => v.as_str().map(str::to_owned).ok_or_else(|| format!("{name}: expected a string")),
        }
    }

    fn hex(&mut self, name: &'static str) -> Result<Vec<u8>, String> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(v) => {
                let s = v.as_str().ok_or_else(|| format!("{name}: expected a hex string"))?;
                hex::decode(s).map_err(|e| format!("{name}: {e}"))
            }
        }
    }

    fn int(&mut self, name: &'static str, max: u64) -> Result<u64, String> {
        match self.get(name) {
            None => Ok(0),
            Some(v) => v.as_u64().filter(|n| *n <= max).ok_or_else(|| format!("{name}: expected an integer 0..={max}")),
        }
    }

    fn signed(&mut self, name: &'static str) -> Result<i64, String> {
        match self.get(name) {
            None => Ok(0),
            Some(v) => v.as_i64().ok_or_else(|| format!("{name}: expected an integer")),
        }
    }

    fn bool(&mut self, name: &'static str) -> Result<bool, String> {
        match self.get(name) {
            None => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| format!("{name}: expected true or false")),
        }
    }

    fn finish(self) -> Result<(), String> {
        match self.map.keys().find(|k| !self.used.contains(&k.as_str())) {
            Some(unknown) => Err(format!("unknown field {unknown:?}")),
            None => Ok(()),
        }
    }
}

const U16: u64 = u16::MAX as u64;
const U32: u64 = u32::MAX as u64;

impl OwnedMessage {
    fn parse(v: &Value) -> Result<Self, String> {
        let kind = v.get("type").and_then(Value::as_str).ok_or("missing \"type\"")?.to_owned();
        let empty = Map::new();
        let map = match v.get("fields") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err("\"fields\" must be an object".into()),
        };
        let mut f = Fields { map, used: Vec::new() };
        let mut m = OwnedMessage {
            kind,
            strings: Default::default(),
            bytes: Default::default(),
            ints: [0; 4],
            flag: false,
            state_count: 0,
        };
        match m.kind.as_str() {
            "ping" => {
                m.ints[0] = f.int("SeqNo", U32)?;
                m.strings[0] = f.string("Node")?;
                m.bytes[0] = f.hex("SourceAddr")?;
                m.ints[1] = f.int("SourcePort", U16)?;
                m.strings[1] = f.string("SourceNode")?;
            }
            "indirect_ping" => {
                m.ints[0] = f.int("SeqNo", U32)?;
                m.bytes[1] = f.hex("Target")?;
                m.ints[2] = f.int("Port", U16)?;
                m.strings[0] = f.string("Node")?;
                m.flag = f.bool("Nack")?;
                m.bytes[0] = f.hex("SourceAddr")?;
                m.ints[1] = f.int("SourcePort", U16)?;
                m.strings[1] = f.string("SourceNode")?;
            }
            "ack" => {
                m.ints[0] = f.int("SeqNo", U32)?;
                m.bytes[0] = f.hex("Payload")?;
            }
            "nack" => m.ints[0] = f.int("SeqNo", U32)?,
            "err" => m.strings[0] = f.string("Error")?,
            "suspect" | "dead" => {
                m.ints[0] = f.int("Incarnation", U32)?;
                m.strings[0] = f.string("Node")?;
                m.strings[1] = f.string("From")?;
            }
            "alive" => {
                m.ints[0] = f.int("Incarnation", U32)?;
                m.strings[0] = f.string("Node")?;
                m.bytes[0] = f.hex("Addr")?;
                m.ints[1] = f.int("Port", U16)?;
                m.bytes[1] = f.hex("Meta")?;
                m.bytes[2] = f.hex("Vsn")?;
            }
            "user" => m.bytes[0] = f.hex("Payload")?,
            "push_pull" => m.parse_push_pull(&mut f)?,
            other => return Err(format!("unknown message type {other:?}")),
        }
        f.finish()?;
        Ok(m)
    }

    fn parse_push_pull(&mut self, f: &mut Fields<'_>) -> Result<(), String> {
        self.flag = f.bool("Join")?;
        self.bytes[0] = f.hex("UserState")?;
        let states = match f.get("NodeStates") {
            None => &[][..],
            Some(v) => v.as_array().map(Vec::as_slice).ok_or("NodeStates: expected an array")?,
        };
        for (i, s) in states.iter().enumerate() {
            let map = s.as_object().ok_or_else(|| format!("NodeStates[{i}]: expected an object"))?;
            let mut sf = Fields { map, used: Vec::new() };
            let (name, addr, port, meta, incarnation, state, vsn) = (
                sf.string("Name")?,
                sf.hex("Addr")?,
                sf.int("Port", U16)? as u16,
                sf.hex("Meta")?,
                sf.int("Incarnation", U32)? as u32,
                sf.signed("State")?,
                sf.hex("Vsn")?,
            );
            sf.finish().map_err(|e| format!("NodeStates[{i}]: {e}"))?;
            PushNodeState { name: &name, addr: &addr, port, meta: &meta, incarnation, state, vsn: &vsn }
                .write(&mut self.bytes[1]);
        }
        self.state_count = states.len();
        // The counts are derived from the contents; given ones must agree.
        if f.get("Nodes").is_some() && f.int("Nodes", u64::MAX)? != states.len() as u64 {
            return Err("Nodes does not match the number of NodeStates".into());
        }
        if f.get("UserStateLen").is_some() && f.int("UserStateLen", u64::MAX)? != self.bytes[0].len() as u64 {
            return Err("UserStateLen does not match the length of UserState".into());
        }
        Ok(())
    }

    fn as_message(&self) -> Message<'_> {
        let [s0, s1, _] = &self.strings;
        let [b0, b1, b2] = &self.bytes;
        let [i0, i1, i2, _] = self.ints;
        match self.kind.as_str() {
            "ping" => Message::Ping(Ping {
                seq_no: i0 as u32,
                node: s0,
                source_addr: b0,
                source_port: i1 as u16,
                source_node: s1,
            }),
            "indirect_ping" => Message::IndirectPing(IndirectPing {
                seq_no: i0 as u32,
                target: b1,
                port: i2 as u16,
                node: s0,
                nack: self.flag,
                source_addr: b0,
                source_port: i1 as u16,
                source_node: s1,
            }),
            "ack" => Message::Ack(Ack { seq_no: i0 as u32, payload: b0 }),
            "nack" => Message::Nack(Nack { seq_no: i0 as u32 }),
            "err" => Message::Err(ErrResp { error: s0 }),
            "suspect" => Message::Suspect(Accusation { incarnation: i0 as u32, node: s0, from: s1 }),
            "dead" => Message::Dead(Accusation { incarnation: i0 as u32, node: s0, from: s1 }),
            "alive" => {
                Message::Alive(Alive { incarnation: i0 as u32, node: s0, addr: b0, port: i1 as u16, meta: b1, vsn: b2 })
            }
            "push_pull" => Message::PushPull(PushPull::from_encoded(self.flag, self.state_count, b1, b0)),
            _ => Message::User(b0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
