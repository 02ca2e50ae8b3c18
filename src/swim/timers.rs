//! Every timer of a [`Core`](super::Core) in one table (after quinn-proto's
//! `TimerTable`): the probe's stages, the periodic ticks, suspicions,
//! relayed pings, [`Core::ping`](super::Core::ping)s, stream deadlines and
//! the places of incoming push/pulls. [`Core::poll_timeout`](super::Core::poll_timeout)
//! is the first entry, [`Core::handle_timeout`](super::Core::handle_timeout)
//! takes the due ones off the front in time order.
//!
//! Each timer is named by a [`Timer`] and runs at most once: setting it
//! again moves it, cancelling it takes it out, so the table never holds a
//! stale entry and the driver is never woken for nothing. Both directions
//! are B-trees: a timer's time by its name, and names in time order. Costs,
//! n timers: O(log n) to set, cancel or pop, O(1) for the earliest; nothing
//! is allocated once the trees have their nodes (the periodic ticks keep
//! them from emptying), so a steady `handle_timeout` allocates nothing of
//! its own.

use std::collections::{BTreeMap, BTreeSet};

use super::StreamId;
use super::Time;
use crate::name::Name;

/// What a timer is for. At equal times, timers fire in this order (then by
/// their fields): suspicions (ties by member name, as Go's map has none to
/// offer), relays, pings, streams, then the probe's stages and the ticks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// The Lifeguard suspicion of the member so named.
    Suspicion(Name),
    /// The nack deadline of an indirect ping relayed under our sequence
    /// number (Go `handleIndirectPing`'s timer).
    Relay(u32),
    /// A [`Core::ping`](super::Core::ping) without an ack yet, by sequence
    /// number.
    Ping(u32),
    /// The deadline of an outgoing stream.
    Stream(StreamId),
    /// How long the driver may take to write the reply of an incoming
    /// push/pull before its place is freed (see
    /// [`Core::stream_reply_done`](super::Core::stream_reply_done)).
    InboundPushPull(u64),
    /// The direct ping of the probe in progress timed out: indirect pings.
    ProbeIndirect,
    /// The probe in progress has reached the end of its interval.
    ProbeDeadline,
    /// The probe ticker.
    ProbeTick,
    /// The gossip ticker.
    Gossip,
    /// The push/pull ticker.
    PushPull,
    /// The extra push/pull after a burst of news.
    NewsPushPull,
    /// The reconnect ticker.
    Reconnect,
}

/// The table: see the module docs.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// When each timer runs.
    at: BTreeMap<Timer, Time>,
    /// The same timers in firing order.
    order: BTreeSet<(Time, Timer)>,
}

impl Timers {
    /// Runs `timer` at `when`, moving it if it was set.
    pub(super) fn set(&mut self, timer: Timer, when: Time) {
        match self.at.get_mut(&timer) {
            Some(at) if *at == when => {}
            Some(at) => {
                let old = std::mem::replace(at, when);
                // The entry in `order` is re-keyed: taken out and put back
                // with the same `Timer` (no clone of a suspicion's name).
                if let Some((_, timer)) = self.order.take(&(old, timer)) {
                    self.order.insert((when, timer));
                }
            }
            None => {
                self.order.insert((when, timer.clone()));
                self.at.insert(timer, when);
            }
        }
    }

    /// Runs `timer` at `when`, or cancels it for `None`.
    pub(super) fn set_or_cancel(&mut self, timer: Timer, when: Option<Time>) {
        match when {
            Some(when) => self.set(timer, when),
            None => {
                self.cancel(&timer);
            }
        }
    }

    /// Takes `timer` out of the table; its time if it was set.
    pub(super) fn cancel(&mut self, timer: &Timer) -> Option<Time> {
        let (timer, when) = self.at.remove_entry(timer)?;
        self.order.remove(&(when, timer));
        Some(when)
    }

    /// When `timer` runs, if set.
    pub(super) fn get(&self, timer: &Timer) -> Option<Time> {
        self.at.get(timer).copied()
    }

    /// The earliest timer's time.
    pub(super) fn next(&self) -> Option<Time> {
        self.order.first().map(|(when, _)| *when)
    }

    /// Takes out the earliest timer if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Time) -> Option<(Time, Timer)> {
        if self.next()? > now {
            return None;
        }
        let (when, timer) = self.order.pop_first()?;
        self.at.remove(&timer);
        Some((when, timer))
    }

    /// Number of timers set.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether both directions agree (for `debug_assert!`).
    pub(super) fn is_consistent(&self) -> bool {
        self.at.len() == self.order.len() && self.order.iter().all(|(when, timer)| self.at.get(timer) == Some(when))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(ms: u64) -> Time {
        Time::from_epoch(Duration::from_millis(ms))
    }

    #[test]
    fn fires_in_time_order_then_by_kind_and_moves_without_duplicates() {
        let mut timers = Timers::default();
        timers.set(Timer::Gossip, t(5));
        timers.set(Timer::Suspicion(Name::from("b")), t(5));
        timers.set(Timer::Suspicion(Name::from("a")), t(9));
        timers.set(Timer::Relay(7), t(2));
        assert_eq!(timers.next(), Some(t(2)));
        // Moving a timer leaves one entry.
        timers.set(Timer::Suspicion(Name::from("a")), t(5));
        timers.set(Timer::Relay(7), t(2));
        assert_eq!(timers.len(), 4);
        assert!(timers.is_consistent());
        assert_eq!(timers.cancel(&Timer::Relay(7)), Some(t(2)));
        assert_eq!(timers.cancel(&Timer::Relay(7)), None);
        assert_eq!(timers.pop_due(t(4)), None, "nothing due before 5");
        let fired: Vec<Timer> = std::iter::from_fn(|| timers.pop_due(t(5)).map(|(_, timer)| timer)).collect();
        assert_eq!(fired, [Timer::Suspicion(Name::from("a")), Timer::Suspicion(Name::from("b")), Timer::Gossip]);
        assert_eq!((timers.len(), timers.next()), (0, None));
        timers.set_or_cancel(Timer::ProbeTick, Some(t(1)));
        assert_eq!(timers.get(&Timer::ProbeTick), Some(t(1)));
        timers.set_or_cancel(Timer::ProbeTick, None);
        assert_eq!(timers.get(&Timer::ProbeTick), None);
        assert!(timers.is_consistent());
    }
}
