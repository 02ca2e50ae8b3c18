//! The stream (TCP) half of [`Core`]: push/pull (periodic and join), the
//! TCP fallback ping, and incoming streams (Go `net.go`'s `handleConn`,
//! `sendAndReceiveState`, `sendLocalState`, `readRemoteState`,
//! `sendPingAndWaitForAck`; `memberlist.go`'s `Join`; `state.go`'s
//! `pushPull`).
//!
//! A stream is one request and at most one reply: the core emits a
//! [`StreamRequest`] ([`Core::poll_stream`]); the driver opens the
//! connection, asks [`Core::stream_connected`] for the bytes to write, reads
//! one stream message back (if its [`StreamKind`] expects one; the framing
//! is [`StreamFramer`](crate::wire::stream::StreamFramer)'s) and hands it to
//! [`Core::handle_stream_reply`], or an error. The request's `deadline` is
//! one of the core's timers: a stream the driver has not answered by then
//! ends as [`StreamError::Timeout`] inside the core, and an answer that
//! comes later is ignored (counted, `ringswim.streams.ignored{reason}`).
//! A driver that loses a request costs nothing more than that timeout.
//!
//! Incoming push/pulls are capped as Go caps them
//! ([`MAX_PUSH_PULL_REQUESTS`]): each holds a place from
//! [`Core::handle_stream`] until [`Core::stream_reply_done`] (or its
//! `tcp_timeout`); one more is refused with an error reply and counted
//! (`ringswim.streams.refused{reason="too_many_push_pulls"}`).
//!
//! The bytes are asked for once connected because a push/pull carries our
//! whole member table (hundreds of kilobytes at thousands of members): Go
//! encodes it after dialing, so a dial that fails (a reconnect attempt to a
//! member that is still down) costs nothing more.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use rand::Rng;

use super::Core;
use super::datagram::draw_nonce;
use crate::delegate::NodeState;
use crate::swim::metrics::{DROPPED, STREAMS_IGNORED, STREAMS_REFUSED, STREAMS_TIMED_OUT, Sample};
use crate::swim::timers::Timer;
use crate::swim::{PushState, Time, k_random_nodes, push_pull_scale};
use crate::wire::message::{Ack, ErrResp, Message, PushNodeState, PushPull, PushPullHeader};
use crate::wire::{Compression, EncodeOptions, Encryption, StreamDecoder, encode_stream};

/// Names a stream this core opened; chosen by the core, unique per core.
pub type StreamId = u64;

/// A request/response exchange over a reliable stream: connect to `to`,
/// write what [`Core::stream_connected`] returns, read the one reply if
/// [`StreamKind::expects_reply`], and hand it (or why there was none) to
/// [`Core::handle_stream_reply`] before `deadline`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    /// Comes back in [`Core::stream_connected`] and
    /// [`Core::handle_stream_reply`].
    pub id: StreamId,
    /// The peer.
    pub to: SocketAddr,
    /// What the exchange is for.
    pub kind: StreamKind,
    /// When the core gives up: at this time (one of its timers) the stream
    /// ends as [`StreamError::Timeout`] if no outcome came; a driver need
    /// not answer it then, and an answer after it is ignored.
    pub deadline: Time,
}

/// What an outgoing stream is for (Go `net.go`: `sendAndReceiveState`,
/// `sendPingAndWaitForAck`, `sendUserMsg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamKind {
    /// A push/pull: our member table out, the peer's back (Go
    /// `sendAndReceiveState`). `join` is the number [`Core::join`] returned
    /// for a join's push/pull, `None` for the periodic (anti-entropy),
    /// news and reconnect ones.
    PushPull {
        /// The join it belongs to.
        join: Option<u64>,
    },
    /// A probe's TCP fallback ping (Go `sendPingAndWaitForAck`): a ping
    /// out, an ack with the same sequence number back.
    FallbackPing {
        /// The probe's sequence number.
        seq_no: u32,
    },
    /// A reliable user message (Go `SendReliable` → `sendUserMsg`): written,
    /// no reply read. Answer `Ok` with no bytes once written.
    UserMessage,
}

impl StreamKind {
    /// Whether the driver reads a reply (a push/pull's state, a ping's ack)
    /// before answering [`Core::handle_stream_reply`].
    pub fn expects_reply(self) -> bool {
        !matches!(self, StreamKind::UserMessage)
    }

