//! Members as the application sees them ([`Node`]) and the hooks through which
//! the application takes part in membership: the Rust shape of Go memberlist's
//! `Delegate`, `EventDelegate`, `ConflictDelegate`, `MergeDelegate`,
//! `PingDelegate` and `AliveDelegate` interfaces.
//!
//! Every trait is `Send + Sync` and every method takes `&self`: memberlist calls
//! delegates from its own threads, possibly concurrently (see each trait), so an
//! implementation that keeps state does so behind a `Mutex`, an atomic or a
//! channel. Delegates are installed in [`crate::config::Config`] as
//! `Arc<dyn Trait>`.
//!
//! Calls are made on memberlist's hot paths (the packet handler, the probe
//! loop, push/pull): an implementation must return quickly and must not call
//! back into the memberlist instance in a way that waits for those paths.
#![forbid(unsafe_code)]

pub use crate::name::Name;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, SyncSender, TrySendError};
use std::time::Duration;

/// A member's state as memberlist sees it (Go `NodeStateType`).
///
/// On the wire (push/pull `pushNodeState.State`) this is a msgpack integer with
/// the values given here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum NodeState {
    /// Go `StateAlive`: answering probes, or refuted the last suspicion.
    #[default]
    Alive = 0,
    /// Go `StateSuspect`: failed a probe; will be declared dead unless it
    /// refutes before the suspicion timeout.
    Suspect = 1,
    /// Go `StateDead`: declared failed.
    Dead = 2,
    /// Go `StateLeft`: left the cluster gracefully.
    Left = 3,
}

/// An integer that is not one of Go's `NodeStateType` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown node state {0} (memberlist knows 0 alive, 1 suspect, 2 dead, 3 left)")]
pub struct UnknownNodeState(pub i64);

impl NodeState {
    /// The state for a wire integer, or `None` if Go defines no such state.
    pub fn from_wire(value: i64) -> Option<Self> {
        match value {
            0 => Some(Self::Alive),
            1 => Some(Self::Suspect),
            2 => Some(Self::Dead),
            3 => Some(Self::Left),
            _ => None,
        }
    }

    /// The integer Go puts on the wire for this state.
    pub fn to_wire(self) -> u8 {
        self as u8
    }

    /// Lower-case name: `alive`, `suspect`, `dead`, `left`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Suspect => "suspect",
            Self::Dead => "dead",
            Self::Left => "left",
        }
    }
}

impl TryFrom<i64> for NodeState {
    type Error = UnknownNodeState;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::from_wire(value).ok_or(UnknownNodeState(value))
    }
}

impl TryFrom<u8> for NodeState {
    type Error = UnknownNodeState;
    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Self::try_from(i64::from(value))
    }
}

impl From<NodeState> for u8 {
    fn from(state: NodeState) -> u8 {
        state.to_wire()
    }
}

impl From<NodeState> for i64 {
    fn from(state: NodeState) -> i64 {
        i64::from(state.to_wire())
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of the cluster (Go `Node`), as handed to delegates. An owned
/// snapshot: changing it changes nothing in memberlist.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// Unique name of the member (Go `Name`).
    pub name: Name,
    /// Address the member advertises (Go `Addr`).
    pub addr: IpAddr,
    /// Port the member advertises, for both UDP and TCP (Go `Port`).
    pub port: u16,
    /// Metadata from the member's [`Delegate::node_meta`], at most
    /// [`crate::config::META_MAX_SIZE`] bytes (Go `Meta`).
    pub meta: Vec<u8>,
    /// State of the member when the snapshot was taken (Go `State`).
    ///
    /// Go 0.2.2 fills this only for [`MergeDelegate::notify_merge`] (from the
    /// push/pull). Everywhere else Go's `nodeState` shadows the field with its
    /// own `State`, so Go delegates always see `StateAlive` (0) there, even in
    /// `NotifyLeave`. ringswim reports the real state.
    pub state: NodeState,
    /// Oldest memberlist protocol version the member understands (Go `PMin`).
    pub pmin: u8,
    /// Newest memberlist protocol version the member understands (Go `PMax`).
    pub pmax: u8,
    /// Protocol version the member speaks (Go `PCur`).
    pub pcur: u8,
    /// Oldest delegate protocol version the member understands (Go `DMin`).
    pub dmin: u8,
    /// Newest delegate protocol version the member understands (Go `DMax`).
    pub dmax: u8,
    /// Delegate protocol version the member speaks (Go `DCur`).
    pub dcur: u8,
}

impl Node {
    /// A node with the given identity, alive, with no metadata and all
    /// versions zero (what Go assumes for a member that sent no `Vsn`).
    pub fn new(name: impl Into<Name>, addr: IpAddr, port: u16) -> Self {
        Self {
            name: name.into(),
            addr,
            port,
            meta: Vec::new(),
            state: NodeState::Alive,
            pmin: 0,
            pmax: 0,
            pcur: 0,
            dmin: 0,
            dmax: 0,
            dcur: 0,
        }
    }

