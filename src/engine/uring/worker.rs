//! The io_uring backend's worker: one [`Ring`] per engine thread driving
//! that thread's [`Shard`]. The shard decides; this file only turns its
//! requests into ring operations and the ring's completions into shard
//! events, as `portable/` does with epoll. No `unsafe` here: the ring
//! layer holds it.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::thread::JoinHandle;

use super::ring::{Completion, Io, ListenerId, ReadOutcome, Ring, RingConfig, SocketId, StreamId};
use super::{Support, Waker};
use crate::engine::api::{Command, Hosted};
use crate::engine::conn::Want;
use crate::engine::runtime::{Clock, ShardCounters, ShardLink, Wake};
use crate::engine::shard::{ConnId, Io as ShardIo, NodeId, Shard};

/// The largest datagram a ring receives: Go's `UDPBufferSize` is 1,400 by
/// default and at most what one UDP datagram carries over Ethernet without
/// fragments in practice; longer ones are dropped and counted by the ring.
const RECV_BUFFER: usize = 4096;
/// Receive buffers per ring (a power of two): bursts from hundreds of
/// nodes' peers.
const RECV_BUFFERS: u16 = 2048;
/// Datagrams in flight per ring.
const SEND_SLOTS: usize = 4096;
/// The most one read on a TCP stream takes (a push/pull of 1,000 members
/// is about 60 KB: one or two reads, not fifteen).
const STREAM_READ: usize = 64 * 1024;
/// The largest datagram a ring sends (a send slot's size).
const SEND_BUFFER: usize = 4096;
/// Registered sockets per ring at most (two per node); also kept below the
/// open-file limit, which bounds the kernel's table.
const MAX_FILES: u32 = 16_384;

impl Wake for Waker {
    fn wake(&self) {
        // Fails only when the ring's eventfd is gone: the thread has ended.
        let _ = Waker::wake(self);
    }
}

/// Starts an io_uring shard thread (pinned to CPU `pin` if given). The ring
/// is built on the thread itself (a single-issuer ring belongs to the
/// thread that made it); an error building it comes back here.
pub(crate) fn spawn(
    clock: Clock,
    pin: Option<usize>,
    index: usize,
    support: Support,
) -> std::io::Result<(ShardLink, JoinHandle<()>)> {
    let (tx, rx) = channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let counters = Arc::new(ShardCounters::default());
    let thread_counters = Arc::clone(&counters);
    let thread = std::thread::Builder::new().name(format!("rs-uring-{index}")).spawn(move || {
        if let Some(cpu) = pin {
            crate::engine::pin_to_cpu(cpu);
        }
        let max_files = rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map_or(1024, |(soft, _)| soft)
            .saturating_sub(64)
            .clamp(64, u64::from(MAX_FILES)) as u32;
        let config = RingConfig {
            recv_buf_size: RECV_BUFFER,
            recv_buf_count: RECV_BUFFERS,
            send_slots: SEND_SLOTS,
            // Go's UDPBufferSize is 1,400 by default; a node configured
            // above this sends what fits and counts the rest
            // (`udp_send_failed`).
            send_buf_size: SEND_BUFFER,
            max_files,
            ..RingConfig::default()
        };
        match Ring::new(&config, &support) {
            Ok(ring) => {
                let _ = ready_tx.send(Ok(ring.waker()));
                Worker::new(ring, clock, thread_counters).run(&rx);
            }
            Err(e) => {
                let _ = ready_tx.send(Err(std::io::Error::other(e.to_string())));
            }
        }
    })?;
    let waker = ready_rx.recv().map_err(|_| std::io::Error::other("the io_uring thread ended at start"))??;
    Ok((ShardLink { tx, waker: Arc::new(waker), counters }, thread))
}

/// A node's registered sockets (a spread node's receiving entry has no
/// listener).
struct NodeSockets {
    udp: SocketId,
    tcp: Option<ListenerId>,
}

