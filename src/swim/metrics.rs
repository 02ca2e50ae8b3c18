//! The one metrics hook of the core: every packet rejected, every entry a
//! bounded queue or table had no room for, every stream refused or timed
//! out, counted by a stable `(metric, reason)` name.
//!
//! The names follow the `ringswim.packets.rejected{reason}` style: a
//! metric name ([`PACKETS_REJECTED`], [`DROPPED`], [`STREAMS_REFUSED`],
//! [`STREAMS_TIMED_OUT`], [`STREAMS_IGNORED`], [`PROBES`]) with one label. A driver
//! exports [`Metrics::iter`] to its metrics system as it likes (Go's
//! go-metrics counters, Prometheus, logs).
//!
//! [`Metrics`] is a shared handle (counters are atomics behind an `Arc`):
//! the core counts into it, and the driver clones it for what it runs off
//! the core's thread ([`HandoffQueue`](super::HandoffQueue)), so there is one
//! set of counters for the whole node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Packets and messages dropped on receipt (Go logs them). Reasons: every
/// [`wire::Error::reason`](crate::wire::Error::reason) name, plus
/// `wrong_node` (a ping for another node name, which Go drops),
/// `bad_address` (an indirect ping whose target is not an address),
/// `cidr_blocked` (an alive message from a sender outside
/// `cidrs_allowed`), `node_name_required` (a ping or indirect ping that
/// names no source or target, under `require_node_names`),
/// `bad_vsn` (an alive with malformed versions), `implausible_incarnation`
/// (an incarnation above [`MAX_INCARNATION`](super::MAX_INCARNATION) or an
/// accusation above [`MAX_ACCUSED_INCARNATION`](super::MAX_ACCUSED_INCARNATION)),
/// `incarnation_exhausted` (a refutation that cannot beat the accusation)
/// and `stale_accusation_unanswered` (a stale accusation about us from a
/// sender already answered in this probe interval, or beyond
/// [`STALE_ANSWERS_PER_PROBE_INTERVAL`](super::STALE_ANSWERS_PER_PROBE_INTERVAL)).
pub const PACKETS_REJECTED: &str = "ringswim.packets.rejected";

/// Entries dropped because a bounded queue or table was full, or removed
/// before their time. Reasons:
/// - `transmit_queue_full`: a datagram, when [`MAX_QUEUED_TRANSMITS`](super::MAX_QUEUED_TRANSMITS)
///   wait for [`Core::poll_transmit`](super::Core::poll_transmit);
/// - `effect_queue_full`: an effect, when the driver has not drained
///   [`Core::effect_bound`](super::Core::effect_bound) of them;
/// - `relay_table_full`: an indirect ping, when [`MAX_RELAYS`](super::MAX_RELAYS)
///   are being relayed;
/// - `ping_table_full`: a [`Core::ping`](super::Core::ping), when
///   [`MAX_PINGS`](super::MAX_PINGS) wait for their ack;
/// - `stream_table_full`: an outgoing stream, when
///   [`MAX_PENDING_STREAMS`](super::MAX_PENDING_STREAMS) wait for their outcome;
/// - `user_carry_full`: a user broadcast the delegate handed over beyond
///   what one packet and the carry (1,024) hold;
/// - `handoff_queue_full`: a decoded message, when `handoff_queue_depth`
///   wait in the [`HandoffQueue`](super::HandoffQueue) (Go's "handler queue
///   full, dropping message");
/// - `reconnect_candidate_evicted`: the oldest reconnect candidate, to make
///   room ([`MAX_RECONNECT_CANDIDATES`](super::MAX_RECONNECT_CANDIDATES));
/// - `broadcast_of_reaped_member`: news still queued about a member the
///   table reaps.
pub const DROPPED: &str = "ringswim.dropped";

/// Go memberlist's `memberlist.msg.alive`, `.suspect`, `.dead`: a member's
/// state taken from an alive message (or our own refutation), a member
/// marked suspect, a member marked dead or left, counted where Go counts
/// them (`state.go`). The full Go name is the metric and the reason joined
/// by a dot.
pub const GO_MSG: &str = "memberlist.msg";

