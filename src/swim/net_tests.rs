//! The network half of [`Core`] against Go's `state_test.go` probe and gossip
//! scenarios, on virtual time: several cores in one test, drained with
//! [`drain`](crate::swim::drain) after every input, their [`Transmit`]s moved
//! by hand (instantly, in order), timers fired by advancing `now`. A node that Go's tests leave unstarted ("never gets
//! started", "bogus address") is an address with no core behind it: packets
//! to it vanish.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng};

use super::*;
use crate::config::{PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN};
use crate::delegate::{Delegate, PingDelegate};
use crate::swim::metrics::{self, PROBES};
use crate::swim::{Outbox, Sample, drain};
use crate::wire::message::{Ack, Ping};
use crate::wire::{DecodeOptions, EncodeOptions, PacketDecoder, encode_packet};

const PORT: u16 = 7946;

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, u8::try_from(i + 1).unwrap())), PORT)
}

fn name(i: usize) -> String {
    format!("node{i}")
}

/// Go's tests start from `DefaultLANConfig` (`testConfig`), with Go's
/// behaviour (the ringswim extensions are tested in `extensions_tests.rs`).
fn config(i: usize) -> Config {
    let mut c = Config::default_lan().with_name(name(i)).with_go_behaviour();
    c.bind_port = PORT;
    c
}

/// Cores at `addr(i)`; `None` is a node that is down (or was never started).
struct Cluster {
    cores: Vec<Option<Core<StdRng>>>,
    /// What each core's last drains left to move (its effects go to
    /// `effects`, its timer stays here).
    outboxes: Vec<Outbox>,
    effects: Vec<Vec<Effect>>,
    now: Time,
    /// Datagrams moved so far.
    sent: usize,
    /// Nodes whose incoming datagrams are dropped (streams still reach them).
    udp_blocked: Vec<usize>,
    /// Hash of every datagram and stream moved, in order (same seeds, same
    /// digest).
    digest: std::hash::DefaultHasher,
    /// Directed links (from, to) that drop datagrams.
    cut: Vec<(usize, usize)>,
    /// Streams to down nodes time out at their deadline instead of being
    /// refused at once.
    streams_time_out: bool,
    /// Streams waiting for their deadline: (node, id, deadline).
    timing_out: Vec<(usize, StreamId, Time)>,
}

impl Cluster {
    /// `n` nodes, node `i` configured by `configure(i, config)`; those in
    /// `down` get no core.
    fn new(n: usize, down: &[usize], configure: impl Fn(usize, &mut Config)) -> Cluster {
        let now = Time::from_epoch(Duration::from_secs(1_000));
        let cores = (0..n)
            .map(|i| {
                (!down.contains(&i)).then(|| {
                    let mut c = config(i);
                    configure(i, &mut c);
                    Core::new(c, addr(i), now, StdRng::seed_from_u64(i as u64 + 7)).expect("core")
                })
            })
            .collect();
        let mut cluster = Cluster {
            cores,
            outboxes: (0..n).map(|_| Outbox::default()).collect(),
            effects: vec![Vec::new(); n],
            now,
            sent: 0,
            udp_blocked: Vec::new(),
            cut: Vec::new(),
            digest: std::hash::DefaultHasher::new(),
            streams_time_out: false,
            timing_out: Vec::new(),
        };
        cluster.collect_effects();
        cluster
    }

    fn core(&mut self, i: usize) -> &mut Core<StdRng> {
        self.cores[i].as_mut().expect("node is up")
    }

    /// Node `i` hears that node `j` is alive at incarnation 1 (Go's tests
    /// call `aliveNode` directly), with `vsn` (empty: none).
    fn tell(&mut self, i: usize, j: usize, vsn: &[u8]) {
        let now = self.now;
        let ip = ip_to_wire(addr(j).ip());
        let n = name(j);
        let a = Alive { incarnation: 1, node: &n, addr: &ip, port: PORT, meta: &[], vsn };
        self.core(i).handle_alive(&a, now);
    }

    /// Every node learns every other (with the default versions).
    fn full_mesh(&mut self) {
        let vsn = config(0).build_vsn_array();
        for i in 0..self.cores.len() {
            if self.cores[i].is_none() {
                continue;
            }
            for j in 0..self.cores.len() {
                if i != j {
                    self.tell(i, j, &vsn);
                }
            }
        }
    }

    /// Drains core `i` (if it is up) into its outbox; its effects into
    /// `effects`.
    fn drain(&mut self, i: usize) {
        if let Some(core) = self.cores[i].as_mut() {
            drain(core, &mut self.outboxes[i]);
            self.effects[i].append(&mut self.outboxes[i].effects);
        }
    }

    /// Drains every core: what commands and direct inputs left becomes
    /// effects (and outputs to move).
    fn collect_effects(&mut self) {
        for i in 0..self.cores.len() {
            self.drain(i);
        }
    }

