//! The network half of [`Core`]: packets in ([`Core::handle_packet`] /
//! [`Core::handle_message`], Go `net.go`'s `handleCommand` and handlers),
//! packets out (Go `sendMsg` / `rawSendMsgPacket`: bodies queued here, sealed
//! as `datagram.rs` says), and the
//! periodic protocol (Go `state.go`: `schedule`, `probe`, `probeNode`,
//! `gossip`) driven by [`Core::handle_timeout`].
//!
//! A child module of `core`, so that it shares [`Core`]'s fields.
//!
//! # Timing
//! Go's probe ticker runs at the fixed `probe_interval`; one probe lasts the
//! awareness-scaled interval, and a tick that comes meanwhile starts the next
//! probe as soon as it ends (Go's ticker buffers one tick and drops the
//! rest). Gossip ticks at `gossip_interval`, push/pull every
//! `push_pull_scale(push_pull_interval, n)`; each ticker starts after a
//! random stagger of up to one interval ([`Core::start`]).
//!
//! # Differences from Go 0.2.2 (none visible to a Go peer)
//! - Packets never exceed `udp_buffer_size`: the budget also counts the
//!   first part's length and the CRC header, which Go forgets (it can
//!   overshoot by 7 bytes).
//! - A packet holds at most [`MAX_COMPOUND_PARTS_FOR_GO`] parts
//!   (docs/go-behaviour.md §2); user broadcasts the delegate hands out beyond that wait for the
//!   next packet.
//! - Encryption nonces come from the core's seeded RNG, so a run replays
//!   byte for byte.
//! - [`Core::join`] contacts all addresses at once (Go: one after another).
//! - Undecodable packets, ping for another name, bad indirect targets and
//!   stream-only messages in packets are counted
//!   (`ringswim.packets.rejected{reason}` in [`Core::metrics`]), where Go
//!   logs.
//! - Relayed indirect pings, [`Core::ping`]s and queued datagrams are
//!   bounded ([`MAX_RELAYS`], [`MAX_PINGS`], [`MAX_QUEUED_TRANSMITS`]); Go's
//!   maps and channels are not.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::Core;
use super::datagram::{InboundRules, OutgoingPacket, PacketQueue};
use crate::delegate::{Node, NodeState};
use crate::swim::members::{ip_from_wire, ip_to_wire};
use crate::swim::metrics::{DROPPED, PACKETS_REJECTED, PROBES, Sample};
use crate::swim::timers::Timer;
use crate::swim::{Member, RandomPicks, Time, k_random_nodes, random_offset};
use crate::wire::frame::{
    self, COMPOUND_HEADER_OVERHEAD, COMPOUND_PART_OVERHEAD, CRC_HEADER_LEN, MAX_COMPOUND_PARTS_FOR_GO,
};
use crate::wire::message::{Accusation, Ack, IndirectPing, Message, Nack, Ping};
use crate::wire::{Error as WireError, PacketDecoder, SharedKeyring};

/// Go's `userMsgOverhead`: the type byte put in front of a user broadcast.
const USER_MSG_OVERHEAD: usize = 1;
/// Senders of stale accusations answered per probe interval at most
/// ([`Extensions::answer_stale_accusations`](crate::config::Extensions::answer_stale_accusations)),
/// each once. Honest traffic stays far below: after a suspicion of us
/// spreads through N members, about `budget` (16 at 1,000 members) relay
/// it to us again after our refutation, each from its own address, and a
/// member whose suspicion runs out sends one last-chance ping. A single
/// global allowance of 8 left those last-chance pings unanswered at 1,000
/// members with 10 % slow ones (87 healthy members declared dead in 240 s).
pub const STALE_ANSWERS_PER_PROBE_INTERVAL: usize = 256;

/// User messages kept for the next packet at most (a delegate hands over at
/// most one packet's worth per call).
const MAX_USER_CARRY: usize = 1024;

/// The most bytes one UDP datagram to `to` can carry: 65,507 over IPv4
/// (65,535 less the IPv4 and UDP headers), 65,527 over IPv6 (its payload
/// length field less the UDP header; no jumbograms).
pub fn max_udp_payload(to: SocketAddr) -> usize {
    match to {
        SocketAddr::V4(_) => 65_535 - 20 - 8,
        SocketAddr::V6(_) => 65_535 - 8,
    }
}

/// Datagrams that may wait for [`Core::poll_transmit`]; beyond, one is
/// dropped and counted (`ringswim.dropped{reason="transmit_queue_full"}`).
/// A driver that drains after every input never comes near: one input
/// makes at most a few hundred (the acks of a full compound of pings).
pub const MAX_QUEUED_TRANSMITS: usize = 4096;

/// Indirect pings relayed at once (Go keeps an ack handler per relayed
/// ping, without a bound); beyond, an indirect ping is dropped and counted
/// (`ringswim.dropped{reason="relay_table_full"}`). Each lasts
/// `probe_timeout`: a member of a 10,000-node cluster relays about three a
/// second.
pub const MAX_RELAYS: usize = 1024;

/// [`Core::ping`]s waiting for their ack at once; beyond, a ping completes
/// at once without a round trip and is counted
/// (`ringswim.dropped{reason="ping_table_full"}`).
pub const MAX_PINGS: usize = 1024;

