//! `ringswim bench engine`: the packet path on loopback, per backend.
//!
//! - **Throughput** ([`packet_path`]): one node on a one-thread runtime; a
//!   load generator on another thread sends it typical gossip packets (a
//!   ping and five alive messages about members it already holds, the
//!   shape of steady-state gossip in a compound) and keeps a fixed number
//!   unanswered. The node receives, decodes, handles and answers each
//!   ping with an ack (encoded, sealed, sent). Figures are per CPU second
//!   of the engine thread (`/proc/self/task/*/stat`), so they do not
//!   depend on how busy the generator's core is.
//! - **Round trip** ([`round_trip`]): a node in another process on idle
//!   loopback, pinged one ping at a time; percentiles of ping → ack.
//! - **One busy node, one thread or spread** ([`spread_path`], `--spread`):
//!   the same gossip packets from eight generator sockets (the kernel
//!   picks a `SO_REUSEPORT` socket by the sender's address; for a spread
//!   node the generator keeps four senders that reach each thread),
//!   plaintext or encrypted and compressed, to one node hosted with
//!   [`Runtime::host`] on a one-thread runtime or with
//!   [`Runtime::host_spread`] on a two-thread one. Figures are acks per
//!   wall second, and CPU per packet summed over the engine threads and of
//!   the owner alone.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::SeedableRng;

use super::{Backend, BackendChoice, Error, Memberlist, Runtime, RuntimeOptions};
use crate::config::Config;
use crate::swim::metrics::DROPPED;
use crate::swim::{Opener, OutgoingPacket, PacketLayers, Sealer};
use crate::wire::{Alive, Compression, EncodeOptions, EncryptionVersion, Message, MessageType, Ping, encode_packet};

/// One backend's throughput.
#[derive(Clone, Debug)]
pub struct PacketPath {
    /// `uring`, `portable` or `echo`.
    pub backend: &'static str,
    /// Packets handled per CPU second of the engine thread.
    pub packets_per_s_per_core: f64,
    /// CPU nanoseconds of the engine thread per packet.
    pub cpu_ns_per_packet: f64,
    /// Packets handled (acks received by the generator).
    pub packets: u64,
    /// Wall seconds measured.
    pub seconds: f64,
}

/// Ping → ack round trips.
#[derive(Clone, Debug)]
pub struct RoundTrip {
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub p999_us: f64,
    /// Pings answered.
    pub samples: u64,
}

/// The node's name in the benchmarks.
pub const BENCH_NODE: &str = "bench-node";
/// Pings kept unanswered by the generator.
const IN_FLIGHT: u64 = 64;

fn loopback_config() -> Config {
    let mut c = Config::default_local().with_name(BENCH_NODE);
    c.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    c.bind_port = 0;
    c
}

/// Hosts the benchmark node on a one-thread runtime of `backend`.
pub fn bench_node(backend: Backend) -> Result<(Runtime, Memberlist), Error> {
    let rt = Runtime::new(RuntimeOptions { threads: 1, backend: BackendChoice::Only(backend), pin: true })?;
    let node = rt.host(loopback_config())?;
    Ok((rt, node))
}

/// A typical gossip packet to the node at `to` from `from`: ping `seq` and
/// five alive messages about members `m0`..`m4` at `from`'s address.
pub fn gossip_packet(seq: u32, from: SocketAddr, out: &mut Vec<u8>) {
    gossip_packet_at(seq, from, from, out);
}

