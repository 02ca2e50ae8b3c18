//! The world under toy protocols: a beacon (ticks, sends, echoes streams)
//! and a flood (gossips one rumour to random peers for a few rounds).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::swim::{Delegates, Effect, Time};

fn ms(n: u64) -> Time {
    Time::from_epoch(Duration::from_millis(n))
}

const ONE_MS: Link = Link::fixed(Duration::from_millis(1));

/// Ticks every `period` (`ticks` times); on each tick sends
/// `[tick number, send time]` to `target`. Records what it receives. Answers
/// a stream with the bytes reversed, or closes it if they are empty.
struct Beacon {
    ctx: NodeCtx,
    target: Option<SocketAddr>,
    period: Duration,
    ticks_left: u64,
    next: Option<Time>,
    fired: u64,
    outbox: VecDeque<Transmit>,
    streams: VecDeque<StreamRequest>,
    /// What each stream writes once connected.
    payloads: BTreeMap<StreamId, Vec<u8>>,
    /// Streams the world asked the bytes of.
    connected: Vec<StreamId>,
    /// (from, tick number, sent at, received at)
    got: Vec<(SocketAddr, u64, Time, Time)>,
    outcomes: Vec<Outcome>,
}

impl Beacon {
    fn new(ctx: &NodeCtx, target: Option<NodeId>, period: Duration, ticks: u64) -> Beacon {
        Beacon {
            ctx: *ctx,
            target: target.map(node_addr),
            period,
            ticks_left: ticks,
            next: (ticks > 0).then(|| ctx.now + period),
            fired: 0,
            outbox: VecDeque::new(),
            streams: VecDeque::new(),
            payloads: BTreeMap::new(),
            connected: Vec::new(),
            got: Vec::new(),
            outcomes: Vec::new(),
        }
    }

    /// Opens stream `id` to `to`, writing `bytes` once connected.
    fn open(&mut self, id: StreamId, to: SocketAddr, bytes: &[u8], deadline: Time) {
        self.payloads.insert(id, bytes.to_vec());
        let kind = crate::swim::StreamKind::PushPull { join: None };
        self.streams.push_back(StreamRequest { id, to, kind, deadline });
    }

    fn received_between(&self, from: Time, to: Time) -> usize {
        self.got.iter().filter(|g| g.3 > from && g.3 < to).count()
    }
}

impl Protocol for Beacon {
    type Body = Vec<u8>;

    fn handle_packet(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time) {
        let tick = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let sent = Time::from_epoch(Duration::from_nanos(u64::from_le_bytes(bytes[8..16].try_into().unwrap())));
        self.got.push((from, tick, sent, now));
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }
    fn handle_timeout(&mut self, now: Time) {
        assert!(self.next.is_some_and(|t| t <= now), "woken early");
        self.fired += 1;
        self.ticks_left -= 1;
        if let Some(to) = self.target {
            let mut bytes = self.fired.to_le_bytes().to_vec();
            bytes.extend_from_slice(&(now.since_epoch().as_nanos() as u64).to_le_bytes());
            self.outbox.push_back(Transmit { to, bytes });
        }
        self.next = (self.ticks_left > 0).then(|| now + self.period);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.next
    }
    fn poll_stream(&mut self) -> Option<StreamRequest> {
        self.streams.pop_front()
    }
    fn stream_connected(&mut self, id: StreamId) -> Vec<u8> {
        self.connected.push(id);
        self.payloads.remove(&id).unwrap_or_default()
    }
    fn handle_stream_reply(&mut self, id: StreamId, reply: Result<Vec<u8>, StreamError>, now: Time) {
        self.outcomes.push((id, reply, now));
    }
    fn handle_stream(&mut self, _from: SocketAddr, bytes: Vec<u8>, _now: Time) -> Option<Vec<u8>> {
        (!bytes.is_empty()).then(|| bytes.iter().rev().copied().collect())
    }
    fn stream_reply_done(&mut self, _: SocketAddr) {}
    fn poll_effect(&mut self) -> Option<Effect> {
        None
    }
    fn delegates(&self) -> Delegates<'_> {
        Delegates::NONE
    }
}

/// Two beacons sending to each other every 100 ms, 100 times, over a 1 ms
/// lossless link.
fn pair(seed: u64) -> World<Beacon> {
    let mut world = World::new(seed, ONE_MS, |ctx| Beacon::new(ctx, Some(1 - ctx.id), Duration::from_millis(100), 100));
    world.add_nodes(2);
    world
}

