//! Property tests of `ringswim::wire`:
//! - every message type, with random field values, survives `Message::to_vec`
//!   then `Message::decode`;
//! - random lists of messages survive every packet layer combination
//!   (compression × CRC × encryption version × key size × label), and single
//!   messages every stream layer combination;
//! - what is written is Go's msgpack dialect byte for byte, checked by an
//!   independent msgpack reader in this file (raw16 never str8, nil for empty
//!   byte slices, fixmap sizes that follow `omitempty`, keys sorted by name,
//!   integers in their smallest form);
//! - a seeded, bounded garbage corpus (random bytes and mutations of valid
//!   packets and streams) gets `Ok` or a typed `wire::Error`, never a panic;
//! - LZW (Go's `compress/lzw` format): what ringswim's writer
//!   (`src/wire/lzw.rs`) writes, `weezl`'s own reader reads back, for random,
//!   low-entropy, repetitive and real (compound packets, push/pull states)
//!   inputs, and so does `wire::compress::decompress` (weezl's reader behind
//!   ringswim's output limit), which also reads weezl's writer; on arbitrary
//!   and damaged streams `decompress` gives weezl's bytes or refuses as weezl
//!   does, and never more than the limit.
//!
//! Case counts keep the whole file to a few seconds in debug mode.

use std::collections::BTreeMap;

mod common;
use common::Rng;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;
#[cfg(feature = "cli")]
use ringswim::inspect;
use ringswim::wire::{
    self, Accusation, Ack, Alive, Compression, DecodeOptions, EncodeOptions, Encryption, EncryptionVersion, ErrResp,
    IndirectPing, Keyring, Layers, Limits, Message, Nack, PacketDecoder, Ping, PushNodeState, PushPull, StreamDecoder,
    msgpack,
};

// ------------------------------------------------------------ owned messages

/// A push/pull node state owning its bytes.
#[derive(Clone, Debug)]
struct OwnedState {
    name: String,
    addr: Vec<u8>,
    port: u16,
    meta: Vec<u8>,
    incarnation: u32,
    state: i64,
    vsn: Vec<u8>,
}

impl OwnedState {
    fn view(&self) -> PushNodeState<'_> {
        PushNodeState {
            name: &self.name,
            addr: &self.addr,
            port: self.port,
            meta: &self.meta,
            incarnation: self.incarnation,
            state: self.state,
            vsn: &self.vsn,
        }
    }
}

/// A message owning its bytes, so strategies can generate it.
#[derive(Clone, Debug)]
enum Owned {
    Ping { seq_no: u32, node: String, source_addr: Vec<u8>, source_port: u16, source_node: String },
    IndirectPing(Box<OwnedIndirect>),
    Ack { seq_no: u32, payload: Vec<u8> },
    Nack { seq_no: u32 },
    Err { error: String },
    Suspect { incarnation: u32, node: String, from: String },
    Alive { incarnation: u32, node: String, addr: Vec<u8>, port: u16, meta: Vec<u8>, vsn: Vec<u8> },
    Dead { incarnation: u32, node: String, from: String },
    PushPull { join: bool, states: Vec<OwnedState>, encoded: Vec<u8>, user_state: Vec<u8> },
    User(Vec<u8>),
}

#[derive(Clone, Debug)]
struct OwnedIndirect {
    seq_no: u32,
    target: Vec<u8>,
    port: u16,
    node: String,
    nack: bool,
    source_addr: Vec<u8>,
    source_port: u16,
    source_node: String,
}

impl Owned {
    fn msg(&self) -> Message<'_> {
        match self {
            Owned::Ping { seq_no, node, source_addr, source_port, source_node } => {
                Message::Ping(Ping { seq_no: *seq_no, node, source_addr, source_port: *source_port, source_node })
            }
            Owned::IndirectPing(m) => Message::IndirectPing(IndirectPing {
                seq_no: m.seq_no,
                target: &m.target,
                port: m.port,
                node: &m.node,
                nack: m.nack,
                source_addr: &m.source_addr,
                source_port: m.source_port,
                source_node: &m.source_node,
            }),
            Owned::Ack { seq_no, payload } => Message::Ack(Ack { seq_no: *seq_no, payload }),
            Owned::Nack { seq_no } => Message::Nack(Nack { seq_no: *seq_no }),
            Owned::Err { error } => Message::Err(ErrResp { error }),
            Owned::Suspect { incarnation, node, from } => {
                Message::Suspect(Accusation { incarnation: *incarnation, node, from })
            }
            Owned::Alive { incarnation, node, addr, port, meta, vsn } => {
                Message::Alive(Alive { incarnation: *incarnation, node, addr, port: *port, meta, vsn })
            }
            Owned::Dead { incarnation, node, from } => {
                Message::Dead(Accusation { incarnation: *incarnation, node, from })
            }
            Owned::PushPull { join, states, encoded, user_state } => {
                Message::PushPull(PushPull::from_encoded(*join, states.len(), encoded, user_state))
            }
            Owned::User(payload) => Message::User(payload),
        }
    }
}

// ------------------------------------------------------------ strategies

