//! Scenarios: a cluster of [`SwimNode`]s in a [`World`], faults on a
//! timeline, and what came of it as one [`Report`] (`ringswim sim`).
//!
//! # Timeline
//! 1. Time zero: `nodes` nodes start; every node but node 0 joins node 0.
//! 2. Every 100 ms of virtual time the runner checks whether every live
//!    node counts every live node alive: the first such time is
//!    `converge_s`. If that has not happened by half the duration, the run
//!    goes on regardless (`converged: false`).
//! 3. Once every node's gossip queues (membership and user) are empty
//!    too, a quiet window of [`WINDOW`] follows: the traffic rates are
//!    measured over it (steady state, not the tail of the join burst).
//! 4. At its end, all at once: `kill` random nodes (never node 0) die
//!    without leaving; a `slow` fraction of the other nodes (never node 0)
//!    start handling packets and streams `slow_delay_s` (default
//!    [`SLOW_DELAY`], 1 s) late, in order, at any rate, for the rest of the
//!    run: with [`SlowMode::Inbound`] ([`Fault::LagInbound`]) their own
//!    timers fire on time, with [`SlowMode::All`] ([`Fault::Lag`]) they lag
//!    too;
//!    node 0 queues `broadcasts` user messages; a random half of the nodes
//!    is cut off from the other half for `partition_s`.
//! 5. The run goes on to `duration_s`, checking every 100 ms whether every
//!    live node counts every killed node dead (`detect_dead_all_s`, from the
//!    kill), has every broadcast (`broadcast_all_s`, from the queueing) and,
//!    once the partition is healed, counts every live node alive again
//!    (`heal_converge_s`, from the heal). Slow nodes are among the nodes
//!    checked: a lagging node keeps up (its view is `slow_delay_s` old, not
//!    ever older), so these times include its lag. (Under the serial
//!    [`Fault::Slow`] model a slow node's backlog only grows, and it would
//!    have to be left out.) Slow nodes are healthy: their deaths count in
//!    `false_deaths`.
//!
//! The same [`Scenario`] gives the same [`Report`], bar `wall_s` and
//! `peak_rss_mb`.

use std::collections::BTreeSet;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
#[cfg(feature = "cli")]
use serde_json::{Value, json};

use super::swim_node::{Log, SharedLog, SwimNode};
use super::{Fault, Jitter, Link, NodeId, World, node_addr};
use crate::config::Config;
use crate::swim::{Time, random_offset, shuffle};

/// How often the runner looks at the cluster.
pub const CHECK: Duration = Duration::from_millis(100);
/// The quiet window after convergence over which rates are measured.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How late a slow node handles each input ([`Fault::Lag`]).
pub const SLOW_DELAY: Duration = Duration::from_secs(1);
/// Payload size of each user broadcast, by default.
pub const BROADCAST_BYTES: usize = 64;

/// How a slow node is slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlowMode {
    /// Packets and streams are handled `slow_delay_s` late, its own timers
    /// fire on time ([`Fault::LagInbound`]): a starved receive path, whose
    /// probe deadlines pass before it reads acks that came in time. The
    /// Lifeguard paper's slow node.
    #[default]
    Inbound,
    /// Every input, its timers included, is handled `slow_delay_s` late
    /// ([`Fault::Lag`]): the whole node runs behind, but its deadlines
    /// lag with it, so it never accuses anyone for being late itself.
    All,
}

impl SlowMode {
    /// `inbound` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            SlowMode::Inbound => "inbound",
            SlowMode::All => "all",
        }
    }
}

impl FromStr for SlowMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SlowMode, String> {
        match s {
            "inbound" => Ok(SlowMode::Inbound),
            "all" => Ok(SlowMode::All),
            _ => Err(format!("unknown slow mode {s:?} (inbound or all)")),
        }
    }
}

/// Which memberlist defaults the nodes run, and the network under them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// [`Config::default_local`]; links of 0.5 ms ± 0.5 ms.
    #[default]
    Local,
    /// [`Config::default_lan`]; links of 1 ms + up to 1 ms.
    Lan,
    /// [`Config::default_wan`]; links of 50 ms + exponential jitter of
    /// mean 10 ms.
    Wan,
}