/// Gossips one rumour: on first hearing it, sends it to `FANOUT` random
/// peers, then again every `INTERVAL` for `ROUNDS - 1` more rounds.
struct Flood {
    me: NodeId,
    nodes: usize,
    rng: Xoshiro256PlusPlus,
    heard_at: Option<Time>,
    rounds_left: u32,
    next: Option<Time>,
    outbox: Vec<Transmit>,
}

impl Flood {
    const FANOUT: usize = 3;
    const ROUNDS: u32 = 8;
    const INTERVAL: Duration = Duration::from_millis(200);

    fn new(ctx: &NodeCtx, nodes: usize) -> Flood {
        Flood {
            me: ctx.id,
            nodes,
            rng: Xoshiro256PlusPlus::seed_from_u64(ctx.seed),
            heard_at: None,
            rounds_left: 0,
            next: None,
            outbox: Vec::new(),
        }
    }

    fn hear(&mut self, now: Time) {
        if self.heard_at.is_some() {
            return;
        }
        self.heard_at = Some(now);
        self.rounds_left = Flood::ROUNDS;
        self.gossip(now);
    }

    fn gossip(&mut self, now: Time) {
        for _ in 0..Flood::FANOUT {
            let mut peer = self.rng.random_range(0..self.nodes - 1);
            if peer >= self.me {
                peer += 1;
            }
            self.outbox.push(Transmit { to: node_addr(peer), bytes: b"rumour".to_vec() });
        }
        self.rounds_left -= 1;
        self.next = (self.rounds_left > 0).then(|| now + Flood::INTERVAL);
    }
}

impl Protocol for Flood {
    type Body = Vec<u8>;

    fn handle_packet(&mut self, _from: SocketAddr, bytes: &mut [u8], now: Time) {
        assert_eq!(bytes, b"rumour");
        self.hear(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop()
    }
    fn handle_timeout(&mut self, now: Time) {
        self.gossip(now);
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.next
    }
    fn poll_stream(&mut self) -> Option<StreamRequest> {
        None
    }
    fn stream_connected(&mut self, _: StreamId) -> Vec<u8> {
        unreachable!("floods open no streams")
    }
    fn handle_stream_reply(&mut self, _: StreamId, _: Result<Vec<u8>, StreamError>, _: Time) {
        unreachable!("floods open no streams")
    }
    fn handle_stream(&mut self, _: SocketAddr, _: Vec<u8>, _: Time) -> Option<Vec<u8>> {
        None
    }
    fn stream_reply_done(&mut self, _: SocketAddr) {}
    fn poll_effect(&mut self) -> Option<Effect> {
        None
    }
    fn delegates(&self) -> Delegates<'_> {
        Delegates::NONE
    }
}

/// A flood of `nodes` nodes over `link`, started at node 0 and run until
/// quiet.
fn flood(seed: u64, nodes: usize, link: Link) -> World<Flood> {
    let mut world = World::new(seed, link, move |ctx| Flood::new(ctx, nodes));
    world.add_nodes(nodes);
    world.with_node(0, |f, now| f.hear(now));
    assert!(world.run_until_idle(10_000_000), "flood did not settle");
    world
}

fn all_stats<P: Protocol<Body: StreamBody>>(world: &World<P>) -> Vec<NodeStats> {
    (0..world.len()).map(|id| *world.node_stats(id)).collect()
}

#[test]
fn addresses_round_trip() {
    assert_eq!(node_addr(0), "127.0.0.1:7946".parse().unwrap());
    assert_eq!(node_addr(256), "127.0.1.1:7946".parse().unwrap());
    assert_eq!(node_addr(9_999), "127.0.39.16:7946".parse().unwrap());
    for id in [0, 1, 255, 256, 65_535, 65_536, MAX_NODES - 1] {
        assert_eq!(node_id(node_addr(id)), Some(id));
    }
    assert_eq!(node_id("127.0.0.0:7946".parse().unwrap()), None);
    assert_eq!(node_id("127.0.0.1:7947".parse().unwrap()), None);
    assert_eq!(node_id("10.0.0.1:7946".parse().unwrap()), None);
    assert_eq!(node_id("[::1]:7946".parse().unwrap()), None);
}

