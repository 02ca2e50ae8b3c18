//! The [`Runtime`]: engine threads, one [`Shard`](super::shard::Shard) each,
//! and the nodes spread over them.
#![forbid(unsafe_code)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol as IpProtocol, Socket, Type};

use super::api::{Command, Error, Memberlist, NodeOp, Reply};
use super::spread::{Handoff, Receiving};
use crate::config::Config;
use crate::swim::{Opener, Time};

/// Which I/O backend runs the engine's threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// io_uring (`src/engine/uring/`): Linux 5.19 or later with io_uring
    /// allowed.
    Uring,
    /// epoll through `mio` (`src/engine/portable/`): anywhere.
    Portable,
}

impl Backend {
    /// `uring` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Portable => "portable",
        }
    }
}

/// Which backend to ask for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// What the `RINGSWIM_BACKEND` environment variable says (`uring` or
    /// `portable`), else io_uring where the kernel's probe allows it
    /// (opcodes, features, not refused by seccomp or
    /// `kernel.io_uring_disabled`) and the portable backend where not.
    #[default]
    Auto,
    /// Exactly this one; [`Error::BackendUnavailable`] if it cannot run.
    Only(Backend),
}

/// How a [`Runtime`] runs.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Engine threads (each hosts a share of the nodes). At least 1.
    pub threads: usize,
    /// The backend.
    pub backend: BackendChoice,
    /// Pin thread `i` to CPU `i` (modulo the CPUs this process may use).
    pub pin: bool,
}

impl Default for RuntimeOptions {
    /// One thread per CPU this process may use, unpinned, the backend by
    /// [`BackendChoice::Auto`].
    fn default() -> RuntimeOptions {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        RuntimeOptions { threads, backend: BackendChoice::Auto, pin: false }
    }
}

/// The engine's clock: [`Time`] since the runtime started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock { epoch: Instant::now() }
    }
    pub fn now(&self) -> Time {
        Time::from_epoch(self.epoch.elapsed())
    }
    /// How long from now until `at` (zero if past).
    pub fn until(&self, at: Time) -> std::time::Duration {
        at.since_epoch().saturating_sub(self.epoch.elapsed())
    }
}

/// Wakes a shard thread blocked in its poll (a command is waiting).
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

/// What a shard thread moved, counted by the thread itself (one cache line
/// per thread, no sharing on the hot path).
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub udp_packets_sent: AtomicU64,
    pub udp_bytes_sent: AtomicU64,
    pub udp_packets_received: AtomicU64,
    pub udp_bytes_received: AtomicU64,
    /// Datagrams the kernel would not queue (send buffer full) or route.
    pub udp_send_failed: AtomicU64,
    pub tcp_bytes_sent: AtomicU64,
    pub tcp_bytes_received: AtomicU64,
    pub tcp_connects: AtomicU64,
    pub tcp_accepts: AtomicU64,
    /// Messages this thread opened for a spread node another thread owns
    /// and queued for it.
    pub handoff_messages: AtomicU64,
}

impl ShardCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// A datagram of `Some(bytes)` went out, or (`None`) the kernel or the
    /// ring refused it.
    pub fn datagram_sent(&self, sent: Option<usize>) {
        match sent {
            Some(n) => {
                ShardCounters::add(&self.udp_packets_sent, 1);
                ShardCounters::add(&self.udp_bytes_sent, n as u64);
            }
            None => ShardCounters::add(&self.udp_send_failed, 1),
        }
    }
    /// A datagram of `n` bytes came in.
    pub fn datagram_received(&self, n: usize) {
        ShardCounters::add(&self.udp_packets_received, 1);
        ShardCounters::add(&self.udp_bytes_received, n as u64);
    }
}

