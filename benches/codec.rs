//! Codec throughput: one "typical gossip packet" per iteration.
//!
//! The typical packet is a compound of 1 ping (with SourceAddr/SourcePort/
//! SourceNode) and 5 alive messages (~20-char names, IPv4, 40-byte meta,
//! 6-byte Vsn): about 700 bytes, what a busy memberlist node sends every
//! gossip interval. Every benchmark reports `Throughput::Elements(1)`, so
//! criterion prints packets/s next to the time per packet.
//!
//! | bench                   | what one iteration does                                              |
//! |-------------------------|----------------------------------------------------------------------|
//! | encode/typical          | 6 message structs → msgpack → compound packet                        |
//! | encode/typical_lzw      | same, then LZW-compress (forced, as Go's `compressPayload` always is) |
//! | encode/typical_aes_gcm  | same as typical, then AES-256-GCM v1 (random nonce, as in Go)         |
//! | seal/typical_crc_aes_gcm| the compound body → CRC → AES-256-GCM v1, by a `swim::Sealer`         |
//! | seal/typical_full       | the compound body → LZW (kept if smaller) → CRC → AES-256-GCM v1     |
//! | decode/typical          | copy packet into a reusable buffer → decode → touch every field      |
//! | decode/typical_lzw      | same for the LZW-compressed packet                                   |
//! | decode/typical_aes_gcm  | same for the encrypted (v1, 32-byte key) packet                      |
//! | receive_path/full       | same for compress → CRC → encrypt: decrypt → CRC → inflate → decode   |
//!
//! Decoding decrypts in place, so every decode bench first copies the packet
//! into a reusable buffer (one ~700-byte memcpy, ~10-20 ns): that copy is part
//! of a real receive path too (the datagram lands in a buffer) and is included.
//!
//! If `RINGSWIM_BENCH_PACKETS_DIR` names a directory holding Go-made packets
//! (`typical.bin`, `typical_lzw.bin`, `typical_aesgcm.bin`, `typical_full.bin`;
//! the encrypted ones with the key 0x00..=0x1f), the decode benches decode
//! exactly those bytes, and the encode benches encode the messages decoded from
//! `typical.bin`, so Rust and Go work on identical contents (without
//! `typical_aesgcm.bin`, `typical.bin` is sealed here with that key). Without
//! the directory, the same messages as the Go bench's are built here.
//!
//! The `lzw` group times the LZW layer alone, on a gossip compound of 12 alive
//! messages (~1,400 bytes) and on the stream a push/pull of 1,000 members
//! sends (~80 KB): `encode/*/ringswim` is ringswim's writer
//! (`src/wire/lzw.rs`), `encode/*/weezl` the `weezl` encoder it replaced, used
//! as ringswim used it (one reused encoder, output written in place);
//! `decode/*` is `wire::compress::decompress`, which reads with `weezl`.
//! Throughput is in uncompressed bytes both ways, so criterion prints MB/s of
//! data compressed or restored.
//!
//! Run: `cargo bench --bench codec` (about 70 s), `cargo bench --bench codec --
//! lzw` for the LZW group alone; `perf/codec-vs-go.sh` runs the packet
//! benches side by side with Go memberlist's codec.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

#[path = "../tests/common/alive_compound.rs"]
mod alive_compound;
use alive_compound::alive_compound;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;
use ringswim::config::Config;
use ringswim::swim::{OutgoingPacket, PacketLayers, Sealer};
use ringswim::wire::{
    Alive, Compression, DecodeOptions, EncodeOptions, Encryption, EncryptionVersion, Keyring, Message, Packet,
    PacketDecoder, Ping, PushNodeState, PushPull, SharedKeyring, encode_packet, encode_stream,
};

/// The key of `typical_full.bin` and of every encrypted bench packet.
fn bench_key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// Deterministic nonce for packets built here (encode benches use random ones).
const NONCE: [u8; 12] = [0x5a; 12];

/// The typical message contents, built in Rust: the same values as the Go
/// benchmark's `rsBenchMsgs` (tests/interop/go/zz_ringswim_bench_test.go), so
/// the packets built here are byte-identical to Go's.
fn rust_typical_messages() -> Vec<Message<'static>> {
    const VSN: &[u8] = &[1, 5, 2, 0, 0, 0];
    fn leak_str(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }
    fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
        Box::leak(b.into_boxed_slice())
    }
    let name = |i: usize| leak_str(format!("node-{i:04}.dc1.example"));
    let mut msgs = vec![Message::Ping(Ping {
        seq_no: 1_234_567,
        node: name(1),
        source_addr: &[10, 0, 0, 1],
        source_port: 7946,
        source_node: name(0),
    })];
    for i in 0..5 {
        msgs.push(Message::Alive(Alive {
            incarnation: 100_000 + i as u32,
            node: name(10 + i),
            addr: leak_bytes(vec![10, 0, 1, 10 + i as u8]),
            port: 7946,
            // 44 bytes, e.g. "role=web,zone=us-east-1a,rack=r00,build=1000".
            meta: leak_bytes(format!("role=web,zone=us-east-1a,rack=r{i:02},build={:04}", 1000 + i).into_bytes()),
            vsn: VSN,
        }));
    }
    msgs
}

