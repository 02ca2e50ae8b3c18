//! The engine's metrics, through the `metrics` facade (whatever recorder the
//! application installs: Prometheus, StatsD…; none installed costs next to
//! nothing). Go memberlist's names, plus ringswim's.
//!
//! Every [`EXPORT_INTERVAL`] each shard adds what changed since the last
//! export:
//! - counters summed over the shard's nodes: Go's `memberlist.udp.sent` and
//!   `memberlist.udp.received` (bytes), `memberlist.tcp.accept`,
//!   `memberlist.tcp.connect`, `memberlist.tcp.sent` (bytes),
//!   `memberlist.msg.alive|suspect|dead`,
//!   `memberlist.degraded.probe|timeout`; ringswim's
//!   `ringswim.packets.rejected{reason}`, `ringswim.queue.dropped{queue}`,
//!   `ringswim.streams.refused|timed_out|ignored{reason}`, `ringswim.probes{reason}`,
//!   `ringswim.handoff.messages` (messages a thread opened for a spread
//!   node another thread owns and queued for it; `Runtime::host_spread`);
//! - gauges per node (label `node`): `memberlist.health.score`,
//!   `memberlist.queue.broadcasts`, `memberlist.node.instances{node_state}`
//!   (Go 0.5's, a count of the table by state).
//!
//! - histograms per node (label `node`), every measurement since the last
//!   export: Go's timers `memberlist.probeNode`, `memberlist.gossip`,
//!   `memberlist.pushPullNode` (milliseconds, as go-metrics'
//!   `MeasureSince`) and samples `memberlist.size.local|remote` (bytes); see
//!   [`Sample`](crate::swim::Sample) for what each measures here.
//!
//! `ringswim.engine.backend{backend}` is set to 1 when a runtime starts.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::runtime::ShardCounters;
use crate::delegate::NodeState;
use crate::swim::metrics::{DROPPED, PACKETS_REJECTED};
use crate::swim::{Core, Metrics};

/// How often a shard exports.
pub(crate) const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// What a node's counters were at the last export.
#[derive(Debug, Default)]
pub(crate) struct NodeExport {
    last: Vec<u64>,
}

impl NodeExport {
    /// Adds the node's counters' growth since the last export to the
    /// facade, sets its gauges and records its samples.
    pub fn export<R: rand::Rng>(&mut self, core: &mut Core<R>) {
        let metrics: &Metrics = core.metrics();
        let counts: Vec<(&'static str, &'static str, u64)> = metrics.iter().collect();
        self.last.resize(counts.len(), 0);
        for (i, (metric, reason, n)) in counts.into_iter().enumerate() {
            let delta = n.saturating_sub(self.last[i]);
            self.last[i] = n;
            if delta == 0 {
                continue;
            }
            if metric.starts_with("memberlist.") {
                metrics::counter!(format!("{metric}.{reason}")).increment(delta);
            } else if metric == DROPPED {
                metrics::counter!("ringswim.queue.dropped", "queue" => reason).increment(delta);
            } else if metric == PACKETS_REJECTED {
                metrics::counter!(PACKETS_REJECTED, "reason" => reason).increment(delta);
            } else {
                metrics::counter!(metric, "reason" => reason).increment(delta);
            }
        }
        let node = core.config().name.clone();
        metrics::gauge!("memberlist.health.score", "node" => node.clone()).set(core.health_score() as f64);
        metrics::gauge!("memberlist.queue.broadcasts", "node" => node.clone())
            .set(core.broadcasts().num_queued() as f64);
        let mut by_state = [0usize; 4];
        for m in core.members() {
            by_state[m.state() as usize] += 1;
        }
        for (state, n) in
            [NodeState::Alive, NodeState::Suspect, NodeState::Dead, NodeState::Left].into_iter().zip(by_state)
        {
            let name = match state {
                NodeState::Alive => "alive",
                NodeState::Suspect => "suspect",
                NodeState::Dead => "dead",
                NodeState::Left => "left",
            };
            metrics::gauge!("memberlist.node.instances", "node" => node.clone(), "node_state" => name).set(n as f64);
        }
        for sample in core.drain_samples() {
            metrics::histogram!(sample.name(), "node" => node.clone()).record(sample.value());
        }
    }
}

/// What a shard's traffic counters were at the last export.
#[derive(Debug, Default)]
pub(crate) struct TrafficExport {
    last: [u64; 6],
}

impl TrafficExport {
    /// Adds the shard's traffic since the last export (Go's names).
    pub fn export(&mut self, c: &ShardCounters) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let now = [
            load(&c.udp_bytes_sent),
            load(&c.udp_bytes_received),
            load(&c.tcp_accepts),
            load(&c.tcp_connects),
            load(&c.tcp_bytes_sent),
            load(&c.handoff_messages),
        ];
        let names = [
            "memberlist.udp.sent",
            "memberlist.udp.received",
            "memberlist.tcp.accept",
            "memberlist.tcp.connect",
            "memberlist.tcp.sent",
            "ringswim.handoff.messages",
        ];
        for ((name, n), last) in names.into_iter().zip(now).zip(self.last.iter_mut()) {
            let delta = n.saturating_sub(*last);
            *last = n;
            if delta > 0 {
                metrics::counter!(name).increment(delta);
            }
        }
    }
}

/// Records which backend a runtime runs (`ringswim.engine.backend{backend}`
/// = 1) and logs it.
pub(crate) fn backend_chosen(backend: super::Backend, why: &str) {
    metrics::gauge!("ringswim.engine.backend", "backend" => backend.name()).set(1.0);
    tracing::info!(backend = backend.name(), why, "ringswim engine started");
}