    /// Moves datagrams, then streams, until none is left; every core that
    /// handled something is drained at once.
    fn deliver(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.cores.len() {
                self.drain(i);
                let transmits = std::mem::take(&mut self.outboxes[i].transmits);
                for tx in transmits {
                    moved = true;
                    self.sent += 1;
                    std::hash::Hash::hash(&(i, tx.to, &tx.bytes), &mut self.digest);
                    let now = self.now;
                    let to = (0..self.cores.len())
                        .find(|&j| addr(j) == tx.to && !self.udp_blocked.contains(&j) && !self.cut.contains(&(i, j)));
                    if let Some(j) = to
                        && let Some(core) = self.cores[j].as_mut()
                    {
                        let mut bytes = tx.bytes;
                        core.handle_packet(addr(i), &mut bytes, now);
                        self.drain(j);
                    }
                }
            }
            for i in 0..self.cores.len() {
                self.drain(i);
                while !self.outboxes[i].streams.is_empty() {
                    let req = self.outboxes[i].streams.remove(0);
                    moved = true;
                    let now = self.now;
                    let to = (0..self.cores.len()).find(|&j| addr(j) == req.to);
                    // Encoded only once connected, as a driver does.
                    let connected = to.is_some_and(|j| self.cores[j].is_some());
                    let mut bytes = if connected { self.core(i).stream_connected(req.id) } else { Vec::new() };
                    std::hash::Hash::hash(&(i, req.id, req.to, &bytes), &mut self.digest);
                    let reply = match to.filter(|_| connected) {
                        Some(j) => {
                            let reply = self.core(j).handle_stream(addr(i), &mut bytes, now);
                            self.core(j).stream_reply_done(addr(i));
                            self.drain(j);
                            reply.ok_or(StreamError::Closed)
                        }
                        None if self.streams_time_out => {
                            self.timing_out.push((i, req.id, req.deadline));
                            continue;
                        }
                        None => Err(StreamError::Refused),
                    };
                    self.core(i).handle_stream_reply(req.id, reply, now);
                    self.drain(i);
                }
            }
            // Streams that time out, at their deadline.
            let now = self.now;
            let due: Vec<(usize, StreamId, Time)> = self.timing_out.iter().copied().filter(|s| s.2 <= now).collect();
            self.timing_out.retain(|s| s.2 > now);
            for (i, id, _) in due {
                moved = true;
                if let Some(core) = self.cores[i].as_mut() {
                    core.handle_stream_reply(id, Err(StreamError::Timeout), now);
                    self.drain(i);
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs every timer due up to `end`, delivering packets in between;
    /// leaves `now` at `end`.
    fn run_until(&mut self, end: Time) {
        for _ in 0..1_000_000 {
            self.deliver();
            let streams = self.timing_out.iter().map(|s| s.2);
            let timers =
                (0..self.cores.len()).filter(|&i| self.cores[i].is_some()).filter_map(|i| self.outboxes[i].timer);
            let next = timers.chain(streams).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for i in 0..self.cores.len() {
                        if self.outboxes[i].timer.is_some_and(|d| d <= now)
                            && let Some(c) = self.cores[i].as_mut()
                        {
                            c.handle_timeout(now);
                            self.drain(i);
                        }
                    }
                }
                _ => {
                    self.now = self.now.max(end);
                    self.deliver();
                    return;
                }
            }
        }
        panic!("timers do not advance");
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    fn state(&mut self, i: usize, j: usize) -> NodeState {
        self.core(i).member(&name(j)).expect("member").state()
    }

    fn joins_seen(&self, i: usize) -> Vec<String> {
        self.effects[i]
            .iter()
            .filter_map(|e| match e {
                Effect::Event(NodeEvent { kind: NodeEventKind::Join, node }) => Some(node.name.to_string()),
                _ => None,
            })
            .collect()
    }
}

/// Go `TestMemberList_Probe`: a probe tick pings the one other member, which
/// acks; it stays alive and one sequence number is used.
#[test]
fn go_probe() {
    let mut c = Cluster::new(2, &[], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(1);
            cfg.probe_interval = ms(10);
        }
    });
    c.full_mesh();
    let now = c.now;
    c.core(0).probe(now);
    assert_eq!(c.core(0).probe_in_progress(), Some((1, "node1")));
    c.deliver();
    assert_eq!(c.state(0, 1), NodeState::Alive);
    assert_eq!(c.core(0).net.seq_no, 1);
    assert_eq!(c.core(0).probe_in_progress(), None, "the ack ended the probe");
    assert_eq!(c.core(0).poll_timeout(), None, "no timer left");
}

#[derive(Default)]
struct Pings {
    completed: Mutex<Vec<(String, Duration, Vec<u8>)>>,
}

impl PingDelegate for Pings {
    fn ack_payload(&self) -> Vec<u8> {
        b"pong".to_vec()
    }
    fn notify_ping_complete(&self, node: &Node, rtt: Duration, payload: &[u8]) {
        self.completed.lock().unwrap().push((node.name.to_string(), rtt, payload.to_vec()));
    }
}

/// Go `TestMemberList_ProbeNode`: a direct probe of a member announced
/// without versions is acked; the ping delegate sees the peer's ack payload.
#[test]
fn go_probe_node() {
    let pings = Arc::new(Pings::default());
    let p = Arc::clone(&pings);
    let mut c = Cluster::new(2, &[], move |_, cfg| {
        cfg.probe_timeout = ms(1);
        cfg.probe_interval = ms(10);
        cfg.ping = Some(p.clone());
    });
    // Go's test announces node1 without versions; ringswim refuses such an
    // alive (see `fault_tests::malformed_versions_never_poison_the_cluster`).
    let vsn = config(0).build_vsn_array();
    c.tell(0, 1, &vsn);
    let now = c.now;
    c.core(0).probe_node_by_name("node1", now);
    c.deliver();
    assert_eq!(c.state(0, 1), NodeState::Alive);
    assert_eq!(c.core(0).net.seq_no, 1);
    let done = pings.completed.lock().unwrap().clone();
    assert_eq!(done, vec![("node1".to_owned(), Duration::ZERO, b"pong".to_vec())]);
}

/// Go `TestMemberList_ProbeNode_Suspect`: a member that does not answer is
/// suspect at the end of the probe interval, and an indirect probe went
/// through one of the two live peers.
#[test]
fn go_probe_node_suspect() {
    let mut c = Cluster::new(4, &[3], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(1);
            cfg.probe_interval = ms(10);
        }
    });
    let vsn = config(0).build_vsn_array();
    for j in 1..4 {
        c.tell(0, j, &vsn);
    }
    let now = c.now;
    c.core(0).probe_node_by_name("node3", now);
    c.run_for(ms(10));
    assert_eq!(c.state(0, 3), NodeState::Suspect);
    assert_eq!(c.core(0).probe_in_progress(), None);
    let (s1, s2) = (c.core(1).net.seq_no, c.core(2).net.seq_no);
    assert!(s1 == 1 || s2 == 1, "bad seqnos {s1}, {s2}");
}

/// Go's `memberlist.probeNode` timer: a probe lasts from its ping to its
/// end, here an ack at once, then the end of the interval with no ack.
#[test]
fn probe_node_is_timed_from_ping_to_end() {
    let mut c = Cluster::new(3, &[2], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(1);
            cfg.probe_interval = ms(10);
        }
    });
    let vsn = config(0).build_vsn_array();
    for j in 1..3 {
        c.tell(0, j, &vsn);
    }
    let _ = c.core(0).drain_samples().count();
    let now = c.now;
    c.core(0).probe_node_by_name("node1", now);
    c.deliver();
    let now = c.now;
    c.core(0).probe_node_by_name("node2", now);
    c.run_for(ms(10));
    let probes: Vec<Sample> = c.core(0).drain_samples().filter(|s| matches!(s, Sample::ProbeNode(_))).collect();
    assert_eq!(probes, [Sample::ProbeNode(Duration::ZERO), Sample::ProbeNode(ms(10))]);
}

/// Go `TestMemberList_ProbeNode_Suspect_Dogpile`: the suspicion a failed
/// probe starts times out after Lifeguard's timeout, shortened by
/// independent confirmations (max timeout 2× the nominal 500 ms).
#[test]
fn go_probe_node_suspect_dogpile() {
    // (peers, confirmations, expected timeout); Go's 604 ms is rounded.
    let cases = [
        (1, 0, ms(500)),
        (2, 0, ms(500)),
        (3, 0, ms(500)),
        (4, 0, ms(1000)),
        (5, 0, ms(1000)),
        (5, 1, ms(750)),
        (5, 2, ms(604)),
        (5, 3, ms(500)),
        (5, 4, ms(500)),
    ];
    for (case, &(peers, confirmations, expected)) in cases.iter().enumerate() {
        // Node 0 under test, nodes 1..peers alive, node `peers` silent.
        let bad = peers;
        let mut c = Cluster::new(peers + 1, &[bad], |i, cfg| {
            if i == 0 {
                cfg.probe_timeout = ms(1);
                cfg.probe_interval = ms(100);
                cfg.suspicion_mult = 5;
                cfg.suspicion_max_timeout_mult = 2;
            }
        });
        let vsn = config(0).build_vsn_array();
        for j in 1..=peers {
            c.tell(0, j, &vsn);
        }
        let now = c.now;
        c.core(0).probe_node_by_name(&name(bad), now);
        c.run_for(ms(100));
        assert_eq!(c.state(0, bad), NodeState::Suspect, "case {case}");
        let suspected = c.now;

        for j in 0..confirmations {
            let (from, node) = (format!("peer{j}"), name(bad));
            let now = c.now;
            c.core(0).handle_suspect(&Accusation { incarnation: 1, node: &node, from: &from }, now);
        }
        let deadline = c.core(0).suspicion_deadline(&name(bad)).expect("suspicion");
        let took = deadline - suspected;
        assert!(took.abs_diff(expected) < ms(2), "case {case}: {took:?} vs {expected:?}");

        let fudge = ms(25);
        c.run_until(suspected + (expected - fudge));
        assert_eq!(c.state(0, bad), NodeState::Suspect, "case {case}: still suspect");
        c.run_until(suspected + (expected + fudge));
        assert_eq!(c.state(0, bad), NodeState::Dead, "case {case}: dead");
    }
}

