//! The engine on real loopback sockets, each test on every backend this
//! machine runs: nodes hosted by one runtime find each other, spread user
//! broadcasts, deliver reliable messages, see leaves and deaths, survive a
//! key rotation and a peer that never answers. Every wait is on a
//! condition with a bounded deadline; every node is shut down at the end
//! (dropping a `Memberlist` shuts it down).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use ringswim::config::Config;
use ringswim::delegate::{ChannelEventDelegate, Delegate, NodeEvent, NodeEventKind, NodeState};
use ringswim::engine::{Backend, BackendChoice, Error, Memberlist, Runtime, RuntimeOptions};
use ringswim::sim::Gossip;
use ringswim::swim::metrics::DROPPED;
use ringswim::wire::{Alive, EncodeOptions, Message, MessageType, encode_packet};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Long enough for anything below on a loaded 2-core machine; a test that
/// hits it fails.
const DEADLINE: Duration = Duration::from_secs(60);

#[path = "common/backends.rs"]
mod backends;
use backends::backends;

/// A node under test: its handle, its events, its user-broadcast delegate.
struct TestNode {
    member: Memberlist,
    events: Receiver<NodeEvent>,
    gossip: Arc<Gossip>,
}

struct Cluster {
    runtime: Runtime,
    nodes: Vec<TestNode>,
    /// Applied to every node's config.
    tune: fn(Config) -> Config,
}

fn base_config(name: &str) -> Config {
    let mut c = Config::default_local().with_name(name);
    c.bind_addr = LOOPBACK;
    c.bind_port = 0;
    c
}

impl Cluster {
    fn new(backend: Backend, tune: fn(Config) -> Config) -> Cluster {
        let runtime = Runtime::new(RuntimeOptions { threads: 2, backend: BackendChoice::Only(backend), pin: false })
            .expect("runtime starts");
        Cluster { runtime, nodes: Vec::new(), tune }
    }

    /// Hosts node `node-{i}` (the next index) and joins it to node 0.
    fn add(&mut self) -> usize {
        self.add_with(Runtime::host)
    }

    /// Hosts node `node-{i}` with `host` ([`Runtime::host`] or
    /// [`Runtime::host_spread`]) and joins it to node 0.
    fn add_with(&mut self, host: fn(&Runtime, Config) -> Result<Memberlist, Error>) -> usize {
        let i = self.nodes.len();
        let (tx, events) = channel();
        let gossip = Arc::new(Gossip::new(4));
        let config = (self.tune)(base_config(&format!("node-{i}")))
            .with_events(Arc::new(ChannelEventDelegate::new(tx)))
            .with_delegate(Arc::clone(&gossip) as Arc<dyn Delegate>);
        let member = host(&self.runtime, config).expect("hosted");
        if i > 0 {
            let seed = self.addr(0);
            assert!(member.join(&[seed]).expect("join node 0") >= 1);
        }
        self.nodes.push(TestNode { member, events, gossip });
        i
    }

    fn start(backend: Backend, n: usize, tune: fn(Config) -> Config) -> Cluster {
        let mut c = Cluster::new(backend, tune);
        for _ in 0..n {
            c.add();
        }
        c
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].member.local_node().expect("running").address()
    }

    /// Waits until every node in `observers` has heard (by events) of every
    /// name in `names` joining; panics with who is missing whom.
    fn await_joined(&self, observers: &[usize], names: &HashSet<String>) {
        let deadline = Instant::now() + DEADLINE;
        for &i in observers {
            let mut seen: HashSet<String> = HashSet::new();
            while !names.is_subset(&seen) {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.nodes[i].events.recv_timeout(left) {
                    Ok(e) if e.kind == NodeEventKind::Join => {
                        seen.insert(e.node.name.to_string());
                    }
                    Ok(e) if e.kind == NodeEventKind::Leave => {
                        seen.remove(e.node.name.as_str());
                    }
                    Ok(_) => {}
                    Err(_) => panic!("node-{i} never heard of {:?}", names.difference(&seen).collect::<Vec<_>>()),
                }
            }
        }
    }

    fn all_names(&self) -> HashSet<String> {
        (0..self.nodes.len()).map(|i| format!("node-{i}")).collect()
    }

    fn converge(&self) {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.await_joined(&all, &self.all_names());
    }

    /// Waits for a leave event about `subject` at `observer`; the state it
    /// carries. Panics if another member leaves first.
    fn await_leave(&self, observer: usize, subject: &str) -> NodeState {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.nodes[observer].events.recv_timeout(left) {
                Ok(e) if e.kind == NodeEventKind::Leave => {
                    assert_eq!(e.node.name.as_str(), subject, "node-{observer} lost a healthy member");
                    return e.node.state;
                }
                Ok(_) => {}
                Err(_) => panic!("node-{observer} never saw {subject} go"),
            }
        }
    }
}

