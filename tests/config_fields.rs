//! `Config` fields that change what the core does, seen from the driver's
//! side: datagrams in (`handle_packet`), what comes out (`poll_transmit`,
//! `poll_stream`, `poll_effect`) and what is counted (`metrics`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use ringswim::config::{Config, parse_cidrs};
use ringswim::swim::{Core, Effect, Error, Time};
use ringswim::wire::{Alive, IndirectPing, Message, Ping};

const ME: &str = "me";

fn at(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 7946)
}

fn now() -> Time {
    Time::from_epoch(Duration::from_secs(1_000))
}

/// A started core at 10.0.0.1 (no timers armed: nothing is sent unasked).
fn core(config: Config) -> Core<StdRng> {
    let mut core = Core::new(config.with_name(ME), at(1), now(), StdRng::seed_from_u64(1)).expect("a valid config");
    while core.poll_effect().is_some() {}
    core
}

/// Hands `msg` to `core` as a datagram from `from`; returns the datagrams it
/// answers with.
fn deliver(core: &mut Core<StdRng>, from: SocketAddr, msg: &Message<'_>) -> usize {
    let mut bytes = msg.to_vec();
    core.handle_packet(from, &mut bytes, now());
    std::iter::from_fn(|| core.poll_transmit()).count()
}

fn ping(source_node: &str) -> Message<'_> {
    Message::Ping(Ping { seq_no: 7, node: ME, source_addr: &[10, 0, 0, 2], source_port: 7946, source_node })
}

fn indirect_ping<'a>(node: &'a str, source_node: &'a str) -> Message<'a> {
    Message::IndirectPing(IndirectPing {
        seq_no: 8,
        target: &[10, 0, 0, 3],
        port: 7946,
        node,
        nack: true,
        source_addr: &[10, 0, 0, 2],
        source_port: 7946,
        source_node,
    })
}

/// Go `RequireNodeNames`: nothing goes to a peer the core knows only by
/// address (before, such pings were acked and relayed regardless).
#[test]
fn require_node_names_sends_nothing_to_unnamed_peers() {
    let mut open = core(Config::default_lan());
    assert_eq!(deliver(&mut open, at(2), &ping("")), 1, "without the setting an unnamed ping is acked");

    let mut strict = core(Config::default_lan().with_require_node_names(true));
    assert_eq!(deliver(&mut strict, at(2), &ping("")), 0, "no ack to a ping without SourceNode");
    assert_eq!(deliver(&mut strict, at(2), &indirect_ping("other", "")), 0, "no relay for an unnamed requester");
    assert_eq!(deliver(&mut strict, at(2), &indirect_ping("", "peer")), 0, "no relay to an unnamed target");
    assert_eq!(strict.metrics().get(ringswim::swim::metrics::PACKETS_REJECTED, "node_name_required"), 3);
    // Named peers are answered as usual.
    assert_eq!(deliver(&mut strict, at(2), &ping("peer")), 1);
    assert_eq!(deliver(&mut strict, at(2), &indirect_ping("other", "peer")), 1, "the relayed ping");
    assert_eq!(strict.metrics().get(ringswim::swim::metrics::PACKETS_REJECTED, "node_name_required"), 3);

    // A best-effort message to a node without a name is refused.
    let mut unnamed = strict.local_node().clone();
    unnamed.name = "".into();
    unnamed.addr = at(2).ip();
    assert_eq!(strict.send_best_effort(&unnamed, b"hi"), Err(Error::NodeNameRequired));
    assert_eq!(strict.poll_transmit(), None);
    unnamed.name = "peer".into();
    assert_eq!(strict.send_best_effort(&unnamed, b"hi"), Ok(()));
    assert!(strict.poll_transmit().is_some());

    // A join address names no node: each fails with Go's error, no stream.
    // (The named ping above found the node alone: it opened a push/pull
    // with that peer, `Extensions::push_pull_when_alone`.)
    assert!(strict.poll_stream().is_some_and(|s| s.to == at(2)));
    let join = strict.join(&[at(2), at(3)], now());
    assert_eq!(strict.poll_stream(), None);
    let completed = std::iter::from_fn(|| strict.poll_effect()).find_map(|e| match e {
        Effect::JoinCompleted { join: j, contacted, errors } if j == join => Some((contacted, errors)),
        _ => None,
    });
    let (contacted, errors) = completed.expect("the join completes at once");
    assert_eq!(contacted, 0);
    assert_eq!(errors.iter().map(|(a, _)| *a).collect::<Vec<_>>(), [at(2), at(3)]);
    assert!(errors.iter().all(|(_, e)| e.contains("node names are required")), "{errors:?}");
}

/// Go `CIDRsAllowed`, as Go's `handleAlive` applies it: the sender of an
/// alive message must be allowed, not only the address it announces
/// (before, only the announced address was checked).
#[test]
fn cidrs_allowed_blocks_alive_messages_from_outside() {
    let allowed = parse_cidrs(&["10.0.0.0/8"]).expect("CIDR");
    let mut c = core(Config::default_lan().with_cidrs_allowed(allowed));
    let vsn = c.config().build_vsn_array();
    let alive =
        Message::Alive(Alive { incarnation: 1, node: "peer", addr: &[10, 0, 0, 2], port: 7946, meta: &[], vsn: &vsn });
    let outsider = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 7946);
    deliver(&mut c, outsider, &alive);
    assert!(c.member("peer").is_none(), "an alive from a sender outside cidrs_allowed is ignored");
    assert_eq!(c.metrics().get(ringswim::swim::metrics::PACKETS_REJECTED, "cidr_blocked"), 1);
    deliver(&mut c, at(3), &alive);
    assert!(c.member("peer").is_some(), "from inside it is taken");
}
