//! Scenarios from Go's `state_test.go` (and the state parts of
//! `memberlist_test.go`), on virtual time: where Go sleeps, these advance
//! `now`; where Go waits for a timer, these assert its deadline.
//!
//! Go's `GetMemberlist` builds a memberlist without its own node in the table;
//! [`Core::new`] always adds it, so node counts here are one higher, and the
//! helper clears the local node's alive from the queue and its join event to
//! start from Go's empty queue.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::delegate::{AliveDelegate, Delegate, MergeDelegate};
use crate::wire::message::MessageType;

const LOCAL: &str = "local";
const LOCALHOST: [u8; 4] = [127, 0, 0, 1];

fn ms(m: u64) -> Duration {
    Duration::from_millis(m)
}

/// Virtual time: `secs` seconds after an arbitrary epoch (not zero, so that a
/// fresh member's `state_change` of zero is distinguishable).
fn t(secs: u64) -> Time {
    Time::from_epoch(Duration::from_secs(1_000 + secs))
}

/// Go's rules, step for step: the ringswim extensions are tested on their
/// own (`extensions_tests.rs`).
fn config() -> Config {
    Config::default_local().with_name(LOCAL).with_go_behaviour()
}

fn core_with(config: Config) -> Core<StdRng> {
    let addr = SocketAddr::from((LOCALHOST, 7946));
    let mut core = Core::new(config, addr, t(0), StdRng::seed_from_u64(1)).expect("core");
    core.drain_effects().for_each(drop);
    core.reset_broadcasts();
    core
}

fn core() -> Core<StdRng> {
    core_with(config())
}

fn vsn() -> [u8; 6] {
    config().build_vsn_array()
}

fn alive<'a>(node: &'a str, addr: &'a [u8], incarnation: u32, vsn: &'a [u8]) -> Alive<'a> {
    Alive { incarnation, node, addr, port: 0, meta: &[], vsn }
}

fn accuse(node: &str, incarnation: u32) -> Accusation<'_> {
    Accusation { incarnation, node, from: "" }
}

fn state(core: &Core<StdRng>, name: &str) -> NodeState {
    core.member(name).expect("member").state()
}

/// Go's `orderedView(true)[0]`: the type of the queued message (asserted only
/// with one queued).
fn queued_types(core: &Core<StdRng>) -> Vec<MessageType> {
    core.broadcasts().iter().map(|q| MessageType::from_byte(q.message[0]).expect("type")).collect()
}

fn events(core: &mut Core<StdRng>) -> Vec<(NodeEventKind, String)> {
    core.drain_effects()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some((ev.kind, ev.node.name.to_string())),
            _ => None,
        })
        .collect()
}

/// Go `TestMemberList_AliveNode_NewNode`.
#[test]
fn go_alive_node_new_node() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(1));
    assert_eq!(c.num_nodes(), 2, "should add node");
    let m = c.member("test").expect("should map node");
    assert_eq!(m.incarnation, 1);
    assert_eq!(m.state(), NodeState::Alive);
    assert_eq!(m.state_change, t(1));
    assert_eq!(events(&mut c), [(NodeEventKind::Join, "test".to_owned())]);
    assert_eq!(c.broadcasts().num_queued(), 1);
    assert_eq!(queued_types(&c), [MessageType::Alive]);
}

/// Go `TestMemberList_AliveNode_SuspectNode` (the member is made suspect by a
/// suspect message rather than by editing the table).
#[test]
fn go_alive_node_suspect_node() {
    let mut c = core();
    let v = vsn();
    let mut a = alive("test", &LOCALHOST, 1, &v);
    c.handle_alive(&a, t(0));
    c.handle_suspect(&accuse("test", 1), t(1));
    assert_eq!(state(&c, "test"), NodeState::Suspect);
    assert!(c.poll_timeout().is_some());
    events(&mut c);

    // Old incarnation: no change.
    c.handle_alive(&a, t(2));
    assert_eq!(state(&c, "test"), NodeState::Suspect, "update with old incarnation!");

    a.incarnation = 2;
    c.handle_alive(&a, t(3));
    assert_eq!(state(&c, "test"), NodeState::Alive, "no update with new incarnation!");
    assert_eq!(c.member("test").unwrap().state_change, t(3));
    assert_eq!(c.poll_timeout(), None, "suspicion timer cleared");
    assert_eq!(events(&mut c), [], "got bad join message");
    assert_eq!(c.broadcasts().num_queued(), 1);
    assert_eq!(queued_types(&c), [MessageType::Alive]);
}

/// Go `TestMemberList_AliveNode_Idempotent`.
#[test]
fn go_alive_node_idempotent() {
    let mut c = core();
    let v = vsn();
    let mut a = alive("test", &LOCALHOST, 1, &v);
    c.handle_alive(&a, t(0));
    events(&mut c);
    a.incarnation = 2;
    c.handle_alive(&a, t(5));
    assert_eq!(state(&c, "test"), NodeState::Alive);
    assert_eq!(c.member("test").unwrap().state_change, t(0), "should not change state");
    assert_eq!(events(&mut c), []);
    assert_eq!(c.broadcasts().num_queued(), 1, "expected only one queued message");
}

