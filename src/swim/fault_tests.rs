//! Faults found by trying public memberlist / Consul bug reports against the
//! core, with inputs a peer can send. Each test is the right value for the
//! *kind* of fault, and fails on the code before the fix.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::wire::message::MessageType;

use super::test_nodes::{PORT, addr, at, name};

fn core_with(i: u8, config: Config) -> Core<StdRng> {
    let config = config.with_name(name(i)).with_enable_compression(false);
    Core::new(config, addr(i), at(0), StdRng::seed_from_u64(u64::from(i))).expect("core")
}

fn core(i: u8) -> Core<StdRng> {
    core_with(i, Config::default_lan())
}

/// Node `j`'s alive at `incarnation`, as `c` would hear it by gossip.
fn alive_of(c: &Core<StdRng>, j: u8, incarnation: u32, vsn: &[u8], now: Time, into: &mut Core<StdRng>) {
    let _ = c;
    let (n, ip) = (name(j), ip_to_wire(addr(j).ip()));
    into.handle_alive(&Alive { incarnation, node: &n, addr: &ip, port: PORT, meta: &[], vsn }, now);
}

/// `c` learns of nodes `others` at incarnation 1.
fn knows(c: &mut Core<StdRng>, others: &[u8]) {
    let vsn = c.config().build_vsn_array();
    for &j in others {
        let c2 = core(j);
        alive_of(&c2, j, 1, &vsn, at(0), c);
    }
}

/// One datagram holding `msg`, as a peer sends it.
fn datagram(msg: &Message<'_>) -> Vec<u8> {
    msg.to_vec()
}

/// Delivers every queued alive about `subject` in `from`'s broadcast queue
/// to `to`, as gossip would.
fn gossip_news(from: &mut Core<StdRng>, to: &mut Core<StdRng>, now: Time) {
    for part in from.get_broadcasts(2, 64 * 1024) {
        let mut bytes = part.to_vec();
        to.handle_packet(addr(0), &mut bytes, now);
    }
}

// ----- incarnations a node cannot beat (hashicorp/memberlist #358) -----

/// One datagram `{"type":"suspect","fields":{"Incarnation":4294967295,
/// "Node":"<us>","From":"x"}}` made Go's (and our) refutation wrap to
/// incarnation 0; peers then kept us suspect and declared us dead. Whatever
/// incarnation the accusation carries, either every node refuses it or the
/// accused's refutation wins at its peers.
#[test]
fn a_node_always_beats_an_accusation_it_can_receive() {
    for accused in [1_000, MAX_ACCUSED_INCARNATION, MAX_ACCUSED_INCARNATION + 1, u32::MAX - 1, u32::MAX] {
        let (mut us, mut peer) = (core(0), core(1));
        knows(&mut us, &[1]);
        knows(&mut peer, &[0]);
        let before = us.incarnation();
        let from = name(9);
        let forged = Message::Suspect(Accusation { incarnation: accused, node: &name(0), from: &from });
        us.reset_broadcasts();
        us.handle_packet(addr(9), &mut datagram(&forged), at(10));
        peer.handle_packet(addr(9), &mut datagram(&forged), at(10));

        assert!(us.incarnation() >= before, "accused at {accused}: our incarnation went back to {}", us.incarnation());
        gossip_news(&mut us, &mut peer, at(20));
        let seen = peer.member(&name(0)).expect("peer knows us");
        assert_eq!(seen.state(), NodeState::Alive, "accused at {accused}: the peer still holds it");
        assert_eq!(seen.incarnation, us.incarnation(), "accused at {accused}");
        if accused > MAX_ACCUSED_INCARNATION {
            assert_eq!(
                us.metrics().get(crate::swim::metrics::PACKETS_REJECTED, "implausible_incarnation"),
                1,
                "accused at {accused}"
            );
            assert_eq!(us.incarnation(), before, "an implausible accusation changes nothing");
        }
    }
}