    /// Where to reach the member (Go `Address()`, which formats `host:port`).
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// The six version bytes in Go's `Vsn` order: pmin, pmax, pcur, dmin,
    /// dmax, dcur.
    pub fn vsn(&self) -> [u8; 6] {
        [self.pmin, self.pmax, self.pcur, self.dmin, self.dmax, self.dcur]
    }
}

impl fmt::Display for Node {
    /// The member's name, like Go's `Node.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The application's hook into gossip (Go `Delegate`): metadata for this
/// member, user messages, piggybacked broadcasts, and application state carried
/// by push/pull.
///
/// Memberlist calls these methods concurrently from several threads. Every
/// method has a no-op default, so an implementation overrides only what it uses.
pub trait Delegate: Send + Sync {
    /// Returns this member's metadata whenever memberlist builds an alive
    /// message for it (at start-up and on every metadata update). The result
    /// must not exceed `limit` bytes ([`crate::config::META_MAX_SIZE`]); other
    /// members see it in [`Node::meta`].
    fn node_meta(&self, limit: usize) -> Vec<u8> {
        let _ = limit;
        Vec::new()
    }

    /// Receives the payload of a user message sent by another member. It runs
    /// on the packet-receive path: do not block; the slice is only valid for
    /// the call, so copy what must be kept.
    fn notify_msg(&self, msg: &[u8]) {
        let _ = msg;
    }

    /// Returns user messages to piggyback on an outgoing packet. Each returned
    /// buffer costs `overhead` bytes on top of its length, and the total
    /// (`sum(overhead + len)`) must not exceed `limit`. Called on the send
    /// paths (probes, gossip): do not block.
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        let _ = (overhead, limit);
        Vec::new()
    }

    /// Returns application state to send along with this member's view of the
    /// cluster in a push/pull (a full state sync over TCP). `join` is true when
    /// the push/pull is part of joining a cluster rather than the periodic
    /// anti-entropy sync. The other side receives it in
    /// [`Delegate::merge_remote_state`].
    fn local_state(&self, join: bool) -> Vec<u8> {
        let _ = join;
        Vec::new()
    }

    /// Receives the application state the remote side produced with its
    /// [`Delegate::local_state`], after a push/pull. `join` as there.
    fn merge_remote_state(&self, buf: &[u8], join: bool) {
        let _ = (buf, join);
    }
}

/// Notifications of members joining, leaving and changing (Go
/// `EventDelegate`).
///
/// Memberlist may call these from different threads but never two at a time,
/// so events arrive in a meaningful order. Every method has a no-op default.
pub trait EventDelegate: Send + Sync {
    /// A member joined: it was seen for the first time (this member itself
    /// included, at start-up) or came back after being dead or having left.
    fn notify_join(&self, node: &Node) {
        let _ = node;
    }

    /// A member was seen to leave or was declared dead.
    fn notify_leave(&self, node: &Node) {
        let _ = node;
    }

    /// A live member changed its metadata.
    fn notify_update(&self, node: &Node) {
        let _ = node;
    }
}

/// Which [`EventDelegate`] method produced a [`NodeEvent`] (Go
/// `NodeEventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeEventKind {
    /// [`EventDelegate::notify_join`] (Go `NodeJoin`).
    Join,
    /// [`EventDelegate::notify_leave`] (Go `NodeLeave`).
    Leave,
    /// [`EventDelegate::notify_update`] (Go `NodeUpdate`).
    Update,
}

