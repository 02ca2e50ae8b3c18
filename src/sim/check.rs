//! Invariant checkers that watch a world of [`SwimNode`]s from outside the
//! core: they read each node right after every input it handled
//! ([`World::observe`](super::World::observe)) and what the world knows of
//! the faults ([`Facts`]), never the core's internals.
//!
//! The rules ([`Checks::standard`]):
//! - [`IncarnationsNeverGoBack`]: while an observer keeps member X in its
//!   table, the incarnation it holds for X never decreases (a restart of the
//!   observer, or X leaving its table, starts afresh).
//! - [`OnlyMembersRaiseTheirOwn`]: the incarnation any observer holds for X
//!   never exceeds the highest incarnation X itself (any of its lives) ever
//!   had: nobody else may raise it.
//! - [`NoFalseDeath`]: nobody declares X dead while X has been healthy (up,
//!   same life, not paused, not leaving, no slower than it can refute at)
//!   and everyone could reach it (no partition, no node paused or too slow
//!   to hear in time anywhere, link loss at most [`REACHABLE_LOSS`]) for
//!   the whole [`Facts::window`] before.
//! - [`QueueBounds`]: every bound in [`BOUNDS`] (those the core documents
//!   on [`QueueLengths`]) holds at every node.
//! - Convergence ([`all_see_all_alive`]) is checked by the runner once the
//!   faults stop (see [`swarm`](super::swarm)).
//!
//! A new rule is one more [`Check`] in [`Checks::standard`]; a new bound is
//! one more line in [`BOUNDS`].

use std::time::Duration;

use super::swim_node::{SwimNode, node_name, parse_node_name};
use super::world::{Drained, NodeId, World};
use crate::delegate::{NodeEventKind, NodeState};
use crate::swim::{
    Effect, MAX_PENDING_STREAMS, MAX_PINGS, MAX_PUSH_PULL_REQUESTS, MAX_QUEUED_TRANSMITS, MAX_RECONNECT_CANDIDATES,
    MAX_RELAYS, QueueLengths, Time,
};

/// Loss rate at or below which a link still counts as reaching: at 5 %
/// a probe, its indirect probes, its TCP fallback and then the refutation
/// of the suspicion all failing is far too unlikely to excuse a death.
pub const REACHABLE_LOSS: f64 = 0.05;

/// A closed interval of virtual time.
pub type Span = (Time, Time);

/// What the checkers know of the world besides the nodes themselves: when
/// each node, and the network as a whole, was disturbed.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// By node id: when it was not healthy (not yet started, dead,
    /// restarting, paused, too slow to refute in time, leaving or gone). Open-ended spans end at
    /// the end of time.
    pub disturbed: Vec<Vec<Span>>,
    /// When some pair of nodes could not reach each other: partitions,
    /// pauses and lags too long to refute within (such a node hears nobody
    /// in time), loss above [`REACHABLE_LOSS`].
    pub unreachable: Vec<Span>,
    /// How long before a death its subject must have been healthy and
    /// reachable for the death to be false: the longest a fault can take to
    /// become a death (see `swarm::false_death_window`).
    pub window: Duration,
}

impl Facts {
    /// Whether node `id` was healthy and everyone could reach it throughout
    /// `[at - window, at]`.
    pub fn healthy_and_reachable(&self, id: NodeId, at: Time) -> bool {
        let from = Time::from_epoch(at.since_epoch().saturating_sub(self.window));
        let overlaps = |spans: &[Span]| spans.iter().any(|&(a, b)| a <= at && b >= from);
        let node = self.disturbed.get(id).map_or(&[][..], Vec::as_slice);
        !overlaps(node) && !overlaps(&self.unreachable)
    }
}

/// A rule found broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When.
    pub at: Time,
    /// Which rule (the [`Check::name`]).
    pub rule: &'static str,
    /// What happened, naming the nodes.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {:.3}s: {}", self.rule, self.at.since_epoch().as_secs_f64(), self.detail)
    }
}

