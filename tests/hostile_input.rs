//! The hostile floods that take Go memberlist 0.2.2 down (docs/go-behaviour.md §4), thrown
//! at ringswim's decoders: each flood decodes thousands of crafted inputs with
//! one reused decoder (as a receive loop would) and checks that
//! - nothing panics,
//! - every input gets the typed error expected of it (by `Error::reason()`),
//!   or `Ok` where the input is legitimately valid,
//! - resident memory stays flat: the peak RSS growth over the flood (VmHWM,
//!   reset through /proc/self/clear_refs, and VmRSS sampled during the loop)
//!   stays under a bound.
//!
//! Memory is process-wide, and memory freed by one test stays resident and
//! would hide what the next one allocates; so each test re-runs itself alone in
//! a fresh copy of this test binary ([`isolated`]) and measures there. No timing
//! is asserted. No `unsafe`: memory is measured from /proc rather than with a
//! counting allocator.

use std::collections::BTreeMap;
use std::process::Command;

mod common;
use common::Rng;
use ringswim::wire::{
    self, Compression, DecodeOptions, EncodeOptions, EncryptionVersion, Keyring, Limits, Message, PacketDecoder,
    StreamDecoder, compress, frame, message::PushPullHeader, msgpack,
};

const MIB: u64 = 1024 * 1024;

// ------------------------------------------------------------ harness

const CHILD_ENV: &str = "RINGSWIM_HOSTILE_INPUT_CHILD";

/// Runs `body` in a fresh process: this test binary again, running only the
/// test `name`. In that child `body` runs directly.
fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("path of this test binary");
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-run this test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| l.contains("peak RSS growth")) {
        eprintln!("{line}");
    }
    assert!(out.status.success(), "{name} failed in its own process:\n{stderr}");
    assert!(stdout.contains("1 passed"), "{name} did not run in its own process:\n{stdout}");
}

/// A value from /proc/self/status, in bytes.
fn status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux only)");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in /proc/self/status"));
    let kib: u64 = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a number of kB");
    kib * 1024
}

/// Peak resident memory growth since `start`.
struct Peak {
    baseline: u64,
    hwm_reset: bool,
    sampled: u64,
}

impl Peak {
    fn start() -> Self {
        // Writing 5 resets VmHWM to the current RSS (Linux ≥ 4.0).
        let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        let baseline = status_bytes("VmRSS:");
        Peak { baseline, hwm_reset, sampled: baseline }
    }

    fn sample(&mut self) {
        self.sampled = self.sampled.max(status_bytes("VmRSS:"));
    }

    fn growth(&mut self) -> u64 {
        self.sample();
        let peak = if self.hwm_reset { self.sampled.max(status_bytes("VmHWM:")) } else { self.sampled };
        peak.saturating_sub(self.baseline)
    }
}

/// What one input came to: the packet- or stream-level error, or one entry
/// per message ("ok" or the message's error reason), and Go's `trunc`.
#[derive(Debug, PartialEq)]
struct Outcome {
    results: Vec<&'static str>,
    truncated: usize,
}

impl Outcome {
    fn err(e: &wire::Error) -> Self {
        Outcome { results: vec![e.reason()], truncated: 0 }
    }
}

/// What an input must come to.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Any typed outcome (random bytes).
    Any,
    /// One or more results, all this reason.
    Only(&'static str),
    /// Decoded fine: this many messages, all Ok, and this many parts dropped.
    Ok { messages: usize, truncated: usize },
}

impl Expect {
    fn accepts(self, o: &Outcome) -> bool {
        match self {
            Expect::Any => true,
            Expect::Only(reason) => !o.results.is_empty() && o.results.iter().all(|r| *r == reason),
            Expect::Ok { messages, truncated } => {
                o.results.len() == messages && o.results.iter().all(|r| *r == "ok") && o.truncated == truncated
            }
        }
    }
}

fn packet_outcome(dec: &mut PacketDecoder, buf: &mut [u8], opts: &DecodeOptions<'_>) -> Outcome {
    match dec.decode(buf, opts) {
        Err(e) => Outcome::err(&e),
        Ok(p) => Outcome {
            results: p.messages().map(|m| m.as_ref().map_or_else(wire::Error::reason, |_| "ok")).collect(),
            truncated: p.layers.truncated,
        },
    }
}