/// Polls `done` every 10 ms until it holds or [`DEADLINE`] passes.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn plain(c: Config) -> Config {
    c
}

#[test]
fn three_nodes_converge() {
    for backend in backends() {
        let c = Cluster::start(backend, 3, plain);
        c.converge();
        for n in &c.nodes {
            assert_eq!(n.member.num_members(), 3, "{backend:?} {}", n.member.name());
        }
    }
}

#[test]
fn sixty_four_nodes_converge_and_broadcasts_reach_all() {
    for backend in backends() {
        let c = Cluster::start(backend, 64, plain);
        c.converge();
        for n in &c.nodes {
            n.gossip.set_num_nodes(64);
        }
        for k in 0..5u32 {
            let mut msg = k.to_be_bytes().to_vec();
            msg.extend_from_slice(b"hello");
            assert!(c.nodes[0].gossip.offer(&msg));
        }
        eventually("5 broadcasts at all 64 nodes", || c.nodes.iter().all(|n| n.gossip.num_seen() == 5));
        for n in &c.nodes {
            assert_eq!(n.member.num_members(), 64, "{backend:?} {}", n.member.name());
        }
    }
}

#[test]
fn user_messages_best_effort_and_reliable() {
    for backend in backends() {
        let c = Cluster::start(backend, 2, plain);
        c.converge();
        let to = c.addr(1);
        c.nodes[0].member.send_best_effort(to, &7u32.to_be_bytes()).expect("fits a datagram");
        c.nodes[0].member.send_reliable(to, &8u32.to_be_bytes()).expect("member");
        eventually("both user messages at node-1", || c.nodes[1].gossip.has_seen(7) && c.nodes[1].gossip.has_seen(8));
        // Over the datagram limit: a typed error, nothing sent.
        let big = vec![0u8; 70_000];
        assert!(matches!(
            c.nodes[0].member.send_best_effort(to, &big),
            Err(Error::Core(ringswim::swim::Error::MessageTooLarge { .. }))
        ));
        // A reliable message has no such limit below Go's 20 MiB.
        let mut large = 9u32.to_be_bytes().to_vec();
        large.resize(200_000, 1);
        c.nodes[0].member.send_reliable(to, &large).expect("member");
        eventually("the large reliable message", || c.nodes[1].gossip.has_seen(9));
        let nobody: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        assert!(matches!(c.nodes[0].member.send_reliable(nobody, b"x"), Err(Error::UnknownMember(_))));
    }
}

#[test]
fn a_leave_is_seen_as_left_and_a_killed_node_as_dead() {
    for backend in backends() {
        let c = Cluster::start(backend, 5, plain);
        c.converge();
        c.nodes[4].member.leave(Duration::from_secs(5)).expect("leave broadcast goes out");
        for i in 0..4 {
            assert_eq!(c.await_leave(i, "node-4"), NodeState::Left, "{backend:?} node-{i}");
        }
        c.nodes[3].member.shutdown().expect("running");
        for i in 0..3 {
            assert_eq!(c.await_leave(i, "node-3"), NodeState::Dead, "{backend:?} node-{i}");
        }
        for i in 0..3 {
            assert_eq!(c.nodes[i].member.num_members(), 3, "{backend:?} node-{i}");
        }
    }
}

fn encrypted(c: Config) -> Config {
    c.with_secret_key(b"0123456789abcdef".to_vec())
}

#[test]
fn a_key_rotation_loses_no_member() {
    const NEXT: &[u8] = b"fedcba9876543210fedcba9876543210";
    for backend in backends() {
        let mut c = Cluster::start(backend, 8, encrypted);
        c.converge();
        for step in 0..3 {
            for n in &c.nodes {
                let k = n.member.keyring();
                match step {
                    0 => k.add_key(NEXT),
                    1 => k.use_key(NEXT),
                    _ => k.remove_key(b"0123456789abcdef"),
                }
                .expect("rotation step");
            }
        }
        // A node that knows only the new key joins, and everyone sees it.
        c.tune = |cfg| cfg.with_secret_key(NEXT.to_vec());
        let newcomer = c.add();
        let all: Vec<usize> = (0..c.nodes.len()).collect();
        c.await_joined(&all[..newcomer], &HashSet::from([format!("node-{newcomer}")]));
        c.await_joined(&[newcomer], &c.all_names());
        // Nobody was lost on the way: no leave event anywhere.
        for (i, n) in c.nodes.iter().enumerate() {
            while let Ok(e) = n.events.try_recv() {
                assert_ne!(e.kind, NodeEventKind::Leave, "{backend:?} node-{i} lost {}", e.node.name);
            }
        }
    }
}

fn uncompressed(c: Config) -> Config {
    c.with_enable_compression(false)
}

