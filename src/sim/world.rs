//! The world: nodes, the event queue, the network, faults and accounting.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::ops::Range;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use super::net::Link;
use super::protocol::{NodeCtx, Protocol, StreamBody, StreamError, StreamId, StreamRequest, Transmit};
use super::{MAX_NODES, node_addr, node_id};
use crate::swim::{Effect, Outbox, Time, drain};

/// Index of a node in its [`World`]; its address is
/// [`node_addr`](super::node_addr)`(id)`. Kept across restarts.
pub type NodeId = usize;

/// Something that happens to the world, now ([`World::apply`]) or at a given
/// virtual time ([`World::schedule`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Cuts the network into sides: each listed set is one side, every node
    /// not listed is on the remaining side. Packets and streams between
    /// sides are dropped when sent (what is already in flight arrives);
    /// replaces any earlier partition.
    Partition(Vec<Vec<NodeId>>),
    /// Ends any partition.
    Heal,
    /// The directed link `from → to` behaves like `link` from now on.
    SetLink {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Its loss and delay.
        link: Link,
    },
    /// Every link without its own [`Fault::SetLink`] behaves like this.
    SetDefaultLink(Link),
    /// The node takes `delay` to process each input, one input at a time
    /// (inputs wait while it is busy): a node that gets more than one input
    /// per `delay` falls ever further behind. `Duration::ZERO` makes it
    /// normal.
    Slow {
        /// The node.
        node: NodeId,
        /// Processing time per input.
        delay: Duration,
    },
    /// The node handles every input `delay` after it arrived: packets,
    /// stream requests, stream outcomes and its own timer (which so fires
    /// `delay` late), in arrival order, with no serialisation: a pipeline
    /// with latency, which keeps up with any rate (a starved CPU). Its
    /// clock is not skewed: it handles an input at the real `now`, so a
    /// late timer finds every deadline up to `now` due. Composes with
    /// [`Fault::Slow`]
    /// (an input waits `delay`, then its turn). Direct calls
    /// ([`World::with_node`]) are not delayed. `Duration::ZERO` makes it
    /// normal; lowering the delay never reorders inputs (a later input is
    /// never handled before an earlier one).
    Lag {
        /// The node.
        node: NodeId,
        /// Latency added to each input.
        delay: Duration,
    },
    /// Like [`Fault::Lag`], but only for what comes from outside: packets,
    /// stream requests and stream outcomes are handled `delay` late (in
    /// arrival order), while the node's own timer (and the deadlines of the
    /// streams it opened) fires on time. A node
    /// whose receive path is starved: its probe and suspicion deadlines
    /// pass before it reads the acks and refutations that came in time, so
    /// it accuses healthy members, the failure mode the Lifeguard paper
    /// studies. Adds to [`Fault::Lag`]. `Duration::ZERO` makes it normal.
    LagInbound {
        /// The node.
        node: NodeId,
        /// Latency added to each packet and stream.
        delay: Duration,
    },
    /// The node stops handling inputs (SIGSTOP): packets, streams, its timer
    /// and stream outcomes wait, in order, until [`Fault::Resume`].
    Pause(NodeId),
    /// The paused node handles everything that waited, now, in arrival order.
    Resume(NodeId),
    /// The node's process dies: its state is dropped, its timer and streams
    /// are forgotten, packets to it vanish, streams to it are refused.
    Kill(NodeId),
    /// A fresh node from the factory at the same address (killing the
    /// running one first, if any), with the next incarnation.
    Restart(NodeId),
    /// This many new nodes start, with the next free ids.
    Join(usize),
}

/// What one node sent and handled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeStats {
    /// Datagrams the node sent (whatever became of them).
    pub packets_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Datagrams the node handled.
    pub packets_received: u64,
    /// Their bytes.
    pub bytes_received: u64,
    /// Stream exchanges the node opened.
    pub streams_opened: u64,
    /// Stream bytes the node sent: its requests and its replies.
    pub stream_bytes_sent: u64,
    /// Times its timer fired.
    pub timeouts: u64,
}