/// One membership event, as sent by [`ChannelEventDelegate`] (Go `NodeEvent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEvent {
    /// What happened.
    pub kind: NodeEventKind,
    /// The member it happened to.
    pub node: Node,
}

/// An [`EventDelegate`] that forwards every event to a channel (Go
/// `ChannelEventDelegate`). Go's blocks memberlist while its channel is
/// full; this one never blocks:
/// - [`ChannelEventDelegate::new`] takes an unbounded channel: nothing is
///   lost, and a receiver that stops reading lets it grow;
/// - [`ChannelEventDelegate::bounded`] takes a `sync_channel`: an event
///   that finds it full is dropped and counted ([`ChannelEventDelegate::dropped`]),
///   so a stalled application costs a fixed amount of memory.
///
/// Events sent after the receiver is dropped are discarded (not counted).
#[derive(Debug)]
pub struct ChannelEventDelegate {
    tx: Mutex<EventSender>,
    dropped: AtomicU64,
}

#[derive(Debug)]
enum EventSender {
    Unbounded(Sender<NodeEvent>),
    Bounded(SyncSender<NodeEvent>),
}

impl ChannelEventDelegate {
    /// Forwards events to `tx`, an unbounded channel.
    pub fn new(tx: Sender<NodeEvent>) -> Self {
        Self { tx: Mutex::new(EventSender::Unbounded(tx)), dropped: AtomicU64::new(0) }
    }

    /// Forwards events to `tx`, a bounded channel (`std::sync::mpsc::sync_channel(n)`);
    /// an event that finds it full is dropped and counted.
    pub fn bounded(tx: SyncSender<NodeEvent>) -> Self {
        Self { tx: Mutex::new(EventSender::Bounded(tx)), dropped: AtomicU64::new(0) }
    }

