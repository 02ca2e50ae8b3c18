//! The driver contract: what a driver (the engine's sockets, the simulator's
//! virtual network, a test harness) does with a protocol node, and the one
//! place that drains a node's outputs.
//!
//! quinn-proto's split is the model: the node ([`Protocol`], implemented by
//! [`Core`]) owns the state and does no I/O; the driver owns sockets, clocks
//! and threads, feeds the node its inputs (`handle_*`), and after every input
//! or command calls [`drain`], which hands the node's outputs to the driver's
//! [`Sink`] in one fixed order and calls the delegates a driver could
//! otherwise forget.
//!
//! # The contract
//! - **Inputs** (`handle_*`) carry `now`, which never goes backwards for one
//!   node (equal is fine). Each is one event: a datagram
//!   ([`Protocol::handle_packet`]), the node's timer
//!   ([`Protocol::handle_timeout`]), a stream a peer opened
//!   ([`Protocol::handle_stream`], answered synchronously), or the outcome of
//!   a stream this node opened ([`Protocol::handle_stream_reply`]).
//! - **Drain after every input and every command** (and once after the node
//!   is built): [`drain`] polls, in this order, every datagram
//!   ([`Protocol::poll_transmit`]), every stream to open
//!   ([`Protocol::poll_stream`]), every effect ([`Protocol::poll_effect`]:
//!   first to the delegates, see [`Delegates::notify`], then to the sink), and
//!   last the timer ([`Protocol::poll_timeout`]).
//! - **One timer**: [`Protocol::poll_timeout`] is the earliest time the node
//!   wants [`Protocol::handle_timeout`]; it replaces the time an earlier drain
//!   gave. The driver calls `handle_timeout` at (or after) it unless an input
//!   comes first. After `handle_timeout(now)` the timer is `None` or later
//!   than `now`.
//! - **Every stream request answered once**: for each [`StreamRequest`]
//!   the driver dials `to`; once connected it asks
//!   [`Protocol::stream_connected`] for the bytes to write (never when the
//!   dial fails), reads the reply its `kind` expects, and calls
//!   [`Protocol::handle_stream_reply`] once with the reply or a
//!   [`StreamError`]. An answer must come by the request's `deadline` to
//!   count: at the deadline the core ends the stream itself as
//!   [`StreamError::Timeout`] (it is one of its timers), so a driver that
//!   loses a stream stalls nothing, and an answer after that is ignored.
//!   A stream a peer opened is answered by the reply
//!   [`Protocol::handle_stream`] returns; once it is written, the driver
//!   calls [`Protocol::stream_reply_done`].
//! - **No I/O, no clock, no global RNG** in the node: time comes from `now`,
//!   randomness from the RNG the driver seeded. A node that obeys this
//!   replays bit for bit.
//!
//! Delegates that answer or veto (`AliveDelegate`, `MergeDelegate`,
//! `Delegate::node_meta`, `get_broadcasts`, `local_state`,
//! `merge_remote_state`, `PingDelegate`) are called inline by the core, as
//! Go does. Notifications (`EventDelegate`, `ConflictDelegate`,
//! `Delegate::notify_msg`) are [`Effect`]s, and [`drain`] delivers them.

use std::net::SocketAddr;

use rand::Rng;

use super::{Core, Effect, StreamError, StreamId, StreamRequest, Time, Transmit};
use crate::config::Config;
use crate::delegate::{ConflictDelegate, Delegate, EventDelegate, NodeEventKind};

/// A protocol node as a driver sees it: the sans-IO surface of [`Core`]
/// (see the [module docs](self) for the contract). [`Core`] implements it
/// with byte streams; the simulator wraps a core to carry streams unencoded.
pub trait Protocol {
    /// What its streams carry, requests and replies (`Vec<u8>` for [`Core`]:
    /// the bytes as they go on the wire).
    type Body;

    /// A datagram from `from` arrived. `bytes` may be decrypted in place.
    fn handle_packet(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time);
    /// The timer from [`Protocol::poll_timeout`] is due.
    fn handle_timeout(&mut self, now: Time);
    /// A peer opened a stream and sent `body`: the reply, or `None` to close
    /// without one.
    fn handle_stream(&mut self, from: SocketAddr, body: Self::Body, now: Time) -> Option<Self::Body>;
    /// The reply to `from`'s stream is written (or the stream closed): a
    /// push/pull gives back its place among the ones the node serves at once.
    fn stream_reply_done(&mut self, from: SocketAddr);
    /// The outcome of stream `id` this node opened: once per
    /// [`StreamRequest`], by its deadline (later, it is ignored).
    fn handle_stream_reply(&mut self, id: StreamId, reply: Result<Self::Body, StreamError>, now: Time);
    /// Stream `id` is connected: the bytes to write on it. Asked at most
    /// once, and not when the dial failed.
    fn stream_connected(&mut self, id: StreamId) -> Self::Body;