fn stream_outcome(dec: &mut StreamDecoder, buf: &mut [u8], opts: &DecodeOptions<'_>) -> Outcome {
    match dec.decode(buf, opts) {
        Err(e) => Outcome::err(&e),
        Ok(_) => Outcome { results: vec!["ok"], truncated: 0 },
    }
}

/// Runs `n` inputs from `make` through `decode`; checks outcomes, panics and
/// peak memory growth (at most `max_growth` bytes).
fn flood(
    name: &str,
    n: usize,
    max_growth: u64,
    mut make: impl FnMut(&mut Rng, usize) -> (Vec<u8>, Expect),
    mut decode: impl FnMut(&mut [u8]) -> Outcome,
) -> BTreeMap<&'static str, usize> {
    let mut rng = Rng(0xf100d ^ name.len() as u64);
    let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut wrong: Vec<String> = Vec::new();
    let mut panics: BTreeMap<String, (usize, Vec<u8>)> = BTreeMap::new();
    let mut peak = Peak::start();
    for i in 0..n {
        let (mut input, expect) = make(&mut rng, i);
        let original = input.clone();
        match common::catch_panic(|| decode(&mut input)) {
            Ok(outcome) => {
                for r in &outcome.results {
                    *reasons.entry(r).or_default() += 1;
                }
                if !expect.accepts(&outcome) && wrong.len() < 5 {
                    let head = &original[..original.len().min(48)];
                    wrong
                        .push(format!("expected {expect:?}, got {outcome:?} for {} bytes {head:02x?}", original.len()));
                }
            }
            Err(site) => {
                let entry = panics.entry(site).or_insert((0, original.clone()));
                entry.0 += 1;
                if original.len() < entry.1.len() {
                    entry.1 = original;
                }
            }
        }
        if i % 512 == 0 {
            peak.sample();
        }
    }
    let growth = peak.growth();
    eprintln!("{name}: {n} inputs, outcomes {reasons:?}, peak RSS growth {:.1} MiB", growth as f64 / MIB as f64);
    let panics: Vec<String> =
        panics.iter().map(|(site, (k, input))| format!("{k} × {site}\n    shortest input: {input:02x?}")).collect();
    assert!(panics.is_empty(), "{name}: {} distinct panics:\n{}", panics.len(), panics.join("\n"));
    assert!(wrong.is_empty(), "{name}: unexpected outcomes (first {}):\n{}", wrong.len(), wrong.join("\n"));
    assert!(
        growth <= max_growth,
        "{name}: resident memory grew by {:.1} MiB (bound {} MiB)",
        growth as f64 / MIB as f64,
        max_growth / MIB
    );
    reasons
}

// ------------------------------------------------------------ building blocks

/// Message types whose body is a msgpack struct (everything but user and the
/// layer types).
const STRUCT_TYPES: [u8; 9] = [0, 1, 2, 3, 4, 5, 6, 11, 13];

fn key(out: &mut Vec<u8>, name: &str) {
    msgpack::write_key(out, name);
}

fn push_uint(out: &mut Vec<u8>, v: u64) {
    msgpack::write_uint(out, v);
}

/// A `compress` message with `Algo` and a raw `Buf` (header bytes given).
fn compress_msg(algo: u8, buf_header: &[u8], buf: &[u8]) -> Vec<u8> {
    let mut m = vec![9, 0x82];
    key(&mut m, "Algo");
    push_uint(&mut m, algo.into());
    key(&mut m, "Buf");
    m.extend_from_slice(buf_header);
    m.extend_from_slice(buf);
    m
}

fn lzw_message(data: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    compress::write_compressed(&mut m, Compression::Lzw, data);
    m
}

fn compound(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::write_compound(&mut out, parts).unwrap();
    out
}

fn keyring() -> Keyring {
    Keyring::new(&[], Some(&[0x4b; 32])).unwrap()
}

// ------------------------------------------------------------ (a) random bytes