/// Go `TestMemberList_AliveNode_ChangeMeta` (serf GH-58).
#[test]
fn go_alive_node_change_meta() {
    let mut c = core();
    let v = vsn();
    let mut a = Alive { meta: b"val1", ..alive("test", &LOCALHOST, 1, &v) };
    c.handle_alive(&a, t(0));
    events(&mut c);
    a.incarnation = 2;
    a.meta = b"val2";
    c.handle_alive(&a, t(1));
    assert_eq!(c.member("test").unwrap().node.meta, b"val2");
    let effects: Vec<Effect> = c.drain_effects().collect();
    match effects.as_slice() {
        [Effect::Event(NodeEvent { kind: NodeEventKind::Update, node })] => {
            assert_eq!(node.meta, b"val2");
            assert_eq!(node, &c.member("test").unwrap().node);
        }
        other => panic!("bad events {other:?}"),
    }
}

/// Go `TestMemberList_AliveNode_Refute`, plus the incarnation and awareness
/// effects of a refute.
#[test]
fn go_alive_node_refute() {
    let mut c = core();
    let v = vsn();
    let s = Alive { meta: b"foo", ..alive(LOCAL, &LOCALHOST, 2, &v) };
    c.handle_alive(&s, t(1));
    let me = c.member(LOCAL).unwrap();
    assert_eq!(me.state(), NodeState::Alive);
    assert!(me.node.meta.is_empty(), "meta should still be empty");
    assert_eq!(me.incarnation, 3, "refute beats the accusation");
    assert_eq!(c.incarnation(), 3);
    assert_eq!(c.health_score(), 1);
    assert_eq!(queued_types(&c), [MessageType::Alive]);
    let msg = c.broadcasts().iter().next().unwrap().message.clone();
    match Message::decode(&msg).unwrap() {
        Message::Alive(a) => {
            assert_eq!((a.node, a.incarnation, a.meta, a.port), (LOCAL, 3, &b""[..], 7946));
            assert_eq!(a.vsn, v);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events(&mut c), []);
}

/// Our own alive replayed (same incarnation, meta and versions) is not
/// refuted; the same incarnation with other meta is (Go's restart-with-new-
/// config case in `aliveNode`).
#[test]
fn alive_about_us_replay_and_restart() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&Alive { port: 7946, ..alive(LOCAL, &LOCALHOST, 1, &v) }, t(1));
    assert_eq!((c.incarnation(), c.health_score(), c.broadcasts().num_queued()), (1, 0, 0));
    c.handle_alive(&Alive { meta: b"old", ..alive(LOCAL, &LOCALHOST, 1, &v) }, t(1));
    assert_eq!((c.incarnation(), c.health_score(), c.broadcasts().num_queued()), (2, 1, 1));
    // Older than what we announced: ignored.
    c.handle_alive(&Alive { meta: b"old", ..alive(LOCAL, &LOCALHOST, 1, &v) }, t(2));
    assert_eq!((c.incarnation(), c.health_score()), (2, 1));
}

/// Go `TestMemberList_AliveNode_Conflict`, with the reclaim time asserted at
/// its edge (Go: strictly more than `DeadNodeReclaimTime` since the death).
#[test]
fn go_alive_node_conflict() {
    let mut c = core_with(config().with_dead_node_reclaim_time(ms(10)));
    let v = vsn();
    c.handle_alive(&Alive { port: 8000, ..alive("test", &LOCALHOST, 1, &v) }, t(0));
    c.reset_broadcasts();
    events(&mut c);

    let s = Alive { port: 9000, meta: b"foo", ..alive("test", &[127, 0, 0, 2], 2, &v) };
    c.handle_alive(&s, t(1));
    let m = c.member("test").unwrap();
    assert_eq!(m.state(), NodeState::Alive);
    assert!(m.node.meta.is_empty());
    assert_eq!(m.node.addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "address should not be updated");
    assert_eq!(m.node.port, 8000, "port should not be updated");
    assert_eq!(c.broadcasts().num_queued(), 0);
    let effects: Vec<Effect> = c.drain_effects().collect();
    match effects.as_slice() {
        [Effect::Conflict { existing, other }] => {
            assert_eq!((existing.name.as_str(), existing.port), ("test", 8000));
            assert_eq!((other.name.as_str(), other.port, other.meta.as_slice()), ("test", 9000, &b"foo"[..]));
        }
        other => panic!("bad effects {other:?}"),
    }

    c.handle_dead(&accuse("test", 2), t(2));
    c.reset_broadcasts();
    assert_eq!(state(&c, "test"), NodeState::Dead);

    // Exactly the reclaim time later: still a conflict.
    let s2 = Alive { incarnation: 3, ..s };
    c.handle_alive(&s2, t(2) + ms(10));
    assert_eq!(state(&c, "test"), NodeState::Dead);

    c.handle_alive(&s2, t(2) + ms(11));
    let m = c.member("test").unwrap();
    assert_eq!(m.state(), NodeState::Alive);
    assert_eq!(m.node.meta, b"foo");
    assert_eq!(m.node.addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert_eq!(m.node.port, 9000);
}

/// Without `DeadNodeReclaimTime` a dead member's name is never reclaimed by
/// another address; a left one always is, even at an older incarnation.
#[test]
fn dead_node_reclaim_rules() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&Alive { port: 8000, ..alive("dead", &LOCALHOST, 5, &v) }, t(0));
    c.handle_alive(&Alive { port: 8000, ..alive("left", &LOCALHOST, 5, &v) }, t(0));
    c.handle_dead(&accuse("dead", 5), t(1));
    c.handle_dead(&Accusation { incarnation: 5, node: "left", from: "left" }, t(1));
    events(&mut c);
    c.handle_alive(&Alive { port: 9000, ..alive("dead", &LOCALHOST, 6, &v) }, t(10_000));
    assert_eq!(state(&c, "dead"), NodeState::Dead);
    assert!(matches!(c.poll_effect(), Some(Effect::Conflict { .. })));
    c.handle_alive(&Alive { port: 9000, ..alive("left", &LOCALHOST, 1, &v) }, t(2));
    let m = c.member("left").unwrap();
    assert_eq!((m.state(), m.incarnation, m.node.port), (NodeState::Alive, 1, 9000));
    assert_eq!(events(&mut c), [(NodeEventKind::Join, "left".to_owned())]);
}

