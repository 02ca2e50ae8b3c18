//! Hostile peers against live engine nodes on loopback, on every backend
//! this machine runs: forged datagrams from a plain UDP socket (the faults
//! of hashicorp/memberlist #358 and #180), and 200 TCP connections that
//! never finish a request. What is checked is what a user checks: both
//! nodes still alive in each other's view at the same incarnation, the
//! forgeries counted under their reasons, no bogus member, user messages
//! still delivered, the slow connections closed by the node, and a new
//! node still able to join. Every wait is on a condition with a bounded
//! deadline; every socket and node is closed at the end.

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringswim::config::Config;
use ringswim::delegate::{Delegate, NodeState};
use ringswim::engine::{Backend, BackendChoice, Memberlist, Runtime, RuntimeOptions};
use ringswim::sim::Gossip;
use ringswim::swim::metrics::{PACKETS_REJECTED, STREAMS_REFUSED};
use ringswim::wire::Message;
use ringswim::wire::message::{Accusation, Alive, PushNodeState, PushPull};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Long enough for anything below on a loaded 2-core machine; a test that
/// hits it fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// Slow connections opened at once (more than Go's `maxPushPullRequests`).
const SLOW_CONNECTIONS: usize = 200;

#[path = "common/backends.rs"]
mod backends;
use backends::backends;

struct Cluster {
    runtime: Runtime,
    nodes: Vec<(Memberlist, Arc<Gossip>)>,
    tcp_timeout: Duration,
}

impl Cluster {
    /// `n` nodes `node-{i}`, each joined to node 0, all alive at all.
    fn start(backend: Backend, n: usize, tcp_timeout: Duration) -> Cluster {
        let runtime = Runtime::new(RuntimeOptions { threads: 2, backend: BackendChoice::Only(backend), pin: false })
            .expect("runtime starts");
        let mut c = Cluster { runtime, nodes: Vec::new(), tcp_timeout };
        for _ in 0..n {
            c.add();
        }
        c.await_all_alive();
        c
    }

