//! `ringswim swarm`: many small random worlds, each drawn from its own seed,
//! running ringswim's rules under the [`check`](super::check) rules.
//!
//! # One run
//! [`Plan::draw`] draws everything from the run's seed: 3 to `max_nodes`
//! nodes starting over the first 3 s (each joining up to three earlier
//! nodes), the profile (local or LAN: WAN timeouts would need minutes of
//! virtual time per run), LZW on or off, the link delay and jitter, and a
//! fault phase from [`FAULTS_FROM`] lasting 15 to 60 s in which, each with
//! its own chance: datagram and stream-segment loss and datagram
//! duplication on every link, a partition (healed), slow nodes (inbound or
//! whole-node lag of 0.1 to 3 s; a lag the node can still refute within,
//! half the shortest suspicion timeout, leaves it healthy), paused nodes
//! (resumed), kills (some restarted), a
//! crash-restart, and churn (joins, graceful leaves). Node 0 is never
//! killed or left, so that joins and restarts have a seed.
//!
//! Half the runs are encrypted ([`Keys`]). Those may rotate their key
//! during the faults as an operator does it (serf's `keys` command): every
//! node installs the new key, then every node makes it primary, then every
//! node removes the old one, each node at its own random time within its
//! step's window, the windows in order; a node (re)started during the
//! rotation gets the keyring an operator would give it then. Encrypted runs
//! may also corrupt datagrams: AES-GCM turns a changed byte into a refused
//! packet (a loss). Unencrypted runs never corrupt: with CRC only for peers
//! named by their IP (as in Go) a changed byte can be a valid message about
//! someone else, and the rules below would blame the protocol for it.
//!
//! Every action ends by the end of the fault phase; then the network is
//! clean again and every node that was not killed or left runs normally.
//! A node whose join reached nobody (its seeds dead or cut off) joins
//! again [`JOIN_RETRY`] later, as an application would.
//! [`run`] drives the world, checks every drain with
//! [`Checks::standard`](super::check::Checks::standard), and from the end
//! of the faults checks every [`CHECK`] whether every live member holds
//! every live member alive. That must happen within [`Plan::bound`] (see
//! [`convergence_bound`]); the run then goes on for [`HOLD`] with the
//! other rules still watching, and ends.
//!
//! Run `i` of `ringswim swarm --seed S` uses seed `S + i`, so
//! `ringswim swarm --runs 1 --seed S+i --max-nodes N --json` replays it
//! bit for bit (same `trace_hash`).

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};
#[cfg(feature = "cli")]
use serde_json::{Value, json};

use super::check::{Checks, Facts, REACHABLE_LOSS, Span, Violation, all_see_all_alive};
use super::scenario::{CHECK, Profile};
use super::swim_node::SwimNode;
use super::{Fault, Jitter, Link, NodeId, World, node_addr};
use crate::swim::{Effect, Time, suspicion_timeout};

/// When the fault phase starts: a few seconds after the last node started
/// (at most 3 s), time for the cluster to converge first.
pub const FAULTS_FROM: Duration = Duration::from_secs(10);
/// How long a run goes on once the cluster has converged after the faults.
pub const HOLD: Duration = Duration::from_secs(10);
/// Events one run may take; a run that takes more (a node that never
/// settles) fails.
pub const MAX_EVENTS: u64 = 50_000_000;
/// How long a node whose join reached nobody waits before it tries again
/// (what an application does with memberlist's `Join` error: serf's
/// `retry_join`).
pub const JOIN_RETRY: Duration = Duration::from_secs(2);
/// The fewest nodes a run draws.
pub const MIN_NODES: usize = 3;
/// `--max-nodes` by default.
pub const DEFAULT_MAX_NODES: usize = 64;

/// Something the plan does at a given time.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A world fault.
    Apply(Fault),
    /// The node leaves gracefully ([`Core::leave`](crate::swim::Core::leave));
    /// its process ends 1 s later (a [`Fault::Kill`] in the plan).
    Leave(NodeId),
    /// A step of the key rotation on one node, through its
    /// [`Core::keyring`](crate::swim::Core::keyring).
    Key(NodeId, KeyStep),
}