/// Probes for `Awareness_*`: node 0 probes `target`; returns how long the
/// probe took.
fn probe_and_time(c: &mut Cluster, target: usize) -> Duration {
    let start = c.now;
    c.core(0).probe_node_by_name(&name(target), start);
    let mut end = start;
    while c.core(0).probe_in_progress().is_some() {
        let next = c.core(0).poll_timeout().expect("probe timer");
        c.run_until(next);
        end = c.now;
    }
    end - start
}

/// Go `TestMemberList_ProbeNode_Awareness_Degraded`: with a health score of
/// 1 the probe interval doubles; both peers nack, so the failed probe costs
/// nothing more.
#[test]
fn go_probe_node_awareness_degraded() {
    let mut c = Cluster::new(4, &[3], |_, cfg| {
        cfg.probe_timeout = ms(10);
        cfg.probe_interval = ms(200);
    });
    let vsn = config(0).build_vsn_array();
    c.tell(0, 1, &vsn);
    c.tell(0, 2, &vsn);
    c.tell(0, 3, &[PROTOCOL_VERSION_MIN, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, 1, 1, 1]);
    c.core(0).awareness_mut().apply_delta(1);
    assert_eq!(c.core(0).health_score(), 1);

    let took = probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Suspect);
    assert!(took >= 2 * ms(200) - ms(50), "probed too quickly: {took:?}");
    let (s1, s2) = (c.core(1).net.seq_no, c.core(2).net.seq_no);
    assert!(s1 == 1 || s2 == 1, "bad seqnos {s1}, {s2}");
    assert_eq!(c.core(0).health_score(), 1, "all nacks came: no change");
    // What an operator sees of it: two relays asked, both nacked.
    let mut probes = |i: usize, reason: &str| c.core(i).metrics().get(PROBES, reason);
    assert_eq!((probes(0, "indirect_ping_sent"), probes(0, "nack_received")), (2, 2));
    assert_eq!((probes(1, "nack_sent"), probes(2, "nack_sent")), (1, 1));
}

/// Go `TestMemberList_ProbeNode_Awareness_Improved`: a successful probe
/// lowers the health score.
#[test]
fn go_probe_node_awareness_improved() {
    let mut c = Cluster::new(2, &[], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(10);
            cfg.probe_interval = ms(200);
        }
    });
    c.full_mesh();
    c.core(0).awareness_mut().apply_delta(1);
    probe_and_time(&mut c, 1);
    assert_eq!(c.state(0, 1), NodeState::Alive);
    assert_eq!(c.core(0).health_score(), 0);
}

/// Go `TestMemberList_ProbeNode_Awareness_MissedNack`: of the two peers
/// asked to probe indirectly one is down, so one expected nack never comes:
/// the score rises by one, and the probe takes no longer than its interval.
#[test]
fn go_probe_node_awareness_missed_nack() {
    let mut c = Cluster::new(4, &[2, 3], |i, cfg| {
        if i <= 1 {
            cfg.probe_timeout = ms(10);
            cfg.probe_interval = ms(200);
        }
    });
    let vsn = config(0).build_vsn_array();
    for j in 1..4 {
        c.tell(0, j, &vsn);
    }
    assert_eq!(c.core(0).health_score(), 0);
    let took = probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Suspect);
    assert!(took <= ms(200) + ms(50), "took too long: {took:?}");
    assert_eq!(c.core(0).health_score(), 1, "dinged for the missed nack");
    let mut probes = |reason: &str| c.core(0).metrics().get(PROBES, reason);
    assert_eq!((probes("indirect_ping_sent"), probes("nack_received")), (2, 1));
}

/// Go `TestMemberList_ProbeNode_Awareness_OldProtocol`: peers that speak no
/// nacks (protocol max 3) are not expected to nack: the failed probe costs
/// exactly one point.
#[test]
fn go_probe_node_awareness_old_protocol() {
    let mut c = Cluster::new(4, &[3], |_, cfg| {
        cfg.probe_timeout = ms(10);
        cfg.probe_interval = ms(200);
    });
    let old = [PROTOCOL_VERSION_MIN, 3, 2, 1, 1, 1];
    c.tell(0, 1, &old);
    c.tell(0, 2, &old);
    c.tell(0, 3, &old);
    probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Suspect);
    assert_eq!(c.core(0).health_score(), 1);
}

/// Go `TestMemberList_ProbeNode_Buddy`: probing a suspect member tacks our
/// suspicion onto the ping, so the member refutes it right away.
#[test]
fn go_probe_node_buddy() {
    let mut c = Cluster::new(2, &[], |_, cfg| {
        cfg.probe_timeout = ms(1);
        cfg.probe_interval = ms(10);
    });
    c.full_mesh();
    let now = c.now;
    let n1 = name(1);
    let me = name(0);
    c.core(0).handle_suspect(&Accusation { incarnation: 1, node: &n1, from: &me }, now);
    c.core(0).reset_broadcasts();
    c.core(1).reset_broadcasts();
    assert_eq!(c.state(0, 1), NodeState::Suspect);
    c.core(0).probe_node_by_name(&n1, now);
    c.deliver();
    assert!(c.core(1).incarnation() > 1, "node 1 refuted");
    // The refutation travels on the next packet from node 1: gossip it.
    let now = c.now;
    c.core(1).gossip(now);
    c.deliver();
    assert_eq!(c.state(0, 1), NodeState::Alive);
}

