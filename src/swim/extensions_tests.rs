//! ringswim's behaviour beyond Go ([`crate::config::Extensions`]), each
//! against the same situation under Go's behaviour. The cluster-level effect
//! (convergence after a mass join, broadcasts at every node) is measured in
//! `sim::scenario`'s tests and the README.

use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::config::Extensions;
use crate::swim::Broadcast as _;
use crate::swim::{Outbox, drain};
use crate::wire::Ping;

use super::test_nodes::{PORT, addr, at, name};

fn core(i: u8, go: bool) -> Core<StdRng> {
    core_configured(i, go, |_| {})
}

/// `core(i, go)` with `configure` applied to its config before it starts.
fn core_configured(i: u8, go: bool, configure: impl FnOnce(&mut Config)) -> Core<StdRng> {
    // Uncompressed, so that a stream's first byte is its message type.
    let mut config = Config::default_local().with_name(name(i)).with_enable_compression(false);
    if go {
        config = config.with_go_behaviour();
    }
    configure(&mut config);
    let mut c = Core::new(config, addr(i), at(0), StdRng::seed_from_u64(u64::from(i))).expect("core");
    c.start(at(0));
    c
}

/// `core(i, false)` without reconnect attempts: nobody answers a lone
/// core's probes, so it declares the members it hears of dead, and their
/// reconnect push/pulls would mix with the news push/pulls a test times.
fn core_without_reconnect(i: u8) -> Core<StdRng> {
    core_configured(i, false, |c| c.extensions.reconnect_interval = Duration::ZERO)
}

/// `c` hears by gossip that node `j` is alive.
fn hear_alive(c: &mut Core<StdRng>, j: u8, now: Time) {
    let (n, ip) = (name(j), ip_to_wire(addr(j).ip()));
    let vsn = c.config().build_vsn_array();
    c.handle_alive(&Alive { incarnation: 1, node: &n, addr: &ip, port: PORT, meta: &[], vsn: &vsn }, now);
}

/// Runs `c`'s timers from `from` to `until` in `step`s, draining it after
/// each (datagrams dropped); the push/pull streams it opened (probes' TCP
/// pings to absent peers aside): when, and to whom.
fn push_pulls(c: &mut Core<StdRng>, from: Time, until: Time, step: Duration) -> Vec<(Time, SocketAddr)> {
    let mut opened = Vec::new();
    let mut out = Outbox::default();
    drain(c, &mut out);
    let mut now = from;
    while now <= until {
        if out.timer.is_some_and(|t| t <= now) {
            c.handle_timeout(now);
            drain(c, &mut out);
        }
        for s in out.streams.drain(..) {
            if c.stream_connected(s.id).first() == Some(&(crate::wire::MessageType::PushPull as u8)) {
                opened.push((now, s.to));
            }
        }
        out.transmits.clear();
        out.effects.clear();
        now = now + step;
    }
    opened
}

/// When `c` opened push/pulls, in 10 ms steps up to `until`.
fn push_pulls_until(c: &mut Core<StdRng>, from: Time, until: Time) -> Vec<Time> {
    push_pulls(c, from, until, Duration::from_millis(10)).into_iter().map(|(t, _)| t).collect()
}

/// To whom `c` opened push/pulls, in 100 ms steps up to `until`.
fn push_pull_targets(c: &mut Core<StdRng>, from: Time, until: Time) -> Vec<SocketAddr> {
    push_pulls(c, from, until, Duration::from_millis(100)).into_iter().map(|(_, to)| to).collect()
}

#[test]
fn defaults_turn_the_extensions_on_and_go_behaviour_turns_them_off() {
    let c = Config::default_local();
    assert_eq!(c.extensions, Extensions::ringswim());
    assert_eq!(c.effective_retransmit_mult(), 4, "local's 2 raised to 4");
    let go = c.with_go_behaviour();
    assert_eq!(go.extensions, Extensions::go());
    assert_eq!(go.effective_retransmit_mult(), 2);
    assert_eq!(Config::default_lan().with_go_behaviour().effective_retransmit_mult(), 4);
}