/// Go's `memberlist.degraded.probe` (a probe run with a stretched interval:
/// our health score is above 0) and `memberlist.degraded.timeout` (a
/// suspicion ran out with fewer confirmations than it expected).
pub const GO_DEGRADED: &str = "memberlist.degraded";

/// Incoming streams refused. Reasons: `too_many_push_pulls` (Go's
/// `maxPushPullRequests`, [`MAX_PUSH_PULL_REQUESTS`](super::MAX_PUSH_PULL_REQUESTS));
/// `too_many_connections` (counted by the engine, not the core: a
/// connection closed because the node held
/// [`MAX_INBOUND_CONNECTIONS`](crate::engine::MAX_INBOUND_CONNECTIONS)
/// unfinished inbound connections; Go bounds none).
pub const STREAMS_REFUSED: &str = "ringswim.streams.refused";

/// Outgoing streams the driver did not answer by their deadline, which the
/// core then ended itself. Reasons: the [`StreamKind::name`](super::StreamKind::name)s
/// `push_pull`, `fallback_ping`, `user_message`.
pub const STREAMS_TIMED_OUT: &str = "ringswim.streams.timed_out";

/// Stream outcomes the core ignored. Reasons: `late_reply` (for a stream
/// already ended, e.g. timed out), `unknown_id` (never opened).
pub const STREAMS_IGNORED: &str = "ringswim.streams.ignored";

/// Lifeguard's indirect probe path, which Go neither logs nor counts, so
/// that an operator can see it work (or a relay stay silent). Reasons:
/// - `indirect_ping_sent`: an indirect ping our probe sent to a relay after
///   `probe_timeout` without an ack (Go `probeNode`'s `indirectPingReq`s);
/// - `nack_received`: a nack from a relay (Go `handleNack`), whether for the
///   probe in progress or one already over (Go ignores those);
/// - `nack_sent`: a nack we sent a prober, the member it asked us to ping
///   having not acked within `probe_timeout` (Go `handleIndirectPing`'s
///   nack timer).
pub const PROBES: &str = "ringswim.probes";

/// Every counter, by `(metric, reason)`.
const COUNTERS: &[(&str, &str)] = &[
    (PACKETS_REJECTED, "truncated"),
    (PACKETS_REJECTED, "unknown_type"),
    (PACKETS_REJECTED, "unexpected_type"),
    (PACKETS_REJECTED, "msgpack"),
    (PACKETS_REJECTED, "out_of_range"),
    (PACKETS_REJECTED, "invalid_utf8"),
    (PACKETS_REJECTED, "too_large"),
    (PACKETS_REJECTED, "bad_crc"),
    (PACKETS_REJECTED, "encryption_required"),
    (PACKETS_REJECTED, "decrypt"),
    (PACKETS_REJECTED, "decompress"),
    (PACKETS_REJECTED, "nesting"),
    (PACKETS_REJECTED, "compound"),
    (PACKETS_REJECTED, "label"),
    (PACKETS_REJECTED, "wrong_node"),
    (PACKETS_REJECTED, "bad_address"),
    (PACKETS_REJECTED, "cidr_blocked"),
    (PACKETS_REJECTED, "node_name_required"),
    (PACKETS_REJECTED, "bad_vsn"),
    (PACKETS_REJECTED, "implausible_incarnation"),
    (PACKETS_REJECTED, "incarnation_exhausted"),
    (PACKETS_REJECTED, "stale_accusation_unanswered"),
    (DROPPED, "transmit_queue_full"),
    (DROPPED, "effect_queue_full"),
    (DROPPED, "relay_table_full"),
    (DROPPED, "ping_table_full"),
    (DROPPED, "stream_table_full"),
    (DROPPED, "user_carry_full"),
    (DROPPED, "handoff_queue_full"),
    (DROPPED, "reconnect_candidate_evicted"),
    (DROPPED, "broadcast_of_reaped_member"),
    (STREAMS_REFUSED, "too_many_push_pulls"),
    (STREAMS_REFUSED, "too_many_connections"),
    (STREAMS_TIMED_OUT, "push_pull"),
    (STREAMS_TIMED_OUT, "fallback_ping"),
    (STREAMS_TIMED_OUT, "user_message"),
    (STREAMS_IGNORED, "late_reply"),
    (STREAMS_IGNORED, "unknown_id"),
    (PROBES, "indirect_ping_sent"),
    (PROBES, "nack_received"),
    (PROBES, "nack_sent"),
    (GO_MSG, "alive"),
    (GO_MSG, "suspect"),
    (GO_MSG, "dead"),
    (GO_DEGRADED, "probe"),
    (GO_DEGRADED, "timeout"),
];