fn ascii_of_len(lens: Vec<usize>) -> impl Strategy<Value = String> {
    (prop::sample::select(lens), any::<u8>()).prop_map(|(n, c)| char::from(b' ' + c % 95).to_string().repeat(n))
}

/// Go strings: empty, short, exactly at the msgpack size boundaries, long
/// (>255 bytes), and with `big` beyond 64 KiB (raw32).
fn text(big: bool) -> BoxedStrategy<String> {
    let mut arms = vec![
        (2, Just(String::new()).boxed()),
        (6, vec(any::<char>(), 1..24).prop_map(String::from_iter).boxed()),
        (2, ascii_of_len(vec![31, 32, 33, 255, 256, 257]).boxed()),
        (2, vec(any::<char>(), 64..200).prop_map(String::from_iter).boxed()),
    ];
    if big {
        arms.push((1, ascii_of_len(vec![65_535, 65_536, 70_000]).boxed()));
    }
    Union::new_weighted(arms).boxed()
}

/// Go byte slices, with the same size classes as [`text`].
fn bytes(big: bool) -> BoxedStrategy<Vec<u8>> {
    let mut arms = vec![
        (3, Just(Vec::new()).boxed()),
        (6, vec(any::<u8>(), 1..24).boxed()),
        (
            2,
            (prop::sample::select(vec![4usize, 16, 31, 32, 255, 256]), any::<u8>())
                .prop_map(|(n, b)| vec![b; n])
                .boxed(),
        ),
        (1, vec(any::<u8>(), 256..400).boxed()),
    ];
    if big {
        arms.push((
            1,
            (prop::sample::select(vec![65_535usize, 65_536, 70_000]), any::<u8>())
                .prop_map(|(n, b)| vec![b; n])
                .boxed(),
        ));
    }
    Union::new_weighted(arms).boxed()
}

/// u32 values from every msgpack integer width.
fn u32s() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 1..128u32, 128..256u32, 256..65_536u32, 65_536..=u32::MAX, Just(u32::MAX)]
}

fn u16s() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), 1..128u16, 128..256u16, 256..=u16::MAX, Just(u16::MAX)]
}

fn i64s() -> impl Strategy<Value = i64> {
    prop_oneof![
        0..4i64,
        -40..40i64,
        -300..-30i64,
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::from(i32::MIN) - 1),
        Just(i64::from(i16::MIN) - 1),
    ]
}

fn state(big: bool) -> impl Strategy<Value = OwnedState> {
    (text(big), bytes(false), u16s(), bytes(big), u32s(), i64s(), bytes(false)).prop_map(
        |(name, addr, port, meta, incarnation, state, vsn)| OwnedState {
            name,
            addr,
            port,
            meta,
            incarnation,
            state,
            vsn,
        },
    )
}

/// Any message. `big` allows fields beyond 64 KiB (single messages and
/// streams; a compound part cannot carry them).
fn owned(big: bool) -> BoxedStrategy<Owned> {
    prop_oneof![
        (u32s(), text(big), bytes(false), u16s(), text(false)).prop_map(
            |(seq_no, node, source_addr, source_port, source_node)| Owned::Ping {
                seq_no,
                node,
                source_addr,
                source_port,
                source_node
            }
        ),
        (u32s(), bytes(false), u16s(), text(big), any::<bool>(), bytes(false), u16s(), text(false)).prop_map(
            |(seq_no, target, port, node, nack, source_addr, source_port, source_node)| {
                Owned::IndirectPing(Box::new(OwnedIndirect {
                    seq_no,
                    target,
                    port,
                    node,
                    nack,
                    source_addr,
                    source_port,
                    source_node,
                }))
            }
        ),
        (u32s(), bytes(big)).prop_map(|(seq_no, payload)| Owned::Ack { seq_no, payload }),
        u32s().prop_map(|seq_no| Owned::Nack { seq_no }),
        text(big).prop_map(|error| Owned::Err { error }),
        (u32s(), text(big), text(false)).prop_map(|(incarnation, node, from)| Owned::Suspect {
            incarnation,
            node,
            from
        }),
        (u32s(), text(big), bytes(false), u16s(), bytes(big), bytes(false)).prop_map(
            |(incarnation, node, addr, port, meta, vsn)| Owned::Alive { incarnation, node, addr, port, meta, vsn }
        ),
        (u32s(), text(false), text(big)).prop_map(|(incarnation, node, from)| Owned::Dead { incarnation, node, from }),
        (any::<bool>(), vec(state(false), 0..6), bytes(big)).prop_map(|(join, states, user_state)| {
            let mut encoded = Vec::new();
            for s in &states {
                s.view().write(&mut encoded);
            }
            Owned::PushPull { join, states, encoded, user_state }
        }),
        bytes(big).prop_map(Owned::User),
    ]
    .boxed()
}

/// Labels of 1..=255 bytes (any UTF-8).
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(any::<char>(), 1..100).prop_map(|cs| {
            let mut s = String::new();
            for c in cs {
                if s.len() + c.len_utf8() > 255 {
                    break;
                }
                s.push(c);
            }
            s
        }),
        Just("l".repeat(255)),
        Just("x".to_owned()),
    ]
}

