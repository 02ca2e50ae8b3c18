//! The driver contract as an embedder meets it: cores run by a small driver
//! written against `swim::Protocol` and `swim::drain` alone, with delegates
//! that record what they are told. Every notification delegate is reached
//! (events, conflicts, user messages) without the driver handling a single
//! effect itself.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use ringswim::config::Config;
use ringswim::delegate::{ConflictDelegate, Delegate, EventDelegate, Node};
use ringswim::swim::{Core, Effect, Protocol, Sink, StreamRequest, Time, Transmit, drain};

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, i + 1)), 7946)
}

/// Records every notification, as `"kind subject"` strings, and serves a
/// meta the test can change.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    meta: Mutex<Vec<u8>>,
}

impl Recorder {
    fn push(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl EventDelegate for Recorder {
    fn notify_join(&self, node: &Node) {
        self.push(format!("join {node}"));
    }
    fn notify_leave(&self, node: &Node) {
        self.push(format!("leave {node} {}", node.state));
    }
    fn notify_update(&self, node: &Node) {
        self.push(format!("update {node} {}", String::from_utf8_lossy(&node.meta)));
    }
}

impl ConflictDelegate for Recorder {
    fn notify_conflict(&self, existing: &Node, other: &Node) {
        self.push(format!("conflict {existing} {} {}", existing.addr, other.addr));
    }
}

impl Delegate for Recorder {
    fn node_meta(&self, _limit: usize) -> Vec<u8> {
        self.meta.lock().unwrap().clone()
    }
    fn notify_msg(&self, msg: &[u8]) {
        self.push(format!("msg {}", String::from_utf8_lossy(msg)));
    }
}

/// What one drain left for the driver: it acts once the drain is over.
#[derive(Default)]
struct Pending {
    transmits: VecDeque<Transmit>,
    streams: VecDeque<StreamRequest>,
    timer: Option<Time>,
    /// Effects the driver saw: only counted, never acted on.
    effects: usize,
}

impl Sink for Pending {
    fn transmit(&mut self, t: Transmit) {
        self.transmits.push_back(t);
    }
    fn open_stream(&mut self, r: StreamRequest) {
        self.streams.push_back(r);
    }
    fn effect(&mut self, _: Effect) {
        self.effects += 1;
    }
    fn timer(&mut self, at: Option<Time>) {
        self.timer = at;
    }
}

/// Cores on a perfect network: datagrams and streams arrive at once.
struct Driver {
    nodes: Vec<(SocketAddr, Core<StdRng>, Pending)>,
    now: Time,
}

impl Driver {
    fn new() -> Driver {
        Driver { nodes: Vec::new(), now: Time::from_epoch(Duration::from_secs(100)) }
    }

    /// Starts a core named `name` at `addr(i)` with `recorder` as all its
    /// delegates; its index.
    fn start(&mut self, name: &str, i: u8, recorder: &Arc<Recorder>) -> usize {
        let config = Config::default_local()
            .with_name(name)
            .with_events(Arc::clone(recorder) as Arc<dyn EventDelegate>)
            .with_conflict(Arc::clone(recorder) as Arc<dyn ConflictDelegate>)
            .with_delegate(Arc::clone(recorder) as Arc<dyn Delegate>);
        let mut core = Core::new(config, addr(i), self.now, StdRng::seed_from_u64(u64::from(i))).expect("core");
        core.start(self.now);
        self.nodes.push((addr(i), core, Pending::default()));
        let n = self.nodes.len() - 1;
        self.drain(n);
        n
    }

    fn drain(&mut self, n: usize) {
        let (_, core, pending) = &mut self.nodes[n];
        drain(core, pending);
    }

    /// Runs a command on core `n`, then lets the network settle.
    fn command(&mut self, n: usize, f: impl FnOnce(&mut Core<StdRng>, Time)) {
        let now = self.now;
        f(&mut self.nodes[n].1, now);
        self.drain(n);
        self.settle();
    }

    fn find(&self, to: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|(a, _, _)| *a == to)
    }

    /// Delivers everything pending until nothing is.
    fn settle(&mut self) {
        let now = self.now;
        for _ in 0..10_000 {
            let Some(n) = (0..self.nodes.len())
                .find(|&n| !self.nodes[n].2.transmits.is_empty() || !self.nodes[n].2.streams.is_empty())
            else {
                return;
            };
            let from = self.nodes[n].0;
            if let Some(mut t) = self.nodes[n].2.transmits.pop_front() {
                if let Some(to) = self.find(t.to) {
                    Protocol::handle_packet(&mut self.nodes[to].1, from, &mut t.bytes, now);
                    self.drain(to);
                }
                continue;
            }
            let req = self.nodes[n].2.streams.pop_front().expect("a stream");
            let reply = match self.find(req.to) {
                Some(to) => {
                    let body = Protocol::stream_connected(&mut self.nodes[n].1, req.id);
                    let reply = Protocol::handle_stream(&mut self.nodes[to].1, from, body, now);
                    Protocol::stream_reply_done(&mut self.nodes[to].1, from);
                    self.drain(to);
                    reply.ok_or(ringswim::swim::StreamError::Closed)
                }
                None => Err(ringswim::swim::StreamError::Refused),
            };
            Protocol::handle_stream_reply(&mut self.nodes[n].1, req.id, reply, now);
            self.drain(n);
        }
        panic!("the network does not settle");
    }

    /// Runs every node's timer up to `now + d`.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self.nodes.iter().filter_map(|(_, _, p)| p.timer).min();
            let Some(at) = next.filter(|&at| at <= end) else { break };
            self.now = self.now.max(at);
            for n in 0..self.nodes.len() {
                if self.nodes[n].2.timer.is_some_and(|t| t <= self.now) {
                    let now = self.now;
                    Protocol::handle_timeout(&mut self.nodes[n].1, now);
                    self.drain(n);
                }
            }
            self.settle();
        }
        self.now = end;
    }
}