    /// Events dropped because the bounded channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, kind: NodeEventKind, node: &Node) {
        let event = NodeEvent { kind, node: node.clone() };
        let tx = self.tx.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A dropped receiver means nobody listens any more: not an error.
        match &*tx {
            EventSender::Unbounded(tx) => {
                let _ = tx.send(event);
            }
            EventSender::Bounded(tx) => {
                if let Err(TrySendError::Full(_)) = tx.try_send(event) {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl EventDelegate for ChannelEventDelegate {
    fn notify_join(&self, node: &Node) {
        self.send(NodeEventKind::Join, node);
    }
    fn notify_leave(&self, node: &Node) {
        self.send(NodeEventKind::Leave, node);
    }
    fn notify_update(&self, node: &Node) {
        self.send(NodeEventKind::Update, node);
    }
}

/// Told when a member tries to join under a name that is already taken by a
/// member at another address (Go `ConflictDelegate`); typically two members
/// configured with the same name.
pub trait ConflictDelegate: Send + Sync {
    /// `existing` is the member memberlist already knows under the name;
    /// `other` is the newcomer claiming it (Go fills only its name, address,
    /// port and metadata). The newcomer's alive message is ignored.
    fn notify_conflict(&self, existing: &Node, other: &Node);
}

/// Lets the application veto a cluster merge (Go `MergeDelegate`).
///
/// Called when a push/pull that is part of a join (ours or a peer's) is about
/// to merge the remote view of the cluster into ours. Not called for the
/// periodic anti-entropy push/pull.
pub trait MergeDelegate: Send + Sync {
    /// `peers` is every member the remote side knows, whatever its state.
    /// Returning an error cancels the merge; when this member is the one
    /// joining, its join attempt with that peer fails with the error.
    fn notify_merge(&self, peers: &[Node]) -> Result<(), String>;
}

/// Observes direct probes (Go `PingDelegate`): measures round-trip times and
/// can attach a payload to acks.
///
/// Only direct UDP probes count; indirect probes and the TCP fallback ping are
/// not reported, as their timing says little about the member's RTT. Both
/// methods have no-op defaults.
pub trait PingDelegate: Send + Sync {
    /// Returns bytes to attach to an ack this member is about to send in reply
    /// to a ping.
    fn ack_payload(&self) -> Vec<u8> {
        Vec::new()
    }

    /// An ack arrived for a probe this member sent to `node`: `rtt` is the
    /// time from sending the ping to receiving the ack, `payload` is what the
    /// other side's [`PingDelegate::ack_payload`] returned.
    fn notify_ping_complete(&self, node: &Node, rtt: Duration, payload: &[u8]) {
        let _ = (node, rtt, payload);
    }
}

/// Filters members (Go `AliveDelegate`): consulted for every alive message
/// about a member, whether it arrived by gossip or by push/pull.
pub trait AliveDelegate: Send + Sync {
    /// Returning an error keeps `peer` out of the membership: the alive
    /// message is ignored (and logged with the error).
    fn notify_alive(&self, peer: &Node) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    #[test]
    fn node_state_wire_values_are_gos() {
        for (state, v) in [(NodeState::Alive, 0), (NodeState::Suspect, 1), (NodeState::Dead, 2), (NodeState::Left, 3)] {
            assert_eq!(state.to_wire(), v);
            assert_eq!(u8::from(state), v);
            assert_eq!(NodeState::try_from(v), Ok(state));
            assert_eq!(NodeState::try_from(i64::from(v)), Ok(state));
            assert_eq!(NodeState::from_wire(i64::from(v)), Some(state));
        }
        assert_eq!(NodeState::try_from(4u8), Err(UnknownNodeState(4)));
        assert_eq!(NodeState::try_from(-1i64), Err(UnknownNodeState(-1)));
        assert_eq!(NodeState::from_wire(i64::MAX), None);
        assert_eq!(NodeState::default(), NodeState::Alive);
    }

    #[test]
    fn node_address_and_display() {
        let mut n = Node::new("a", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 7946);
        assert_eq!(n.address().to_string(), "10.0.0.1:7946");
        assert_eq!(n.to_string(), "a");
        n.addr = "::1".parse().unwrap();
        assert_eq!(n.address().to_string(), "[::1]:7946");
        n.pmin = 1;
        n.pmax = 5;
        n.pcur = 2;
        assert_eq!(n.vsn(), [1, 5, 2, 0, 0, 0]);
    }

    struct Nothing;
    impl Delegate for Nothing {}
    impl EventDelegate for Nothing {}
    impl PingDelegate for Nothing {}

    #[test]
    fn defaults_are_no_ops_and_traits_are_object_safe() {
        let d: Arc<dyn Delegate> = Arc::new(Nothing);
        assert!(d.node_meta(512).is_empty());
        assert!(d.get_broadcasts(2, 1400).is_empty());
        assert!(d.local_state(true).is_empty());
        d.notify_msg(b"x");
        d.merge_remote_state(b"x", false);
        let p: Arc<dyn PingDelegate> = Arc::new(Nothing);
        assert!(p.ack_payload().is_empty());
        let e: Arc<dyn EventDelegate> = Arc::new(Nothing);
        e.notify_join(&Node::new("a", IpAddr::V4(Ipv4Addr::LOCALHOST), 1));
    }

    #[test]
    fn channel_event_delegate_forwards_in_order() {
        let (tx, rx) = std::sync::mpsc::channel();
        let d = ChannelEventDelegate::new(tx);
        let n = Node::new("a", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        d.notify_join(&n);
        d.notify_update(&n);
        d.notify_leave(&n);
        let kinds: Vec<_> = rx.try_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [NodeEventKind::Join, NodeEventKind::Update, NodeEventKind::Leave]);
        drop(rx);
        d.notify_join(&n); // receiver gone: silently dropped
    }

    /// A bounded channel nobody reads holds what fits; the rest is
    /// dropped and counted, and the delegate never blocks.
    #[test]
    fn a_bounded_channel_event_delegate_drops_and_counts_when_full() {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let d = ChannelEventDelegate::bounded(tx);
        let n = Node::new("a", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        for _ in 0..5 {
            d.notify_join(&n);
        }
        assert_eq!(d.dropped(), 3);
        assert_eq!(rx.try_iter().count(), 2);
        d.notify_leave(&n);
        assert_eq!((d.dropped(), rx.try_recv().map(|e| e.kind)), (3, Ok(NodeEventKind::Leave)));
    }
}