    /// Its name in metrics: `push_pull`, `fallback_ping`, `user_message`.
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::PushPull { .. } => "push_pull",
            StreamKind::FallbackPing { .. } => "fallback_ping",
            StreamKind::UserMessage => "user_message",
        }
    }
}

/// Why a stream exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamError {
    /// No reply by the deadline.
    Timeout,
    /// The connection was refused.
    Refused,
    /// The peer closed without a reply.
    Closed,
}

/// A stream's content as a driver carries it: bytes as they go on the wire
/// (what [`Core::stream_connected`] returns), or a push/pull not encoded at
/// all. The second is for a driver that runs many cores in one process and
/// wants the codec out of the way (the simulator's `--skip-wire`): a
/// push/pull carries the whole member table, and decoding it is most of
/// what a large simulated cluster costs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamContent {
    /// The stream's bytes (label, encryption and compression applied).
    Bytes(Vec<u8>),
    /// A push/pull, unencoded.
    PushPull(LocalState),
}

/// A push/pull's content before encoding (Go `sendLocalState`'s header,
/// `pushNodeState` list and user state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalState {
    /// A join's push/pull (Go `pushPullHeader.Join`).
    pub join: bool,
    /// The member table, one entry per member.
    pub states: Vec<PushState>,
    /// `Delegate::local_state`.
    pub user_state: Vec<u8>,
}

impl LocalState {
    /// Bytes of its plain stream encoding (no label, compression or
    /// encryption), counted without encoding.
    pub fn wire_len(&self) -> usize {
        let header =
            PushPullHeader { nodes: self.states.len(), user_state_len: self.user_state.len(), join: self.join };
        let states: usize = self.states.iter().map(|s| s.as_wire().encoded_len()).sum();
        1 + header.encoded_len() + states + self.user_state.len()
    }
}

impl StreamContent {
    /// The bytes this content takes on the stream ([`LocalState::wire_len`]
    /// for an unencoded push/pull).
    pub fn wire_len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::PushPull(state) => state.wire_len(),
        }
    }
}

/// Go's `errNodeNamesAreRequired`, for a join address under
/// `require_node_names`.
const NODE_NAMES_REQUIRED: &str = "memberlist: node names are required by configuration but one was not provided";

/// What an outgoing stream writes once connected.
#[derive(Clone, Debug)]
pub(super) enum Payload {
    /// Encoded when the stream was requested (pings, user messages).
    Ready(Vec<u8>),
    /// Our state, encoded when connected (Go `sendLocalState` after the
    /// dial).
    PushPull { join: bool },
}

/// An outgoing stream waiting for its outcome.
#[derive(Clone, Debug)]
pub(super) struct PendingStream {
    pub(super) to: SocketAddr,
    pub(super) kind: StreamKind,
    /// Taken by [`Core::stream_connected`].
    payload: Option<Payload>,
    /// When it was requested (`memberlist.pushPullNode` times push/pulls
    /// from here).
    opened: Time,
}

/// One [`Core::join`] in progress.
#[derive(Clone, Debug, Default)]
pub(super) struct JoinState {
    remaining: usize,
    contacted: usize,
    errors: Vec<(SocketAddr, String)>,
}