    /// The next datagram to send.
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// The next stream exchange to open.
    fn poll_stream(&mut self) -> Option<StreamRequest>;
    /// The next effect, oldest first.
    fn poll_effect(&mut self) -> Option<Effect>;
    /// When the node next wants [`Protocol::handle_timeout`]; `None`: never.
    fn poll_timeout(&self) -> Option<Time>;

    /// The delegates [`drain`] hands effects to: [`Delegates::of`] the
    /// node's [`Config`], or [`Delegates::NONE`] for a node without one.
    /// Required, so that a wrapper cannot silently drop them.
    fn delegates(&self) -> Delegates<'_>;
}

/// Where [`drain`] puts a node's outputs: the driver's side.
pub trait Sink {
    /// Send this datagram.
    fn transmit(&mut self, transmit: Transmit);
    /// Open this stream exchange (and answer it once, by its deadline).
    fn open_stream(&mut self, request: StreamRequest);
    /// The node emitted `effect`; its delegates have had it already. For the
    /// driver's own bookkeeping (join results, ping round trips, logs).
    fn effect(&mut self, effect: Effect);
    /// The node's one timer, replacing the previous one; called once per
    /// drain, last.
    fn timer(&mut self, at: Option<Time>);
}

/// Drains `node`'s outputs into `sink`, in the contract's order: every
/// datagram, every stream request, every effect (each first to
/// [`Protocol::delegates`], then to the sink), then the timer. Call it after
/// every input and every command.
pub fn drain<P: Protocol + ?Sized>(node: &mut P, sink: &mut impl Sink) {
    while let Some(transmit) = node.poll_transmit() {
        sink.transmit(transmit);
    }
    while let Some(request) = node.poll_stream() {
        sink.open_stream(request);
    }
    while let Some(effect) = node.poll_effect() {
        node.delegates().notify(&effect);
        sink.effect(effect);
    }
    sink.timer(node.poll_timeout());
}

/// A [`Sink`] that keeps everything, for a driver that acts once the drain
/// is over (it can then call the node again, e.g.
/// [`Protocol::stream_connected`]). Reuse one to keep its buffers.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Datagrams, in order.
    pub transmits: Vec<Transmit>,
    /// Stream requests, in order.
    pub streams: Vec<StreamRequest>,
    /// Effects, in order (the delegates have had them).
    pub effects: Vec<Effect>,
    /// The timer the last drain gave.
    pub timer: Option<Time>,
}

impl Sink for Outbox {
    fn transmit(&mut self, transmit: Transmit) {
        self.transmits.push(transmit);
    }
    fn open_stream(&mut self, request: StreamRequest) {
        self.streams.push(request);
    }
    fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }
    fn timer(&mut self, at: Option<Time>) {
        self.timer = at;
    }
}

/// The notification delegates of a node (Go calls them from its own
/// goroutines; here [`drain`] calls them, on the driver's thread).
#[derive(Clone, Copy, Default)]
pub struct Delegates<'a> {
    /// Gets [`Effect::Event`]s (`Config::events`).
    pub events: Option<&'a dyn EventDelegate>,
    /// Gets [`Effect::Conflict`]s (`Config::conflict`).
    pub conflict: Option<&'a dyn ConflictDelegate>,
    /// Gets [`Effect::UserMessage`]s (`Config::delegate`'s
    /// [`Delegate::notify_msg`]).
    pub delegate: Option<&'a dyn Delegate>,
}

impl<'a> Delegates<'a> {
    /// No delegates: a node with no [`Config`] (the simulator's toys).
    pub const NONE: Delegates<'static> = Delegates { events: None, conflict: None, delegate: None };

