//! Hostile peers against live engine nodes on loopback, on every backend
//! this machine runs: forged datagrams from a plain UDP socket (the faults
//! of hashicorp/memberlist #358 and #180); 200 TCP connections that never
//! finish a request; 200 that send whole push/pull requests and never read
//! the reply, past Go's `maxPushPullRequests` (#259); and 300 stalled
//! connections, past the engine's bound on open inbound connections. What
//! is checked is what a user checks: both nodes still alive in each
//! other's view at the same incarnation, the forgeries and refusals
//! counted under their reasons, no bogus member, user messages still
//! delivered, which connections the node answered or closed, and a new
//! node still able to join. Every wait is on a condition with a bounded
//! deadline; every socket and node is closed at the end.

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringswim::config::{Config, Extensions};
use ringswim::delegate::{Delegate, NodeState};
use ringswim::engine::{Backend, BackendChoice, MAX_INBOUND_CONNECTIONS, Memberlist, Runtime, RuntimeOptions};
use ringswim::sim::Gossip;
use ringswim::swim::MAX_PUSH_PULL_REQUESTS;
use ringswim::swim::metrics::{PACKETS_REJECTED, STREAMS_REFUSED};
use ringswim::wire::Message;
use ringswim::wire::message::{Accusation, Alive, MessageType, PushNodeState, PushPull};
use socket2::{Domain, Socket, Type};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Long enough for anything below on a loaded 2-core machine; a test that
/// hits it fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// Slow connections opened at once (more than Go's `maxPushPullRequests`).
const SLOW_CONNECTIONS: usize = 200;
/// Stalled connections opened at once past [`MAX_INBOUND_CONNECTIONS`].
const STALLED_CONNECTIONS: usize = 300;
/// Zero bytes a bulky cluster's nodes add to their push/pull state: a
/// reply far bigger than what the kernel buffers for a client with a small
/// receive buffer and segment size (a few tens of KB), so that the node's
/// write of it cannot finish while the client does not read.
const BULKY_STATE: usize = 256 * 1024;

#[path = "common/backends.rs"]
mod backends;
use backends::backends;

struct Cluster {
    runtime: Runtime,
    nodes: Vec<(Memberlist, Arc<Gossip>)>,
    tcp_timeout: Duration,
    /// Whether every node adds [`BULKY_STATE`] to its push/pull state, with
    /// compression off (the zeros would compress to nothing, and a reply's
    /// first byte is then its message type) and no push/pull of its own
    /// making (Go's periodic one off, ringswim's extensions off), so that
    /// the only push/pulls a node serves are its joiners' and strangers'.
    bulky: bool,
}

impl Cluster {
    /// `n` nodes `node-{i}`, each joined to node 0, all alive at all.
    fn start(backend: Backend, n: usize, tcp_timeout: Duration) -> Cluster {
        Cluster::start_with(backend, n, tcp_timeout, false)
    }

    /// [`Cluster::start`] with [`Cluster::bulky`] nodes.
    fn start_bulky(backend: Backend, n: usize, tcp_timeout: Duration) -> Cluster {
        Cluster::start_with(backend, n, tcp_timeout, true)
    }

    fn start_with(backend: Backend, n: usize, tcp_timeout: Duration, bulky: bool) -> Cluster {
        // The tests run in parallel in one process, each with hundreds of
        // sockets at both ends: more than a soft limit of 1,024 allows.
        rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit");
        let runtime = Runtime::new(RuntimeOptions { threads: 2, backend: BackendChoice::Only(backend), pin: false })
            .expect("runtime starts");
        let mut c = Cluster { runtime, nodes: Vec::new(), tcp_timeout, bulky };
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
        let padding = if self.bulky {
            config.enable_compression = false;
            config.push_pull_interval = Duration::ZERO;
            config.extensions = Extensions::go();
            BULKY_STATE
        } else {
            0
        };
        let delegate = Padded { gossip: Arc::clone(&gossip), padding: vec![0; padding] };
        let config = config.with_delegate(Arc::new(delegate) as Arc<dyn Delegate>);
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

    fn refused(&self, i: usize, reason: &str) -> u64 {
        self.nodes[i].0.metrics().get(STREAMS_REFUSED, reason)
    }
}

/// A node's delegate: [`Gossip`], whose push/pull state is followed by
/// `padding`, zero bytes (which `Gossip` reads back as empty messages, and
/// ignores), made once: a copy per push/pull costs next to nothing even in
/// a debug build.
struct Padded {
    gossip: Arc<Gossip>,
    padding: Vec<u8>,
}

impl Delegate for Padded {
    fn notify_msg(&self, msg: &[u8]) {
        self.gossip.notify_msg(msg);
    }
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.gossip.get_broadcasts(overhead, limit)
    }
    fn local_state(&self, join: bool) -> Vec<u8> {
        let mut state = self.gossip.local_state(join);
        state.extend_from_slice(&self.padding);
        state
    }
    fn merge_remote_state(&self, buf: &[u8], join: bool) {
        self.gossip.merge_remote_state(buf, join);
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

/// Waits until the node has closed each of `conns` (end of stream or
/// reset), reading and dropping whatever it sent before.
fn await_closed_by_node(conns: &mut [TcpStream], backend: Backend) {
    let deadline = Instant::now() + DEADLINE;
    let mut buf = [0u8; 64 * 1024];
    for (k, s) in conns.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).expect("timeout");
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {} // a reply or part of one, then the close
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("{backend:?}: connection {k} still open ({e})"),
            }
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
/// node (its `tcp_timeout`; 200 is under [`MAX_INBOUND_CONNECTIONS`], so
/// none is ended before), and then a fourth node joins.
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
        assert_eq!(c.refused(0, "too_many_push_pulls"), 0, "{backend:?}");
        // Fewer than the bound on open connections: none ended early.
        assert_eq!(c.refused(0, "too_many_connections"), 0, "{backend:?}");
        // The node closes every one of them.
        await_closed_by_node(&mut slow, backend);
        drop(slow);
        c.add();
        c.await_all_alive();
        user_messages_arrive(&c, 20);
    }
}