/// A step of a key rotation, in the order an operator takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyStep {
    /// Add the new key to the keyring (Go `Keyring.AddKey`).
    Install,
    /// Make the new key primary: packets are sealed with it (Go `UseKey`).
    Use,
    /// Drop the old key (Go `RemoveKey`).
    Remove,
}

/// The encryption of an encrypted run.
#[derive(Clone, Debug, PartialEq)]
pub struct Keys {
    /// The key every node starts with.
    pub initial: Vec<u8>,
    /// The rotation drawn in the faults, if any.
    pub rotation: Option<Rotation>,
}

/// A key rotation: each [`KeyStep`] runs on every node within its window,
/// and the windows follow one another.
#[derive(Clone, Debug, PartialEq)]
pub struct Rotation {
    /// The key rotated to.
    pub next: Vec<u8>,
    /// When each step's window opens: install, use, remove.
    pub opens: [Time; 3],
}

impl Keys {
    /// The keyring an operator gives a node (re)started at `now`: the new
    /// key once its installation has begun, primary once its use has begun,
    /// alone once removal has begun (by then every node seals with it).
    pub fn keyring_at(&self, now: Time) -> crate::wire::Keyring {
        let step = |s: KeyStep| self.rotation.as_ref().filter(|r| now >= r.opens[s as usize]);
        let keyring = match (step(KeyStep::Install), step(KeyStep::Use), step(KeyStep::Remove)) {
            (Some(r), _, Some(_)) => crate::wire::Keyring::new(&[], Some(&r.next)),
            (Some(r), Some(_), None) => crate::wire::Keyring::new(&[&self.initial, &r.next], Some(&r.next)),
            (Some(r), None, None) => crate::wire::Keyring::new(&[&self.initial, &r.next], Some(&self.initial)),
            _ => crate::wire::Keyring::new(&[], Some(&self.initial)),
        };
        keyring.expect("drawn keys are 16, 24 or 32 bytes")
    }
}

/// How many of each fault a plan holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Partitions (each healed).
    pub partitions: usize,
    /// Nodes made slow for a while.
    pub slow: usize,
    /// Nodes paused for a while.
    pub paused: usize,
    /// Nodes killed.
    pub kills: usize,
    /// Of those, restarted.
    pub restarts: usize,
    /// Nodes killed and restarted at once.
    pub crashes: usize,
    /// Nodes joining during the faults.
    pub joins: usize,
    /// Nodes leaving gracefully.
    pub leaves: usize,
    /// Key rotations (0 or 1).
    pub rotations: usize,
}

/// One run's world, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The run's seed (also the world's).
    pub seed: u64,
    /// The `--max-nodes` it was drawn with (part of what replays it).
    pub max_nodes: usize,
    /// Nodes started at the beginning.
    pub nodes: usize,
    /// Config and base network.
    pub profile: Profile,
    /// LZW on.
    pub compression: bool,
    /// Encryption, if the run is encrypted.
    pub keys: Option<Keys>,
    /// The link outside the fault phase: delay only.
    pub link: Link,
    /// The link during the fault phase: the same delay, with loss,
    /// duplication and (encrypted runs only) corruption.
    pub fault_link: Link,
    /// Start of the fault phase.
    pub faults_from: Time,
    /// End of the fault phase: every action is done by then.
    pub faults_until: Time,
    /// What happens when, in time order (ties in list order).
    pub actions: Vec<(Time, Action)>,
    /// What the checkers know of the faults.
    pub facts: Facts,
    /// How long after the faults every live member must hold every live
    /// member alive ([`convergence_bound`]).
    pub bound: Duration,
    /// Summary of the faults.
    pub counts: FaultCounts,
}

/// The end of time, for disturbances that never end.
fn forever() -> Time {
    Time::from_epoch(Duration::MAX)
}

fn at(d: Duration) -> Time {
    Time::from_epoch(d)
}

/// A uniform time in `[from, to]`, to the millisecond.
fn between(rng: &mut impl Rng, from: Time, to: Time) -> Time {
    let (a, b) = (from.since_epoch().as_millis() as u64, to.since_epoch().as_millis() as u64);
    at(Duration::from_millis(rng.random_range(a..=b.max(a))))
}