    /// The delegates installed in `config`.
    pub fn of(config: &'a Config) -> Delegates<'a> {
        Delegates {
            events: config.events.as_deref(),
            conflict: config.conflict.as_deref(),
            delegate: config.delegate.as_deref(),
        }
    }

    /// Hands `effect` to the delegate that wants it (Go's `NotifyJoin` /
    /// `NotifyLeave` / `NotifyUpdate`, `NotifyConflict`, `NotifyMsg`);
    /// effects no delegate takes ([`Effect::PingCompleted`],
    /// [`Effect::JoinCompleted`]: return values in Go) are left to the sink.
    pub fn notify(&self, effect: &Effect) {
        match effect {
            Effect::Event(event) => {
                if let Some(events) = self.events {
                    match event.kind {
                        NodeEventKind::Join => events.notify_join(&event.node),
                        NodeEventKind::Leave => events.notify_leave(&event.node),
                        NodeEventKind::Update => events.notify_update(&event.node),
                    }
                }
            }
            Effect::Conflict { existing, other } => {
                if let Some(conflict) = self.conflict {
                    conflict.notify_conflict(existing, other);
                }
            }
            Effect::UserMessage(msg) => {
                if let Some(delegate) = self.delegate {
                    delegate.notify_msg(msg);
                }
            }
            Effect::PingCompleted { .. } | Effect::JoinCompleted { .. } => {}
        }
    }
}

impl std::fmt::Debug for Delegates<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegates")
            .field("events", &self.events.is_some())
            .field("conflict", &self.conflict.is_some())
            .field("delegate", &self.delegate.is_some())
            .finish()
    }
}

/// The core itself is the node: each method is the core's own.
impl<R: Rng> Protocol for Core<R> {
    type Body = Vec<u8>;