// ------------------------------------------------------------ keys and layers

const K16: [u8; 16] = [0x16; 16];
const K24: [u8; 24] = [0x24; 24];
const K32: [u8; 32] = [0x32; 32];
const ROOMY: Limits = Limits { max_packet: 1 << 24, max_packet_inflated: 1 << 24, max_stream: 1 << 24 };

/// One sender keyring per key size, and a receiver holding all three keys
/// (primary first, so the other two are found by trying).
struct Rings {
    senders: [Keyring; 3],
    receiver: Keyring,
}

fn rings() -> Rings {
    Rings {
        senders: [
            Keyring::new(&[], Some(&K16)).unwrap(),
            Keyring::new(&[], Some(&K24)).unwrap(),
            Keyring::new(&[], Some(&K32)).unwrap(),
        ],
        receiver: Keyring::new(&[&K16, &K24], Some(&K32)).unwrap(),
    }
}

/// No encryption, then every (key size, version), each with its own nonce.
fn encryptions(r: &Rings) -> Vec<Option<Encryption<'_>>> {
    let mut out = vec![None];
    for ring in &r.senders {
        for version in [EncryptionVersion::V0, EncryptionVersion::V1] {
            out.push(Some(Encryption { keyring: ring, version, nonce: [out.len() as u8; 12] }));
        }
    }
    out
}

const COMPRESSIONS: [Option<Compression>; 3] = [None, Some(Compression::Lzw), Some(Compression::Lz4)];

// ------------------------------------------------------------ an independent msgpack reader

/// A msgpack value as written, marker included, so the dialect can be checked.
#[derive(Debug, PartialEq)]
enum Mp {
    Map(u8, Vec<(Mp, Mp)>),
    Raw(u8, Vec<u8>),
    Nil,
    Bool(bool),
    Int(u8, i128),
}

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Walk<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }

    fn be(&mut self, n: usize) -> u64 {
        self.take(n).iter().fold(0u64, |a, &b| a << 8 | u64::from(b))
    }

    fn value(&mut self) -> Mp {
        let m = self.take(1)[0];
        let n = match m {
            0x00..=0x7f => return Mp::Int(m, i128::from(m)),
            0xe0..=0xff => return Mp::Int(m, i128::from(m as i8)),
            0xc0 => return Mp::Nil,
            0xc2 => return Mp::Bool(false),
            0xc3 => return Mp::Bool(true),
            0xcc..=0xcf => return Mp::Int(m, i128::from(self.be(1 << (m - 0xcc)))),
            0xd0 => return Mp::Int(m, i128::from(self.be(1) as u8 as i8)),
            0xd1 => return Mp::Int(m, i128::from(self.be(2) as u16 as i16)),
            0xd2 => return Mp::Int(m, i128::from(self.be(4) as u32 as i32)),
            0xd3 => return Mp::Int(m, i128::from(self.be(8) as i64)),
            0x80..=0x8f => usize::from(m & 0x0f),
            0xde => self.be(2) as usize,
            0xdf => self.be(4) as usize,
            0xa0..=0xbf => return Mp::Raw(m, self.take(usize::from(m & 0x1f)).to_vec()),
            0xc4 | 0xd9 => {
                let n = self.be(1) as usize;
                return Mp::Raw(m, self.take(n).to_vec());
            }
            0xc5 | 0xda => {
                let n = self.be(2) as usize;
                return Mp::Raw(m, self.take(n).to_vec());
            }
            0xc6 | 0xdb => {
                let n = self.be(4) as usize;
                return Mp::Raw(m, self.take(n).to_vec());
            }
            other => panic!("marker 0x{other:02x} never appears in memberlist messages"),
        };
        Mp::Map(m, (0..n).map(|_| (self.value(), self.value())).collect())
    }
}