/// Decodes a packet whose bytes and decoder live for the rest of the process.
fn decode_static(bytes: Vec<u8>, opts: &DecodeOptions<'_>) -> Vec<Message<'static>> {
    let buf: &'static mut [u8] = Vec::leak(bytes);
    let dec: &'static mut PacketDecoder = Box::leak(Box::new(PacketDecoder::new()));
    dec.decode(buf, opts).expect("bench packet decodes").into_messages().expect("bench messages decode")
}

/// The bench inputs: messages to encode and packets to decode.
struct Inputs {
    source: String,
    messages: Vec<Message<'static>>,
    typical: Vec<u8>,
    typical_lzw: Vec<u8>,
    typical_aes_gcm: Vec<u8>,
    typical_full: Vec<u8>,
}

fn build_inputs(ring: &Keyring) -> Inputs {
    let seal = |plain: &[u8]| {
        let mut out = Vec::new();
        ring.encrypt_into(EncryptionVersion::V1, &NONCE, plain, b"", &mut out).expect("bench keyring has a key");
        out
    };
    let dir = std::env::var_os("RINGSWIM_BENCH_PACKETS_DIR").map(PathBuf::from);
    if let Some(dir) = dir.filter(|d| d.join("typical.bin").is_file()) {
        let read = |name: &str| -> Vec<u8> {
            let path = dir.join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        };
        let typical = read("typical.bin");
        let messages = decode_static(typical.clone(), &DecodeOptions::default());
        // Older Go benches did not write typical_aesgcm.bin: seal typical.bin then.
        let aes_path = dir.join("typical_aesgcm.bin");
        let (typical_aes_gcm, aes_note) = match std::fs::read(&aes_path) {
            Ok(bytes) => (bytes, "typical_aesgcm.bin"),
            Err(_) => (seal(&typical), "typical.bin sealed in Rust"),
        };
        let inputs = Inputs {
            source: format!("Go-made packets from {} (aes_gcm: {aes_note})", dir.display()),
            messages,
            typical,
            typical_lzw: read("typical_lzw.bin"),
            typical_aes_gcm,
            typical_full: read("typical_full.bin"),
        };
        check_rust_encoding_matches(&inputs);
        return inputs;
    }
    let messages = rust_typical_messages();
    let parts: Vec<Vec<u8>> = messages.iter().map(Message::to_vec).collect();
    let build = |compression: Option<Compression>, crc: bool| {
        let mut out = Vec::new();
        let opts = EncodeOptions { compression, force_compression: true, crc, ..Default::default() };
        encode_packet(&parts, &opts, &mut out).expect("bench packet encodes");
        out
    };
    let typical = build(None, false);
    let typical_lzw = build(Some(Compression::Lzw), false);
    let typical_aes_gcm = seal(&typical);
    let typical_full = seal(&build(Some(Compression::Lzw), true));
    Inputs { source: "packets built in Rust".into(), messages, typical, typical_lzw, typical_aes_gcm, typical_full }
}

/// With Go-made packets: does ringswim re-encode the same messages to the same
/// bytes? (A wire-compatibility sanity check, reported, not fatal.)
fn check_rust_encoding_matches(inputs: &Inputs) {
    let parts: Vec<Vec<u8>> = inputs.messages.iter().map(Message::to_vec).collect();
    let encode = |compression| {
        let mut out = Vec::new();
        let opts = EncodeOptions { compression, force_compression: true, ..Default::default() };
        encode_packet(&parts, &opts, &mut out).expect("re-encode");
        out
    };
    // LZW alone: compress Go's own compound bytes, compare with Go's compress message.
    let mut lzw_of_go = Vec::new();
    ringswim::wire::compress::write_compressed(&mut lzw_of_go, Compression::Lzw, &inputs.typical);
    for (name, out, go) in [
        ("typical.bin (messages re-encoded)", encode(None), &inputs.typical),
        ("typical_lzw.bin (messages re-encoded, LZW)", encode(Some(Compression::Lzw)), &inputs.typical_lzw),
        ("typical_lzw.bin (LZW of Go's typical.bin)", lzw_of_go, &inputs.typical_lzw),
    ] {
        let verdict = match out.iter().zip(go.iter()).position(|(a, b)| a != b) {
            None if out.len() == go.len() => "byte-identical".to_owned(),
            None => format!("DIFFERENT LENGTH ({} vs Go's {} bytes)", out.len(), go.len()),
            Some(at) => {
                let window = |b: &[u8]| hex(&b[at..b.len().min(at + 12)]);
                format!("DIFFERENT BYTES from offset {at}: ringswim {} vs Go {}", window(&out), window(go))
            }
        };
        eprintln!("codec bench: byte check against Go: {name}: {verdict}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads every field of every message, so lazy work cannot be skipped.
fn touch(packet: &Packet<'_>) -> usize {
    let mut sum = packet.messages().len();
    for msg in packet.messages() {
        sum += match msg {
            Ok(Message::Ping(p)) => {
                p.seq_no as usize + p.node.len() + p.source_addr.len() + p.source_port as usize + p.source_node.len()
            }
            Ok(Message::Alive(a)) => {
                a.incarnation as usize + a.node.len() + a.addr.len() + a.port as usize + a.meta.len() + a.vsn.len()
            }
            Ok(Message::Suspect(m) | Message::Dead(m)) => m.incarnation as usize + m.node.len() + m.from.len(),
            Ok(Message::Ack(a)) => a.seq_no as usize + a.payload.len(),
            Ok(other) => other.message_type() as usize,
            Err(_) => panic!("bench packet has a bad message"),
        };
    }
    sum
}

fn layer_summary(bytes: &[u8], opts: &DecodeOptions<'_>) -> String {
    let mut buf = bytes.to_vec();
    let mut dec = PacketDecoder::new();
    let pkt = dec.decode(&mut buf, opts).expect("bench packet decodes");
    assert!(pkt.messages().all(|m| m.is_ok()), "bench packet has a bad message");
    let l = pkt.layers;
    format!(
        "{} bytes, {} messages, encryption {:?}, crc {}, compression {:?}",
        bytes.len(),
        pkt.messages().len(),
        l.encryption,
        l.crc,
        l.compression.map(Compression::name)
    )
}

fn configure<'c>(c: &'c mut Criterion, name: &str) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(50);
    g
}

fn benches(c: &mut Criterion) {
    let key = bench_key();
    let ring = Keyring::new(&[], Some(&key)).expect("bench key");
    let inputs = build_inputs(&ring);
    let plain_opts = DecodeOptions::default();
    // Go's default GossipVerifyIncoming = true: no plaintext fallback copy.
    let enc_opts = DecodeOptions { keyring: Some(&ring), verify_incoming: true, ..Default::default() };
    eprintln!("codec bench: {}", inputs.source);
    for (name, bytes, opts) in [
        ("typical", &inputs.typical, &plain_opts),
        ("typical_lzw", &inputs.typical_lzw, &plain_opts),
        ("typical_aes_gcm", &inputs.typical_aes_gcm, &enc_opts),
        ("typical_full", &inputs.typical_full, &enc_opts),
    ] {
        eprintln!("codec bench: {name}: {}", layer_summary(bytes, opts));
    }

    // ---- encode: structs -> packet bytes, buffers reused across iterations.
    {
        let mut g = configure(c, "encode");
        let msgs = &inputs.messages;
        let mut parts: Vec<Vec<u8>> = vec![Vec::with_capacity(256); msgs.len()];
        let mut out = Vec::with_capacity(2048);
        let mut run = |opts: &EncodeOptions<'_>| {
            for (part, msg) in parts.iter_mut().zip(black_box(msgs)) {
                part.clear();
                msg.encode(part);
            }
            out.clear();
            encode_packet(&parts, opts, &mut out).expect("encode");
            black_box(out.len())
        };
        g.bench_function("typical", |b| b.iter(|| run(&EncodeOptions::default())));
        let lzw = EncodeOptions { compression: Some(Compression::Lzw), force_compression: true, ..Default::default() };
        g.bench_function("typical_lzw", |b| b.iter(|| run(&lzw)));
        // A random nonce per packet, as Go draws one.
        let aes = |nonce| EncodeOptions {
            encryption: Some(Encryption { keyring: &ring, version: EncryptionVersion::V1, nonce }),
            ..Default::default()
        };
        g.bench_function("typical_aes_gcm", |b| b.iter(|| run(&aes(rand::random()))));
        g.finish();
    }

    // ---- seal: a compound body (as `Core::poll_packet` leaves it) -> the
    // datagram, by a `Sealer` with its own RNG, into a reused buffer.
    {
        let mut g = configure(c, "seal");
        let parts: Vec<Vec<u8>> = inputs.messages.iter().map(Message::to_vec).collect();
        let mut body = Vec::new();
        ringswim::wire::frame::write_compound(&mut body, &parts).expect("bench compound");
        let config = Config::default_lan();
        let mut sealer = Sealer::new(&config, SharedKeyring::new(ring.clone()), StdRng::seed_from_u64(1));
        let to = "10.0.0.1:7946".parse().expect("bench address");
        let mut out = Vec::with_capacity(2048);
        for (name, compression) in [("typical_crc_aes_gcm", None), ("typical_full", Some(Compression::Lzw))] {
            let layers = PacketLayers { compression, crc: true, encryption: Some(EncryptionVersion::V1) };
            let packet = OutgoingPacket { to, layers };
            g.bench_function(name, |b| {
                b.iter(|| {
                    out.clear();
                    sealer.seal(&packet, black_box(&body), &mut out).expect("seal");
                    black_box(out.len())
                })
            });
        }
        g.finish();
    }

    // ---- decode: copy into a reusable buffer, decode, touch every message.
    let mut decoder = PacketDecoder::new();
    let mut buf = Vec::with_capacity(2048);
    let mut decode = |bytes: &[u8], opts: &DecodeOptions<'_>| {
        buf.clear();
        buf.extend_from_slice(black_box(bytes));
        let pkt = decoder.decode(&mut buf, opts).expect("decode");
        black_box(touch(&pkt))
    };
    {
        let mut g = configure(c, "decode");
        g.bench_function("typical", |b| b.iter(|| decode(&inputs.typical, &plain_opts)));
        g.bench_function("typical_lzw", |b| b.iter(|| decode(&inputs.typical_lzw, &plain_opts)));
        g.bench_function("typical_aes_gcm", |b| b.iter(|| decode(&inputs.typical_aes_gcm, &enc_opts)));
        g.finish();
    }
    {
        let mut g = configure(c, "receive_path");
        g.bench_function("full", |b| b.iter(|| decode(&inputs.typical_full, &enc_opts)));
        g.finish();
    }
}

