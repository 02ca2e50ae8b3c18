//! The embedder's API: [`Memberlist`], a handle on one node hosted by a
//! [`Runtime`]. Every call is a command to the node's shard thread (the
//! only thread that touches its state) and blocks until the shard answers;
//! the answer never waits on the network longer than the node's own
//! timeouts (a join's push/pulls end by `tcp_timeout`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use super::runtime::{Runtime, RuntimeOptions, ShardLink};
use super::shard::NodeId;
use super::spread::{Handoff, Receiving};
use crate::config::{Config, ConfigError};
use crate::delegate::{Node, NodeState};
use crate::swim::Metrics;
use crate::wire::{KeyError, SharedKeyring};

/// Errors of the engine and its API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `Config` is refused (names the Go field).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The core refused a command (e.g. a user message over the datagram
    /// limit: [`crate::swim::Error::MessageTooLarge`]).
    #[error(transparent)]
    Core(crate::swim::Error),
    /// A socket could not be bound, or the backend could not start.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The backend asked for is not available on this machine (why).
    #[error("backend {backend} unavailable: {why}")]
    BackendUnavailable {
        /// `uring` or `portable`.
        backend: &'static str,
        /// What the kernel or environment refused.
        why: String,
    },
    /// [`Memberlist::join`] was given no address.
    #[error("no address to join")]
    NoSeeds,
    /// No address of a [`Memberlist::join`] answered (Go `Join`'s error):
    /// each with why.
    #[error("failed to join: {}", .0.iter().map(|(a, e)| format!("{a}: {e}")).collect::<Vec<_>>().join("; "))]
    JoinFailed(Vec<(SocketAddr, String)>),
    /// No member has this address.
    #[error("no member at {0}")]
    UnknownMember(SocketAddr),
    /// The wait of [`Memberlist::leave`] or [`Memberlist::update_node`]
    /// ran out before the broadcast went out (Go: "timeout waiting for
    /// leave broadcast").
    #[error("timeout waiting for {0} broadcast")]
    Timeout(&'static str),
    /// The node (or its runtime) is shut down.
    #[error("the node is shut down")]
    Shutdown,
    /// A keyring operation was refused (Go's keyring rules).
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// A one-shot answer from the shard thread.
pub(crate) struct Reply<T>(SyncSender<T>);

impl<T> Reply<T> {
    /// A reply and the receiver the caller waits on.
    pub fn new() -> (Reply<T>, Receiver<T>) {
        let (tx, rx) = sync_channel(1);
        (Reply(tx), rx)
    }
    /// Answers; a caller that stopped waiting is no error.
    pub fn send(self, value: T) {
        let _ = self.0.try_send(value);
    }
}

/// A member as [`Memberlist::member_states`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member (its [`Node::state`] included).
    pub node: Node,
    /// Its incarnation as this node knows it.
    pub incarnation: u32,
}

/// A command for the shard thread.
pub(crate) enum Command {
    /// Host a new node on sockets the caller bound.
    Host {
        config: Box<Config>,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        advertise: SocketAddr,
        reply: Reply<Result<Hosted, Error>>,
    },
    /// Receive for a spread node another thread owns, on a socket bound
    /// to its port ([`Runtime::host_spread`]).
    HostReceiver { udp: std::net::UdpSocket, receiving: Box<Receiving>, reply: Reply<Result<NodeId, Error>> },
    /// A command for one node.
    Node { node: NodeId, op: NodeOp },
    /// End the thread (the runtime is dropped).
    Stop,
}

/// What the shard tells [`Runtime::host`] about a new node.
pub(crate) struct Hosted {
    pub node: NodeId,
    pub local: Node,
    pub keyring: SharedKeyring,
    pub metrics: Metrics,
}