/// 50,000 packets of random bytes, 1–1400 B (docs/go-behaviour.md §4: Go ran out of memory).
#[test]
fn flood_a_random_packets() {
    isolated("flood_a_random_packets", || {
        let mut dec = PacketDecoder::new();
        let opts = DecodeOptions::default();
        let reasons = flood(
            "random packets",
            50_000,
            16 * MIB,
            |rng, _| {
                let len = 1 + rng.below(1400);
                (rng.bytes(len), Expect::Any)
            },
            |buf| packet_outcome(&mut dec, buf, &opts),
        );
        // Random bytes are nearly always rejected, mostly by their first byte.
        let rejected: usize = reasons.iter().filter(|(r, _)| **r != "ok").map(|(_, n)| n).sum();
        assert!(rejected > 45_000, "{reasons:?}");
        assert!(reasons.get("unknown_type").copied().unwrap_or(0) > 30_000, "{reasons:?}");
    });
}

// ------------------------------------------------------------ (b) map32 claiming 4 G entries

/// 50,000 packets: a struct message type, then a map32 header claiming
/// 4,294,967,295 entries, then up to 1,400 random bytes (Go: 7 → 1,979 MiB).
#[test]
fn flood_b_map32_claiming_4g_entries() {
    isolated("flood_b_map32_claiming_4g_entries", || {
        let mut dec = PacketDecoder::new();
        let opts = DecodeOptions::default();
        let make = |rng: &mut Rng, i: usize| {
            let mut p = vec![STRUCT_TYPES[i % STRUCT_TYPES.len()], 0xdf, 0xff, 0xff, 0xff, 0xff];
            let tail = rng.below(1400);
            rng.fill(&mut p, tail);
            (p, Expect::Only("truncated"))
        };
        flood("map32 4G entries (packets)", 50_000, 16 * MIB, make, |buf| packet_outcome(&mut dec, buf, &opts));

        // The same over streams, and as a push/pull node state after a valid header.
        let mut sdec = StreamDecoder::new();
        flood("map32 4G entries (streams)", 10_000, 16 * MIB, make, |buf| stream_outcome(&mut sdec, buf, &opts));
        let mut sdec = StreamDecoder::new();
        flood(
            "map32 4G entries (push/pull node state)",
            10_000,
            16 * MIB,
            |rng, _| {
                let mut s = vec![6];
                PushPullHeader { nodes: 1, user_state_len: 0, join: false }.write(&mut s);
                s.extend_from_slice(&[0xdf, 0xff, 0xff, 0xff, 0xff]);
                let tail = rng.below(1400);
                rng.fill(&mut s, tail);
                (s, Expect::Only("truncated"))
            },
            |buf| stream_outcome(&mut sdec, buf, &opts),
        );
    });
}

// ------------------------------------------------------------ (c) compress Buf claiming 2 GiB

/// 50,000 `compress` messages whose `Buf` claims 2 GiB (str32 / bin32), and
/// LZ4 buffers whose size prefix claims 2 GiB of output (Go: 7 → 3,043 MiB).
#[test]
fn flood_c_compress_buf_claiming_2gib() {
    isolated("flood_c_compress_buf_claiming_2gib", || {
        let mut dec = PacketDecoder::new();
        let opts = DecodeOptions::default();
        flood(
            "compress Buf 2 GiB",
            50_000,
            16 * MIB,
            |rng, i| {
                let len = rng.below(1400);
                let tail = rng.bytes(len);
                match i % 4 {
                    // str32 / bin32 length 2^31, LZW.
                    0 => (compress_msg(0, &[0xdb, 0x80, 0, 0, 0], &tail), Expect::Only("truncated")),
                    1 => (compress_msg(0, &[0xc6, 0x80, 0, 0, 0], &tail), Expect::Only("truncated")),
                    // LZ4 block whose size prefix claims 2 GiB (little endian).
                    2 => {
                        let mut buf = vec![0, 0, 0, 0x80];
                        buf.extend_from_slice(&tail[..tail.len().min(200)]);
                        let mut header = vec![0xc5];
                        header.extend_from_slice(&(buf.len() as u16).to_be_bytes());
                        (compress_msg(1, &header, &buf), Expect::Only("too_large"))
                    }
                    // Inside a compound: the part is spoilt, the packet is not.
                    _ => {
                        let bad = compress_msg(0, &[0xdb, 0x80, 0, 0, 0], &tail[..tail.len().min(500)]);
                        (compound(&[bad.clone(), bad]), Expect::Only("truncated"))
                    }
                }
            },
            |buf| packet_outcome(&mut dec, buf, &opts),
        );
    });
}

