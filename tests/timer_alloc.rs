//! `Core::handle_timeout` allocates nothing of its own in the steady state:
//! the timers live in one table that keeps its nodes, and firing one does
//! not collect the due ones into a fresh `Vec` (issue 9). Counted with dhat's
//! counting allocator; one test, since dhat allows one profiler per process.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use ringswim::config::Config;
use ringswim::swim::{Core, Time};
use ringswim::wire::{Accusation, Alive};

// The same counting allocator as `tests/allocations.rs` (dhat's, in testing
// mode): no `unsafe` of our own outside the engine.
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

fn t(ms: u64) -> Time {
    Time::from_epoch(Duration::from_secs(1_000) + Duration::from_millis(ms))
}

fn addr(i: u32) -> SocketAddr {
    let [_, a, b, c] = (i + 1).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), 7946)
}

/// Fires `c`'s timers `calls` times, draining what they produce between
/// calls (not counted); the allocations made inside `handle_timeout`.
fn allocations_in_handle_timeout(c: &mut Core<StdRng>, calls: usize) -> u64 {
    let mut counted = 0;
    for _ in 0..calls {
        let at = c.poll_timeout().expect("a timer");
        let before = allocations();
        c.handle_timeout(at);
        counted += allocations() - before;
        while c.poll_transmit().is_some() {}
        while c.poll_effect().is_some() {}
        while c.poll_stream().is_some() {}
    }
    counted
}

#[test]
fn steady_timers_allocate_nothing() {
    let _profiler = dhat::Profiler::builder().testing().build();
    a_lone_nodes_tickers_allocate_nothing();
    timers_firing_among_a_thousand_suspicions_allocate_nothing();
}

/// A node alone: its probe, gossip, push/pull and reconnect tickers run
/// for ever, and none of their firings allocates.
fn a_lone_nodes_tickers_allocate_nothing() {
    let config = Config::default_lan().with_name("alone");
    let mut c = Core::new(config, addr(0), t(0), StdRng::seed_from_u64(1)).unwrap();
    c.start(t(0));
    // Warm up: the table's nodes exist.
    allocations_in_handle_timeout(&mut c, 100);
    assert_eq!(allocations_in_handle_timeout(&mut c, 10_000), 0);
}

/// A thousand suspicions running and a few hundred pings timing out one by
/// one: firing the pings allocates nothing, whatever else the table holds.
fn timers_firing_among_a_thousand_suspicions_allocate_nothing() {
    let mut config = Config::default_lan().with_name("local");
    // No probe, gossip or push/pull in the window: those send datagrams.
    config.probe_interval = Duration::from_secs(3_600);
    config.push_pull_interval = Duration::from_secs(3_600);
    config.gossip_nodes = 0;
    let mut c = Core::new(config, addr(0), t(0), StdRng::seed_from_u64(1)).unwrap();
    let vsn = c.config().build_vsn_array();
    for i in 1..=1_000u32 {
        let name = format!("m{i}");
        let ip = [10, 0, (i >> 8) as u8, i as u8];
        c.handle_alive(&Alive { incarnation: 1, node: &name, addr: &ip, port: 7946, meta: &[], vsn: &vsn }, t(0));
        c.handle_suspect(&Accusation { incarnation: 1, node: &name, from: "someone" }, t(0));
    }
    for i in 0..300 {
        c.ping("nobody", addr(5_000 + i), t(u64::from(i)));
    }
    while c.poll_transmit().is_some() {}
    while c.poll_effect().is_some() {}
    assert_eq!(c.queue_lengths().suspicions, 1_000);
    // The pings time out one per call, long before any suspicion.
    assert_eq!(allocations_in_handle_timeout(&mut c, 300), 0);
    assert_eq!(c.queue_lengths().pings, 0);
    assert_eq!(c.queue_lengths().suspicions, 1_000);
}