/// The ceiling must not make a member immune: one that refuted an
/// accusation at [`MAX_ACCUSED_INCARNATION`] (so now announces an
/// incarnation above it) is still suspected at that incarnation, refutes
/// again, and its leave and its death are still taken.
#[test]
fn a_member_above_the_accusation_ceiling_can_still_be_accused_and_leave() {
    let (mut a, mut b) = (core(0), core(1));
    knows(&mut a, &[1]);
    knows(&mut b, &[0]);
    let (na, nb, x) = (name(0), name(1), name(9));
    a.handle_suspect(&Accusation { incarnation: MAX_ACCUSED_INCARNATION, node: &na, from: &x }, at(1));
    let high = a.incarnation();
    assert_eq!(high, MAX_ACCUSED_INCARNATION + 1);
    gossip_news(&mut a, &mut b, at(2));
    assert_eq!(b.member(&na).unwrap().incarnation, high);

    // An honest suspicion at the incarnation `a` announced.
    b.handle_suspect(&Accusation { incarnation: high, node: &na, from: &nb }, at(3));
    assert_eq!(b.member(&na).unwrap().state(), NodeState::Suspect);
    a.handle_suspect(&Accusation { incarnation: high, node: &na, from: &nb }, at(3));
    assert_eq!(a.incarnation(), high + 1, "refuted again");
    gossip_news(&mut a, &mut b, at(4));
    assert_eq!(b.member(&na).unwrap().state(), NodeState::Alive);

    // Its leave.
    a.leave(at(5));
    gossip_news(&mut a, &mut b, at(6));
    assert_eq!(b.member(&na).unwrap().state(), NodeState::Left);

    // A death declared at the announced incarnation is taken too.
    let mut c = core(2);
    knows(&mut c, &[0]);
    let vsn = c.config().build_vsn_array();
    alive_of(&a, 0, high, &vsn, at(1), &mut c);
    c.handle_dead(&Accusation { incarnation: high, node: &na, from: &nb }, at(7));
    assert_eq!(c.member(&na).unwrap().state(), NodeState::Dead);
    assert_eq!(c.metrics().get(crate::swim::metrics::PACKETS_REJECTED, "implausible_incarnation"), 0);
}

/// The same for alive messages that speak for us, dead messages, and
/// push/pull entries: no input moves a node's incarnation past what its
/// refutations can reach, and our counter never wraps.
#[test]
fn no_input_makes_our_incarnation_wrap() {
    let mut us = core(0);
    knows(&mut us, &[1]);
    let vsn = us.config().build_vsn_array();
    let me = name(0);
    let other = name(1);
    let ip = ip_to_wire(addr(0).ip());
    let mut last = us.incarnation();
    for (step, inc) in [u32::MAX, MAX_INCARNATION, MAX_INCARNATION - 1, u32::MAX - 7].into_iter().enumerate() {
        let now = at(100 * step as u64);
        let claim = Alive { incarnation: inc, node: &me, addr: &ip, port: PORT, meta: b"imposter", vsn: &vsn };
        us.handle_packet(addr(9), &mut datagram(&Message::Alive(claim)), now);
        us.handle_packet(
            addr(9),
            &mut datagram(&Message::Dead(Accusation { incarnation: inc, node: &me, from: &other })),
            now,
        );
        let entry =
            PushNodeState { name: &me, addr: &ip, port: PORT, meta: &[], incarnation: inc, state: 2, vsn: &vsn };
        us.merge_state([entry], now);
        assert!(us.incarnation() >= last, "step {step}: {} after {last}", us.incarnation());
        assert!(us.incarnation() <= MAX_INCARNATION);
        last = us.incarnation();
    }
    assert_eq!(us.member(&me).unwrap().state(), NodeState::Alive);
}

// ----- malformed versions (hashicorp/memberlist #180, Consul #3217) -----

