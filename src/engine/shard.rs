//! A shard: the nodes one engine thread hosts, and everything about them
//! that is not a system call. Each backend's worker owns one [`Shard`] and
//! does only the I/O it asks for; the shard runs the driver contract
//! ([`swim::driver`](crate::swim::driver)) for every node it holds.
//!
//! # What the backend does
//! - A datagram arrived on node `n`'s UDP socket: [`Shard::datagram`].
//! - A connection was accepted on node `n`'s listener: [`Shard::accepted`]
//!   gives a [`ConnId`]; the backend keeps the socket under that id, or
//!   closes it on `None`. Making room may abort an older connection
//!   ([`Io::Abort`]) whose slot the new id reuses: a backend that keeps
//!   sockets by slot carries out [`Shard::take_io`] first.
//! - For every connection, after any event on it: loop on
//!   [`Shard::want`] — [`Want::Connect`] (wait), [`Want::Write`] (write
//!   [`Shard::unwritten`], report [`Shard::wrote`]), [`Want::Read`] (read
//!   into [`Shard::read_room`], report [`Shard::read`]), [`Want::Close`]
//!   (close the socket, report [`Shard::conn_closed`]) — until it would
//!   block. Connection failures: [`Shard::conn_failed`].
//! - [`Shard::next_deadline`] says how long it may block;
//!   [`Shard::run_timers`] when that time comes.
//! - After each turn, send every datagram of [`Shard::sends`] (one at a
//!   time, [`SendQueue::iter`], or a batch per node, [`SendQueue::runs`];
//!   then [`SendQueue::clear`]) and carry out every [`Io`] of
//!   [`Shard::take_io`] (open a dial, drop a node's sockets).
//! - A command from an API handle: [`Shard::command`] (and
//!   [`Shard::host`] for a new node, whose sockets the backend registers;
//!   [`Shard::host_receiver`] for a spread node's socket on a thread that
//!   does not own it, [`spread`](super::spread)).
//! - Before each batch of sends: [`Shard::exchange_handoffs`] (tells other
//!   threads of the messages this one opened for their nodes, handles the
//!   ones they opened for its own).
//!
//! # Why the packets bypass `poll_transmit`
//! After each input the shard takes the node's packets with
//! [`Core::poll_packet`] and seals them with the node's [`Sealer`] straight
//! into the shard's send buffer (no allocation per datagram), then runs the
//! one [`drain`] for streams, effects and the timer; `drain` finds no
//! datagram left.
#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::api::{Error as EngineError, MemberInfo, NodeOp, Reply};
use super::conn::{Conn, DialOutcome, Phase, Role, Want};
use super::runtime::ShardCounters;
use super::spread::{Handoff, Inbound, Receiving};
use super::telemetry::{EXPORT_INTERVAL, NodeExport, TrafficExport};
use crate::config::Config;
use crate::delegate::Node;
use crate::swim::metrics::STREAMS_REFUSED;
use crate::swim::{Core, Effect, Sealer, Sink, StreamError, StreamRequest, Time, Transmit, drain};
use crate::wire::Framing;

/// Inbound connections one node holds at most: accepted, and not yet done
/// reading the request and writing its reply. One more ends the node's
/// oldest inbound connection that has not delivered a whole request
/// (counted, `ringswim.streams.refused{reason="too_many_connections"}`),
/// or is itself closed at once when every one has (then each is writing a
/// reply, and ends by `tcp_timeout` at the latest).
///
/// Twice Go's `maxPushPullRequests`
/// ([`MAX_PUSH_PULL_REQUESTS`](crate::swim::MAX_PUSH_PULL_REQUESTS)): up to
/// 127 admitted push/pulls may be writing large replies to slow readers,
/// and as many again may be reading requests, which on a LAN complete in
/// well under a millisecond. A peer that opens connections and stalls
/// (slowloris) only churns the oldest stalled ones: an honest request is
/// ended only if this many connections arrive while it is being read, so
/// a retry gets through. This bounds the node's connection buffers too:
/// each has one read in flight at most (64 KiB on the io_uring backend)
/// and what its request has sent so far (at most the 20 MiB stream limit,
/// which a peer has to send).
/// Go 0.2.2 bounds none: every connection holds a goroutine until its
/// `TCPTimeout`.
pub const MAX_INBOUND_CONNECTIONS: usize = 2 * crate::swim::MAX_PUSH_PULL_REQUESTS;

/// Index of a hosted node in its shard.
pub(crate) type NodeId = usize;

/// A connection's handle: its slot and the slot's generation, so that a
/// completion for a connection already gone is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId {
    pub slot: u32,
    pub generation: u32,
}