/// A command for one hosted node.
pub(crate) enum NodeOp {
    Join {
        seeds: Vec<SocketAddr>,
        reply: Reply<Result<usize, Error>>,
    },
    Members {
        reply: Reply<Vec<MemberInfo>>,
    },
    LocalNode {
        reply: Reply<Node>,
    },
    HealthScore {
        reply: Reply<usize>,
    },
    QueuedBroadcasts {
        reply: Reply<usize>,
    },
    SendBestEffort {
        to: SocketAddr,
        msg: Vec<u8>,
        reply: Reply<Result<(), Error>>,
    },
    SendReliable {
        to: SocketAddr,
        msg: Vec<u8>,
        reply: Reply<Result<(), Error>>,
    },
    UpdateNode {
        reply: Reply<Result<(), Error>>,
    },
    Leave {
        reply: Reply<()>,
    },
    Shutdown {
        reply: Reply<()>,
    },
    /// Take the messages another thread opens for this spread node from
    /// `handoff` ([`Runtime::host_spread`]).
    AttachInbound {
        handoff: Arc<Handoff>,
    },
}

impl NodeOp {
    /// Answers a command for a node that is gone.
    pub fn refuse(self) {
        match self {
            NodeOp::Join { reply, .. } => reply.send(Err(Error::Shutdown)),
            NodeOp::SendBestEffort { reply, .. }
            | NodeOp::SendReliable { reply, .. }
            | NodeOp::UpdateNode { reply } => reply.send(Err(Error::Shutdown)),
            NodeOp::Members { reply } => reply.send(Vec::new()),
            NodeOp::HealthScore { reply } | NodeOp::QueuedBroadcasts { reply } => reply.send(0),
            NodeOp::LocalNode { .. } => {}
            NodeOp::Leave { reply } | NodeOp::Shutdown { reply } => reply.send(()),
            // The node is gone: its receivers are shut down by its handle.
            NodeOp::AttachInbound { .. } => {}
        }
    }
}

/// One member of a cluster, hosted by a [`Runtime`] (Go `*Memberlist`).
///
/// Dropping it shuts the node down (without leaving: call
/// [`Memberlist::leave`] first for a graceful exit, as in Go).
///
/// # Example
///
/// Two members on loopback: one joins the other, the first watches
/// membership events through a channel, the second leaves and comes back
/// on the same handle.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// use ringswim::config::Config;
/// use ringswim::delegate::{ChannelEventDelegate, NodeEventKind};
/// use ringswim::engine::Memberlist;
///
/// # fn main() -> Result<(), ringswim::engine::Error> {
/// let local = |name: &str| {
///     let mut config = Config::default_local().with_name(name);
///     config.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
///     config.bind_port = 0; // a free port, advertised as bound
///     config
/// };
/// let (tx, events) = std::sync::mpsc::channel();
/// let a = Memberlist::create(local("a").with_events(Arc::new(ChannelEventDelegate::new(tx))))?;
/// let b = Memberlist::create(local("b"))?;
/// assert_eq!(b.join(&[a.local_node()?.address()])?, 1);
/// // a hears itself join, then b (a blocking iterator of events).
/// let joined: Vec<String> = events.iter().take(2).map(|e| e.node.name.to_string()).collect();
/// assert_eq!(joined, ["a", "b"]);
/// assert_eq!(a.num_members(), 2);
///
/// b.leave(Duration::from_secs(5))?;
/// let left = events.iter().find(|e| e.kind == NodeEventKind::Leave).expect("b's leave");
/// assert_eq!(left.node.name.as_str(), "b");
/// b.join(&[a.local_node()?.address()])?; // Go cannot rejoin after Leave
/// # Ok(())
/// # }
/// ```
pub struct Memberlist {
    link: ShardLink,
    node: NodeId,
    keyring: SharedKeyring,
    name: String,
    metrics: Metrics,
    /// A spread node's receiving entries on the other engine threads
    /// ([`Runtime::host_spread`]): each thread and the entry's id there.
    receivers: Vec<(ShardLink, NodeId)>,
    /// [`Memberlist::shutdown`] was called: dropping it sends nothing
    /// (the ids may be another node's by then).
    shut_down: AtomicBool,
    /// The runtime hosting it, kept alive with the node.
    _runtime: Option<Runtime>,
}