/// Go `TestMemberList_Ping` (the name check of `handlePing`): a ping for
/// our name is acked to its source address; one for another name is dropped
/// and counted.
#[test]
fn go_ping_checks_the_node_name() {
    let mut c = Cluster::new(1, &[], |_, _| {});
    c.core(0).reset_broadcasts();
    let from = addr(5);
    for (node, acked) in [("node0", true), ("bad", false), ("", true)] {
        let mut bytes = Vec::new();
        let src = ip_to_wire(addr(4).ip());
        let ping = Message::Ping(Ping { seq_no: 42, node, source_addr: &src, source_port: PORT, source_node: "x" });
        encode_packet(&[ping.to_vec()], &EncodeOptions::default(), &mut bytes).unwrap();
        let now = c.now;
        c.core(0).handle_packet(from, &mut bytes, now);
        let tx = c.core(0).poll_transmit();
        assert_eq!(tx.is_some(), acked, "{node:?}");
        if let Some(tx) = tx {
            assert_eq!(tx.to, addr(4), "answered to the source fields");
            let mut bytes = tx.bytes;
            let mut dec = PacketDecoder::new();
            let msgs = dec.decode(&mut bytes, &DecodeOptions::default()).unwrap().into_messages().unwrap();
            assert_eq!(msgs, vec![Message::Ack(Ack { seq_no: 42, payload: &[] })]);
        }
    }
    assert_eq!(c.core(0).metrics().get(metrics::PACKETS_REJECTED, "wrong_node"), 1);
}

/// Go `TestMemberlist_Gossip`: the gossip tick sends node 0's queued alive
/// messages to node 1, which learns the other two members (three joins with
/// its own).
#[test]
fn go_gossip() {
    let mut c = Cluster::new(3, &[2], |_, cfg| cfg.gossip_interval = ms(10));
    let vsn = config(0).build_vsn_array();
    c.tell(0, 1, &vsn);
    c.tell(0, 2, &vsn);
    let now = c.now;
    c.core(0).start(now);
    c.run_for(ms(50));
    let mut joins = c.joins_seen(1);
    joins.sort();
    assert_eq!(joins, ["node0", "node1", "node2"]);
}

/// Go `TestMemberlist_GossipToDead`: a member dead for longer than
/// `gossip_to_the_dead_time` gets no gossip; one dead for less does.
#[test]
fn go_gossip_to_dead() {
    let mut c = Cluster::new(2, &[], |i, cfg| {
        if i == 0 {
            cfg.gossip_interval = ms(1);
            cfg.gossip_to_the_dead_time = ms(100);
        }
    });
    let vsn = config(0).build_vsn_array();
    c.tell(0, 1, &vsn);
    let dead_at = c.now;
    {
        let core = c.core(0);
        let idx = core.position("node1").unwrap();
        core.members[idx].node.state = NodeState::Dead;
        core.members[idx].state_change = dead_at;
    }
    c.now = dead_at + ms(200);
    let now = c.now;
    c.core(0).gossip(now);
    assert_eq!(c.core(0).poll_transmit(), None, "dead for 2x the gossip-to-the-dead time");

    c.now = dead_at + ms(20);
    let now = c.now;
    c.core(0).gossip(now);
    c.deliver();
    assert_eq!(c.joins_seen(1), ["node1", "node0"]);
}

/// Many small user broadcasts: every datagram stays within
/// `udp_buffer_size` and under Go's 128-part limit (docs/go-behaviour.md §2).
#[test]
fn packets_keep_to_go_part_limit_and_buffer_size() {
    struct Chatty;
    impl Delegate for Chatty {
        fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
            let n = limit / (overhead + 2);
            (0..n).map(|i| vec![u8::try_from(i % 256).unwrap(); 2]).collect()
        }
    }
    let mut c = Cluster::new(2, &[], |i, cfg| {
        if i == 0 {
            cfg.delegate = Some(Arc::new(Chatty));
        }
    });
    c.full_mesh();
    let now = c.now;
    c.core(0).gossip(now);
    c.core(0).probe(now);
    let mut n = 0;
    while let Some(tx) = c.core(0).poll_transmit() {
        n += 1;
        assert!(tx.bytes.len() <= c.core(0).config().udp_buffer_size);
        let mut bytes = tx.bytes;
        let mut dec = PacketDecoder::new();
        let msgs = dec.decode(&mut bytes, &DecodeOptions::default()).unwrap().into_messages().unwrap();
        assert!(msgs.len() <= crate::wire::frame::MAX_COMPOUND_PARTS_FOR_GO, "{} parts", msgs.len());
        assert!(msgs.len() > 100, "packed full: {}", msgs.len());
    }
    assert_eq!(n, 2, "one gossip packet, one ping");
}

/// Hostile bytes are counted and dropped; the node still answers pings.
#[test]
fn garbage_is_counted_never_fatal() {
    let mut c = Cluster::new(2, &[], |_, _| {});
    c.full_mesh();
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..2_000 {
        let len = rng.random_range(0..1400);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if let Some(b) = bytes.first_mut() {
            *b %= 14;
        }
        let now = c.now;
        c.core(0).handle_packet(addr(1), &mut bytes, now);
    }
    assert!(c.core(0).metrics().total(metrics::PACKETS_REJECTED) > 1_000);
    while c.core(0).poll_transmit().is_some() {}
    let now = c.now;
    c.core(1).probe_node_by_name("node0", now);
    c.deliver();
    assert_eq!(c.core(1).probe_in_progress(), None, "acked");
}

/// Encrypted, labelled, compressed clusters speak to each other; a node
/// without the key counts what it cannot read.
#[test]
fn encrypted_labelled_compressed_probe() {
    let mut c = Cluster::new(3, &[], |i, cfg| {
        cfg.enable_compression = true;
        cfg.label = "dc1".into();
        if i < 2 {
            cfg.secret_key = Some(vec![7; 32]);
        }
    });
    c.full_mesh();
    let now = c.now;
    c.core(0).probe_node_by_name("node1", now);
    c.deliver();
    assert_eq!(c.core(0).probe_in_progress(), None, "acked");
    c.core(0).probe_node_by_name("node2", now);
    c.deliver();
    assert!(c.core(0).probe_in_progress().is_some(), "node 2 cannot read it");
    assert!(c.core(2).metrics().total(metrics::PACKETS_REJECTED) >= 1);
}

/// The whole loop: started nodes probe and gossip each other; none is
/// suspected while all are up, and a node that goes down is declared dead by
/// every other.
#[test]
fn started_cluster_detects_a_failure() {
    let mut c = Cluster::new(5, &[], |_, _| {});
    c.full_mesh();
    let now = c.now;
    for core in c.cores.iter_mut().flatten() {
        core.start(now);
    }
    c.run_for(Duration::from_secs(10));
    for i in 0..5 {
        for j in 0..5 {
            assert_eq!(c.state(i, j), NodeState::Alive, "{i} about {j}");
        }
        assert_eq!(c.core(i).health_score(), 0);
    }
    c.cores[4] = None;
    c.run_for(Duration::from_secs(30));
    for i in 0..4 {
        // Dead, or already reaped after `gossip_to_the_dead_time`.
        let state = c.core(i).member("node4").map(Member::state);
        assert!(matches!(state, None | Some(NodeState::Dead)), "{i} about 4: {state:?}");
        assert_eq!(c.core(i).health_score(), 0);
    }
}