/// What Go writes for one field.
enum Want<'a> {
    Str(&'a [u8]),
    Bytes(&'a [u8]),
    Uint(u64),
    Int(i64),
    Bool(bool),
}

fn raw_marker(len: usize) -> u8 {
    match len {
        0..=31 => 0xa0 | len as u8,
        32..=65_535 => 0xda,
        _ => 0xdb,
    }
}

fn uint_marker(v: u64) -> u8 {
    match v {
        0..=127 => v as u8,
        128..=0xff => 0xcc,
        0x100..=0xffff => 0xcd,
        0x1_0000..=0xffff_ffff => 0xce,
        _ => 0xcf,
    }
}

fn int_marker(v: i64) -> u8 {
    if v >= 0 {
        uint_marker(v as u64)
    } else if v >= -32 {
        v as u8
    } else if i8::try_from(v).is_ok() {
        0xd0
    } else if i16::try_from(v).is_ok() {
        0xd1
    } else if i32::try_from(v).is_ok() {
        0xd2
    } else {
        0xd3
    }
}

fn want_value(w: &Want<'_>) -> Mp {
    match *w {
        Want::Str(s) => Mp::Raw(raw_marker(s.len()), s.to_vec()),
        Want::Bytes([]) => Mp::Nil,
        Want::Bytes(b) => Mp::Raw(raw_marker(b.len()), b.to_vec()),
        Want::Uint(v) => Mp::Int(uint_marker(v), i128::from(v)),
        Want::Int(v) => Mp::Int(int_marker(v), i128::from(v)),
        Want::Bool(b) => Mp::Bool(b),
    }
}

/// The map Go writes for a struct whose fields are `fields` (name, value,
/// omitempty): omitted empties, keys sorted by name, fixmap header.
fn want_struct(mut fields: Vec<(&str, Want<'_>, bool)>) -> Mp {
    fields.retain(|(_, w, omitempty)| {
        !omitempty
            || match w {
                Want::Str(s) | Want::Bytes(s) => !s.is_empty(),
                Want::Uint(v) => *v != 0,
                Want::Int(v) => *v != 0,
                Want::Bool(b) => *b,
            }
    });
    fields.sort_by_key(|(k, _, _)| *k);
    assert!(fields.len() < 16);
    let entries = fields.iter().map(|(k, w, _)| (want_value(&Want::Str(k.as_bytes())), want_value(w))).collect();
    Mp::Map(0x80 | fields.len() as u8, entries)
}

fn want_state(s: &OwnedState) -> Mp {
    want_struct(vec![
        ("Name", Want::Str(s.name.as_bytes()), false),
        ("Addr", Want::Bytes(&s.addr), false),
        ("Port", Want::Uint(s.port.into()), false),
        ("Meta", Want::Bytes(&s.meta), false),
        ("Incarnation", Want::Uint(s.incarnation.into()), false),
        ("State", Want::Int(s.state), false),
        ("Vsn", Want::Bytes(&s.vsn), false),
    ])
}

/// Checks `bytes` (a message from `Message::to_vec`) value by value against
/// what Go memberlist 0.2.2 writes for `o`.
fn check_go_bytes(o: &Owned, bytes: &[u8]) {
    let m = o.msg();
    assert_eq!(bytes[0], m.message_type() as u8);
    let mut w = Walk { b: bytes, pos: 1 };
    let want = match o {
        Owned::Ping { seq_no, node, source_addr, source_port, source_node } => want_struct(vec![
            ("SeqNo", Want::Uint((*seq_no).into()), false),
            ("Node", Want::Str(node.as_bytes()), false),
            ("SourceAddr", Want::Bytes(source_addr), true),
            ("SourcePort", Want::Uint((*source_port).into()), true),
            ("SourceNode", Want::Str(source_node.as_bytes()), true),
        ]),
        Owned::IndirectPing(p) => want_struct(vec![
            ("SeqNo", Want::Uint(p.seq_no.into()), false),
            ("Target", Want::Bytes(&p.target), false),
            ("Port", Want::Uint(p.port.into()), false),
            ("Node", Want::Str(p.node.as_bytes()), false),
            ("Nack", Want::Bool(p.nack), false),
            ("SourceAddr", Want::Bytes(&p.source_addr), true),
            ("SourcePort", Want::Uint(p.source_port.into()), true),
            ("SourceNode", Want::Str(p.source_node.as_bytes()), true),
        ]),
        Owned::Ack { seq_no, payload } => {
            want_struct(vec![("SeqNo", Want::Uint((*seq_no).into()), false), ("Payload", Want::Bytes(payload), false)])
        }
        Owned::Nack { seq_no } => want_struct(vec![("SeqNo", Want::Uint((*seq_no).into()), false)]),
        Owned::Err { error } => want_struct(vec![("Error", Want::Str(error.as_bytes()), false)]),
        Owned::Suspect { incarnation, node, from } | Owned::Dead { incarnation, node, from } => want_struct(vec![
            ("Incarnation", Want::Uint((*incarnation).into()), false),
            ("Node", Want::Str(node.as_bytes()), false),
            ("From", Want::Str(from.as_bytes()), false),
        ]),
        Owned::Alive { incarnation, node, addr, port, meta, vsn } => want_struct(vec![
            ("Incarnation", Want::Uint((*incarnation).into()), false),
            ("Node", Want::Str(node.as_bytes()), false),
            ("Addr", Want::Bytes(addr), false),
            ("Port", Want::Uint((*port).into()), false),
            ("Meta", Want::Bytes(meta), false),
            ("Vsn", Want::Bytes(vsn), false),
        ]),
        Owned::PushPull { join, states, user_state, .. } => {
            let header = want_struct(vec![
                ("Nodes", Want::Uint(states.len() as u64), false),
                ("UserStateLen", Want::Uint(user_state.len() as u64), false),
                ("Join", Want::Bool(*join), false),
            ]);
            assert_eq!(w.value(), header, "push/pull header");
            for (i, s) in states.iter().enumerate() {
                assert_eq!(w.value(), want_state(s), "push/pull node state {i}");
            }
            assert_eq!(w.take(bytes.len() - w.pos), &user_state[..], "push/pull user state");
            return;
        }
        Owned::User(payload) => {
            assert_eq!(&bytes[1..], &payload[..]);
            return;
        }
    };
    assert_eq!(w.value(), want, "{:?}", m.message_type());
    assert_eq!(w.pos, bytes.len(), "trailing bytes after the message");
}

// ------------------------------------------------------------ round trips

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Every message type: encode, decode, compare; and the bytes are Go's.
    #[test]
    fn every_message_round_trips_and_is_written_as_go_writes_it(o in owned(true)) {
        let m = o.msg();
        let bytes = m.to_vec();
        let back = Message::decode(&bytes);
        prop_assert_eq!(&back, &Ok(m));
        if let (Message::PushPull(pp), Owned::PushPull { states, .. }) = (back.unwrap(), &o) {
            prop_assert_eq!(pp.node_count(), states.len());
            let want: Vec<PushNodeState<'_>> = states.iter().map(OwnedState::view).collect();
            prop_assert_eq!(pp.states().collect::<Vec<_>>(), want);
        }
        check_go_bytes(&o, &bytes);
    }

    /// Strings of 32..=255 bytes are raw16 (0xda), never str8 (0xd9), in every
    /// string field, and so are byte slices of that size.
    #[test]
    fn strings_of_32_to_255_bytes_are_raw16(chars in vec(any::<char>(), 8..=255), pad in any::<u8>()) {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > 255 {
                break;
            }
            s.push(c);
        }
        while s.len() < 32 {
            s.push(char::from(b'a' + pad % 26));
        }
        let n = s.len();
        prop_assert!((32..=255).contains(&n));
        let mut out = Vec::new();
        msgpack::write_raw(&mut out, s.as_bytes());
        prop_assert_eq!(&out[..3], &[0xda, 0, n as u8][..]);
        prop_assert_eq!(&out[3..], s.as_bytes());
        for o in [
            Owned::Err { error: s.clone() },
            Owned::Ping { seq_no: 1, node: s.clone(), source_addr: vec![], source_port: 0, source_node: s.clone() },
            Owned::Suspect { incarnation: 1, node: s.clone(), from: s.clone() },
            Owned::Ack { seq_no: 1, payload: s.clone().into_bytes() },
        ] {
            let bytes = o.msg().to_vec();
            check_go_bytes(&o, &bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// 1..=127 messages through every packet layer combination; and the first
    /// message alone (no compound).
    #[test]
    fn packets_round_trip_through_every_layer_combination(
        msgs in vec(owned(false), 1..=127),
        label in label(),
    ) {
        let r = rings();
        let encoded: Vec<Vec<u8>> = msgs.iter().map(|o| o.msg().to_vec()).collect();
        let want: Vec<Message<'_>> = msgs.iter().map(Owned::msg).collect();
        for batch in [1, msgs.len()] {
            for label in ["", label.as_str()] {
                for compression in COMPRESSIONS {
                    for crc in [false, true] {
                        for encryption in encryptions(&r) {
                            let enc = EncodeOptions { compression, force_compression: true, crc, encryption, label };
                            let mut packet = Vec::new();
                            wire::encode_packet(&encoded[..batch], &enc, &mut packet).unwrap();
                            let dec = DecodeOptions {
                                keyring: Some(&r.receiver),
                                verify_incoming: encryption.is_some(),
                                label,
                                skip_label_check: false,
                                limits: ROOMY,
                            };
                            let mut decoder = PacketDecoder::new();
                            let got = decoder.decode(&mut packet, &dec);
                            let got = got.map_err(|e| TestCaseError::fail(format!("{enc:?}: {e}")))?;
                            let layers = Layers {
                                label,
                                encryption: encryption.map(|e| e.version),
                                crc,
                                compression,
                                truncated: 0,
                            };
                            prop_assert_eq!(got.layers, layers);
                            prop_assert_eq!(got.into_messages(), Ok(want[..batch].to_vec()), "{:?}", enc);
                        }
                    }
                }
            }
        }
    }

    /// One message of any type and size through every stream layer combination.
    #[test]
    fn streams_round_trip_through_every_layer_combination(o in owned(true), label in label()) {
        let r = rings();
        let m = o.msg();
        for label in ["", label.as_str()] {
            for compression in COMPRESSIONS {
                for encryption in encryptions(&r) {
                    let enc = EncodeOptions { compression, force_compression: false, crc: false, encryption, label };
                    let mut stream = Vec::new();
                    wire::encode_stream(&m, &enc, &mut stream).unwrap();
                    let dec = DecodeOptions {
                        keyring: Some(&r.receiver),
                        verify_incoming: encryption.is_some(),
                        label,
                        skip_label_check: false,
                        limits: ROOMY,
                    };
                    let mut decoder = StreamDecoder::new();
                    let got = decoder.decode(&mut stream, &dec).map_err(|e| TestCaseError::fail(format!("{enc:?}: {e}")))?;
                    let layers = Layers { label, encryption: encryption.map(|e| e.version), crc: false, compression, truncated: 0 };
                    prop_assert_eq!(got.layers, layers);
                    prop_assert_eq!(got.message, m, "{:?}", enc);
                }
            }
        }
    }
}

// ------------------------------------------------------------ LZW against weezl

/// `data` compressed by weezl (Go's format: LSB first, 8-bit literals).
fn weezl_compress(data: &[u8]) -> Vec<u8> {
    weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8).encode(data).expect("weezl encodes any bytes")
}

/// weezl's reading of `stream`: the bytes, or `None` if it refuses it (bad
/// code, or no end code), like Go's reader.
fn weezl_decompress(stream: &[u8]) -> Option<Vec<u8>> {
    let mut dec = weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8);
    let (mut input, mut out) = (stream, Vec::new());
    let mut buf = [0u8; 4096];
    loop {
        let r = dec.decode_bytes(input, &mut buf);
        input = &input[r.consumed_in..];
        out.extend_from_slice(&buf[..r.consumed_out]);
        match r.status {
            Ok(weezl::LzwStatus::Done) => return Some(out),
            Ok(weezl::LzwStatus::Ok) => {}
            Ok(weezl::LzwStatus::NoProgress) | Err(_) => return None,
        }
    }
}

fn lzw_decompress(stream: &[u8], limit: usize) -> Result<Vec<u8>, wire::Error> {
    let mut out = Vec::new();
    wire::compress::decompress(Compression::Lzw, stream, limit, &mut out).map(|()| out)
}

/// Inputs LZW meets: random bytes, few distinct bytes (long matches, full
/// tables), a chunk repeated, compound packets of random messages and
/// push/pull states.
fn lzw_input() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..12_000),
        (vec(0u8..4, 0..40_000), any::<u8>()).prop_map(|(v, b)| v.into_iter().map(|x| x ^ b).collect()),
        (vec(any::<u8>(), 1..80), 1..400usize).prop_map(|(chunk, n)| chunk.repeat(n)),
        vec(owned(false), 1..40).prop_map(|msgs| {
            let parts: Vec<Vec<u8>> = msgs.iter().map(|o| o.msg().to_vec()).collect();
            let mut out = Vec::new();
            wire::frame::write_compound(&mut out, &parts).unwrap();
            out
        }),
        vec(state(false), 0..300).prop_map(|states| {
            let mut encoded = Vec::new();
            for s in &states {
                s.view().write(&mut encoded);
            }
            let msg = Message::PushPull(PushPull::from_encoded(false, states.len(), &encoded, b""));
            let mut out = Vec::new();
            wire::encode_stream(&msg, &EncodeOptions::default(), &mut out).unwrap();
            out
        }),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn lzw_streams_read_back_across_implementations(data in lzw_input()) {
        let ours = wire::compress::compress(Compression::Lzw, &data);
        let theirs = weezl_compress(&data);
        prop_assert_eq!(weezl_decompress(&ours), Some(data.clone()), "weezl reading ours");
        prop_assert_eq!(lzw_decompress(&ours, data.len()), Ok(data.clone()), "ours reading ours");
        prop_assert_eq!(lzw_decompress(&theirs, data.len()), Ok(data.clone()), "ours reading weezl's");
    }

    /// Arbitrary bytes, and valid streams with a byte changed or cut short:
    /// the same verdict as weezl, and never more output than the limit.
    #[test]
    fn lzw_decoders_agree_on_any_bytes(
        data in lzw_input(),
        garbage in vec(any::<u8>(), 0..600),
        edit in (any::<usize>(), any::<u8>(), 0..3u8),
        limit in prop_oneof![Just(usize::MAX), 0..70_000usize],
    ) {
        let mut edited = wire::compress::compress(Compression::Lzw, &data);
        let at = edit.0 % edited.len();
        match edit.2 {
            0 => edited[at] ^= edit.1 | 1,
            1 => edited.truncate(at),
            _ => edited.insert(at, edit.1),
        }
        for stream in [&garbage, &edited] {
            let theirs = weezl_decompress(stream);
            match (lzw_decompress(stream, limit), &theirs) {
                (Ok(ours), Some(theirs)) => {
                    prop_assert_eq!(&ours, theirs);
                    prop_assert!(ours.len() <= limit);
                }
                (Err(wire::Error::TooLarge { .. }), Some(theirs)) => prop_assert!(theirs.len() > limit),
                (Err(wire::Error::TooLarge { .. }), None) => {}
                (Err(wire::Error::Decompress { .. }), None) => {}
                (ours, theirs) => prop_assert!(false, "ours {:?}, weezl {:?}", ours.map(|o| o.len()), theirs.as_ref().map(Vec::len)),
            }
        }
    }
}