// ------------------------------------------------------------ (d) push/pull claims over streams

/// 50,000 stream messages whose push/pull header claims huge `Nodes` or
/// `UserStateLen`, or whose user message header claims a huge `UserMsgLen`.
#[test]
fn flood_d_push_pull_headers_claiming_huge_counts() {
    isolated("flood_d_push_pull_headers_claiming_huge_counts", || {
        let mut dec = StreamDecoder::new();
        let opts = DecodeOptions::default();
        let huge = [u64::from(u32::MAX), 1 << 40, i64::MAX as u64, u64::MAX, 1 << 31];
        flood(
            "push/pull claims",
            50_000,
            16 * MIB,
            |rng, i| {
                let big = huge[rng.below(huge.len())];
                let mut s = Vec::new();
                let expect = match i % 5 {
                    0 => {
                        s.push(6);
                        PushPullHeader { nodes: big as usize, user_state_len: 0, join: true }.write(&mut s);
                        Expect::Only("truncated")
                    }
                    1 => {
                        s.push(6);
                        PushPullHeader { nodes: 0, user_state_len: big as usize, join: false }.write(&mut s);
                        Expect::Only("truncated")
                    }
                    // Negative Nodes (Go panics in make()).
                    2 => {
                        s.extend_from_slice(&[6, 0x81]);
                        key(&mut s, "Nodes");
                        msgpack::write_int(&mut s, -(1 + rng.below(1 << 30) as i64));
                        Expect::Only("out_of_range")
                    }
                    3 => {
                        s.push(8);
                        wire::message::write_user_msg_header(&mut s, big as usize);
                        Expect::Only("truncated")
                    }
                    // The same claim behind LZW compression.
                    _ => {
                        let mut body = vec![6];
                        PushPullHeader { nodes: big as usize, user_state_len: big as usize, join: false }
                            .write(&mut body);
                        s = lzw_message(&body);
                        Expect::Only("truncated")
                    }
                };
                let tail = rng.below(1400);
                rng.fill(&mut s, tail);
                (s, expect)
            },
            |buf| stream_outcome(&mut dec, buf, &opts),
        );
    });
}

// ------------------------------------------------------------ (e) decompression bombs

/// LZW bombs: packets whose few KiB inflate to megabytes, alone, in compounds
/// and nested; the whole packet shares a 64 KiB inflation budget.
#[test]
fn flood_e_lzw_bombs_in_packets() {
    isolated("flood_e_lzw_bombs_in_packets", || {
        // 10 MiB of zeros in ~9 KiB; and a bomb of a valid user message.
        let zeros = lzw_message(&vec![0u8; 10 << 20]);
        let mut user = vec![8u8];
        user.resize(1 << 20, b'u');
        let user_bomb = lzw_message(&user);
        let nested = lzw_message(&compound(&[user_bomb.clone(), user_bomb.clone()]));
        let bombs = [
            (zeros.clone(), Expect::Only("too_large")),
            (user_bomb.clone(), Expect::Only("too_large")),
            (compound(&[user_bomb.clone(), zeros.clone(), user_bomb]), Expect::Only("too_large")),
            (nested, Expect::Only("too_large")),
        ];
        for (b, _) in &bombs {
            assert!(b.len() < 65_536, "bomb of {} bytes does not fit a packet", b.len());
        }
        let mut dec = PacketDecoder::new();
        let opts = DecodeOptions::default();
        flood(
            "LZW bombs (packets)",
            2_000,
            16 * MIB,
            |_, i| bombs[i % bombs.len()].clone(),
            |buf| packet_outcome(&mut dec, buf, &opts),
        );
    });
}

/// LZW bombs over streams with a 1 MiB stream limit, many times.
#[test]
fn flood_e_lzw_bombs_in_streams_small_limit() {
    isolated("flood_e_lzw_bombs_in_streams_small_limit", || {
        let small = Limits { max_stream: 1 << 20, ..Limits::default() };
        let bomb = lzw_message(&vec![0u8; 2 << 20]);
        let mut dec = StreamDecoder::new();
        let opts = DecodeOptions { limits: small, ..Default::default() };
        flood(
            "LZW bombs (streams, 1 MiB limit)",
            100,
            16 * MIB,
            |_, _| (bomb.clone(), Expect::Only("too_large")),
            |buf| stream_outcome(&mut dec, buf, &opts),
        );
    });
}

