//! The portable backend: epoll through `mio`, for kernels and sandboxes
//! where io_uring is refused. One thread per shard; every socket
//! non-blocking and edge-triggered; the [`Shard`] decides, this file only
//! moves bytes, datagrams a batch per system call ([`datagrams`]).
#![forbid(unsafe_code)]

mod datagrams;

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::thread::JoinHandle;

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

use super::api::{Command, Hosted};
use super::conn::Want;
use super::runtime::{Clock, ShardCounters, ShardLink, Wake};
use super::shard::{ConnId, Io, NodeId, Shard};
use datagrams::{RECV_BATCH, RecvBuffers};

/// Token kinds in the low two bits.
const KIND_UDP: usize = 0;
const KIND_LISTENER: usize = 1;
const KIND_CONN: usize = 2;
const WAKER: Token = Token(usize::MAX);

fn token(kind: usize, index: usize) -> Token {
    Token(index << 2 | kind)
}

impl Wake for Waker {
    fn wake(&self) {
        // Fails only if the poller is gone: the thread has ended.
        let _ = Waker::wake(self);
    }
}

/// Starts a portable shard thread (pinned to CPU `pin` if given).
pub(crate) fn spawn(clock: Clock, pin: Option<usize>, index: usize) -> std::io::Result<(ShardLink, JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = channel();
    let counters = Arc::new(ShardCounters::default());
    let link = ShardLink { tx, waker: waker.clone(), counters: Arc::clone(&counters) };
    let thread = std::thread::Builder::new().name(format!("rs-portable-{index}")).spawn(move || {
        if let Some(cpu) = pin {
            super::pin_to_cpu(cpu);
        }
        Worker::new(poll, clock, counters).run(&rx);
    })?;
    Ok((link, thread))
}

/// A node's sockets (a spread node's receiving entry has no listener).
struct NodeSockets {
    udp: UdpSocket,
    /// Whether `udp` is bound to an IPv6 address ([`RecvBuffers::receive`]).
    ipv6: bool,
    tcp: Option<TcpListener>,
}

struct Worker {
    poll: Poll,
    clock: Clock,
    shard: Shard,
    nodes: Vec<Option<NodeSockets>>,
    /// Connections by slot (the token's index); the id checks the generation.
    conns: HashMap<u32, (ConnId, TcpStream)>,
    receiver: RecvBuffers,
    counters: Arc<ShardCounters>,
}

impl Worker {
    fn new(poll: Poll, clock: Clock, counters: Arc<ShardCounters>) -> Worker {
        Worker {
            poll,
            clock,
            shard: Shard::new(Arc::clone(&counters)),
            nodes: Vec::new(),
            conns: HashMap::new(),
            receiver: RecvBuffers::new(),
            counters,
        }
    }

    fn run(mut self, commands: &Receiver<Command>) {
        let mut events = Events::with_capacity(1024);
        loop {
            // Woken up to the timer slack after the earliest timer,
            // everything due by then runs in one turn.
            let timeout = self.shard.wait(&self.clock);
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != ErrorKind::Interrupted
            {
                tracing_error("poll", &e);
                return;
            }
            let mut woken = false;
            for event in &events {
                if event.token() == WAKER {
                    woken = true;
                    continue;
                }
                let (kind, index) = (event.token().0 & 3, event.token().0 >> 2);
                match kind {
                    KIND_UDP => self.receive(index),
                    KIND_LISTENER => self.accept(index),
                    KIND_CONN => self.drive_slot(index as u32),
                    _ => {}
                }
                self.flush();
            }
            // Commands (the waker may have folded several into one event).
            if woken {
                loop {
                    match commands.try_recv() {
                        Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                        Ok(command) => self.command(command),
                        Err(TryRecvError::Empty) => break,
                    }
                    self.flush();
                }
            }
            self.shard.run_timers(self.clock.now());
            self.flush();
        }
    }

