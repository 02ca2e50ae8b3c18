//! `ringswim cluster`: N members in one process on 127.0.0.1, each on its
//! own UDP and TCP port, all joining node 0, measured as `ringswim sim`
//! measures a simulated cluster (see [`ClusterReport`] for each figure).
//!
//! Phases, each bounded by what is left of `duration`:
//! 1. **start**: host every node and join each to node 0 (several joins at
//!    once); `start_s` ends when the last join returns.
//! 2. **converge**: until every node counts every node alive (counted by
//!    an event delegate per node, no polling of the nodes).
//! 3. **steady**: once no node has membership news queued, a window of
//!    process CPU (user + system, `/proc/self/stat`) and engine traffic.
//! 4. **broadcasts**: node 0 queues M user messages (every node re-gossips
//!    what it first sees, as serf does); until every node has all M.
//! 5. **kill**: K random nodes other than node 0 stop without leaving;
//!    until every other node counts only the survivors.
//!
//! A death of a node that was not killed, seen by anyone at any time, is a
//! false death.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{BackendChoice, Error, Memberlist, Runtime, RuntimeOptions};
use crate::delegate::{Delegate, EventDelegate, Node};
use crate::sim::Gossip;
use crate::sim::scenario::Profile;
use crate::swim::metrics::{DROPPED, PACKETS_REJECTED};

/// What to run.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Members.
    pub nodes: usize,
    /// The memberlist defaults: local, LAN or WAN.
    pub profile: Profile,
    /// The backend.
    pub backend: BackendChoice,
    /// Engine threads.
    pub cores: usize,
    /// The longest the whole run may take.
    pub duration: Duration,
    /// Members stopped without leaving after the broadcasts.
    pub kill: usize,
    /// User broadcasts node 0 sends.
    pub broadcasts: usize,
    /// Encrypt with this key.
    pub key: Option<Vec<u8>>,
    /// The steady window's length.
    pub window: Duration,
    /// LZW on (Go `EnableCompression`, on by default).
    pub compression: bool,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// What a run measured. Times in seconds; `None` where the phase did not