#[test]
fn a_burst_of_news_brings_a_push_pull_soon_then_a_settling_one() {
    let mut c = core(0, false);
    let ext = c.config().extensions.clone();
    assert_eq!((ext.news_push_pull_delay, ext.news_push_pull_burst), (Duration::from_millis(250), 3));
    // Go's first periodic push/pull comes after the stagger plus 15 s:
    // nothing before 2 s but what news brings. A lone join is no burst.
    hear_alive(&mut c, 1, at(100));
    assert!(push_pulls_until(&mut c, at(100), at(1_400)).is_empty());
    // Two more members within a second (four delays) of each other: a burst.
    hear_alive(&mut c, 2, at(1_500));
    hear_alive(&mut c, 3, at(1_600));
    assert!(push_pulls_until(&mut c, at(1_500), at(1_600)).is_empty(), "the first two are no burst yet");
    hear_alive(&mut c, 4, at(1_700));
    let opened = push_pulls_until(&mut c, at(1_700), at(4_000));
    assert_eq!(opened, vec![at(1_950), at(2_450)], "news + 250 ms, then 2 × 250 ms later to settle");

    // Old news (members already alive) brings nothing.
    for j in 1..=4 {
        hear_alive(&mut c, j, at(4_000));
    }
    assert!(push_pulls_until(&mut c, at(4_000), at(6_000)).is_empty());
}

/// A peer's push/pull that reaches a member while its news push/pull
/// waits does that one's work: the member runs only the settling one, two
/// delays after the exchange. Serving a join is no such exchange.
#[test]
fn a_push_pull_served_during_a_burst_takes_the_place_of_our_own() {
    for (join, expected) in [(false, vec![at(2_300)]), (true, vec![at(1_950), at(2_450)])] {
        let mut a = core_without_reconnect(0);
        let mut b = core_without_reconnect(1);
        for (j, ms) in [(2, 1_500), (3, 1_600), (4, 1_700)] {
            hear_alive(&mut a, j, at(ms));
        }
        // Node 1's push/pull reaches node 0 at 1,800 ms, before node 0's
        // own (due at 1,950 ms, see above).
        serve_push_pull(&mut a, &mut b, join, 1_800);
        let opened = push_pulls_until(&mut a, at(1_800), at(4_000));
        assert_eq!(opened, expected, "join: {join}");
    }
}

/// Once the news has stopped, a peer's push/pull that reaches a member
/// before its settling one also follows the last news: it takes that
/// one's place, and nothing more runs.
#[test]
fn a_push_pull_served_after_the_news_takes_the_place_of_the_settling_one() {
    let mut a = core_without_reconnect(0);
    let mut b = core_without_reconnect(1);
    for (j, ms) in [(2, 1_500), (3, 1_600), (4, 1_700)] {
        hear_alive(&mut a, j, at(ms));
    }
    assert_eq!(push_pulls_until(&mut a, at(1_700), at(2_000)), vec![at(1_950)], "the burst's own");
    // The settling one is due at 2,450 ms; node 1's comes at 2,100 ms.
    serve_push_pull(&mut a, &mut b, false, 2_100);
    assert!(push_pulls_until(&mut a, at(2_100), at(6_000)).is_empty());
}

/// Node 1 (`b`) runs a push/pull (a join's if `join`) with node 0 (`a`)
/// at `ms` milliseconds, answered at once.
fn serve_push_pull(a: &mut Core<StdRng>, b: &mut Core<StdRng>, join: bool, ms: u64) {
    if join {
        b.join(&[addr(0)], at(ms));
    } else {
        b.push_pull_with(addr(0), at(ms));
    }
    let req = b.poll_stream().expect("push/pull");
    let mut bytes = b.stream_connected(req.id);
    assert!(a.handle_stream(addr(1), &mut bytes, at(ms)).is_some(), "answered");
}

#[test]
fn go_behaviour_waits_for_the_periodic_push_pull() {
    let mut c = core(0, true);
    hear_alive(&mut c, 1, at(100));
    assert!(push_pulls_until(&mut c, at(100), at(5_000)).is_empty());
}

/// Node 0 (`a`) runs a push/pull with node 1 (`b`) at `ms` milliseconds,
/// answered at once.
fn pull(a: &mut Core<StdRng>, b: &mut Core<StdRng>, ms: u64) {
    a.push_pull(at(ms));
    let req = a.poll_stream().expect("push/pull");
    let mut bytes = a.stream_connected(req.id);
    let reply = b.handle_stream(addr(0), &mut bytes, at(ms + 1)).expect("reply");
    a.handle_stream_reply(req.id, Ok(reply), at(ms + 2));
}