/// Stream bookkeeping kept by [`Core`].
#[derive(Debug, Default)]
pub(super) struct Streams {
    pub(super) decoder: StreamDecoder,
    /// Requests not yet polled; each is in `pending` too.
    pub(super) outgoing: VecDeque<StreamRequest>,
    /// Outgoing streams waiting for their outcome, each with its
    /// `Timer::Stream` (at most [`MAX_PENDING_STREAMS`]).
    pub(super) pending: BTreeMap<StreamId, PendingStream>,
    pub(super) next_id: StreamId,
    pub(super) next_join: u64,
    /// Joins waiting for their push/pulls (each waits on at least one
    /// pending stream).
    pub(super) joins: BTreeMap<u64, JoinState>,
    /// Incoming push/pulls whose reply the driver may still be writing, by
    /// place number and peer, each with its `Timer::InboundPushPull` (at
    /// most [`MAX_PUSH_PULL_REQUESTS`] - 1, as Go).
    pub(super) inbound: VecDeque<(u64, SocketAddr)>,
    pub(super) next_inbound: u64,
    /// Whether the start's stagger is over (the first tick only re-arms).
    pub(super) push_pull_staggered: bool,
    /// When the last news push/pull
    /// ([`Extensions::news_push_pull_delay`](crate::config::Extensions),
    /// `Timer::NewsPushPull`) ran.
    pub(super) last_news_push_pull: Option<Time>,
    /// Whether the pending news push/pull is the settling one: no news has
    /// come since the last ran, and none follows it.
    pub(super) settling: bool,
    /// Whether the pending settling push/pull is the late one
    /// ([`Extensions::late_settle_delay`](crate::config::Extensions)).
    pub(super) settling_late: bool,
    /// Members learned (joined, or back from dead) since the last settling
    /// push/pull, in one stretch: a pause longer than the longest news gap
    /// starts the count again
    /// ([`Extensions::late_settle_learned`](crate::config::Extensions)).
    pub(super) learned: usize,
    /// When the last was learned.
    pub(super) last_learned: Option<Time>,
    /// Longest wait for quiet before the next news push/pull, in news
    /// delays: doubles with each while news keeps coming.
    pub(super) news_gap: u32,
    /// When the last news came (at most `news_push_pull_burst` of them).
    pub(super) recent_news: std::collections::VecDeque<Time>,
    /// When the last push/pull of
    /// [`Extensions::push_pull_when_alone`](crate::config::Extensions) ran.
    pub(super) last_alone_push_pull: Option<Time>,
    /// Reconnect candidates: members we declared dead, by name, with their
    /// address and when ([`Extensions::reconnect_interval`]). At most
    /// [`MAX_RECONNECT_CANDIDATES`], oldest dropped first.
    ///
    /// [`Extensions::reconnect_interval`]: crate::config::Extensions::reconnect_interval
    pub(super) failed: BTreeMap<String, (SocketAddr, Time)>,
}

/// Bytes one member takes in a push/pull, about (a short name, IPv4, no
/// meta): the encoding buffer starts this big per member.
const PUSH_STATE_ESTIMATE: usize = 96;

/// At most this many dead members are remembered for reconnecting; the
/// oldest makes room for a newer one (counted,
/// `ringswim.dropped{reason="reconnect_candidate_evicted"}`).
pub const MAX_RECONNECT_CANDIDATES: usize = 4096;

/// Outgoing streams waiting for their outcome at most; beyond, a new one
/// fails at once (counted, `ringswim.dropped{reason="stream_table_full"}`):
/// a join's push/pull counts as an error of the join, a fallback ping is
/// not sent. Each waits `tcp_timeout` at most.
pub const MAX_PENDING_STREAMS: usize = 1024;

/// Go's `maxPushPullRequests`: an incoming push/pull is refused when this
/// many would be in progress with it, so at most 127 are.
pub const MAX_PUSH_PULL_REQUESTS: usize = 128;

/// The error reply to a push/pull beyond [`MAX_PUSH_PULL_REQUESTS`] (Go's
/// log line).
const TOO_MANY_PUSH_PULLS: &str = "too many pending push/pull requests";

