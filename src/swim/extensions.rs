//! ringswim's behaviour beyond Go memberlist 0.2.2
//! ([`Extensions`](crate::config::Extensions)), kept apart from Go's rules:
//! the Go-parity code in `core.rs`, `net.rs` and `streams.rs` calls into
//! here at a few named hooks, and each extension does nothing when its
//! field has Go's value ([`Extensions::go`](crate::config::Extensions::go),
//! [`Config::with_go_behaviour`](crate::config::Config::with_go_behaviour)).
//!
//! | extension | hook (where Go's code calls it) |
//! | --- | --- |
//! | news push/pull, late settle | `note_news` (an alive brought a member we did not know), `note_learned` (a member joined or came back), `note_served_push_pull` (a peer's push/pull reached us), `news_push_pull_tick` (the timer) |
//! | reconnect | `note_failed` (we declared a member dead), `reconnect_tick` (the timer) |
//! | storm rules | `in_storm` (queueing a broadcast during a merge), `note_repeat` (an alive heard again) |
//! | answer stale accusations | `answer_stale_accusation` (a suspect or dead message from the network) |
//! | last-chance ping | `send_last_chance_ping` (a suspicion that runs out, in `fire_suspicions`) |
//! | push/pull when alone | `push_pull_when_alone` (a ping we acked, in `handle_ping`) |
//! | suspicion per incarnation | inline in `suspect_node` (one condition) |
//! | min retransmit mult, merge budget, user broadcast share | read where Go's budget and packing are computed (`Config::effective_retransmit_mult`, `Core::queue`, `all_broadcasts`) |
//!
//! A child module of `core`, so that it shares [`Core`]'s fields.

use std::net::SocketAddr;

use rand::Rng;

use super::Core;
use super::net::STALE_ANSWERS_PER_PROBE_INTERVAL;
use super::streams::MAX_RECONNECT_CANDIDATES;
use crate::delegate::NodeState;
use crate::swim::metrics::DROPPED;
use crate::swim::queue::retransmit_limit;
use crate::swim::timers::Timer;
use crate::swim::{Time, random_offset};
use crate::wire::message::{Accusation, Alive, Message, Ping};

/// News counts as a burst when `news_push_pull_burst` items come within
/// this many news delays.
const NEWS_WINDOW_FACTOR: u32 = 4;

/// The settling push/pull runs this many news delays after the last news.
const SETTLE_FACTOR: u32 = 2;

/// While news keeps coming (a join storm over seconds), the gap between news
/// push/pulls doubles from [`SETTLE_FACTOR`] up to this many news delays:
/// each carries the whole member table (N entries), so one every delay from
/// every member would cost N² per delay.
const MAX_GAP_FACTOR: u32 = 32;

impl<R> Core<R> {
    /// Whether the membership queue holds a storm of news
    /// ([`Extensions::storm_queue_len`](crate::config::Extensions)).
    pub(super) fn in_storm(&self) -> bool {
        self.config.extensions.storm_queue_len.is_some_and(|len| self.broadcasts.num_queued() > len)
    }
}

impl<R: Rng> Core<R> {
    /// Gossip brought news of a member: if it is the
    /// [`Extensions::news_push_pull_burst`]th within four delays, schedule
    /// the extra push/pull of [`Extensions::news_push_pull_delay`]. A rumour
    /// that reached us may have died out before reaching others (and
    /// others' before reaching us): one full exchange with a random member
    /// repairs both sides far sooner than the periodic push/pull.
    ///
    /// The first comes a delay after the burst starts; while news keeps
    /// coming, the next waits until it has been quiet for
    /// [`SETTLE_FACTOR`] delays, but at most a gap after the last that
    /// doubles each time (2, 4, 8 … [`MAX_GAP_FACTOR`] delays); a settling
    /// one follows the last news.
    ///
    /// [`Extensions::news_push_pull_delay`]: crate::config::Extensions::news_push_pull_delay
    /// [`Extensions::news_push_pull_burst`]: crate::config::Extensions::news_push_pull_burst
    pub(super) fn note_news(&mut self, now: Time) {
        let delay = self.config.extensions.news_push_pull_delay;
        let burst = self.config.extensions.news_push_pull_burst.max(1);
        let s = &mut self.net.streams;
        if delay.is_zero() || self.timers.get(&Timer::PushPull).is_none() {
            return;
        }
        // Only a burst of news (a mass join, a healed partition) is worth a
        // full exchange: a lone join's rumour reaches everyone on its own,
        // and steady churn must not turn into steady push/pulls.
        let window = NEWS_WINDOW_FACTOR * delay;
        s.recent_news.retain(|&t| now.saturating_since(t) <= window);
        s.recent_news.push_back(now);
        while s.recent_news.len() > burst {
            s.recent_news.pop_front();
        }
        if s.recent_news.len() < burst {
            return;
        }
        let gap = s.news_gap.max(1);
        let trailing = (now + SETTLE_FACTOR * delay).min(s.last_news_push_pull.map_or(now, |l| l + gap * delay));
        let due = match self.timers.get(&Timer::NewsPushPull) {
            // The first of a burst.
            None => s.last_news_push_pull.map_or(now, |l| l + delay).max(now + delay),
            // More news while one waits: it waits for quiet (never sooner),
            // except that a late settle gives way to the news' own.
            Some(_) if s.settling_late => trailing,
            Some(due) => trailing.max(due),
        };
        self.timers.set(Timer::NewsPushPull, due);
        s.settling = false;
        s.settling_late = false;
    }