/// One rule, checked after every drain of every node.
pub trait Check {
    /// The rule's name, as reported.
    fn name(&self) -> &'static str;
    /// Node `d.id` was just drained: what is wrong, if anything.
    fn drained(&mut self, d: &Drained<'_, SwimNode>, facts: &Facts) -> Option<String>;
}

/// The members a node holds, other than itself: (node id, incarnation).
/// Names that are not simulated nodes' are skipped (none arise without
/// corruption).
fn others<'a>(d: &'a Drained<'a, SwimNode>) -> impl Iterator<Item = (NodeId, u32)> + 'a {
    d.node
        .core()
        .members()
        .iter()
        .filter_map(move |m| parse_node_name(&m.node.name).filter(|&id| id != d.id).map(|id| (id, m.incarnation)))
}

fn grow<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    if v.len() < len {
        v.resize(len, fill);
    }
}

/// While an observer keeps X in its table, X's incarnation there never goes
/// down.
#[derive(Debug, Default)]
pub struct IncarnationsNeverGoBack {
    /// By observer: its life, and by subject the incarnation it held at its
    /// last drain (`None`: not in its table then).
    seen: Vec<(u32, Vec<Option<u32>>)>,
    /// Scratch: which subjects the table holds now.
    present: Vec<bool>,
}

impl Check for IncarnationsNeverGoBack {
    fn name(&self) -> &'static str {
        "incarnation_went_back"
    }
    fn drained(&mut self, d: &Drained<'_, SwimNode>, _: &Facts) -> Option<String> {
        grow(&mut self.seen, d.id + 1, (u32::MAX, Vec::new()));
        let (life, seen) = &mut self.seen[d.id];
        if *life != d.life {
            *life = d.life;
            seen.clear();
        }
        self.present.clear();
        let mut broken = None;
        for (x, inc) in others(d) {
            grow(seen, x + 1, None);
            grow(&mut self.present, x + 1, false);
            if let Some(before) = seen[x]
                && inc < before
                && broken.is_none()
            {
                broken =
                    Some(format!("{} holds {} at incarnation {inc}, after {before}", node_name(d.id), node_name(x)));
            }
            seen[x] = Some(inc);
            self.present[x] = true;
        }
        // A member that left the table (reaped) may come back lower.
        for (x, entry) in seen.iter_mut().enumerate() {
            if !self.present.get(x).copied().unwrap_or(false) {
                *entry = None;
            }
        }
        broken
    }
}

/// Nobody but X raises X's incarnation: what any observer holds for X is at
/// most the highest incarnation X ever had.
#[derive(Debug, Default)]
pub struct OnlyMembersRaiseTheirOwn {
    /// By node: the highest incarnation it ever had, over all its lives.
    announced: Vec<u32>,
}

impl Check for OnlyMembersRaiseTheirOwn {
    fn name(&self) -> &'static str {
        "incarnation_raised_by_another"
    }
    fn drained(&mut self, d: &Drained<'_, SwimNode>, _: &Facts) -> Option<String> {
        // A node only changes its incarnation while handling an input or a
        // command, and is drained right after: its packets carry nothing
        // recorded too late.
        grow(&mut self.announced, d.id + 1, 0);
        let own = &mut self.announced[d.id];
        *own = (*own).max(d.node.core().incarnation());
        for (x, inc) in others(d) {
            let max = self.announced.get(x).copied().unwrap_or(0);
            if inc > max {
                return Some(format!(
                    "{} holds {} at incarnation {inc}, but {} never had more than {max}",
                    node_name(d.id),
                    node_name(x),
                    node_name(x)
                ));
            }
        }
        None
    }
}

/// The node an effect declares dead (not left: a leave is no death).
fn is_death(effect: &Effect) -> Option<NodeId> {
    match effect {
        Effect::Event(ev) if ev.kind == NodeEventKind::Leave && ev.node.state == NodeState::Dead => {
            parse_node_name(&ev.node.name)
        }
        _ => None,
    }
}

/// No member is declared dead while it is healthy and everyone can reach
/// it ([`Facts::healthy_and_reachable`]).
#[derive(Debug, Default)]
pub struct NoFalseDeath;

impl Check for NoFalseDeath {
    fn name(&self) -> &'static str {
        "false_death"
    }
    fn drained(&mut self, d: &Drained<'_, SwimNode>, facts: &Facts) -> Option<String> {
        d.effects.iter().filter_map(is_death).find_map(|x| {
            facts.healthy_and_reachable(x, d.now).then(|| {
                format!(
                    "{} declared {} dead, healthy and reachable for the {:.0} s before",
                    node_name(d.id),
                    node_name(x),
                    facts.window.as_secs_f64()
                )
            })
        })
    }
}