/// A connection's ring stream, and whether an operation is in flight on it
/// (the ring takes one read or one write at a time).
struct ConnStream {
    stream: StreamId,
    busy: bool,
}

struct Worker {
    ring: Ring,
    clock: Clock,
    shard: Shard,
    nodes: Vec<Option<NodeSockets>>,
    by_socket: HashMap<SocketId, NodeId>,
    by_listener: HashMap<ListenerId, NodeId>,
    conns: HashMap<ConnId, ConnStream>,
    by_stream: HashMap<StreamId, ConnId>,
    counters: Arc<ShardCounters>,
    stop: bool,
}

impl Worker {
    fn new(ring: Ring, clock: Clock, counters: Arc<ShardCounters>) -> Worker {
        Worker {
            ring,
            clock,
            shard: Shard::new(Arc::clone(&counters)),
            nodes: Vec::new(),
            by_socket: HashMap::new(),
            by_listener: HashMap::new(),
            conns: HashMap::new(),
            by_stream: HashMap::new(),
            counters,
            stop: false,
        }
    }

    fn run(mut self, commands: &Receiver<Command>) {
        // Completions are collected during the turn (the closure cannot
        // borrow the worker) and handled after it; datagrams are handled
        // in the closure, their bytes being the ring's until it returns,
        // and their answers queued at once, as the portable backend sends
        // between reads: a turn may deliver thousands, and an ack held
        // until the turn ends can miss its probe's timeout.
        let mut events: Vec<Event> = Vec::new();
        while !self.stop {
            let timeout = self.shard.wait(&self.clock);
            let (shard, clock, counters) = (&mut self.shard, &self.clock, &self.counters);
            let (by_socket, by_listener, by_stream) = (&self.by_socket, &self.by_listener, &self.by_stream);
            let nodes = &self.nodes;
            let turned = self.ring.turn(timeout, &mut |io: &mut Io, completion: Completion<'_>| match completion {
                Completion::Datagram { socket, from, bytes } => {
                    if let Some(&node) = by_socket.get(&socket) {
                        counters.datagram_received(bytes.len());
                        shard.datagram(node, from, bytes, clock.now());
                        send_datagrams(shard, nodes, io, counters);
                    }
                }
                Completion::Accepted { listener, stream, peer } => {
                    events.push(Event::Accepted(by_listener.get(&listener).copied(), stream, peer));
                }
                Completion::AcceptFailed { .. } | Completion::Timeout => {}
                Completion::Connected { stream, result } => {
                    events.push(Event::Connected(by_stream.get(&stream).copied(), stream, result.is_ok()));
                }
                Completion::Read { stream, outcome } => {
                    let Some(&c) = by_stream.get(&stream) else { return };
                    events.push(match outcome {
                        ReadOutcome::Data(mut bytes) => {
                            ShardCounters::add(&counters.tcp_bytes_received, bytes.len() as u64);
                            // Into the connection's buffer, a room at a time,
                            // while it still reads (bytes after the one
                            // message an exchange carries are dropped).
                            let now = clock.now();
                            while !bytes.is_empty() {
                                let room = shard.read_room(c);
                                let n = bytes.len().min(room.len());
                                if n == 0 {
                                    break;
                                }
                                room[..n].copy_from_slice(&bytes[..n]);
                                shard.read(c, n, now);
                                bytes = &bytes[n..];
                            }
                            Event::Drive(c)
                        }
                        ReadOutcome::Eof | ReadOutcome::Error(_) => Event::Read(c, 0),
                    });
                }
                Completion::Written { stream, result } => {
                    let Some(&c) = by_stream.get(&stream) else { return };
                    events.push(match result {
                        Ok(n) => {
                            ShardCounters::add(&counters.tcp_bytes_sent, n as u64);
                            Event::Wrote(c, Some(n))
                        }
                        Err(_) => Event::Wrote(c, None),
                    });
                }
                Completion::Woken => events.push(Event::Woken),
            });
            if let Err(e) = turned {
                tracing::error!(error = %e, "io_uring turn failed; the engine thread stops");
                return;
            }
            for event in events.drain(..) {
                self.handle(event, commands);
            }
            self.shard.run_timers(self.clock.now());
            self.flush();
        }
        // What the ring did, for whoever looks into a run (ENOBUFS,
        // send slots, backlog): the first place to look when it lags.
        tracing::debug!(stats = ?self.ring.stats(), "io_uring worker stopped");
    }

    fn handle(&mut self, event: Event, commands: &Receiver<Command>) {
        let now = self.clock.now();
        match event {
            Event::Woken => loop {
                match commands.try_recv() {
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                        self.stop = true;
                        return;
                    }
                    Ok(command) => self.command(command),
                    Err(TryRecvError::Empty) => return,
                }
                self.flush();
            },
            Event::Accepted(node, stream, peer) => {
                ShardCounters::add(&self.counters.tcp_accepts, 1);
                match node.and_then(|node| self.shard.accepted(node, peer, now)) {
                    Some(c) => {
                        self.conns.insert(c, ConnStream { stream, busy: false });
                        self.by_stream.insert(stream, c);
                        self.drive(c);
                    }
                    None => {
                        let _ = self.ring.close(stream);
                    }
                }
            }
            Event::Connected(c, stream, ok) => {
                let Some(c) = c else {
                    let _ = self.ring.close(stream);
                    return;
                };
                if let Some(cs) = self.conns.get_mut(&c) {
                    cs.busy = false;
                }
                if ok {
                    self.shard.connected(c);
                } else {
                    self.shard.conn_failed(c, now);
                }
                self.drive(c);
            }
            Event::Drive(c) => {
                if let Some(cs) = self.conns.get_mut(&c) {
                    cs.busy = false;
                }
                self.drive(c);
            }
            Event::Read(c, n) => {
                if let Some(cs) = self.conns.get_mut(&c) {
                    cs.busy = false;
                }
                self.shard.read(c, n, now);
                self.drive(c);
            }
            Event::Wrote(c, n) => {
                if let Some(cs) = self.conns.get_mut(&c) {
                    cs.busy = false;
                }
                match n {
                    Some(n) => self.shard.wrote(c, n, now),
                    None => self.shard.conn_failed(c, now),
                }
                self.drive(c);
            }
        }
    }

    /// Issues what the shard wants next on `c`, unless an operation is in
    /// flight on it.
    fn drive(&mut self, c: ConnId) {
        let Some(cs) = self.conns.get_mut(&c) else { return };
        if cs.busy {
            return;
        }
        let stream = cs.stream;
        let issued = match self.shard.want(c) {
            Want::Connect => return,
            Want::Write => self.ring.write(stream, self.shard.unwritten(c).to_vec()).is_ok(),
            Want::Read => self.ring.read(stream, STREAM_READ).is_ok(),
            Want::Close => {
                self.forget(c);
                self.shard.conn_closed(c);
                return;
            }
        };
        if issued {
            if let Some(cs) = self.conns.get_mut(&c) {
                cs.busy = true;
            }
        } else {
            let now = self.clock.now();
            self.shard.conn_failed(c, now);
            self.drive(c);
        }
    }

    /// Closes `c`'s stream and forgets it.
    fn forget(&mut self, c: ConnId) {
        if let Some(cs) = self.conns.remove(&c) {
            self.by_stream.remove(&cs.stream);
            let _ = self.ring.close(cs.stream);
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Host { config, udp, tcp, advertise, reply } => {
                let result = self.shard.host(*config, advertise, now).and_then(|node| {
                    if let Err(e) = self.register(node, udp, Some(tcp)) {
                        self.shard.unhost(node);
                        return Err(crate::engine::Error::Io {
                            what: format!("registering node {advertise} with io_uring"),
                            source: std::io::Error::other(e.to_string()),
                        });
                    }
                    let local = self.shard.local_node(node).expect("just hosted");
                    let keyring = self.shard.keyring(node).expect("just hosted");
                    let metrics = self.shard.metrics(node).expect("just hosted");
                    Ok(Hosted { node, local, keyring, metrics })
                });
                reply.send(result);
            }
            Command::HostReceiver { udp, receiving, reply } => {
                let node = self.shard.host_receiver(*receiving, now);
                let result = self.register(node, udp, None).map(|()| node).map_err(|e| {
                    self.shard.unhost(node);
                    crate::engine::Error::Io {
                        what: "registering a spread node's socket with io_uring".to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    }
                });
                reply.send(result);
            }
            Command::Node { node, op } => self.shard.command(node, op, now),
            Command::Stop => self.stop = true,
        }
    }

    /// Registers the sockets of slot `node` with the ring (a listener for a
    /// node, none for a receiving entry).
    fn register(
        &mut self,
        node: NodeId,
        udp: std::net::UdpSocket,
        tcp: Option<std::net::TcpListener>,
    ) -> Result<(), super::ring::RingError> {
        let udp = self.ring.add_udp(udp)?;
        let tcp = match tcp.map(|tcp| self.ring.add_listener(tcp)).transpose() {
            Ok(tcp) => tcp,
            Err(e) => {
                self.ring.remove_udp(udp);
                return Err(e);
            }
        };
        if self.nodes.len() <= node {
            self.nodes.resize_with(node + 1, || None);
        }
        self.nodes[node] = Some(NodeSockets { udp, tcp });
        self.by_socket.insert(udp, node);
        if let Some(tcp) = tcp {
            self.by_listener.insert(tcp, node);
        }
        Ok(())
    }

    /// Queues the turn's datagrams on the ring and carries out the shard's
    /// other requests, until none is left.
    fn flush(&mut self) {
        self.shard.exchange_handoffs(self.clock.now());
        loop {
            send_datagrams(&mut self.shard, &self.nodes, self.ring.io(), &self.counters);
            let io: Vec<ShardIo> = self.shard.take_io().collect();
            if io.is_empty() {
                return;
            }
            for io in io {
                match io {
                    ShardIo::Dial { conn, to } => self.dial(conn, to),
                    ShardIo::Abort { conn } => self.forget(conn),
                    ShardIo::Unhost { node } => {
                        if let Some(Some(s)) = self.nodes.get_mut(node).map(Option::take) {
                            self.by_socket.remove(&s.udp);
                            self.ring.remove_udp(s.udp);
                            if let Some(tcp) = s.tcp {
                                self.by_listener.remove(&tcp);
                                self.ring.remove_listener(tcp);
                            }
                        }
                    }
                }
            }
        }
    }

    fn dial(&mut self, c: ConnId, to: SocketAddr) {
        ShardCounters::add(&self.counters.tcp_connects, 1);
        match self.ring.connect(to) {
            Ok(stream) => {
                self.conns.insert(c, ConnStream { stream, busy: true });
                self.by_stream.insert(stream, c);
            }
            Err(_) => {
                let now = self.clock.now();
                self.shard.dial_failed(c, now);
            }
        }
    }
}

/// Queues the datagrams the shard has ready on the ring, each counted.
fn send_datagrams(shard: &mut Shard, nodes: &[Option<NodeSockets>], io: &mut Io, counters: &ShardCounters) {
    for (node, to, bytes) in shard.sends().iter() {
        let Some(Some(s)) = nodes.get(node) else { continue };
        // Every send slot in flight (even after reaping), or an unknown
        // socket, loses the datagram, as UDP allows (the ring counts it too).
        counters.datagram_sent(io.send_to(s.udp, to, bytes).ok().map(|()| bytes.len()));
    }
    shard.sends().clear();
}

/// A completion kept for after the turn.
enum Event {
    Woken,
    Accepted(Option<NodeId>, StreamId, SocketAddr),
    Connected(Option<ConnId>, StreamId, bool),
    /// A read's bytes are in the shard: drive the connection on.
    Drive(ConnId),
    /// A read ended the stream (0) or failed.
    Read(ConnId, usize),
    Wrote(ConnId, Option<usize>),
}