impl<R> Core<R> {
    /// Members this node declared dead that it still tries to reconnect to
    /// ([`Extensions::reconnect_interval`]), by name, with their address.
    ///
    /// [`Extensions::reconnect_interval`]: crate::config::Extensions::reconnect_interval
    #[cfg(test)]
    pub(crate) fn reconnect_candidates(&self) -> impl Iterator<Item = (&str, SocketAddr)> + '_ {
        self.net.streams.failed.iter().map(|(name, (addr, _))| (name.as_str(), *addr))
    }

    /// The next stream to open, oldest first.
    pub fn poll_stream(&mut self) -> Option<StreamRequest> {
        self.net.streams.outgoing.pop_front()
    }

    /// Queues a stream request made at `now` with its deadline timer;
    /// false (and counted) when [`MAX_PENDING_STREAMS`] wait already.
    pub(super) fn open_stream(
        &mut self,
        to: SocketAddr,
        kind: StreamKind,
        payload: Payload,
        now: Time,
        deadline: Time,
    ) -> bool {
        let s = &mut self.net.streams;
        if s.pending.len() >= MAX_PENDING_STREAMS {
            self.metrics.count(DROPPED, "stream_table_full");
            return false;
        }
        s.next_id += 1;
        let id = s.next_id;
        s.pending.insert(id, PendingStream { to, kind, payload: Some(payload), opened: now });
        s.outgoing.push_back(StreamRequest { id, to, kind, deadline });
        self.timers.set(Timer::Stream(id), deadline);
        true
    }

    /// The driver is done with the reply [`Core::handle_stream`] returned
    /// for a push/pull from `from`: written, or the connection is gone.
    /// That frees its place among the [`MAX_PUSH_PULL_REQUESTS`] (Go holds
    /// it until `handleConn` returns); without this call the place is freed
    /// `tcp_timeout` after the request, Go's connection deadline. A driver
    /// that writes replies at once (the simulator) calls it straight after.
    /// Nothing happens when no push/pull from `from` holds a place.
    pub fn stream_reply_done(&mut self, from: SocketAddr) {
        let inbound = &mut self.net.streams.inbound;
        if let Some(i) = inbound.iter().position(|&(_, peer)| peer == from)
            && let Some((id, _)) = inbound.remove(i)
        {
            self.timers.cancel(&Timer::InboundPushPull(id));
        }
    }

    /// Takes a place for an incoming push/pull from `from` (Go
    /// `handleConn`'s `pushPullReq` count); false, counted, when Go would
    /// refuse it.
    fn admit_push_pull(&mut self, from: SocketAddr, now: Time) -> bool {
        let s = &mut self.net.streams;
        if s.inbound.len() + 1 >= MAX_PUSH_PULL_REQUESTS {
            self.metrics.count(STREAMS_REFUSED, "too_many_push_pulls");
            return false;
        }
        s.next_inbound += 1;
        s.inbound.push_back((s.next_inbound, from));
        self.timers.set(Timer::InboundPushPull(s.next_inbound), now + self.config.tcp_timeout);
        true
    }

    /// The place `id` of an incoming push/pull is freed at its deadline.
    pub(super) fn release_push_pull(&mut self, id: u64) {
        self.net.streams.inbound.retain(|&(place, _)| place != id);
    }
}

impl<R: Rng> Core<R> {
    /// Go `rawSendMsgStream`: compression (always kept), then encryption
    /// with the 5-byte header and the label as additional data, the nonce
    /// from the core's RNG.
    fn stream_encode(&mut self, msg: &Message<'_>) -> Vec<u8> {
        let keyring = self.net.keyring.load();
        let encryption = self.outgoing_encryption().map(|version| Encryption {
            keyring: &keyring,
            version,
            nonce: draw_nonce(&mut self.rng),
        });
        let opts = EncodeOptions {
            compression: self.config.enable_compression.then_some(Compression::Lzw),
            force_compression: true,
            crc: false,
            encryption,
            label: &self.config.label,
        };
        let mut out = Vec::new();
        // Errors are ours (a label over 255 bytes, refused by
        // `Config::validate`): an empty stream then, which the peer rejects.
        let _ = encode_stream(msg, &opts, &mut out);
        out
    }

    /// The driver connected stream `id` (from [`Core::poll_stream`]): the
    /// bytes to write on it, as they go on the stream (label, encryption,
    /// compression applied). A push/pull's state is encoded now. Empty for
    /// an unknown id or when asked twice.
    pub fn stream_connected(&mut self, id: StreamId) -> Vec<u8> {
        match self.take_payload(id) {
            Some(Payload::Ready(bytes)) => bytes,
            Some(Payload::PushPull { join }) => self.local_push_pull(join),
            None => Vec::new(),
        }
    }

    /// [`Core::stream_connected`] without the codec: a push/pull's state
    /// comes unencoded; the peer's core takes it in
    /// [`Core::handle_stream_content`]. No label, compression or encryption
    /// is applied to it.
    pub fn stream_connected_content(&mut self, id: StreamId) -> StreamContent {
        match self.take_payload(id) {
            Some(Payload::Ready(bytes)) => StreamContent::Bytes(bytes),
            Some(Payload::PushPull { join }) => StreamContent::PushPull(self.local_state_content(join)),
            None => StreamContent::Bytes(Vec::new()),
        }
    }