/// I/O the shard asks of its backend, besides datagrams.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Io {
    /// Dial `to` for connection `conn` (then report through [`Shard::want`]
    /// or [`Shard::conn_failed`]).
    Dial { conn: ConnId, to: SocketAddr },
    /// The shard ended `conn` (its deadline passed, or its node shut down):
    /// close its socket without reporting back.
    Abort { conn: ConnId },
    /// Node `node` is shut down: close its UDP socket and listener.
    Unhost { node: NodeId },
}

/// The datagrams a turn produced, sealed, in one buffer.
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    bytes: Vec<u8>,
    datagrams: Vec<(NodeId, SocketAddr, Range<usize>)>,
}

impl SendQueue {
    /// Each datagram: from which node's socket, to where, the bytes.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, SocketAddr, &[u8])> {
        self.datagrams.iter().map(|(node, to, r)| (*node, *to, &self.bytes[r.clone()]))
    }
    /// The same datagrams in runs of one node's socket (consecutive in the
    /// queue, so every socket's datagrams keep their order): the node, then
    /// each datagram's destination and bytes. A backend that sends a batch
    /// per system call sends a run at a time.
    pub fn runs(&self) -> impl Iterator<Item = (NodeId, impl Iterator<Item = (SocketAddr, &[u8])>)> {
        self.datagrams
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| (run[0].0, run.iter().map(|(_, to, r)| (*to, &self.bytes[r.clone()]))))
    }
    /// Forget them (sent, or dropped by the backend), keeping the buffers.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.datagrams.clear();
    }
}

/// A node on this shard.
struct Hosted {
    core: Core<StdRng>,
    sealer: Sealer<StdRng>,
    /// Reused packet body.
    body: Vec<u8>,
    /// The core's timer as last drained.
    timer: Option<Time>,
    /// Joins in flight, by the number [`Core::join`] gave.
    joins: HashMap<u64, Reply<Result<usize, EngineError>>>,
    /// Callers of `leave` and `update_node`, waiting for the broadcast.
    leave_waiters: Vec<Reply<()>>,
    update_waiters: Vec<Reply<Result<(), EngineError>>>,
    /// Connections of this node (to abort them when it goes).
    conns: Vec<ConnId>,
    /// Its counters at the last metrics export.
    export: NodeExport,
    /// A spread node's queues from the other threads that receive for it.
    inbound: Vec<Inbound>,
}

/// Something due at a time in the shard's timer heap (stale entries are
/// skipped when popped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Node(NodeId),
    Conn(ConnId),
    /// The metrics export ([`EXPORT_INTERVAL`]).
    Export,
}

/// The nodes of one engine thread. See the [module docs](self).
pub(crate) struct Shard {
    /// Nodes by id. An id is one slot for the backend (its sockets): it
    /// holds a node here, or a receiver in `receivers`, or nothing.
    nodes: Vec<Option<Hosted>>,
    /// Receiving entries of spread nodes owned by other threads, by id
    /// (the same ids as `nodes`; shorter when the last ids are nodes).
    receivers: Vec<Option<Receiving>>,
    /// Nodes with [`Hosted::inbound`] queues.
    spread: Vec<NodeId>,
    conns: Vec<(u32, Option<Conn>)>,
    free_conns: Vec<u32>,
    timers: BinaryHeap<Reverse<(Time, Due)>>,
    sends: SendQueue,
    io: Vec<Io>,
    /// The thread's traffic counters (the backend counts into them).
    counters: Arc<ShardCounters>,
    traffic: TrafficExport,
    export_scheduled: bool,
    /// How late this thread's timers may run ([`super::timer_slack`] of
    /// the most demanding node it ever hosted; [`Shard::wait`]).
    timer_slack: std::time::Duration,
}

impl Shard {
    /// An empty shard whose backend counts its traffic into `counters`.
    pub fn new(counters: Arc<ShardCounters>) -> Shard {
        Shard {
            nodes: Vec::new(),
            receivers: Vec::new(),
            spread: Vec::new(),
            conns: Vec::new(),
            free_conns: Vec::new(),
            timers: BinaryHeap::new(),
            sends: SendQueue::default(),
            io: Vec::new(),
            counters,
            traffic: TrafficExport::default(),
            export_scheduled: false,
            timer_slack: super::MAX_TIMER_SLACK,
        }
    }

    /// How long the backend may block waiting for input: until the next
    /// deadline plus the thread's timer slack, so that everything due by
    /// then runs in one wake-up (`None`: no timer, until input or a
    /// command).
    pub fn wait(&mut self, clock: &super::runtime::Clock) -> Option<std::time::Duration> {
        let slack = self.timer_slack;
        self.next_deadline().map(|at| clock.until(at) + slack)
    }