    /// Hosts the next node and joins it to node 0.
    fn add(&mut self) {
        let i = self.nodes.len();
        let gossip = Arc::new(Gossip::new(4));
        let mut config = Config::default_local().with_name(format!("node-{i}"));
        config.bind_addr = LOOPBACK;
        config.bind_port = 0;
        config.tcp_timeout = self.tcp_timeout;
        let config = config.with_delegate(Arc::clone(&gossip) as Arc<dyn Delegate>);
        let member = self.runtime.host(config).expect("hosted");
        if i > 0 {
            assert!(member.join(&[self.addr(0)]).expect("join node 0") >= 1, "node-{i} joined nobody");
        }
        self.nodes.push((member, gossip));
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].0.local_node().expect("running").address()
    }

    /// Node `i`'s view: name to (state, incarnation).
    fn view(&self, i: usize) -> BTreeMap<String, (NodeState, u32)> {
        self.nodes[i]
            .0
            .member_states()
            .into_iter()
            .map(|m| (m.node.name.to_string(), (m.node.state, m.incarnation)))
            .collect()
    }

    /// Waits until every node holds every node, and only those, alive.
    fn await_all_alive(&self) {
        let names: HashSet<String> = (0..self.nodes.len()).map(|i| format!("node-{i}")).collect();
        eventually("every node alive at every node", || {
            (0..self.nodes.len()).all(|i| {
                let view = self.view(i);
                view.len() == names.len()
                    && view.iter().all(|(name, (state, _))| names.contains(name) && *state == NodeState::Alive)
            })
        });
    }

    fn rejected(&self, i: usize, reason: &str) -> u64 {
        self.nodes[i].0.metrics().get(PACKETS_REJECTED, reason)
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

/// A user message (4-byte number first) from one node to the other, best
/// effort, and a user broadcast the other way: both arrive.
fn user_messages_arrive(c: &Cluster, tag: u32) {
    c.nodes[0].0.send_best_effort(c.addr(1), &tag.to_be_bytes()).expect("fits a datagram");
    let mut broadcast = (tag + 1).to_be_bytes().to_vec();
    broadcast.extend_from_slice(b"broadcast");
    assert!(c.nodes[1].1.offer(&broadcast), "a new broadcast");
    eventually("the best-effort message and the broadcast", || {
        c.nodes[1].1.has_seen(tag) && c.nodes[0].1.has_seen(tag + 1)
    });
}

/// Forged datagrams from a stranger's UDP socket: accusations and an alive
/// at incarnation `u32::MAX` (the refutation would wrap to 0, #358), and an
/// alive for a new name with a malformed `Vsn` (#180). Each is refused and
/// counted; nobody's state or incarnation moves, no member is added, and a
/// third node still joins.
#[test]
fn forged_datagrams_change_nothing_and_are_counted() {
    for backend in backends() {
        let mut c = Cluster::start(backend, 2, Duration::from_secs(1));
        let before: Vec<_> = (0..2).map(|i| c.view(i)).collect();
        let stranger = UdpSocket::bind((LOOPBACK, 0)).expect("bind");
        let target = c.addr(0);
        let ip = [127, 0, 0, 1];
        let good_vsn = Config::default_local().build_vsn_array();
        let forged = [
            Message::Suspect(Accusation { incarnation: u32::MAX, node: "node-0", from: "mallory" }),
            Message::Suspect(Accusation { incarnation: u32::MAX, node: "node-1", from: "mallory" }),
            Message::Alive(Alive {
                incarnation: 1,
                node: "mallory",
                addr: &ip,
                port: stranger.local_addr().expect("addr").port(),
                meta: &[],
                vsn: &[1, 5],
            }),
            Message::Alive(Alive {
                incarnation: u32::MAX,
                node: "node-1",
                addr: &ip,
                port: c.addr(1).port(),
                meta: b"imposter",
                vsn: &good_vsn,
            }),
        ];
        for message in &forged {
            stranger.send_to(&message.to_vec(), target).expect("send");
        }
        eventually("the forgeries counted", || {
            c.rejected(0, "implausible_incarnation") >= 3 && c.rejected(0, "bad_vsn") >= 1
        });
        assert_eq!(c.rejected(0, "implausible_incarnation"), 3, "{backend:?}");
        assert_eq!(c.rejected(0, "bad_vsn"), 1, "{backend:?}");
        // Alive news about node-1 goes out by gossip and probes; a probe
        // round later, both views are what they were.
        user_messages_arrive(&c, 1);
        for (i, view) in before.iter().enumerate() {
            assert_eq!(&c.view(i), view, "{backend:?} node-{i}'s view moved");
            assert_eq!(c.nodes[i].0.metrics().get(PACKETS_REJECTED, "incarnation_exhausted"), 0);
        }
        c.add();
        c.await_all_alive();
        for i in 0..3 {
            assert!(!c.view(i).contains_key("mallory"), "{backend:?} node-{i} took the bogus member");
        }
    }
}

/// A push/pull whose header promises `nodes` states; `cut` bytes of it.
fn push_pull_prefix(nodes: usize, with_state: bool, cut: usize) -> Vec<u8> {
    let mut states = Vec::new();
    if with_state {
        let vsn = Config::default_local().build_vsn_array();
        PushNodeState { name: "slow", addr: &[127, 0, 0, 1], port: 9, meta: &[], incarnation: 1, state: 0, vsn: &vsn }
            .write(&mut states);
    }
    let mut bytes = Message::PushPull(PushPull::from_encoded(true, nodes, &states, &[])).to_vec();
    bytes.truncate(cut.min(bytes.len() - 1));
    bytes
}

/// 200 TCP connections to one node that never finish a request (a third
/// send nothing, a third part of a push/pull header, a third a header
/// promising a million states) while the node goes on probing and
/// gossiping: the two nodes stay alive to each other at the same
/// incarnation, user messages arrive, a third node joins through it (an
/// honest push/pull is not refused: a stalled request holds none of Go's
/// `maxPushPullRequests` places), every slow connection is closed by the
/// node (its `tcp_timeout`), and then a fourth node joins.
#[test]
fn slow_connections_do_not_stall_the_node() {
    for backend in backends() {
        // Longer than local's 1 s, so that the connections are held
        // through several probe rounds (probe interval 1 s).
        let mut c = Cluster::start(backend, 2, Duration::from_secs(5));
        let before: Vec<_> = (0..2).map(|i| c.view(i)).collect();
        let accepts_before = c.runtime.stats().tcp_accepts;
        let target = c.addr(0);
        let mut slow: Vec<TcpStream> = Vec::with_capacity(SLOW_CONNECTIONS);
        for k in 0..SLOW_CONNECTIONS {
            let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(10)).expect("connect");
            match k % 3 {
                0 => {}
                1 => s.write_all(&push_pull_prefix(1, true, 12)).expect("write"),
                _ => s.write_all(&push_pull_prefix(1_000_000, false, usize::MAX)).expect("write"),
            }
            slow.push(s);
        }
        eventually("every slow connection accepted", || {
            c.runtime.stats().tcp_accepts >= accepts_before + SLOW_CONNECTIONS as u64
        });
        // Meanwhile: probes, gossip and user messages go on.
        user_messages_arrive(&c, 10);
        for (i, view) in before.iter().enumerate() {
            assert_eq!(&c.view(i), view, "{backend:?} node-{i}'s view moved");
        }
        c.add();
        c.await_all_alive();
        assert_eq!(c.nodes[0].0.metrics().get(STREAMS_REFUSED, "too_many_push_pulls"), 0, "{backend:?}");
        // The node closes every one of them.
        let deadline = Instant::now() + DEADLINE;
        for (k, s) in slow.iter_mut().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            s.set_read_timeout(Some(left)).expect("timeout");
            let mut buf = [0u8; 256];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {} // an error reply, then the close
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("{backend:?}: slow connection {k} still open ({e})"),
                }
            }
        }
        drop(slow);
        c.add();
        c.await_all_alive();
        user_messages_arrive(&c, 20);
    }
}
