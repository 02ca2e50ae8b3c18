//! The real protocol in the world: [`SwimNode`] wraps a
//! [`swim::Core`](crate::swim::Core) and implements [`Protocol`] (carrying
//! push/pulls unencoded with `--skip-wire`, spreading user broadcasts with a
//! [`Gossip`] delegate), and [`Log::recorder`] records what a scenario
//! measures (deaths, refutations) from the world's drains.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use super::protocol::{NodeCtx, Protocol, StreamError, StreamId, StreamRequest, Transmit};
use super::world::{Drained, NodeId};
use crate::config::Config;
use crate::delegate::{Delegate, NodeEventKind};
use crate::swim::{self, Broadcast, Core, Delegates, Effect, StreamContent, Time, TransmitLimitedQueue};

/// The RNG a simulated core draws from: a named algorithm, seeded from
/// [`NodeCtx::seed`], so runs replay on every platform.
pub type SeededRng = Xoshiro256PlusPlus;

/// The name of simulated node `id`: `node-{id}`.
pub fn node_name(id: NodeId) -> String {
    format!("node-{id}")
}

/// The node id in a [`node_name`].
pub fn parse_node_name(name: &str) -> Option<NodeId> {
    name.strip_prefix("node-")?.parse().ok()
}

/// What all the nodes of one world observed, in the order they did.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// `(time, observer, subject)`: the observer's core emitted a leave
    /// (dead or left) event about another node.
    pub deaths: Vec<(Time, NodeId, NodeId)>,
    /// `(time, node)`: a node raised its incarnation to refute a suspect or
    /// dead claim about itself.
    pub refutations: Vec<(Time, NodeId)>,
}

/// A shared [`Log`]: the world is single-threaded, nodes live in it.
pub type SharedLog = Rc<RefCell<Log>>;