/// Node 0 pulls from node 1, which knows node 2 by gossip; returns node 0's
/// queue as (member, transmits already counted).
fn queue_after_pull(go: bool) -> Vec<(String, usize)> {
    let mut a = core(0, go);
    let mut b = core(1, go);
    hear_alive(&mut a, 1, at(10));
    hear_alive(&mut b, 2, at(10));
    pull(&mut a, &mut b, 20);
    assert!(a.member(&name(2)).is_some(), "learned node 2 from the pull");
    a.broadcasts().iter().map(|q| (q.broadcast.name().unwrap_or_default().to_owned(), q.transmits)).collect()
}

#[test]
fn what_a_merge_teaches_goes_out_after_fresh_news_and_fewer_times() {
    let n = 3; // members known to node 0 after the pull
    let full = retransmit_limit(4, n);
    let reduced = retransmit_limit(1, n);
    let q = queue_after_pull(false);
    let of = |who: &str| q.iter().find(|(m, _)| m == who).map(|(_, t)| *t);
    assert_eq!(of(&name(1)), Some(0), "gossip news: full budget");
    assert_eq!(of(&name(2)), Some(full - reduced), "merge news: {reduced} sends left of {full}");
    // Go: everything with the full budget.
    let q = queue_after_pull(true);
    assert!(q.iter().all(|(_, t)| *t == 0), "{q:?}");
}

#[test]
fn a_joiner_reaching_us_is_gossiped_with_the_full_budget() {
    let mut seed = core(0, false);
    let mut joiner = core(1, false);
    joiner.join(&[addr(0)], at(10));
    let req = joiner.poll_stream().expect("join push/pull");
    let mut bytes = joiner.stream_connected(req.id);
    seed.handle_stream(addr(1), &mut bytes, at(11)).expect("reply");
    let q: Vec<_> = seed.broadcasts().iter().map(|q| (q.broadcast.name().map(str::to_owned), q.transmits)).collect();
    assert!(q.contains(&(Some(name(1)), 0)), "{q:?}");
}

/// `c` hears that node `j` is dead (declared by node 9).
fn hear_dead(c: &mut Core<StdRng>, j: u8, now: Time, from: &str) {
    let n = name(j);
    c.handle_dead(&Accusation { incarnation: 1, node: &n, from }, now);
}

#[test]
fn a_dead_member_is_retried_every_reconnect_interval() {
    let mut c = core(0, false);
    hear_alive(&mut c, 1, at(0));
    hear_dead(&mut c, 1, at(10), "node9");
    assert!(c.member(&name(1)).is_some_and(|m| m.state() == NodeState::Dead));
    assert_eq!(c.reconnect_candidates().collect::<Vec<_>>(), vec![(name(1).as_str(), addr(1))]);
    // Ten 10 s intervals (first one staggered): node 1's address every time
    // (it is the only candidate; the periodic push/pull has no live peer).
    let to = push_pull_targets(&mut c, at(10), at(100_000));
    assert!((9..=10).contains(&to.len()), "{to:?}");
    assert!(to.iter().all(|&a| a == addr(1)));

    // Back alive: no longer a candidate.
    let (n, ip) = (name(1), ip_to_wire(addr(1).ip()));
    let vsn = c.config().build_vsn_array();
    c.handle_alive(&Alive { incarnation: 2, node: &n, addr: &ip, port: PORT, meta: &[], vsn: &vsn }, at(100_100));
    assert_eq!(c.reconnect_candidates().count(), 0);
}

#[test]
fn a_member_that_left_is_not_retried_nor_under_go_behaviour() {
    let mut c = core(0, false);
    hear_alive(&mut c, 1, at(0));
    hear_dead(&mut c, 1, at(10), &name(1)); // its own leave
    assert_eq!(c.reconnect_candidates().count(), 0);
    assert!(push_pull_targets(&mut c, at(10), at(60_000)).is_empty());

    let mut go = core(0, true);
    hear_alive(&mut go, 1, at(0));
    hear_dead(&mut go, 1, at(10), "node9");
    assert!(push_pull_targets(&mut go, at(10), at(14_000)).is_empty(), "Go's first push/pull waits 15 s+");
}