impl Profile {
    /// The profile's name: `local`, `lan` or `wan`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Local => "local",
            Profile::Lan => "lan",
            Profile::Wan => "wan",
        }
    }

    /// The node config (name unset).
    pub fn config(self) -> Config {
        match self {
            Profile::Local => Config::default_local(),
            Profile::Lan => Config::default_lan(),
            Profile::Wan => Config::default_wan(),
        }
    }

    /// The default link, without loss.
    pub fn link(self) -> Link {
        match self {
            Profile::Local => Link::default(),
            Profile::Lan => {
                Link::fixed(Duration::from_millis(1)).with_jitter(Jitter::Uniform(Duration::from_millis(1)))
            }
            Profile::Wan => {
                Link::fixed(Duration::from_millis(50)).with_jitter(Jitter::Exponential(Duration::from_millis(10)))
            }
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "local" => Ok(Profile::Local),
            "lan" => Ok(Profile::Lan),
            "wan" => Ok(Profile::Wan),
            _ => Err(format!("unknown profile {s:?} (local, lan or wan)")),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Cluster size.
    pub nodes: usize,
    /// Seconds over which the nodes start (evenly, node 0 first, each
    /// joining node 0); 0 starts them all at once. A large cluster's mass
    /// join comes over seconds (a fleet booting): at once, node 0 answers
    /// every join push/pull before the first reply lands, so the world holds
    /// N replies of up to N members each (gigabytes at 10,000 nodes).
    pub join_spread_s: f64,
    /// Config and network.
    pub profile: Profile,
    /// Datagram loss on every link, `[0, 1]` (streams lose segments at
    /// the same rate: see [`Link`]).
    pub loss: f64,
    /// Probability that a datagram is delivered twice, `[0, 1]`.
    pub duplicate: f64,
    /// Probability that a datagram arrives with one byte changed, `[0, 1]`.
    pub corrupt: f64,
    /// Fraction of the nodes that turn slow after convergence, `[0, 1]`.
    pub slow: f64,
    /// How late a slow node handles each input ([`Fault::Lag`]), seconds;
    /// [`SLOW_DELAY`] by default.
    pub slow_delay_s: f64,
    /// What is slow about a slow node.
    pub slow_mode: SlowMode,
    /// Length of the 50/50 partition, in seconds; 0 for none.
    pub partition_s: f64,
    /// Nodes to kill.
    pub kill: usize,
    /// Virtual seconds to run.
    pub duration_s: f64,
    /// Length of the steady-state window the traffic rates are measured
    /// over, seconds ([`WINDOW`] by default). Make it span a few push/pull
    /// intervals (`push_pull_scale`: 45 s at 128 local nodes) to count their
    /// full cost.
    pub window_s: f64,
    /// The world's seed.
    pub seed: u64,
    /// Lifeguard's awareness and dynamic suspicion on (memberlist's
    /// defaults) or off (`awareness_max_multiplier` and
    /// `suspicion_max_timeout_mult` of 1: fixed probe and suspicion
    /// timeouts).
    pub lifeguard: bool,
    /// Membership changes per second from the faults on: a new node joins
    /// node 0, then a random node (never node 0) leaves gracefully (and its
    /// process ends 1 s later), alternately.
    pub churn: f64,
    /// User broadcasts per second from the faults on, each from a random
    /// live node (64 bytes each, re-gossiped by every node, as serf does).
    pub user_rate: f64,
    /// User broadcasts node 0 queues.
    pub broadcasts: u32,
    /// Size of each, at least 4 bytes ([`BROADCAST_BYTES`] by default).
    pub broadcast_bytes: usize,
    /// `retransmit_mult` override (the profile's when `None`), for the
    /// membership queue and the user broadcasts' queue alike.
    pub retransmit_mult: Option<usize>,
    /// Go memberlist 0.2.2's behaviour ([`Config::with_go_behaviour`]) or
    /// ringswim's ([`Config::extensions`] on, the default).
    pub go_behaviour: bool,
    /// memberlist's LZW compression of packets and streams (on by default;
    /// off saves about a quarter of the simulator's CPU time at 500+ nodes
    /// and changes the byte counts).
    pub compression: bool,
    /// Push/pulls pass between cores unencoded ([`SwimNode::with_skip_wire`]):
    /// the same run (same figures, same packets) with the push/pull codec —
    /// most of the CPU time of a large cluster — out of the way. Stream bytes
    /// are counted at their plain encoded length, so with compression on the
    /// byte rates differ; the trace fingerprint differs (push/pull contents
    /// are not in it).
    pub skip_wire: bool,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            nodes: 10,
            join_spread_s: 0.0,
            profile: Profile::Local,
            loss: 0.0,
            duplicate: 0.0,
            corrupt: 0.0,
            slow: 0.0,
            slow_delay_s: SLOW_DELAY.as_secs_f64(),
            slow_mode: SlowMode::default(),
            partition_s: 0.0,
            kill: 0,
            duration_s: 60.0,
            window_s: WINDOW.as_secs_f64(),
            seed: 1,
            lifeguard: true,
            churn: 0.0,
            user_rate: 0.0,
            broadcasts: 3,
            broadcast_bytes: BROADCAST_BYTES,
            retransmit_mult: None,
            compression: true,
            go_behaviour: false,
            skip_wire: false,
        }
    }
}