/// A uniform duration in `[lo, hi]` milliseconds.
fn millis(rng: &mut impl Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_millis(rng.random_range(lo..=hi.max(lo)))
}

/// How long after the faults stop every live member must hold every live
/// member alive: two push/pull intervals, one reconnect interval, and 5 s.
///
/// Why: once the network is clean and every node runs, a member X that
/// some live O does not hold alive is repaired by a push/pull that involves
/// O or X with someone who knows better: O's view is replaced by a newer
/// alive, or X learns it is held dead and refutes with a higher incarnation,
/// which gossip then takes to everyone in a few rounds (retransmit limit ×
/// gossip interval: under 2 s at 64 members; 5 s allowed). Every live node
/// starts a periodic push/pull each `push_pull_interval` (unscaled up to 32
/// members; scaled above), and the first one after the faults may have been
/// in flight during them: two intervals. Members reaped by both sides of a
/// long partition are in nobody's table: only the reconnect push/pull
/// (ringswim's extension, every `reconnect_interval`) brings them back, so
/// one reconnect interval more. LAN (30 s, 10 s): 75 s; local (15 s,
/// 10 s): 45 s.
pub fn convergence_bound(profile: Profile, max_nodes: usize) -> Duration {
    let config = profile.config();
    let push_pull = crate::swim::push_pull_scale(config.push_pull_interval, max_nodes);
    2 * push_pull + config.extensions.reconnect_interval + Duration::from_secs(5)
}

/// How long before a death its subject must have been healthy and
/// reachable for the death to be false ([`Facts::window`]): the longest a
/// fault can take to become a death. A probe of the member runs at most
/// `probe_interval × awareness_max_multiplier` (Lifeguard stretches it);
/// the suspicion it raises lasts at most `suspicion_max_timeout_mult` times
/// the suspicion timeout for `max_nodes` members; 5 s more for the verdict
/// to be gossiped to every member. LAN at 16 nodes: 8 + 28.9 + 5 = 42 s.
pub fn false_death_window(profile: Profile, max_nodes: usize) -> Duration {
    let c = profile.config();
    let probe = c.probe_interval * u32::try_from(c.awareness_max_multiplier).unwrap_or(u32::MAX);
    let suspicion = suspicion_timeout(c.suspicion_mult, max_nodes, c.probe_interval)
        * u32::try_from(c.suspicion_max_timeout_mult).unwrap_or(u32::MAX);
    probe + suspicion + Duration::from_secs(5)
}

/// Builds a plan's actions and facts as faults are drawn.
struct Draft {
    actions: Vec<(Time, Action)>,
    disturbed: Vec<Vec<Span>>,
    unreachable: Vec<Span>,
    counts: FaultCounts,
}

impl Draft {
    fn act(&mut self, t: Time, action: Action) {
        self.actions.push((t, action));
    }
    fn disturb(&mut self, node: NodeId, from: Time, to: Time) {
        self.disturbed[node].push((from, to));
    }
    /// A key rotation of `nodes` nodes (joiners included) over
    /// `[from, until)`: three windows of equal length, one per [`KeyStep`],
    /// each node's step at its own time in its window. A node that is not
    /// running at its step's time gets the keyring of its (re)start time
    /// instead ([`Keys::keyring_at`]).
    fn rotate(&mut self, rng: &mut Xoshiro256PlusPlus, nodes: usize, from: Time, until: Time) -> Rotation {
        let next = draw_key(rng);
        let span = (until - from) / 3;
        let opens = [from, from + span, from + span * 2];
        for (open, step) in opens.into_iter().zip([KeyStep::Install, KeyStep::Use, KeyStep::Remove]) {
            let close = open + (span - Duration::from_millis(1));
            for node in 0..nodes {
                self.act(between(rng, open, close), Action::Key(node, step));
            }
        }
        self.counts.rotations += 1;
        Rotation { next, opens }
    }
}

/// A random AES key of 16, 24 or 32 bytes.
fn draw_key(rng: &mut impl Rng) -> Vec<u8> {
    let len = [16, 24, 32][rng.random_range(0..3)];
    (0..len).map(|_| rng.random::<u8>()).collect()
}