/// What the whole world did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Totals {
    /// Events popped from the queue (including stale ones).
    pub events: u64,
    /// Inputs nodes handled.
    pub inputs: u64,
    /// Datagrams sent.
    pub packets_sent: u64,
    /// Their bytes.
    pub bytes_sent: u64,
    /// Datagrams handled by their destination.
    pub packets_delivered: u64,
    /// Datagrams lost to [`Link::loss`].
    pub packets_lost: u64,
    /// Extra copies delivered ([`Link::duplicate`]).
    pub packets_duplicated: u64,
    /// Datagrams (copies included) delivered with a byte changed
    /// (the link's corruption probability).
    pub packets_corrupted: u64,
    /// Datagrams dropped by a partition.
    pub packets_partitioned: u64,
    /// Datagrams to an address with no node, or to a dead node.
    pub packets_vanished: u64,
    /// Stream exchanges opened.
    pub streams_opened: u64,
    /// Stream bytes sent (requests and replies).
    pub stream_bytes_sent: u64,
    /// Stream exchanges that got a reply.
    pub streams_ok: u64,
    /// Stream exchanges that failed.
    pub streams_failed: u64,
    /// Stream requests and replies that [`Link::loss`] kept from arriving
    /// (a segment lost [`MAX_STREAM_RETRIES`](super::MAX_STREAM_RETRIES)
    /// times over): the requester's deadline answered.
    pub streams_broken: u64,
    /// Timers and stream outcomes dropped because they were superseded or
    /// belonged to a dead incarnation.
    pub stale: u64,
}

/// An input on its way to a node; `B` is what streams carry.
#[derive(Debug)]
enum Input<B> {
    Packet {
        from: NodeId,
        bytes: Vec<u8>,
    },
    /// `body` is `None` when the dial was refused (no process at `to`
    /// then): the refusal travels like a reply.
    Stream {
        from: NodeId,
        from_incarnation: u32,
        id: StreamId,
        body: Option<B>,
    },
    Outcome {
        incarnation: u32,
        id: StreamId,
        result: Result<B, StreamError>,
    },
    Timer {
        incarnation: u32,
        deadline: Time,
    },
}

#[derive(Debug)]
enum Kind<B> {
    /// `ready`: the slow / lagging node's delay has been paid.
    Input {
        node: NodeId,
        ready: bool,
        input: Input<B>,
    },
    Fault(Box<Fault>),
}

/// One queue entry. Ordered so that `BinaryHeap` (a max-heap) pops the
/// earliest `(at, seq)` first; `seq` is unique, so ties never depend on the
/// heap's internals.
#[derive(Debug)]
struct Event<B> {
    at: Time,
    seq: u64,
    kind: Kind<B>,
}