    /// A member joined our table or came back from dead: counted towards
    /// the late settle ([`Extensions::late_settle_learned`]); a pause longer
    /// than the longest news gap ([`MAX_GAP_FACTOR`] delays) starts a new
    /// count, so a heal hours after a mass join is not added to it.
    ///
    /// [`Extensions::late_settle_learned`]: crate::config::Extensions::late_settle_learned
    pub(super) fn note_learned(&mut self, now: Time) {
        let quiet = MAX_GAP_FACTOR * self.config.extensions.news_push_pull_delay;
        let s = &mut self.net.streams;
        if s.last_learned.is_some_and(|t| now.saturating_since(t) > quiet) {
            s.learned = 0;
        }
        s.learned = s.learned.saturating_add(1);
        s.last_learned = Some(now);
    }

    /// The news push/pull is due
    /// ([`Extensions::news_push_pull_delay`](crate::config::Extensions)).
    pub(super) fn news_push_pull_tick(&mut self, now: Time) {
        self.schedule_after_news_push_pull(now);
        self.push_pull(now);
    }

    /// A peer's push/pull (not a join) reached us while our news push/pull
    /// of a burst waits: that exchange did what ours would have (each side
    /// now holds both tables), so it takes our push/pull's place in the
    /// schedule. Each push/pull carries the whole table (N entries); if
    /// every member both ran its own and served others' once per gap, a
    /// mass join of N members would cost twice the N² entries per gap it
    /// needs (at 1,000 members with LZW, most of the CPU of the storm).
    /// The settling push/pull is replaced too (no news came since the last
    /// exchange, so this one follows the last news, as the settling one
    /// would), but not the late settle, whose point is its time.
    pub(super) fn note_served_push_pull(&mut self, now: Time) {
        let waiting = self.timers.get(&Timer::NewsPushPull).is_some();
        if waiting && !self.net.streams.settling_late {
            self.schedule_after_news_push_pull(now);
        }
    }

    /// The schedule after a news push/pull at `now`: the settling one next
    /// (or none).
    fn schedule_after_news_push_pull(&mut self, now: Time) {
        let s = &mut self.net.streams;
        s.last_news_push_pull = Some(now);
        // One more exchange once the burst has quietened (news pushes it
        // back): this one ran while rumours were still spreading, so the
        // peer may have missed some too.
        let (late, big) = (self.config.extensions.late_settle_delay, self.config.extensions.late_settle_learned);
        let next = if std::mem::replace(&mut s.settling, true) {
            let learned = std::mem::take(&mut s.learned);
            if big > 0 && learned >= big && !late.is_zero() && !s.settling_late {
                // After a big storm, once more when the rest of the
                // cluster has settled too (still a settling one).
                s.settling_late = true;
                Some(now + late)
            } else {
                s.settling = false;
                s.settling_late = false;
                s.news_gap = 1;
                None
            }
        } else {
            s.news_gap = (s.news_gap * 2).clamp(1, MAX_GAP_FACTOR);
            Some(now + SETTLE_FACTOR * self.config.extensions.news_push_pull_delay)
        };
        // (A delay set to zero since stops it.)
        self.timers.set_or_cancel(Timer::NewsPushPull, next.filter(|&t| t > now));
    }

    /// Remembers `name` at `addr`, declared dead at `now`, as a reconnect
    /// candidate (when reconnecting is on); the oldest goes if full.
    pub(super) fn note_failed(&mut self, name: &str, addr: SocketAddr, now: Time) {
        if self.config.extensions.reconnect_interval.is_zero() {
            return;
        }
        let failed = &mut self.net.streams.failed;
        if failed.len() >= MAX_RECONNECT_CANDIDATES && !failed.contains_key(name) {
            let oldest = failed.iter().min_by_key(|(_, (_, since))| *since).map(|(n, _)| n.clone());
            if let Some(oldest) = oldest {
                failed.remove(&oldest);
                self.metrics.count(DROPPED, "reconnect_candidate_evicted");
            }
        }
        failed.insert(name.to_owned(), (addr, now));
    }