/// Go `TestMemberList_SuspectNode_NoNode`.
#[test]
fn go_suspect_node_no_node() {
    let mut c = core();
    c.handle_suspect(&accuse("test", 1), t(1));
    assert_eq!(c.num_nodes(), 1, "don't expect nodes");
    assert_eq!(c.poll_timeout(), None);
}

/// Go `TestMemberList_SuspectNode`: suspect, then dead at the suspicion
/// deadline (here `SuspicionMult` 1 gives k = 0, so the timeout is the
/// minimum, 1 × probe interval).
#[test]
fn go_suspect_node() {
    let mut c = core_with(config().with_probe_interval(ms(1)).with_suspicion_mult(1));
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    events(&mut c);
    c.handle_suspect(&accuse("test", 1), t(1));
    assert_eq!(state(&c, "test"), NodeState::Suspect);
    assert_eq!(c.member("test").unwrap().state_change, t(1));
    assert_eq!(queued_types(&c), [MessageType::Suspect]);

    let deadline = c.poll_timeout().expect("suspicion timer");
    assert_eq!(deadline, t(1) + ms(1));
    c.handle_timeout(t(1) + (ms(1) - Duration::from_nanos(1)));
    assert_eq!(state(&c, "test"), NodeState::Suspect);
    c.handle_timeout(deadline);
    assert_eq!(state(&c, "test"), NodeState::Dead);
    assert_eq!(c.member("test").unwrap().state_change, deadline, "should increment time");
    assert_eq!(queued_types(&c), [MessageType::Dead]);
    let msg = c.broadcasts().iter().next().unwrap().message.clone();
    assert_eq!(Message::decode(&msg).unwrap(), Message::Dead(Accusation { incarnation: 1, node: "test", from: LOCAL }));
    assert_eq!(events(&mut c), [(NodeEventKind::Leave, "test".to_owned())]);
    assert_eq!(c.poll_timeout(), None);
}

/// Go `TestMemberList_SuspectNode_DoubleSuspect`.
#[test]
fn go_suspect_node_double_suspect() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    let s = accuse("test", 1);
    c.handle_suspect(&s, t(1));
    assert_eq!(state(&c, "test"), NodeState::Suspect);
    c.reset_broadcasts();
    c.handle_suspect(&s, t(2));
    assert_eq!(c.member("test").unwrap().state_change, t(1), "unexpected state change");
    assert_eq!(c.broadcasts().num_queued(), 0);
}

/// Go `TestMemberList_SuspectNode_OldSuspect`.
#[test]
fn go_suspect_node_old_suspect() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 10, &v), t(0));
    c.reset_broadcasts();
    c.handle_suspect(&accuse("test", 1), t(1));
    assert_eq!(state(&c, "test"), NodeState::Alive);
    assert_eq!(c.broadcasts().num_queued(), 0);
}

/// Go `TestMemberList_SuspectNode_Refute`.
#[test]
fn go_suspect_node_refute() {
    let mut c = core();
    assert_eq!(c.health_score(), 0);
    c.handle_suspect(&accuse(LOCAL, 1), t(1));
    assert_eq!(state(&c, LOCAL), NodeState::Alive);
    assert_eq!(queued_types(&c), [MessageType::Alive]);
    assert_eq!(c.health_score(), 1, "health should have been dinged");
    assert_eq!(c.incarnation(), 2);
    assert_eq!(c.poll_timeout(), None, "no timer about ourselves");
}