/// The probe in progress (Go `probeNode`'s locals and its ack/nack channels).
#[derive(Clone, Debug)]
pub(super) struct Probe {
    seq_no: u32,
    /// The member probed, as it was when the probe started.
    node: Node,
    incarnation: u32,
    sent: Time,
    /// Whether the direct ping is still within `probe_timeout` (the
    /// `Timer::ProbeIndirect` is set); false once indirect pings went out.
    direct: bool,
    /// End of the (awareness-scaled) probe interval (`Timer::ProbeDeadline`):
    /// no ack by then means suspect.
    deadline: Time,
    expected_nacks: usize,
    nacks: usize,
    /// The TCP fallback ping.
    fallback: Fallback,
    /// The deadline came while the fallback was still out: its answer ends
    /// the probe (Go waits on `fallbackCh`).
    deadline_passed: bool,
}

/// State of a probe's TCP fallback ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fallback {
    /// Not sent (disabled, or the member speaks protocol < 3), or failed.
    None,
    /// Sent, no answer yet.
    Pending,
    /// The member acked over TCP.
    Contacted,
}

/// An indirect ping we relay for another member (Go `handleIndirectPing`'s
/// ack handler and nack timer).
#[derive(Clone, Debug)]
pub(super) struct Relay {
    requester: SocketAddr,
    seq_no: u32,
    /// Whether a nack goes out when its `Timer::Relay` (Go's
    /// `ProbeTimeout`) fires first.
    nack: bool,
}

/// The network state kept by [`Core`].
#[derive(Debug, Default)]
pub(super) struct Net {
    pub(super) decoder: PacketDecoder,
    /// How received packets and streams are read (label, verification).
    pub(super) inbound: InboundRules,
    /// User messages the delegate handed over that the last packet had no
    /// part left for (at most [`MAX_USER_CARRY`]).
    pub(super) user_carry: VecDeque<Arc<[u8]>>,
    /// The node's keyring, shared with its openers and sealers.
    pub(super) keyring: SharedKeyring,
    /// Packet bodies waiting to be sealed and sent.
    pub(super) outbox: PacketQueue,
    /// The message a packet starts with, encoded (reused).
    pub(super) first_part: Vec<u8>,
    /// The broadcasts piggybacked on a packet (reused).
    pub(super) piggyback: Vec<Arc<[u8]>>,
    pub(super) seq_no: u32,
    pub(super) probe_index: usize,
    pub(super) probe: Option<Probe>,
    /// A probe tick came while a probe ran (Go's ticker buffers one).
    pub(super) probe_tick_pending: bool,
    /// Indirect pings relayed, by the sequence number of our own ping (at
    /// most [`MAX_RELAYS`]).
    pub(super) relays: BTreeMap<u32, Relay>,
    /// [`Core::ping`]s waiting for their ack: seq → (name, sent) (at most
    /// [`MAX_PINGS`]).
    pub(super) pings: BTreeMap<u32, (String, Time)>,
    /// Push/pull, join and fallback-ping streams (see `streams.rs`).
    pub(super) streams: super::streams::Streams,
    /// Stale accusations answered in the current probe interval: when it
    /// started, and how many.
    pub(super) stale_answers: (Option<Time>, Vec<SocketAddr>),
}

impl Net {
    pub(super) fn new(config: &crate::config::Config, keyring: SharedKeyring) -> Net {
        Net { keyring, inbound: InboundRules::new(config), ..Net::default() }
    }
}

/// The first point of the grid `start + k * interval` after `now` (a Go
/// ticker drops the ticks it could not deliver).
fn next_tick(due: Time, interval: Duration, now: Time) -> Time {
    if interval.is_zero() {
        return now + Duration::from_secs(1);
    }
    let late = now.saturating_since(due).as_nanos();
    let k = late / interval.as_nanos() + 1;
    due + Duration::from_nanos(u64::try_from(k * interval.as_nanos()).unwrap_or(u64::MAX))
}

fn stagger<R: Rng>(interval: Duration, rng: &mut R) -> Duration {
    let nanos = usize::try_from(interval.as_nanos()).unwrap_or(usize::MAX);
    Duration::from_nanos(random_offset(nanos, rng) as u64)
}

impl<R> Core<R> {
    /// Counts a packet or message rejected on receipt.
    pub(super) fn reject(&self, reason: &'static str) {
        self.metrics.count(PACKETS_REJECTED, reason);
    }

    /// The sequence number of the probe in progress and the member probed.
    #[cfg(test)]
    pub(crate) fn probe_in_progress(&self) -> Option<(u32, &str)> {
        self.net.probe.as_ref().map(|p| (p.seq_no, p.node.name.as_str()))
    }

    pub(super) fn next_seq_no(&mut self) -> u32 {
        // Go: atomic.AddUint32, which wraps.
        self.net.seq_no = self.net.seq_no.wrapping_add(1);
        self.net.seq_no
    }

    fn label_overhead(&self) -> usize {
        if self.config.label.is_empty() { 0 } else { 2 + self.config.label.len() }
    }