    fn handle_packet(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time) {
        Core::handle_packet(self, from, bytes, now);
    }
    fn handle_timeout(&mut self, now: Time) {
        Core::handle_timeout(self, now);
    }
    fn handle_stream(&mut self, from: SocketAddr, mut body: Vec<u8>, now: Time) -> Option<Vec<u8>> {
        Core::handle_stream(self, from, &mut body, now)
    }
    fn stream_reply_done(&mut self, from: SocketAddr) {
        Core::stream_reply_done(self, from);
    }
    fn handle_stream_reply(&mut self, id: StreamId, reply: Result<Vec<u8>, StreamError>, now: Time) {
        Core::handle_stream_reply(self, id, reply, now);
    }
    fn stream_connected(&mut self, id: StreamId) -> Vec<u8> {
        Core::stream_connected(self, id)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Core::poll_transmit(self)
    }
    fn poll_stream(&mut self) -> Option<StreamRequest> {
        Core::poll_stream(self)
    }
    fn poll_effect(&mut self) -> Option<Effect> {
        Core::poll_effect(self)
    }
    fn poll_timeout(&self) -> Option<Time> {
        Core::poll_timeout(self)
    }
    fn delegates(&self) -> Delegates<'_> {
        Delegates::of(self.config())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::net::{IpAddr, Ipv4Addr};
    use std::rc::Rc;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::delegate::{Node, NodeEvent};
    use crate::swim::StreamKind;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    }

    /// A node with two of each output ready, that logs every poll (into the
    /// log its delegate shares) so the order can be read back.
    struct Scripted {
        log: Rc<RefCell<Vec<String>>>,
        transmits: Vec<Transmit>,
        streams: Vec<StreamRequest>,
        effects: Vec<Effect>,
        messages: Recorder,
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Vec<u8>>>);

    impl Delegate for Recorder {
        fn notify_msg(&self, msg: &[u8]) {
            self.0.lock().unwrap().push(msg.to_vec());
        }
    }

    impl Protocol for Scripted {
        type Body = Vec<u8>;
        fn handle_packet(&mut self, _: SocketAddr, _: &mut [u8], _: Time) {}
        fn handle_timeout(&mut self, _: Time) {}
        fn handle_stream(&mut self, _: SocketAddr, _: Vec<u8>, _: Time) -> Option<Vec<u8>> {
            None
        }
        fn stream_reply_done(&mut self, _: SocketAddr) {}
        fn handle_stream_reply(&mut self, _: StreamId, _: Result<Vec<u8>, StreamError>, _: Time) {}
        fn stream_connected(&mut self, _: StreamId) -> Vec<u8> {
            Vec::new()
        }
        fn poll_transmit(&mut self) -> Option<Transmit> {
            self.log.borrow_mut().push("poll_transmit".into());
            self.transmits.pop()
        }
        fn poll_stream(&mut self) -> Option<StreamRequest> {
            self.log.borrow_mut().push("poll_stream".into());
            self.streams.pop()
        }
        fn poll_effect(&mut self) -> Option<Effect> {
            self.log.borrow_mut().push("poll_effect".into());
            self.effects.pop()
        }
        fn poll_timeout(&self) -> Option<Time> {
            self.log.borrow_mut().push("poll_timeout".into());
            Some(Time::from_epoch(Duration::from_secs(7)))
        }
        fn delegates(&self) -> Delegates<'_> {
            Delegates { delegate: Some(&self.messages), ..Delegates::NONE }
        }
    }

    /// A sink that logs what it is handed into the same log.
    struct Logged(Rc<RefCell<Vec<String>>>);

    impl Sink for Logged {
        fn transmit(&mut self, t: Transmit) {
            self.0.borrow_mut().push(format!("transmit {}", t.to.port()));
        }
        fn open_stream(&mut self, r: StreamRequest) {
            self.0.borrow_mut().push(format!("stream {}", r.id));
        }
        fn effect(&mut self, e: Effect) {
            self.0.borrow_mut().push(format!("effect {e:?}"));
        }
        fn timer(&mut self, at: Option<Time>) {
            self.0.borrow_mut().push(format!("timer {:?}", at.map(|t| t.since_epoch())));
        }
    }

    #[test]
    fn drain_hands_transmits_then_streams_then_effects_then_the_timer() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let deadline = Time::from_epoch(Duration::from_secs(9));
        let mut node = Scripted {
            log: Rc::clone(&log),
            transmits: vec![Transmit { to: addr(2), bytes: vec![] }, Transmit { to: addr(1), bytes: vec![] }],
            streams: vec![
                StreamRequest { id: 2, to: addr(1), kind: StreamKind::UserMessage, deadline },
                StreamRequest { id: 1, to: addr(1), kind: StreamKind::UserMessage, deadline },
            ],
            effects: vec![Effect::UserMessage(b"b".to_vec()), Effect::UserMessage(b"a".to_vec())],
            messages: Recorder::default(),
        };
        drain(&mut node, &mut Logged(Rc::clone(&log)));
        let expected = [
            "poll_transmit",
            "transmit 1",
            "poll_transmit",
            "transmit 2",
            "poll_transmit",
            "poll_stream",
            "stream 1",
            "poll_stream",
            "stream 2",
            "poll_stream",
            "poll_effect",
            "effect UserMessage([97])",
            "poll_effect",
            "effect UserMessage([98])",
            "poll_effect",
            "poll_timeout",
            "timer Some(7s)",
        ];
        assert_eq!(*log.borrow(), expected);
        // The delegate had each message, in order, as the sink did.
        assert_eq!(*node.messages.0.lock().unwrap(), [b"a".to_vec(), b"b".to_vec()]);
    }

    #[derive(Default)]
    struct Calls(Mutex<Vec<String>>);

    impl EventDelegate for Calls {
        fn notify_join(&self, node: &Node) {
            self.0.lock().unwrap().push(format!("join {node}"));
        }
        fn notify_leave(&self, node: &Node) {
            self.0.lock().unwrap().push(format!("leave {node}"));
        }
        fn notify_update(&self, node: &Node) {
            self.0.lock().unwrap().push(format!("update {node}"));
        }
    }

    impl ConflictDelegate for Calls {
        fn notify_conflict(&self, existing: &Node, other: &Node) {
            self.0.lock().unwrap().push(format!("conflict {existing} {}", other.port));
        }
    }

    #[test]
    fn each_notification_goes_to_its_delegate_and_the_rest_to_none() {
        let calls = Calls::default();
        let delegates = Delegates { events: Some(&calls), conflict: Some(&calls), delegate: None };
        let node = Node::new("a", IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        let other = Node { port: 2, ..node.clone() };
        for kind in [NodeEventKind::Join, NodeEventKind::Update, NodeEventKind::Leave] {
            delegates.notify(&Effect::Event(NodeEvent { kind, node: node.clone() }));
        }
        delegates.notify(&Effect::Conflict { existing: node.clone(), other });
        delegates.notify(&Effect::UserMessage(b"no delegate: dropped".to_vec()));
        delegates.notify(&Effect::PingCompleted { seq_no: 1, node: "a".into(), rtt: None });
        assert_eq!(*calls.0.lock().unwrap(), ["join a", "update a", "leave a", "conflict a 2"]);
        // With none installed, nothing is called and nothing panics.
        Delegates::NONE.notify(&Effect::Event(NodeEvent { kind: NodeEventKind::Join, node }));
    }
}