    /// The reconnect tick ([`Extensions::reconnect_interval`]): forget
    /// candidates older than the timeout, then push/pull with a random one.
    ///
    /// [`Extensions::reconnect_interval`]: crate::config::Extensions::reconnect_interval
    pub(super) fn reconnect_tick(&mut self, now: Time) {
        let ext = &self.config.extensions;
        let (interval, timeout) = (ext.reconnect_interval, ext.reconnect_timeout);
        self.timers.set_or_cancel(Timer::Reconnect, (!interval.is_zero()).then(|| now + interval));
        let failed = &mut self.net.streams.failed;
        failed.retain(|_, (_, since)| now.saturating_since(*since) <= timeout);
        if failed.is_empty() {
            return;
        }
        let pick = random_offset(failed.len(), &mut self.rng);
        let Some(&(to, _)) = failed.values().nth(pick) else { return };
        self.push_pull_with(to, now);
    }

    /// Alive news heard again by gossip during a storm
    /// ([`Extensions::repeats_retire_news`](crate::config::Extensions)):
    /// counts part of its sends.
    pub(super) fn note_repeat(&mut self, a: &Alive<'_>) {
        let repeats = self.config.extensions.repeats_retire_news;
        if repeats == 0 || !self.in_storm() || self.is_local(a.node) {
            return;
        }
        let known =
            self.member(a.node).is_some_and(|m| m.state() == NodeState::Alive && m.incarnation == a.incarnation);
        if known {
            let n = self.members.len();
            let share = retransmit_limit(self.broadcasts.retransmit_mult, n).div_ceil(repeats);
            self.broadcasts.add_transmits(a.node, share, n);
        }
    }

    /// [`Extensions::answer_stale_accusations`]: an accusation about us at
    /// an incarnation we already beat gets our current alive, straight back
    /// to its sender.
    ///
    /// [`Extensions::answer_stale_accusations`]: crate::config::Extensions::answer_stale_accusations
    pub(super) fn answer_stale_accusation(&mut self, from: SocketAddr, accusation: &Accusation<'_>, now: Time) {
        if !self.config.extensions.answer_stale_accusations
            || self.left
            || !self.is_local(accusation.node)
            || accusation.incarnation >= self.local().incarnation
        {
            return;
        }
        // A bound on what forged accusations can make us send: each sender
        // once per probe interval, and so many senders at most.
        let (start, answered) = &mut self.net.stale_answers;
        if start.is_none_or(|start| now.saturating_since(start) >= self.config.probe_interval) {
            *start = Some(now);
            answered.clear();
        }
        if answered.len() >= STALE_ANSWERS_PER_PROBE_INTERVAL || answered.contains(&from) {
            self.reject("stale_accusation_unanswered");
            return;
        }
        answered.push(from);
        let (name, alive) = self.local_alive();
        self.send_msg(from, &Message::Alive(alive.as_alive(&name)));
    }

    /// The last-chance ping of a suspicion that ran out
    /// ([`Extensions::last_chance_ping`]): a ping under a sequence number
    /// nobody waits for, after our suspicion of `name` at `incarnation`.
    ///
    /// [`Extensions::last_chance_ping`]: crate::config::Extensions::last_chance_ping
    pub(super) fn send_last_chance_ping(&mut self, name: &str, to: SocketAddr, incarnation: u32) {
        let seq_no = self.next_seq_no();
        let (addr, source_port) = self.local_source();
        let me = self.config.name.clone();
        let ping = Message::Ping(Ping { seq_no, node: name, source_addr: &addr, source_port, source_node: &me });
        let suspect = Message::Suspect(Accusation { incarnation, node: name, from: &me });
        let crc = self.member(name).is_some_and(|m| m.node.pmax >= 5);
        // The suspicion first: the member (Go or ringswim) handles the parts
        // in order, so its refutation is queued when it acks the ping, and
        // rides back to us on the ack.
        self.raw_send(to, &[suspect.to_vec(), ping.to_vec()], crc);
    }

    /// [`Extensions::push_pull_when_alone`]: we acked a ping from `sender`
    /// (answered at `to`) while we hold no other live member; a stranger
    /// that probes us knows the cluster, so one push/pull with it teaches
    /// us the cluster (at most one per `probe_interval`).
    ///
    /// [`Extensions::push_pull_when_alone`]: crate::config::Extensions::push_pull_when_alone
    pub(super) fn push_pull_when_alone(&mut self, sender: &str, to: SocketAddr, now: Time) {
        if !self.config.extensions.push_pull_when_alone
            || self.left
            || sender.is_empty()
            || self.any_alive()
            || self.member(sender).is_some()
        {
            return;
        }
        let last = &mut self.net.streams.last_alone_push_pull;
        if last.is_some_and(|t| now.saturating_since(t) < self.config.probe_interval) {
            return;
        }
        *last = Some(now);
        self.push_pull_with(to, now);
    }
}