/// What a scenario measured. Times are virtual seconds; `None` where a
/// thing was not asked for (or, for times, did not happen).
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The scenario.
    pub scenario: Scenario,
    /// When the faults (kill, slow, partition, broadcasts) were applied,
    /// virtual seconds from the start.
    pub faults_at_s: Option<f64>,
    /// From the (last) join until every node counted every node alive.
    pub converge_s: Option<f64>,
    /// Whether that happened by half the duration.
    pub converged: bool,
    /// When every node's gossip queues first stood empty (from the start;
    /// checked until the quiet window starts): the storm of a mass join is
    /// over. `None` if it did not happen by then.
    pub drained_s: Option<f64>,
    /// How many (node, member) pairs were still missing then: live nodes
    /// not yet counted alive, summed over the live nodes. 0 if the cluster
    /// had converged; more means only push/pulls can still repair it.
    pub missing_at_drain: Option<usize>,
    /// From the kill until every live node counted every killed node dead.
    pub detect_dead_all_s: Option<f64>,
    /// Whether that happened (`None` without kills).
    pub detected: Option<bool>,
    /// Nodes never killed (or not yet killed) that some node declared dead.
    pub false_deaths: usize,
    /// Of `false_deaths`, how many were slow nodes (the rest were healthy
    /// nodes running at full speed).
    pub false_deaths_slow: usize,
    /// The death events behind `false_deaths`.
    pub false_death_events: usize,
    /// Of those, the ones a slow node declared (its own view, read late).
    pub false_death_events_by_slow: usize,
    /// Times a healthy node refuted a suspect or dead claim about itself
    /// (each needed a false suspicion or death to reach it).
    pub false_suspicions: usize,
    /// Of `false_suspicions`, refutations by slow nodes (the rest were
    /// healthy nodes at full speed refuting).
    pub false_suspicions_slow: usize,
    /// From node 0 queueing the broadcasts until every live node had them.
    pub broadcast_all_s: Option<f64>,
    /// Whether that happened (`None` without broadcasts).
    pub broadcast_ok: Option<bool>,
    /// From the heal until every live node counted every live node alive.
    pub heal_converge_s: Option<f64>,
    /// The `user_rate` broadcasts sent.
    pub user_sent: usize,
    /// Of those, how many reached every node that was live when it was
    /// sent and still is (by the end of the run).
    pub user_complete: usize,
    /// Of those, how many did within 1 s.
    pub user_complete_1s: usize,
    /// The share of (broadcast, expected recipient) pairs delivered by the
    /// end of the run.
    pub user_delivery: Option<f64>,
    /// Median / 99th percentile time to reach every expected recipient, of
    /// all sent (an incomplete one counts as never: `None` when it decides
    /// the percentile).
    pub user_p50_s: Option<f64>,
    /// See `user_p50_s`.
    pub user_p99_s: Option<f64>,
    /// Bytes (datagrams and streams) sent per node per second in the quiet
    /// window after convergence.
    pub bytes_per_node_per_s: f64,
    /// Datagrams sent per node per second in that window.
    pub packets_per_node_per_s: f64,
    /// Datagrams sent over the whole run.
    pub packets_sent: u64,
    /// Datagrams lost to the link loss.
    pub packets_lost: u64,
    /// Extra datagram copies delivered (`duplicate`).
    pub packets_duplicated: u64,
    /// Datagrams delivered with a byte changed (`corrupt`).
    pub packets_corrupted: u64,
    /// Stream exchanges opened.
    pub streams_opened: u64,
    /// Of those, how many failed (refused, closed, timed out).
    pub streams_failed: u64,
    /// Events the world handled.
    pub events: u64,
    /// The world's trace hash.
    pub trace_hash: u64,
    /// Virtual time run.
    pub virtual_s: f64,
    /// Wall-clock time of the run (not deterministic).
    pub wall_s: f64,
    /// Peak resident set of the process, MiB (Linux `VmHWM`; not
    /// deterministic).
    pub peak_rss_mb: Option<f64>,
}

/// Numbers of the `user_rate` broadcasts start here (node 0's `broadcasts`
/// are numbered from 0).
const USER_BROADCAST_BASE: u32 = 1_000_000;
/// A user broadcast's completion is looked for this long (bounding the
/// checks when they starve); the end of the run still counts deliveries.
const USER_TRACK: Duration = Duration::from_secs(30);

/// One `user_rate` broadcast: its number, when it was sent, the nodes the
/// sender knew alive then (that are still live) and when the last of them
/// had it.
struct UserBroadcast {
    n: u32,
    at: Time,
    expected: Vec<NodeId>,
    done: Option<Time>,
}