/// Suspicion confirmations (Go `suspectNode` with a running timer): a new
/// accuser shrinks the deadline and is re-gossiped; a known one, or one past
/// k, is not. k = SuspicionMult − 2 = 1 here with enough members.
#[test]
fn suspicion_confirmations_and_k() {
    let mut c = core();
    let v = vsn();
    for name in ["test", "a", "b"] {
        c.handle_alive(&alive(name, &LOCALHOST, 1, &v), t(0));
    }
    c.reset_broadcasts();
    c.handle_suspect(&Accusation { incarnation: 1, node: "test", from: "a" }, t(1));
    // n = 4: min = 3 × max(1, log10 4) × 1 s = 3 s, max = 6 × min.
    assert_eq!(c.suspicion_deadline("test"), Some(t(1) + Duration::from_secs(18)));
    c.reset_broadcasts();
    c.handle_suspect(&Accusation { incarnation: 1, node: "test", from: "a" }, t(2));
    assert_eq!(c.broadcasts().num_queued(), 0, "same accuser: no news");
    c.handle_suspect(&Accusation { incarnation: 1, node: "test", from: "b" }, t(2));
    assert_eq!(queued_types(&c), [MessageType::Suspect], "confirmation re-gossiped");
    assert_eq!(c.suspicion_deadline("test"), Some(t(1) + Duration::from_secs(3)));
    c.reset_broadcasts();
    c.handle_suspect(&Accusation { incarnation: 1, node: "test", from: LOCAL }, t(2));
    assert_eq!(c.broadcasts().num_queued(), 0, "past k: no news");
    // A higher incarnation only confirms; it does not update the member.
    c.handle_suspect(&Accusation { incarnation: 7, node: "test", from: "z" }, t(2));
    assert_eq!(c.member("test").unwrap().incarnation, 1);

    c.handle_timeout(t(4));
    assert_eq!(state(&c, "test"), NodeState::Dead);
}

/// k drops to 0 when there are too few members to confirm (Go: n − 2 < k).
#[test]
fn suspicion_k_zero_in_small_cluster() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    c.handle_suspect(&Accusation { incarnation: 1, node: "test", from: "a" }, t(1));
    // n = 2: min = 3 s and no confirmations expected, so the timeout is min.
    assert_eq!(c.suspicion_deadline("test"), Some(t(1) + Duration::from_secs(3)));
    c.reset_broadcasts();
    c.handle_suspect(&Accusation { incarnation: 1, node: "test", from: "b" }, t(2));
    assert_eq!(c.broadcasts().num_queued(), 0);
}

/// Go `TestMemberList_DeadNode_NoNode`.
#[test]
fn go_dead_node_no_node() {
    let mut c = core();
    c.handle_dead(&accuse("test", 1), t(1));
    assert_eq!(c.num_nodes(), 1);
}

/// Go `TestMemberList_DeadNodeLeft`.
#[test]
fn go_dead_node_left() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&Alive { port: 8000, ..alive("node1", &LOCALHOST, 1, &v) }, t(0));
    assert_eq!(events(&mut c), [(NodeEventKind::Join, "node1".to_owned())]);
    c.handle_dead(&Accusation { incarnation: 1, node: "node1", from: "node1" }, t(1));
    assert_eq!(events(&mut c), [(NodeEventKind::Leave, "node1".to_owned())]);
    assert_eq!(state(&c, "node1"), NodeState::Left);
    assert_eq!(queued_types(&c), [MessageType::Dead]);

    let s2 = Alive { port: 9000, meta: b"foo", ..alive("node1", &[127, 0, 0, 2], 3, &v) };
    c.handle_alive(&s2, t(2));
    assert_eq!(events(&mut c), [(NodeEventKind::Join, "node1".to_owned())]);
    let m = c.member("node1").unwrap();
    assert_eq!(m.state(), NodeState::Alive);
    assert_eq!(m.node.meta, b"foo");
    assert_eq!(m.node.addr, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert_eq!(m.node.port, 9000);
}

/// Go `TestMemberList_DeadNode`.
#[test]
fn go_dead_node() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    events(&mut c);
    c.handle_dead(&accuse("test", 1), t(1));
    assert_eq!(state(&c, "test"), NodeState::Dead);
    assert_eq!(c.member("test").unwrap().state_change, t(1));
    assert_eq!(events(&mut c), [(NodeEventKind::Leave, "test".to_owned())]);
    assert_eq!(queued_types(&c), [MessageType::Dead]);
}

/// Go `TestMemberList_DeadNode_Double`.
#[test]
fn go_dead_node_double() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    c.handle_dead(&accuse("test", 1), t(1));
    c.reset_broadcasts();
    events(&mut c);
    c.handle_dead(&accuse("test", 2), t(2));
    assert_eq!(events(&mut c), [], "should not get leave");
    assert_eq!(c.broadcasts().num_queued(), 0);
}

/// Go `TestMemberList_DeadNode_OldDead`.
#[test]
fn go_dead_node_old_dead() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 10, &v), t(0));
    c.handle_dead(&accuse("test", 1), t(1));
    assert_eq!(state(&c, "test"), NodeState::Alive);
}

/// Go `TestMemberList_DeadNode_AliveReplay`.
#[test]
fn go_dead_node_alive_replay() {
    let mut c = core();
    let v = vsn();
    let a = alive("test", &LOCALHOST, 10, &v);
    c.handle_alive(&a, t(0));
    c.handle_dead(&accuse("test", 10), t(1));
    c.handle_alive(&a, t(2));
    assert_eq!(state(&c, "test"), NodeState::Dead);
}

/// Go `TestMemberList_DeadNode_Refute`.
#[test]
fn go_dead_node_refute() {
    let mut c = core();
    assert_eq!(c.health_score(), 0);
    c.handle_dead(&accuse(LOCAL, 1), t(1));
    assert_eq!(state(&c, LOCAL), NodeState::Alive);
    assert_eq!(queued_types(&c), [MessageType::Alive]);
    assert_eq!(c.health_score(), 1, "we should have been dinged");
    assert_eq!(events(&mut c), []);
}