/// A whole push/pull request with no member states and no user state (a
/// stranger's periodic one: it changes nobody's view).
fn push_pull_request() -> Vec<u8> {
    Message::PushPull(PushPull::from_encoded(false, 0, &[], &[])).to_vec()
}

/// A client that takes its replies slowly: a 4 KiB receive buffer (which
/// turns the kernel's autotuning off) and 536-byte segments (which keep
/// the node's send buffer small: Linux sizes it from the peer's segment
/// size), both set before connecting, so that the kernel holds a few tens
/// of KB of a reply at most.
fn slow_reader(to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    s.set_tcp_mss(536).expect("TCP_MAXSEG");
    s.connect_timeout(&to.into(), Duration::from_secs(10)).expect("connect");
    s.into()
}

/// The first byte the node sent on `s` (a reply's message type, with
/// compression off), waiting for it; left unread.
fn first_reply_byte(s: &TcpStream, k: usize, backend: Backend, deadline: Instant) -> u8 {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).expect("timeout");
    let mut byte = [0u8; 1];
    loop {
        match s.peek(&mut byte) {
            Ok(1) => return byte[0],
            Ok(_) => panic!("{backend:?}: client {k} closed without a reply"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("{backend:?}: client {k} got no reply ({e})"),
        }
    }
}

/// 200 strangers each send a node a whole push/pull request and never
/// read the reply, which is too big for the socket buffers
/// ([`BULKY_STATE`], [`slow_reader`]), so that the node cannot finish
/// writing it and each admitted request holds its place until
/// `tcp_timeout` (hashicorp/memberlist #259). The first 127 are admitted
/// (the start of a push/pull reply comes back) and the other 73 refused
/// (an error reply comes back), each refusal counted
/// (`ringswim.streams.refused{reason="too_many_push_pulls"}`), while both
/// nodes stay alive to each other at the same incarnation and user
/// messages arrive. Once the node has closed every one of them (the
/// admitted at their `tcp_timeout`), a third node joins.
///
/// Where ringswim differs from Go 0.2.2 (`net.go` `handleConn`): Go counts
/// a push/pull from its message type byte, before reading the rest, so a
/// stalled request holds a place too; ringswim takes a place only once the
/// whole request has arrived (stalled ones are bounded by
/// [`MAX_INBOUND_CONNECTIONS`] instead; see the next test). Go refuses by
/// closing the connection without a word; ringswim sends an error reply
/// first, which Go's `sendAndReceiveState` reports as a remote error. Go
/// frees the place once the reply is written and the remote state merged;
/// ringswim merges when the request arrives and frees the place once the
/// reply is written, or at `tcp_timeout`.
///
/// The nodes make no push/pulls of their own ([`Cluster::bulky`]), so every
/// place is a stranger's; the 200 requests arrive well within the
/// `tcp_timeout` of the first.
#[test]
fn push_pulls_past_the_cap_are_refused() {
    for backend in backends() {
        let mut c = Cluster::start_bulky(backend, 2, Duration::from_secs(5));
        let before: Vec<_> = (0..2).map(|i| c.view(i)).collect();
        let target = c.addr(0);
        let request = push_pull_request();
        let mut clients: Vec<TcpStream> = (0..SLOW_CONNECTIONS)
            .map(|_| {
                let mut s = slow_reader(target);
                s.write_all(&request).expect("write");
                s
            })
            .collect();
        let deadline = Instant::now() + DEADLINE;
        let (mut admitted, mut refused) = (0, 0);
        for (k, s) in clients.iter().enumerate() {
            match first_reply_byte(s, k, backend, deadline) {
                b if b == MessageType::PushPull as u8 => admitted += 1,
                b if b == MessageType::Err as u8 => refused += 1,
                b => panic!("{backend:?}: client {k} got message type {b}"),
            }
        }
        // Go's maxPushPullRequests: a push/pull is refused when 128 would
        // be in progress with it.
        assert_eq!(admitted, MAX_PUSH_PULL_REQUESTS - 1, "{backend:?}");
        assert_eq!(refused, SLOW_CONNECTIONS - admitted, "{backend:?}");
        assert_eq!(c.refused(0, "too_many_push_pulls"), refused as u64, "{backend:?}");
        // Meanwhile: probes, gossip and user messages go on.
        user_messages_arrive(&c, 30);
        for (i, view) in before.iter().enumerate() {
            assert_eq!(&c.view(i), view, "{backend:?} node-{i}'s view moved");
        }
        await_closed_by_node(&mut clients, backend);
        drop(clients);
        c.add();
        c.await_all_alive();
        user_messages_arrive(&c, 40);
        assert_eq!(c.refused(0, "too_many_push_pulls"), refused as u64, "{backend:?}: the join was refused");
    }
}