/// The stream message a push/pull of 1,000 members sends (~80 KB): names of
/// ~20 bytes, IPv4 addresses, no meta.
fn lzw_push_pull_input() -> Vec<u8> {
    let names: Vec<String> = (0..1_000).map(|i| format!("node-{i:04}.dc1.example")).collect();
    let mut states = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let addr = [10, 0, (i >> 8) as u8, i as u8];
        PushNodeState {
            name,
            addr: &addr,
            port: 7946,
            incarnation: 1 + i as u32 % 7,
            vsn: &[1, 5, 2, 0, 0, 0],
            ..Default::default()
        }
        .write(&mut states);
    }
    let msg = Message::PushPull(PushPull::from_encoded(false, names.len(), &states, b""));
    let mut out = Vec::new();
    encode_stream(&msg, &EncodeOptions::default(), &mut out).expect("bench push/pull");
    out
}

/// weezl as `wire::compress` used it: a reused encoder, output written in place.
fn weezl_compress(enc: &mut weezl::encode::Encoder, data: &[u8], out: &mut Vec<u8>) {
    enc.reset();
    enc.finish();
    let at = out.len();
    out.resize(at + (data.len() + 2) * 3 / 2 + 2, 0);
    let (mut input, mut written) = (data, 0);
    loop {
        let res = enc.encode_bytes(input, &mut out[at + written..]);
        input = &input[res.consumed_in..];
        written += res.consumed_out;
        match res.status {
            Ok(weezl::LzwStatus::Done) => break,
            Ok(weezl::LzwStatus::Ok) => {}
            other => panic!("weezl encoding: {other:?}"),
        }
    }
    out.truncate(at + written);
}