/// [`gossip_packet`] whose ping asks for the ack at `reply_to` and whose
/// members are at `members_at` (senders that share members).
fn gossip_packet_at(seq: u32, reply_to: SocketAddr, members_at: SocketAddr, out: &mut Vec<u8>) {
    let v4 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => ip.octets(),
        IpAddr::V6(_) => unreachable!("loopback v4"),
    };
    let (reply_ip, ip) = (v4(reply_to), v4(members_at));
    let vsn = [1, 5, 2, 2, 5, 4];
    let names = ["m0", "m1", "m2", "m3", "m4"];
    let mut msgs = vec![
        Message::Ping(Ping {
            seq_no: seq,
            node: BENCH_NODE,
            source_addr: &reply_ip,
            source_port: reply_to.port(),
            source_node: "gen",
        })
        .to_vec(),
    ];
    for name in names {
        msgs.push(
            Message::Alive(Alive {
                incarnation: 1,
                node: name,
                addr: &ip,
                port: members_at.port(),
                meta: &[],
                vsn: &vsn,
            })
            .to_vec(),
        );
    }
    out.clear();
    encode_packet(&msgs, &EncodeOptions::default(), out).expect("a small compound");
}

/// CPU seconds so far of this process's thread named `name` (user +
/// system, `/proc/self/task/*/stat`, USER_HZ = 100 ticks a second).
pub fn thread_cpu_s(name: &str) -> Option<f64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            return Some(ticks as f64 / 100.0);
        }
    }
    None
}

/// The engine thread's name for `backend` (thread 0 of a runtime; Linux
/// keeps 15 bytes of a thread name).
pub fn engine_thread(backend: Backend) -> String {
    format!("rs-{}-0", backend.name())
}