/// A delegate with an endless supply of 10-byte user broadcasts, recording
/// the byte limits it was offered.
#[derive(Debug, Default)]
struct Chatty {
    offered: std::sync::Mutex<Vec<usize>>,
}

impl crate::delegate::Delegate for Chatty {
    fn get_broadcasts(&self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.offered.lock().unwrap().push(limit);
        vec![vec![7u8; 10]; limit / (overhead + 10)]
    }
}

/// Node 0 with a full membership queue (200 members heard of) gossips once;
/// the bytes its delegate was offered.
fn offered_under_churn(go: bool) -> Vec<usize> {
    let chatty = std::sync::Arc::new(Chatty::default());
    let mut config = Config::default_local().with_name(name(0)).with_enable_compression(false);
    config = config.with_delegate(chatty.clone() as std::sync::Arc<dyn crate::delegate::Delegate>);
    if go {
        config = config.with_go_behaviour();
    }
    let mut c = Core::new(config, addr(0), at(0), StdRng::seed_from_u64(5)).expect("core");
    for j in 1..=200u8 {
        hear_alive(&mut c, j, at(1));
    }
    while c.poll_transmit().is_some() {}
    c.gossip(at(2));
    let tx = c.poll_transmit().expect("a gossip packet");
    assert!(tx.bytes.len() <= c.config().udp_buffer_size);
    chatty.offered.lock().unwrap().clone()
}

#[test]
fn user_broadcasts_keep_their_share_of_a_packet_full_of_membership_news() {
    let go = offered_under_churn(true);
    // Go: alive messages fill the packet, the delegate is not even asked.
    assert!(go.iter().all(|&l| l < 100), "{go:?}");
    let ours = offered_under_churn(false);
    let share = usize::from(Extensions::ringswim().user_broadcast_share);
    assert_eq!(share, 50);
    assert!(ours[0] >= 1400 * share / 100 - 20, "offered {ours:?}");
}

/// Node `i` under ringswim's rules with `storm_queue_len` set.
fn core_with_storm(i: u8, storm: Option<usize>) -> Core<StdRng> {
    let mut config = Config::default_local().with_name(name(i)).with_enable_compression(false);
    config.extensions.storm_queue_len = storm;
    let mut c = Core::new(config, addr(i), at(0), StdRng::seed_from_u64(u64::from(i))).expect("core");
    c.start(at(0));
    c
}

/// Node 0 (members 1..=5 heard by gossip) pulls from node 1, which knows
/// node 9: whether node 9 is queued at node 0 afterwards. `storm` is the
/// storm threshold relative to node 0's queue length before the pull.
fn merge_news_queued(storm: Option<isize>) -> bool {
    let mut a = core_with_storm(0, None);
    let mut b = core(1, false);
    for j in 1..=5 {
        hear_alive(&mut a, j, at(10));
    }
    let queued = a.broadcasts().num_queued();
    a.config.extensions.storm_queue_len = storm.map(|d| queued.saturating_add_signed(d));
    hear_alive(&mut b, 0, at(10));
    hear_alive(&mut b, 9, at(10));
    pull(&mut a, &mut b, 20);
    assert!(a.member(&name(9)).is_some(), "learned node 9 from the pull");
    a.broadcasts().iter().any(|q| q.broadcast.name() == Some(name(9).as_str()))
}

#[test]
fn in_a_storm_what_a_merge_teaches_is_not_regossiped() {
    assert_eq!(Extensions::ringswim().storm_queue_len, Some(256));
    assert!(!merge_news_queued(Some(-1)), "more queued than the threshold: a storm");
    assert!(merge_news_queued(Some(0)), "as many as the threshold: no storm yet");
    assert!(merge_news_queued(None));
}