impl Log {
    /// A [`World::observe`](super::World::observe) observer that records
    /// into `log`: a leave event a node drained is a death (observer, subject),
    /// and a node whose incarnation rose while handling an input refuted a
    /// claim about itself (the simulated nodes never call
    /// [`Core::update_node`], the other way to raise it). A restarted node's
    /// first incarnation is no rise.
    pub fn recorder(log: SharedLog) -> impl FnMut(&Drained<'_, SwimNode>) + 'static {
        // (life, incarnation) of each node at its last drain.
        let mut last: Vec<Option<(u32, u32)>> = Vec::new();
        move |d| {
            if last.len() <= d.id {
                last.resize(d.id + 1, None);
            }
            let incarnation = d.node.core().incarnation();
            let mut log = log.borrow_mut();
            if last[d.id].is_some_and(|(life, before)| life == d.life && before != incarnation) {
                log.refutations.push((d.now, d.id));
            }
            last[d.id] = Some((d.life, incarnation));
            for effect in d.effects {
                if let Effect::Event(ev) = effect
                    && ev.kind == NodeEventKind::Leave
                    && let Some(subject) = parse_node_name(&ev.node.name)
                {
                    log.deaths.push((d.now, d.id, subject));
                }
            }
        }
    }
}

/// A user broadcast in a [`Gossip`] queue: unique, never invalidated.
#[derive(Clone, Debug)]
struct UserMsg(Arc<[u8]>);

impl Broadcast for UserMsg {
    fn message(&self) -> Arc<[u8]> {
        Arc::clone(&self.0)
    }
    fn is_unique(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct GossipState {
    queue: TransmitLimitedQueue<UserMsg>,
    num_nodes: usize,
    /// Every message seen, by its number (its first 4 bytes, big-endian).
    seen: BTreeMap<u32, Arc<[u8]>>,
}

/// A [`Delegate`] that spreads user broadcasts the way serf spreads user
/// events: piggybacked from a [`TransmitLimitedQueue`], every node
/// re-queueing each message the first time it sees it, and every push/pull
/// carrying all the messages seen (anti-entropy, so that a message whose
/// gossip died out still arrives).
///
/// A message is at least 4 bytes; the first 4 (big-endian) are its number.
#[derive(Debug)]
pub struct Gossip {
    state: Mutex<GossipState>,
}

impl Gossip {
    /// An empty queue sending each message `retransmit_limit(mult, n)` times.
    pub fn new(retransmit_mult: usize) -> Gossip {
        let queue = TransmitLimitedQueue::new(retransmit_mult);
        Gossip { state: Mutex::new(GossipState { queue, num_nodes: 1, seen: BTreeMap::new() }) }
    }

    fn with<R>(&self, f: impl FnOnce(&mut GossipState) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Records `msg` and, if it is new, queues it for broadcast. False if it
    /// was known (or shorter than 4 bytes).
    pub fn offer(&self, msg: &[u8]) -> bool {
        let Some(n) = msg.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes"))) else {
            return false;
        };
        self.with(|s| {
            if s.seen.contains_key(&n) {
                return false;
            }
            let msg: Arc<[u8]> = msg.into();
            s.seen.insert(n, Arc::clone(&msg));
            s.queue.queue_broadcast(UserMsg(msg));
            true
        })
    }

    /// Sets the cluster size the retransmit limit is computed for (the
    /// simulator sets it after every input; another driver when it knows).
    pub fn set_num_nodes(&self, n: usize) {
        self.with(|s| s.num_nodes = n.max(1));
    }

    /// How many messages this node has seen.
    pub fn num_seen(&self) -> usize {
        self.with(|s| s.seen.len())
    }

    /// Whether message `n` has been seen.
    pub fn has_seen(&self, n: u32) -> bool {
        self.with(|s| s.seen.contains_key(&n))
    }

    /// Messages waiting to go out.
    pub fn num_queued(&self) -> usize {
        self.with(|s| s.queue.num_queued())
    }
}

impl Delegate for Gossip {
    /// A user message from a peer (a re-gossiped broadcast): offered like
    /// our own.
    fn notify_msg(&self, msg: &[u8]) {
        self.offer(msg);
    }

    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.with(|s| {
            let n = s.num_nodes;
            s.queue.get_broadcasts(overhead, limit, n).iter().map(|m| m.to_vec()).collect()
        })
    }

    /// Every message seen, each as a 2-byte big-endian length and its bytes.
    fn local_state(&self, _join: bool) -> Vec<u8> {
        self.with(|s| {
            let mut out = Vec::new();
            for msg in s.seen.values() {
                let len = u16::try_from(msg.len()).expect("user broadcasts fit a packet");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(msg);
            }
            out
        })
    }

    fn merge_remote_state(&self, mut buf: &[u8], _join: bool) {
        while let [a, b, rest @ ..] = buf {
            let len = usize::from(u16::from_be_bytes([*a, *b]));
            let Some((msg, rest)) = rest.split_at_checked(len) else { return };
            self.offer(msg);
            buf = rest;
        }
    }
}

/// A simulated node: a [`Core`] plus what the scenario reads off it.
pub struct SwimNode {
    core: Core<SeededRng>,
    /// Join events minus leave events, the local node included: how many
    /// members this node counts alive (counted as the world drains them,
    /// since [`Core::num_alive`] is a scan of the table).
    alive_view: usize,
    gossip: Option<Arc<Gossip>>,
    /// Push/pulls go unencoded ([`StreamContent::PushPull`]).
    skip_wire: bool,
}

impl SwimNode {
    /// Builds node `ctx.id` from `config` (its name and the advertise
    /// address are set here), starts its protocol, and joins `seeds` if
    /// any. With `gossip`, the node also spreads user broadcasts (see
    /// [`Gossip`]).
    ///
    /// # Panics
    /// If the core refuses the config.
    pub fn new(ctx: &NodeCtx, config: Config, seeds: &[SocketAddr], gossip: bool) -> SwimNode {
        let mut config = config.with_name(node_name(ctx.id));
        let gossip = gossip.then(|| Arc::new(Gossip::new(config.effective_retransmit_mult())));
        if let Some(g) = &gossip {
            config = config.with_delegate(Arc::clone(g) as Arc<dyn Delegate>);
        }
        let rng = SeededRng::seed_from_u64(ctx.seed);
        let core = Core::new(config, ctx.addr, ctx.now, rng).expect("simulated node config");
        let mut node = SwimNode { core, alive_view: 0, gossip, skip_wire: false };
        node.core.start(ctx.now);
        if !seeds.is_empty() {
            node.core.join(seeds, ctx.now);
        }
        node.after_input();
        node
    }