impl Plan {
    /// Draws run `seed`'s world with at most `max_nodes` nodes (at least
    /// [`MIN_NODES`]).
    pub fn draw(seed: u64, max_nodes: usize) -> Plan {
        let max_nodes = max_nodes.max(MIN_NODES);
        // The plan's draws come from their own stream; the world's RNG is
        // seeded with `seed` itself.
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5a4a_4d5f_5357_4152);
        let nodes = rng.random_range(MIN_NODES..=max_nodes);
        let profile = if rng.random_bool(0.5) { Profile::Local } else { Profile::Lan };
        let compression = rng.random_bool(0.5);
        let base = millis(&mut rng, 0, 10) + Duration::from_micros(rng.random_range(100..1000));
        let jitter = match rng.random_range(0..3) {
            0 => Jitter::None,
            1 => Jitter::Uniform(base),
            _ => Jitter::Exponential(base / 2),
        };
        let link = Link::fixed(base).with_jitter(jitter);
        let loss = match rng.random_range(0..20) {
            0..8 => 0.0,
            8..15 => rng.random_range(0.0..REACHABLE_LOSS),
            _ => rng.random_range(REACHABLE_LOSS..0.25),
        };
        let duplicate = if rng.random_bool(0.5) { rng.random_range(0.0..0.1) } else { 0.0 };
        let keys = rng.random_bool(0.5).then(|| Keys { initial: draw_key(&mut rng), rotation: None });
        let corrupt = if keys.is_some() && rng.random_bool(0.5) { rng.random_range(0.0..0.05) } else { 0.0 };
        let fault_link = link.with_loss(loss).with_duplicate(duplicate).with_corrupt(corrupt);

        let from = at(FAULTS_FROM);
        let until = from + millis(&mut rng, 15_000, 60_000);
        let mut d = Draft {
            actions: Vec::new(),
            disturbed: vec![Vec::new(); max_nodes],
            unreachable: Vec::new(),
            counts: FaultCounts::default(),
        };

        // The start: node 0 at 0, the others over 3 s, in id order.
        let mut starts: Vec<Time> = (1..nodes).map(|_| at(millis(&mut rng, 0, 3_000))).collect();
        starts.sort_unstable();
        for (i, &t) in starts.iter().enumerate() {
            d.act(t, Action::Apply(Fault::Join(1)));
            d.disturb(i + 1, Time::ZERO, t);
        }

        if fault_link != link {
            d.act(from, Action::Apply(Fault::SetDefaultLink(fault_link)));
            d.act(until, Action::Apply(Fault::SetDefaultLink(link)));
            // A corrupted datagram is refused by AES-GCM: one more lost.
            if loss + corrupt > REACHABLE_LOSS {
                d.unreachable.push((from, until));
            }
        }
        let late = |rng: &mut Xoshiro256PlusPlus, lead: u64| {
            between(rng, from, at(until.since_epoch().saturating_sub(Duration::from_millis(lead))))
        };

        if rng.random_bool(0.35) {
            let t = late(&mut rng, 1_000);
            let heal = (t + millis(&mut rng, 1_000, 20_000)).min(until);
            let mut ids: Vec<NodeId> = (0..nodes).collect();
            crate::swim::shuffle(&mut ids, &mut rng);
            let mut side = ids[..rng.random_range(1..nodes)].to_vec();
            side.sort_unstable();
            d.act(t, Action::Apply(Fault::Partition(vec![side])));
            d.act(heal, Action::Apply(Fault::Heal));
            d.unreachable.push((t, heal));
            d.counts.partitions += 1;
        }
        if rng.random_bool(0.35) {
            // A lag the node can still refute within: the shortest
            // suspicion, halved (it hears the accusation late, then its
            // refutation must spread). A node slower than that is unhealthy,
            // and, like a paused one, reaches nobody in time: it may declare
            // anyone dead, refutations still queued behind its lag.
            let c = profile.config();
            let refutable = suspicion_timeout(c.suspicion_mult, nodes, c.probe_interval) / 2;
            for _ in 0..rng.random_range(1..=(nodes / 5).max(1)) {
                let node = rng.random_range(0..nodes);
                let t = late(&mut rng, 1_000);
                let end = between(&mut rng, t, until);
                let delay = millis(&mut rng, 100, 3_000);
                let (on, off) = if rng.random_bool(0.5) {
                    (Fault::LagInbound { node, delay }, Fault::LagInbound { node, delay: Duration::ZERO })
                } else {
                    (Fault::Lag { node, delay }, Fault::Lag { node, delay: Duration::ZERO })
                };
                d.act(t, Action::Apply(on));
                d.act(end, Action::Apply(off));
                if delay > refutable {
                    d.disturb(node, t, end + delay);
                    d.unreachable.push((t, end + delay));
                }
                d.counts.slow += 1;
            }
        }
        if rng.random_bool(0.3) {
            for _ in 0..rng.random_range(1..=2) {
                let node = rng.random_range(0..nodes);
                let t = late(&mut rng, 500);
                let end = (t + millis(&mut rng, 500, 15_000)).min(until);
                d.act(t, Action::Apply(Fault::Pause(node)));
                d.act(end, Action::Apply(Fault::Resume(node)));
                d.disturb(node, t, end);
                // A paused node reaches nobody, and may accuse anyone when
                // it resumes.
                d.unreachable.push((t, end));
                d.counts.paused += 1;
            }
        }