#[test]
fn same_seed_same_trace_other_seed_other_trace() {
    let link = Link::fixed(Duration::from_millis(2))
        .with_jitter(Jitter::Exponential(Duration::from_millis(3)))
        .with_loss(0.05);
    let run = |seed| {
        let world = flood(seed, 2_000, link);
        (world.trace_hash(), *world.totals(), all_stats(&world), world.now())
    };
    let a = run(42);
    let b = run(42);
    assert_eq!(a, b, "same seed, different run");
    assert!(a.1.packets_lost > 0 && a.1.packets_delivered > 0);
    let c = run(43);
    assert_ne!(a.0, c.0, "different seeds, same trace hash");
    assert_ne!(a.2, c.2, "different seeds, same per-node stats");
}

/// Node 0 sends 10,000 packets to node 1, one a millisecond.
fn lossy(loss: f64) -> World<Beacon> {
    let link =
        Link::fixed(Duration::from_millis(1)).with_jitter(Jitter::Uniform(Duration::from_millis(5))).with_loss(loss);
    let mut world = World::new(7, link, |ctx| {
        let target = (ctx.id == 0).then_some(1);
        Beacon::new(ctx, target, Duration::from_millis(1), if ctx.id == 0 { 10_000 } else { 0 })
    });
    world.add_nodes(2);
    assert!(world.run_until_idle(1_000_000));
    assert_eq!(world.node_stats(0).packets_sent, 10_000);
    let t = world.totals();
    assert_eq!(t.packets_delivered + t.packets_lost, 10_000);
    assert_eq!(world.node(1).unwrap().got.len() as u64, t.packets_delivered);
    world
}

#[test]
fn loss_drops_the_given_share() {
    assert_eq!(lossy(1.0).totals().packets_delivered, 0);
    let lossless = lossy(0.0);
    assert_eq!(lossless.totals().packets_delivered, 10_000);
    // Jitter reorders packets, but every one arrives exactly once.
    let mut ticks: Vec<u64> = lossless.node(1).unwrap().got.iter().map(|g| g.1).collect();
    assert!(ticks.windows(2).any(|w| w[0] > w[1]), "5 ms of jitter at 1 ms spacing reorders");
    ticks.sort_unstable();
    assert_eq!(ticks, (1..=10_000).collect::<Vec<_>>());
    let delivered = lossy(0.1).totals().packets_delivered;
    assert!((8_500..=9_500).contains(&delivered), "{delivered}");
    assert_eq!(delivered, 9_021, "seed 7's exact count");
}

#[test]
fn partition_blocks_both_ways_until_healed() {
    let mut world = pair(1);
    world.schedule(ms(3_000), Fault::Partition(vec![vec![0]]));
    world.schedule(ms(6_000), Fault::Heal);
    assert!(world.run_until_idle(100_000));
    for id in [0, 1] {
        let got = &world.node(id).unwrap().got;
        // Ticks at 0.1 s … 10 s; those sent at 3.0 … 5.9 s are dropped.
        assert_eq!(got.len(), 70, "node {id}");
        assert!(got.iter().all(|g| g.2 < ms(3_000) || g.2 >= ms(6_000)));
        assert_eq!(got.iter().filter(|g| g.2 >= ms(6_000)).count(), 41);
    }
    assert_eq!(world.totals().packets_partitioned, 60);

    // A stream across a partition times out at its deadline.
    world.apply(Fault::Partition(vec![vec![1]]));
    let deadline = world.now() + Duration::from_secs(1);
    world.with_node(0, |b, _| b.open(9, node_addr(1), &[1], deadline));
    assert!(world.run_until_idle(100));
    assert_eq!(world.node(0).unwrap().outcomes, vec![(9, Err(StreamError::Timeout), deadline)]);
}

#[test]
fn paused_node_gets_everything_on_resume() {
    let mut world = pair(2);
    world.schedule(ms(3_000), Fault::Pause(1));
    world.schedule(ms(6_000), Fault::Resume(1));
    world.run_until(ms(5_999));
    let b1 = world.node(1).unwrap();
    assert_eq!((b1.got.len(), b1.fired), (29, 29), "nothing handled while paused");
    world.run_until(ms(6_000));
    let b1 = world.node(1).unwrap();
    // The 30 packets sent at 3.0 … 5.9 s, in order, and the 3.0 s tick.
    assert_eq!(b1.got.iter().filter(|g| g.3 == ms(6_000)).count(), 30);
    assert_eq!(b1.received_between(ms(3_000), ms(6_000)), 0);
    assert_eq!(b1.fired, 30);
    assert!(b1.got.windows(2).all(|w| w[0].1 + 1 == w[1].1), "in order, none lost");
    // Node 0 heard nothing from node 1 while it was paused.
    assert_eq!(world.node(0).unwrap().received_between(ms(3_001), ms(6_000)), 0);
    assert!(world.run_until_idle(100_000));
    assert_eq!(world.node(1).unwrap().got.len(), 100);
}