impl std::fmt::Debug for Memberlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memberlist").field("name", &self.name).field("node", &self.node).finish()
    }
}

impl Memberlist {
    /// Starts a member on a runtime of its own, one thread, the backend
    /// chosen as [`RuntimeOptions::default`] does (Go `Create`). It binds
    /// `config.bind_addr:bind_port` (UDP and TCP) and joins nobody yet.
    ///
    /// # Errors
    /// [`Error::Config`] for a refused config, [`Error::Io`] when a socket
    /// cannot be bound, [`Error::BackendUnavailable`].
    pub fn create(config: Config) -> Result<Memberlist, Error> {
        Runtime::new(RuntimeOptions { threads: 1, ..RuntimeOptions::default() })?.host(config)
    }

    /// Holds `runtime` as long as the node lives (its threads run it).
    pub(crate) fn keep_runtime(&mut self, runtime: Runtime) {
        self._runtime = Some(runtime);
    }

    pub(crate) fn new(link: ShardLink, hosted: Hosted) -> Memberlist {
        Memberlist {
            link,
            node: hosted.node,
            keyring: hosted.keyring,
            name: hosted.local.name.to_string(),
            metrics: hosted.metrics,
            receivers: Vec::new(),
            shut_down: AtomicBool::new(false),
            _runtime: None,
        }
    }

    /// A receiving entry of this spread node on another thread (`id` on
    /// `link`'s), shut down with it.
    pub(crate) fn add_receiver(&mut self, link: ShardLink, id: NodeId) {
        self.receivers.push((link, id));
    }

    fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> NodeOp) -> Result<T, Error> {
        let (reply, rx) = Reply::new();
        self.link.send(Command::Node { node: self.node, op: op(reply) })?;
        rx.recv().map_err(|_| Error::Shutdown)
    }

    /// Joins the cluster through `seeds` (Go `Join`): a push/pull with each
    /// at once; the number that answered. Blocks until each answered or
    /// failed (at most `tcp_timeout`).
    ///
    /// # Errors
    /// [`Error::NoSeeds`]; [`Error::JoinFailed`] when none answered, with
    /// each address's reason.
    pub fn join(&self, seeds: &[SocketAddr]) -> Result<usize, Error> {
        let seeds = seeds.to_vec();
        self.ask(|reply| NodeOp::Join { seeds, reply })?
    }

    /// The members this node counts (Go `Members`: alive and suspect), the
    /// local node included.
    pub fn members(&self) -> Vec<Node> {
        self.member_states()
            .into_iter()
            .filter(|m| matches!(m.node.state, NodeState::Alive | NodeState::Suspect))
            .map(|m| m.node)
            .collect()
    }

    /// Every member of the table, dead and left ones included, with its
    /// state and incarnation.
    pub fn member_states(&self) -> Vec<MemberInfo> {
        self.ask(|reply| NodeOp::Members { reply }).unwrap_or_default()
    }

    /// How many members this node counts (Go `NumMembers`).
    pub fn num_members(&self) -> usize {
        self.members().len()
    }

    /// This node as it announces itself (Go `LocalNode`).
    ///
    /// # Errors
    /// [`Error::Shutdown`].
    pub fn local_node(&self) -> Result<Node, Error> {
        self.ask(|reply| NodeOp::LocalNode { reply })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lifeguard's local health score: 0 is healthy, up to
    /// `awareness_max_multiplier - 1` (Go `GetHealthScore`).
    pub fn health_score(&self) -> usize {
        self.ask(|reply| NodeOp::HealthScore { reply }).unwrap_or(0)
    }

    /// Membership broadcasts waiting to be gossiped (Go
    /// `memberlist.queue.broadcasts`): 0 once news has had its
    /// retransmit budget.
    pub fn queued_broadcasts(&self) -> usize {
        self.ask(|reply| NodeOp::QueuedBroadcasts { reply }).unwrap_or(0)
    }

    /// Sends `msg` to the member at `to` in one datagram (Go
    /// `SendBestEffort`, `SendToAddress`).
    ///
    /// # Errors
    /// [`Error::Core`] with [`crate::swim::Error::MessageTooLarge`] when it
    /// does not fit a datagram; [`Error::UnknownMember`].
    pub fn send_best_effort(&self, to: SocketAddr, msg: &[u8]) -> Result<(), Error> {
        let msg = msg.to_vec();
        self.ask(|reply| NodeOp::SendBestEffort { to, msg, reply })?
    }

    /// Sends `msg` to the member at `to` over TCP (Go `SendReliable`);
    /// returns once it is queued (Go returns once written).
    ///
    /// # Errors
    /// [`Error::UnknownMember`], [`Error::Shutdown`].
    pub fn send_reliable(&self, to: SocketAddr, msg: &[u8]) -> Result<(), Error> {
        let msg = msg.to_vec();
        self.ask(|reply| NodeOp::SendReliable { to, msg, reply })?
    }

    /// Re-announces this node with fresh meta from its delegate (Go
    /// `UpdateNode`), waiting up to `timeout` for the broadcast to go out.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::Core`] (meta too large).
    pub fn update_node(&self, timeout: Duration) -> Result<(), Error> {
        let (reply, rx) = Reply::new();
        self.link.send(Command::Node { node: self.node, op: NodeOp::UpdateNode { reply } })?;
        match rx.recv_timeout(timeout) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout("update")),
            Err(_) => Err(Error::Shutdown),
        }
    }

    /// Leaves the cluster gracefully (Go `Leave`): broadcasts that this
    /// node left and waits up to `timeout` for it to go out. The node keeps
    /// running (answering probes) until [`Memberlist::shutdown`].
    ///
    /// # Errors
    /// [`Error::Timeout`] when the broadcast did not go out in time.
    pub fn leave(&self, timeout: Duration) -> Result<(), Error> {
        let (reply, rx) = Reply::new();
        self.link.send(Command::Node { node: self.node, op: NodeOp::Leave { reply } })?;
        match rx.recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout("leave")),
            Err(_) => Err(Error::Shutdown),
        }
    }

    /// Stops the node: its sockets close (a spread node's on every
    /// thread), its timers stop (Go `Shutdown`). Does not leave.
    ///
    /// # Errors
    /// [`Error::Shutdown`] when it already was.
    pub fn shutdown(&self) -> Result<(), Error> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(Error::Shutdown);
        }
        let result = self.ask(|reply| NodeOp::Shutdown { reply });
        for (link, id) in &self.receivers {
            let (reply, rx) = Reply::new();
            if link.send(Command::Node { node: *id, op: NodeOp::Shutdown { reply } }).is_ok() {
                let _ = rx.recv();
            }
        }
        result
    }

    /// The node's keyring (Go `Config.Keyring`): install, use and remove
    /// keys while it runs ([`SharedKeyring::add_key`],
    /// [`SharedKeyring::use_key`], [`SharedKeyring::remove_key`]).
    pub fn keyring(&self) -> &SharedKeyring {
        &self.keyring
    }

    /// The node's counters: packets rejected, entries dropped, streams
    /// refused or timed out, by reason ([`crate::swim::metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl Drop for Memberlist {
    fn drop(&mut self) {
        if *self.shut_down.get_mut() {
            return;
        }
        let entries = std::iter::once((&self.link, self.node)).chain(self.receivers.iter().map(|(l, id)| (l, *id)));
        for (link, node) in entries {
            let (reply, _rx) = Reply::new();
            let _ = link.send(Command::Node { node, op: NodeOp::Shutdown { reply } });
        }
    }
}