/// The position of `(metric, reason)` in the counter table, at compile
/// time (a name not in the table fails the build).
pub(crate) const fn counter_index(metric: &str, reason: &str) -> usize {
    const fn eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }
    let mut i = 0;
    while i < COUNTERS.len() {
        if eq(COUNTERS[i].0, metric) && eq(COUNTERS[i].1, reason) {
            return i;
        }
        i += 1;
    }
    panic!("no such counter")
}

/// [`GO_MSG`] `alive`, `suspect`, `dead`, looked up once.
pub(crate) const MSG_ALIVE: usize = counter_index(GO_MSG, "alive");
pub(crate) const MSG_SUSPECT: usize = counter_index(GO_MSG, "suspect");
pub(crate) const MSG_DEAD: usize = counter_index(GO_MSG, "dead");

/// Counters by `(metric, reason)`: see the module docs for the names. A
/// clone shares the counters.
#[derive(Clone, Debug)]
pub struct Metrics {
    counts: Arc<[AtomicU64]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every counter at zero.
    pub fn new() -> Metrics {
        Metrics { counts: COUNTERS.iter().map(|_| AtomicU64::new(0)).collect() }
    }

    fn index(metric: &str, reason: &str) -> Option<usize> {
        COUNTERS.iter().position(|&(m, r)| m == metric && r == reason)
    }