/// Node 0 sends node 1 three packets at once, numbered 1000 to 1002.
fn send_three_ticks(world: &mut World<Beacon>) {
    world.with_node(0, |b, now| {
        for tick in 1000..1003u64 {
            let mut bytes = tick.to_le_bytes().to_vec();
            bytes.extend_from_slice(&(now.since_epoch().as_nanos() as u64).to_le_bytes());
            b.outbox.push_back(Transmit { to: node_addr(1), bytes });
        }
    });
}

#[test]
fn slow_node_handles_inputs_one_at_a_time() {
    let mut world = pair(3);
    world.apply(Fault::Slow { node: 1, delay: Duration::from_millis(30) });
    send_three_ticks(&mut world);
    world.run_until(ms(95));
    let got: Vec<_> = world.node(1).unwrap().got.iter().map(|g| (g.1, g.3)).collect();
    assert_eq!(got, vec![(1000, ms(31)), (1001, ms(61)), (1002, ms(91))]);
}

#[test]
fn lagging_node_handles_every_input_late_in_order_at_full_rate() {
    let mut world = pair(3);
    world.apply(Fault::Lag { node: 1, delay: Duration::from_millis(30) });
    send_three_ticks(&mut world);
    world.run_until(ms(95));
    let got: Vec<_> = world.node(1).unwrap().got.iter().map(|g| (g.1, g.3)).collect();
    // All three arrived at 1 ms and are handled together, 30 ms later.
    assert_eq!(got, vec![(1000, ms(31)), (1001, ms(31)), (1002, ms(31))]);

    // Its timer fires 30 ms late; each tick re-arms from the late `now`.
    world.run_until(ms(300));
    let b1 = world.node(1).unwrap();
    assert_eq!((b1.fired, b1.next), (2, Some(ms(360))), "ticks at 130 and 260 ms");
    // Its packets leave late: node 0 got tick 1 (sent at 130 ms) at 131 ms.
    let from_1: Vec<_> = world.node(0).unwrap().got.iter().map(|g| (g.1, g.2, g.3)).collect();
    assert_eq!(from_1, vec![(1, ms(130), ms(131)), (2, ms(260), ms(261))]);
    // Node 0's ticks (sent every 100 ms, arriving at x01 ms) are handled at
    // x31 ms: late, one per 100 ms, no backlog.
    let ticks: Vec<_> = world.node(1).unwrap().got[3..].iter().map(|g| (g.1, g.3)).collect();
    assert_eq!(ticks, vec![(1, ms(131)), (2, ms(231))]);

    // A stream request is answered 30 ms late, within a 50 ms deadline.
    let deadline = world.now() + Duration::from_millis(50);
    world.with_node(0, |b, _| b.open(7, node_addr(1), &[1, 2], deadline));
    world.run_until(ms(400));
    let outcome = world.node(0).unwrap().outcomes.last().cloned();
    assert_eq!(outcome, Some((7, Ok(vec![2, 1]), ms(332))));

    // Back to normal: handled on arrival; lowering the lag never reorders.
    world.apply(Fault::Lag { node: 1, delay: Duration::ZERO });
    world.run_until(ms(1_000));
    let b1 = world.node(1).unwrap();
    assert!(b1.got.windows(2).all(|w| w[0].3 <= w[1].3));
    assert_eq!(b1.got.last().map(|g| (g.1, g.3)), Some((9, ms(901))));
    assert_eq!(b1.fired, 9, "ticks at 130, 260, 390 (late), then 490 … 990 ms");
}