/// Go `TestMemberList_ProbeNode_FallbackTCP`: a member whose UDP is cut off
/// but who answers the TCP ping stays alive (and the probe ends with the
/// interval); once its TCP is gone too it becomes suspect. Each time one
/// peer relayed an indirect ping.
#[test]
fn go_probe_node_fallback_tcp() {
    let mut c = Cluster::new(4, &[], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(10);
            cfg.probe_interval = ms(200);
        }
    });
    // Go's test announces nodes 1 and 2 without versions; ringswim refuses
    // such alives.
    for j in 1..4 {
        c.tell(0, j, &config(0).build_vsn_array());
    }
    c.udp_blocked.push(3);
    let max = ms(200) + ms(20);

    let took = probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Alive, "reached over TCP");
    assert!(took <= max, "took too long: {took:?}");
    let (s1, s2) = (c.core(1).net.seq_no, c.core(2).net.seq_no);
    assert!(s1 == 1 || s2 == 1, "bad seqnos {s1}, {s2}");

    c.cores[3] = None;
    let took = probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Suspect);
    assert!(took <= max, "took too long: {took:?}");
    let (s1, s2) = (c.core(1).net.seq_no, c.core(2).net.seq_no);
    assert!(s1 == 2 || s2 == 2, "bad seqnos {s1}, {s2}");
}

/// Go `TestMemberList_ProbeNode_FallbackTCP_Disabled`: with TCP pings
/// disabled, a member reachable only over TCP is suspected.
#[test]
fn go_probe_node_fallback_tcp_disabled() {
    let mut c = Cluster::new(4, &[], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(10);
            cfg.probe_interval = ms(200);
            cfg.disable_tcp_pings = true;
        }
    });
    for j in 1..4 {
        c.tell(0, j, &config(0).build_vsn_array());
    }
    c.udp_blocked.push(3);
    probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Suspect);
}

/// Go `TestMemberList_ProbeNode_FallbackTCP_OldProtocol`: no TCP ping to a
/// member speaking protocol < 3.
#[test]
fn go_probe_node_fallback_tcp_old_protocol() {
    let mut c = Cluster::new(4, &[], |i, cfg| {
        if i == 0 {
            cfg.probe_timeout = ms(10);
            cfg.probe_interval = ms(200);
        }
    });
    for j in 1..3 {
        c.tell(0, j, &config(0).build_vsn_array());
    }
    c.tell(0, 3, &[PROTOCOL_VERSION_MIN, 2, 2, 1, 1, 1]);
    c.udp_blocked.push(3);
    probe_and_time(&mut c, 3);
    assert_eq!(c.state(0, 3), NodeState::Suspect);
}

/// A TCP fallback that only times out (at the probe's deadline) holds the
/// probe open until its answer, then the member is suspected.
#[test]
fn fallback_timeout_ends_the_probe_at_the_deadline() {
    let mut c = Cluster::new(3, &[2], |_, cfg| {
        cfg.probe_timeout = ms(10);
        cfg.probe_interval = ms(200);
    });
    c.full_mesh();
    c.streams_time_out = true;
    let start = c.now;
    c.core(0).probe_node_by_name("node2", start);
    c.run_for(ms(199));
    assert!(c.core(0).probe_in_progress().is_some());
    c.run_for(ms(1));
    assert_eq!(c.core(0).probe_in_progress(), None);
    assert_eq!(c.state(0, 2), NodeState::Suspect);
}

/// Go `TestMemberlist_Join` (memberlist_test.go): a push/pull join makes
/// both sides know each other; [`Effect::JoinCompleted`] counts it.
#[test]
fn go_join() {
    let mut c = Cluster::new(3, &[2], |_, _| {});
    let now = c.now;
    let id = c.core(1).join(&[addr(0), addr(2)], now);
    c.deliver();
    assert_eq!(c.state(0, 1), NodeState::Alive);
    assert_eq!(c.state(1, 0), NodeState::Alive);
    let done: Vec<_> = c.effects[1]
        .iter()
        .filter_map(|e| match e {
            Effect::JoinCompleted { join, contacted, errors } => Some((*join, *contacted, errors.len())),
            _ => None,
        })
        .collect();
    assert_eq!(done, [(id, 1, 1)], "one reached, one refused");
}

/// Go `TestMemberlist_PushPull`: the push/pull tick exchanges full state, so
/// a member only node 0 knows reaches node 1 without gossip.
#[test]
fn go_push_pull() {
    let mut c = Cluster::new(3, &[], |_, cfg| {
        cfg.gossip_interval = Duration::ZERO;
        // Only push/pull: no probe within the run (zero is refused).
        cfg.probe_interval = Duration::from_secs(3600);
        cfg.push_pull_interval = ms(100);
    });
    let vsn = config(0).build_vsn_array();
    c.tell(0, 1, &vsn);
    c.tell(0, 2, &vsn);
    c.tell(1, 0, &vsn);
    let now = c.now;
    c.core(0).start(now);
    c.run_for(ms(1000));
    assert_eq!(c.state(1, 2), NodeState::Alive);
}

/// A push/pull's state is encoded when the driver has connected (Go dials,
/// then `sendLocalState`): a member learned in between is in it, a refused
/// dial costs no encoding, and the bytes are handed out once.
#[test]
fn push_pull_state_is_encoded_once_connected() {
    let mut c = Cluster::new(3, &[], |_, _| {});
    let vsn = config(0).build_vsn_array();
    c.tell(0, 1, &vsn);
    let now = c.now;
    c.core(0).push_pull(now);
    let req = c.core(0).poll_stream().expect("push/pull to node 1");
    assert_eq!(req.to, addr(1));
    c.tell(0, 2, &vsn);
    let mut bytes = c.core(0).stream_connected(req.id);
    assert!(c.core(0).stream_connected(req.id).is_empty(), "handed out once");
    let mut dec = crate::wire::StreamDecoder::new();
    let Message::PushPull(pp) = dec.decode(&mut bytes, &DecodeOptions::default()).unwrap().message else {
        panic!("not a push/pull")
    };
    let names: Vec<&str> = pp.states().map(|s| s.name).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"node2"), "learned after the request, before the connect: {names:?}");
    c.core(0).handle_stream_reply(req.id, Err(StreamError::Refused), now);
    assert!(c.core(0).net.streams.pending.is_empty());
}

/// Incoming streams: a TCP ping is acked (or refused for another name),
/// a user message becomes an effect, garbage gets an error reply.
#[test]
fn incoming_streams() {
    let mut c = Cluster::new(1, &[], |_, _| {});
    let now = c.now;
    for (node, acked) in [("node0", true), ("other", false)] {
        let mut bytes = Vec::new();
        let ping = Message::Ping(Ping { seq_no: 5, node, ..Ping::default() });
        crate::wire::encode_stream(&ping, &EncodeOptions::default(), &mut bytes).unwrap();
        let reply = c.core(0).handle_stream(addr(1), &mut bytes, now);
        assert_eq!(reply.is_some(), acked, "{node}");
        if let Some(mut reply) = reply {
            let mut dec = crate::wire::StreamDecoder::new();
            let msg = dec.decode(&mut reply, &DecodeOptions::default()).unwrap().message;
            assert_eq!(msg, Message::Ack(Ack { seq_no: 5, payload: &[] }));
        }
    }
    let mut bytes = Vec::new();
    crate::wire::encode_stream(&Message::User(b"hi"), &EncodeOptions::default(), &mut bytes).unwrap();
    assert_eq!(c.core(0).handle_stream(addr(1), &mut bytes, now), None);
    c.collect_effects();
    assert!(c.effects[0].contains(&Effect::UserMessage(b"hi".to_vec())));
    let mut garbage = vec![0xc1, 1, 2];
    let mut reply = c.core(0).handle_stream(addr(1), &mut garbage, now).expect("error reply");
    let mut dec = crate::wire::StreamDecoder::new();
    assert!(matches!(dec.decode(&mut reply, &DecodeOptions::default()).unwrap().message, Message::Err(_)));
}