/// Waits until the node has ended at least `at_least` of the `stalled`
/// connections, the oldest ones (those seen closed are the first ones
/// opened; only the bound ends them here, their `tcp_timeout` being past
/// the test's deadline), and checks that each was counted. Returns how
/// many it ended.
fn await_oldest_ended(c: &Cluster, stalled: &[TcpStream], backend: Backend, at_least: usize) -> usize {
    let mut ended = 0;
    eventually("the oldest stalled connections ended", || {
        let closed: Vec<usize> = (0..stalled.len()).filter(|&k| closed_by_node(&stalled[k], k, backend)).collect();
        ended = closed.len();
        ended >= at_least && closed.iter().enumerate().all(|(i, &k)| i == k)
    });
    // Read after the scan: every one seen closed had been counted by then.
    // The count may be higher: an honest connection still being read when
    // it was the oldest is ended too (the node cannot tell it from a
    // stalled one).
    let counted = c.refused(0, "too_many_connections");
    assert!(counted >= ended as u64, "{backend:?}: {ended} ended, {counted} counted");
    ended
}

/// Whether the node has closed `s` (end of stream or reset), not waiting;
/// `s` is non-blocking, and the node sends a stalled connection nothing.
fn closed_by_node(s: &TcpStream, k: usize, backend: Backend) -> bool {
    let mut byte = [0u8; 1];
    match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("{backend:?}: stalled connection {k} got a reply"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => false,
        Err(e) => panic!("{backend:?}: stalled connection {k}: {e}"),
    }
}

/// 300 stalled connections to one node (as in
/// [`slow_connections_do_not_stall_the_node`]), past
/// [`MAX_INBOUND_CONNECTIONS`] (256), opened one after another: the node
/// holds at most 256 and ends the oldest as newer ones come, long before
/// their `tcp_timeout` (set past the test's deadline, so every close seen
/// is the bound's), each counted
/// (`ringswim.streams.refused{reason="too_many_connections"}`).
/// Meanwhile both nodes stay alive to each other at the same incarnation,
/// user messages arrive, and a third node joins through it while the
/// stalled connections are held (at the bound, its connection ends the
/// oldest stalled one instead of being refused); the ones ended are still
/// the oldest.
#[test]
fn connections_past_the_bound_end_the_oldest_stalled() {
    for backend in backends() {
        let mut c = Cluster::start(backend, 2, 2 * DEADLINE);
        let before: Vec<_> = (0..2).map(|i| c.view(i)).collect();
        let target = c.addr(0);
        let stalled: Vec<TcpStream> = (0..STALLED_CONNECTIONS)
            .map(|k| {
                let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(10)).expect("connect");
                match k % 3 {
                    0 => {}
                    1 => s.write_all(&push_pull_prefix(1, true, 12)).expect("write"),
                    _ => s.write_all(&push_pull_prefix(1_000_000, false, usize::MAX)).expect("write"),
                }
                s.set_nonblocking(true).expect("non-blocking");
                s
            })
            .collect();
        // At most the bound open.
        let ended = await_oldest_ended(&c, &stalled, backend, STALLED_CONNECTIONS - MAX_INBOUND_CONNECTIONS);
        // Meanwhile: probes, gossip and user messages go on.
        user_messages_arrive(&c, 50);
        for (i, view) in before.iter().enumerate() {
            assert_eq!(&c.view(i), view, "{backend:?} node-{i}'s view moved");
        }
        // A join through the node while it holds the stalled ones: at the
        // bound, the joiner's connection ends the oldest stalled one rather
        // than being refused (or takes the place an honest connection left).
        c.add();
        c.await_all_alive();
        user_messages_arrive(&c, 60);
        await_oldest_ended(&c, &stalled, backend, ended);
        assert_eq!(c.refused(0, "too_many_push_pulls"), 0, "{backend:?}");
    }
}