/// An alive about a new member with `"Vsn":""` (or a 2-byte `Vsn`) was stored
/// with versions 0, and from then on every join and push/pull failed the
/// version check ("protocol version (0) is incompatible: [1, 0]"). Such an
/// alive is refused and counted, and a push/pull entry with zero versions
/// (from a Go peer that stored one) is skipped without failing the exchange.
#[test]
fn malformed_versions_never_poison_the_cluster() {
    let good = Config::default_lan().build_vsn_array();
    let bad_vsns: [&[u8]; 5] = [&[], &[0x01, 0x05], &[0; 6], &[2, 1, 2, 0, 0, 0], &[1, 5, 2, 0, 0, 0, 9]];
    for vsn in bad_vsns {
        let mut us = core(0);
        let newcomer = name(7);
        let ip = ip_to_wire(addr(7).ip());
        let poisoned = Alive { incarnation: 1, node: &newcomer, addr: &ip, port: PORT, meta: &[], vsn };
        us.handle_packet(addr(7), &mut datagram(&Message::Alive(poisoned)), at(1));
        assert!(us.member(&newcomer).is_none(), "Vsn {vsn:02x?} stored");
        assert_eq!(us.metrics().get(crate::swim::metrics::PACKETS_REJECTED, "bad_vsn"), 1, "Vsn {vsn:02x?}");

        // A push/pull from a peer: one healthy entry and one with the bad
        // versions (as a Go peer that stored them would send it).
        let (peer, peer_ip) = (name(1), ip_to_wire(addr(1).ip()));
        let states = [
            PushNodeState { name: &peer, addr: &peer_ip, port: PORT, meta: &[], incarnation: 1, state: 0, vsn: &good },
            PushNodeState { name: &newcomer, addr: &ip, port: PORT, meta: &[], incarnation: 1, state: 0, vsn },
        ];
        us.merge_remote_state(&states, true, at(2)).expect("the exchange goes through");
        assert!(us.member(&peer).is_some_and(|m| m.state() == NodeState::Alive));
        assert!(us.member(&newcomer).is_none(), "Vsn {vsn:02x?} merged");
    }
}

// ----- false deaths with slow nodes at 99 nodes -----

/// Node 1 suspected at incarnation 3 (a running suspicion, with its own
/// timer), then, its refutation not having reached us, suspected again at 4
/// by another member. Go counts that as a Lifeguard confirmation of the
/// stale suspicion and shrinks its timer; ringswim starts a suspicion of
/// incarnation 4 with the full timeout.
#[test]
fn a_suspicion_at_a_higher_incarnation_starts_over() {
    let run = |config: Config| {
        let mut us = core_with(0, config);
        knows(&mut us, &[1, 2, 3, 4, 5, 6]);
        let vsn = us.config().build_vsn_array();
        let peer = core(1);
        alive_of(&peer, 1, 3, &vsn, at(0), &mut us);
        let (n1, a, b) = (name(1), name(2), name(3));
        us.handle_suspect(&Accusation { incarnation: 3, node: &n1, from: &a }, at(1_000));
        let first = us.suspicion_deadline(&n1).expect("suspected");
        us.handle_suspect(&Accusation { incarnation: 4, node: &n1, from: &b }, at(5_000));
        (first, us.suspicion_deadline(&n1).expect("still suspected"), us.member(&n1).unwrap().incarnation)
    };
    let (first, ours, incarnation) = run(Config::default_lan());
    assert_eq!(incarnation, 4);
    assert_eq!(ours, first + Duration::from_secs(4), "a fresh suspicion, 4 s later than the first");

    let (first, go, _) = run(Config::default_lan().with_go_behaviour());
    assert!(go < first, "Go: the stale suspicion confirmed and shrunk");
}

/// A member that missed our refutation suspects us at an incarnation we
/// already beat and tacks that onto its probe: we answer with our alive,
/// straight back to it. Go ignores the stale suspicion, and the member
/// declares us dead while we ack its pings.
#[test]
fn a_stale_accusation_gets_our_alive() {
    let mut us = core(0);
    knows(&mut us, &[1]);
    let (me, from) = (name(0), name(1));
    us.handle_suspect(&Accusation { incarnation: 1, node: &me, from: &from }, at(1));
    let current = us.incarnation();
    assert!(current > 1, "refuted");
    while us.poll_transmit().is_some() {}

    let stale = Message::Suspect(Accusation { incarnation: 1, node: &me, from: &from });
    us.handle_packet(addr(1), &mut datagram(&stale), at(2));
    let tx = us.poll_transmit().expect("an answer");
    assert_eq!(tx.to, addr(1));
    let mut peer = core(1);
    knows(&mut peer, &[0]);
    let mut bytes = tx.bytes;
    peer.handle_packet(addr(0), &mut bytes, at(3));
    assert_eq!(peer.member(&me).unwrap().incarnation, current, "the answer carries our incarnation");

    // Go's rules: nothing.
    let mut go = core_with(0, Config::default_lan().with_go_behaviour());
    knows(&mut go, &[1]);
    go.handle_suspect(&Accusation { incarnation: 1, node: &me, from: &from }, at(1));
    while go.poll_transmit().is_some() {}
    go.handle_packet(addr(1), &mut datagram(&stale), at(2));
    assert_eq!(go.poll_transmit(), None);
}