/// Go's `refute` skips past the accused incarnation. Go's `uint32`
/// arithmetic wraps (accused at `u32::MAX`, it announces 0); ringswim refuses
/// accusations above [`MAX_ACCUSED_INCARNATION`] and never wraps (see
/// `fault_tests`).
#[test]
fn refute_skips_past_accusation() {
    let mut c = core();
    c.handle_dead(&accuse(LOCAL, 10), t(1));
    assert_eq!((c.incarnation(), c.member(LOCAL).unwrap().incarnation), (11, 11));
    c.handle_suspect(&accuse(LOCAL, u32::MAX), t(2));
    assert_eq!(c.incarnation(), 11, "refused");
    c.handle_suspect(&accuse(LOCAL, MAX_ACCUSED_INCARNATION), t(3));
    assert_eq!(c.incarnation(), MAX_ACCUSED_INCARNATION + 1);
    assert_eq!(c.health_score(), 2);
}

/// Go `TestMemberList_MergeState`.
#[test]
fn go_merge_state() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test1", &[127, 0, 0, 1], 1, &v), t(0));
    c.handle_alive(&alive("test2", &[127, 0, 0, 2], 1, &v), t(0));
    c.handle_alive(&alive("test3", &[127, 0, 0, 3], 1, &v), t(0));
    c.handle_suspect(&accuse("test1", 1), t(0));
    events(&mut c);

    // Port 7946: what `handle_alive` made of the zero ports above (Go's test
    // calls `aliveNode` directly, with port 0 on both sides).
    // Go's test leaves the versions out; ringswim refuses alives without
    // them.
    let entry = |name, addr, incarnation, state: NodeState| PushNodeState {
        name,
        addr,
        port: 7946,
        incarnation,
        state: state.into(),
        vsn: &v,
        ..Default::default()
    };
    let remote = [
        entry("test1", &[127, 0, 0, 1][..], 2, NodeState::Alive),
        entry("test2", &[127, 0, 0, 2][..], 1, NodeState::Suspect),
        entry("test3", &[127, 0, 0, 3][..], 1, NodeState::Dead),
        entry("test4", &[127, 0, 0, 4][..], 2, NodeState::Alive),
    ];
    c.merge_state(remote, t(1));

    let m = |name| c.member(name).map(|m| (m.state(), m.incarnation));
    assert_eq!(m("test1"), Some((NodeState::Alive, 2)));
    assert_eq!(m("test2"), Some((NodeState::Suspect, 1)));
    assert_eq!(m("test3").map(|s| s.0), Some(NodeState::Suspect));
    assert_eq!(m("test4"), Some((NodeState::Alive, 2)));
    assert_eq!(events(&mut c), [(NodeEventKind::Join, "test4".to_owned())]);
    // The dead verdict became a suspicion of ours.
    assert!(c.suspicion_deadline("test3").is_some());
    assert!(c.suspicion_deadline("test1").is_none());
}

/// `mergeState`: a left entry is a dead message from the member itself.
#[test]
fn merge_state_left_is_left() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    let left = PushNodeState {
        name: "test",
        addr: &LOCALHOST,
        incarnation: 1,
        state: NodeState::Left.into(),
        ..Default::default()
    };
    c.merge_state([left, PushNodeState { state: 9, name: "odd", ..left }], t(1));
    assert_eq!(state(&c, "test"), NodeState::Left);
    assert!(c.member("odd").is_none(), "unknown states are skipped");
}

struct Refuse;
impl MergeDelegate for Refuse {
    fn notify_merge(&self, peers: &[Node]) -> Result<(), String> {
        Err(format!("no thanks, {} peers", peers.len()))
    }
}

/// Go `mergeRemoteState`: versions are verified against the whole table, and
/// a merge delegate can refuse a join (but is not asked otherwise).
#[test]
fn merge_remote_state_checks_versions_and_delegate() {
    let v = vsn();
    let entry = PushNodeState {
        name: "test",
        addr: &LOCALHOST,
        incarnation: 1,
        state: NodeState::Alive.into(),
        vsn: &v,
        ..Default::default()
    };

    let mut c = core_with(config().with_merge(Arc::new(Refuse)));
    assert_eq!(c.merge_remote_state(&[entry], true, t(1)), Err(Error::MergeRejected("no thanks, 1 peers".into())));
    assert!(c.member("test").is_none());
    assert_eq!(c.merge_remote_state(&[entry], false, t(1)), Ok(()));
    assert_eq!(c.member("test").unwrap().node.port, 7946, "zero port means bind_port");

    let mut c = core();
    let future = [5, 5, 5, 0, 0, 0];
    let err = c.merge_remote_state(&[PushNodeState { vsn: &future, ..entry }], false, t(1));
    assert!(matches!(err, Err(Error::Version(VersionError::Protocol { .. }))), "{err:?}");
    assert!(c.member("test").is_none());
}