    fn command(&mut self, command: Command) {
        let now = self.clock.now();
        match command {
            Command::Host { config, udp, tcp, advertise, reply } => {
                let result = self.shard.host(*config, advertise, now).and_then(|node| {
                    if let Err(source) = self.register(node, udp, Some(tcp)) {
                        self.shard.unhost(node);
                        return Err(super::Error::Io { what: format!("registering node {advertise}"), source });
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
                let result = self.register(node, udp, None).map(|()| node).map_err(|source| {
                    self.shard.unhost(node);
                    super::Error::Io { what: "registering a spread node's socket".to_owned(), source }
                });
                reply.send(result);
            }
            Command::Node { node, op } => self.shard.command(node, op, now),
            Command::Stop => {}
        }
    }

    /// Registers the sockets of slot `node` (a listener for a node, none
    /// for a receiving entry).
    fn register(
        &mut self,
        node: NodeId,
        udp: std::net::UdpSocket,
        tcp: Option<std::net::TcpListener>,
    ) -> std::io::Result<()> {
        let ipv6 = udp.local_addr()?.is_ipv6();
        let mut sockets = NodeSockets { udp: UdpSocket::from_std(udp), ipv6, tcp: tcp.map(TcpListener::from_std) };
        let registry = self.poll.registry();
        registry.register(&mut sockets.udp, token(KIND_UDP, node), Interest::READABLE)?;
        if let Some(tcp) = &mut sockets.tcp
            && let Err(e) = registry.register(tcp, token(KIND_LISTENER, node), Interest::READABLE)
        {
            let _ = registry.deregister(&mut sockets.udp);
            return Err(e);
        }
        if self.nodes.len() <= node {
            self.nodes.resize_with(node + 1, || None);
        }
        self.nodes[node] = Some(sockets);
        Ok(())
    }

    /// Reads node `node`'s datagrams a batch at a time until the socket is
    /// drained, sending what each batch produces.
    fn receive(&mut self, node: NodeId) {
        loop {
            let Some(Some(s)) = self.nodes.get(node) else { return };
            let received = match self.receiver.receive(&s.udp, s.ipv6) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // Interrupted, or an ICMP error surfacing (port
                // unreachable): nothing to do with them, as in Go.
                Err(_) => continue,
            };
            for i in 0..received {
                let (from, bytes) = self.receiver.datagram(i);
                self.counters.datagram_received(bytes.len());
                let now = self.clock.now();
                self.shard.datagram(node, from, bytes, now);
            }
            self.flush();
            // A short batch drained the socket: no call just to hear EAGAIN.
            if received < RECV_BATCH {
                return;
            }
        }
    }

    fn accept(&mut self, node: NodeId) {
        loop {
            let Some(Some(NodeSockets { tcp: Some(tcp), .. })) = self.nodes.get(node) else { return };
            match tcp.accept() {
                Ok((mut stream, from)) => {
                    ShardCounters::add(&self.counters.tcp_accepts, 1);
                    let now = self.clock.now();
                    let accepted = self.shard.accepted(node, from, now);
                    // Close what making room aborted before the new
                    // connection takes its slot in `conns`.
                    self.flush();
                    // Dropping the stream closes it.
                    let Some(c) = accepted else { continue };
                    let registered = self.poll.registry().register(
                        &mut stream,
                        token(KIND_CONN, c.slot as usize),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if registered.is_err() {
                        self.shard.conn_failed(c, now);
                        self.shard.conn_closed(c);
                        continue;
                    }
                    self.conns.insert(c.slot, (c, stream));
                    self.drive(c);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // Out of file descriptors and the like: try again at the
                // next readiness event.
                Err(_) => return,
            }
        }
    }

    fn drive_slot(&mut self, slot: u32) {
        if let Some(&(c, _)) = self.conns.get(&slot) {
            self.drive(c);
        }
    }

    /// Does what the shard wants on `c` until the socket would block.
    fn drive(&mut self, c: ConnId) {
        loop {
            let now = self.clock.now();
            let Some((_, stream)) = self.conns.get_mut(&c.slot) else { return };
            match self.shard.want(c) {
                Want::Connect => {
                    if let Ok(Some(_)) | Err(_) = stream.take_error() {
                        self.shard.conn_failed(c, now);
                        continue;
                    }
                    match stream.peer_addr() {
                        Ok(_) => self.shard.connected(c),
                        Err(e) if e.kind() == ErrorKind::NotConnected => return,
                        Err(_) => self.shard.conn_failed(c, now),
                    }
                }
                Want::Write => match stream.write(self.shard.unwritten(c)) {
                    Ok(n) => {
                        ShardCounters::add(&self.counters.tcp_bytes_sent, n as u64);
                        self.shard.wrote(c, n, now);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => self.shard.conn_failed(c, now),
                },
                Want::Read => match stream.read(self.shard.read_room(c)) {
                    Ok(n) => {
                        ShardCounters::add(&self.counters.tcp_bytes_received, n as u64);
                        self.shard.read(c, n, now);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => self.shard.conn_failed(c, now),
                },
                Want::Close => {
                    self.close(c);
                    self.shard.conn_closed(c);
                    return;
                }
            }
        }
    }

    fn close(&mut self, c: ConnId) {
        if let Some((_, mut stream)) = self.conns.remove(&c.slot) {
            let _ = self.poll.registry().deregister(&mut stream);
        }
    }

    /// Sends the turn's datagrams and carries out its other I/O, until
    /// neither is left (a dial that fails at once produces more).
    fn flush(&mut self) {
        self.shard.exchange_handoffs(self.clock.now());
        loop {
            for (node, datagrams) in self.shard.sends().runs() {
                let Some(Some(s)) = self.nodes.get(node) else { continue };
                datagrams::send(&s.udp, datagrams, &self.counters);
            }
            self.shard.sends().clear();
            let io: Vec<Io> = self.shard.take_io().collect();
            if io.is_empty() {
                return;
            }
            for io in io {
                match io {
                    Io::Dial { conn, to } => self.dial(conn, to),
                    Io::Abort { conn } => self.close(conn),
                    Io::Unhost { node } => {
                        if let Some(Some(mut s)) = self.nodes.get_mut(node).map(Option::take) {
                            let _ = self.poll.registry().deregister(&mut s.udp);
                            if let Some(tcp) = &mut s.tcp {
                                let _ = self.poll.registry().deregister(tcp);
                            }
                        }
                    }
                }
            }
        }
    }

    fn dial(&mut self, c: ConnId, to: SocketAddr) {
        ShardCounters::add(&self.counters.tcp_connects, 1);
        let now = self.clock.now();
        let mut stream = match TcpStream::connect(to) {
            Ok(stream) => stream,
            Err(_) => return self.shard.dial_failed(c, now),
        };
        let registered = self.poll.registry().register(
            &mut stream,
            token(KIND_CONN, c.slot as usize),
            Interest::READABLE | Interest::WRITABLE,
        );
        if registered.is_err() {
            return self.shard.dial_failed(c, now);
        }
        self.conns.insert(c.slot, (c, stream));
    }
}

fn tracing_error(what: &str, e: &std::io::Error) {
    eprintln!("ringswim portable backend: {what}: {e}");
}