/// A 24 MiB LZW bomb (~19 KiB) over streams with the default 20 MiB limit:
/// inflation stops at the limit; memory stays within a small multiple of it.
#[test]
fn flood_e_lzw_bomb_in_streams_default_limit() {
    isolated("flood_e_lzw_bomb_in_streams_default_limit", || {
        let bomb = lzw_message(&vec![0u8; 24 << 20]);
        let mut dec = StreamDecoder::new();
        let opts = DecodeOptions::default();
        flood(
            "LZW bomb (streams, 20 MiB limit)",
            3,
            64 * MIB,
            |_, _| (bomb.clone(), Expect::Only("too_large")),
            |buf| stream_outcome(&mut dec, buf, &opts),
        );
    });
}

/// LZ4 size prefixes over streams: beyond the limit (refused before
/// allocating), and at the limit with a block that does not deliver
/// (allocated, then refused).
#[test]
fn flood_e_lz4_size_claims_in_streams() {
    isolated("flood_e_lz4_size_claims_in_streams", || {
        let mut dec = StreamDecoder::new();
        let opts = DecodeOptions::default();
        flood(
            "LZ4 size claims (streams)",
            20,
            64 * MIB,
            |rng, i| {
                // Beyond the stream limit, or within it but beyond what 16 bytes
                // of LZ4 can ever expand to: refused before any allocation.
                let claim: u32 = if i % 2 == 0 { u32::MAX } else { wire::MAX_PUSH_STATE_BYTES as u32 };
                let mut buf = claim.to_le_bytes().to_vec();
                buf.extend(rng.bytes(16));
                let expect = Expect::Only("too_large");
                (compress_msg(1, &[0xc4, buf.len() as u8], &buf), expect)
            },
            |buf| stream_outcome(&mut dec, buf, &opts),
        );
    });
}

// ------------------------------------------------------------ (f) encrypted stream claims

/// 50,000 encrypted-stream headers claiming up to 4 GiB.
#[test]
fn flood_f_encrypted_stream_headers_claiming_4gb() {
    isolated("flood_f_encrypted_stream_headers_claiming_4gb", || {
        let ring = keyring();
        let mut dec = StreamDecoder::new();
        let with_keys =
            DecodeOptions { keyring: Some(&ring), label: "g", skip_label_check: true, ..Default::default() };
        let no_keys = DecodeOptions { label: "g", skip_label_check: true, ..Default::default() };
        let mut n = 0;
        flood(
            "encrypted stream claims",
            50_000,
            16 * MIB,
            |rng, i| {
                let mut s = Vec::new();
                if i % 3 == 0 {
                    frame::write_label(&mut s, "g").unwrap();
                }
                let tail = rng.below(1400);
                let (claim, expect) = match i % 4 {
                    0 => (u32::MAX, Expect::Only("too_large")),
                    1 => ((wire::MAX_PUSH_STATE_BYTES + 1 + rng.below(1 << 30)) as u32, Expect::Only("too_large")),
                    // Within the limit but more than was sent: wait for more bytes.
                    2 => ((tail + 1 + rng.below(wire::MAX_PUSH_STATE_BYTES - tail)) as u32, Expect::Only("truncated")),
                    // No keys configured: refused before the length is looked at.
                    _ => (u32::MAX, Expect::Only("encryption_required")),
                };
                s.push(10);
                s.extend_from_slice(&claim.to_be_bytes());
                rng.fill(&mut s, tail);
                (s, expect)
            },
            |buf| {
                n += 1;
                let opts = if n % 4 == 0 { &no_keys } else { &with_keys };
                stream_outcome(&mut dec, buf, opts)
            },
        );
    });
}

// ------------------------------------------------------------ (g) compound claims