struct Meta(Mutex<Vec<u8>>);
impl Delegate for Meta {
    fn node_meta(&self, _limit: usize) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

/// `Create`/`setAlive`: the local node joins its own table alive at
/// incarnation 1 with the delegate's meta, is announced, and gets a join
/// event; meta over 512 bytes is refused (Go panics).
#[test]
fn new_announces_local_node() {
    let delegate = Arc::new(Meta(Mutex::new(b"role=db".to_vec())));
    let addr = SocketAddr::from((LOCALHOST, 7946));
    let cfg = config().with_delegate(delegate.clone());
    let mut c = Core::new(cfg.clone(), addr, t(0), StdRng::seed_from_u64(1)).unwrap();
    let me = c.local_node().clone();
    assert_eq!((me.name.as_str(), me.address(), me.meta.as_slice()), (LOCAL, addr, &b"role=db"[..]));
    assert_eq!(me.vsn(), vsn());
    assert_eq!(c.member(LOCAL).unwrap().incarnation, 1);
    assert_eq!(events(&mut c), [(NodeEventKind::Join, LOCAL.to_owned())]);
    let msg = c.broadcasts().iter().next().unwrap().message.clone();
    assert_eq!(
        Message::decode(&msg).unwrap(),
        Message::Alive(Alive {
            incarnation: 1,
            node: LOCAL,
            addr: &LOCALHOST,
            port: 7946,
            meta: b"role=db",
            vsn: &vsn()
        })
    );

    *delegate.0.lock().unwrap() = vec![0; 513];
    assert_eq!(Core::new(cfg, addr, t(0), StdRng::seed_from_u64(1)).err(), Some(Error::MetaTooLarge { len: 513 }));
}

/// Go's `Create` refuses what `Config::validate` refuses; so does
/// `Core::new`, naming the Go field, before it announces anything.
#[test]
fn new_refuses_an_invalid_config() {
    let addr = SocketAddr::from((LOCALHOST, 7946));
    for (bad, field) in [
        (config().with_name(""), "Name"),
        (config().with_protocol_version(9), "ProtocolVersion"),
        (config().with_probe_interval(Duration::ZERO), "ProbeInterval"),
        (config().with_handoff_queue_depth(0), "HandoffQueueDepth"),
        (config().with_udp_buffer_size(10), "UDPBufferSize"),
        (config().with_secret_key(vec![1; 5]), "SecretKey"),
    ] {
        match Core::new(bad, addr, t(0), StdRng::seed_from_u64(1)) {
            Err(Error::Config(err)) => {
                assert_eq!(err.field(), field, "{err}");
                assert!(Error::Config(err.clone()).to_string().contains(field), "{err}");
            }
            Err(other) => panic!("{field}: expected a config error, got {other}"),
            Ok(_) => panic!("{field}: Core::new accepted an invalid config"),
        }
    }
}

/// Go `UpdateNode` (the state part of `TestMemberlist_delegateMeta_Update`):
/// new meta, new incarnation, an update event and a broadcast whose sending
/// is reported.
#[test]
fn update_node_rebroadcasts_meta() {
    let delegate = Arc::new(Meta(Mutex::new(b"v1".to_vec())));
    let mut c = core_with(config().with_delegate(delegate.clone()));
    *delegate.0.lock().unwrap() = b"v2".to_vec();
    c.update_node(t(1)).unwrap();
    assert_eq!(c.local_node().meta, b"v2");
    assert_eq!(c.member(LOCAL).unwrap().incarnation, 2);
    assert_eq!(events(&mut c), [(NodeEventKind::Update, LOCAL.to_owned())]);
    assert_eq!(queued_types(&c), [MessageType::Alive]);
    assert!(!c.update_broadcast_sent());
    // One member: the limit is retransmit_mult (2) × 1 sends.
    assert_eq!(c.get_broadcasts(2, 1400).len(), 1);
    assert!(!c.update_broadcast_sent());
    assert_eq!(c.get_broadcasts(2, 1400).len(), 1);
    assert!(c.update_broadcast_sent());
}

/// Go `Leave` (the state part of `TestMemberlist_Leave`): we become left,
/// announce a dead message from ourselves, and ignore news about ourselves
/// afterwards (no refute, no rejoin).
#[test]
fn leave_marks_left_and_announces() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("test", &LOCALHOST, 1, &v), t(0));
    c.reset_broadcasts();
    events(&mut c);
    assert!(c.any_alive());

    c.leave(t(1));
    assert!(c.has_left());
    assert_eq!(state(&c, LOCAL), NodeState::Left);
    assert_eq!(events(&mut c), [(NodeEventKind::Leave, LOCAL.to_owned())]);
    let msg = c.broadcasts().iter().next().unwrap().message.clone();
    assert_eq!(Message::decode(&msg).unwrap(), Message::Dead(Accusation { incarnation: 1, node: LOCAL, from: LOCAL }));
    assert!(!c.leave_broadcast_sent());
    // Two members: the limit is retransmit_mult (2) × 1 sends.
    assert_eq!(c.get_broadcasts(2, 1400).len(), 1);
    assert!(!c.leave_broadcast_sent());
    assert_eq!(c.get_broadcasts(2, 1400).len(), 1);
    assert!(c.leave_broadcast_sent());

    c.leave(t(2));
    c.handle_alive(&alive(LOCAL, &LOCALHOST, 9, &v), t(2));
    c.handle_suspect(&accuse(LOCAL, 9), t(2));
    c.handle_dead(&accuse(LOCAL, 9), t(2));
    assert_eq!(state(&c, LOCAL), NodeState::Left);
    assert_eq!((c.incarnation(), c.health_score(), c.broadcasts().num_queued()), (1, 0, 0));
    c.update_node(t(3)).unwrap();
    assert_eq!(state(&c, LOCAL), NodeState::Left);
}