/// What a node's bounds are judged against.
#[derive(Clone, Copy, Debug)]
pub struct BoundCtx {
    /// How many nodes the world has had: the simulated members are its
    /// nodes, so this bounds everything kept per member.
    pub names: usize,
    /// The node's [`Core::effect_bound`](crate::swim::Core::effect_bound).
    pub effect_bound: usize,
    /// The node's table and queue sizes now.
    pub lengths: QueueLengths,
}

/// A bound the core's queues and tables must keep at every node (the ones
/// [`QueueLengths`] documents).
pub struct Bound {
    /// What is bounded.
    pub name: &'static str,
    /// Its size.
    pub measure: fn(&QueueLengths) -> usize,
    /// Its bound.
    pub limit: fn(&BoundCtx) -> usize,
}

/// The bounds [`QueueBounds`] checks, after every input of every node.
pub const BOUNDS: &[Bound] = &[
    // Members and what is kept per member: one each at most.
    Bound { name: "member table", measure: |q| q.members, limit: |c| c.names },
    Bound { name: "suspicions", measure: |q| q.suspicions, limit: |c| c.names },
    Bound { name: "broadcast queue", measure: |q| q.broadcasts, limit: |c| c.names },
    Bound {
        name: "reconnect candidates",
        measure: |q| q.reconnect_candidates,
        limit: |c| c.names.min(MAX_RECONNECT_CANDIDATES),
    },
    // Fixed bounds.
    Bound { name: "effects", measure: |q| q.effects, limit: |c| c.effect_bound },
    Bound { name: "transmits", measure: |q| q.transmits, limit: |_| MAX_QUEUED_TRANSMITS },
    Bound { name: "user carry", measure: |q| q.user_carry, limit: |_| 1024 },
    Bound { name: "relays", measure: |q| q.relays, limit: |_| MAX_RELAYS },
    Bound { name: "pings", measure: |q| q.pings, limit: |_| MAX_PINGS },
    Bound { name: "streams", measure: |q| q.streams, limit: |_| MAX_PENDING_STREAMS },
    Bound { name: "joins", measure: |q| q.joins, limit: |_| MAX_PENDING_STREAMS },
    Bound { name: "inbound push/pulls", measure: |q| q.inbound_push_pulls, limit: |_| MAX_PUSH_PULL_REQUESTS - 1 },
    // One timer per periodic or probe step (seven) and per thing timed.
    Bound {
        name: "timers",
        measure: |q| q.timers,
        limit: |c| {
            let q = &c.lengths;
            7 + q.suspicions + q.relays + q.pings + q.streams + q.inbound_push_pulls
        },
    },
];

/// Every [`BOUNDS`] entry holds at every node after every input.
#[derive(Debug, Default)]
pub struct QueueBounds {
    /// How many nodes the world has had so far (the highest id seen + 1).
    names: usize,
}

impl Check for QueueBounds {
    fn name(&self) -> &'static str {
        "queue_bound"
    }
    fn drained(&mut self, d: &Drained<'_, SwimNode>, facts: &Facts) -> Option<String> {
        self.names = self.names.max(d.id + 1).max(facts.disturbed.len());
        let core = d.node.core();
        let ctx = BoundCtx { names: self.names, effect_bound: core.effect_bound(), lengths: core.queue_lengths() };
        BOUNDS.iter().find_map(|b| {
            let (size, limit) = ((b.measure)(&ctx.lengths), (b.limit)(&ctx));
            (size > limit).then(|| format!("{}'s {} holds {size}, bound {limit}", node_name(d.id), b.name))
        })
    }
}

/// The rules, the facts they judge by, and the first violation found.
pub struct Checks {
    rules: Vec<Box<dyn Check>>,
    facts: Facts,
    /// The first violation, if any (later ones are not looked for).
    pub violation: Option<Violation>,
    /// Drains checked.
    pub drains: u64,
    /// Deaths declared (leave events of dead members) that
    /// [`NoFalseDeath`] judged: each excused by a fault in its window,
    /// until one is not.
    pub deaths: u64,
}

impl Checks {
    /// The standard rules (see the module docs) judging by `facts`.
    pub fn standard(facts: Facts) -> Checks {
        let rules: Vec<Box<dyn Check>> = vec![
            Box::new(IncarnationsNeverGoBack::default()),
            Box::new(OnlyMembersRaiseTheirOwn::default()),
            Box::new(NoFalseDeath),
            Box::new(QueueBounds::default()),
        ];
        Checks { rules, facts, violation: None, drains: 0, deaths: 0 }
    }