    /// Go `getBroadcasts`: system broadcasts, then the delegate's user
    /// broadcasts in the space left, at most `max_count` in all.
    ///
    /// With [`Extensions::user_broadcast_share`] (ringswim) the user
    /// broadcasts come first, with a guaranteed share of the packet's bytes
    /// and parts (more when the system queue needs less), and the system
    /// broadcasts fill the rest: membership churn can no longer starve them
    /// (hashicorp/memberlist #299).
    ///
    /// [`Extensions::user_broadcast_share`]: crate::config::Extensions::user_broadcast_share
    fn all_broadcasts(&mut self, overhead: usize, limit: usize, max_count: usize, out: &mut Vec<Arc<[u8]>>) {
        let n = self.members.len();
        let share = usize::from(self.config.extensions.user_broadcast_share.min(100));
        let start = out.len();
        let used = |out: &[Arc<[u8]>]| -> usize { out[start..].iter().map(|m| m.len() + overhead).sum() };
        if share == 0 || self.config.delegate.is_none() {
            self.broadcasts.append_broadcasts(overhead, limit, n, max_count, out);
            let (used, taken) = (used(out), out.len() - start);
            self.user_broadcasts(overhead, limit.saturating_sub(used), max_count - taken, out);
            return;
        }
        let system_bytes = self.broadcasts.queued_bytes(overhead);
        let system_count = self.broadcasts.num_queued();
        let user_bytes = (limit * share / 100).max(limit.saturating_sub(system_bytes));
        let user_count = (max_count * share / 100).max(max_count.saturating_sub(system_count));
        self.user_broadcasts(overhead, user_bytes, user_count, out);
        let (used, taken) = (used(out), out.len() - start);
        self.broadcasts.append_broadcasts(overhead, limit.saturating_sub(used), n, max_count - taken, out);
    }

    /// Up to `max_count` user messages (each framed as a `user` message) in
    /// `avail` bytes, appended to `out`: first those a previous packet had
    /// no part left for, then the delegate's. The delegate cannot be told a
    /// count: what it hands over beyond `max_count` waits for the next
    /// packet rather than being lost (never more than 127 parts to a Go
    /// peer: docs/go-behaviour.md §2).
    fn user_broadcasts(&mut self, overhead: usize, avail: usize, max_count: usize, out: &mut Vec<Arc<[u8]>>) {
        let mut taken = 0;
        let mut left = avail;
        while taken < max_count
            && let Some(m) = self.net.user_carry.front()
            && m.len() + overhead <= left
        {
            left -= m.len() + overhead;
            out.extend(self.net.user_carry.pop_front());
            taken += 1;
        }
        if taken < max_count
            && left > overhead + USER_MSG_OVERHEAD
            && let Some(delegate) = &self.config.delegate
        {
            for msg in delegate.get_broadcasts(overhead + USER_MSG_OVERHEAD, left) {
                let mut buf = Vec::with_capacity(msg.len() + 1);
                buf.push(crate::wire::MessageType::User as u8);
                buf.extend_from_slice(&msg);
                if taken < max_count {
                    out.push(buf.into());
                    taken += 1;
                } else if self.net.user_carry.len() < MAX_USER_CARRY {
                    self.net.user_carry.push_back(buf.into());
                } else {
                    self.metrics.count(DROPPED, "user_carry_full");
                }
            }
        }
    }

    /// Whether a packet to `to` gets a CRC when the caller does not know
    /// the member: Go's `rawSendMsgPacket` looks the *host* up in its
    /// name-keyed map, which finds a member only when its name is its IP
    /// address; so does this.
    fn crc_by_host(&self, to: SocketAddr) -> bool {
        // The host is formatted on the stack: this runs for every reply.
        let mut host = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut host[..]);
        if write!(cursor, "{}", to.ip()).is_err() {
            return false;
        }
        let len = usize::try_from(cursor.position()).unwrap_or(0);
        std::str::from_utf8(&host[..len]).is_ok_and(|host| self.member(host).is_some_and(|m| m.node.pmax >= 5))
    }

    /// Bytes left for broadcasts in a packet of `udp_buffer_size` after the
    /// framing: compound header, label, encryption and CRC. (Go forgets the
    /// CRC header and the first part's length, and so can overshoot
    /// `udp_buffer_size` by 7 bytes; this never does.)
    fn packet_budget(&self, crc: bool) -> usize {
        let mut framing = COMPOUND_HEADER_OVERHEAD + self.label_overhead();
        if let Some(version) = self.outgoing_encryption() {
            framing += version.overhead();
        }
        if crc {
            framing += CRC_HEADER_LEN;
        }
        self.config.udp_buffer_size.saturating_sub(framing)
    }

    /// The longest user message [`Core::send_best_effort`] can send to
    /// `to`: a datagram of its own within `udp_buffer_size` and
    /// [`max_udp_payload`], after the label, encryption, CRC and the
    /// message's type byte (compression is not counted on: it may not
    /// shrink the message).
    pub fn user_message_limit(&self, to: SocketAddr, crc: bool) -> usize {
        let mut framing = USER_MSG_OVERHEAD + self.label_overhead();
        if let Some(version) = self.outgoing_encryption() {
            framing += version.overhead();
        }
        if crc {
            framing += CRC_HEADER_LEN;
        }
        self.config.udp_buffer_size.min(max_udp_payload(to)).saturating_sub(framing)
    }

    pub(super) fn local_source(&self) -> (Vec<u8>, u16) {
        let me = self.local();
        (ip_to_wire(me.node.addr), me.node.port)
    }
}