    /// Counts one of the counter at `index` ([`counter_index`]): for hot
    /// paths, which look the name up at compile time.
    pub(crate) fn count_at(&self, index: usize) {
        self.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one `(metric, reason)`. Names outside the list in the module
    /// docs are a bug of ours: they panic in debug builds and are not
    /// counted otherwise.
    pub fn count(&self, metric: &str, reason: &str) {
        self.add(metric, reason, 1);
    }

    /// Counts `n` of `(metric, reason)` (see [`Metrics::count`]).
    pub fn add(&self, metric: &str, reason: &str, n: u64) {
        let index = Metrics::index(metric, reason);
        debug_assert!(index.is_some(), "unknown counter {metric}{{{reason}}}");
        if let Some(i) = index {
            self.counts[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The count of `(metric, reason)`; 0 for names not in the list.
    pub fn get(&self, metric: &str, reason: &str) -> u64 {
        Metrics::index(metric, reason).map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }

    /// The sum over every reason of `metric`.
    pub fn total(&self, metric: &str) -> u64 {
        self.iter().filter(|&(m, _, _)| m == metric).map(|(_, _, n)| n).sum()
    }

    /// Every counter, `(metric, reason, count)`, zeros included, in a fixed
    /// order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        COUNTERS.iter().zip(self.counts.iter()).map(|(&(m, r), n)| (m, r, n.load(Ordering::Relaxed)))
    }
}

/// One measurement of Go's timers and samples (go-metrics `MeasureSince`
/// and `AddSample`, Go memberlist 0.5's set), which a driver takes with
/// [`Core::drain_samples`](super::Core::drain_samples) and records as
/// histograms under [`Sample::name`].
///
/// The core runs on the time its driver gives it, so a duration is core
/// time, not CPU time:
/// - `ProbeNode`: a probe from its ping to its end (the ack, the end of the
///   interval, or the fallback's answer), as Go's `probeNode` blocks for
///   that long;
/// - `Gossip`: how late a gossip round ran after its tick. Go times the
///   round itself, which includes waiting for its member-table lock; here
///   the round takes no core time, and what an overloaded engine shows is
///   lateness;
/// - `PushPullNode`: a push/pull we opened (periodic or a join's), from
///   the request to the merge or the failure, as Go's `pushPullNode`;
/// - `SizeLocal` / `SizeRemote`: bytes of the local state sent and of the
///   remote state received in a push/pull, plain (before compression and
///   encryption, as Go's `bufConn.Len()`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sample {
    /// `memberlist.probeNode`.
    ProbeNode(std::time::Duration),
    /// `memberlist.gossip`.
    Gossip(std::time::Duration),
    /// `memberlist.pushPullNode`.
    PushPullNode(std::time::Duration),
    /// `memberlist.size.local`.
    SizeLocal(usize),
    /// `memberlist.size.remote`.
    SizeRemote(usize),
}

impl Sample {
    /// Go's metric name.
    pub fn name(self) -> &'static str {
        match self {
            Sample::ProbeNode(_) => "memberlist.probeNode",
            Sample::Gossip(_) => "memberlist.gossip",
            Sample::PushPullNode(_) => "memberlist.pushPullNode",
            Sample::SizeLocal(_) => "memberlist.size.local",
            Sample::SizeRemote(_) => "memberlist.size.remote",
        }
    }

    /// The value in Go's unit: milliseconds for timers (go-metrics'
    /// `MeasureSince`), bytes for sizes.
    pub fn value(self) -> f64 {
        match self {
            Sample::ProbeNode(d) | Sample::Gossip(d) | Sample::PushPullNode(d) => d.as_secs_f64() * 1e3,
            Sample::SizeLocal(n) | Sample::SizeRemote(n) => n as f64,
        }
    }
}

/// How many samples wait for the driver at most; older ones make room (a
/// driver that never takes them, as the simulator, costs a fixed buffer).
/// A node records about a dozen a second at the local profile's rates (ten
/// gossip rounds, one probe); the engine takes them every second.
pub(crate) const SAMPLES_KEPT: usize = 64;

/// The samples not taken yet, newest last, at most [`SAMPLES_KEPT`]; the
/// buffer is allocated once, with the core (recording never allocates).
#[derive(Debug)]
pub(crate) struct Samples {
    recent: std::collections::VecDeque<Sample>,
}

impl Default for Samples {
    fn default() -> Self {
        Samples { recent: std::collections::VecDeque::with_capacity(SAMPLES_KEPT) }
    }
}

impl Samples {
    pub(crate) fn record(&mut self, sample: Sample) {
        if self.recent.len() >= SAMPLES_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(sample);
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Sample> + '_ {
        self.recent.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;

    #[test]
    fn counts_by_name_and_shares_between_clones() {
        let m = Metrics::new();
        let shared = m.clone();
        m.count(PACKETS_REJECTED, "bad_crc");
        shared.add(DROPPED, "handoff_queue_full", 3);
        assert_eq!(m.get(PACKETS_REJECTED, "bad_crc"), 1);
        assert_eq!(m.get(DROPPED, "handoff_queue_full"), 3);
        assert_eq!((m.total(PACKETS_REJECTED), m.total(DROPPED)), (1, 3));
        assert_eq!(m.get(DROPPED, "no such reason"), 0);
        assert_eq!(m.iter().filter(|c| c.2 > 0).count(), 2);
    }

    /// Every reason the wire layer gives has its counter.
    #[test]
    fn every_wire_reason_is_a_counter() {
        let errors = [
            Error::Truncated { what: "x" },
            Error::UnknownMessageType(0),
            Error::UnexpectedMessageType(0),
            Error::MsgpackType { what: "x", expected: "y" },
            Error::OutOfRange { field: "x" },
            Error::InvalidUtf8 { field: "x" },
            Error::TooLarge { what: "x", len: 1, limit: 0 },
            Error::BadCrc { expected: 0, computed: 1 },
            Error::NoKeys,
            Error::DecryptFailed,
            Error::UnknownCompression(9),
            Error::NestingTooDeep,
            Error::TooManyParts(300),
            Error::EmptyLabel,
        ];
        for e in errors {
            assert!(Metrics::index(PACKETS_REJECTED, e.reason()).is_some(), "{e:?}");
        }
    }
}