/// Fixed examples of the dialect, readable at a glance.
#[test]
fn go_dialect_examples() {
    // A ping without source fields is a 2-entry map; with all of them, 5.
    let bare = Message::Ping(Ping { seq_no: 1, node: "n", ..Default::default() }).to_vec();
    assert_eq!(bare[1], 0x82);
    let full =
        Message::Ping(Ping { seq_no: 1, node: "n", source_addr: &[1], source_port: 2, source_node: "s" }).to_vec();
    assert_eq!(full[1], 0x85);
    // An empty payload is nil, not an empty raw.
    let ack = Message::Ack(Ack { seq_no: 0, payload: &[] }).to_vec();
    assert!(ack.windows(9).any(|w| w == b"\xa7Payload\xc0"), "{ack:02x?}");
    // A 40-byte name is raw16.
    let name = "n".repeat(40);
    let alive = Message::Alive(Alive { node: &name, ..Default::default() }).to_vec();
    assert!(alive.windows(8).any(|w| w == b"\xa4Node\xda\x00\x28"), "{alive:02x?}");
    // Alive always has its six fields (no omitempty).
    assert_eq!(alive[1], 0x86);
}

// ------------------------------------------------------------ the garbage corpus

/// Decodes garbage with every decoder, counting error reasons and recording
/// panics (by site, with the shortest input that hit each).
#[derive(Default)]
struct Tally {
    decodes: usize,
    ok: usize,
    reasons: BTreeMap<&'static str, usize>,
    panics: BTreeMap<String, (usize, Vec<u8>, &'static str)>,
}

impl Tally {
    fn run(&mut self, what: &'static str, input: &[u8], f: impl FnOnce(&mut Vec<u8>) -> Result<(), wire::Error>) {
        self.decodes += 1;
        let mut buf = input.to_vec();
        match common::catch_panic(|| f(&mut buf)) {
            Ok(Ok(())) => self.ok += 1,
            Ok(Err(e)) => *self.reasons.entry(e.reason()).or_default() += 1,
            Err(site) => {
                let entry = self.panics.entry(site).or_insert_with(|| (0, input.to_vec(), what));
                entry.0 += 1;
                if input.len() < entry.1.len() {
                    entry.1 = input.to_vec();
                    entry.2 = what;
                }
            }
        }
    }