/// finish within the run (or did not run).
#[derive(Clone, Debug, Default)]
pub struct ClusterReport {
    /// `uring` or `portable`.
    pub backend: &'static str,
    /// LZW on.
    pub compression: bool,
    /// Members started.
    pub nodes: usize,
    /// Engine threads.
    pub cores: usize,
    /// From the first node hosted until the last join returned.
    pub start_s: f64,
    /// From the last join until every node counted every node alive.
    pub converge_s: Option<f64>,
    /// Length of the steady window.
    pub steady_window_s: f64,
    /// Process CPU (user + system) over the window.
    pub steady_cpu_s: f64,
    /// `steady_cpu_s` per node per second of window, in milliseconds.
    pub cpu_ms_per_node_per_s: f64,
    /// Bytes sent (UDP and TCP) per node per second of window.
    pub bytes_per_node_per_s: f64,
    /// Datagrams sent per node per second of window.
    pub packets_per_node_per_s: f64,
    /// User broadcasts sent.
    pub broadcasts: usize,
    /// From the first broadcast until every node had all of them.
    pub broadcast_all_s: Option<f64>,
    /// Members stopped.
    pub killed: usize,
    /// From the kill until every other node counted only the survivors.
    pub detect_dead_all_s: Option<f64>,
    /// Members declared dead (or left) by anyone although never stopped.
    pub false_deaths: usize,
    /// The process's peak resident memory (`VmHWM`), MiB.
    pub peak_rss_mb: f64,
    /// Packets every node refused, summed (`ringswim.packets.rejected`).
    pub rejected_packets: u64,
    /// The same by reason (only reasons that occurred).
    pub rejected_by_reason: Vec<(&'static str, u64)>,
    /// Datagrams the kernel refused to send.
    pub udp_send_failed: u64,
    /// Entries the nodes' bounded queues and tables had no room for,
    /// summed by reason (`ringswim.dropped{reason}`; only reasons that
    /// occurred): where news can be lost before it is sent.
    pub dropped_by_reason: Vec<(&'static str, u64)>,
    /// Joins that returned an error (the joiner may know nobody while the
    /// seed took it in: see `Extensions::push_pull_when_alone`).
    pub join_failed: usize,
    /// The first failed join's error, if any.
    pub join_error: Option<String>,
}

/// Counts, for one node, the members it holds alive, and records deaths.
struct Counting {
    alive: AtomicI64,
    deaths: Arc<Mutex<Vec<String>>>,
}

impl EventDelegate for Counting {
    fn notify_join(&self, _: &Node) {
        self.alive.fetch_add(1, Ordering::Relaxed);
    }
    fn notify_leave(&self, node: &Node) {
        self.alive.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut deaths) = self.deaths.lock() {
            deaths.push(node.name.to_string());
        }
    }
    fn notify_update(&self, _: &Node) {}
}

struct Member {
    handle: Option<Memberlist>,
    counting: Arc<Counting>,
    gossip: Arc<Gossip>,
}

/// CPU seconds (user + system) of this process so far, from
/// `/proc/self/stat` (fields 14 and 15, in USER_HZ = 100 ticks a second).
pub fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // After ')': state is field 3, so utime (14) is index 11, stime index 12.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The process's peak resident set (`VmHWM` of `/proc/self/status`), MiB.
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// File descriptors a run of `nodes` needs: a UDP socket and a listener
/// each, streams in flight, and the runtime's own.
fn fds_needed(nodes: usize) -> u64 {
    (nodes as u64) * 4 + 256
}

/// Runs the cluster of `options`.
///
/// # Errors
/// [`Error::Io`] when the open-file limit cannot be raised far enough or a
/// socket cannot be bound; [`Error::BackendUnavailable`].
pub fn run(options: &ClusterOptions) -> Result<ClusterReport, Error> {
    let needed = fds_needed(options.nodes);
    let got = rlimit::increase_nofile_limit(needed)
        .map_err(|source| Error::Io { what: "raising the open-file limit (RLIMIT_NOFILE)".into(), source })?;
    if got < needed {
        return Err(Error::Io {
            what: format!(
                "the open-file limit is {got} and {} nodes need {needed}: raise the hard limit (ulimit -Hn, or LimitNOFILE in systemd)",
                options.nodes
            ),
            source: std::io::Error::from(std::io::ErrorKind::OutOfMemory),
        });
    }
    let runtime = Runtime::new(RuntimeOptions { threads: options.cores.max(1), backend: options.backend, pin: true })?;
    let deadline = Instant::now() + options.duration;
    let progress = |line: String| {
        if options.progress {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    };
    let deaths = Arc::new(Mutex::new(Vec::new()));
    let mut report = ClusterReport {
        backend: runtime.backend().name(),
        compression: options.compression,
        nodes: options.nodes,
        cores: runtime.threads(),
        broadcasts: options.broadcasts,
        ..ClusterReport::default()
    };

    // 1. Start.
    let t0 = Instant::now();
    let mut members = Vec::with_capacity(options.nodes);
    for i in 0..options.nodes {
        let counting = Arc::new(Counting { alive: AtomicI64::new(0), deaths: Arc::clone(&deaths) });
        // The budget ringswim gives membership news (Go's RetransmitMult
        // raised to `Extensions::min_retransmit_mult`), as the simulator does.
        let gossip = Arc::new(Gossip::new(options.profile.config().effective_retransmit_mult()));
        let mut config = options
            .profile
            .config()
            .with_name(format!("node-{i}"))
            .with_enable_compression(options.compression)
            .with_events(Arc::clone(&counting) as Arc<dyn EventDelegate>)
            .with_delegate(Arc::clone(&gossip) as Arc<dyn Delegate>);
        config.bind_addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        config.bind_port = 0;
        if let Some(key) = &options.key {
            config = config.with_secret_key(key.clone());
        }
        let handle = runtime.host(config)?;
        members.push(Member { handle: Some(handle), counting, gossip });
    }
    let seed = members[0].handle.as_ref().expect("running").local_node()?.address();
    let failures = join_all(&members[1..], seed);
    report.join_failed = failures.len();
    report.join_error = failures.first().cloned();
    if let Some(e) = &report.join_error {
        progress(format!("{} joins failed; the first: {e}", failures.len()));
    }
    report.start_s = t0.elapsed().as_secs_f64();
    progress(format!("started {} nodes in {:.2} s", options.nodes, report.start_s));

    // 2. Converge.
    let joined = Instant::now();
    let n = options.nodes as i64;
    let all_alive = |members: &[Member], count: i64| {
        members.iter().filter(|m| m.handle.is_some()).all(|m| m.counting.alive.load(Ordering::Relaxed) == count)
    };
    report.converge_s = wait_until(deadline, &progress, "converging", || all_alive(&members, n))
        .then(|| joined.elapsed().as_secs_f64());
    if let Some(s) = report.converge_s {
        progress(format!("converged: every node counts {n} alive, {s:.2} s after the last join"));
    }

    // 3. Steady window, once no membership news is queued anywhere.
    if report.converge_s.is_some() {
        let quiet = wait_until(deadline, &progress, "waiting for the queues to empty", || {
            members.iter().filter_map(|m| m.handle.as_ref()).all(|h| h.queued_broadcasts() == 0)
        });
        let window = options.window.min(deadline.saturating_duration_since(Instant::now()));
        if quiet && !window.is_zero() {
            progress(format!("measuring the steady state for {:.0} s", window.as_secs_f64()));
            let (cpu0, stats0, w0) = (process_cpu_s(), runtime.stats(), Instant::now());
            std::thread::sleep(window);
            let (cpu1, stats1, secs) = (process_cpu_s(), runtime.stats(), w0.elapsed().as_secs_f64());
            let per_node_s = options.nodes as f64 * secs;
            report.steady_window_s = secs;
            report.steady_cpu_s = cpu1 - cpu0;
            report.cpu_ms_per_node_per_s = report.steady_cpu_s * 1e3 / per_node_s;
            let bytes =
                (stats1.udp_bytes_sent + stats1.tcp_bytes_sent) - (stats0.udp_bytes_sent + stats0.tcp_bytes_sent);
            report.bytes_per_node_per_s = bytes as f64 / per_node_s;
            report.packets_per_node_per_s = (stats1.udp_packets_sent - stats0.udp_packets_sent) as f64 / per_node_s;
            progress(format!(
                "steady: {:.3} ms CPU per node per second, {:.0} B per node per second",
                report.cpu_ms_per_node_per_s, report.bytes_per_node_per_s
            ));
        }
    }

    // 4. Broadcasts, each node re-gossiping with the budget of N members.
    for m in &members {
        m.gossip.set_num_nodes(options.nodes);
    }
    if options.broadcasts > 0 && report.converge_s.is_some() {
        let sent = Instant::now();
        for k in 0..options.broadcasts {
            let mut msg = (k as u32).to_be_bytes().to_vec();
            msg.extend_from_slice(b"ringswim");
            members[0].gossip.offer(&msg);
        }
        let m = options.broadcasts;
        report.broadcast_all_s =
            wait_until(deadline, &progress, "broadcasting", || members.iter().all(|x| x.gossip.num_seen() >= m))
                .then(|| sent.elapsed().as_secs_f64());
        if let Some(s) = report.broadcast_all_s {
            progress(format!("{m} broadcasts from node-0 reached all {n} nodes in {s:.2} s"));
        }
    }

    // 5. Kill.
    let mut killed = BTreeSet::new();
    if options.kill > 0 && report.converge_s.is_some() {
        let mut ids: Vec<usize> = (1..options.nodes).collect();
        crate::swim::shuffle(&mut ids, &mut rand::rng());
        let at = Instant::now();
        for &i in ids.iter().take(options.kill) {
            if let Some(h) = members[i].handle.take() {
                let _ = h.shutdown();
            }
            killed.insert(format!("node-{i}"));
        }
        report.killed = killed.len();
        let survivors = n - killed.len() as i64;
        let names: Vec<&str> = killed.iter().map(String::as_str).collect();
        progress(format!("killed {} (shut down without leaving)", names.join(", ")));
        report.detect_dead_all_s = wait_until(deadline, &progress, "detecting", || all_alive(&members, survivors))
            .then(|| at.elapsed().as_secs_f64());
        if let Some(s) = report.detect_dead_all_s {
            progress(format!("every survivor counts {survivors} alive {s:.2} s after the kill"));
        }
    }

    let deaths = deaths.lock().map(|d| d.clone()).unwrap_or_default();
    report.false_deaths = deaths.iter().filter(|d| !killed.contains(*d)).collect::<BTreeSet<_>>().len();
    let (mut by_reason, mut dropped) = (std::collections::BTreeMap::new(), std::collections::BTreeMap::new());
    for h in members.iter().filter_map(|m| m.handle.as_ref()) {
        for (metric, reason, n) in h.metrics().iter() {
            let sums = match metric {
                PACKETS_REJECTED => &mut by_reason,
                DROPPED => &mut dropped,
                _ => continue,
            };
            if n > 0 {
                *sums.entry(reason).or_insert(0) += n;
            }
        }
    }
    report.rejected_packets = by_reason.values().sum();
    report.rejected_by_reason = by_reason.into_iter().collect();
    report.dropped_by_reason = dropped.into_iter().collect();
    report.udp_send_failed = runtime.stats().udp_send_failed;
    report.peak_rss_mb = peak_rss_mb();
    Ok(report)
}

/// Joins every member to `seed`, a few at a time (each join is one
/// push/pull with node 0, which serves a bounded number at once).
/// Returns the errors of the joins that failed.
fn join_all(members: &[Member], seed: SocketAddr) -> Vec<String> {
    const AT_ONCE: usize = 16;
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for chunk in members.chunks(members.len().div_ceil(AT_ONCE).max(1)) {
            let failures = &failures;
            s.spawn(move || {
                for m in chunk {
                    if let Some(h) = &m.handle {
                        // A failed join leaves the node alone; converge then
                        // reports it.
                        if let Err(e) = h.join(&[seed]) {
                            failures.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
                        }
                    }
                }
            });
        }
    });
    failures.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Checks `done` every 10 ms until it holds (true) or `deadline` (false),
/// with a progress line about once a second.
fn wait_until(deadline: Instant, progress: &impl Fn(String), what: &str, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut next_line = start + Duration::from_secs(1);
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if now >= next_line {
            progress(format!("{what}: {:.0} s", (now - start).as_secs_f64()));
            next_line += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(feature = "cli")]
impl ClusterReport {
    /// The JSON line of `ringswim cluster` (feature `cli`).
    pub fn to_json(&self) -> serde_json::Value {
        let round = |x: f64, digits: i32| (x * 10f64.powi(digits)).round() / 10f64.powi(digits);
        serde_json::json!({
            "impl": "ringswim",
            "backend": self.backend,
            "nodes": self.nodes,
            "cores": self.cores,
            "compression": self.compression,
            "start_s": round(self.start_s, 3),
            "converge_s": self.converge_s.map(|s| round(s, 3)),
            "converged": self.converge_s.is_some(),
            "steady_window_s": round(self.steady_window_s, 3),
            "steady_cpu_s": round(self.steady_cpu_s, 3),
            "cpu_ms_per_node_per_s": round(self.cpu_ms_per_node_per_s, 5),
            "bytes_per_node_per_s": round(self.bytes_per_node_per_s, 1),
            "packets_per_node_per_s": round(self.packets_per_node_per_s, 2),
            "broadcasts": self.broadcasts,
            "broadcast_all_s": self.broadcast_all_s.map(|s| round(s, 3)),
            "broadcast_ok": self.broadcasts == 0 || self.broadcast_all_s.is_some(),
            "killed": self.killed,
            "detect_dead_all_s": self.detect_dead_all_s.map(|s| round(s, 3)),
            "detected": (self.killed > 0).then_some(self.detect_dead_all_s.is_some()),
            "false_deaths": self.false_deaths,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "mb_per_member": round(self.peak_rss_mb / self.nodes.max(1) as f64, 4),
            "rejected_packets": self.rejected_packets,
            "rejected_by_reason": self.rejected_by_reason.iter().map(|(r, n)| (r.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
            "udp_send_failed": self.udp_send_failed,
            "join_failed": self.join_failed,
            "join_error": self.join_error,
            "dropped_by_reason": self.dropped_by_reason.iter().map(|(r, n)| (r.to_string(), serde_json::json!(n))).collect::<serde_json::Map<_, _>>(),
        })
    }
}