/// The indirect path: node 0 cannot reach node 2 directly, but node 1 can;
/// node 1 relays node 2's ack under node 0's sequence number, and the probe
/// succeeds without a nack or a suspicion.
#[test]
fn indirect_ack_is_relayed() {
    let mut c = Cluster::new(3, &[], |_, cfg| {
        cfg.probe_timeout = ms(10);
        cfg.probe_interval = ms(200);
        cfg.disable_tcp_pings = true;
    });
    c.full_mesh();
    c.cut = vec![(0, 2), (2, 0)];
    c.core(0).awareness_mut().apply_delta(2);
    let took = probe_and_time(&mut c, 2);
    assert_eq!(took, ms(10), "acked as soon as the indirect pings went out");
    assert_eq!(c.state(0, 2), NodeState::Alive);
    assert_eq!(c.core(0).health_score(), 1, "a successful probe: -1");
    assert!(c.core(1).net.relays.is_empty(), "relay handler reaped by the ack");
    c.run_for(ms(50));
    assert_eq!(c.core(0).health_score(), 1, "no late nack changes anything");
    assert_eq!(c.core(0).metrics().get(PROBES, "indirect_ping_sent"), 1);
    assert_eq!(c.core(1).metrics().get(PROBES, "nack_sent"), 0, "the ack came in time");
    assert_eq!(c.core(0).metrics().get(PROBES, "nack_received"), 0);
}

/// Go `SendBestEffort` / `SendReliable`: a user message by datagram and by
/// stream both reach the peer's effects.
#[test]
fn user_messages_best_effort_and_reliable() {
    let mut c = Cluster::new(2, &[], |_, _| {});
    c.full_mesh();
    let node1 = c.core(0).member("node1").unwrap().node.clone();
    let now = c.now;
    c.core(0).send_best_effort(&node1, b"udp").expect("fits");
    c.core(0).send_reliable(&node1, b"tcp", now);
    c.deliver();
    assert!(c.effects[1].contains(&Effect::UserMessage(b"udp".to_vec())));
    assert!(c.effects[1].contains(&Effect::UserMessage(b"tcp".to_vec())));
    assert!(c.core(0).net.streams.pending.is_empty());
}

/// Go `TestMemberList_Ping` (skipped in Go as flaky; deterministic here): a
/// ping to the right name gets a round trip time, one to a wrong name times
/// out after the probe interval.
#[test]
fn go_ping() {
    let mut c = Cluster::new(2, &[], |_, cfg| {
        cfg.probe_timeout = Duration::from_secs(1);
        cfg.probe_interval = Duration::from_secs(10);
    });
    c.full_mesh();
    let now = c.now;
    let good = c.core(0).ping("node1", addr(1), now);
    let bad = c.core(0).ping("bad", addr(1), now);
    c.run_for(Duration::from_secs(11));
    let results: Vec<_> = c.effects[0]
        .iter()
        .filter_map(|e| match e {
            Effect::PingCompleted { seq_no, rtt, .. } => Some((*seq_no, *rtt)),
            _ => None,
        })
        .collect();
    assert_eq!(results, [(good, Some(Duration::ZERO)), (bad, None)]);
}

/// Same seeds, same run: an encrypted, compressed, labelled cluster that
/// joins, probes, gossips and push/pulls sends the same bytes twice over
/// (encryption nonces come from the core's RNG, not the thread's).
#[test]
fn same_seeds_same_bytes() {
    let run = || {
        let mut c = Cluster::new(4, &[], |_, cfg| {
            cfg.enable_compression = true;
            cfg.label = "dc1".into();
            cfg.secret_key = Some(vec![3; 16]);
            cfg.push_pull_interval = Duration::from_secs(2);
        });
        let now = c.now;
        for i in 1..4 {
            c.core(i).join(&[addr(0)], now);
            c.core(i).start(now);
        }
        c.core(0).start(now);
        c.run_for(Duration::from_secs(5));
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(c.state(i, j), NodeState::Alive, "{i} about {j}");
            }
            assert_eq!(c.core(i).metrics().total(metrics::PACKETS_REJECTED), 0);
        }
        (c.sent, std::hash::Hasher::finish(&c.digest))
    };
    let first = run();
    assert!(first.0 > 50, "{} datagrams", first.0);
    assert_eq!(first, run());
}

/// Go `TestMemberlist_Leave` (memberlist_test.go): after a join, a node that
/// leaves is seen as left by the others once its dead message is gossiped,
/// and its leave broadcast completes.
#[test]
fn go_leave() {
    let mut c = Cluster::new(3, &[], |_, cfg| cfg.gossip_interval = ms(10));
    let now = c.now;
    for i in 1..3 {
        c.core(i).join(&[addr(0)], now);
    }
    c.deliver();
    for core in c.cores.iter_mut().flatten() {
        core.start(now);
    }
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.state(1, 2), NodeState::Alive);
    let now = c.now;
    c.core(1).leave(now);
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.state(0, 1), NodeState::Left);
    assert_eq!(c.state(2, 1), NodeState::Left);
    assert!(c.core(1).leave_broadcast_sent());
}

/// Go `probe`'s walk: one round probes every other live member once (dead
/// ones are skipped), then the walk wraps, reshuffles (`resetNodes`) and
/// starts over.
#[test]
fn probe_walk_covers_every_member_once_per_round() {
    let mut c = Cluster::new(6, &[], |_, _| {});
    c.full_mesh();
    let now = c.now;
    let n5 = name(5);
    c.core(0).handle_dead(&Accusation { incarnation: 1, node: &n5, from: "x" }, now);
    for _ in 0..3 {
        let mut probed = Vec::new();
        for _ in 0..4 {
            let now = c.now;
            c.core(0).probe(now);
            probed.push(c.core(0).probe_in_progress().expect("a probe").1.to_owned());
            c.deliver();
        }
        probed.sort();
        assert_eq!(probed, ["node1", "node2", "node3", "node4"]);
    }
}

/// An encoded ping with sequence number 42 from a `test` node at `addr(4)`
/// (no target name, as in Go's net tests), in a packet with `crc` or not.
fn test_ping_packet(copies: usize, crc: bool) -> Vec<u8> {
    let src = ip_to_wire(addr(4).ip());
    let ping = Message::Ping(Ping { seq_no: 42, node: "", source_addr: &src, source_port: PORT, source_node: "test" });
    let parts = vec![ping.to_vec(); copies];
    let mut bytes = Vec::new();
    encode_packet(&parts, &EncodeOptions { crc, ..EncodeOptions::default() }, &mut bytes).unwrap();
    bytes
}