    /// Every decoder on one input: packets (several configurations), streams,
    /// single messages, and the JSON inspector.
    fn all(&mut self, input: &[u8], ring: &Keyring) {
        let configs: [(&'static str, DecodeOptions<'_>); 4] = [
            ("packet/plain", DecodeOptions::default()),
            ("packet/keys+verify", DecodeOptions { keyring: Some(ring), verify_incoming: true, ..Default::default() }),
            ("packet/keys+fallback+label", DecodeOptions { keyring: Some(ring), label: "g", ..Default::default() }),
            ("packet/any-label", DecodeOptions { label: "g", skip_label_check: true, ..Default::default() }),
        ];
        for (what, opts) in configs {
            self.run(what, input, |buf| {
                let mut dec = PacketDecoder::new();
                let packet = dec.decode(buf, &opts)?;
                // Touch every message, push/pull states included.
                for m in packet.messages().flatten() {
                    if let Message::PushPull(pp) = m {
                        assert_eq!(pp.states().count(), pp.node_count());
                    }
                }
                packet.into_messages().map(drop)
            });
        }
        for (what, opts) in [
            ("stream/plain", DecodeOptions::default()),
            ("stream/keys+fallback", DecodeOptions { keyring: Some(ring), ..Default::default() }),
        ] {
            self.run(what, input, |buf| StreamDecoder::new().decode(buf, &opts).map(drop));
        }
        self.run("message", input, |buf| Message::decode(buf).map(drop));
        #[cfg(feature = "cli")]
        self.run("inspect", input, |buf| match inspect::decode_to_json(buf, &inspect::DecodeRequest::default()) {
            Ok(_) => Ok(()),
            Err(inspect::InspectError::Wire(e) | inspect::InspectError::LooksEncrypted { source: e, .. }) => Err(e),
            Err(other) => panic!("decode_to_json without keys failed outside the wire layer: {other}"),
        });
    }