    /// Starts a node: its core, advertised at `advertise`; `events` gets its
    /// membership events. The backend then registers its sockets under the
    /// returned id.
    pub fn host(&mut self, config: Config, advertise: SocketAddr, now: Time) -> Result<NodeId, EngineError> {
        let mut os = rand::rng();
        let core = Core::new(config, advertise, now, StdRng::from_rng(&mut os)).map_err(EngineError::Core)?;
        self.timer_slack = self.timer_slack.min(super::timer_slack(core.config()));
        let sealer = Sealer::new(core.config(), core.keyring().clone(), StdRng::from_rng(&mut os));
        let hosted = Hosted {
            core,
            sealer,
            body: Vec::new(),
            timer: None,
            joins: HashMap::new(),
            leave_waiters: Vec::new(),
            update_waiters: Vec::new(),
            conns: Vec::new(),
            export: NodeExport::default(),
            inbound: Vec::new(),
        };
        self.schedule_export(now);
        let id = self.free_slot();
        self.nodes[id] = Some(hosted);
        let h = self.nodes[id].as_mut().expect("just put");
        h.core.start(now);
        self.after_input(id);
        Ok(id)
    }

    /// Starts the metrics export when the shard gets its first node or
    /// receiver.
    fn schedule_export(&mut self, now: Time) {
        if !self.export_scheduled {
            self.export_scheduled = true;
            self.timers.push(Reverse((now + EXPORT_INTERVAL, Due::Export)));
        }
    }

    /// An id that holds neither a node nor a receiver.
    fn free_slot(&mut self) -> NodeId {
        let receiving = |id: NodeId| self.receivers.get(id).is_some_and(Option::is_some);
        match (0..self.nodes.len()).find(|&id| self.nodes[id].is_none() && !receiving(id)) {
            Some(free) => free,
            None => {
                self.nodes.push(None);
                self.nodes.len() - 1
            }
        }
    }

    /// Starts receiving for a spread node another thread owns: datagrams
    /// on the socket the backend registers under the returned id are opened
    /// here and queued for the owner by `receiving`
    /// ([`spread`](super::spread)).
    pub fn host_receiver(&mut self, receiving: Receiving, now: Time) -> NodeId {
        self.schedule_export(now);
        let id = self.free_slot();
        if self.receivers.len() <= id {
            self.receivers.resize_with(id + 1, || None);
        }
        self.receivers[id] = Some(receiving);
        id
    }

    /// Node `id` takes, from now on, the messages another thread queues in
    /// `handoff` for it (its receiving entry there).
    fn attach_inbound(&mut self, id: NodeId, handoff: Arc<Handoff>, now: Time) {
        let Some(Some(h)) = self.nodes.get_mut(id) else { return };
        h.inbound.push(Inbound::new(handoff));
        if !self.spread.contains(&id) {
            self.spread.push(id);
        }
        // Messages queued before the owner knew the queue.
        self.take_handoffs(now);
    }

    /// Before each batch of sends (the backend's flush, which follows
    /// every wake-up): tells the owners of spread nodes what this thread
    /// queued for them since the last call (one wake-up of an owner per
    /// batch, not per message), and handles what other threads queued for
    /// this thread's spread nodes. Checking at every flush, not only when
    /// woken, keeps an owner busy with its own socket serving the queues
    /// too.
    pub fn exchange_handoffs(&mut self, now: Time) {
        for r in self.receivers.iter_mut().flatten() {
            r.announce();
        }
        self.take_handoffs(now);
    }

    /// Handles what other threads opened for this thread's spread nodes
    /// since the last call (their [`Handoff`]s said so): one turn per node
    /// for the whole batch.
    fn take_handoffs(&mut self, now: Time) {
        for i in 0..self.spread.len() {
            let id = self.spread[i];
            let Some(Some(h)) = self.nodes.get_mut(id) else { continue };
            let mut handled = 0;
            for inbound in &mut h.inbound {
                handled += inbound.handle(&mut h.core, now);
            }
            if handled > 0 {
                self.after_input(id);
            }
        }
    }

    /// The keyring of node `id`, for its API handle.
    pub fn keyring(&self, id: NodeId) -> Option<crate::wire::SharedKeyring> {
        self.nodes.get(id)?.as_ref().map(|h| h.core.keyring().clone())
    }

    /// The counters of node `id`, for its API handle.
    pub fn metrics(&self, id: NodeId) -> Option<crate::swim::Metrics> {
        self.nodes.get(id)?.as_ref().map(|h| h.core.metrics().clone())
    }