/// Node 0 hears members 1..=5 by gossip, then member 1's alive twice more;
/// member 1's queued news as (transmits counted, limit), if still queued.
/// `storm` as in [`merge_news_queued`].
fn after_repeats(storm: Option<isize>) -> Option<(usize, usize)> {
    let mut c = core_with_storm(0, None);
    for j in 1..=5 {
        hear_alive(&mut c, j, at(10));
    }
    let queued = c.broadcasts().num_queued();
    c.config.extensions.storm_queue_len = storm.map(|d| queued.saturating_add_signed(d));
    let limit = retransmit_limit(c.broadcasts().retransmit_mult, c.num_nodes());
    let transmits = |c: &Core<StdRng>| {
        c.broadcasts().iter().find(|q| q.broadcast.name() == Some(name(1).as_str())).map(|q| q.transmits)
    };
    hear_alive(&mut c, 1, at(11));
    let after_one = transmits(&c);
    hear_alive(&mut c, 1, at(12));
    let after_two = transmits(&c);
    if storm.is_some_and(|d| d < 0) {
        assert_eq!(after_one, Some(limit.div_ceil(2)), "one repeat of two: half the budget");
    }
    after_two.map(|t| (t, limit))
}

#[test]
fn in_a_storm_alive_news_repeated_to_us_is_retired() {
    assert_eq!(Extensions::ringswim().repeats_retire_news, 2);
    assert_eq!(after_repeats(Some(-1)), None, "two repeats in a storm: retired");
    let limit = retransmit_limit(4, 6);
    assert_eq!(after_repeats(Some(0)), Some((0, limit)), "no storm: repeats change nothing");
    assert_eq!(after_repeats(None), Some((0, limit)));
}

#[test]
fn news_that_keeps_coming_spaces_the_push_pulls_out() {
    let mut c = core(0, false);
    // A new member every 100 ms for 12 s (a join storm over seconds).
    let mut opened = Vec::new();
    for k in 0..120u64 {
        let now = at(1_000 + 100 * k);
        hear_alive(&mut c, u8::try_from(k + 1).unwrap(), now);
        opened.extend(push_pulls_until(&mut c, now, now + Duration::from_millis(90)));
    }
    opened.extend(push_pulls_until(&mut c, at(13_000), at(20_000)));
    let ms: Vec<u64> = opened.iter().map(|t| t.saturating_since(at(0)).as_millis() as u64).collect();
    // A delay after the burst starts (the third news, at 1.2 s), then gaps
    // of 2, 2, 4, 8, 16 delays (doubling up to 32) while news keeps coming;
    // once it stops (12.9 s), one after two quiet delays and the settling
    // one two delays later.
    assert_eq!(ms, vec![1_450, 1_950, 2_450, 3_450, 5_450, 9_450, 13_400, 13_900], "{ms:?}");
}

/// The storm of `news_that_keeps_coming_spaces_the_push_pulls_out` with the
/// late settle's threshold at `late_settle_learned`; `extra` more news
/// after it, at those milliseconds: when push/pulls opened.
fn storm_push_pulls(late_settle_learned: usize, extra: &[u64]) -> Vec<u64> {
    let mut c = core_without_reconnect(0);
    c.config.extensions.late_settle_learned = late_settle_learned;
    let mut opened = Vec::new();
    for k in 0..120u64 {
        let now = at(1_000 + 100 * k);
        hear_alive(&mut c, u8::try_from(k + 1).unwrap(), now);
        opened.extend(push_pulls_until(&mut c, now, now + Duration::from_millis(90)));
    }
    let mut from = at(13_000);
    for (j, &ms) in extra.iter().enumerate() {
        opened.extend(push_pulls_until(&mut c, from, at(ms - 10)));
        hear_alive(&mut c, 200 + u8::try_from(j).unwrap(), at(ms));
        from = at(ms);
    }
    opened.extend(push_pulls_until(&mut c, from, at(40_000)));
    opened.iter().map(|t| t.saturating_since(at(0)).as_millis() as u64).collect()
}

#[test]
fn after_a_big_storm_one_more_settle_comes_later() {
    let ext = Extensions::ringswim();
    assert_eq!((ext.late_settle_learned, ext.late_settle_delay), (1024, Duration::from_secs(8)));
    let storm = [1_450, 1_950, 2_450, 3_450, 5_450, 9_450, 13_400, 13_900];
    // 120 members learned: no late settle.
    assert_eq!(storm_push_pulls(1024, &[]), storm);
    // Past the threshold: one more, 8 s after the settling one.
    assert_eq!(storm_push_pulls(2, &[]), [&storm[..], &[21_900]].concat());
    // A new burst meanwhile is not held back until then.
    let ms = storm_push_pulls(2, &[16_000, 16_100, 16_200]);
    assert_eq!(ms[..storm.len()], storm);
    assert!(ms[storm.len()] < 17_000, "{ms:?}");
    assert!(!ms.contains(&21_900), "{ms:?}");
}

