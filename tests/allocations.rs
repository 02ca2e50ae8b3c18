//! Heap allocations on the datagram path, counted by a counting global
//! allocator (dhat's, in testing mode). Its own test binary with one test,
//! since the allocator and its counts are process-wide.
//!
//! Three encrypted, compressing cores (AES-256-GCM, LZW, CRC: every layer)
//! probe one another on virtual time. Once the cluster is quiet, the
//! datagrams they exchange (pings and acks) are the hot path a busy node runs
//! thousands of times a second; every allocation made while they are built,
//! sealed, opened and handled is counted, per datagram:
//! - off the core: an [`Opener`] opens and decodes, [`Core::handle_message`]
//!   handles (and queues the reply), [`Core::poll_packet`] hands the body
//!   out and a [`Sealer`] seals it, all into reused buffers;
//! - the convenience path: [`Core::handle_packet`] and
//!   [`Core::poll_transmit`], which returns each datagram in a new `Vec`.
//!
//! The timers that start probes and gossip rounds are counted apart and only
//! printed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use ringswim::config::Config;
use ringswim::swim::{Core, Opener, Sealer, Time, ip_to_wire};
use ringswim::wire::Alive;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const NODES: usize = 3;
const PORT: u16 = 7946;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)), PORT)
}

fn config(i: usize) -> Config {
    let mut c = Config::default_local().with_go_behaviour().with_name(format!("node{i}")).with_secret_key(vec![7; 32]);
    c.bind_port = PORT;
    // No periodic push/pull: a stream carries the whole table and is not the
    // datagram path measured here.
    c.push_pull_interval = Duration::ZERO;
    c
}

fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// How datagrams move between the cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `Opener` + `handle_message`, `poll_packet` + `Sealer`.
    OffCore,
    /// `handle_packet`, `poll_transmit`.
    Convenience,
}

#[derive(Debug, Default)]
struct Counts {
    datagrams: u64,
    /// Building, sealing, opening and handling datagrams (replies included).
    datagram_path: u64,
    timers: u64,
    timer_calls: u64,
}

struct Cluster {
    cores: Vec<Core<StdRng>>,
    openers: Vec<Opener>,
    sealers: Vec<Sealer<StdRng>>,
    now: Time,
    body: Vec<u8>,
    datagram: Vec<u8>,
}

impl Cluster {
    /// Three cores that know one another, started.
    fn new() -> Cluster {
        let now = Time::from_epoch(Duration::from_secs(1_000));
        let mut cores: Vec<Core<StdRng>> = (0..NODES)
            .map(|i| Core::new(config(i), addr(i), now, StdRng::seed_from_u64(i as u64)).expect("core"))
            .collect();
        let vsn = config(0).build_vsn_array();
        for (i, core) in cores.iter_mut().enumerate() {
            for j in (0..NODES).filter(|&j| j != i) {
                let (name, ip) = (format!("node{j}"), ip_to_wire(addr(j).ip()));
                let alive = Alive { incarnation: 1, node: &name, addr: &ip, port: PORT, meta: &[], vsn: &vsn };
                core.handle_alive(&alive, now);
            }
            core.start(now);
        }
        let openers = (0..NODES)
            .map(|i| Opener::new(&config(i), cores[i].keyring().clone(), cores[i].metrics().clone()))
            .collect();
        let sealers = (0..NODES)
            .map(|i| Sealer::new(&config(i), cores[i].keyring().clone(), StdRng::seed_from_u64(100 + i as u64)))
            .collect();
        Cluster { cores, openers, sealers, now, body: Vec::new(), datagram: Vec::new() }
    }