    /// The local node of `id`.
    pub fn local_node(&self, id: NodeId) -> Option<Node> {
        self.nodes.get(id)?.as_ref().map(|h| h.core.local_node().clone())
    }

    /// A datagram for node `id` arrived from `from` (for a receiver: it
    /// is opened and queued for the owner).
    pub fn datagram(&mut self, id: NodeId, from: SocketAddr, bytes: &mut [u8], now: Time) {
        if let Some(Some(h)) = self.nodes.get_mut(id) {
            h.core.handle_packet(from, bytes, now);
            self.after_input(id);
        } else if let Some(Some(r)) = self.receivers.get_mut(id) {
            let queued = r.datagram(from, bytes);
            ShardCounters::add(&self.counters.handoff_messages, queued as u64);
        }
    }

    /// The earliest time anything on the shard is due.
    pub fn next_deadline(&mut self) -> Option<Time> {
        while let Some(Reverse((at, due))) = self.timers.peek().copied() {
            if self.is_current(at, due) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    fn is_current(&self, at: Time, due: Due) -> bool {
        match due {
            Due::Node(id) => self.nodes.get(id).and_then(Option::as_ref).is_some_and(|h| h.timer == Some(at)),
            Due::Conn(c) => self.conn(c).is_some_and(|conn| conn.deadline == at && conn.phase != Phase::Done),
            Due::Export => true,
        }
    }

    /// Runs everything due at `now`.
    pub fn run_timers(&mut self, now: Time) {
        while let Some(Reverse((at, due))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.is_current(at, due) {
                continue;
            }
            match due {
                Due::Node(id) => {
                    if let Some(Some(h)) = self.nodes.get_mut(id) {
                        h.timer = None;
                        h.core.handle_timeout(now);
                        self.after_input(id);
                    }
                }
                // The core ends a dial at its deadline itself (its own
                // timer); an accepted stream that never finished is given
                // back. Either way the socket goes.
                Due::Conn(c) => self.abort(c),
                Due::Export => self.export(at),
            }
        }
    }

    /// Exports every node's metrics and the shard's traffic, and schedules
    /// the next export.
    fn export(&mut self, at: Time) {
        for h in self.nodes.iter_mut().flatten() {
            h.export.export(&mut h.core);
        }
        self.traffic.export(&self.counters);
        self.timers.push(Reverse((at + EXPORT_INTERVAL, Due::Export)));
    }

    /// The datagrams this turn produced.
    pub fn sends(&mut self) -> &mut SendQueue {
        &mut self.sends
    }

    /// The other I/O this turn produced.
    pub fn take_io(&mut self) -> std::vec::Drain<'_, Io> {
        self.io.drain(..)
    }

    // ----- connections -----

    fn conn(&self, c: ConnId) -> Option<&Conn> {
        match self.conns.get(c.slot as usize) {
            Some((generation, Some(conn))) if *generation == c.generation => Some(conn),
            _ => None,
        }
    }

    fn conn_mut(&mut self, c: ConnId) -> Option<&mut Conn> {
        match self.conns.get_mut(c.slot as usize) {
            Some((generation, Some(conn))) if *generation == c.generation => Some(conn),
            _ => None,
        }
    }

    fn insert_conn(&mut self, conn: Conn) -> ConnId {
        let (node, deadline) = (conn.node, conn.deadline);
        let slot = match self.free_conns.pop() {
            Some(slot) => slot,
            None => {
                self.conns.push((0, None));
                u32::try_from(self.conns.len() - 1).expect("fewer than 2^32 connections")
            }
        };
        let entry = &mut self.conns[slot as usize];
        entry.1 = Some(conn);
        let id = ConnId { slot, generation: entry.0 };
        self.timers.push(Reverse((deadline, Due::Conn(id))));
        if let Some(Some(h)) = self.nodes.get_mut(node) {
            h.conns.push(id);
        }
        id
    }

    fn remove_conn(&mut self, c: ConnId) -> Option<Conn> {
        let entry = self.conns.get_mut(c.slot as usize)?;
        if entry.0 != c.generation {
            return None;
        }
        let conn = entry.1.take()?;
        entry.0 = entry.0.wrapping_add(1);
        self.free_conns.push(c.slot);
        if let Some(Some(h)) = self.nodes.get_mut(conn.node) {
            h.conns.retain(|&x| x != c);
        }
        Some(conn)
    }

    /// A peer connected to node `id`'s listener from `from`: its id, or
    /// `None` when the backend is to close the socket (no such node, or
    /// the node holds [`MAX_INBOUND_CONNECTIONS`] and none of them can
    /// make room). Past the bound, the node's oldest inbound connection
    /// that has not delivered a whole request is ended first
    /// ([`Io::Abort`]), and either way one is counted,
    /// `ringswim.streams.refused{reason="too_many_connections"}`.
    pub fn accepted(&mut self, id: NodeId, from: SocketAddr, now: Time) -> Option<ConnId> {
        let h = self.nodes.get(id)?.as_ref()?;
        let deadline = now + h.core.config().tcp_timeout;
        if !self.make_room_for_inbound(id) {
            return None;
        }
        Some(self.insert_conn(Conn::serve(id, from, deadline)))
    }

    /// Whether node `id` may accept one more connection: under
    /// [`MAX_INBOUND_CONNECTIONS`] unfinished inbound ones, or at it and
    /// the oldest still reading its request was aborted to make room
    /// (counted either way once at the bound).
    fn make_room_for_inbound(&mut self, id: NodeId) -> bool {
        let Some(Some(h)) = self.nodes.get(id) else { return false };
        let mut open = 0;
        let mut oldest_reading = None;
        // `conns` is in the order they were opened: the first reading one
        // is the oldest.
        for conn_id in &h.conns {
            let Some(conn) = self.conn(*conn_id) else { continue };
            if matches!(conn.role, Role::Serve { .. }) && conn.phase != Phase::Done {
                open += 1;
                if oldest_reading.is_none() && conn.phase == Phase::Reading {
                    oldest_reading = Some(*conn_id);
                }
            }
        }
        if open < MAX_INBOUND_CONNECTIONS {
            return true;
        }
        h.core.metrics().count(STREAMS_REFUSED, "too_many_connections");
        match oldest_reading {
            Some(oldest) => {
                self.abort(oldest);
                true
            }
            None => false,
        }
    }

    /// What the backend does next on `c` (`Close` for a connection the
    /// shard no longer knows).
    pub fn want(&self, c: ConnId) -> Want {
        self.conn(c).map_or(Want::Close, Conn::want)
    }

    /// The bytes to write on `c`.
    pub fn unwritten(&self, c: ConnId) -> &[u8] {
        self.conn(c).map_or(&[], Conn::unwritten)
    }

    /// Room to read into on `c`.
    pub fn read_room(&mut self, c: ConnId) -> &mut [u8] {
        match self.conn_mut(c) {
            Some(conn) => conn.read_room(),
            None => &mut [],
        }
    }

    /// A dial of `c` connected: the core writes its request.
    pub fn connected(&mut self, c: ConnId) {
        let Some(conn) = self.conn(c) else { return };
        let (node, Role::Dial { id, .. }) = (conn.node, conn.role) else { return };
        let Some(Some(h)) = self.nodes.get_mut(node) else { return self.abort(c) };
        let bytes = h.core.stream_connected(id);
        self.after_input(node);
        if let Some(conn) = self.conn_mut(c) {
            conn.start_write(bytes);
        }
    }

    /// `n` bytes of [`Shard::unwritten`] were written on `c`.
    pub fn wrote(&mut self, c: ConnId, n: usize, now: Time) {
        let Some(conn) = self.conn_mut(c) else { return };
        if !conn.wrote(n) {
            return;
        }
        match conn.role {
            Role::Dial { kind, .. } if kind.expects_reply() => conn.start_read(),
            Role::Dial { .. } => self.end_dial(c, DialOutcome::Reply(Vec::new()), now),
            Role::Serve { .. } => self.end_serve(c),
        }
    }

    /// `n` bytes were read into [`Shard::read_room`] on `c`; 0 is the end
    /// of the stream.
    pub fn read(&mut self, c: ConnId, n: usize, now: Time) {
        let Some(conn) = self.conn_mut(c) else { return };
        if n == 0 {
            return self.conn_failed(c, now);
        }
        match conn.read(n) {
            Ok(Framing::Incomplete { .. }) => {}
            Ok(Framing::Complete { len }) => {
                let msg = conn.take_message(len);
                match conn.role {
                    Role::Dial { .. } => self.end_dial(c, DialOutcome::Reply(msg), now),
                    Role::Serve { from } => self.serve(c, from, msg, now),
                }
            }
            // No stream message: the exchange ends here (the core counts
            // nothing it never saw; the peer gets no reply).
            Err(_) => self.conn_failed(c, now),
        }
    }

    /// `c` failed: its dial was refused, the peer closed early or reset.
    pub fn conn_failed(&mut self, c: ConnId, now: Time) {
        let Some(conn) = self.conn(c) else { return };
        match conn.role {
            Role::Dial { .. } => {
                let outcome = if conn.phase == Phase::Connecting { DialOutcome::Refused } else { DialOutcome::Closed };
                self.end_dial(c, outcome, now);
            }
            Role::Serve { .. } => self.end_serve(c),
        }
    }

    /// The dial of `c` failed before it had a socket (no descriptor, a
    /// refused registration): the core hears it was refused and the
    /// connection is gone, with no socket to close.
    pub fn dial_failed(&mut self, c: ConnId, now: Time) {
        self.conn_failed(c, now);
        if self.want(c) == Want::Close {
            self.conn_closed(c);
        }
    }

    /// The backend closed `c`'s socket after [`Want::Close`].
    pub fn conn_closed(&mut self, c: ConnId) {
        self.remove_conn(c);
    }

    fn serve(&mut self, c: ConnId, from: SocketAddr, mut msg: Vec<u8>, now: Time) {
        let node = match self.conn(c) {
            Some(conn) => conn.node,
            None => return,
        };
        let Some(Some(h)) = self.nodes.get_mut(node) else { return self.abort(c) };
        let reply = h.core.handle_stream(from, &mut msg, now);
        self.after_input(node);
        if let Some(conn) = self.conn_mut(c) {
            conn.start_write(reply.unwrap_or_default());
            if conn.phase == Phase::Done {
                self.end_serve(c);
            }
        }
    }

    fn end_serve(&mut self, c: ConnId) {
        let Some(conn) = self.conn_mut(c) else { return };
        conn.finish();
        let (node, role) = (conn.node, conn.role);
        if let (Role::Serve { from }, Some(Some(h))) = (role, self.nodes.get_mut(node)) {
            h.core.stream_reply_done(from);
        }
    }

    fn end_dial(&mut self, c: ConnId, outcome: DialOutcome, now: Time) {
        let Some(conn) = self.conn_mut(c) else { return };
        conn.finish();
        let (node, role) = (conn.node, conn.role);
        let Role::Dial { id, .. } = role else { return };
        let Some(Some(h)) = self.nodes.get_mut(node) else { return };
        let reply = match outcome {
            DialOutcome::Reply(bytes) => Ok(bytes),
            DialOutcome::Refused => Err(StreamError::Refused),
            DialOutcome::Closed => Err(StreamError::Closed),
        };
        h.core.handle_stream_reply(id, reply, now);
        self.after_input(node);
    }

    /// Ends `c` from the shard's side: the backend closes its socket.
    fn abort(&mut self, c: ConnId) {
        let Some(conn) = self.remove_conn(c) else { return };
        if let (Role::Serve { from }, Some(Some(h))) = (conn.role, self.nodes.get_mut(conn.node)) {
            h.core.stream_reply_done(from);
        }
        self.io.push(Io::Abort { conn: c });
    }

    // ----- commands -----

    /// A command from an API handle (not [`Command::Host`], which the
    /// backend takes, nor [`Command::Stop`]).
    pub fn command(&mut self, node: NodeId, op: NodeOp, now: Time) {
        if let Some(Some(_)) = self.receivers.get(node) {
            // A receiving entry takes only its shutdown (from its node's
            // handle): its socket goes.
            match op {
                NodeOp::Shutdown { reply } => {
                    self.unhost(node);
                    reply.send(());
                }
                op => op.refuse(),
            }
            return;
        }
        let Some(Some(h)) = self.nodes.get_mut(node) else {
            op.refuse();
            return;
        };
        match op {
            NodeOp::Join { seeds, reply } => {
                if seeds.is_empty() {
                    reply.send(Err(EngineError::NoSeeds));
                    return;
                }
                let join = h.core.join(&seeds, now);
                h.joins.insert(join, reply);
            }
            NodeOp::Members { reply } => reply.send(
                h.core
                    .members()
                    .iter()
                    .map(|m| MemberInfo { node: m.node.clone(), incarnation: m.incarnation })
                    .collect(),
            ),
            NodeOp::LocalNode { reply } => reply.send(h.core.local_node().clone()),
            NodeOp::HealthScore { reply } => reply.send(h.core.health_score()),
            NodeOp::QueuedBroadcasts { reply } => reply.send(h.core.broadcasts().num_queued()),
            NodeOp::SendBestEffort { to, msg, reply } => {
                let node = h.core.members().iter().find(|m| m.node.address() == to).map(|m| m.node.clone());
                let result = match node {
                    Some(node) => h.core.send_best_effort(&node, &msg).map_err(EngineError::Core),
                    None => Err(EngineError::UnknownMember(to)),
                };
                reply.send(result);
            }
            NodeOp::SendReliable { to, msg, reply } => {
                let node = h.core.members().iter().find(|m| m.node.address() == to).map(|m| m.node.clone());
                let result = match node {
                    Some(node) => {
                        h.core.send_reliable(&node, &msg, now);
                        Ok(())
                    }
                    None => Err(EngineError::UnknownMember(to)),
                };
                reply.send(result);
            }
            NodeOp::UpdateNode { reply } => match h.core.update_node(now) {
                Ok(()) => h.update_waiters.push(reply),
                Err(e) => reply.send(Err(EngineError::Core(e))),
            },
            NodeOp::Leave { reply } => {
                h.core.leave(now);
                h.leave_waiters.push(reply);
            }
            NodeOp::Shutdown { reply } => {
                self.unhost(node);
                reply.send(());
                return;
            }
            NodeOp::AttachInbound { handoff } => return self.attach_inbound(node, handoff, now),
        }
        self.after_input(node);
    }

    /// Removes node `id` (or the receiving entry `id`): its connections
    /// are aborted and the backend drops its sockets. Waiters get their
    /// answer now.
    pub fn unhost(&mut self, id: NodeId) {
        if let Some(receiving) = self.receivers.get_mut(id)
            && receiving.take().is_some()
        {
            self.io.push(Io::Unhost { node: id });
            return;
        }
        let Some(Some(h)) = self.nodes.get_mut(id) else { return };
        h.core.stop();
        let conns = std::mem::take(&mut h.conns);
        for c in conns {
            self.abort(c);
        }
        let Some(h) = self.nodes[id].take() else { return };
        self.spread.retain(|&n| n != id);
        for (_, reply) in h.joins {
            reply.send(Err(EngineError::Shutdown));
        }
        for reply in h.leave_waiters {
            reply.send(());
        }
        for reply in h.update_waiters {
            reply.send(Err(EngineError::Shutdown));
        }
        self.io.push(Io::Unhost { node: id });
    }

    /// After every input of node `id`: seal its packets into the send
    /// queue, drain the rest, answer waiters.
    fn after_input(&mut self, id: NodeId) {
        let Shard { nodes, sends, timers, .. } = self;
        let Some(Some(h)) = nodes.get_mut(id) else { return };
        while let Some(packet) = h.core.poll_packet(&mut h.body) {
            let start = sends.bytes.len();
            // A packet the sealer refuses (no key while encryption is on,
            // a label the config check lets through) is dropped, as Go
            // drops what it cannot encrypt.
            if h.sealer.seal(&packet, &h.body, &mut sends.bytes).is_ok() {
                sends.datagrams.push((id, packet.to, start..sends.bytes.len()));
            } else {
                sends.bytes.truncate(start);
            }
        }
        let mut sink = NodeSink { id, joins: &mut h.joins, dials: Vec::new(), timer: None };
        drain(&mut h.core, &mut sink);
        let (dials, timer) = (std::mem::take(&mut sink.dials), sink.timer);
        if timer != h.timer {
            h.timer = timer;
            if let Some(at) = timer {
                timers.push(Reverse((at, Due::Node(id))));
            }
        }
        if !h.leave_waiters.is_empty() && (h.core.leave_broadcast_sent() || !h.core.any_alive()) {
            for reply in h.leave_waiters.drain(..) {
                reply.send(());
            }
        }
        if !h.update_waiters.is_empty() && (h.core.update_broadcast_sent() || !h.core.any_alive()) {
            for reply in h.update_waiters.drain(..) {
                reply.send(Ok(()));
            }
        }
        for request in dials {
            let conn = self.insert_conn(Conn::dial(id, request.id, request.kind, request.deadline));
            self.io.push(Io::Dial { conn, to: request.to });
        }
    }
}

/// The [`Sink`] of one node's drain.
struct NodeSink<'a> {
    id: NodeId,
    joins: &'a mut HashMap<u64, Reply<Result<usize, EngineError>>>,
    dials: Vec<StreamRequest>,
    timer: Option<Time>,
}