/// Go `TestHandleCompoundPing`: a compound packet of three pings (sequence
/// number 42) is answered with three acks, each a datagram of its own to the
/// pings' source address, each a bare ack (no compound, nothing piggybacked
/// once the broadcast queue is empty) for sequence number 42.
#[test]
fn go_handle_compound_ping() {
    use crate::wire::message::MessageType;
    let mut c = Cluster::new(1, &[], |_, cfg| cfg.enable_compression = false);
    c.core(0).reset_broadcasts();
    let mut bytes = test_ping_packet(3, false);
    assert_eq!(bytes[0], MessageType::Compound as u8);
    let now = c.now;
    c.core(0).handle_packet(addr(5), &mut bytes, now);
    for i in 0..3 {
        let tx = c.core(0).poll_transmit().unwrap_or_else(|| panic!("ack {i} missing"));
        assert_eq!(tx.to, addr(4), "answered to the source fields");
        assert_eq!(tx.bytes[0], MessageType::Ack as u8, "bad response {:?}", tx.bytes);
        let mut bytes = tx.bytes;
        let mut dec = PacketDecoder::new();
        let msgs = dec.decode(&mut bytes, &DecodeOptions::default()).unwrap().into_messages().unwrap();
        assert_eq!(msgs, vec![Message::Ack(Ack { seq_no: 42, payload: &[] })]);
    }
    assert_eq!(c.core(0).poll_transmit(), None, "exactly three acks");
    assert_eq!(c.core(0).metrics().total(metrics::PACKETS_REJECTED), 0);
}

/// Go `TestRawSendUdp_CRC`: a packet carries the CRC header (type 12, then
/// the CRC32 of the rest, 5 bytes in all) only for a member whose protocol
/// max is at least 5. With the member given (a user message by
/// `send_best_effort`): pmax 5 gets it, pmax 4 does not. Looked up by the
/// destination's host (an ack, which names no member): an unknown address
/// gets none; a member named by its IP gets one if its pmax is 5, not if it
/// is 4; and, as in Go, whose name is not its IP is not found (no CRC).
#[test]
fn go_raw_send_udp_crc() {
    use crate::wire::message::MessageType;
    const HEADER: usize = 5;
    /// The next datagram's bytes, checking the CRC when there is one;
    /// whether it had one.
    fn next(c: &mut Cluster, to: SocketAddr, plain_len: usize) -> bool {
        let tx = c.core(0).poll_transmit().expect("a datagram");
        assert_eq!(tx.to, to);
        let crc = tx.bytes[0] == MessageType::HasCrc as u8;
        if crc {
            assert_eq!(tx.bytes.len(), plain_len + HEADER, "{:?}", tx.bytes);
            let sum = u32::from_be_bytes(tx.bytes[1..HEADER].try_into().unwrap());
            assert_eq!(sum, crc32fast::hash(&tx.bytes[HEADER..]));
        } else {
            assert_eq!(tx.bytes.len(), plain_len, "{:?}", tx.bytes);
        }
        let mut bytes = tx.bytes;
        let mut dec = PacketDecoder::new();
        let packet = dec.decode(&mut bytes, &DecodeOptions::default()).unwrap();
        assert_eq!(packet.layers.crc, crc);
        assert_eq!(packet.messages().len(), 1);
        crc
    }

    let mut c = Cluster::new(1, &[], |_, cfg| cfg.enable_compression = false);
    let payload = [3u8; 4];
    let user_len = 1 + payload.len();

    // The member given, as `rawSendMsgPacket(a, &Node{PMax: 5}, …)`.
    for (pmax, crc) in [(5, true), (4, false), (0, false)] {
        let mut node = Node::new("test", addr(4).ip(), PORT);
        node.pmax = pmax;
        c.core(0).send_best_effort(&node, &payload).expect("fits");
        assert_eq!(next(&mut c, addr(4), user_len), crc, "pmax {pmax}");
    }

    // Looked up by host: the ack to a ping from `to`.
    let ack_len = Message::Ack(Ack { seq_no: 42, payload: &[] }).to_vec().len();
    let ping_from = |c: &mut Cluster, to: SocketAddr| {
        c.core(0).reset_broadcasts();
        let ip = ip_to_wire(to.ip());
        let ping = Message::Ping(Ping { seq_no: 42, node: "", source_addr: &ip, source_port: PORT, source_node: "t" });
        let mut bytes = Vec::new();
        encode_packet(&[ping.to_vec()], &EncodeOptions::default(), &mut bytes).unwrap();
        let now = c.now;
        c.core(0).handle_packet(to, &mut bytes, now);
        next(c, to, ack_len)
    };
    assert!(!ping_from(&mut c, addr(4)), "no member at that host");
    let now = c.now;
    for (i, pmax) in [(5, 5), (6, 4)] {
        let host = addr(i).ip().to_string();
        let wire = ip_to_wire(addr(i).ip());
        let vsn = [PROTOCOL_VERSION_MIN, pmax, 2, 2, 2, 2];
        let a = Alive { incarnation: 1, node: &host, addr: &wire, port: PORT, meta: &[], vsn: &vsn };
        c.core(0).handle_alive(&a, now);
        assert_eq!(c.core(0).member(&host).map(|m| m.node.pmax), Some(pmax));
    }
    assert!(ping_from(&mut c, addr(5)), "member named by its IP, pmax 5");
    assert!(!ping_from(&mut c, addr(6)), "member named by its IP, pmax 4");
    c.tell(0, 1, &config(0).build_vsn_array());
    assert_eq!(c.core(0).member("node1").map(|m| m.node.pmax), Some(PROTOCOL_VERSION_MAX));
    assert!(!ping_from(&mut c, addr(1)), "pmax 5, but not named by its IP");
    assert_eq!(c.core(0).poll_transmit(), None);
}

/// A packet whose CRC does not match (checksum corrupted as in Go
/// `TestIngestPacket_CRC`, or the body) is dropped whole (no ack) and
/// counted as `bad_crc`; the same packet intact is acked.
#[test]
fn bad_crc_is_rejected_and_counted() {
    let mut c = Cluster::new(1, &[], |_, cfg| cfg.enable_compression = false);
    c.core(0).reset_broadcasts();
    let now = c.now;
    let len = test_ping_packet(1, true).len();
    for (n, at) in [(1, 1), (2, len - 1)] {
        let mut bad = test_ping_packet(1, true);
        bad[at] ^= 0x10;
        c.core(0).handle_packet(addr(5), &mut bad, now);
        assert_eq!(c.core(0).poll_transmit(), None, "byte {at} corrupted");
        assert_eq!(c.core(0).metrics().get(metrics::PACKETS_REJECTED, "bad_crc"), n);
        assert_eq!(c.core(0).metrics().total(metrics::PACKETS_REJECTED), n);
    }

    let mut good = test_ping_packet(1, true);
    assert_eq!(good[0], crate::wire::message::MessageType::HasCrc as u8);
    c.core(0).handle_packet(addr(5), &mut good, now);
    assert_eq!(c.core(0).poll_transmit().map(|tx| tx.to), Some(addr(4)), "acked");
    assert_eq!(c.core(0).metrics().total(metrics::PACKETS_REJECTED), 2);
}