/// What became of the `user_rate` broadcasts.
struct UserStats {
    sent: usize,
    complete: usize,
    complete_1s: usize,
    delivery: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

impl UserStats {
    fn of(world: &World<SwimNode>, user: &mut [UserBroadcast], live: &[NodeId]) -> UserStats {
        let (mut pairs, mut delivered) = (0usize, 0usize);
        let mut times: Vec<Option<f64>> = Vec::with_capacity(user.len());
        let mut complete = 0;
        for b in user.iter_mut() {
            b.expected.retain(|id| live.contains(id));
            let got = b.expected.iter().filter(|&&id| world.node(id).is_some_and(|n| n.has_received(b.n))).count();
            pairs += b.expected.len();
            delivered += got;
            if got == b.expected.len() {
                complete += 1;
            }
            times.push(b.done.map(|d| secs_between(b.at, d)));
        }
        let complete_1s = times.iter().filter(|t| t.is_some_and(|t| t <= 1.0)).count();
        // None sorts first; an incomplete broadcast is slower than any.
        times.sort_by(|a, b| match (a, b) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(_), None) => std::cmp::Ordering::Less,
            (Some(x), Some(y)) => x.total_cmp(y),
        });
        let pct = |p: f64| -> Option<f64> {
            if times.is_empty() {
                return None;
            }
            let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
            times[i].map(round3)
        };
        UserStats {
            sent: user.len(),
            complete,
            complete_1s,
            delivery: (pairs > 0).then(|| delivered as f64 / pairs as f64),
            p50: pct(0.5),
            p99: pct(0.99),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(feature = "cli")]
impl Report {
    /// One JSON object, fields in a fixed order (feature `cli`).
    pub fn to_json(&self) -> Value {
        let s = &self.scenario;
        json!({
            "nodes": s.nodes,
            "seed": s.seed,
            "profile": s.profile.name(),
            "loss": s.loss,
            "duplicate": s.duplicate,
            "corrupt": s.corrupt,
            "slow": s.slow,
            "slow_delay_s": s.slow_delay_s,
            "slow_mode": s.slow_mode.name(),
            "partition_s": s.partition_s,
            "kill": s.kill,
            "duration_s": s.duration_s,
            "window_s": s.window_s,
            "lifeguard": s.lifeguard,
            "churn": s.churn,
            "join_spread_s": s.join_spread_s,
            "user_rate": s.user_rate,
            "broadcasts": s.broadcasts,
            "broadcast_bytes": s.broadcast_bytes,
            "retransmit_mult": s.retransmit_mult,
            "compression": s.compression,
            "skip_wire": s.skip_wire,
            "behaviour": if s.go_behaviour { "go" } else { "ringswim" },
            "faults_at_s": self.faults_at_s,
            "converge_s": self.converge_s,
            "converged": self.converged,
            "drained_s": self.drained_s,
            "missing_at_drain": self.missing_at_drain,
            "detect_dead_all_s": self.detect_dead_all_s,
            "detected": self.detected,
            "false_deaths": self.false_deaths,
            "false_deaths_slow": self.false_deaths_slow,
            "false_death_events": self.false_death_events,
            "false_death_events_by_slow": self.false_death_events_by_slow,
            "false_suspicions": self.false_suspicions,
            "false_suspicions_slow": self.false_suspicions_slow,
            "broadcast_all_s": self.broadcast_all_s,
            "broadcast_ok": self.broadcast_ok,
            "heal_converge_s": self.heal_converge_s,
            "user_sent": self.user_sent,
            "user_complete": self.user_complete,
            "user_complete_1s": self.user_complete_1s,
            "user_delivery": self.user_delivery.map(|x| (x * 1e6).round() / 1e6),
            "user_p50_s": self.user_p50_s,
            "user_p99_s": self.user_p99_s,
            "bytes_per_node_per_s": round3(self.bytes_per_node_per_s),
            "packets_per_node_per_s": round3(self.packets_per_node_per_s),
            "packets_sent": self.packets_sent,
            "packets_lost": self.packets_lost,
            "packets_duplicated": self.packets_duplicated,
            "packets_corrupted": self.packets_corrupted,
            "streams_opened": self.streams_opened,
            "streams_failed": self.streams_failed,
            "events": self.events,
            "trace_hash": format!("{:016x}", self.trace_hash),
            "virtual_s": self.virtual_s,
            "wall_s": round3(self.wall_s),
            "peak_rss_mb": self.peak_rss_mb.map(|m| (m * 10.0).round() / 10.0),
        })
    }
}

/// Bytes a simulation holds per (node, member) pair at its peak: every node
/// keeps every member (its table entry, index slot and queued news). The
/// README's large runs measured 152 bytes at 10,000 nodes (15,168 MB), 187
/// at 5,000 and 185 at 2,000; the lowest figure is used, so that an estimate
/// above the memory there is means the run cannot fit.
pub const PEAK_BYTES_PER_PAIR: u64 = 150;

/// The memory a run of `nodes` nodes needs at its peak, estimated as
/// `nodes² × `[`PEAK_BYTES_PER_PAIR`] bytes (saturating). Small runs need
/// more than this (the process itself, a few MB); large ones are N² at heart.
pub fn estimated_peak_bytes(nodes: usize) -> u64 {
    let n = u64::try_from(nodes).unwrap_or(u64::MAX);
    n.saturating_mul(n).saturating_mul(PEAK_BYTES_PER_PAIR)
}

/// Memory the system can give a new process without swapping, in bytes
/// (`MemAvailable` in `/proc/meminfo`); `None` where that cannot be read.
pub fn available_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Where a running scenario is, handed to [`run_with_progress`]'s callback
/// at every check (each 100 ms of virtual time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Virtual seconds reached.
    pub virtual_s: f64,
    /// Virtual seconds the run lasts ([`Scenario::duration_s`]).
    pub duration_s: f64,
    /// Nodes in the world so far (joins under way and churn included).
    pub nodes: usize,
    /// Real time since the run started.
    pub wall: Duration,
}

/// The process's peak resident set in MiB (`VmHWM` in `/proc/self/status`).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn secs_between(from: Time, to: Time) -> f64 {
    to.saturating_since(from).as_secs_f64()
}

/// Whether every one of `observers` counts exactly the `live` nodes alive.
fn all_see_all(world: &World<SwimNode>, observers: &[NodeId], live: &[NodeId]) -> bool {
    let counts_match = observers.iter().all(|&id| world.node(id).is_some_and(|n| n.alive_view() == live.len()));
    if !counts_match {
        return false;
    }
    if live.len() == world.len() {
        // Nobody else exists: the counts say it all.
        return true;
    }
    observers.iter().all(|&id| world.node(id).is_some_and(|n| live.iter().all(|&other| n.thinks_alive(other))))
}

/// Runs `s` to its end.
///
/// # Panics
/// With no nodes, or more than [`MAX_NODES`](super::MAX_NODES).
pub fn run(s: &Scenario) -> Report {
    run_with_progress(s, &mut |_| {})
}