        // Kills, crashes and leaves take disjoint nodes, never node 0.
        let mut victims: Vec<NodeId> = (1..nodes).collect();
        crate::swim::shuffle(&mut victims, &mut rng);
        let mut victims = victims.into_iter();
        if rng.random_bool(0.35) {
            for node in victims.by_ref().take(rng.random_range(1..=(nodes / 5).max(1))) {
                let t = late(&mut rng, 2_000);
                let mut back = forever();
                if rng.random_bool(0.5) {
                    back = between(&mut rng, t + Duration::from_millis(500), until);
                    d.act(back, Action::Apply(Fault::Restart(node)));
                    d.counts.restarts += 1;
                }
                d.act(t, Action::Apply(Fault::Kill(node)));
                d.disturb(node, t, back);
                d.counts.kills += 1;
            }
        }
        if rng.random_bool(0.2)
            && let Some(node) = victims.next()
        {
            let t = late(&mut rng, 0);
            d.act(t, Action::Apply(Fault::Restart(node)));
            d.disturb(node, t, t);
            d.counts.crashes += 1;
        }
        if rng.random_bool(0.3) {
            for node in victims.by_ref().take(rng.random_range(0..=2)) {
                let t = late(&mut rng, 2_000);
                d.act(t, Action::Leave(node));
                d.act(t + Duration::from_secs(1), Action::Apply(Fault::Kill(node)));
                d.disturb(node, t, forever());
                d.counts.leaves += 1;
            }
            let mut joins: Vec<Time> =
                (0..rng.random_range(0..=(max_nodes - nodes).min(4))).map(|_| late(&mut rng, 0)).collect();
            joins.sort_unstable();
            for (i, t) in joins.into_iter().enumerate() {
                d.act(t, Action::Apply(Fault::Join(1)));
                d.disturb(nodes + i, Time::ZERO, t);
                d.counts.joins += 1;
            }
        }

        let keys = keys.map(|keys| Keys {
            rotation: rng.random_bool(0.6).then(|| d.rotate(&mut rng, nodes + d.counts.joins, from, until)),
            ..keys
        });

        // Stable: ties keep the order they were drawn in.
        d.actions.sort_by_key(|(t, _)| *t);
        d.disturbed.truncate(nodes + d.counts.joins);
        let facts = Facts {
            disturbed: d.disturbed,
            unreachable: d.unreachable,
            window: false_death_window(profile, max_nodes),
        };
        Plan {
            seed,
            max_nodes,
            nodes,
            profile,
            compression,
            keys,
            link,
            fault_link,
            faults_from: from,
            faults_until: until,
            actions: d.actions,
            facts,
            bound: convergence_bound(profile, max_nodes),
            counts: d.counts,
        }
    }

    /// The command that replays this run bit for bit.
    pub fn replay(&self) -> String {
        format!("ringswim swarm --runs 1 --seed {} --max-nodes {} --json", self.seed, self.max_nodes)
    }
}