/// 50,000 compound headers claiming 255 parts of huge lengths: the parts the
/// packet cannot hold are dropped and counted (Go's `trunc`), nothing else.
#[test]
fn flood_g_compound_headers_claiming_255_parts() {
    isolated("flood_g_compound_headers_claiming_255_parts", || {
        let mut dec = PacketDecoder::new();
        let opts = DecodeOptions::default();
        flood(
            "compound claims",
            50_000,
            16 * MIB,
            |rng, i| {
                let mut p = vec![7, 255];
                match i % 3 {
                    // Every part claims 65,535 bytes; up to 1,400 bytes follow.
                    0 => {
                        p.extend(std::iter::repeat_n(0xff, 510));
                        let tail = rng.below(1400);
                        rng.fill(&mut p, tail);
                        (p, Expect::Ok { messages: 0, truncated: 255 })
                    }
                    // One real message first, then the claims.
                    1 => {
                        p.extend_from_slice(&[0, 1]);
                        p.extend(std::iter::repeat_n(0xff, 508));
                        p.push(8);
                        let tail = rng.below(1400);
                        rng.fill(&mut p, tail);
                        (p, Expect::Ok { messages: 1, truncated: 254 })
                    }
                    // The length table itself is cut short.
                    _ => {
                        let table = rng.below(509);
                        rng.fill(&mut p, table);
                        (p, Expect::Only("truncated"))
                    }
                }
            },
            |buf| packet_outcome(&mut dec, buf, &opts),
        );
    });
}

// ------------------------------------------------------------ amplification

/// Builds a packet of up to `max` bytes: compound of compounds of 255 tiny
/// `compress` messages each (each inflating to a 1-byte user message).
fn many_compress_parts(algo: Compression, max: usize) -> (Vec<u8>, usize) {
    let mut one = Vec::new();
    compress::write_compressed(&mut one, algo, &[8]);
    let inner = compound(&vec![one; 255]);
    let n = ((max - 2) / (inner.len() + 2)).min(255);
    (compound(&vec![inner; n]), n * 255)
}

/// Decodes one packet of ~3,000 tiny compressed parts and checks the peak
/// resident memory growth against a small multiple of the packet plus the
/// configured limits (16 × 64 KiB + 64 KiB + 64 KiB, and 1 MiB of slack).
fn check_many_small_compressed_parts(algo: Compression) {
    let opts = DecodeOptions::default();
    let bound = 16 * 65_536 + (opts.limits.max_packet_inflated + opts.limits.max_packet) as u64 + MIB;
    let (packet, parts) = many_compress_parts(algo, opts.limits.max_packet);
    let mut dec = PacketDecoder::new();
    let mut peak = Peak::start();
    let mut buf = packet.clone();
    let decoded = dec.decode(&mut buf, &opts).map(|p| p.messages().filter(Result::is_ok).count());
    // Measured while the decoder still holds its buffers (a receive loop keeps it).
    let growth = peak.growth();
    eprintln!(
        "{algo:?}: {} byte packet of {parts} compressed parts: decoded {decoded:?}, peak RSS growth {:.1} MiB",
        packet.len(),
        growth as f64 / MIB as f64
    );
    assert_eq!(decoded, Ok(parts));
    assert!(
        growth <= bound,
        "{algo:?}: a {} byte packet of {parts} compressed parts grew resident memory by {:.1} MiB (bound {:.1} MiB)",
        packet.len(),
        growth as f64 / MIB as f64,
        bound as f64 / MIB as f64
    );
    drop(dec);
}

/// A 64 KiB packet of ~3,300 tiny LZW parts must not make the decoder allocate
/// more than a small multiple of the packet plus the inflation budget.
#[test]
fn many_small_lzw_parts_allocate_in_proportion_to_the_packet() {
    isolated("many_small_lzw_parts_allocate_in_proportion_to_the_packet", || {
        check_many_small_compressed_parts(Compression::Lzw);
    });
}

/// The control: the same shape with LZ4.
#[test]
fn many_small_lz4_parts_allocate_in_proportion_to_the_packet() {
    isolated("many_small_lz4_parts_allocate_in_proportion_to_the_packet", || {
        check_many_small_compressed_parts(Compression::Lz4);
    });
}

// ------------------------------------------------------------ regressions found by fuzzing