/// `aliveNode`'s version checks: pmin or pmax 0, or pmin > pmax, is ignored,
/// as in Go; so is, unlike Go, a `Vsn` that is not six well-formed bytes
/// (Go stores versions 0 for one under 3 bytes); the alive delegate may veto.
#[test]
fn alive_version_checks_and_alive_delegate() {
    let mut c = core();
    let bad: [&[u8]; 6] =
        [&[0, 5, 2, 0, 0, 0], &[1, 0, 2, 0, 0, 0], &[3, 2, 2, 0, 0, 0], &[], &[1, 5], &[1, 5, 6, 0, 0, 0]];
    for (i, bad) in bad.into_iter().enumerate() {
        c.handle_alive(&alive("test", &LOCALHOST, 1, bad), t(0));
        assert!(c.member("test").is_none(), "{bad:?}");
        assert_eq!(c.metrics().get(crate::swim::metrics::PACKETS_REJECTED, "bad_vsn"), i as u64 + 1);
    }
    c.handle_alive(&alive("test", &LOCALHOST, 1, &vsn()), t(0));
    assert_eq!(c.member("test").unwrap().node.vsn(), vsn());

    struct OnlyB;
    impl AliveDelegate for OnlyB {
        fn notify_alive(&self, peer: &Node) -> Result<(), String> {
            if peer.name.starts_with('b') || peer.name == LOCAL { Ok(()) } else { Err("not b".into()) }
        }
    }
    let mut c = core_with(config().with_alive(Arc::new(OnlyB)));
    let v = vsn();
    c.handle_alive(&alive("a", &LOCALHOST, 1, &v), t(0));
    c.handle_alive(&alive("b1", &LOCALHOST, 1, &v[..5]), t(0));
    c.handle_alive(&alive("b2", &LOCALHOST, 1, &v), t(0));
    assert!(c.member("a").is_none());
    assert!(c.member("b1").is_none(), "short Vsn with an alive delegate");
    assert!(c.member("b2").is_some());
}

/// Go `handleAlive` / `aliveNode` address checks: blocked CIDRs, and an
/// address that is not 4 or 16 bytes.
#[test]
fn alive_address_checks() {
    let cidrs = || config().with_cidrs_allowed(vec!["10.0.0.0/8".parse().unwrap()]);
    let local = SocketAddr::from((LOCALHOST, 7946));
    let err = Core::new(cidrs(), local, t(0), StdRng::seed_from_u64(1)).err();
    assert_eq!(err, Some(Error::LocalNodeRejected), "our own address is outside cidrs_allowed");

    let mut c =
        core_with(cidrs().with_cidrs_allowed(vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.1/32".parse().unwrap()]));
    let v = vsn();
    c.handle_alive(&alive("out", &[192, 0, 2, 1], 1, &v), t(0));
    c.handle_alive(&alive("in", &[10, 1, 2, 3], 1, &v), t(0));
    c.handle_alive(&alive("odd", &[10, 1, 2], 1, &v), t(0));
    assert!(c.member("out").is_none());
    assert!(c.member("in").is_some());
    assert!(c.member("odd").is_none());
}

/// Another node claiming our name from another address is a conflict; we keep
/// our entry and do not refute.
#[test]
fn conflict_on_local_name() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive(LOCAL, &[127, 0, 0, 9], 5, &v), t(1));
    assert!(matches!(c.poll_effect(), Some(Effect::Conflict { .. })));
    assert_eq!((c.incarnation(), c.broadcasts().num_queued()), (1, 0));
}