impl Sink for NodeSink<'_> {
    fn transmit(&mut self, _: Transmit) {
        unreachable!("node {}: packets are taken with poll_packet before the drain", self.id)
    }
    fn open_stream(&mut self, request: StreamRequest) {
        self.dials.push(request);
    }
    fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::JoinCompleted { join, contacted, errors } => {
                if let Some(reply) = self.joins.remove(&join) {
                    reply.send(if contacted > 0 { Ok(contacted) } else { Err(EngineError::JoinFailed(errors)) });
                }
            }
            // The delegates have had them (drain).
            Effect::Event(_) | Effect::Conflict { .. } | Effect::UserMessage(_) | Effect::PingCompleted { .. } => {}
        }
    }
    fn timer(&mut self, at: Option<Time>) {
        self.timer = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;
    use crate::wire::message::PushPull;

    fn shard_with_node() -> (Shard, NodeId) {
        let mut shard = Shard::new(Arc::new(ShardCounters::default()));
        let config = Config::default_local().with_name("node");
        let id = shard.host(config, SocketAddr::from(([127, 0, 0, 1], 7946)), Time::ZERO).expect("hosted");
        shard.take_io().for_each(drop);
        (shard, id)
    }

    /// Go's local and LAN profiles allow the full slack; a node with
    /// millisecond timers lowers its thread's, for good.
    #[test]
    fn a_node_with_fine_timers_lowers_the_threads_timer_slack() {
        let (mut shard, _) = shard_with_node();
        assert_eq!(shard.timer_slack, super::super::MAX_TIMER_SLACK);
        assert_eq!(super::super::timer_slack(&Config::default_lan()), super::super::MAX_TIMER_SLACK);
        let mut fine = Config::default_local().with_name("fine");
        fine.probe_timeout = std::time::Duration::from_millis(10);
        fine.gossip_interval = std::time::Duration::ZERO;
        shard.host(fine, SocketAddr::from(([127, 0, 0, 1], 7947)), Time::ZERO).expect("hosted");
        assert_eq!(shard.timer_slack, std::time::Duration::from_millis(1));
        shard
            .host(Config::default_local().with_name("other"), SocketAddr::from(([127, 0, 0, 1], 7948)), Time::ZERO)
            .expect("hosted");
        assert_eq!(shard.timer_slack, std::time::Duration::from_millis(1));
    }

    fn peer(k: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 2], 10_000 + u16::try_from(k).expect("few peers")))
    }

    fn too_many_connections(shard: &Shard, id: NodeId) -> u64 {
        shard.metrics(id).expect("hosted").get(STREAMS_REFUSED, "too_many_connections")
    }

    /// Connection `c` delivers a whole push/pull request: the node writes
    /// its reply (its state, or a refusal past Go's cap).
    fn deliver_request(shard: &mut Shard, c: ConnId) {
        let request = Message::PushPull(PushPull::from_encoded(false, 0, &[], &[])).to_vec();
        shard.read_room(c)[..request.len()].copy_from_slice(&request);
        shard.read(c, request.len(), Time::ZERO);
        assert_eq!(shard.want(c), Want::Write);
    }

    #[test]
    fn past_the_bound_the_oldest_connection_still_reading_is_ended() {
        let (mut shard, id) = shard_with_node();
        let conns: Vec<ConnId> =
            (0..MAX_INBOUND_CONNECTIONS).map(|k| shard.accepted(id, peer(k), Time::ZERO).expect("room")).collect();
        assert_eq!(too_many_connections(&shard, id), 0);
        assert_eq!(shard.take_io().count(), 0);
        // The oldest has its request and writes the reply: it stays.
        deliver_request(&mut shard, conns[0]);
        let newest = shard.accepted(id, peer(MAX_INBOUND_CONNECTIONS), Time::ZERO).expect("room made");
        assert_eq!(shard.take_io().collect::<Vec<_>>(), vec![Io::Abort { conn: conns[1] }]);
        assert_eq!(shard.want(conns[1]), Want::Close);
        assert_eq!((shard.want(conns[0]), shard.want(newest)), (Want::Write, Want::Read));
        assert_eq!(too_many_connections(&shard, id), 1);
        // A connection that finished makes room without ending another.
        shard.wrote(conns[0], shard.unwritten(conns[0]).len(), Time::ZERO);
        assert_eq!(shard.want(conns[0]), Want::Close);
        shard.conn_closed(conns[0]);
        shard.accepted(id, peer(MAX_INBOUND_CONNECTIONS + 1), Time::ZERO).expect("room");
        assert_eq!(shard.take_io().count(), 0);
        assert_eq!(too_many_connections(&shard, id), 1);
    }

    #[test]
    fn past_the_bound_with_every_connection_replying_the_new_one_is_refused() {
        let (mut shard, id) = shard_with_node();
        for k in 0..MAX_INBOUND_CONNECTIONS {
            let c = shard.accepted(id, peer(k), Time::ZERO).expect("room");
            deliver_request(&mut shard, c);
        }
        assert_eq!(shard.accepted(id, peer(MAX_INBOUND_CONNECTIONS), Time::ZERO), None);
        assert_eq!(shard.take_io().count(), 0, "no connection ended for it");
        assert_eq!(too_many_connections(&shard, id), 1);
    }
}