#[test]
fn compression_off_and_on_mixed() {
    for backend in backends() {
        let mut c = Cluster::start(backend, 3, uncompressed);
        c.tune = plain;
        c.add();
        c.add();
        c.converge();
        assert!(c.nodes.iter().all(|n| n.member.num_members() == 5));
    }
}

#[test]
fn a_peer_that_accepts_and_never_answers_costs_one_probe() {
    for backend in backends() {
        let c = Cluster::start(backend, 3, plain);
        c.converge();
        // The ghost: a UDP socket that never answers and a TCP listener that
        // accepts (the kernel's backlog) and never replies.
        // TCP first, as the runtime binds: a free UDP port may be a TCP
        // port still in TIME-WAIT from a dial, which a listener cannot take.
        let tcp = TcpListener::bind((LOOPBACK, 0)).expect("bind");
        let ghost = tcp.local_addr().expect("addr");
        let udp = UdpSocket::bind(ghost).expect("same port for udp");
        // A join through it fails by the TCP timeout instead of hanging.
        let err = c.nodes[1].member.join(&[ghost]).expect_err("nobody answers");
        assert!(matches!(err, Error::JoinFailed(_)), "{err}");
        // Told of the ghost as a member, the cluster probes it, falls back to
        // TCP, gives up at the deadline, and declares it dead, and only it.
        let ip = [127, 0, 0, 1];
        let vsn = [1, 5, 2, 2, 5, 4];
        let alive = Alive { incarnation: 1, node: "ghost", addr: &ip, port: ghost.port(), meta: &[], vsn: &vsn };
        let packet = Message::Alive(alive).to_vec();
        udp.send_to(&packet, c.addr(0)).expect("send");
        for i in 0..3 {
            assert_eq!(c.await_leave(i, "ghost"), NodeState::Dead, "{backend:?} node-{i}");
        }
        for n in &c.nodes {
            assert_eq!(n.member.num_members(), 3, "{backend:?}");
        }
        // And the probe loop goes on: a member killed now is found too.
        c.nodes[2].member.shutdown().expect("running");
        for i in 0..2 {
            assert_eq!(c.await_leave(i, "node-2"), NodeState::Dead, "{backend:?} node-{i}");
        }
    }
}

#[test]
fn rejoin_after_leave_on_the_same_handle() {
    for backend in backends() {
        let c = Cluster::start(backend, 3, plain);
        c.converge();
        c.nodes[2].member.leave(Duration::from_secs(5)).expect("leave");
        for i in 0..2 {
            assert_eq!(c.await_leave(i, "node-2"), NodeState::Left);
        }
        assert!(c.nodes[2].member.join(&[c.addr(0)]).expect("rejoin") >= 1);
        c.await_joined(&[0, 1], &HashSet::from(["node-2".to_owned()]));
        eventually("node-2 back at every member", || c.nodes.iter().all(|n| n.member.num_members() == 3));
    }
}

/// A datagram of user messages numbered `tags` (one message, or a compound
/// of them), as Go's `SendToAddress` sends one.
fn user_datagram(tags: std::ops::Range<u32>) -> Vec<u8> {
    let msgs: Vec<Vec<u8>> = tags
        .map(|tag| {
            let mut m = vec![MessageType::User as u8];
            m.extend_from_slice(&tag.to_be_bytes());
            m
        })
        .collect();
    let mut out = Vec::new();
    encode_packet(&msgs, &EncodeOptions::default(), &mut out).expect("small");
    out
}

/// Senders tried before giving up on reaching a receiving thread: the
/// kernel picks a `SO_REUSEPORT` socket by the sender's address, one of
/// two here, so 64 senders all missing it is a 2^-64 chance.
const SENDERS: u32 = 64;

/// Sends `datagram(k)` from a fresh socket (sender `k`) to `to`, waiting
/// each time until `crossed(k)` tells whether it went through a receiving
/// thread (`Some(true)`) or the owner's socket (`Some(false)`), until one
/// did; returns that sender. Panics after [`SENDERS`].
fn send_until_crossed(to: SocketAddr, datagram: impl Fn(u32) -> Vec<u8>, crossed: impl Fn(u32) -> Option<bool>) -> u32 {
    for k in 0..SENDERS {
        let sender = UdpSocket::bind((LOOPBACK, 0)).expect("bind a sender");
        sender.send_to(&datagram(k), to).expect("send");
        let mut outcome = None;
        eventually(&format!("sender {k}'s datagram handled"), || {
            outcome = crossed(k);
            outcome.is_some()
        });
        if outcome == Some(true) {
            return k;
        }
    }
    panic!("{SENDERS} senders never reached a receiving thread");
}