    /// Node `i`'s next datagram, sealed into `self.datagram`; its destination.
    fn next_datagram(&mut self, i: usize, path: Path) -> Option<SocketAddr> {
        match path {
            Path::OffCore => {
                let packet = self.cores[i].poll_packet(&mut self.body)?;
                self.datagram.clear();
                self.sealers[i].seal(&packet, &self.body, &mut self.datagram).expect("seal");
                Some(packet.to)
            }
            Path::Convenience => {
                let tx = self.cores[i].poll_transmit()?;
                self.datagram = tx.bytes;
                Some(tx.to)
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, path: Path) {
        let (now, core) = (self.now, &mut self.cores[to]);
        match path {
            Path::OffCore => {
                let delivered =
                    self.openers[to].open(&mut self.datagram, |msg| core.handle_message(addr(from), msg, now));
                assert!(matches!(delivered, Ok(n) if n > 0), "{delivered:?}");
            }
            Path::Convenience => core.handle_packet(addr(from), &mut self.datagram, now),
        }
    }

    /// Moves datagrams and fires timers until `end`, counting allocations.
    fn run(&mut self, end: Time, path: Path) -> Counts {
        let mut counts = Counts::default();
        loop {
            let mut moved = true;
            while moved {
                moved = false;
                for i in 0..NODES {
                    loop {
                        let before = allocations();
                        let Some(to) = self.next_datagram(i, path) else { break };
                        let to = (0..NODES).find(|&j| addr(j) == to).expect("a member");
                        self.deliver(i, to, path);
                        counts.datagram_path += allocations() - before;
                        counts.datagrams += 1;
                        moved = true;
                    }
                    while self.cores[i].poll_effect().is_some() {}
                }
            }
            match self.cores.iter().filter_map(Core::poll_timeout).min() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for core in &mut self.cores {
                        if core.poll_timeout().is_some_and(|d| d <= self.now) {
                            let before = allocations();
                            core.handle_timeout(self.now);
                            counts.timers += allocations() - before;
                            counts.timer_calls += 1;
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
        counts
    }

    /// Runs 30 s for the joins' broadcasts to run out, then measures 60 s.
    fn measure(path: Path) -> Counts {
        let mut cluster = Cluster::new();
        let warm = cluster.run(cluster.now + Duration::from_secs(30), path);
        assert!(warm.datagrams > 0, "the cluster talks");
        let counts = cluster.run(cluster.now + Duration::from_secs(60), path);
        for core in &cluster.cores {
            assert_eq!(core.num_alive(), NODES, "nobody suspected");
            assert_eq!(core.metrics().total(ringswim::swim::metrics::PACKETS_REJECTED), 0);
        }
        for opener in &cluster.openers {
            assert_eq!(opener.metrics().total(ringswim::swim::metrics::PACKETS_REJECTED), 0);
        }
        let per = |n: u64, d: u64| n as f64 / d.max(1) as f64;
        println!(
            "{path:?}: {} datagrams, {} allocations on the datagram path ({:.3} per datagram); timers: {} calls, {} allocations ({:.2} per call)",
            counts.datagrams,
            counts.datagram_path,
            per(counts.datagram_path, counts.datagrams),
            counts.timer_calls,
            counts.timers,
            per(counts.timers, counts.timer_calls),
        );
        assert!(counts.datagrams >= 300, "probes ran: {counts:?}");
        counts
    }
}

#[test]
fn a_quiet_cluster_moves_datagrams_without_allocating() {
    let _profiler = dhat::Profiler::builder().testing().build();

    // Off the core, every buffer is reused: a datagram costs no allocation.
    let off_core = Cluster::measure(Path::OffCore);
    assert!(
        off_core.datagram_path * 100 <= off_core.datagrams,
        "{} allocations for {} datagrams: at most 1 per 100 off the core",
        off_core.datagram_path,
        off_core.datagrams
    );

    // The convenience path allocates the datagram it returns, and no more
    // (it took 8 to 9 per datagram before the split).
    let convenience = Cluster::measure(Path::Convenience);
    assert!(
        convenience.datagram_path <= convenience.datagrams,
        "{} allocations for {} datagrams: at most 1 each through handle_packet and poll_transmit",
        convenience.datagram_path,
        convenience.datagrams
    );
}