/// When a suspicion runs out, the member gets one last ping carrying the
/// suspicion, and one probe interval plus one probe timeout to refute it;
/// its refutation then saves it. Go declares it dead at once.
#[test]
fn a_suspicion_that_runs_out_pings_the_member_once_more() {
    let mut us = core(0);
    knows(&mut us, &[1, 2]);
    let (n1, from) = (name(1), name(2));
    us.handle_suspect(&Accusation { incarnation: 1, node: &n1, from: &from }, at(0));
    let deadline = us.suspicion_deadline(&n1).expect("suspected");
    while us.poll_transmit().is_some() {}
    us.handle_timeout(deadline);
    assert_eq!(us.member(&n1).unwrap().state(), NodeState::Suspect, "not dead yet");
    let ping = us.poll_transmit().expect("the last-chance ping");
    assert_eq!(ping.to, addr(1));
    let mut bytes = ping.bytes.clone();
    let mut decoder = crate::wire::PacketDecoder::new();
    let packet = decoder.decode(&mut bytes, &crate::wire::DecodeOptions::default()).expect("a packet");
    let types: Vec<MessageType> = packet.messages().map(|m| m.expect("message").message_type()).collect();
    assert_eq!(types, [MessageType::Suspect, MessageType::Ping]);

    // The member refutes (as a member that never heard of the suspicion does).
    let mut member = core(1);
    knows(&mut member, &[0]);
    let mut bytes = ping.bytes;
    member.handle_packet(addr(0), &mut bytes, deadline);
    let refutation = member.poll_transmit().expect("ack with the refutation");
    let mut bytes = refutation.bytes;
    us.handle_packet(addr(1), &mut bytes, deadline + Duration::from_millis(300));
    let wait = us.config().probe_interval + us.config().probe_timeout;
    us.handle_timeout(deadline + wait);
    assert_eq!(us.member(&n1).unwrap().state(), NodeState::Alive);

    // Without an answer, dead after the wait.
    let mut us = core(0);
    knows(&mut us, &[1, 2]);
    us.handle_suspect(&Accusation { incarnation: 1, node: &n1, from: &from }, at(0));
    us.handle_timeout(deadline);
    us.handle_timeout(deadline + wait);
    assert_eq!(us.member(&n1).unwrap().state(), NodeState::Dead);

    // Go: dead at the deadline.
    let mut go = core_with(0, Config::default_lan().with_go_behaviour());
    knows(&mut go, &[1, 2]);
    go.handle_suspect(&Accusation { incarnation: 1, node: &n1, from: &from }, at(0));
    go.handle_timeout(deadline);
    assert_eq!(go.member(&n1).unwrap().state(), NodeState::Dead);
}

/// A node whose own probes keep failing (its health score is up) handles
/// its input late, so the member's answer to the last-chance ping reaches
/// it late too: the wait stretches with its score, as Lifeguard stretches
/// its probes. (1,000 local nodes with 10 % slow ones: a slow node declared
/// another slow one dead, each a second late, 2 s against a 1.2 s wait.)
#[test]
fn an_unhealthy_node_waits_longer_for_the_last_chance() {
    let mut us = core(0);
    knows(&mut us, &[1, 2]);
    us.awareness_mut().apply_delta(3);
    let (n1, from) = (name(1), name(2));
    us.handle_suspect(&Accusation { incarnation: 1, node: &n1, from: &from }, at(0));
    let deadline = us.suspicion_deadline(&n1).expect("suspected");
    while us.poll_transmit().is_some() {}
    us.handle_timeout(deadline);
    let ping = us.poll_transmit().expect("the last-chance ping");
    let base = us.config().probe_interval + us.config().probe_timeout;
    // Past the healthy wait, still suspect: the answer may be on its way.
    us.handle_timeout(deadline + base);
    assert_eq!(us.member(&n1).unwrap().state(), NodeState::Suspect, "waits longer than a healthy node");
    // The refutation arrives after twice the healthy wait, and counts.
    let mut member = core(1);
    knows(&mut member, &[0]);
    let mut bytes = ping.bytes;
    member.handle_packet(addr(0), &mut bytes, deadline);
    let mut bytes = member.poll_transmit().expect("ack with the refutation").bytes;
    us.handle_packet(addr(1), &mut bytes, deadline + base * 2);
    us.handle_timeout(deadline + base * 4);
    assert_eq!(us.member(&n1).unwrap().state(), NodeState::Alive);
}