impl<R: Rng> Core<R> {
    /// Go `sendMsg`: `msg` with as many broadcasts piggybacked as fit in
    /// `udp_buffer_size`.
    pub(super) fn send_msg(&mut self, to: SocketAddr, msg: &Message<'_>) {
        let crc = self.crc_by_host(to);
        self.send_msg_crc(to, msg, crc);
    }

    fn send_msg_crc(&mut self, to: SocketAddr, msg: &Message<'_>, crc: bool) {
        // Encoded into, and broadcasts gathered in, buffers kept for reuse.
        let mut first = std::mem::take(&mut self.net.first_part);
        let mut parts = std::mem::take(&mut self.net.piggyback);
        first.clear();
        msg.encode(&mut first);
        let avail = self.packet_budget(crc).saturating_sub(COMPOUND_PART_OVERHEAD + first.len());
        self.all_broadcasts(COMPOUND_PART_OVERHEAD, avail, MAX_COMPOUND_PARTS_FOR_GO - 1, &mut parts);
        self.queue_packet(to, crc, std::iter::once(first.as_slice()).chain(parts.iter().map(|p| &p[..])));
        parts.clear();
        self.net.piggyback = parts;
        self.net.first_part = first;
    }

    /// Go `rawSendMsgPacket` for encoded messages: one packet of `parts`.
    pub(super) fn raw_send<M: AsRef<[u8]>>(&mut self, to: SocketAddr, parts: &[M], crc: bool) {
        self.queue_packet(to, crc, parts.iter().map(AsRef::as_ref));
    }