/// What a [`Runtime`]'s threads moved since it started, summed over them
/// ([`Runtime::stats`]). Bytes are as they go on the wire (labels,
/// encryption, compression included; no IP/UDP/TCP headers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Datagrams sent (Go `memberlist.udp.sent` counts their bytes).
    pub udp_packets_sent: u64,
    /// Bytes of those datagrams.
    pub udp_bytes_sent: u64,
    /// Datagrams received.
    pub udp_packets_received: u64,
    /// Bytes of those (Go `memberlist.udp.received`).
    pub udp_bytes_received: u64,
    /// Datagrams the kernel refused to send (full buffer, unroutable).
    pub udp_send_failed: u64,
    /// Bytes written on TCP streams (Go `memberlist.tcp.sent`).
    pub tcp_bytes_sent: u64,
    /// Bytes read from TCP streams.
    pub tcp_bytes_received: u64,
    /// Streams dialled (Go `memberlist.tcp.connect`).
    pub tcp_connects: u64,
    /// Streams accepted (Go `memberlist.tcp.accept`).
    pub tcp_accepts: u64,
    /// Messages opened on one thread for a spread node another thread owns
    /// and queued for it ([`Runtime::host_spread`]); those that found the
    /// queue full are not counted here but in the node's
    /// `ringswim.dropped{reason="handoff_queue_full"}`.
    pub handoff_messages: u64,
}

/// How to reach a shard thread.
#[derive(Clone)]
pub(crate) struct ShardLink {
    pub tx: Sender<Command>,
    pub waker: Arc<dyn Wake>,
    pub counters: Arc<ShardCounters>,
}

impl ShardLink {
    pub fn send(&self, command: Command) -> Result<(), Error> {
        self.tx.send(command).map_err(|_| Error::Shutdown)?;
        self.waker.wake();
        Ok(())
    }
}

struct Inner {
    shards: Vec<ShardLink>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
    backend: Backend,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for link in &self.shards {
            let _ = link.send(Command::Stop);
        }
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

/// Engine threads hosting any number of nodes (Go has one `Memberlist` per
/// process; a runtime hosts thousands, each on its own port). Cloning
/// shares it; it stops when the last clone and the last [`Memberlist`] it
/// hosts are dropped.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("threads", &self.threads()).field("backend", &self.backend()).finish()
    }
}

impl Runtime {
    /// Starts `options.threads` engine threads on the chosen backend.
    ///
    /// # Errors
    /// [`Error::BackendUnavailable`] when the backend asked for cannot run;
    /// [`Error::Io`] when a thread's poller cannot be made.
    pub fn new(options: RuntimeOptions) -> Result<Runtime, Error> {
        let (backend, why, support) = choose_backend(options.backend)?;
        let clock = Clock::new();
        let mut shards = Vec::new();
        let mut threads = Vec::new();
        for i in 0..options.threads.max(1) {
            let pin = options.pin.then_some(i);
            let (link, thread) = match backend {
                Backend::Portable => super::portable::spawn(clock, pin, i),
                #[cfg(target_os = "linux")]
                Backend::Uring => {
                    let support = support.clone().expect("probed when chosen");
                    super::uring::worker::spawn(clock, pin, i, support)
                }
                #[cfg(not(target_os = "linux"))]
                Backend::Uring => unreachable!("never chosen off Linux"),
            }
            .map_err(|source| Error::Io { what: format!("starting engine thread {i}"), source })?;
            shards.push(link);
            threads.push(thread);
        }
        super::telemetry::backend_chosen(backend, &why);
        Ok(Runtime {
            inner: Arc::new(Inner { shards, threads: Mutex::new(threads), next: AtomicUsize::new(0), backend }),
        })
    }

    /// The backend its threads run.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// What its threads sent and received so far.
    pub fn stats(&self) -> EngineStats {
        let mut t = EngineStats::default();
        for link in &self.inner.shards {
            let c = &link.counters;
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
            t.udp_packets_sent += get(&c.udp_packets_sent);
            t.udp_bytes_sent += get(&c.udp_bytes_sent);
            t.udp_packets_received += get(&c.udp_packets_received);
            t.udp_bytes_received += get(&c.udp_bytes_received);
            t.udp_send_failed += get(&c.udp_send_failed);
            t.tcp_bytes_sent += get(&c.tcp_bytes_sent);
            t.tcp_bytes_received += get(&c.tcp_bytes_received);
            t.tcp_connects += get(&c.tcp_connects);
            t.tcp_accepts += get(&c.tcp_accepts);
            t.handoff_messages += get(&c.handoff_messages);
        }
        t
    }

    /// Its engine threads.
    pub fn threads(&self) -> usize {
        self.inner.shards.len()
    }