// ----- best-effort messages too large for a datagram (memberlist #348) -----

/// `send_best_effort` with more bytes than `udp_buffer_size` (or than a UDP
/// datagram can carry) is a typed error and sends nothing; what fits is sent
/// whole.
#[test]
fn best_effort_messages_that_cannot_fit_are_refused() {
    let mut us = core(0);
    knows(&mut us, &[1]);
    let node = us.member(&name(1)).unwrap().node.clone();
    let limit = us.user_message_limit(node.address(), node.pmax >= 5);
    assert!(limit < us.config().udp_buffer_size);

    us.send_best_effort(&node, &vec![7; limit]).expect("fits");
    let tx = us.poll_transmit().expect("sent");
    assert!(tx.bytes.len() <= us.config().udp_buffer_size);

    let err = us.send_best_effort(&node, &vec![7; limit + 1]).unwrap_err();
    assert_eq!(err, Error::MessageTooLarge { len: limit + 1, limit });
    assert_eq!(us.poll_transmit(), None, "nothing sent");

    // A buffer size beyond what UDP carries is refused up front (Core::new
    // validates the config); at the largest accepted, the limit stays within
    // one datagram.
    let too_big = Config::default_lan().with_name(name(0)).with_udp_buffer_size(1 << 20);
    let refused = Core::new(too_big, addr(0), at(0), StdRng::seed_from_u64(0)).err();
    assert!(matches!(&refused, Some(Error::Config(e)) if e.field() == "UDPBufferSize"), "{refused:?}");
    let mut big = core_with(0, Config::default_lan().with_udp_buffer_size(crate::config::MAX_UDP_PAYLOAD));
    knows(&mut big, &[1]);
    let limit = big.user_message_limit(node.address(), false);
    assert!(limit < max_udp_payload(node.address()));
    assert!(matches!(big.send_best_effort(&node, &vec![0; 70_000]), Err(Error::MessageTooLarge { .. })));
}

/// Stale accusations are answered once per sender per probe interval, and
/// to at most [`STALE_ANSWERS_PER_PROBE_INTERVAL`] senders: the relays of
/// a suspicion in a large cluster and the members pinging us one last time
/// all get their answer, a flood does not multiply.
#[test]
fn stale_accusations_are_answered_once_per_sender() {
    let mut us = core(0);
    knows(&mut us, &[1]);
    let (me, from) = (name(0), name(1));
    us.handle_suspect(&Accusation { incarnation: 1, node: &me, from: &from }, at(1));
    while us.poll_transmit().is_some() {}
    let stale = Message::Suspect(Accusation { incarnation: 1, node: &me, from: &from });
    let sender = |i: usize| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32)), PORT);
    let flood = STALE_ANSWERS_PER_PROBE_INTERVAL + 100;
    for i in 0..flood {
        us.handle_packet(sender(i), &mut datagram(&stale), at(2));
        us.handle_packet(sender(i), &mut datagram(&stale), at(2));
    }
    let mut answered = std::collections::BTreeSet::new();
    while let Some(tx) = us.poll_transmit() {
        assert!(answered.insert(tx.to), "{} answered twice", tx.to);
    }
    assert_eq!(answered.len(), STALE_ANSWERS_PER_PROBE_INTERVAL);
    let unanswered = us.metrics().get(crate::swim::metrics::PACKETS_REJECTED, "stale_accusation_unanswered");
    assert_eq!(unanswered as usize, 2 * flood - STALE_ANSWERS_PER_PROBE_INTERVAL);

    // The next probe interval, the same sender is answered again.
    us.handle_packet(sender(0), &mut datagram(&stale), at(2) + us.config().probe_interval);
    assert_eq!(us.poll_transmit().map(|tx| tx.to), Some(sender(0)));
}