#[test]
fn inbound_lag_delays_packets_but_not_the_timer() {
    let mut world = pair(3);
    world.apply(Fault::LagInbound { node: 1, delay: Duration::from_millis(30) });
    send_three_ticks(&mut world);
    world.run_until(ms(300));
    let b1 = world.node(1).unwrap();
    // Packets arrived at 1 ms and are handled 30 ms later, in order.
    let got: Vec<_> = b1.got[..3].iter().map(|g| (g.1, g.3)).collect();
    assert_eq!(got, vec![(1000, ms(31)), (1001, ms(31)), (1002, ms(31))]);
    // Its own timer is on time: ticks at 100 and 200 ms, next at 300.
    assert_eq!((b1.fired, b1.next), (3, Some(ms(400))), "ticks at 100, 200, 300 ms");
    // Node 0's ticks (arriving at x01 ms) are handled at x31 ms.
    let ticks: Vec<_> = b1.got[3..].iter().map(|g| (g.1, g.3)).collect();
    assert_eq!(ticks, vec![(1, ms(131)), (2, ms(231))]);
    // Node 1's own packets leave on time.
    let from_1: Vec<_> = world.node(0).unwrap().got.iter().map(|g| (g.1, g.2)).collect();
    assert_eq!(from_1[..2], [(1, ms(100)), (2, ms(200))]);
}

#[test]
fn killed_node_stops_and_restarts_fresh() {
    let mut world = pair(4);
    world.schedule(ms(3_000), Fault::Kill(1));
    world.schedule(ms(6_000), Fault::Restart(1));
    world.run_until(ms(3_000));
    assert!(!world.is_alive(1));
    assert_eq!(world.node_stats(1).timeouts, 29);
    world.run_until(ms(5_999));
    assert_eq!(world.node_stats(1).timeouts, 29, "a dead node's timer does not fire");
    assert_eq!(world.node_stats(1).packets_sent, 29);
    assert_eq!(world.totals().packets_vanished, 30, "sent at 3.0 … 5.9 s, arrived while dead");
    assert!(world.totals().stale >= 1, "the 3.0 s tick was dropped");
    world.run_until(ms(6_000));
    let b1 = world.node(1).unwrap();
    assert_eq!((b1.ctx.incarnation, b1.fired, b1.got.len()), (1, 0, 0), "a fresh node");
    assert_eq!(b1.ctx.now, ms(6_000));
    assert_eq!(world.totals().packets_vanished, 30, "sent at 6.0 s, arrives at the new node");
    world.run_until(ms(7_000));
    let b1 = world.node(1).unwrap();
    assert_eq!((b1.fired, b1.got.len()), (10, 10));
    assert_eq!(world.incarnation(1), 1);
}

#[test]
fn streams_reply_refuse_close_and_time_out() {
    let mut world = pair(5);
    let open = |world: &mut World<Beacon>, id, to, bytes: &[u8], wait| {
        let deadline = world.now() + Duration::from_millis(wait);
        world.with_node(0, |b, _| b.open(id, to, bytes, deadline));
        deadline
    };
    let t0 = world.now();
    open(&mut world, 1, node_addr(1), b"abc", 50);
    open(&mut world, 2, node_addr(1), b"", 50);
    open(&mut world, 3, node_addr(7), b"abc", 50);
    world.run_until(ms(60));
    let rtt = t0 + Duration::from_millis(2);
    let outcomes = &world.node(0).unwrap().outcomes;
    assert_eq!(outcomes[0], (3, Err(StreamError::Refused), t0 + Duration::from_millis(1)));
    assert_eq!(outcomes[1], (1, Ok(b"cba".to_vec()), rtt));
    assert_eq!(outcomes[2], (2, Err(StreamError::Closed), rtt));
    assert_eq!(outcomes.len(), 3, "one outcome each; the timeouts were stale");

    // A dead peer refuses; a paused one answers too late, so the deadline wins.
    world.apply(Fault::Kill(1));
    let t1 = world.now();
    open(&mut world, 4, node_addr(1), b"x", 50);
    world.run_until(t1 + Duration::from_millis(60));
    world.apply(Fault::Restart(1));
    world.apply(Fault::Pause(1));
    let deadline = open(&mut world, 5, node_addr(1), b"y", 50);
    world.schedule(deadline + Duration::from_millis(100), Fault::Resume(1));
    world.run_until(deadline + Duration::from_millis(200));
    let outcomes = &world.node(0).unwrap().outcomes[3..];
    assert_eq!(
        outcomes,
        [(4, Err(StreamError::Refused), t1 + Duration::from_millis(2)), (5, Err(StreamError::Timeout), deadline)]
    );
    let t = world.totals();
    assert_eq!((t.streams_opened, t.streams_ok, t.streams_failed), (5, 1, 4));
    // The bytes are asked for only where a process listened: not for the
    // unknown address (3) nor the dead peer (4).
    assert_eq!(world.node(0).unwrap().connected, vec![1, 2, 5]);
    assert_eq!(t.stream_bytes_sent, 3 + 1 + 3 + 1, "abc and y sent, cba and (too late) y replied");
}