    fn take_payload(&mut self, id: StreamId) -> Option<Payload> {
        self.net.streams.pending.get_mut(&id).and_then(|p| p.payload.take())
    }

    /// Go `sendLocalState`'s content, unencoded.
    fn local_state_content(&mut self, join: bool) -> LocalState {
        let user_state = self.config.delegate.as_ref().map(|d| d.local_state(join)).unwrap_or_default();
        let state = LocalState { join, states: self.local_state(), user_state };
        self.samples.record(Sample::SizeLocal(state.wire_len()));
        state
    }

    /// Go `sendLocalState`: our member table and the delegate's state.
    fn local_push_pull(&mut self, join: bool) -> Vec<u8> {
        // Written from the table as it stands, nothing copied per member:
        // at thousands of members this is the biggest thing the core builds.
        let mut encoded = Vec::with_capacity(self.members.len() * PUSH_STATE_ESTIMATE);
        for m in &self.members {
            m.with_push_state(|state| state.write(&mut encoded));
        }
        let user = self.config.delegate.as_ref().map(|d| d.local_state(join)).unwrap_or_default();
        let push_pull = PushPull::from_encoded(join, self.members.len(), &encoded, &user);
        self.samples.record(Sample::SizeLocal(push_pull.plain_len()));
        self.stream_encode(&Message::PushPull(push_pull))
    }

    /// Sends `msg` to `to` as a user message over a stream (Go
    /// `SendReliable`). Go reads no reply: answer the request with whatever
    /// happened, it is ignored.
    pub fn send_reliable(&mut self, to: &crate::delegate::Node, msg: &[u8], now: Time) {
        let bytes = self.stream_encode(&Message::User(msg));
        let deadline = now + self.config.tcp_timeout;
        self.open_stream(to.address(), StreamKind::UserMessage, Payload::Ready(bytes), now, deadline);
    }

    /// Opens the TCP fallback ping of a probe (Go `sendPingAndWaitForAck`);
    /// false when the stream table is full.
    pub(super) fn open_fallback_ping(
        &mut self,
        to: SocketAddr,
        ping: &Message<'_>,
        seq_no: u32,
        now: Time,
        deadline: Time,
    ) -> bool {
        let bytes = self.stream_encode(ping);
        self.open_stream(to, StreamKind::FallbackPing { seq_no }, Payload::Ready(bytes), now, deadline)
    }

    /// Starts a join (Go `Join`): a push/pull with `join` set to each
    /// address, all at once (Go goes one by one). When every one has
    /// answered or failed, [`Effect::JoinCompleted`](super::Effect::JoinCompleted)
    /// says how many succeeded. Returns the join's number, which the effect
    /// carries.
    ///
    /// With [`Config::require_node_names`](crate::config::Config::require_node_names)
    /// every address fails at once with Go's error: an address alone names
    /// no node.
    ///
    /// After [`Core::leave`], a join first takes the node back: it is alive
    /// again under a new incarnation, above the one its leave was announced
    /// at, so every member takes the news over the left state. Go cannot
    /// rejoin after `Leave` (hashicorp/memberlist #140, #217).
    pub fn join(&mut self, addrs: &[SocketAddr], now: Time) -> u64 {
        if self.has_left() {
            self.come_back(now);
        }
        let s = &mut self.net.streams;
        s.next_join += 1;
        let join = s.next_join;
        if self.config.require_node_names {
            let errors = addrs.iter().map(|&to| (to, NODE_NAMES_REQUIRED.to_owned())).collect();
            s.joins.insert(join, JoinState { errors, ..JoinState::default() });
            self.finish_join(join);
            return join;
        }
        s.joins.insert(join, JoinState { remaining: addrs.len(), ..JoinState::default() });
        let deadline = now + self.config.tcp_timeout;
        for &to in addrs {
            let kind = StreamKind::PushPull { join: Some(join) };
            if !self.open_stream(to, kind, Payload::PushPull { join: true }, now, deadline)
                && let Some(j) = self.net.streams.joins.get_mut(&join)
            {
                j.remaining -= 1;
                j.errors.push((to, "too many pending streams".to_owned()));
            }
        }
        self.finish_join(join);
        join
    }