/// Runs the throughput benchmark on `backend` for `seconds`.
///
/// # Errors
/// The backend cannot start, a socket cannot be bound.
pub fn packet_path(backend: Backend, seconds: f64) -> Result<PacketPath, Error> {
    let (_rt, node) = bench_node(backend)?;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| Error::Io { what, source }
    };
    let to = node.local_node()?.address();
    let generator = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("binding the generator"))?;
    let from = generator.local_addr().map_err(io("generator address"))?;
    generator.set_read_timeout(Some(Duration::from_millis(200))).map_err(io("generator timeout"))?;
    let mut packet = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let (mut sent, mut acked) = (0u64, 0u64);
    let mut run = |until: Instant, sent: &mut u64, acked: &mut u64| {
        while Instant::now() < until {
            while *sent - *acked < IN_FLIGHT {
                gossip_packet(*sent as u32, from, &mut packet);
                if generator.send_to(&packet, to).is_err() {
                    break;
                }
                *sent += 1;
            }
            match generator.recv(&mut buf) {
                Ok(n) if n > 0 && buf[0] == MessageType::Ack as u8 => *acked += 1,
                Ok(_) => {}
                // A lost ping or ack: give its place back.
                Err(_) => *acked = *sent,
            }
        }
    };
    // Warm up (the node learns the five members), then measure.
    run(Instant::now() + Duration::from_millis(500), &mut sent, &mut acked);
    let thread = engine_thread(backend);
    let (cpu0, acked0, t0) = (thread_cpu_s(&thread).unwrap_or(0.0), acked, Instant::now());
    run(t0 + Duration::from_secs_f64(seconds), &mut sent, &mut acked);
    let (cpu1, secs) = (thread_cpu_s(&thread).unwrap_or(0.0), t0.elapsed().as_secs_f64());
    let packets = acked - acked0;
    let cpu = cpu1 - cpu0;
    if cpu <= 0.0 {
        return Err(Error::Io {
            what: format!("reading the CPU time of thread {thread} from /proc/self/task"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    Ok(PacketPath {
        backend: backend.name(),
        packets_per_s_per_core: packets as f64 / cpu,
        cpu_ns_per_packet: cpu * 1e9 / packets.max(1) as f64,
        packets,
        seconds: secs,
    })
}

/// The bare io_uring echo with the packet path's sizes: two UDP sockets on
/// one ring and one thread, each datagram (the size of [`gossip_packet`])
/// received and sent straight back, nothing decoded: what this machine's
/// kernel and io_uring allow one core (`uring::run_echo`). Per packet, one
/// receive and one send, as in [`packet_path`].
///
/// # Errors
/// io_uring refused, or the ring cannot be built.
#[cfg(target_os = "linux")]
pub fn echo(seconds: f64) -> Result<PacketPath, Error> {
    use super::uring::{EchoConfig, probe, run_echo};
    let unavailable = |why: String| Error::BackendUnavailable { backend: "uring", why };
    let support = probe().map_err(|e| unavailable(e.to_string()))?;
    let mut packet = Vec::new();
    gossip_packet(0, SocketAddr::from((Ipv4Addr::LOCALHOST, 7946)), &mut packet);
    let config = EchoConfig {
        duration: Duration::from_secs_f64(seconds),
        payload_len: packet.len(),
        window: IN_FLIGHT as usize,
        ..EchoConfig::default()
    };
    let r = run_echo(&config, &support).map_err(|e| unavailable(e.to_string()))?;
    Ok(PacketPath {
        backend: "echo",
        packets_per_s_per_core: 1e9 / r.thread_cpu_ns_per_packet.max(1.0),
        cpu_ns_per_packet: r.thread_cpu_ns_per_packet,
        packets: r.packets,
        seconds: r.seconds,
    })
}

/// Pings the node at `to` one ping at a time for `seconds` (after a
/// warm-up) and returns the round-trip percentiles.
///
/// # Errors
/// A socket cannot be bound.
pub fn round_trip(to: SocketAddr, seconds: f64) -> Result<RoundTrip, Error> {
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| Error::Io { what, source }
    };
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("binding the pinger"))?;
    let from = socket.local_addr().map_err(io("pinger address"))?;
    socket.set_read_timeout(Some(Duration::from_millis(200))).map_err(io("pinger timeout"))?;
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("valid bounds");
    let (mut packet, mut buf) = (Vec::new(), vec![0u8; 65_536]);
    let warmup = Instant::now() + Duration::from_millis(300);
    let end = warmup + Duration::from_secs_f64(seconds);
    let mut seq = 0u32;
    while Instant::now() < end {
        seq = seq.wrapping_add(1);
        let ping = Message::Ping(Ping {
            seq_no: seq,
            node: BENCH_NODE,
            source_addr: &[127, 0, 0, 1],
            source_port: from.port(),
            source_node: "pinger",
        });
        packet.clear();
        encode_packet(&[ping.to_vec()], &EncodeOptions::default(), &mut packet).expect("one ping");
        let t = Instant::now();
        socket.send_to(&packet, to).map_err(io("sending a ping"))?;
        if let Ok(n) = socket.recv(&mut buf)
            && n > 0
            && buf[0] == MessageType::Ack as u8
            && t >= warmup
        {
            let _ = hist.record(t.elapsed().as_nanos().max(1) as u64);
        }
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    Ok(RoundTrip { p50_us: us(0.5), p99_us: us(0.99), p999_us: us(0.999), samples: hist.len() })
}

/// One busy node's throughput, on one thread or spread over two.
#[derive(Clone, Debug)]
pub struct SpreadPath {
    /// `uring` or `portable`.
    pub backend: &'static str,
    /// `one_thread` ([`Runtime::host`], one engine thread) or `spread`
    /// ([`Runtime::host_spread`], two).
    pub mode: &'static str,
    /// Engine threads.
    pub threads: usize,
    /// Packets encrypted (AES-GCM, one 16-byte key) and compressed (LZW)
    /// both ways, else plaintext.
    pub encrypted: bool,
    /// Packets handled per wall second (datagrams back at the generator:
    /// its acks, and the few probes the node sends its made-up members).
    pub packets_per_s: f64,
    /// CPU nanoseconds per packet, all engine threads together.
    pub cpu_ns_per_packet: f64,
    /// CPU nanoseconds per packet of the owner's thread alone.
    pub owner_cpu_ns_per_packet: f64,
    /// Packets handled.
    pub packets: u64,
    /// Wall seconds measured.
    pub seconds: f64,
    /// Messages the other thread opened and handed to the owner.
    pub handoff_messages: u64,
    /// Messages dropped at a full handoff queue
    /// (`ringswim.dropped{reason="handoff_queue_full"}`).
    pub handoff_dropped: u64,
    /// Wall nanoseconds to open one generator packet ([`Opener`]: what a
    /// receiving thread takes off the owner), timed apart on the
    /// generator's thread.
    pub open_ns_per_packet: f64,
    /// Wall nanoseconds to seal one ack ([`Sealer`]: what the owner does
    /// for every packet, spread or not), timed the same way.
    pub seal_ns_per_ack: f64,
}

/// Wall nanoseconds per call of `f`: the best of five rounds of 4,000
/// calls (the least disturbed by other work on the machine).
fn time_ns(mut f: impl FnMut()) -> f64 {
    const CALLS: u32 = 4_000;
    (0..6)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .skip(1)
        .fold(f64::INFINITY, f64::min)
}

/// Generator sockets, and how many of them should reach each thread of a
/// spread node.
const SENDERS: usize = 8;
/// Pings each generator socket keeps unanswered.
const IN_FLIGHT_PER_SENDER: u32 = 16;
/// The key of the encrypted runs.
const BENCH_KEY: &[u8; 16] = b"ringswim-bench!!";

/// Runs the one-busy-node benchmark: `threads` 1 hosts the node with
/// [`Runtime::host`] on one thread, 2 with [`Runtime::host_spread`] on two;
/// `encrypted` seals every packet both ways; for `seconds` after a warm-up.
///
/// # Errors
/// The backend cannot start, a socket cannot be bound.
pub fn spread_path(backend: Backend, threads: usize, encrypted: bool, seconds: f64) -> Result<SpreadPath, Error> {
    use mio::{Events, Interest, Poll, Token};
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| Error::Io { what, source }
    };
    let rt = Runtime::new(RuntimeOptions { threads, backend: BackendChoice::Only(backend), pin: true })?;
    let mut config = loopback_config();
    if encrypted {
        config = config.with_secret_key(BENCH_KEY.to_vec());
    }
    let layers = PacketLayers {
        compression: encrypted.then_some(Compression::Lzw),
        crc: true,
        encryption: encrypted.then_some(EncryptionVersion::V1),
    };
    let node = if threads > 1 { rt.host_spread(config.clone())? } else { rt.host(config.clone())? };
    let mut sealer = Sealer::new(&config, node.keyring().clone(), rand::rngs::StdRng::seed_from_u64(7));
    let to = node.local_node()?.address();
    // The made-up members live at one address that never answers.
    let members_at = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("binding the members' address"))?;
    let members_at = members_at.local_addr().map_err(io("members' address"))?;
    let sealed = |sealer: &mut Sealer<rand::rngs::StdRng>, reply_to: SocketAddr| {
        let mut body = Vec::new();
        gossip_packet_at(0, reply_to, members_at, &mut body);
        let mut out = Vec::new();
        sealer.seal(&OutgoingPacket { to, layers }, &body, &mut out).map(|()| out)
    };
    // Senders: for a spread node, four that reach each thread (a probe
    // packet from each tells by the handoff counter).
    let mut senders: Vec<(UdpSocket, Vec<u8>)> = Vec::new();
    let (mut on_owner, mut on_other) = (0, 0);
    let mut buf = vec![0u8; 65_536];
    for _ in 0..SENDERS * 16 {
        if senders.len() == SENDERS {
            break;
        }
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("binding a generator socket"))?;
        let from = socket.local_addr().map_err(io("generator address"))?;
        socket.set_read_timeout(Some(Duration::from_secs(1))).map_err(io("generator timeout"))?;
        let packet = sealed(&mut sealer, from).map_err(|e| Error::Io {
            what: "sealing the generator's packet".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let handed = rt.stats().handoff_messages;
        socket.send_to(&packet, to).map_err(io("sending a probe packet"))?;
        if socket.recv(&mut buf).is_err() {
            continue;
        }
        let reaches_other = rt.stats().handoff_messages > handed;
        let wanted = threads == 1 || if reaches_other { on_other < SENDERS / 2 } else { on_owner < SENDERS / 2 };
        if wanted {
            if reaches_other {
                on_other += 1
            } else {
                on_owner += 1
            }
            senders.push((socket, packet));
        }
    }
    // The two halves of the work, timed apart: opening a generator packet
    // (spread over the threads) and sealing an ack (on the owner).
    let open_ns_per_packet = {
        let mut opener = Opener::new(&config, node.keyring().clone(), crate::swim::Metrics::new());
        let packet = senders.first().map(|(_, p)| p.clone()).unwrap_or_default();
        let mut copy = packet.clone();
        time_ns(|| {
            copy.copy_from_slice(&packet);
            let _ = opener.open(&mut copy, |_| {});
        })
    };
    let seal_ns_per_ack = {
        let ack = Message::Ack(crate::wire::Ack { seq_no: 7, payload: &[] }).to_vec();
        let mut out = Vec::new();
        time_ns(|| {
            out.clear();
            let _ = sealer.seal(&OutgoingPacket { to, layers }, &ack, &mut out);
        })
    };
    let mut poll = Poll::new().map_err(io("generator poll"))?;
    let mut sockets = Vec::new();
    for (i, (socket, packet)) in senders.into_iter().enumerate() {
        socket.set_nonblocking(true).map_err(io("nonblocking generator"))?;
        let mut socket = mio::net::UdpSocket::from_std(socket);
        poll.registry().register(&mut socket, Token(i), Interest::READABLE).map_err(io("registering a generator"))?;
        sockets.push((socket, packet, 0u32));
    }
    let mut events = Events::with_capacity(64);
    let mut acked = 0u64;
    let mut run = |until: Instant, acked: &mut u64| {
        while Instant::now() < until {
            for (socket, packet, in_flight) in &mut sockets {
                while *in_flight < IN_FLIGHT_PER_SENDER && socket.send_to(packet, to).is_ok() {
                    *in_flight += 1;
                }
            }
            let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
            if events.is_empty() {
                // Lost pings or acks: give their places back.
                sockets.iter_mut().for_each(|s| s.2 = 0);
                continue;
            }
            for event in &events {
                let (socket, _, in_flight) = &mut sockets[event.token().0];
                while socket.recv(&mut buf).is_ok() {
                    *acked += 1;
                    *in_flight = in_flight.saturating_sub(1);
                }
            }
        }
    };
    run(Instant::now() + Duration::from_millis(500), &mut acked);
    let engine_cpu = || {
        let per_thread: Vec<f64> =
            (0..threads).map(|i| thread_cpu_s(&format!("rs-{}-{i}", backend.name())).unwrap_or(0.0)).collect();
        (per_thread.iter().sum::<f64>(), per_thread[0])
    };
    let stats0 = rt.stats();
    let dropped0 = node.metrics().get(DROPPED, "handoff_queue_full");
    let ((cpu0, owner0), acked0, t0) = (engine_cpu(), acked, Instant::now());
    run(t0 + Duration::from_secs_f64(seconds), &mut acked);
    let ((cpu1, owner1), secs) = (engine_cpu(), t0.elapsed().as_secs_f64());
    let packets = acked - acked0;
    if cpu1 - cpu0 <= 0.0 {
        return Err(Error::Io {
            what: format!("reading the CPU time of the rs-{}-* threads from /proc/self/task", backend.name()),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    let per_packet = |cpu: f64| cpu * 1e9 / packets.max(1) as f64;
    Ok(SpreadPath {
        backend: backend.name(),
        mode: if threads > 1 { "spread" } else { "one_thread" },
        threads,
        encrypted,
        packets_per_s: packets as f64 / secs,
        cpu_ns_per_packet: per_packet(cpu1 - cpu0),
        owner_cpu_ns_per_packet: per_packet(owner1 - owner0),
        packets,
        seconds: secs,
        handoff_messages: rt.stats().handoff_messages - stats0.handoff_messages,
        handoff_dropped: node.metrics().get(DROPPED, "handoff_queue_full") - dropped0,
        open_ns_per_packet,
        seal_ns_per_ack,
    })
}