/// A join push/pull from node 0 to node 3, encoded or not (the simulator's
/// `--skip-wire`); returns the lengths of the request and of the reply.
fn join_push_pull(c: &mut Cluster, unencoded: bool) -> (usize, usize) {
    let now = c.now;
    c.core(0).join(&[addr(3)], now);
    let req = c.core(0).poll_stream().expect("join push/pull");
    let lengths = if unencoded {
        let request = c.core(0).stream_connected_content(req.id);
        let len = request.wire_len();
        assert!(matches!(request, StreamContent::PushPull(_)));
        let reply = c.core(3).handle_stream_content(addr(0), request, now).expect("reply");
        let lengths = (len, reply.wire_len());
        c.core(0).handle_stream_reply_content(req.id, Ok(reply), now);
        lengths
    } else {
        let mut request = c.core(0).stream_connected(req.id);
        let len = request.len();
        let reply = c.core(3).handle_stream(addr(0), &mut request, now).expect("reply");
        let lengths = (len, reply.len());
        c.core(0).handle_stream_reply(req.id, Ok(reply), now);
        lengths
    };
    c.collect_effects();
    lengths
}

/// An unencoded push/pull (`StreamContent::PushPull`) teaches both sides
/// exactly what the encoded one does, and is counted at the encoded length.
#[test]
fn an_unencoded_push_pull_teaches_what_the_encoded_one_does() {
    let run = |unencoded: bool| {
        let mut c = Cluster::new(4, &[], |_, c| c.enable_compression = false);
        let vsn = config(0).build_vsn_array();
        c.tell(0, 1, &vsn);
        c.tell(3, 1, &vsn);
        c.tell(3, 2, &vsn);
        let now = c.now;
        c.core(3).handle_suspect(&Accusation { incarnation: 1, node: "node1", from: "node2" }, now);
        let lengths = join_push_pull(&mut c, unencoded);
        let tables: Vec<Vec<(String, u32, NodeState)>> = [0, 3]
            .into_iter()
            .map(|i| {
                let mut t: Vec<_> =
                    c.core(i).members().iter().map(|m| (m.node.name.to_string(), m.incarnation, m.state())).collect();
                t.sort();
                t
            })
            .collect();
        (lengths, tables, c.joins_seen(0), c.joins_seen(3), c.effects[0].clone())
    };
    let (encoded, unencoded) = (run(false), run(true));
    assert_eq!(encoded, unencoded);
    let (_, tables, joins0, _, effects0) = encoded;
    assert_eq!(tables[0].len(), 4, "node 0 learned node 2 and node 3: {tables:?}");
    assert_eq!(tables[0], tables[1]);
    assert!(tables[0].contains(&("node1".to_owned(), 1, NodeState::Suspect)), "{tables:?}");
    assert!(joins0.contains(&"node2".to_owned()), "{joins0:?}");
    assert!(effects0.iter().any(|e| matches!(e, Effect::JoinCompleted { contacted: 1, .. })), "{effects0:?}");
}

/// Go's key rotation (as serf runs it: install everywhere, use everywhere,
/// remove everywhere) on a running, encrypted cluster: at every step every
/// node reads every other, nobody is suspected and nothing is rejected; at
/// the end the old key opens nothing.
#[test]
fn keys_rotate_while_the_cluster_runs() {
    use crate::wire::{Encryption, EncryptionVersion, KeyError, Keyring};
    const OLD: [u8; 32] = [7; 32];
    const NEW: [u8; 16] = [9; 16];
    let mut c = Cluster::new(3, &[], |_, cfg| {
        cfg.secret_key = Some(OLD.to_vec());
        cfg.label = "dc1".into();
    });
    c.full_mesh();
    let now = c.now;
    for core in c.cores.iter_mut().flatten() {
        core.start(now);
    }
    let healthy = |c: &mut Cluster, step: &str| {
        let sent = c.sent;
        c.run_for(Duration::from_secs(5));
        assert!(c.sent > sent + 10, "{step}: the cluster talks");
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(c.state(i, j), NodeState::Alive, "{step}: {i} about {j}");
            }
            assert_eq!(c.core(i).metrics().total(metrics::PACKETS_REJECTED), 0, "{step}: node {i} read everything");
        }
    };
    healthy(&mut c, "before");

    // Go's rules hold while it runs.
    assert_eq!(c.core(0).keyring().use_key(&NEW), Err(KeyError::NotInstalled));
    assert_eq!(c.core(0).keyring().remove_key(&OLD), Err(KeyError::RemovePrimary));
    assert_eq!(c.core(0).keyring().add_key(&[1; 5]), Err(KeyError::BadLength(5)));

    for i in 0..3 {
        c.core(i).keyring().add_key(&NEW).expect("install");
    }
    healthy(&mut c, "installed");
    // One node sends with the new key while the others still send with the
    // old one: each decrypts the other's with its second key.
    c.core(0).keyring().use_key(&NEW).expect("use");
    // Node 0's next datagram is sealed with the new key alone.
    let only = |key: &[u8]| Keyring::new(&[], Some(key)).expect("key");
    let (old_only, new_only) = (only(&OLD), only(&NEW));
    let now = c.now;
    c.core(0).ping("node1", addr(1), now);
    let mut sent = c.core(0).poll_transmit().expect("the ping").bytes;
    let opens = |keyring: &Keyring, bytes: &[u8]| {
        let opts =
            DecodeOptions { keyring: Some(keyring), verify_incoming: true, label: "dc1", ..DecodeOptions::default() };
        PacketDecoder::new().decode(&mut bytes.to_vec(), &opts).map(|p| p.layers.encryption)
    };
    assert_eq!(opens(&old_only, &sent), Err(crate::wire::Error::DecryptFailed));
    assert_eq!(opens(&new_only, &sent), Ok(Some(EncryptionVersion::V1)));
    c.core(1).handle_packet(addr(0), &mut sent, now);
    healthy(&mut c, "node 0 uses the new key");
    for i in 1..3 {
        c.core(i).keyring().use_key(&NEW).expect("use");
    }
    healthy(&mut c, "all use the new key");
    for i in 0..3 {
        c.core(i).keyring().remove_key(&OLD).expect("remove");
        let keys: Vec<Vec<u8>> = c.core(i).keyring().load().keys().iter().map(|k| k.as_bytes().to_vec()).collect();
        assert_eq!(keys, vec![NEW.to_vec()]);
    }
    healthy(&mut c, "old key removed");

    // A packet sealed with the old key is now refused.
    let mut ping = Vec::new();
    let encryption = Encryption { keyring: &old_only, version: EncryptionVersion::V1, nonce: [1; 12] };
    let opts = EncodeOptions { encryption: Some(encryption), label: "dc1", ..EncodeOptions::default() };
    encode_packet(&[test_ping_packet(1, false)], &opts, &mut ping).expect("seal");
    let now = c.now;
    c.core(1).handle_packet(addr(0), &mut ping, now);
    assert_eq!(c.core(1).metrics().get(metrics::PACKETS_REJECTED, "decrypt"), 1);
}