    /// With `skip`, this node's push/pulls go to their peers unencoded
    /// ([`Core::stream_connected_content`]): the simulator's `--skip-wire`.
    /// Packets, pings and user messages are still encoded; a push/pull is
    /// still counted at its encoded length. Peers answer in the form they
    /// are asked in.
    pub fn with_skip_wire(mut self, skip: bool) -> SwimNode {
        self.skip_wire = skip;
        self
    }

    /// The core.
    pub fn core(&self) -> &Core<SeededRng> {
        &self.core
    }

    /// The core, for commands (through [`World::with_node`](super::World::with_node),
    /// which drains it after).
    pub fn core_mut(&mut self) -> &mut Core<SeededRng> {
        &mut self.core
    }

    /// How many members this node counts alive (itself included), from its
    /// join and leave events.
    pub fn alive_view(&self) -> usize {
        self.alive_view
    }

    /// Whether this node counts `id` dead (or left, or has forgotten it).
    pub fn thinks_dead(&self, id: NodeId) -> bool {
        self.core.member(&node_name(id)).is_none_or(swim::Member::is_dead_or_left)
    }

    /// Whether this node counts `id` alive or suspect.
    pub fn thinks_alive(&self, id: NodeId) -> bool {
        !self.thinks_dead(id)
    }

    /// Whether nothing waits to be gossiped: neither membership news nor
    /// user broadcasts.
    pub fn queues_empty(&self) -> bool {
        self.core.broadcasts().num_queued() == 0 && self.gossip.as_ref().is_none_or(|g| g.num_queued() == 0)
    }

    /// How many user broadcasts this node has seen (0 without a
    /// [`Gossip`] delegate).
    pub fn num_received(&self) -> usize {
        self.gossip.as_ref().map_or(0, |g| g.num_seen())
    }

    /// Whether this node has seen user broadcast `n`.
    pub fn has_received(&self, n: u32) -> bool {
        self.gossip.as_ref().is_some_and(|g| g.has_seen(n))
    }

    /// Queues user broadcast number `n` (`payload` bytes long, at least 4)
    /// from this node. False without a [`Gossip`] delegate.
    pub fn broadcast(&mut self, n: u32, payload: usize) -> bool {
        let Some(g) = &self.gossip else { return false };
        let mut msg = n.to_be_bytes().to_vec();
        msg.resize(payload.max(4), 0xab);
        g.offer(&msg);
        true
    }

    /// Tells the [`Gossip`] delegate the member count its retransmit limit
    /// scales with.
    fn after_input(&mut self) {
        if let Some(g) = &self.gossip {
            let n = self.core.num_nodes();
            g.with(|s| s.num_nodes = n);
        }
    }
}

impl Protocol for SwimNode {
    type Body = StreamContent;