    fn finish_join(&mut self, join: u64) {
        let done = self.net.streams.joins.get(&join).is_some_and(|j| j.remaining == 0);
        if done && let Some(j) = self.net.streams.joins.remove(&join) {
            self.push_effect(super::Effect::JoinCompleted { join, contacted: j.contacted, errors: j.errors });
        }
    }

    /// Go `pushPull`: a push/pull with one random alive member.
    pub(crate) fn push_pull(&mut self, now: Time) {
        let me = &self.config.name;
        let peer =
            k_random_nodes(1, &self.members, |m| m.node.name == *me || m.state() != NodeState::Alive, &mut self.rng)
                .first()
                .map(|m| m.node.address());
        let Some(to) = peer else { return };
        self.push_pull_with(to, now);
    }

    /// A (non-join) push/pull with `to`: our state out, theirs merged.
    pub(super) fn push_pull_with(&mut self, to: SocketAddr, now: Time) {
        let deadline = now + self.config.tcp_timeout;
        self.open_stream(to, StreamKind::PushPull { join: None }, Payload::PushPull { join: false }, now, deadline);
    }

    /// The push/pull tick (Go `pushPullTrigger`): the interval grows with
    /// the cluster (Go `pushPullScale`).
    pub(super) fn push_pull_tick(&mut self, now: Time) {
        let interval = push_pull_scale(self.config.push_pull_interval, self.members.len());
        // A zero interval (set after `start`) stops the ticker rather than
        // firing it again at once, for ever.
        self.timers.set_or_cancel(Timer::PushPull, (!interval.is_zero()).then(|| now + interval));
        // Go's trigger waits out the stagger, then a full scaled interval,
        // before its first push/pull.
        if std::mem::replace(&mut self.net.streams.push_pull_staggered, true) {
            self.push_pull(now);
        }
    }

    /// The reply to (or failure of) a stream from [`Core::poll_stream`].
    /// Ids that no longer wait (timed out, answered) or never did are
    /// ignored and counted (`ringswim.streams.ignored{reason}`).
    pub fn handle_stream_reply(&mut self, id: StreamId, reply: Result<Vec<u8>, super::StreamError>, now: Time) {
        self.finish_stream(id, now, |core, kind| match reply {
            Ok(_) if !kind.expects_reply() => Ok(()),
            Ok(mut bytes) => core.read_reply(kind, &mut bytes, now),
            Err(err) => Err(format!("{err:?}")),
        });
    }

    /// [`Core::handle_stream_reply`] for a reply that may come unencoded
    /// (see [`StreamContent`]).
    pub fn handle_stream_reply_content(
        &mut self,
        id: StreamId,
        reply: Result<StreamContent, super::StreamError>,
        now: Time,
    ) {
        match reply {
            Ok(StreamContent::Bytes(bytes)) => self.handle_stream_reply(id, Ok(bytes), now),
            Err(err) => self.handle_stream_reply(id, Err(err), now),
            Ok(StreamContent::PushPull(remote)) => self.finish_stream(id, now, |core, kind| match kind {
                StreamKind::PushPull { join } => core.merge_local_state(&remote, join.is_some(), false, now),
                StreamKind::UserMessage => Ok(()),
                StreamKind::FallbackPing { .. } => Err("unexpected PushPull reply".to_owned()),
            }),
        }
    }

    /// Stream `id`'s deadline came without an outcome: it ends as
    /// [`StreamError::Timeout`](super::StreamError::Timeout), as if the
    /// driver had said so, and is counted.
    pub(super) fn stream_timed_out(&mut self, id: StreamId, now: Time) {
        let Some(pending) = self.net.streams.pending.get(&id) else { return };
        self.metrics.count(STREAMS_TIMED_OUT, pending.kind.name());
        // Not polled yet: the driver never sees it.
        self.net.streams.outgoing.retain(|r| r.id != id);
        self.handle_stream_reply(id, Err(super::StreamError::Timeout), now);
    }