/// Members go to a random place in the probe order, the index follows, and a
/// seed replays the order.
#[test]
fn insertion_order_is_seeded_and_indexed() {
    let order = |seed| {
        let mut c = Core::new(config(), SocketAddr::from((LOCALHOST, 1)), t(0), StdRng::seed_from_u64(seed)).unwrap();
        let v = vsn();
        for i in 0..20 {
            let name = format!("n{i}");
            c.handle_alive(&alive(&name, &LOCALHOST, 1, &v), t(0));
        }
        for (i, m) in c.members().iter().enumerate() {
            assert!(std::ptr::eq(c.member(&m.node.name).unwrap(), &c.members()[i]));
        }
        c.members().iter().map(|m| m.node.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(order(3), order(3));
    assert_ne!(order(3), order(4));
    assert_eq!(order(3).len(), 21);
}

/// A stale suspicion (the member moved on) fires without killing anyone, and
/// `poll_timeout` follows the earliest of several suspicions.
#[test]
fn timeouts_fire_in_order() {
    let mut c = core_with(config().with_probe_interval(ms(100)));
    let v = vsn();
    for name in ["x", "y"] {
        c.handle_alive(&alive(name, &LOCALHOST, 1, &v), t(0));
    }
    c.handle_suspect(&accuse("x", 1), t(1));
    c.handle_suspect(&accuse("y", 1), t(2));
    let dx = c.suspicion_deadline("x").unwrap();
    let dy = c.suspicion_deadline("y").unwrap();
    assert!(dx < dy);
    assert_eq!(c.poll_timeout(), Some(dx));
    c.handle_timeout(dx);
    assert_eq!((state(&c, "x"), state(&c, "y")), (NodeState::Dead, NodeState::Suspect));
    assert_eq!(c.poll_timeout(), Some(dy));
    c.handle_timeout(dy + Duration::from_secs(1));
    assert_eq!(state(&c, "y"), NodeState::Dead);
    assert_eq!(c.poll_timeout(), None);
}

/// Go `TestMemberList_ResetNodes`, plus: left members are reaped too (as
/// later Go versions do; 0.2.2 keeps them for good).
#[test]
fn go_reset_nodes() {
    let mut c = core_with(config().with_gossip_to_the_dead_time(ms(100)));
    let v = vsn();
    for (name, last) in [("test1", 1), ("test2", 2), ("test3", 3), ("gone", 4)] {
        c.handle_alive(&alive(name, &[127, 0, 0, last], 1, &v), t(0));
    }
    c.handle_dead(&accuse("test2", 1), t(1));
    c.handle_dead(&Accusation { incarnation: 1, node: "gone", from: "gone" }, t(1));

    c.reset_nodes(t(1) + ms(100));
    assert_eq!(c.num_nodes(), 5);
    assert!(c.member("test2").is_some(), "test2 should not be unmapped");

    c.reset_nodes(t(1) + ms(200));
    assert_eq!(c.num_nodes(), 3);
    assert!(c.member("test2").is_none(), "test2 should be unmapped");
    assert!(c.member("gone").is_none(), "left members are reaped like dead ones");
    for (i, m) in c.members().iter().enumerate() {
        assert!(std::ptr::eq(c.member(&m.node.name).unwrap(), &c.members()[i]));
    }
}

/// Go quirk kept: an alive at incarnation 0 about an unknown member leaves a
/// dead placeholder in the table (Go adds the entry before the incarnation
/// check), with no event and no broadcast.
#[test]
fn alive_incarnation_zero_leaves_dead_placeholder() {
    let mut c = core();
    let v = vsn();
    c.handle_alive(&alive("ghost", &LOCALHOST, 0, &v), t(1));
    let m = c.member("ghost").unwrap();
    assert_eq!((m.state(), m.incarnation, m.state_change), (NodeState::Dead, 0, Time::ZERO));
    assert_eq!(c.num_nodes(), 2);
    assert_eq!(c.num_alive(), 1);
    assert_eq!(events(&mut c), []);
    assert_eq!(c.broadcasts().num_queued(), 0);
}

/// The core can move to the thread that owns it.
#[test]
fn core_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<Core<StdRng>>();
}

/// What one core sends in a push/pull (`local_state`) merges into another: the
/// two tables agree on every member (states as Go's `mergeState` maps them).
#[test]
fn local_state_round_trip() {
    let v = vsn();
    let mut a = core();
    a.handle_alive(&Alive { meta: b"m", ..alive("x", &[10, 0, 0, 1], 3, &v) }, t(0));
    a.handle_alive(&alive("gone", &[10, 0, 0, 2], 1, &v), t(0));
    a.handle_dead(&Accusation { incarnation: 1, node: "gone", from: "gone" }, t(1));
    let states = a.local_state();
    assert_eq!(states.len(), 3);

    let mut b =
        Core::new(config().with_name("b"), SocketAddr::from(([10, 0, 0, 9], 7946)), t(0), StdRng::seed_from_u64(2))
            .unwrap();
    let wire: Vec<PushNodeState<'_>> = states.iter().map(PushState::as_wire).collect();
    b.merge_remote_state(&wire, true, t(2)).unwrap();
    let x = b.member("x").unwrap();
    assert_eq!((x.state(), x.incarnation, x.node.meta.as_slice()), (NodeState::Alive, 3, &b"m"[..]));
    assert_eq!(b.member(LOCAL).unwrap().node.address(), SocketAddr::from((LOCALHOST, 7946)));
    // A left member is only known from the leave: a peer that never saw it
    // alive does not add it.
    assert!(b.member("gone").is_none());
}

/// Go's `memberlist.msg.alive/suspect/dead` and `memberlist.degraded.*`
/// are counted where Go counts them: a state taken from an alive, a member
/// marked suspect, a member marked dead; not for news that changes nothing.
#[test]
fn go_message_counters_count_state_changes() {
    use crate::swim::metrics::{GO_DEGRADED, GO_MSG};
    let mut c = core();
    let v = vsn();
    let base = (c.metrics().get(GO_MSG, "alive"), c.metrics().get(GO_MSG, "suspect"), c.metrics().get(GO_MSG, "dead"));
    c.handle_alive(&alive("a", &LOCALHOST, 1, &v), t(1));
    c.handle_alive(&alive("a", &LOCALHOST, 1, &v), t(1)); // old news: not counted
    c.handle_suspect(&accuse("a", 1), t(2));
    c.handle_suspect(&accuse("a", 0), t(2)); // stale: not counted
    c.handle_dead(&accuse("a", 1), t(3));
    let now = (c.metrics().get(GO_MSG, "alive"), c.metrics().get(GO_MSG, "suspect"), c.metrics().get(GO_MSG, "dead"));
    assert_eq!((now.0 - base.0, now.1 - base.1, now.2 - base.2), (1, 1, 1));
    assert_eq!(c.metrics().get(GO_DEGRADED, "probe"), 0, "healthy: no degraded probe");
}