fn lzw_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("lzw");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(50);
    let mut wenc = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8);
    let mut out = Vec::with_capacity(1 << 17);
    for (name, data) in [("gossip_1400", alive_compound(12)), ("push_pull_1000", lzw_push_pull_input())] {
        let ours = ringswim::wire::compress::compress(Compression::Lzw, &data);
        let mut theirs = Vec::new();
        weezl_compress(&mut wenc, &data, &mut theirs);
        eprintln!(
            "codec bench: lzw {name}: {} bytes, {} compressed by ringswim, {} by weezl",
            data.len(),
            ours.len(),
            theirs.len()
        );
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("encode/{name}/ringswim"), |b| {
            b.iter(|| {
                out.clear();
                ringswim::wire::compress::compress_into(Compression::Lzw, black_box(&data), &mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("encode/{name}/weezl"), |b| {
            b.iter(|| {
                out.clear();
                weezl_compress(&mut wenc, black_box(&data), &mut out);
                black_box(out.len())
            })
        });
        g.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                out.clear();
                ringswim::wire::compress::decompress(Compression::Lzw, black_box(&ours), 1 << 20, &mut out)
                    .expect("decodes");
                black_box(out.len())
            })
        });
        assert_eq!(out, data, "ringswim's stream reads back");
    }
    g.finish();
}

criterion_group!(codec, benches, lzw_benches);
criterion_main!(codec);