    fn handle_packet(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time) {
        self.core.handle_packet(from, bytes, now);
        self.after_input();
    }
    fn handle_timeout(&mut self, now: Time) {
        self.core.handle_timeout(now);
        self.after_input();
    }
    fn handle_stream(&mut self, from: SocketAddr, body: StreamContent, now: Time) -> Option<StreamContent> {
        let reply = self.core.handle_stream_content(from, body, now);
        self.after_input();
        reply
    }
    fn stream_reply_done(&mut self, from: SocketAddr) {
        self.core.stream_reply_done(from);
    }
    fn handle_stream_reply(&mut self, id: StreamId, reply: Result<StreamContent, StreamError>, now: Time) {
        self.core.handle_stream_reply_content(id, reply, now);
        self.after_input();
    }
    fn stream_connected(&mut self, id: StreamId) -> StreamContent {
        if self.skip_wire {
            self.core.stream_connected_content(id)
        } else {
            StreamContent::Bytes(self.core.stream_connected(id))
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }
    fn poll_stream(&mut self) -> Option<StreamRequest> {
        self.core.poll_stream()
    }
    /// The core's effect, counted into [`SwimNode::alive_view`] on its way
    /// out.
    fn poll_effect(&mut self) -> Option<Effect> {
        let effect = self.core.poll_effect()?;
        if let Effect::Event(ev) = &effect {
            match ev.kind {
                NodeEventKind::Join => self.alive_view += 1,
                NodeEventKind::Leave => self.alive_view = self.alive_view.saturating_sub(1),
                NodeEventKind::Update => {}
            }
        }
        Some(effect)
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.core.poll_timeout()
    }
    fn delegates(&self) -> Delegates<'_> {
        Delegates::of(self.core.config())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::collections::BTreeSet;

    use super::*;
    use crate::sim::{Fault, Link, World, node_addr};

    fn secs(n: u64) -> Time {
        Time::from_epoch(Duration::from_secs(n))
    }

    fn cluster(n: usize, seed: u64) -> (World<SwimNode>, SharedLog) {
        let log = SharedLog::default();
        let mut world = World::new(seed, Link::default(), move |ctx| {
            let seeds = if ctx.id == 0 { vec![] } else { vec![node_addr(0)] };
            SwimNode::new(ctx, Config::default_local(), &seeds, true)
        });
        world.observe(Log::recorder(Rc::clone(&log)));
        world.add_nodes(n);
        (world, log)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(node_name(42), "node-42");
        assert_eq!(parse_node_name("node-42"), Some(42));
        assert_eq!(parse_node_name("other"), None);
    }

    #[test]
    fn three_nodes_converge() {
        let (mut world, log) = cluster(3, 1);
        world.run_until(secs(5));
        for id in 0..3 {
            let node = world.node(id).unwrap();
            assert_eq!(node.alive_view(), 3, "node {id}");
            assert_eq!(node.core().num_alive(), 3, "node {id}");
            assert!((0..3).all(|other| node.thinks_alive(other)));
        }
        world.run_until(secs(30));
        let log = log.borrow();
        assert!(log.deaths.is_empty(), "{:?}", log.deaths);
        assert!(log.refutations.is_empty(), "{:?}", log.refutations);
    }

    #[test]
    fn a_killed_node_is_declared_dead() {
        let (mut world, log) = cluster(3, 2);
        world.run_until(secs(5));
        world.apply(Fault::Kill(2));
        world.run_until(secs(40));
        for id in 0..2 {
            let node = world.node(id).unwrap();
            assert!(node.thinks_dead(2), "node {id}");
            assert_eq!(node.alive_view(), 2, "node {id}");
        }
        let log = log.borrow();
        let observers: BTreeSet<NodeId> = log.deaths.iter().filter(|d| d.2 == 2).map(|d| d.1).collect();
        assert_eq!(observers, BTreeSet::from([0, 1]));
        assert!(log.deaths.iter().all(|d| d.2 == 2), "{:?}", log.deaths);
    }

    #[test]
    fn user_broadcasts_reach_everyone() {
        let (mut world, _log) = cluster(5, 3);
        world.run_until(secs(5));
        world.with_node(0, |node, _| assert!(node.broadcast(7, 32)));
        world.run_until(secs(10));
        for id in 0..5 {
            assert!(world.node(id).unwrap().has_received(7), "node {id}");
        }
    }

    #[test]
    fn same_seed_same_trace() {
        let run = |seed| {
            let (mut world, _) = cluster(4, seed);
            world.run_until(secs(20));
            world.trace_hash()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