#[test]
fn joins_add_nodes_that_run() {
    let mut world = World::new(6, ONE_MS, |ctx| Beacon::new(ctx, Some(0), Duration::from_millis(100), 5));
    world.add_nodes(1);
    world.schedule(ms(1_000), Fault::Join(3));
    world.schedule(ms(1_050), Fault::Join(2));
    world.run_until(ms(1_000));
    assert_eq!(world.len(), 4);
    world.run_until(ms(1_050));
    assert_eq!(world.len(), 6);
    assert!(world.run_until_idle(10_000));
    let got = &world.node(0).unwrap().got;
    assert_eq!(got.len(), 30, "5 ticks from each of 6 nodes");
    assert_eq!(got.iter().filter(|g| g.0 == node_addr(5)).count(), 5);
    assert!(got.iter().filter(|g| g.0 == node_addr(5)).all(|g| g.3 > ms(1_050)));
    let seeds: std::collections::BTreeSet<u64> = (0..6).map(|id| world.node(id).unwrap().ctx.seed).collect();
    assert_eq!(seeds.len(), 6, "each node its own seed");
}

#[test]
fn rates_per_node_per_second() {
    let mut world = pair(8);
    world.run_until(ms(1_000));
    // 2 nodes × 10 packets of 16 bytes in 1 s.
    assert_eq!(world.packets_per_node_per_s(), 10.0);
    assert_eq!(world.bytes_per_node_per_s(), 160.0);
    world.reset_window();
    world.apply(Fault::Kill(1));
    world.run_until(ms(2_000));
    assert_eq!(world.packets_per_node_per_s(), 5.0);
}

#[test]
fn flood_reaches_10_000_nodes() {
    let started = Instant::now();
    let link = Link::default().with_loss(0.01);
    let world = flood(10, 10_000, link);
    let wall = started.elapsed();
    let t = world.totals();
    println!(
        "flood: 10000 nodes, {} events, {} packets sent, {} delivered, {} lost, virtual {:?}, wall {:?}, trace {:016x}",
        t.events,
        t.packets_sent,
        t.packets_delivered,
        t.packets_lost,
        world.now().since_epoch(),
        wall,
        world.trace_hash(),
    );
    let missed = (0..10_000).filter(|&id| world.node(id).unwrap().heard_at.is_none()).count();
    assert_eq!(missed, 0, "nodes that never heard the rumour");
    // Every node gossips ROUNDS times to FANOUT peers: one event per packet
    // sent and per timer, nothing more.
    let bound = 10_000 * u64::from(Flood::ROUNDS) * (Flood::FANOUT as u64 + 1);
    assert_eq!(t.packets_sent, 10_000 * u64::from(Flood::ROUNDS) * Flood::FANOUT as u64);
    assert!(t.events <= bound, "{} events", t.events);
}

#[test]
fn a_link_can_fail_one_way() {
    let mut world = pair(9);
    world.apply(Fault::SetLink { from: 0, to: 1, link: ONE_MS.with_loss(1.0) });
    world.apply(Fault::SetLink { from: 1, to: 0, link: Link::fixed(Duration::from_millis(40)) });
    assert!(world.run_until_idle(100_000));
    assert!(world.node(1).unwrap().got.is_empty());
    let got = &world.node(0).unwrap().got;
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|g| g.3 - g.2 == Duration::from_millis(40)));
    assert_eq!(world.totals().packets_lost, 100);
}

/// What became of a stream a [`Beacon`] opened: id, reply, when.
type Outcome = (StreamId, Result<Vec<u8>, StreamError>, Time);

/// Node 0 opens 200 streams to node 1 (10 bytes each way, 2 s deadline)
/// over a 1 ms link with `loss` both ways; their outcomes.
fn streams_over(loss: f64) -> (World<Beacon>, Vec<Outcome>) {
    let mut world = World::new(11, ONE_MS.with_loss(loss), |ctx| Beacon::new(ctx, None, Duration::from_secs(1), 0));
    world.add_nodes(2);
    for id in 0..200 {
        let deadline = world.now() + Duration::from_secs(2);
        world.with_node(0, |b, _| b.open(id, node_addr(1), b"0123456789", deadline));
        world.run_until(world.now() + Duration::from_secs(3));
    }
    let outcomes = world.node(0).unwrap().outcomes.clone();
    (world, outcomes)
}