/// [`run`], calling `progress` at every check (each 100 ms of virtual
/// time) with where the run is. The callback cannot change the run: the
/// report is the same as [`run`]'s.
///
/// # Panics
/// As [`run`].
pub fn run_with_progress(s: &Scenario, progress: &mut dyn FnMut(&Progress)) -> Report {
    assert!(s.nodes > 0, "a scenario needs nodes");
    let wall = Instant::now();
    let log = SharedLog::default();
    let mut config = s.profile.config();
    if !s.lifeguard {
        config = config.with_awareness_max_multiplier(1).with_suspicion_max_timeout_mult(1);
    }
    config = config.with_enable_compression(s.compression);
    if s.go_behaviour {
        config = config.with_go_behaviour();
    }
    if let Some(mult) = s.retransmit_mult {
        config = config.with_retransmit_mult(mult);
    }
    let gossip = s.broadcasts > 0 || s.user_rate > 0.0;
    let skip_wire = s.skip_wire;
    let link = s.profile.link().with_loss(s.loss).with_duplicate(s.duplicate).with_corrupt(s.corrupt);
    let mut world = World::new(s.seed, link, move |ctx| {
        let seeds = if ctx.id == 0 { vec![] } else { vec![node_addr(0)] };
        SwimNode::new(ctx, config.clone(), &seeds, gossip).with_skip_wire(skip_wire)
    });
    world.observe(Log::recorder(Rc::clone(&log)));
    // The scenario's own choices (slow nodes, victims, sides) come from a
    // second stream, so they do not shift the world's.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(s.seed ^ 0x5ce7_a810_5ce7_a810);

    if s.join_spread_s > 0.0 && s.nodes > 1 {
        world.add_nodes(1);
        let gap = s.join_spread_s / (s.nodes - 1) as f64;
        for i in 1..s.nodes {
            world.schedule(Time::from_epoch(Duration::from_secs_f64(gap * i as f64)), Fault::Join(1));
        }
    } else {
        world.add_nodes(s.nodes);
    }

    let slow_delay = Duration::from_secs_f64(s.slow_delay_s.max(0.0));
    let end = Time::from_epoch(Duration::from_secs_f64(s.duration_s.max(0.0)));
    let converge_deadline = Time::from_epoch(Duration::from_secs_f64(s.duration_s.max(0.0) / 2.0));
    let mut live: Vec<NodeId> = (0..s.nodes).collect();
    // The live nodes: whose views the checks wait for.
    let mut observers: Vec<NodeId> = live.clone();

    let mut converged_at: Option<Time> = None;
    let mut drained: Option<(Time, usize)> = None;
    let mut window_start: Option<Time> = None;
    let mut rates: Option<(f64, f64)> = None;
    let mut faults_at: Option<Time> = None;
    let mut faults_applied = false;
    let mut killed: Vec<NodeId> = Vec::new();
    let mut slow: Vec<NodeId> = Vec::new();
    let mut detected_at: Option<Time> = None;
    let mut broadcast_done_at: Option<Time> = None;
    let mut heal_at: Option<Time> = None;
    let mut healed_at: Option<Time> = None;
    // Churn: nodes that left (gracefully) and when; user broadcasts sent.
    let mut departed: Vec<(NodeId, Time)> = Vec::new();
    let mut churn_due = 0.0f64;
    let mut user_due = 0.0f64;
    let mut next_churn_is_join = true;
    let mut user: Vec<UserBroadcast> = Vec::new();

    while world.now() < end {
        let t = (world.now() + CHECK).min(end);
        world.run_until(t);
        progress(&Progress {
            virtual_s: secs_between(Time::ZERO, t),
            duration_s: s.duration_s,
            nodes: world.len(),
            wall: wall.elapsed(),
        });
        if world.len() < s.nodes {
            continue; // still starting
        }

        if window_start.is_none() {
            if converged_at.is_none() && all_see_all(&world, &live, &live) {
                converged_at = Some(t);
            }
            // Steady state: converged and every queue drained.
            let quiet = live.iter().all(|&id| world.node(id).is_some_and(SwimNode::queues_empty));
            if quiet && drained.is_none() {
                let missing =
                    live.iter().filter_map(|&id| world.node(id)).map(|n| live.len().saturating_sub(n.alive_view()));
                drained = Some((t, missing.sum()));
            }
            let settled = converged_at.is_some() && quiet;
            if settled || t >= converge_deadline {
                window_start = Some(t);
                faults_at = Some(t + Duration::from_secs_f64(s.window_s.max(0.0)));
                world.reset_window();
            }
            continue;
        }

        if !faults_applied && faults_at.is_some_and(|f| t >= f) {
            faults_applied = true;
            faults_at = Some(t);
            rates = Some((world.bytes_per_node_per_s(), world.packets_per_node_per_s()));
            let mut others: Vec<NodeId> = (1..s.nodes).collect();
            shuffle(&mut others, &mut rng);
            killed = others[..s.kill.min(others.len())].to_vec();
            killed.sort_unstable();
            for &id in &killed {
                world.apply(Fault::Kill(id));
            }
            live.retain(|id| killed.binary_search(id).is_err());
            let n_slow = ((s.slow.clamp(0.0, 1.0) * s.nodes as f64).round() as usize).min(others.len() - killed.len());
            slow = others[killed.len()..killed.len() + n_slow].to_vec();
            slow.sort_unstable();
            for &node in &slow {
                world.apply(match s.slow_mode {
                    SlowMode::Inbound => Fault::LagInbound { node, delay: slow_delay },
                    SlowMode::All => Fault::Lag { node, delay: slow_delay },
                });
            }
            // Lagging nodes keep up, so they stay observers.
            observers.retain(|id| killed.binary_search(id).is_err());
            for n in 0..s.broadcasts {
                world.with_node(0, |node, _| node.broadcast(n, s.broadcast_bytes));
            }
            if s.partition_s > 0.0 {
                let mut all: Vec<NodeId> = (0..s.nodes).collect();
                shuffle(&mut all, &mut rng);
                let mut side = all[..s.nodes / 2].to_vec();
                side.sort_unstable();
                world.apply(Fault::Partition(vec![side]));
                let heal = t + Duration::from_secs_f64(s.partition_s);
                world.schedule(heal, Fault::Heal);
                heal_at = Some(heal);
            }
            continue;
        }
        if !faults_applied {
            continue;
        }

        if s.churn > 0.0 || s.user_rate > 0.0 {
            let step = CHECK.as_secs_f64();
            churn_due += s.churn * step;
            while churn_due >= 1.0 {
                churn_due -= 1.0;
                if next_churn_is_join {
                    let id = world.len();
                    world.apply(Fault::Join(1));
                    live.push(id);
                    observers.push(id);
                } else {
                    let candidates: Vec<NodeId> = observers.iter().copied().filter(|&id| id != 0).collect();
                    if !candidates.is_empty() {
                        let id = candidates[random_offset(candidates.len(), &mut rng)];
                        world.with_node(id, |node, now| node.core_mut().leave(now));
                        world.schedule(t + Duration::from_secs(1), Fault::Kill(id));
                        departed.push((id, t));
                        live.retain(|&x| x != id);
                        observers.retain(|&x| x != id);
                    }
                }
                next_churn_is_join = !next_churn_is_join;
            }
            user_due += s.user_rate * step;
            while user_due >= 1.0 {
                user_due -= 1.0;
                let from = observers[random_offset(observers.len(), &mut rng)];
                let n = USER_BROADCAST_BASE + u32::try_from(user.len()).unwrap_or(u32::MAX - USER_BROADCAST_BASE);
                // Owed to the members the sender knows of (a node whose
                // join is still under way is not one yet).
                let expected = world
                    .with_node(from, |node, _| {
                        node.broadcast(n, BROADCAST_BYTES);
                        observers.iter().copied().filter(|&id| node.thinks_alive(id)).collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                user.push(UserBroadcast { n, at: t, expected, done: None });
            }
            for b in user.iter_mut().filter(|b| b.done.is_none() && t.saturating_since(b.at) <= USER_TRACK) {
                b.expected.retain(|id| observers.binary_search(id).is_ok() || observers.contains(id));
                if b.expected.iter().all(|&id| world.node(id).is_some_and(|node| node.has_received(b.n))) {
                    b.done = Some(t);
                }
            }
        }

        if !killed.is_empty() && detected_at.is_none() {
            let all_dead =
                observers.iter().all(|&id| world.node(id).is_some_and(|n| killed.iter().all(|&k| n.thinks_dead(k))));
            if all_dead {
                detected_at = Some(t);
            }
        }
        if s.broadcasts > 0 && broadcast_done_at.is_none() {
            let want = s.broadcasts as usize;
            if observers.iter().all(|&id| world.node(id).is_some_and(|n| n.num_received() >= want)) {
                broadcast_done_at = Some(t);
            }
        }
        if let Some(heal) = heal_at
            && healed_at.is_none()
            && t >= heal
            && all_see_all(&world, &observers, &live)
        {
            healed_at = Some(t);
        }
    }

    let (bytes_rate, packets_rate) =
        rates.unwrap_or_else(|| (world.bytes_per_node_per_s(), world.packets_per_node_per_s()));
    let kill_at = faults_applied.then(|| faults_at.expect("set with faults_applied"));
    let log = log.borrow();
    let mut false_victims = BTreeSet::new();
    let mut false_death_events = 0;
    let mut false_death_events_by_slow = 0;
    for &(at, observer, subject) in &log.deaths {
        let was_killed = (killed.binary_search(&subject).is_ok() && kill_at.is_some_and(|k| at >= k))
            || departed.iter().any(|&(id, left)| id == subject && at >= left);
        if !was_killed {
            false_victims.insert(subject);
            false_death_events += 1;
            false_death_events_by_slow += usize::from(slow.binary_search(&observer).is_ok());
        }
    }
    let user_stats = UserStats::of(&world, &mut user, &observers);
    let totals = *world.totals();
    let since_faults = |done: Option<Time>| done.zip(kill_at).map(|(d, k)| secs_between(k, d));
    Report {
        scenario: s.clone(),
        faults_at_s: kill_at.map(|k| secs_between(Time::ZERO, k)),
        converge_s: converged_at.map(|c| secs_between(Time::ZERO, c)),
        converged: converged_at.is_some(),
        drained_s: drained.map(|(t, _)| secs_between(Time::ZERO, t)),
        missing_at_drain: drained.map(|(_, missing)| missing),
        detect_dead_all_s: since_faults(detected_at),
        detected: (s.kill > 0).then_some(detected_at.is_some()),
        false_deaths: false_victims.len(),
        false_deaths_slow: false_victims.iter().filter(|v| slow.binary_search(v).is_ok()).count(),
        false_death_events,
        false_death_events_by_slow,
        false_suspicions: log.refutations.len(),
        false_suspicions_slow: log.refutations.iter().filter(|(_, n)| slow.binary_search(n).is_ok()).count(),
        broadcast_all_s: since_faults(broadcast_done_at),
        broadcast_ok: (s.broadcasts > 0).then_some(broadcast_done_at.is_some()),
        heal_converge_s: healed_at.zip(heal_at).map(|(d, h)| secs_between(h, d)),
        user_sent: user_stats.sent,
        user_complete: user_stats.complete,
        user_complete_1s: user_stats.complete_1s,
        user_delivery: user_stats.delivery,
        user_p50_s: user_stats.p50,
        user_p99_s: user_stats.p99,
        bytes_per_node_per_s: bytes_rate,
        packets_per_node_per_s: packets_rate,
        packets_sent: totals.packets_sent,
        packets_lost: totals.packets_lost,
        packets_duplicated: totals.packets_duplicated,
        packets_corrupted: totals.packets_corrupted,
        streams_opened: totals.streams_opened,
        streams_failed: totals.streams_failed,
        events: totals.events,
        trace_hash: world.trace_hash(),
        virtual_s: world.now().since_epoch().as_secs_f64(),
        wall_s: wall.elapsed().as_secs_f64(),
        peak_rss_mb: peak_rss_mb(),
    }
}

// The assertions print the report as JSON.
#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    fn small() -> Scenario {
        Scenario { nodes: 8, duration_s: 45.0, kill: 1, seed: 3, ..Scenario::default() }
    }

    #[test]
    fn profiles_parse() {
        for p in [Profile::Local, Profile::Lan, Profile::Wan] {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        assert!("moon".parse::<Profile>().is_err());
    }

    #[test]
    fn progress_follows_virtual_time_and_changes_nothing() {
        let s = Scenario { nodes: 5, duration_s: 3.0, broadcasts: 0, ..Scenario::default() };
        let mut seen: Vec<Progress> = Vec::new();
        let observed = run_with_progress(&s, &mut |p| seen.push(*p));
        // Every 100 ms of the 3 virtual seconds, in order, to the end.
        assert_eq!(seen.len(), 30);
        assert!(seen.windows(2).all(|w| w[0].virtual_s < w[1].virtual_s && w[0].wall <= w[1].wall));
        assert_eq!(seen.last().map(|p| (p.virtual_s, p.duration_s, p.nodes)), Some((3.0, 3.0, 5)));
        let plain = run(&s);
        assert_eq!(observed.trace_hash, plain.trace_hash);
        assert_eq!(observed.to_json()["converge_s"], plain.to_json()["converge_s"]);
    }

    #[test]
    fn memory_estimate_is_quadratic_and_saturates() {
        // The README's 10,000-node run peaked at 15,168 MB.
        assert_eq!(estimated_peak_bytes(10_000), 15_000_000_000);
        assert_eq!(estimated_peak_bytes(20_000), 4 * estimated_peak_bytes(10_000));
        assert_eq!(estimated_peak_bytes(usize::MAX), u64::MAX);
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(available_memory_bytes().is_some_and(|b| b > 0));
        }
    }

    #[test]
    fn a_small_cluster_converges_detects_and_broadcasts() {
        let r = run(&small());
        assert!(r.converged, "{}", r.to_json());
        assert_eq!(r.detected, Some(true), "{}", r.to_json());
        assert_eq!(r.false_deaths, 0, "{}", r.to_json());
        assert_eq!(r.broadcast_ok, Some(true), "{}", r.to_json());
        assert!(r.packets_per_node_per_s > 0.0);
        assert_eq!(r.virtual_s, 45.0);
    }

    #[test]
    fn nodes_joining_over_seconds_converge_once_all_are_in() {
        let s = Scenario { nodes: 40, join_spread_s: 4.0, duration_s: 40.0, ..small() };
        let r = run(&s);
        assert!(r.converged, "{}", r.to_json());
        let converge = r.converge_s.expect("converged");
        assert!(converge >= 4.0, "the last node starts at 4 s: {converge}");
        assert_eq!((r.detected, r.false_deaths), (Some(true), 0), "{}", r.to_json());
        assert_eq!(r.to_json()["join_spread_s"], 4.0);
    }

    #[test]
    fn same_seed_same_report() {
        let strip = |mut r: Report| {
            r.wall_s = 0.0;
            r.peak_rss_mb = None;
            r
        };
        assert_eq!(strip(run(&small())), strip(run(&small())));
    }

    #[test]
    fn skipping_the_push_pull_codec_changes_nothing_but_speed() {
        // Same seed, push/pulls unencoded: every figure, packet and stream
        // byte count is the same; only the fingerprint (which no longer sees
        // push/pull contents) and the wall clock differ.
        let s = Scenario { nodes: 40, join_spread_s: 2.0, compression: false, ..small() };
        let strip = |mut r: Report| {
            r.wall_s = 0.0;
            r.peak_rss_mb = None;
            r.trace_hash = 0;
            r.scenario.skip_wire = false;
            r
        };
        let (wire, skipped) = (run(&s), run(&Scenario { skip_wire: true, ..s }));
        assert!(wire.converged && wire.streams_opened > 40, "{}", wire.to_json());
        assert_eq!(skipped.to_json()["skip_wire"], true);
        assert_eq!(strip(wire), strip(skipped));
    }

    #[test]
    fn after_a_mass_join_go_leaves_pairs_for_push_pull_ringswim_none() {
        // docs/go-behaviour.md §1, at 64 nodes joining at once. Under Go's rules the
        // gossip dies down with members still unknown to some nodes, and
        // nothing repairs them before the periodic push/pull (30 s at 64
        // local nodes, later than this run looks); under ringswim's every
        // node knows every other before the queues drain.
        let s = Scenario { nodes: 64, duration_s: 40.0, kill: 0, broadcasts: 0, compression: false, ..small() };
        let go = run(&Scenario { go_behaviour: true, ..s.clone() });
        let ours = run(&s);
        assert!(go.missing_at_drain.is_some_and(|m| m > 0), "{}", go.to_json());
        assert_eq!(go.converge_s, None, "{}", go.to_json());
        assert_eq!(ours.missing_at_drain, Some(0), "{}", ours.to_json());
        assert!(ours.converge_s.is_some_and(|c| c < 1.0), "{}", ours.to_json());
    }

    #[test]
    fn lagging_nodes_keep_up_and_observe() {
        // Two of ten nodes handle everything 1 s late; they are observers,
        // so detection and broadcast need them too.
        let s = Scenario { nodes: 10, slow: 0.2, ..small() };
        let r = run(&s);
        assert!(r.converged, "{}", r.to_json());
        assert_eq!(r.detected, Some(true), "{}", r.to_json());
        assert_eq!(r.broadcast_ok, Some(true), "{}", r.to_json());
        assert_eq!(r.to_json()["slow_delay_s"], 1.0);
    }

    /// 10 % of the nodes read packets 1 s late while their timers run on
    /// time: they accuse healthy members.
    fn slow_nodes(go_behaviour: bool, lifeguard: bool) -> Report {
        let s = Scenario { nodes: 50, slow: 0.1, duration_s: 90.0, kill: 0, compression: false, ..small() };
        run(&Scenario { go_behaviour, lifeguard, ..s })
    }

    fn healthy_false_deaths(r: &Report) -> usize {
        r.false_deaths - r.false_deaths_slow
    }

    #[test]
    fn lifeguard_cuts_false_deaths_caused_by_slow_nodes() {
        // Under Go's rules, Lifeguard's awareness and dynamic suspicion at
        // least halve the healthy members declared dead (the paper's effect).
        let (on, off) = (slow_nodes(true, true), slow_nodes(true, false));
        assert!(off.converged && on.converged);
        assert!(healthy_false_deaths(&off) > 0, "{}", off.to_json());
        assert!(
            2 * healthy_false_deaths(&on) <= healthy_false_deaths(&off),
            "on {}\noff {}",
            on.to_json(),
            off.to_json()
        );
    }

    #[test]
    fn ringswim_behaviour_declares_no_healthy_node_dead_where_go_does() {
        // Same seed, same slow nodes: with refutations that reach everyone
        // (a larger budget, push/pull after news) nobody is declared dead.
        let (go, ours) = (slow_nodes(true, true), slow_nodes(false, true));
        assert!(go.false_deaths > 0, "{}", go.to_json());
        assert_eq!(ours.false_deaths, 0, "{}", ours.to_json());
    }

    #[test]
    fn after_a_long_partition_only_ringswim_reconnects() {
        // 60 s is past gossip_to_the_dead_time (LAN 30 s): each side reaps
        // the other. Go never merges again; the reconnect does.
        let s = Scenario {
            nodes: 16,
            profile: Profile::Lan,
            partition_s: 60.0,
            duration_s: 150.0,
            kill: 0,
            compression: false,
            ..small()
        };
        let go = run(&Scenario { go_behaviour: true, ..s.clone() });
        assert!(go.converged);
        assert_eq!(go.heal_converge_s, None, "{}", go.to_json());
        let ours = run(&s);
        assert!(ours.heal_converge_s.is_some_and(|t| t < 30.0), "{}", ours.to_json());
    }

    #[test]
    fn under_churn_user_broadcasts_keep_flowing() {
        // A join or a leave every second and 5 user broadcasts a second
        // from random nodes: under ringswim's rules nearly all reach every
        // member within 1 s, under Go's a good part do not.
        let s = Scenario {
            nodes: 50,
            duration_s: 90.0,
            kill: 0,
            broadcasts: 0,
            churn: 1.0,
            user_rate: 5.0,
            compression: false,
            ..small()
        };
        let ours = run(&s);
        let go = run(&Scenario { go_behaviour: true, ..s });
        let in_1s = |r: &Report| r.user_complete_1s as f64 / r.user_sent as f64;
        assert!(ours.user_sent > 300 && go.user_sent > 100);
        assert!(in_1s(&ours) >= 0.95, "{}", ours.to_json());
        assert!(in_1s(&go) < 0.8, "{}", go.to_json());
        assert_eq!(ours.false_deaths, 0, "leaves are not deaths: {}", ours.to_json());
    }

    #[test]
    fn heavy_loss_reaches_streams_too() {
        // Half the datagrams and half the stream segments lost: probes and
        // their TCP fallback fail, so healthy members are suspected and
        // refute. (While streams ignored the loss, the fallback always got
        // through and nobody was ever suspected.)
        let s = Scenario { nodes: 10, loss: 0.5, kill: 0, broadcasts: 0, duration_s: 60.0, ..small() };
        let r = run(&s);
        assert!(r.streams_failed > 0, "{}", r.to_json());
        assert!(r.false_suspicions > 0, "{}", r.to_json());
    }

    #[test]
    fn a_partition_heals() {
        // 5 s is long enough for each side to declare members of the other
        // dead; after the heal, every live member counts every live member
        // alive again within one push/pull interval (15 s local): the
        // accused refute as soon as gossip tells them, and the periodic
        // push/pull repairs whatever gossip missed.
        let s = Scenario { partition_s: 5.0, kill: 0, duration_s: 60.0, ..small() };
        let r = run(&s);
        assert!(r.converged, "{}", r.to_json());
        assert_eq!(r.detected, None);
        assert!(r.false_deaths > 0, "the cut had no effect: {}", r.to_json());
        let push_pull = s.profile.config().push_pull_interval.as_secs_f64();
        assert!(r.heal_converge_s.is_some_and(|t| t <= push_pull), "{}", r.to_json());
    }
}