    /// Runs every rule on one drain (a [`World::observe`] observer calls
    /// this); keeps the first violation.
    pub fn drained(&mut self, d: &Drained<'_, SwimNode>) {
        if self.violation.is_some() {
            return;
        }
        self.drains += 1;
        self.deaths += d.effects.iter().filter(|e| is_death(e).is_some()).count() as u64;
        for rule in &mut self.rules {
            if let Some(detail) = rule.drained(d, &self.facts) {
                self.violation = Some(Violation { at: d.now, rule: rule.name(), detail });
                return;
            }
        }
    }
}

/// Whether every node in `live` holds every other node in `live` as alive
/// (not suspect); the first pair that does not, as `Err`.
pub fn all_see_all_alive(world: &World<SwimNode>, live: &[NodeId]) -> Result<(), String> {
    for &o in live {
        let Some(node) = world.node(o) else { return Err(format!("{} is not running", node_name(o))) };
        for &x in live.iter().filter(|&&x| x != o) {
            let state = node.core().member(&node_name(x)).map(|m| m.state());
            if state != Some(NodeState::Alive) {
                let seen = state.map_or("unknown", NodeState::as_str);
                return Err(format!("{} holds {} {seen}", node_name(o), node_name(x)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sim::{Link, NodeCtx, Protocol, node_addr};
    use crate::swim::ip_to_wire;
    use crate::wire::message::{Accusation, Alive};

    fn t(secs: u64) -> Time {
        Time::from_epoch(Duration::from_secs(secs))
    }

    fn node(id: NodeId) -> SwimNode {
        let ctx = NodeCtx { id, addr: node_addr(id), incarnation: 0, seed: id as u64, now: t(0) };
        SwimNode::new(&ctx, Config::default_local(), &[], false)
    }

    /// `n` hears that node `x` is alive at `incarnation`.
    fn hear_alive(n: &mut SwimNode, x: NodeId, incarnation: u32, now: Time) {
        let (name, addr) = (node_name(x), ip_to_wire(node_addr(x).ip()));
        let vsn = n.core().config().build_vsn_array();
        let alive = Alive { incarnation, node: &name, addr: &addr, port: 7946, meta: &[], vsn: &vsn };
        n.core_mut().handle_alive(&alive, now);
    }

    /// Drains `n`'s effects and shows them to `checks` as node `id`'s, in
    /// life `life`, at `now`.
    fn show(checks: &mut Checks, n: &mut SwimNode, id: NodeId, life: u32, now: Time) {
        let effects: Vec<Effect> = std::iter::from_fn(|| n.poll_effect()).collect();
        checks.drained(&Drained { now, id, life, node: n, effects: &effects });
    }

    fn facts(nodes: usize) -> Facts {
        Facts { disturbed: vec![Vec::new(); nodes], unreachable: Vec::new(), window: Duration::from_secs(30) }
    }

    #[test]
    fn an_incarnation_raised_by_someone_else_is_caught() {
        let mut checks = Checks::standard(facts(3));
        let (mut a, mut b) = (node(0), node(1));
        show(&mut checks, &mut b, 1, 0, t(1)); // node 1 announces incarnation 1
        hear_alive(&mut a, 1, 1, t(1));
        show(&mut checks, &mut a, 0, 0, t(1));
        assert_eq!(checks.violation, None);
        // An alive for node 1 at 5, which node 1 never had: someone else
        // raised it.
        hear_alive(&mut a, 1, 5, t(2));
        show(&mut checks, &mut a, 0, 0, t(2));
        let v = checks.violation.expect("caught");
        assert_eq!((v.rule, v.at), ("incarnation_raised_by_another", t(2)));
        assert!(v.detail.contains("node-0 holds node-1 at incarnation 5"), "{v}");
    }

    #[test]
    fn an_incarnation_going_back_is_caught_but_not_across_a_restart() {
        let mut checks = Checks::standard(facts(2));
        let mut x = node(1);
        x.core_mut().update_node(t(0)).expect("update"); // node 1 reaches 2, then 3
        x.core_mut().update_node(t(0)).expect("update");
        show(&mut checks, &mut x, 1, 0, t(0));
        let (mut before, mut after, mut restarted) = (node(0), node(0), node(0));
        hear_alive(&mut before, 1, 3, t(1));
        hear_alive(&mut after, 1, 2, t(1));
        hear_alive(&mut restarted, 1, 2, t(1));
        show(&mut checks, &mut before, 0, 0, t(1));
        // The same observer in its next life may know less.
        show(&mut checks, &mut restarted, 0, 1, t(2));
        assert_eq!(checks.violation, None);
        show(&mut checks, &mut before, 0, 1, t(3));
        // Within one life, 3 then 2.
        show(&mut checks, &mut after, 0, 1, t(4));
        let v = checks.violation.expect("caught");
        assert_eq!(v.rule, "incarnation_went_back");
        assert!(v.detail.contains("node-1 at incarnation 2, after 3"), "{v}");
    }

    #[test]
    fn a_death_is_false_unless_a_fault_explains_it() {
        // Node 0 hears from node 2 that node 1 is dead, at 40 s.
        let verdict = |facts: Facts| {
            let mut checks = Checks::standard(facts);
            for x in 1..3 {
                show(&mut checks, &mut node(x), x, 0, t(0));
            }
            let mut a = node(0);
            hear_alive(&mut a, 1, 1, t(1));
            hear_alive(&mut a, 2, 1, t(1));
            show(&mut checks, &mut a, 0, 0, t(1));
            a.core_mut().handle_dead(&Accusation { incarnation: 1, node: "node-1", from: "node-2" }, t(40));
            show(&mut checks, &mut a, 0, 0, t(40));
            assert_eq!(checks.deaths, 1);
            checks.violation
        };
        let v = verdict(facts(3)).expect("healthy and reachable: a false death");
        assert_eq!((v.rule, v.at), ("false_death", t(40)));
        let mut paused = facts(3);
        paused.disturbed[1].push((t(2), t(9)));
        assert!(verdict(paused).is_some(), "a fault before the window explains nothing");
        let mut slow = facts(3);
        slow.disturbed[1].push((t(5), t(15)));
        assert_eq!(verdict(slow), None, "node 1 was unhealthy within the 30 s before");
        let mut cut = facts(3);
        cut.unreachable.push((t(20), t(21)));
        assert_eq!(verdict(cut), None, "a partition within the 30 s before");

        // A member that leaves is no death.
        let mut checks = Checks::standard(facts(3));
        show(&mut checks, &mut node(1), 1, 0, t(0));
        let mut a = node(0);
        hear_alive(&mut a, 1, 1, t(1));
        a.core_mut().handle_dead(&Accusation { incarnation: 1, node: "node-1", from: "node-1" }, t(40));
        show(&mut checks, &mut a, 0, 0, t(40));
        assert_eq!((checks.deaths, checks.violation), (0, None));
    }

    #[test]
    fn a_table_beyond_its_bound_is_caught() {
        // The world has had 2 nodes, yet node 0 holds 3 members.
        let mut a = node(0);
        for x in 1..3 {
            hear_alive(&mut a, x, 1, t(1));
        }
        let d = Drained { now: t(1), id: 0, life: 0, node: &a, effects: &[] };
        let detail = QueueBounds::default().drained(&d, &facts(2)).expect("caught");
        assert_eq!(detail, "node-0's member table holds 3, bound 2");
        assert_eq!(QueueBounds::default().drained(&d, &facts(3)), None);
    }

    #[test]
    fn convergence_needs_every_pair_alive() {
        let mut world = World::new(1, Link::default(), |ctx| {
            let seeds = if ctx.id == 0 { vec![] } else { vec![node_addr(0)] };
            SwimNode::new(ctx, Config::default_local(), &seeds, false)
        });
        world.add_nodes(3);
        assert!(all_see_all_alive(&world, &[0, 1, 2]).is_err(), "nobody has joined yet");
        world.run_until(t(3));
        assert_eq!(all_see_all_alive(&world, &[0, 1, 2]), Ok(()));
        world.apply(crate::sim::Fault::Kill(2));
        assert_eq!(all_see_all_alive(&world, &[0, 1, 2]), Err("node-2 is not running".to_owned()));
        world.run_until(t(30));
        assert_eq!(all_see_all_alive(&world, &[0, 1]), Ok(()));
    }
}