/// What one run found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The run's world.
    pub plan: Plan,
    /// The first rule broken, if any.
    pub violation: Option<Violation>,
    /// From the end of the faults until every live member held every live
    /// member alive.
    pub converged_after: Option<Duration>,
    /// Inputs the nodes handled and were checked after.
    pub drains: u64,
    /// Deaths declared (each judged by the false-death rule).
    pub deaths: u64,
    /// Joins that reached nobody and were tried again ([`JOIN_RETRY`]).
    pub join_retries: u64,
    /// Events the world handled.
    pub events: u64,
    /// The world's trace hash (equal on a replay).
    pub trace_hash: u64,
    /// Virtual time run.
    pub virtual_time: Duration,
    /// Wall-clock time of the run (not deterministic).
    pub wall: Duration,
}

#[cfg(feature = "cli")]
impl Outcome {
    /// The run's JSON line: `run, seed, nodes, ok, violation, replay`, then
    /// the world drawn and what came of it (feature `cli`).
    pub fn to_json(&self, run: usize) -> Value {
        let p = &self.plan;
        let c = &p.counts;
        json!({
            "run": run,
            "seed": p.seed,
            "nodes": p.nodes,
            "ok": self.violation.is_none(),
            "violation": self.violation.as_ref().map(ToString::to_string),
            "replay": p.replay(),
            "profile": p.profile.name(),
            "compression": p.compression,
            "encrypted": p.keys.is_some(),
            "key_rotations": c.rotations,
            "corrupt": p.fault_link.corrupt,
            "delay_ms": p.link.delay.base.as_secs_f64() * 1e3,
            "loss": p.fault_link.loss,
            "duplicate": p.fault_link.duplicate,
            "partitions": c.partitions,
            "slow": c.slow,
            "paused": c.paused,
            "kills": c.kills,
            "restarts": c.restarts,
            "crashes": c.crashes,
            "joins": c.joins,
            "leaves": c.leaves,
            "faults_from_s": p.faults_from.since_epoch().as_secs_f64(),
            "faults_until_s": p.faults_until.since_epoch().as_secs_f64(),
            "bound_s": p.bound.as_secs_f64(),
            "converged_after_s": self.converged_after.map(|d| d.as_secs_f64()),
            "drains": self.drains,
            "deaths": self.deaths,
            "join_retries": self.join_retries,
            "events": self.events,
            "trace_hash": format!("{:016x}", self.trace_hash),
            "virtual_s": self.virtual_time.as_secs_f64(),
            "wall_s": (self.wall.as_secs_f64() * 1e3).round() / 1e3,
        })
    }
}

/// Runs the world of `seed` (at most `max_nodes` nodes) to its end or its
/// first violation. A panic in the protocol is a violation too.
pub fn run(seed: u64, max_nodes: usize) -> Outcome {
    let plan = Plan::draw(seed, max_nodes);
    let wall = Instant::now();
    let mut outcome = Outcome {
        plan: plan.clone(),
        violation: None,
        converged_after: None,
        drains: 0,
        deaths: 0,
        join_retries: 0,
        events: 0,
        trace_hash: 0,
        virtual_time: Duration::ZERO,
        wall: Duration::ZERO,
    };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| execute(&plan, &mut outcome))) {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let at = at(outcome.virtual_time);
        outcome.violation = Some(Violation { at, rule: "panic", detail: msg.to_owned() });
    }
    outcome.wall = wall.elapsed();
    outcome
}

/// The seeds a restarted or joining node `id` joins through: up to three
/// of nodes 0–2 (not itself); at its first start, only those started
/// before it.
fn seeds_of(id: NodeId, restarted: bool) -> Vec<std::net::SocketAddr> {
    (0..3).filter(|&s| s != id && (restarted || s < id)).map(node_addr).collect()
}