    /// Ends stream `id` with what `outcome` makes of its reply: a join
    /// counts it, a fallback ping ends its probe stage. Ids that are not
    /// pending are counted and ignored.
    fn finish_stream(
        &mut self,
        id: StreamId,
        now: Time,
        outcome: impl FnOnce(&mut Self, StreamKind) -> Result<(), String>,
    ) {
        let Some(PendingStream { to, kind, opened, .. }) = self.net.streams.pending.remove(&id) else {
            let reason = if id <= self.net.streams.next_id { "late_reply" } else { "unknown_id" };
            self.metrics.count(STREAMS_IGNORED, reason);
            return;
        };
        self.timers.cancel(&Timer::Stream(id));
        let result = outcome(self, kind);
        if let StreamKind::PushPull { .. } = kind {
            self.samples.record(Sample::PushPullNode(now.saturating_since(opened)));
        }
        match kind {
            StreamKind::PushPull { join: Some(join) } => {
                if let Some(j) = self.net.streams.joins.get_mut(&join) {
                    j.remaining -= 1;
                    match result {
                        Ok(()) => j.contacted += 1,
                        Err(e) => j.errors.push((to, e)),
                    }
                }
                self.finish_join(join);
            }
            StreamKind::PushPull { join: None } | StreamKind::UserMessage => {}
            StreamKind::FallbackPing { seq_no } => self.fallback_result(seq_no, result.is_ok(), now),
        }
        debug_assert!(self.invariants());
    }

    /// Decodes a reply and acts on it: a push/pull is merged; a fallback
    /// ping needs an ack with its sequence number.
    fn read_reply(&mut self, kind: StreamKind, bytes: &mut [u8], now: Time) -> Result<(), String> {
        let mut decoder = std::mem::take(&mut self.net.streams.decoder);
        let result = self.read_reply_with(&mut decoder, kind, bytes, now);
        self.net.streams.decoder = decoder;
        result
    }

    fn read_reply_with(
        &mut self,
        decoder: &mut StreamDecoder,
        kind: StreamKind,
        bytes: &mut [u8],
        now: Time,
    ) -> Result<(), String> {
        let keyring = self.net.keyring.load();
        let msg = match decoder.decode(bytes, &self.net.inbound.options(&keyring)) {
            Ok(m) => m.message,
            Err(err) => {
                self.reject(err.reason());
                return Err(err.to_string());
            }
        };
        match (kind, msg) {
            (StreamKind::PushPull { join }, Message::PushPull(pp)) => {
                self.merge_push_pull(&pp, join.is_some(), false, now)
            }
            (StreamKind::FallbackPing { seq_no }, Message::Ack(ack)) if ack.seq_no == seq_no => Ok(()),
            (_, Message::Err(e)) => Err(format!("remote error: {}", e.error)),
            (_, other) => Err(format!("unexpected {:?} reply", other.message_type())),
        }
    }

    /// Go `mergeRemoteState` with the user state.
    ///
    /// What a merge teaches us is re-gossiped with the reduced budget of
    /// [`Extensions::merge_retransmit_mult`], except when a joiner's
    /// push/pull reaches us: we may be the only member that knows it.
    ///
    /// [`Extensions::merge_retransmit_mult`]: crate::config::Extensions::merge_retransmit_mult
    fn merge_push_pull(&mut self, pp: &PushPull<'_>, join: bool, from_joiner: bool, now: Time) -> Result<(), String> {
        self.samples.record(Sample::SizeRemote(pp.plain_len()));
        // The count is the peer's claim (bounded by the stream's length):
        // trust it only up to what a cluster of our size could need.
        let mut states: Vec<PushNodeState<'_>> =
            Vec::with_capacity(pp.node_count().min(self.members.len().saturating_mul(2) + 1024));
        states.extend(pp.states());
        self.merge_states(&states, pp.user_state, join, from_joiner, now)
    }

    /// [`Core::merge_push_pull`] for an unencoded push/pull.
    fn merge_local_state(
        &mut self,
        remote: &LocalState,
        join: bool,
        from_joiner: bool,
        now: Time,
    ) -> Result<(), String> {
        self.samples.record(Sample::SizeRemote(remote.wire_len()));
        let states: Vec<PushNodeState<'_>> = remote.states.iter().map(PushState::as_wire).collect();
        self.merge_states(&states, &remote.user_state, join, from_joiner, now)
    }