/// 60 members joining one by one, 2 s apart (no burst), then, after
/// `pause_ms` more, a burst of 45: the push/pulls opened after the burst.
fn late_settle_after_slow_joins(pause_ms: u64) -> Vec<u64> {
    let mut c = core_without_reconnect(0);
    c.config.extensions.late_settle_learned = 100;
    // Periodic push/pulls out of the way (after the first tick, within
    // the first 15 s).
    c.config.push_pull_interval = Duration::from_secs(3_600);
    let mut now = at(1_000);
    for j in 1..=60u8 {
        hear_alive(&mut c, j, now);
        push_pulls_until(&mut c, now, now + Duration::from_millis(1_990));
        now = now + Duration::from_millis(2_000);
    }
    push_pulls_until(&mut c, now, now + Duration::from_millis(pause_ms));
    let burst = now + Duration::from_millis(pause_ms);
    let mut opened = Vec::new();
    for (k, j) in (61..=105u8).enumerate() {
        let t = burst + Duration::from_millis(10 * k as u64);
        hear_alive(&mut c, j, t);
        opened.extend(push_pulls_until(&mut c, t, t + Duration::from_millis(5)));
    }
    opened.extend(push_pulls_until(&mut c, burst + Duration::from_millis(500), burst + Duration::from_secs(20)));
    opened.iter().map(|t| t.saturating_since(burst).as_millis() as u64).collect()
}

#[test]
fn the_late_settle_counts_one_stretch_of_learning() {
    // 60 + 45 learned without a pause over 8 s: 105, a late settle 8 s
    // after the settling one.
    // News, trailing, settling, and the late settle.
    assert_eq!(late_settle_after_slow_joins(1_000), [270, 770, 1_270, 9_270]);
    // A 10 s pause starts the count again: 45, no late settle.
    assert_eq!(late_settle_after_slow_joins(10_000), [270, 770, 1_270]);
}

/// Node `j` pings `c` at `ms`, naming itself as the sender (Go 0.2.2's
/// ping carries the sender's name and address).
fn pinged_by(c: &mut Core<StdRng>, j: u8, ms: u64) {
    let (me, from, ip) = (c.config().name.clone(), name(j), ip_to_wire(addr(j).ip()));
    let ping = Ping { seq_no: 7, node: &me, source_addr: &ip, source_port: PORT, source_node: &from };
    c.handle_message(addr(j), Message::Ping(ping), at(ms));
}

/// A joiner whose join reached the seed but whose reply did not knows
/// nobody, while the cluster knows it and probes it: the first stranger's
/// ping brings a push/pull with that stranger (once per probe interval,
/// and only while the node is alone). Go waits for someone's periodic
/// push/pull to pick it.
#[test]
fn a_member_alone_pulls_from_the_first_stranger_that_pings_it() {
    let mut c = core_without_reconnect(0);
    pinged_by(&mut c, 1, 100);
    assert_eq!(push_pull_targets(&mut c, at(100), at(150)), vec![addr(1)]);
    // Its reply has not come yet: another stranger within the probe
    // interval (1 s, local) brings nothing; after it, one more.
    pinged_by(&mut c, 2, 600);
    assert!(push_pull_targets(&mut c, at(600), at(650)).is_empty());
    pinged_by(&mut c, 2, 1_200);
    assert_eq!(push_pull_targets(&mut c, at(1_200), at(1_250)), vec![addr(2)]);
    // Once it knows a live member it is not alone: pings bring nothing.
    hear_alive(&mut c, 3, at(1_300));
    pinged_by(&mut c, 4, 2_500);
    assert!(push_pull_targets(&mut c, at(2_500), at(2_550)).is_empty());

    let mut go = core(0, true);
    pinged_by(&mut go, 1, 100);
    assert!(push_pull_targets(&mut go, at(100), at(150)).is_empty(), "Go: nothing");
}