#[test]
fn a_spread_node_receives_on_every_thread_joins_and_gets_messages_and_broadcasts() {
    for backend in backends() {
        let mut c = Cluster::new(backend, plain);
        c.add_with(Runtime::host_spread);
        let to = c.addr(0);
        // Alone (no other traffic), the node gets user messages from many
        // senders, some through the other thread's socket and the handoff.
        assert_eq!(c.runtime.stats().handoff_messages, 0);
        send_until_crossed(
            to,
            |k| user_datagram(100 + k..101 + k),
            |k| c.nodes[0].gossip.has_seen(100 + k).then(|| c.runtime.stats().handoff_messages > 0),
        );
        // It joins a normal node, both converge, and messages and
        // broadcasts go both ways.
        c.add();
        c.converge();
        for n in &c.nodes {
            assert_eq!(n.member.num_members(), 2, "{backend:?} {}", n.member.name());
            n.gossip.set_num_nodes(2);
        }
        c.nodes[1].member.send_best_effort(to, &7u32.to_be_bytes()).expect("fits a datagram");
        c.nodes[0].member.send_best_effort(c.addr(1), &8u32.to_be_bytes()).expect("fits a datagram");
        assert!(c.nodes[1].gossip.offer(&9u32.to_be_bytes()));
        assert!(c.nodes[0].gossip.offer(&10u32.to_be_bytes()));
        eventually("user messages and broadcasts both ways", || {
            let (spread, plain) = (&c.nodes[0].gossip, &c.nodes[1].gossip);
            spread.has_seen(7) && spread.has_seen(9) && plain.has_seen(8) && plain.has_seen(10)
        });
    }
}

fn handoff_depth_one(c: Config) -> Config {
    c.with_handoff_queue_depth(1)
}

#[test]
fn a_full_handoff_queue_drops_and_counts_without_losing_membership() {
    const BURST: u32 = 16;
    for backend in backends() {
        let mut c = Cluster::new(backend, handoff_depth_one);
        c.add_with(Runtime::host_spread);
        c.tune = plain;
        c.add();
        c.converge();
        let dropped = || c.nodes[0].member.metrics().get(DROPPED, "handoff_queue_full");
        // A compound of 16 user messages is queued under one lock: on a
        // receiving thread, at most one fits the queue (depth 1) and the
        // rest are dropped and counted; on the owner's socket all are
        // handled. (The peer's gossip may be dropped too meanwhile.)
        let tags = |k: u32| 1000 + k * BURST..1000 + (k + 1) * BURST;
        let seen = |k: u32| tags(k).filter(|&t| c.nodes[0].gossip.has_seen(t)).count();
        let before = std::cell::Cell::new(0);
        let k = send_until_crossed(
            c.addr(0),
            |k| {
                before.set(dropped());
                user_datagram(tags(k))
            },
            |k| match seen(k) {
                all if all == BURST as usize => Some(false),
                _ if dropped() - before.get() >= u64::from(BURST - 1) => Some(true),
                _ => None,
            },
        );
        assert!(seen(k) <= 1, "{backend:?}: {} of the burst reached the delegate", seen(k));
        // Membership is intact: both still count both, and a newcomer is
        // seen by the spread node (and sees it).
        for n in &c.nodes {
            assert_eq!(n.member.num_members(), 2, "{backend:?} {}", n.member.name());
        }
        let newcomer = c.add();
        c.await_joined(&[0, 1], &HashSet::from([format!("node-{newcomer}")]));
        c.await_joined(&[newcomer], &c.all_names());
        for (i, n) in c.nodes.iter().enumerate() {
            while let Ok(e) = n.events.try_recv() {
                assert_ne!(e.kind, NodeEventKind::Leave, "{backend:?} node-{i} lost {}", e.node.name);
            }
        }
    }
}

#[test]
fn shutting_a_spread_node_down_frees_its_port_on_every_thread() {
    for backend in backends() {
        let mut c = Cluster::new(backend, plain);
        c.add_with(Runtime::host_spread);
        let addr = c.addr(0);
        // Bound with SO_REUSEPORT on both threads: a plain bind is refused.
        assert!(UdpSocket::bind(addr).is_err(), "{backend:?}");
        c.nodes[0].member.shutdown().expect("running");
        eventually("the UDP port free on both threads", || UdpSocket::bind(addr).is_ok());
    }
}

/// A handle that was shut down and then dropped must not stop the node
/// hosted since in the slot it had.
#[test]
fn dropping_a_shut_down_handle_leaves_the_next_node_in_its_slot_running() {
    for backend in backends() {
        let runtime = Runtime::new(RuntimeOptions { threads: 1, backend: BackendChoice::Only(backend), pin: false })
            .expect("runtime starts");
        let first = runtime.host(base_config("first")).expect("hosted");
        first.shutdown().expect("running");
        let second = runtime.host(base_config("second")).expect("hosted");
        drop(first);
        assert_eq!(second.local_node().expect("second still running").name.as_str(), "second", "{backend:?}");
    }
}