#[test]
fn drain_reaches_every_notification_delegate() {
    let (a_rec, b_rec, c_rec) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()), Arc::default());
    let mut d = Driver::new();
    let a = d.start("a", 0, &a_rec);
    let b = d.start("b", 1, &b_rec);
    d.command(b, |core, now| {
        core.join(&[addr(0)], now);
    });
    assert_eq!(a_rec.calls(), ["join a", "join b"], "EventDelegate::notify_join, ourselves first as in Go");
    assert_eq!(b_rec.calls(), ["join b", "join a"]);

    // A user message over a stream and one in a datagram: Delegate::notify_msg.
    let b_node = d.nodes[a].1.member("b").expect("b").node.clone();
    d.command(a, |core, now| core.send_reliable(&b_node, b"over tcp", now));
    d.command(a, |core, _| core.send_best_effort(&b_node, b"over udp").expect("fits a datagram"));
    assert_eq!(b_rec.calls()[2..], ["msg over tcp", "msg over udp"]);

    // New meta: EventDelegate::notify_update at the peer.
    *b_rec.meta.lock().unwrap() = b"v2".to_vec();
    d.command(b, |core, now| core.update_node(now).expect("update"));
    d.run_for(Duration::from_secs(1));
    assert!(a_rec.calls().contains(&"update b v2".to_owned()), "{:?}", a_rec.calls());

    // Another process claiming the name "b" from another address:
    // ConflictDelegate::notify_conflict.
    let c = d.start("b", 2, &c_rec);
    d.command(c, |core, now| {
        core.join(&[addr(0)], now);
    });
    let conflict = format!("conflict b {} {}", addr(1).ip(), addr(2).ip());
    assert!(a_rec.calls().contains(&conflict), "{:?}", a_rec.calls());

    // b leaves: EventDelegate::notify_leave.
    d.command(b, |core, now| core.leave(now));
    d.run_for(Duration::from_secs(1));
    assert!(a_rec.calls().contains(&"leave b left".to_owned()), "{:?}", a_rec.calls());

    // The driver handled no effect itself; it only saw them go by.
    assert!(d.nodes.iter().all(|(_, _, p)| p.effects > 0));
}