    /// Starts a node on the next thread (round robin): binds
    /// `bind_addr:bind_port` for UDP and TCP (port 0: the kernel picks one
    /// free for both) and starts the protocol. It joins nobody yet.
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Io`] (bind), [`Error::Shutdown`].
    pub fn host(&self, config: Config) -> Result<Memberlist, Error> {
        self.host_on(config, 1)
    }

    /// Starts one busy node on every engine thread: it is hosted on the
    /// next thread (round robin), its owner, as by [`Runtime::host`]; every
    /// other thread binds its UDP port too (`SO_REUSEPORT` on each of the
    /// sockets; the kernel spreads datagrams over them by their source and
    /// destination addresses, so one peer's datagrams all reach the same
    /// thread) and does Go's `ingestPacket` for it there (label,
    /// decryption, CRC, decompression, decoding), handing the decoded
    /// messages to the owner in batches through a queue per thread
    /// `handoff_queue_depth` deep (Go `HandoffQueueDepth`: alive messages
    /// first, newest first; a message that finds the queue full is dropped
    /// and counted as `ringswim.dropped{reason="handoff_queue_full"}` in
    /// [`Memberlist::metrics`]). The owner handles them, seals and sends
    /// every packet, and serves TCP. See `src/engine/spread.rs`.
    ///
    /// For a process with one node that receives more than one core can
    /// open; with many nodes per process, [`Runtime::host`] (each thread
    /// does the whole packet path of its own nodes) costs less. With one
    /// thread it is [`Runtime::host`]. The handle works as for any node;
    /// shutting it down (or dropping it) removes the other threads'
    /// sockets too. Note that `SO_REUSEPORT` lets another socket of the
    /// same user bind the port as well.
    ///
    /// # Errors
    /// As [`Runtime::host`].
    pub fn host_spread(&self, config: Config) -> Result<Memberlist, Error> {
        self.host_on(config, self.inner.shards.len())
    }

    /// Hosts a node receiving on `threads` engine threads (1: only its
    /// owner's).
    fn host_on(&self, config: Config, threads: usize) -> Result<Memberlist, Error> {
        config.validate()?;
        let (mut udp, tcp, bound) = bind(config.bind_addr, config.bind_port, threads)?;
        let advertise = config.advertise_address(bound, || None)?;
        let n = self.inner.shards.len();
        let owner = self.inner.next.fetch_add(1, Ordering::Relaxed) % n;
        let link = self.inner.shards[owner].clone();
        let (reply, rx) = Reply::new();
        let opener_config = (threads > 1).then(|| config.clone());
        let owner_udp = udp.remove(0);
        link.send(Command::Host { config: Box::new(config), udp: owner_udp, tcp, advertise, reply })?;
        let hosted = rx.recv().map_err(|_| Error::Shutdown)??;
        let (node, keyring, metrics) = (hosted.node, hosted.keyring.clone(), hosted.metrics.clone());
        let mut member = Memberlist::new(link.clone(), hosted);
        member.keep_runtime(self.clone());
        for (k, udp) in udp.into_iter().enumerate() {
            let config = opener_config.as_ref().expect("a config for every receiver");
            let receiver_link = self.inner.shards[(owner + 1 + k) % n].clone();
            let handoff = Arc::new(Handoff::new(config.handoff_queue_depth, metrics.clone(), Arc::clone(&link.waker)));
            // The owner knows the queue before anything is queued in it.
            link.send(Command::Node { node, op: NodeOp::AttachInbound { handoff: Arc::clone(&handoff) } })?;
            let receiving = Receiving::new(Opener::new(config, keyring.clone(), metrics.clone()), handoff);
            let (reply, rx) = Reply::new();
            receiver_link.send(Command::HostReceiver { udp, receiving: Box::new(receiving), reply })?;
            // A thread that cannot register the socket fails the whole
            // node (its handle, dropped, removes the rest).
            let id = rx.recv().map_err(|_| Error::Shutdown)??;
            member.add_receiver(receiver_link, id);
        }
        Ok(member)
    }
}

/// Go's `udpRecvBufSize`: a receive buffer that holds bursts.
const UDP_RECV_BUFFER: usize = 2 * 1024 * 1024;

/// Binds TCP, then `udp_sockets` UDP sockets on the same port (Go
/// `NewNetTransport`: with port 0, the TCP listener's port is used for UDP
/// too); more than one share it with `SO_REUSEPORT`.
fn bind(
    ip: std::net::IpAddr,
    port: u16,
    udp_sockets: usize,
) -> Result<(Vec<UdpSocket>, TcpListener, SocketAddr), Error> {
    let io = |what: String| move |source| Error::Io { what, source };
    let addr = SocketAddr::new(ip, port);
    let domain = Domain::for_address(addr);
    let tcp = Socket::new(domain, Type::STREAM, Some(IpProtocol::TCP)).map_err(io(format!("tcp socket for {addr}")))?;
    tcp.set_reuse_address(true).map_err(io(format!("SO_REUSEADDR on {addr}")))?;
    tcp.bind(&addr.into()).map_err(io(format!("binding tcp {addr}")))?;
    tcp.listen(1024).map_err(io(format!("listening on tcp {addr}")))?;
    tcp.set_nonblocking(true).map_err(io(format!("nonblocking tcp {addr}")))?;
    let tcp: TcpListener = tcp.into();
    let bound = tcp.local_addr().map_err(io(format!("tcp {addr}")))?;
    let mut udps = Vec::with_capacity(udp_sockets.max(1));
    for _ in 0..udp_sockets.max(1) {
        let udp =
            Socket::new(domain, Type::DGRAM, Some(IpProtocol::UDP)).map_err(io(format!("udp socket for {bound}")))?;
        if udp_sockets > 1 {
            udp.set_reuse_port(true).map_err(io(format!("SO_REUSEPORT on udp {bound}")))?;
        }
        // Best effort, as in Go (it tries smaller sizes down to 0 and goes on).
        let _ = udp.set_recv_buffer_size(UDP_RECV_BUFFER);
        udp.bind(&bound.into()).map_err(io(format!("binding udp {bound}")))?;
        udp.set_nonblocking(true).map_err(io(format!("nonblocking udp {bound}")))?;
        udps.push(udp.into());
    }
    Ok((udps, tcp, bound))
}

/// The backend to run: `choice`, or with `Auto` the environment's
/// `RINGSWIM_BACKEND`, else io_uring where the kernel allows it and the
/// portable backend where it does not; with why, and what the kernel
/// offers when io_uring runs.
fn choose_backend(choice: BackendChoice) -> Result<(Backend, String, Option<UringSupport>), Error> {
    let (wanted, why) = match choice {
        BackendChoice::Only(b) => (Some(b), "asked for".to_owned()),
        BackendChoice::Auto => match std::env::var("RINGSWIM_BACKEND").ok().as_deref() {
            Some("uring") => (Some(Backend::Uring), "RINGSWIM_BACKEND=uring".to_owned()),
            Some("portable") => (Some(Backend::Portable), "RINGSWIM_BACKEND=portable".to_owned()),
            _ => (None, String::new()),
        },
    };
    if wanted == Some(Backend::Portable) {
        return Ok((Backend::Portable, why, None));
    }
    match probe_uring() {
        Ok(support) => {
            Ok((Backend::Uring, if why.is_empty() { "auto: io_uring available".into() } else { why }, Some(support)))
        }
        Err(refused) if wanted.is_none() => Ok((Backend::Portable, format!("auto: {refused}"), None)),
        Err(refused) => Err(Error::BackendUnavailable { backend: "uring", why: refused }),
    }
}

/// What io_uring offers here, or why it cannot run the engine.
#[cfg(target_os = "linux")]
fn probe_uring() -> Result<UringSupport, String> {
    if std::env::var("RINGSWIM_REFUSE_URING").is_ok_and(|v| v == "1") {
        // What a seccomp profile or `kernel.io_uring_disabled` does, for the
        // fallback's tests.
        return Err("io_uring refused (RINGSWIM_REFUSE_URING=1)".to_owned());
    }
    let support = super::uring::probe().map_err(|e| format!("io_uring refused: {e}"))?;
    if support.ring_usable() { Ok(support) } else { Err(format!("io_uring lacks {}", support.missing().join(", "))) }
}

#[cfg(not(target_os = "linux"))]
fn probe_uring() -> Result<UringSupport, String> {
    Err("io_uring is Linux only".to_owned())
}

#[cfg(target_os = "linux")]
type UringSupport = super::uring::Support;
#[cfg(not(target_os = "linux"))]
type UringSupport = ();