/// A `compress` message without a `Buf` field (Go: nil Buf, "unexpected EOF")
/// must be a typed error, not a panic. Found by the `packet_decode` fuzzer.
#[test]
fn compress_message_without_buf_is_a_typed_error() {
    let no_buf_lzw = vec![9, 0x80];
    let algo_only = {
        let mut m = vec![9, 0x81];
        key(&mut m, "Algo");
        push_uint(&mut m, 1);
        m
    };
    let unknown_key = {
        let mut m = vec![9, 0x81];
        key(&mut m, "Zip");
        m.push(0xc0);
        m
    };
    let mut failures = Vec::new();
    for input in [no_buf_lzw.clone(), algo_only.clone(), unknown_key, compound(&[no_buf_lzw, vec![11, 0x80]])] {
        let result = common::catch_panic(|| {
            let mut buf = input.clone();
            let mut dec = PacketDecoder::new();
            packet_outcome(&mut dec, &mut buf, &DecodeOptions::default())
        });
        match result {
            Ok(o) if !o.results.is_empty() && o.results[0] != "ok" => {}
            Ok(o) => failures.push(format!("{input:02x?}: a compress without Buf decoded as {o:?}")),
            Err(site) => failures.push(format!("{input:02x?}: {site}")),
        }
        // Streams read the same message.
        let mut buf = input.clone();
        let r = common::catch_panic(|| StreamDecoder::new().decode(&mut buf, &DecodeOptions::default()).is_err());
        if !matches!(r, Ok(true)) {
            failures.push(format!("{input:02x?} as a stream: {r:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `Limits` of `usize::MAX` ("no limit") must not overflow while inflating.
#[test]
fn unlimited_limits_do_not_overflow() {
    let unlimited = Limits { max_packet: usize::MAX, max_packet_inflated: usize::MAX, max_stream: usize::MAX };
    let opts = DecodeOptions { limits: unlimited, ..Default::default() };
    let mut failures = Vec::new();
    for algo in [Compression::Lzw, Compression::Lz4] {
        let enc = EncodeOptions { compression: Some(algo), force_compression: true, ..Default::default() };
        let msg = Message::User(b"hello");
        let mut packet = Vec::new();
        wire::encode_packet(&[msg.to_vec()], &enc, &mut packet).unwrap();
        let mut stream = Vec::new();
        wire::encode_stream(&msg, &enc, &mut stream).unwrap();
        let p = common::catch_panic(|| {
            PacketDecoder::new().decode(&mut packet, &opts).map(|p| p.into_messages().map(|m| m.len()))
        });
        let s = common::catch_panic(|| StreamDecoder::new().decode(&mut stream, &opts).map(|m| m.message == msg));
        if !matches!(p, Ok(Ok(Ok(1)))) || !matches!(s, Ok(Ok(true))) {
            failures.push(format!("{algo:?}: packet {p:?}, stream {s:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Encrypted floods through packets too: with keys and GossipVerifyIncoming,
/// random bytes are refused without decrypting more than once per key.
#[test]
fn flood_random_packets_with_keys() {
    isolated("flood_random_packets_with_keys", || {
        let ring = Keyring::new(&[&[1; 16], &[2; 24]], Some(&[3; 32])).unwrap();
        let mut dec = PacketDecoder::new();
        let strict = DecodeOptions { keyring: Some(&ring), verify_incoming: true, ..Default::default() };
        flood(
            "random packets, keys required",
            5_000,
            16 * MIB,
            |rng, i| {
                let len = 1 + rng.below(1400);
                let mut p = rng.bytes(len);
                // Half start with a valid encryption version, so they are decrypted.
                if i % 2 == 0 {
                    p[0] = (i % 4 / 2) as u8;
                }
                let expect = match (p[0], len) {
                    (0 | 1, n) if n >= EncryptionVersion::V0.encrypted_len(0) => Expect::Only("decrypt"),
                    (1, n) if n >= EncryptionVersion::V1.encrypted_len(0) => Expect::Only("decrypt"),
                    (0 | 1, _) => Expect::Only("truncated"),
                    (244, _) => Expect::Any,
                    _ => Expect::Only("decrypt"),
                };
                (p, expect)
            },
            |buf| packet_outcome(&mut dec, buf, &strict),
        );
    });
}