    /// Queues a packet to `to` whose body is `parts` (encoded messages): the
    /// message itself when there is one, else a compound of them. The
    /// layers (compression, CRC for peers speaking protocol 5, encryption,
    /// label) are applied when it is sealed ([`Core::poll_transmit`], or a
    /// [`Sealer`](super::Sealer) after [`Core::poll_packet`]).
    fn queue_packet<'p>(&mut self, to: SocketAddr, crc: bool, parts: impl Iterator<Item = &'p [u8]> + Clone) {
        if self.net.outbox.len() >= MAX_QUEUED_TRANSMITS {
            self.metrics.count(DROPPED, "transmit_queue_full");
            return;
        }
        let packet = OutgoingPacket { to, layers: self.packet_layers(crc) };
        // Errors here are ours (a part over 64 KiB): nothing is sent, as in
        // Go.
        let _ = self.net.outbox.push(packet, |body| {
            let mut single = parts.clone();
            match (single.next(), single.next()) {
                (Some(only), None) => {
                    body.extend_from_slice(only);
                    Ok(())
                }
                _ => frame::write_compound_parts(body, parts),
            }
        });
    }

    /// Sends `msg` to `to` as a user message in a datagram of its own (Go
    /// `SendBestEffort`; no broadcasts piggybacked).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`](super::Error::MessageTooLarge) when the
    /// datagram would not fit `udp_buffer_size` (with the label, encryption
    /// and CRC this peer gets) or a UDP datagram to the peer's address
    /// family ([`max_udp_payload`]); nothing is sent. Go 0.2.2 sends it
    /// anyway, and the peer's read buffer or the kernel drops it silently
    /// (hashicorp/memberlist #348).
    /// [`Error::NodeNameRequired`](super::Error::NodeNameRequired) when
    /// `to` has no name and `require_node_names` is set (checked first, as
    /// Go's `rawSendMsgPacket` does).
    pub fn send_best_effort(&mut self, to: &Node, msg: &[u8]) -> Result<(), super::Error> {
        if self.config.require_node_names && to.name.is_empty() {
            return Err(super::Error::NodeNameRequired);
        }
        let crc = to.pmax >= 5;
        let limit = self.user_message_limit(to.address(), crc);
        if msg.len() > limit {
            return Err(super::Error::MessageTooLarge { len: msg.len(), limit });
        }
        let mut first = std::mem::take(&mut self.net.first_part);
        first.clear();
        Message::User(msg).encode(&mut first);
        self.queue_packet(to.address(), crc, std::iter::once(first.as_slice()));
        self.net.first_part = first;
        Ok(())
    }

    /// Arms the periodic protocol (Go `schedule`): the probe, gossip and
    /// push/pull tickers, each after a random stagger of up to one interval
    /// (the push/pull, as Go's, then waits one more scaled interval before
    /// its first exchange). Until then the core only answers.
    ///
    /// Go's probe and gossip tickers start at `schedule` and the stagger only
    /// delays the first read, so a Go node's ticks fall on its own start time
    /// plus whole intervals; nodes started together in one process tick
    /// together. Here the stagger sets the phase, which is what nodes started
    /// at different moments get.
    pub fn start(&mut self, now: Time) {
        if self.timers.get(&Timer::ProbeTick).is_none() && !self.config.probe_interval.is_zero() {
            let s = stagger(self.config.probe_interval, &mut self.rng);
            self.timers.set(Timer::ProbeTick, now + s);
        }
        if self.timers.get(&Timer::Gossip).is_none()
            && !self.config.gossip_interval.is_zero()
            && self.config.gossip_nodes > 0
        {
            let s = stagger(self.config.gossip_interval, &mut self.rng);
            self.timers.set(Timer::Gossip, now + s);
        }
        if self.timers.get(&Timer::PushPull).is_none() && !self.config.push_pull_interval.is_zero() {
            let s = stagger(self.config.push_pull_interval, &mut self.rng);
            self.timers.set(Timer::PushPull, now + s);
            self.net.streams.push_pull_staggered = false;
        }
        let reconnect = self.config.extensions.reconnect_interval;
        if self.timers.get(&Timer::Reconnect).is_none() && !reconnect.is_zero() {
            let s = stagger(reconnect, &mut self.rng);
            self.timers.set(Timer::Reconnect, now + s);
        }
    }

    /// Stops the periodic protocol (Go `deschedule`); a probe in progress is
    /// dropped. Suspicions, relays, pings and streams run on.
    pub fn stop(&mut self) {
        for timer in [Timer::ProbeTick, Timer::Gossip, Timer::PushPull, Timer::NewsPushPull, Timer::Reconnect] {
            self.timers.cancel(&timer);
        }
        self.end_probe();
        self.net.probe_tick_pending = false;
    }

    /// A datagram from `from` (Go `ingestPacket` + `handleCommand`): an
    /// [`Opener`](super::Opener)'s work and [`Core::handle_message`] in one
    /// step. Bad packets and bad compound parts are dropped and counted
    /// (`ringswim.packets.rejected{reason}` in [`Core::metrics`]); the good parts of a compound are still
    /// handled, in order. `bytes` is decrypted in place.
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &mut [u8], now: Time) {
        let mut decoder = std::mem::take(&mut self.net.decoder);
        let keyring = self.net.keyring.load();
        match self.net.inbound.open(&mut decoder, &keyring, bytes) {
            Err(err) => self.reject(err.reason()),
            Ok(packet) => {
                for msg in packet.messages() {
                    match msg {
                        Ok(msg) => self.dispatch_message(from, msg, now),
                        Err(err) => self.reject(err.reason()),
                    }
                }
            }
        }
        self.net.decoder = decoder;
        debug_assert!(self.invariants());
    }

    /// One message `from` a peer, already opened and decoded (by an
    /// [`Opener`](super::Opener) on any thread; Go `handleCommand`'s
    /// switch): pings are acked, acks and nacks end probes, alive / suspect
    /// / dead change the member table, a user message becomes an
    /// [`Effect::UserMessage`](super::Effect::UserMessage). Stream-only
    /// messages (push/pull, error replies) are counted in
    /// (`ringswim.packets.rejected`) as `unexpected_type` and dropped.
    pub fn handle_message(&mut self, from: SocketAddr, msg: Message<'_>, now: Time) {
        self.dispatch_message(from, msg, now);
        debug_assert!(self.invariants());
    }

    fn dispatch_message(&mut self, from: SocketAddr, msg: Message<'_>, now: Time) {
        match msg {
            Message::Ping(p) => self.handle_ping(from, &p, now),
            Message::IndirectPing(ind) => self.handle_indirect_ping(from, &ind, now),
            Message::Ack(ack) => self.handle_ack(&ack, now),
            Message::Nack(nack) => self.handle_nack(nack),
            // Go `handleAlive`'s `ensureCanConnect`: the sender must be
            // allowed, as well as the address in the message.
            Message::Alive(_) if self.config.ip_allowed(from.ip()).is_err() => self.reject("cidr_blocked"),
            Message::Alive(a) => self.handle_alive(&a, now),
            Message::Suspect(s) => {
                self.answer_stale_accusation(from, &s, now);
                self.handle_suspect(&s, now);
            }
            Message::Dead(d) => {
                self.answer_stale_accusation(from, &d, now);
                self.handle_dead(&d, now);
            }
            Message::User(bytes) => self.push_effect(super::Effect::UserMessage(bytes.to_vec())),
            Message::PushPull(_) | Message::Err(_) => {
                self.reject(WireError::UnexpectedMessageType(msg.message_type() as u8).reason());
            }
        }
    }

    /// Where to answer a ping or indirect ping: its source fields when both
    /// are set, else the packet's sender (Go).
    fn reply_addr(from: SocketAddr, source_addr: &[u8], source_port: u16) -> SocketAddr {
        match ip_from_wire(source_addr) {
            Some(ip) if source_port > 0 => SocketAddr::new(ip, source_port),
            _ => from,
        }
    }

    /// Go `RequireNodeNames`: whether a peer among `names` is unnamed while
    /// names are required; the message that asked for the send is then
    /// dropped and counted (Go logs `errNodeNamesAreRequired`).
    fn refuses_unnamed(&mut self, names: &[&str]) -> bool {
        let refused = self.config.require_node_names && names.iter().any(|n| n.is_empty());
        if refused {
            self.reject("node_name_required");
        }
        refused
    }

    /// Go `handlePing`: ack with the ping delegate's payload, unless the ping
    /// names another node.
    fn handle_ping(&mut self, from: SocketAddr, p: &Ping<'_>, now: Time) {
        if !p.node.is_empty() && p.node != self.config.name {
            self.reject("wrong_node");
            return;
        }
        if self.refuses_unnamed(&[p.source_node]) {
            return;
        }
        let payload = self.config.ping.as_ref().map(|d| d.ack_payload()).unwrap_or_default();
        let to = Self::reply_addr(from, p.source_addr, p.source_port);
        self.send_msg(to, &Message::Ack(Ack { seq_no: p.seq_no, payload: &payload }));
        self.push_pull_when_alone(p.source_node, to, now);
    }

    /// Go `handleIndirectPing`: ping the target under a sequence number of
    /// ours, relay its ack, and nack after `probe_timeout` if asked.
    fn handle_indirect_ping(&mut self, from: SocketAddr, ind: &IndirectPing<'_>, now: Time) {
        let port = if self.config.protocol_version < 2 || ind.port == 0 { self.config.bind_port } else { ind.port };
        let Some(ip) = ip_from_wire(ind.target) else {
            self.reject("bad_address");
            return;
        };
        // Go would not send the ping (no target name) nor the ack and nack
        // back (no requester name).
        if self.refuses_unnamed(&[ind.node, ind.source_node]) {
            return;
        }
        if self.net.relays.len() >= MAX_RELAYS {
            self.metrics.count(DROPPED, "relay_table_full");
            return;
        }
        let seq_no = self.next_seq_no();
        let requester = Self::reply_addr(from, ind.source_addr, ind.source_port);
        self.net.relays.insert(seq_no, Relay { requester, seq_no: ind.seq_no, nack: ind.nack });
        self.timers.set(Timer::Relay(seq_no), now + self.config.probe_timeout);
        let (addr, source_port) = self.local_source();
        let name = self.config.name.clone();
        let ping = Ping { seq_no, node: ind.node, source_addr: &addr, source_port, source_node: &name };
        self.send_msg(SocketAddr::new(ip, port), &Message::Ping(ping));
    }

    /// Go `handleAck` → `invokeAckHandler`: a relayed ping's ack goes back to
    /// the requester; our probe's ack ends the probe as a success.
    fn handle_ack(&mut self, ack: &Ack<'_>, now: Time) {
        if let Some(relay) = self.net.relays.remove(&ack.seq_no) {
            self.timers.cancel(&Timer::Relay(ack.seq_no));
            self.send_msg(relay.requester, &Message::Ack(Ack { seq_no: relay.seq_no, payload: &[] }));
            return;
        }
        if let Some((node, sent)) = self.net.pings.remove(&ack.seq_no) {
            self.timers.cancel(&Timer::Ping(ack.seq_no));
            let rtt = Some(now.saturating_since(sent));
            self.push_effect(super::Effect::PingCompleted { seq_no: ack.seq_no, node, rtt });
            return;
        }
        if self.net.probe.as_ref().is_none_or(|p| p.seq_no != ack.seq_no) {
            return;
        }
        let Some(probe) = self.finish_probe(now) else { return };
        // Go reports the round trip only for an ack within the probe timeout.
        if probe.direct
            && let Some(ping) = &self.config.ping
        {
            ping.notify_ping_complete(&probe.node, now.saturating_since(probe.sent), ack.payload);
        }
        self.awareness.apply_delta(-1);
        self.after_probe(now);
    }

    /// Go `handleNack` → `invokeNackHandler`.
    fn handle_nack(&mut self, nack: Nack) {
        self.metrics.count(PROBES, "nack_received");
        if let Some(p) = self.net.probe.as_mut().filter(|p| p.seq_no == nack.seq_no) {
            // Go's nack channel holds IndirectChecks + 1.
            p.nacks = (p.nacks + 1).min(self.config.indirect_checks + 1);
        }
    }

    /// A network timer (every one but suspicions) set for `when` is due at
    /// `now` (see [`Core::handle_timeout`]).
    pub(super) fn handle_net_timer(&mut self, timer: Timer, when: Time, now: Time) {
        match timer {
            Timer::Relay(seq) => {
                if let Some(relay) = self.net.relays.remove(&seq)
                    && relay.nack
                {
                    self.metrics.count(PROBES, "nack_sent");
                    self.send_msg(relay.requester, &Message::Nack(Nack { seq_no: relay.seq_no }));
                }
            }
            Timer::Ping(seq_no) => {
                if let Some((node, _)) = self.net.pings.remove(&seq_no) {
                    self.push_effect(super::Effect::PingCompleted { seq_no, node, rtt: None });
                }
            }
            Timer::Stream(id) => self.stream_timed_out(id, now),
            Timer::InboundPushPull(id) => self.release_push_pull(id),
            Timer::ProbeIndirect => self.indirect_probe(now),
            Timer::ProbeDeadline => self.probe_deadline(now),
            Timer::ProbeTick => {
                self.timers.set(Timer::ProbeTick, next_tick(when, self.config.probe_interval, now));
                if self.net.probe.is_some() {
                    self.net.probe_tick_pending = true;
                } else {
                    self.probe(now);
                }
            }
            Timer::Gossip => {
                self.timers.set(Timer::Gossip, next_tick(when, self.config.gossip_interval, now));
                self.samples.record(Sample::Gossip(now.saturating_since(when)));
                self.gossip(now);
            }
            Timer::PushPull => self.push_pull_tick(now),
            Timer::NewsPushPull => self.news_push_pull_tick(now),
            Timer::Reconnect => self.reconnect_tick(now),
            Timer::Suspicion(_) => {}
        }
    }

    /// Ends the probe in progress, if any, and its timers.
    fn end_probe(&mut self) -> Option<Probe> {
        self.timers.cancel(&Timer::ProbeIndirect);
        self.timers.cancel(&Timer::ProbeDeadline);
        self.net.probe.take()
    }

    /// The probe in progress came to its end (not dropped): ended, and
    /// timed as Go's `probeNode`.
    fn finish_probe(&mut self, now: Time) -> Option<Probe> {
        let probe = self.end_probe()?;
        self.samples.record(Sample::ProbeNode(now.saturating_since(probe.sent)));
        Some(probe)
    }

    /// A probe ended: the tick that came meanwhile starts the next one.
    fn after_probe(&mut self, now: Time) {
        if std::mem::take(&mut self.net.probe_tick_pending) {
            self.probe(now);
        }
    }

    /// Go `probe`: the next member in probe order that is neither us nor
    /// dead or left; each wrap-around reaps and reshuffles the list
    /// ([`Core::reset_nodes`]).
    pub(crate) fn probe(&mut self, now: Time) {
        let mut checked = 0;
        loop {
            if checked >= self.members.len() {
                return;
            }
            if self.net.probe_index >= self.members.len() {
                self.reset_nodes(now);
                self.net.probe_index = 0;
                checked += 1;
                continue;
            }
            let idx = self.net.probe_index;
            self.net.probe_index += 1;
            let m = &self.members[idx];
            if self.is_local(&m.node.name) || m.is_dead_or_left() {
                checked += 1;
                continue;
            }
            self.probe_node(idx, now);
            return;
        }
    }

    /// Pings `name` at `to` once (Go `Ping`): an
    /// [`Effect::PingCompleted`](super::Effect::PingCompleted) with the round
    /// trip time, or with none when no ack came within `probe_interval`.
    /// Returns the ping's sequence number, which the effect carries.
    ///
    /// With [`MAX_PINGS`] waiting already, nothing is sent and the effect
    /// comes at once, without a round trip (counted,
    /// `ringswim.dropped{reason="ping_table_full"}`).
    pub fn ping(&mut self, name: &str, to: SocketAddr, now: Time) -> u32 {
        let seq_no = self.next_seq_no();
        if self.net.pings.len() >= MAX_PINGS {
            self.metrics.count(DROPPED, "ping_table_full");
            self.push_effect(super::Effect::PingCompleted { seq_no, node: name.to_owned(), rtt: None });
            return seq_no;
        }
        let (addr, source_port) = self.local_source();
        let me = self.config.name.clone();
        let ping = Ping { seq_no, node: name, source_addr: &addr, source_port, source_node: &me };
        self.send_msg(to, &Message::Ping(ping));
        self.net.pings.insert(seq_no, (name.to_owned(), now));
        self.timers.set(Timer::Ping(seq_no), now + self.config.probe_interval);
        seq_no
    }

    /// Probes the member called `name` now (Go `probeNodeByAddr`, which
    /// Go's tests use), replacing any probe in progress. Does nothing for an
    /// unknown name.
    #[cfg(test)]
    pub(crate) fn probe_node_by_name(&mut self, name: &str, now: Time) {
        if let Some(idx) = self.position(name) {
            self.probe_node(idx, now);
        }
    }

    /// Go `probeNode`, up to the direct ping: the rest happens in
    /// [`Core::handle_timeout`] and on ack / nack.
    fn probe_node(&mut self, idx: usize, now: Time) {
        let interval = self.awareness.scale_timeout(self.config.probe_interval);
        if interval > self.config.probe_interval {
            self.metrics.count(crate::swim::metrics::GO_DEGRADED, "probe");
        }
        let seq_no = self.next_seq_no();
        let m = &self.members[idx];
        let (node, incarnation, state) = (m.node.clone(), m.incarnation, m.state());
        let (addr, source_port) = self.local_source();
        let me = self.config.name.clone();
        let ping = Message::Ping(Ping { seq_no, node: &node.name, source_addr: &addr, source_port, source_node: &me });
        let to = node.address();
        if state == NodeState::Alive {
            // Go's `encodeAndSendMsg`: CRC only through the host lookup.
            self.send_msg(to, &ping);
        } else {
            // Tack on the suspicion, so the member can refute it at once.
            let suspect = Message::Suspect(Accusation { incarnation, node: &node.name, from: &me });
            self.raw_send(to, &[ping.to_vec(), suspect.to_vec()], node.pmax >= 5);
        }
        let deadline = now + interval;
        self.net.probe = Some(Probe {
            seq_no,
            node,
            incarnation,
            sent: now,
            direct: true,
            deadline,
            expected_nacks: 0,
            nacks: 0,
            fallback: Fallback::None,
            deadline_passed: false,
        });
        self.timers.set(Timer::ProbeIndirect, now + self.config.probe_timeout);
        self.timers.set(Timer::ProbeDeadline, deadline);
    }

    /// Go `probeNode` after `ProbeTimeout` without an ack: ask up to
    /// `indirect_checks` alive members to ping the target (with a nack from
    /// those speaking protocol 4 or later).
    fn indirect_probe(&mut self, now: Time) {
        let Some(probe) = self.net.probe.as_mut() else { return };
        probe.direct = false;
        let (seq_no, target) = (probe.seq_no, probe.node.clone());
        let me = self.config.name.clone();
        let peers: Vec<(SocketAddr, u8)> = k_random_nodes(
            self.config.indirect_checks,
            &self.members,
            |m| m.node.name == me || m.node.name == target.name || m.state() != NodeState::Alive,
            &mut self.rng,
        )
        .into_iter()
        .map(|m| (m.node.address(), m.node.pmax))
        .collect();
        let (addr, source_port) = self.local_source();
        let target_addr = ip_to_wire(target.addr);
        let mut expected = 0;
        for (to, pmax) in peers {
            let nack = pmax >= 4;
            expected += usize::from(nack);
            let ind = IndirectPing {
                seq_no,
                target: &target_addr,
                port: target.port,
                node: &target.name,
                nack,
                source_addr: &addr,
                source_port,
                source_node: &me,
            };
            self.send_msg(to, &Message::IndirectPing(ind));
            self.metrics.count(PROBES, "indirect_ping_sent");
        }
        if let Some(p) = self.net.probe.as_mut() {
            p.expected_nacks = expected;
        }

        // Go: a TCP ping too, to any member speaking protocol 3 or later,
        // with the probe's deadline.
        let disabled = self.config.disable_tcp_pings
            || self.config.disable_tcp_pings_for_node.as_ref().is_some_and(|f| f(&target.name));
        if !disabled && target.pmax >= 3 {
            let Some(deadline) = self.net.probe.as_ref().map(|p| p.deadline) else { return };
            let ping = Ping { seq_no, node: &target.name, source_addr: &addr, source_port, source_node: &me };
            let opened = self.open_fallback_ping(target.address(), &Message::Ping(ping), seq_no, now, deadline);
            if let Some(p) = self.net.probe.as_mut().filter(|_| opened) {
                p.fallback = Fallback::Pending;
            }
        }
    }

    /// The probe interval ended without an ack: a TCP contact saves the
    /// member, a fallback still out is waited for, else it failed.
    fn probe_deadline(&mut self, now: Time) {
        let Some(p) = self.net.probe.as_mut() else { return };
        match p.fallback {
            Fallback::Pending => p.deadline_passed = true,
            Fallback::Contacted => self.probe_contacted(now),
            Fallback::None => self.probe_failed(now),
        }
    }

    /// Go: "Was able to connect to … but other probes failed": no suspicion,
    /// and the probe counts as a success for awareness.
    fn probe_contacted(&mut self, now: Time) {
        self.finish_probe(now);
        self.awareness.apply_delta(-1);
        self.after_probe(now);
    }

    /// The answer of the TCP fallback ping of probe `seq_no`.
    pub(super) fn fallback_result(&mut self, seq_no: u32, contacted: bool, now: Time) {
        let Some(p) = self.net.probe.as_mut().filter(|p| p.seq_no == seq_no) else { return };
        p.fallback = if contacted { Fallback::Contacted } else { Fallback::None };
        if p.deadline_passed {
            self.probe_deadline(now);
        }
    }

    /// Go `probeNode`'s end without an ack: awareness from the missed nacks
    /// (or +1 with nobody to nack), then suspect the member.
    fn probe_failed(&mut self, now: Time) {
        let Some(probe) = self.finish_probe(now) else { return };
        let delta = if probe.expected_nacks > 0 { probe.expected_nacks.saturating_sub(probe.nacks) } else { 1 };
        self.awareness.apply_delta(i32::try_from(delta).unwrap_or(i32::MAX));
        let me = self.config.name.clone();
        let s = Accusation { incarnation: probe.incarnation, node: &probe.node.name, from: &me };
        self.suspect_node(&s, now);
        self.after_probe(now);
    }

    /// Go `gossip`: up to `gossip_nodes` random members (alive, suspect, or
    /// dead for at most `gossip_to_the_dead_time`) each get one packet of
    /// broadcasts, until the queues run dry.
    pub(crate) fn gossip(&mut self, now: Time) {
        let dead_time = self.config.gossip_to_the_dead_time;
        // Targets are drawn one at a time: a round stops at the first with
        // nothing to send (a quiet cluster's every round) after one draw.
        let mut picks = RandomPicks::new(self.config.gossip_nodes);
        let mut msgs = std::mem::take(&mut self.net.piggyback);
        loop {
            let me = &self.config.name;
            let excluded = |m: &Member| {
                m.node.name == *me
                    || match m.state() {
                        NodeState::Alive | NodeState::Suspect => false,
                        NodeState::Dead => now.saturating_since(m.state_change) > dead_time,
                        NodeState::Left => true,
                    }
            };
            let Some(idx) = picks.next(&self.members, excluded, &mut self.rng) else { break };
            let (to, crc) = (self.members[idx].node.address(), self.members[idx].node.pmax >= 5);
            let avail = self.packet_budget(crc);
            self.all_broadcasts(COMPOUND_PART_OVERHEAD, avail, MAX_COMPOUND_PARTS_FOR_GO, &mut msgs);
            if msgs.is_empty() {
                break;
            }
            self.raw_send(to, &msgs, crc);
            msgs.clear();
        }
        self.net.piggyback = msgs;
    }
}