    fn assert_no_panics(&self) {
        let report: Vec<String> = self
            .panics
            .iter()
            .map(|(site, (n, input, what))| {
                format!("{n} × {site}\n    first seen via {what}, shortest input: {input:02x?}")
            })
            .collect();
        assert!(
            report.is_empty(),
            "{} distinct panics in {} decodes:\n{}",
            report.len(),
            self.decodes,
            report.join("\n")
        );
    }
}

/// Valid packets and streams of every layer kind, for the mutation corpus.
fn valid_inputs(ring: &Keyring) -> Vec<(bool, Vec<u8>)> {
    let mut states = Vec::new();
    for i in 0..3u8 {
        let name = format!("node-{i}");
        PushNodeState { name: &name, addr: &[10, 0, 0, i], port: 7946, vsn: &[1, 5, 2, 0, 0, 0], ..Default::default() }
            .write(&mut states);
    }
    let name40 = "n".repeat(40);
    let msgs = [
        Message::Ping(Ping {
            seq_no: 300,
            node: "b",
            source_addr: &[127, 0, 0, 1],
            source_port: 7946,
            source_node: "a",
        }),
        Message::IndirectPing(IndirectPing {
            seq_no: 7,
            target: &[10, 0, 0, 9],
            port: 1,
            node: "t",
            nack: true,
            ..Default::default()
        }),
        Message::Ack(Ack { seq_no: 70_000, payload: b"payload" }),
        Message::Nack(Nack { seq_no: 5 }),
        Message::Suspect(Accusation { incarnation: 3, node: &name40, from: "x" }),
        Message::Alive(Alive {
            incarnation: 9,
            node: "a",
            addr: &[0; 16],
            port: 2,
            meta: b"m",
            vsn: &[1, 5, 2, 0, 0, 0],
        }),
        Message::Dead(Accusation { incarnation: 1, node: "d", from: "d" }),
        Message::User(&[0x42; 300]),
        Message::Err(ErrResp { error: "remote error" }),
        Message::PushPull(PushPull::from_encoded(true, 3, &states, b"user state")),
    ];
    let encoded: Vec<Vec<u8>> = msgs.iter().map(Message::to_vec).collect();
    let mut out = Vec::new();
    for compression in COMPRESSIONS {
        for crc in [false, true] {
            for version in [None, Some(EncryptionVersion::V0), Some(EncryptionVersion::V1)] {
                let encryption = version.map(|version| Encryption { keyring: ring, version, nonce: [3; 12] });
                for label in ["", "g"] {
                    let enc = EncodeOptions { compression, force_compression: true, crc, encryption, label };
                    for batch in [&encoded[..1], &encoded[3..4], &encoded[..]] {
                        let mut p = Vec::new();
                        wire::encode_packet(batch, &enc, &mut p).unwrap();
                        out.push((false, p));
                    }
                    if !crc {
                        for m in [&msgs[9], &msgs[7], &msgs[2]] {
                            let mut s = Vec::new();
                            wire::encode_stream(m, &enc, &mut s).unwrap();
                            out.push((true, s));
                        }
                    }
                }
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, input: &[u8], others: &[(bool, Vec<u8>)]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..=rng.below(3) {
        match rng.below(6) {
            // Bit flips.
            0 if !b.is_empty() => {
                for _ in 0..=rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
            }
            // Truncation.
            1 => b.truncate(rng.below(b.len() + 1)),
            // Extension with random bytes.
            2 => {
                let n = 1 + rng.below(64);
                b.extend(rng.bytes(n));
            }
            // An interesting byte (msgpack markers, type bytes, extremes).
            3 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng
                    .pick(&[0x00, 0x01, 0x07, 0x09, 0x0c, 0x7f, 0x80, 0xc0, 0xc1, 0xcf, 0xd9, 0xdb, 0xdf, 0xf4, 0xff]);
            }
            // A run of 0xff (huge lengths).
            4 if !b.is_empty() => {
                let i = rng.below(b.len());
                let end = (i + 1 + rng.below(4)).min(b.len());
                b[i..end].fill(0xff);
            }
            // Splice with another valid input.
            _ => {
                let other = &others[rng.below(others.len())].1;
                let cut = rng.below(b.len() + 1);
                let from = rng.below(other.len() + 1);
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
        }
    }
    b
}

/// 20,000 random inputs (0..2000 bytes) and 8,000 mutations of valid packets
/// and streams: every decoder returns Ok or a typed error, never panics.
#[test]
fn garbage_never_panics() {
    let ring = Keyring::new(&[], Some(&K16)).unwrap();
    let mut rng = Rng(0x5eed_f09a_4ba9);
    let mut tally = Tally::default();
    const TYPE_BYTES: [u8; 17] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 244, 14, 255];
    for i in 0..20_000 {
        let len = rng.below(2000);
        let mut input = rng.bytes(len);
        // Half of them start like a message or layer, to get past the first byte.
        if i % 2 == 0 && !input.is_empty() {
            input[0] = rng.pick(&TYPE_BYTES);
            if input.len() > 1 && i % 4 == 0 {
                input[1] = rng.pick(&[0x80, 0x81, 0x82, 0x83, 0x86, 0x87, 0xde, 0xdf, 0x00, 0x01, 0xff]);
            }
        }
        tally.all(&input, &ring);
    }
    let valid = valid_inputs(&ring);
    for _ in 0..8_000 {
        let (_, base) = &valid[rng.below(valid.len())];
        let input = mutate(&mut rng, base, &valid);
        tally.all(&input, &ring);
    }
    // The unmutated inputs decode (as packets or streams, as they were made).
    for (is_stream, input) in &valid {
        let mut buf = input.clone();
        let opts = DecodeOptions {
            keyring: Some(&ring),
            label: if input.first() == Some(&244) { "g" } else { "" },
            ..Default::default()
        };
        if *is_stream {
            assert!(StreamDecoder::new().decode(&mut buf, &opts).is_ok(), "{input:02x?}");
        } else {
            let ok = PacketDecoder::new().decode(&mut buf, &opts).map(|p| p.into_messages().is_ok());
            assert_eq!(ok, Ok(true), "{input:02x?}");
        }
    }
    eprintln!("{} decodes: {} ok, errors by reason {:?}", tally.decodes, tally.ok, tally.reasons);
    tally.assert_no_panics();
    // The corpus reaches deep: most error kinds are seen.
    assert!(tally.reasons.len() >= 10, "only {:?}", tally.reasons);
    assert!(tally.ok > 100, "only {} successful decodes", tally.ok);
}