fn execute(plan: &Plan, outcome: &mut Outcome) {
    let config = plan.profile.config().with_enable_compression(plan.compression);
    let keys = plan.keys.clone();
    let mut world = World::new(plan.seed, plan.link, move |ctx| {
        let mut config = config.clone();
        config.keyring = keys.as_ref().map(|k| k.keyring_at(ctx.now));
        SwimNode::new(ctx, config, &seeds_of(ctx.id, ctx.incarnation > 0), false)
    });
    let checks = Rc::new(RefCell::new(Checks::standard(plan.facts.clone())));
    // Nodes whose join reached nobody (all seeds down or cut off), and when
    // they try again.
    let rejoin: Rc<RefCell<Vec<(Time, NodeId)>>> = Rc::default();
    let (observer, failed_joins) = (Rc::clone(&checks), Rc::clone(&rejoin));
    world.observe(move |d| {
        observer.borrow_mut().drained(d);
        for effect in d.effects {
            if let Effect::JoinCompleted { contacted: 0, .. } = effect {
                failed_joins.borrow_mut().push((d.now + JOIN_RETRY, d.id));
            }
        }
    });
    world.add_nodes(1);

    let mut left: Vec<NodeId> = Vec::new();
    let mut actions = plan.actions.iter().peekable();
    let deadline = plan.faults_until + plan.bound;
    let mut end = deadline;
    let mut now = Time::ZERO;
    'run: while now < end {
        let next = (now + CHECK).min(actions.peek().map_or(end, |(t, _)| *t)).min(end);
        while world.next_event_at().is_some_and(|t| t <= next) {
            world.step();
            if world.totals().events > MAX_EVENTS {
                let detail = format!("more than {MAX_EVENTS} events: a node never settles");
                checks.borrow_mut().violation.get_or_insert(Violation { at: world.now(), rule: "stuck", detail });
                break 'run;
            }
            if checks.borrow().violation.is_some() {
                break 'run;
            }
        }
        world.run_until(next);
        now = next;
        while let Some((_, action)) = actions.next_if(|(t, _)| *t <= now) {
            match action {
                Action::Apply(fault) => world.apply(fault.clone()),
                Action::Leave(id) => {
                    world.with_node(*id, |node, now| node.core_mut().leave(now));
                    left.push(*id);
                }
                Action::Key(id, step) => {
                    let Some(Keys { initial, rotation: Some(r) }) = &plan.keys else { unreachable!("drawn with keys") };
                    // A node dead or not started yet misses its step; it
                    // (re)starts with the keyring of that time.
                    if *id >= world.len() {
                        continue;
                    }
                    world.with_node(*id, |node, _| {
                        let keyring = node.core().keyring();
                        match step {
                            KeyStep::Install => keyring.add_key(&r.next),
                            KeyStep::Use => keyring.use_key(&r.next),
                            KeyStep::Remove => keyring.remove_key(initial),
                        }
                        .expect("a rotation's steps in order")
                    });
                }
            }
        }
        let due: Vec<NodeId> = {
            let mut rejoin = rejoin.borrow_mut();
            let due = rejoin.iter().filter(|(t, _)| *t <= now).map(|&(_, id)| id).collect();
            rejoin.retain(|(t, _)| *t > now);
            due
        };
        for id in due.into_iter().filter(|id| !left.contains(id)) {
            outcome.join_retries += 1;
            world.with_node(id, |node, now| node.core_mut().join(&seeds_of(id, true), now));
        }
        if checks.borrow().violation.is_some() {
            break;
        }
        if now >= plan.faults_until && outcome.converged_after.is_none() {
            let live: Vec<NodeId> = (0..world.len()).filter(|&id| world.is_alive(id) && !left.contains(&id)).collect();
            match all_see_all_alive(&world, &live) {
                Ok(()) => {
                    outcome.converged_after = Some(now - plan.faults_until);
                    end = now + HOLD;
                }
                Err(missing) if now >= deadline => {
                    let detail = format!(
                        "{missing} {:.0} s after the faults stopped (bound {:.0} s)",
                        (now - plan.faults_until).as_secs_f64(),
                        plan.bound.as_secs_f64()
                    );
                    checks.borrow_mut().violation = Some(Violation { at: now, rule: "no_convergence", detail });
                    break;
                }
                Err(_) => {}
            }
        }
    }
    let checks = checks.borrow();
    outcome.violation = checks.violation.clone();
    outcome.drains = checks.drains;
    outcome.deaths = checks.deaths;
    outcome.events = world.totals().events;
    outcome.trace_hash = world.trace_hash();
    outcome.virtual_time = world.now().since_epoch();
}