#[test]
fn lost_stream_segments_make_streams_late_or_time_out() {
    // Lossless: every exchange takes one link delay each way.
    let (_, clean) = streams_over(0.0);
    assert_eq!(clean.len(), 200);
    let started = |id: StreamId| ms(3_000 * id);
    assert!(clean.iter().all(|(id, r, at)| r.is_ok() && *at == started(*id) + Duration::from_millis(2)));

    // A link that loses everything: the dial hangs, the deadline answers.
    let (world, dead) = streams_over(1.0);
    assert!(
        dead.iter().all(|(id, r, at)| *r == Err(StreamError::Timeout) && *at == started(*id) + Duration::from_secs(2))
    );
    assert_eq!(world.totals().streams_broken, 200);

    // Half the segments lost: each loss costs 200 ms (doubling), so some
    // replies come late, in whole retransmission timeouts, and some not in
    // time at all.
    let (_, lossy) = streams_over(0.5);
    assert_eq!(lossy.len(), 200, "one outcome each");
    let late: Vec<Duration> = lossy
        .iter()
        .filter(|(_, r, _)| r.is_ok())
        .map(|(id, _, at)| at.saturating_since(started(*id)) - Duration::from_millis(2))
        .collect();
    let timed_out = lossy.iter().filter(|(_, r, _)| *r == Err(StreamError::Timeout)).count();
    assert!(late.iter().all(|d| d.as_millis() % 200 == 0), "{late:?}");
    assert!(late.iter().any(|d| !d.is_zero()), "some are late");
    assert!(late.iter().any(Duration::is_zero), "with 4 segments, some get through clean");
    assert!(timed_out > 20, "{timed_out} timed out");
}

#[test]
fn duplicated_datagrams_arrive_twice_and_corrupted_ones_changed() {
    let run = |link: Link| {
        let mut world = World::new(12, link, |ctx| {
            let target = (ctx.id == 0).then_some(1);
            Beacon::new(ctx, target, Duration::from_millis(1), if ctx.id == 0 { 1_000 } else { 0 })
        });
        world.add_nodes(2);
        assert!(world.run_until_idle(100_000));
        world
    };
    let twice = run(ONE_MS.with_duplicate(1.0));
    let got = &twice.node(1).unwrap().got;
    assert_eq!(got.len(), 2_000);
    assert_eq!(twice.totals().packets_duplicated, 1_000);
    let mut ticks: Vec<u64> = got.iter().map(|g| g.1).collect();
    ticks.sort_unstable();
    assert!(ticks.chunks(2).enumerate().all(|(i, pair)| pair == [i as u64 + 1, i as u64 + 1]));

    let some = run(ONE_MS.with_duplicate(0.3));
    let copies = some.totals().packets_duplicated;
    assert!((240..=360).contains(&copies), "{copies}");
    assert_eq!(some.node(1).unwrap().got.len() as u64, 1_000 + copies);

    // Every datagram changed in exactly one byte: the tick number or the
    // send time read back differs from what was sent in one place.
    let corrupted = run(ONE_MS.with_corrupt(1.0));
    assert_eq!(corrupted.totals().packets_corrupted, 1_000);
    let got = &corrupted.node(1).unwrap().got;
    assert_eq!(got.len(), 1_000);
    for (i, g) in got.iter().enumerate() {
        let sent = ms(i as u64 + 1).since_epoch().as_nanos() as u64;
        let diff = (g.1 ^ (i as u64 + 1))
            .to_le_bytes()
            .iter()
            .chain(&(g.2.since_epoch().as_nanos() as u64 ^ sent).to_le_bytes())
            .filter(|&&b| b != 0)
            .count();
        assert_eq!(diff, 1, "datagram {i}: tick {} sent {:?}", g.1, g.2);
    }
    // Off by default, and drawing nothing then: the same trace as before.
    assert_eq!(run(ONE_MS).trace_hash(), run(ONE_MS.with_duplicate(0.0).with_corrupt(0.0)).trace_hash());
}