    fn merge_states(
        &mut self,
        states: &[PushNodeState<'_>],
        user_state: &[u8],
        join: bool,
        from_joiner: bool,
        now: Time,
    ) -> Result<(), String> {
        self.merge_budget = if from_joiner { None } else { self.config.extensions.merge_retransmit_mult };
        let merged = self.merge_remote_state(states, join, now).map_err(|e| e.to_string());
        self.merge_budget = None;
        merged?;
        if !user_state.is_empty()
            && let Some(d) = &self.config.delegate
        {
            d.merge_remote_state(user_state, join);
        }
        Ok(())
    }

    /// A stream a peer opened to us (Go `handleConn`): push/pull is answered
    /// with our state (sent before the peer's is merged, as Go does), a ping
    /// with an ack, a user message becomes an
    /// [`Effect::UserMessage`](super::Effect::UserMessage). Returns the
    /// reply to write back, if any; unreadable requests get an error reply.
    ///
    /// A push/pull holds one of the [`MAX_PUSH_PULL_REQUESTS`] places until
    /// [`Core::stream_reply_done`]; with none free it is refused with an
    /// error reply (Go closes the connection without one) and counted.
    pub fn handle_stream(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time) -> Option<Vec<u8>> {
        let mut decoder = std::mem::take(&mut self.net.streams.decoder);
        let reply = self.handle_stream_with(&mut decoder, from, bytes, now);
        self.net.streams.decoder = decoder;
        debug_assert!(self.invariants());
        reply
    }

    /// [`Core::handle_stream`] for a request that may come unencoded (see
    /// [`StreamContent`]): an unencoded push/pull is answered unencoded.
    pub fn handle_stream_content(
        &mut self,
        from: SocketAddr,
        content: StreamContent,
        now: Time,
    ) -> Option<StreamContent> {
        match content {
            StreamContent::Bytes(mut bytes) => self.handle_stream(from, &mut bytes, now).map(StreamContent::Bytes),
            StreamContent::PushPull(_) if !self.admit_push_pull(from, now) => {
                Some(StreamContent::Bytes(self.stream_encode(&Message::Err(ErrResp { error: TOO_MANY_PUSH_PULLS }))))
            }
            StreamContent::PushPull(remote) => {
                // Our state goes out before the peer's is merged, as on the wire.
                let reply = self.local_state_content(remote.join);
                // A refused merge (versions, merge delegate) is Go's log line.
                let _ = self.merge_local_state(&remote, remote.join, remote.join, now);
                if !remote.join {
                    self.note_served_push_pull(now);
                }
                debug_assert!(self.invariants());
                Some(StreamContent::PushPull(reply))
            }
        }
    }

    fn handle_stream_with(
        &mut self,
        decoder: &mut StreamDecoder,
        from: SocketAddr,
        bytes: &mut [u8],
        now: Time,
    ) -> Option<Vec<u8>> {
        let keyring = self.net.keyring.load();
        let msg = match decoder.decode(bytes, &self.net.inbound.options(&keyring)) {
            Ok(m) => m.message,
            Err(err) => {
                self.reject(err.reason());
                let text = err.to_string();
                return Some(self.stream_encode(&Message::Err(ErrResp { error: &text })));
            }
        };
        match msg {
            Message::PushPull(_) if !self.admit_push_pull(from, now) => {
                Some(self.stream_encode(&Message::Err(ErrResp { error: TOO_MANY_PUSH_PULLS })))
            }
            Message::PushPull(pp) => {
                let reply = self.local_push_pull(pp.join);
                // A refused merge (versions, merge delegate) is Go's log line.
                let _ = self.merge_push_pull(&pp, pp.join, pp.join, now);
                if !pp.join {
                    self.note_served_push_pull(now);
                }
                Some(reply)
            }
            Message::Ping(p) => {
                if !p.node.is_empty() && p.node != self.config.name {
                    self.reject("wrong_node");
                    return None;
                }
                Some(self.stream_encode(&Message::Ack(Ack { seq_no: p.seq_no, payload: &[] })))
            }
            Message::User(bytes) => {
                self.push_effect(super::Effect::UserMessage(bytes.to_vec()));
                None
            }
            other => {
                self.reject("unexpected_type");
                let text = format!("unexpected message type {}", other.message_type() as u8);
                Some(self.stream_encode(&Message::Err(ErrResp { error: &text })))
            }
        }
    }
}