/// `runs` runs from `seed` (run `i` uses seed `seed + i`), on up to `jobs`
/// threads; `each` gets every outcome in run order as soon as it and every
/// earlier run are done. The number that failed.
pub fn swarm(runs: usize, seed: u64, max_nodes: usize, jobs: usize, mut each: impl FnMut(usize, &Outcome)) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
    let mut failed = 0;
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, runs.max(1)) {
            let (tx, next) = (tx.clone(), &next);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= runs {
                        break;
                    }
                    let outcome = run(seed.wrapping_add(i as u64), max_nodes);
                    if tx.send((i, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Print in run order: hold the ones that finish early.
        let mut waiting = std::collections::BTreeMap::new();
        let mut due = 0;
        for (i, outcome) in rx {
            waiting.insert(i, outcome);
            while let Some(outcome) = waiting.remove(&due) {
                failed += usize::from(outcome.violation.is_some());
                each(due, &outcome);
                due += 1;
            }
        }
    });
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_a_function_of_its_seed() {
        let (a, b) = (Plan::draw(7, 12), Plan::draw(7, 12));
        assert_eq!((a.nodes, &a.actions, a.link), (b.nodes, &b.actions, b.link));
        assert!((MIN_NODES..=12).contains(&a.nodes));
        let others: Vec<Plan> = (8..40).map(|s| Plan::draw(s, 12)).collect();
        assert!(others.iter().any(|p| p.actions != a.actions));
        for p in &others {
            assert!(p.actions.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
            assert!(p.actions.iter().all(|(t, _)| *t <= p.faults_until), "every action within the faults");
            assert!(p.nodes + p.counts.joins <= 12);
            assert_eq!(p.facts.disturbed.len(), p.nodes + p.counts.joins);
            assert!(
                !p.actions
                    .iter()
                    .any(|(_, a)| matches!(a, Action::Apply(Fault::Kill(0) | Fault::Restart(0)) | Action::Leave(0)))
            );
        }
        // Across seeds, every kind of fault comes up.
        let sum = |f: fn(&FaultCounts) -> usize| others.iter().map(|p| f(&p.counts)).sum::<usize>();
        for (kind, n) in [
            ("partitions", sum(|c| c.partitions)),
            ("slow", sum(|c| c.slow)),
            ("paused", sum(|c| c.paused)),
            ("kills", sum(|c| c.kills)),
            ("restarts", sum(|c| c.restarts)),
            ("leaves", sum(|c| c.leaves)),
            ("joins", sum(|c| c.joins)),
            ("rotations", sum(|c| c.rotations)),
            ("encrypted", others.iter().filter(|p| p.keys.is_some()).count()),
            ("corrupting", others.iter().filter(|p| p.fault_link.corrupt > 0.0).count()),
        ] {
            assert!(n > 0, "no {kind} in 32 plans");
        }
    }

    #[test]
    fn a_node_whose_join_reached_nobody_joins_again() {
        // Seed 36's world (up to 32 nodes): nodes start while a partition
        // cuts them off from their seeds (nodes 0-2); their joins fail.
        // Retried after the heal, they become members; without the retry
        // nobody would ever hear of them.
        let o = run(36, 32);
        assert_eq!((o.plan.counts.partitions, o.plan.counts.joins), (1, 2));
        assert!(o.join_retries > 0, "no join reached nobody: pick another seed");
        assert_eq!(o.violation, None);
        assert!(o.converged_after.is_some_and(|d| d < o.plan.bound));
    }

    #[test]
    fn a_key_rotation_loses_no_member() {
        // Encrypted worlds that rotate their key mid-faults (some also
        // corrupting datagrams) pass every rule: no member is lost to a
        // keyring that cannot read its peers.
        let rotating: Vec<u64> = (1..200).filter(|&s| Plan::draw(s, 16).counts.rotations > 0).take(6).collect();
        assert_eq!(rotating.len(), 6);
        for seed in rotating {
            let o = run(seed, 16);
            assert_eq!(o.violation, None, "seed {seed}");
            assert!(o.converged_after.is_some(), "seed {seed}");
        }
    }

    #[test]
    fn a_run_replays_bit_for_bit() {
        let (a, b) = (run(3, 6), run(3, 6));
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.violation, b.violation);
        assert_eq!((a.events, a.drains), (b.events, b.drains));
        assert!(a.drains > 1_000, "the checkers saw the run: {}", a.drains);
    }
}