impl<B> PartialEq for Event<B> {
    fn eq(&self, other: &Event<B>) -> bool {
        self.seq == other.seq
    }
}
impl<B> Eq for Event<B> {}
impl<B> PartialOrd for Event<B> {
    fn partial_cmp(&self, other: &Event<B>) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<B> Ord for Event<B> {
    fn cmp(&self, other: &Event<B>) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

struct Node<P: Protocol<Body: StreamBody>> {
    /// `None` while dead.
    proto: Option<P>,
    /// Bumped by every kill; timers and stream outcomes carry it.
    incarnation: u32,
    /// The deadline of the one timer event that is live.
    timer_at: Option<Time>,
    /// Partition side; nodes on different sides cannot talk.
    side: u32,
    paused: bool,
    /// Inputs that arrived while paused.
    held: VecDeque<Input<P::Body>>,
    slow: Duration,
    lag: Duration,
    /// [`Fault::LagInbound`]: extra latency of everything but the timer.
    inbound_lag: Duration,
    /// When the last delayed input was (or will be) handled: with
    /// [`Fault::Slow`], the end of the busy period; with [`Fault::Lag`]
    /// alone, the ready time of the latest input (keeps arrival order).
    busy_until: Time,
    /// Streams this node opened that have no outcome yet.
    pending: Vec<StreamId>,
    stats: NodeStats,
}

impl<P: Protocol<Body: StreamBody>> Node<P> {
    fn new() -> Node<P> {
        Node {
            proto: None,
            incarnation: 0,
            timer_at: None,
            side: 0,
            paused: false,
            held: VecDeque::new(),
            slow: Duration::ZERO,
            lag: Duration::ZERO,
            inbound_lag: Duration::ZERO,
            busy_until: Time::ZERO,
            pending: Vec::new(),
            stats: NodeStats::default(),
        }
    }
}

/// FNV-1a, 64 bits.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A deterministic world of `P` nodes.
///
/// Everything random (loss, delays, node seeds) comes from one
/// `Xoshiro256PlusPlus` seeded with the world's seed: a named algorithm, so
/// the stream does not change with the `rand` version or the platform
/// (`StdRng` promises neither). Events pop in `(time, sequence)` order.
///
/// Drive it with [`World::step`], [`World::run_until`] or
/// [`World::run_until_idle`]; poke nodes with [`World::with_node`]; change
/// it with [`World::apply`] / [`World::schedule`]; watch it with
/// [`World::observe`].
///
/// The world is a driver of the [`swim::driver`](crate::swim::driver)
/// contract: after building a node, after every input and after every
/// [`World::with_node`] command it drains the node with
/// [`swim::drain`](crate::swim::drain) (so the node's delegates get their
/// notifications), sends its datagrams, opens its streams, shows the
/// observer what was drained, and re-arms its one timer.
pub struct World<P: Protocol<Body: StreamBody>> {
    now: Time,
    seq: u64,
    queue: BinaryHeap<Event<P::Body>>,
    rng: Xoshiro256PlusPlus,
    nodes: Vec<Node<P>>,
    factory: Box<dyn FnMut(&NodeCtx) -> P>,
    default_link: Link,
    links: BTreeMap<(NodeId, NodeId), Link>,
    totals: Totals,
    trace: u64,
    /// Start of the rate window and the totals then.
    window: (Time, Totals),
    /// Reused by every drain.
    outbox: Outbox,
    observer: Option<Box<Observer<P>>>,
}

/// What [`World::observe`]'s observer is shown each time the world drained a
/// node: after its start, each input it handled and each
/// [`World::with_node`] command.
#[derive(Debug)]
pub struct Drained<'a, P> {
    /// The virtual time.
    pub now: Time,
    /// The node.
    pub id: NodeId,
    /// Its life: [`World::incarnation`] (0, then +1 per kill).
    pub life: u32,
    /// The node, as it is after the input.
    pub node: &'a P,
    /// The effects drained, in order (its delegates have had them).
    pub effects: &'a [Effect],
}

/// A [`World::observe`] callback.
type Observer<P> = dyn FnMut(&Drained<'_, P>);

impl<P: Protocol<Body: StreamBody>> World<P> {
    /// An empty world at time zero; nodes are built by `factory` (on
    /// [`World::add_nodes`], [`Fault::Join`] and [`Fault::Restart`]).
    pub fn new(seed: u64, default_link: Link, factory: impl FnMut(&NodeCtx) -> P + 'static) -> World<P> {
        World {
            now: Time::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            nodes: Vec::new(),
            factory: Box::new(factory),
            default_link,
            links: BTreeMap::new(),
            totals: Totals::default(),
            trace: FNV_OFFSET,
            window: (Time::ZERO, Totals::default()),
            outbox: Outbox::default(),
            observer: None,
        }
    }

    /// Shows `observer` every drain from now on (replacing any earlier
    /// observer): the driver's bookkeeping and invariant checkers, which
    /// see every node right after every input it handled.
    pub fn observe(&mut self, observer: impl FnMut(&Drained<'_, P>) + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Starts `count` new nodes now; their ids.
    ///
    /// # Panics
    /// Beyond [`MAX_NODES`].
    pub fn add_nodes(&mut self, count: usize) -> Range<NodeId> {
        let first = self.nodes.len();
        assert!(count <= MAX_NODES - first, "more than {MAX_NODES} nodes");
        self.nodes.reserve(count);
        for id in first..first + count {
            self.nodes.push(Node::new());
            self.start(id);
        }
        first..first + count
    }

    /// The current virtual time.
    pub fn now(&self) -> Time {
        self.now
    }

    /// How many nodes the world has had (dead ones included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the world has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `id`, unless it is dead.
    pub fn node(&self, id: NodeId) -> Option<&P> {
        self.nodes[id].proto.as_ref()
    }

    /// Whether node `id` is running (possibly paused).
    pub fn is_alive(&self, id: NodeId) -> bool {
        self.nodes[id].proto.is_some()
    }

    /// Node `id`'s incarnation: 0, then +1 per kill.
    pub fn incarnation(&self, id: NodeId) -> u32 {
        self.nodes[id].incarnation
    }

    /// Calls `f` on live node `id` now (a command: join, leave, broadcast…),
    /// then drains its outputs. `None` if the node is dead.
    pub fn with_node<R>(&mut self, id: NodeId, f: impl FnOnce(&mut P, Time) -> R) -> Option<R> {
        let now = self.now;
        let r = f(self.nodes[id].proto.as_mut()?, now);
        self.drain(id);
        Some(r)
    }

    /// What node `id` sent and handled, across all its incarnations.
    pub fn node_stats(&self, id: NodeId) -> &NodeStats {
        &self.nodes[id].stats
    }

    /// What the world did.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// FNV-1a over every input a node handled (time, node, kind, peer,
    /// bytes) and every fault applied: equal for two runs exactly when
    /// (barring collisions) they did the same things at the same times.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    /// Events waiting in the queue (stale ones included).
    pub fn queued_events(&self) -> usize {
        self.queue.len()
    }

    /// The time of the next event.
    pub fn next_event_at(&self) -> Option<Time> {
        self.queue.peek().map(|e| e.at)
    }

    /// Starts a new rate window for [`World::bytes_per_node_per_s`] and
    /// [`World::packets_per_node_per_s`] (the first starts at time zero).
    pub fn reset_window(&mut self) {
        self.window = (self.now, self.totals);
    }

    /// Bytes sent (datagrams and streams) per node per virtual second since
    /// the window began, over all the world's nodes; 0 for an empty window.
    pub fn bytes_per_node_per_s(&self) -> f64 {
        let (_, base) = self.window;
        let bytes = self.totals.bytes_sent + self.totals.stream_bytes_sent - base.bytes_sent - base.stream_bytes_sent;
        self.per_node_per_s(bytes)
    }

    /// Datagrams sent per node per virtual second since the window began.
    pub fn packets_per_node_per_s(&self) -> f64 {
        self.per_node_per_s(self.totals.packets_sent - self.window.1.packets_sent)
    }

    fn per_node_per_s(&self, count: u64) -> f64 {
        let secs = (self.now - self.window.0).as_secs_f64();
        if secs == 0.0 || self.nodes.is_empty() {
            return 0.0;
        }
        count as f64 / self.nodes.len() as f64 / secs
    }

    /// Applies `fault` now.
    pub fn apply(&mut self, fault: Fault) {
        self.totals.events += 1;
        self.apply_fault(fault);
    }

    /// Applies `fault` at `at` (or now, if `at` is past), after the events
    /// already queued for that time.
    pub fn schedule(&mut self, at: Time, fault: Fault) {
        self.push(at, Kind::Fault(Box::new(fault)));
    }

    /// Handles the next event; `false` if there is none.
    pub fn step(&mut self) -> bool {
        let Some(event) = self.queue.pop() else { return false };
        debug_assert!(event.at >= self.now, "event in the past");
        self.now = event.at;
        self.totals.events += 1;
        match event.kind {
            Kind::Input { node, ready, input } => self.deliver(node, ready, input),
            Kind::Fault(fault) => self.apply_fault(*fault),
        }
        true
    }

    /// Handles every event up to and including `until`, then sets the clock
    /// to `until` (if it is later than now).
    pub fn run_until(&mut self, until: Time) {
        while self.queue.peek().is_some_and(|e| e.at <= until) {
            self.step();
        }
        self.now = self.now.max(until);
    }

    /// Handles events until none is left (`true`) or `max_events` have been
    /// handled (`false`).
    pub fn run_until_idle(&mut self, max_events: u64) -> bool {
        for _ in 0..max_events {
            if !self.step() {
                return true;
            }
        }
        self.queue.is_empty()
    }

    fn push(&mut self, at: Time, kind: Kind<P::Body>) {
        let at = at.max(self.now);
        self.seq += 1;
        self.queue.push(Event { at, seq: self.seq, kind });
    }

    fn push_input(&mut self, at: Time, node: NodeId, input: Input<P::Body>) {
        self.push(at, Kind::Input { node, ready: false, input });
    }

    fn link(&self, from: NodeId, to: NodeId) -> Link {
        if self.links.is_empty() {
            return self.default_link;
        }
        self.links.get(&(from, to)).copied().unwrap_or(self.default_link)
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        self.nodes[a].side == self.nodes[b].side
    }

    /// FNV-1a over 8-byte words (then the tail byte by byte): a fingerprint,
    /// not a defence, and eight times fewer multiplications than byte-wise
    /// FNV over the megabytes of push/pull a large world moves.
    fn mix(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            self.trace = (self.trace ^ w).wrapping_mul(FNV_PRIME);
        }
        for &b in words.remainder() {
            self.trace = (self.trace ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    fn mix_event(&mut self, node: NodeId, tag: u8, peer: u64, bytes: &[u8]) {
        self.mix_header(node, tag, peer, bytes.len());
        self.mix(bytes);
    }

    /// A stream body: its length on the wire and its bytes, if it has any
    /// (for bytes, the same as [`World::mix_event`]).
    fn mix_stream(&mut self, node: NodeId, tag: u8, peer: u64, body: &P::Body) {
        self.mix_header(node, tag, peer, body.wire_len());
        self.mix(body.trace_bytes());
    }

    fn mix_header(&mut self, node: NodeId, tag: u8, peer: u64, len: usize) {
        let at = self.now.since_epoch().as_nanos() as u64;
        self.mix(&at.to_le_bytes());
        self.mix(&(node as u64).to_le_bytes());
        self.mix(&[tag]);
        self.mix(&peer.to_le_bytes());
        self.mix(&(len as u64).to_le_bytes());
    }

    /// Builds node `id` (dead) from the factory and drains its first outputs.
    fn start(&mut self, id: NodeId) {
        debug_assert!(self.nodes[id].proto.is_none());
        let ctx = NodeCtx {
            id,
            addr: node_addr(id),
            incarnation: self.nodes[id].incarnation,
            seed: self.rng.next_u64(),
            now: self.now,
        };
        let proto = (self.factory)(&ctx);
        let node = &mut self.nodes[id];
        node.proto = Some(proto);
        node.busy_until = self.now;
        self.drain(id);
    }

    /// Drains node `id` ([`swim::drain`](crate::swim::drain)), sends what it
    /// wants sent, shows the observer, and re-arms its timer.
    fn drain(&mut self, id: NodeId) {
        let Some(proto) = self.nodes[id].proto.as_mut() else { return };
        let mut out = std::mem::take(&mut self.outbox);
        drain(proto, &mut out);
        for t in out.transmits.drain(..) {
            self.send_packet(id, t);
        }
        for s in out.streams.drain(..) {
            self.open_stream(id, s);
        }
        if let (Some(observer), Some(node)) = (self.observer.as_mut(), self.nodes[id].proto.as_ref()) {
            let life = self.nodes[id].incarnation;
            observer(&Drained { now: self.now, id, life, node, effects: &out.effects });
        }
        out.effects.clear();
        let want = out.timer;
        self.outbox = out;
        let node = &mut self.nodes[id];
        if want != node.timer_at {
            node.timer_at = want;
            if let Some(deadline) = want {
                let incarnation = node.incarnation;
                self.push_input(deadline, id, Input::Timer { incarnation, deadline });
            }
        }
    }

    fn send_packet(&mut self, from: NodeId, t: Transmit) {
        let len = t.bytes.len() as u64;
        let stats = &mut self.nodes[from].stats;
        stats.packets_sent += 1;
        stats.bytes_sent += len;
        self.totals.packets_sent += 1;
        self.totals.bytes_sent += len;
        let Some(to) = node_id(t.to).filter(|&to| to < self.nodes.len()) else {
            self.totals.packets_vanished += 1;
            return;
        };
        if !self.connected(from, to) {
            self.totals.packets_partitioned += 1;
            return;
        }
        let link = self.link(from, to);
        if link.lose(&mut self.rng) {
            self.totals.packets_lost += 1;
            return;
        }
        if link.duplicates(&mut self.rng) {
            self.totals.packets_duplicated += 1;
            self.deliver_copy(from, to, &link, t.bytes.clone());
        }
        self.deliver_copy(from, to, &link, t.bytes);
    }

    /// One copy of a datagram on its way over `link`: perhaps corrupted,
    /// delayed.
    fn deliver_copy(&mut self, from: NodeId, to: NodeId, link: &Link, mut bytes: Vec<u8>) {
        if link.corrupt(&mut bytes, &mut self.rng) {
            self.totals.packets_corrupted += 1;
        }
        let at = self.now + link.delay.sample(&mut self.rng);
        self.push_input(at, to, Input::Packet { from, bytes });
    }

    fn open_stream(&mut self, from: NodeId, s: StreamRequest) {
        let node = &mut self.nodes[from];
        node.stats.streams_opened += 1;
        node.pending.push(s.id);
        let incarnation = node.incarnation;
        self.totals.streams_opened += 1;
        // The requester's own deadline; whichever outcome comes first wins.
        let timeout = Input::Outcome { incarnation, id: s.id, result: Err(StreamError::Timeout) };
        self.push_input(s.deadline, from, timeout);
        match node_id(s.to).filter(|&to| to < self.nodes.len()) {
            None => {
                let at = self.now + self.default_link.delay.sample(&mut self.rng);
                let refused = Input::Outcome { incarnation, id: s.id, result: Err(StreamError::Refused) };
                self.push_input(at, from, refused);
            }
            Some(to) if !self.connected(from, to) => {} // silence: the deadline answers
            Some(to) => {
                // Connected (the handshake is not modelled) unless nothing
                // listens there: only then is the request encoded.
                let body = if self.nodes[to].proto.is_some() {
                    let body = self.nodes[from].proto.as_mut().map(|p| p.stream_connected(s.id));
                    let len = body.as_ref().map_or(0, |b| b.wire_len() as u64);
                    self.nodes[from].stats.stream_bytes_sent += len;
                    self.totals.stream_bytes_sent += len;
                    body
                } else {
                    None
                };
                let len = body.as_ref().map_or(0, StreamBody::wire_len);
                let Some(delay) = self.link(from, to).stream_delay(len, &mut self.rng) else {
                    self.totals.streams_broken += 1;
                    return; // the deadline answers
                };
                let input = Input::Stream { from, from_incarnation: incarnation, id: s.id, body };
                self.push_input(self.now + delay, to, input);
            }
        }
    }

    /// `responder` answers stream `id` of `requester`'s incarnation.
    fn answer(
        &mut self,
        responder: NodeId,
        requester: NodeId,
        incarnation: u32,
        id: StreamId,
        result: Result<P::Body, StreamError>,
    ) {
        if !self.connected(responder, requester) {
            return;
        }
        let len = result.as_ref().map_or(0, StreamBody::wire_len);
        let Some(delay) = self.link(responder, requester).stream_delay(len, &mut self.rng) else {
            self.totals.streams_broken += 1;
            return; // the deadline answers
        };
        self.push_input(self.now + delay, requester, Input::Outcome { incarnation, id, result });
    }

    fn deliver(&mut self, id: NodeId, ready: bool, input: Input<P::Body>) {
        let node = &mut self.nodes[id];
        if node.proto.is_none() {
            match input {
                Input::Packet { .. } => self.totals.packets_vanished += 1,
                Input::Stream { from, from_incarnation, id: sid, .. } => {
                    self.answer(id, from, from_incarnation, sid, Err(StreamError::Refused));
                }
                Input::Outcome { .. } | Input::Timer { .. } => self.totals.stale += 1,
            }
            return;
        }
        if let Input::Timer { incarnation, .. } | Input::Outcome { incarnation, .. } = input
            && incarnation != node.incarnation
        {
            self.totals.stale += 1;
            return;
        }
        if node.paused {
            node.held.push_back(input);
            return;
        }
        // A stream's timeout is the requester's own deadline: a timer.
        let lag = match input {
            Input::Timer { .. } | Input::Outcome { result: Err(StreamError::Timeout), .. } => node.lag,
            _ => node.lag + node.inbound_lag,
        };
        // With only an inbound lag, the timer goes straight through.
        let delayed = node.slow > Duration::ZERO || lag > Duration::ZERO;
        if !ready && delayed {
            let start = (self.now + lag).max(node.busy_until) + node.slow;
            node.busy_until = start;
            self.push(start, Kind::Input { node: id, ready: true, input });
            return;
        }
        self.handle(id, input);
    }

    /// Node `id` (live, running, right incarnation) handles `input` now.
    fn handle(&mut self, id: NodeId, input: Input<P::Body>) {
        let now = self.now;
        match input {
            Input::Packet { from, mut bytes } => {
                self.mix_event(id, 0, from as u64, &bytes);
                let node = &mut self.nodes[id];
                node.stats.packets_received += 1;
                node.stats.bytes_received += bytes.len() as u64;
                self.totals.packets_delivered += 1;
                let proto = node.proto.as_mut().expect("live node");
                proto.handle_packet(node_addr(from), &mut bytes, now);
            }
            Input::Stream { from, from_incarnation, id: sid, body: None } => {
                // Dialed while this node was down: refused, even if it has
                // restarted since.
                self.answer(id, from, from_incarnation, sid, Err(StreamError::Refused));
            }
            Input::Stream { from, from_incarnation, id: sid, body: Some(body) } => {
                self.mix_stream(id, 1, from as u64, &body);
                let node = &mut self.nodes[id];
                let proto = node.proto.as_mut().expect("live node");
                let reply = proto.handle_stream(node_addr(from), body, now);
                // The world writes the reply at once.
                proto.stream_reply_done(node_addr(from));
                let len = reply.as_ref().map_or(0, |r| r.wire_len() as u64);
                node.stats.stream_bytes_sent += len;
                self.totals.stream_bytes_sent += len;
                self.answer(id, from, from_incarnation, sid, reply.ok_or(StreamError::Closed));
            }
            Input::Outcome { id: sid, result, .. } => {
                let node = &mut self.nodes[id];
                let Some(i) = node.pending.iter().position(|&p| p == sid) else {
                    self.totals.stale += 1;
                    return;
                };
                node.pending.swap_remove(i);
                match &result {
                    Ok(_) => self.totals.streams_ok += 1,
                    Err(_) => self.totals.streams_failed += 1,
                }
                match &result {
                    Ok(body) => self.mix_stream(id, 2, sid, body),
                    Err(e) => self.mix_event(id, 3 + *e as u8, sid, &[]),
                }
                let proto = self.nodes[id].proto.as_mut().expect("live node");
                proto.handle_stream_reply(sid, result, now);
            }
            Input::Timer { deadline, .. } => {
                let node = &mut self.nodes[id];
                if node.timer_at != Some(deadline) {
                    self.totals.stale += 1;
                    return;
                }
                node.timer_at = None;
                node.stats.timeouts += 1;
                node.proto.as_mut().expect("live node").handle_timeout(now);
                self.mix_event(id, 7, deadline.since_epoch().as_nanos() as u64, &[]);
            }
        }
        self.totals.inputs += 1;
        self.drain(id);
    }

    fn apply_fault(&mut self, fault: Fault) {
        let (tag, node) = match &fault {
            Fault::Partition(_) => (0, 0),
            Fault::Heal => (1, 0),
            Fault::SetLink { from, .. } => (2, *from),
            Fault::SetDefaultLink(_) => (3, 0),
            Fault::Slow { node, .. } => (4, *node),
            Fault::Pause(n) => (5, *n),
            Fault::Resume(n) => (6, *n),
            Fault::Kill(n) => (7, *n),
            Fault::Restart(n) => (8, *n),
            Fault::Join(count) => (9, *count),
            Fault::Lag { node, .. } => (10, *node),
            Fault::LagInbound { node, .. } => (11, *node),
        };
        self.mix_event(node, 0x80 | tag, 0, &[]);
        match fault {
            Fault::Partition(sides) => {
                for node in &mut self.nodes {
                    node.side = 0;
                }
                for (i, side) in sides.iter().enumerate() {
                    for &id in side {
                        self.nodes[id].side = u32::try_from(i + 1).expect("fewer sides than nodes");
                    }
                }
            }
            Fault::Heal => {
                for node in &mut self.nodes {
                    node.side = 0;
                }
            }
            Fault::SetLink { from, to, link } => {
                self.links.insert((from, to), link);
            }
            Fault::SetDefaultLink(link) => self.default_link = link,
            Fault::Slow { node, delay } => self.nodes[node].slow = delay,
            Fault::Lag { node, delay } => self.nodes[node].lag = delay,
            Fault::LagInbound { node, delay } => self.nodes[node].inbound_lag = delay,
            Fault::Pause(id) => {
                let node = &mut self.nodes[id];
                node.paused = node.proto.is_some();
            }
            Fault::Resume(id) => {
                let node = &mut self.nodes[id];
                node.paused = false;
                let held = std::mem::take(&mut node.held);
                let now = self.now;
                for input in held {
                    self.push_input(now, id, input);
                }
            }
            Fault::Kill(id) => self.kill(id),
            Fault::Restart(id) => {
                if self.nodes[id].proto.is_some() {
                    self.kill(id);
                }
                self.start(id);
            }
            Fault::Join(count) => {
                self.add_nodes(count);
            }
        }
    }

    fn kill(&mut self, id: NodeId) {
        let node = &mut self.nodes[id];
        if node.proto.take().is_none() {
            return;
        }
        node.incarnation += 1;
        node.timer_at = None;
        node.paused = false;
        node.held.clear();
        node.pending.clear();
    }
}
