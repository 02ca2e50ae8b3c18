//! The handoff of decoded messages to the core (Go `handleCommand`'s
//! message queues and `packetHandler`, memberlist `net.go`), for a driver
//! that decodes packets on other threads than the one that owns the
//! [`Core`](super::Core).

use std::collections::VecDeque;

use super::Metrics;
use super::metrics::DROPPED;
use crate::wire::MessageType;

/// Messages waiting for the core, at most `depth` of each priority (Go
/// `HandoffQueueDepth`, [`Config::handoff_queue_depth`](crate::config::Config::handoff_queue_depth)):
/// alive messages on their own queue, which is served first, everything
/// else on the other; a message that finds its queue full is dropped and
/// counted (`ringswim.dropped{reason="handoff_queue_full"}`, Go's "handler
/// queue full, dropping message"). Each queue is served newest first, as
/// Go's `getNextMessage` does (fresh news matters most after a backlog).
///
/// Sans-IO like the core: no lock inside; a driver that fills it from
/// several threads wraps it in its own lock or keeps one per thread.
#[derive(Debug)]
pub struct HandoffQueue<T> {
    alive: VecDeque<T>,
    other: VecDeque<T>,
    depth: usize,
    metrics: Metrics,
}

impl<T> HandoffQueue<T> {
    /// An empty queue holding up to `depth` alive and `depth` other
    /// messages, counting drops into `metrics`. A driver takes the core's
    /// ([`Core::handoff_queue`](super::Core::handoff_queue)); this is for
    /// tests and tools.
    pub fn new(depth: usize, metrics: Metrics) -> HandoffQueue<T> {
        HandoffQueue { alive: VecDeque::new(), other: VecDeque::new(), depth, metrics }
    }

    /// Queues `msg`, a message of type `kind` (alive messages go first).
    /// Gives it back when its queue is full (counted).
    pub fn push(&mut self, msg: T, kind: MessageType) -> Result<(), T> {
        let queue = if kind == MessageType::Alive { &mut self.alive } else { &mut self.other };
        if queue.len() >= self.depth {
            self.metrics.count(DROPPED, "handoff_queue_full");
            return Err(msg);
        }
        queue.push_back(msg);
        Ok(())
    }

    /// The next message for the core: the newest alive, else the newest
    /// other (Go `getNextMessage`).
    pub fn pop(&mut self) -> Option<T> {
        self.alive.pop_back().or_else(|| self.other.pop_back())
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.alive.len() + self.other.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core's queue is `handoff_queue_depth` deep and counts into the
    /// core's metrics.
    #[test]
    fn a_cores_queue_has_its_depth_and_counts_into_its_metrics() {
        use rand::SeedableRng;
        let config = crate::config::Config::default_lan().with_name("n").with_handoff_queue_depth(1);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 7946));
        let core =
            super::super::Core::new(config, addr, super::super::Time::ZERO, rand::rngs::StdRng::seed_from_u64(1))
                .unwrap();
        let mut q = core.handoff_queue();
        assert_eq!(q.push(1, MessageType::Dead), Ok(()));
        assert_eq!(q.push(2, MessageType::Dead), Err(2));
        assert_eq!(core.metrics().get(DROPPED, "handoff_queue_full"), 1);
    }

    #[test]
    fn bounded_per_priority_alive_first_newest_first_drops_counted() {
        let metrics = Metrics::new();
        let mut q = HandoffQueue::new(2, metrics.clone());
        assert_eq!(q.push("s1", MessageType::Suspect), Ok(()));
        assert_eq!(q.push("u1", MessageType::User), Ok(()));
        assert_eq!(q.push("d1", MessageType::Dead), Err("d1"), "the other queue is full");
        assert_eq!(q.push("a1", MessageType::Alive), Ok(()), "alive has its own room");
        assert_eq!(q.push("a2", MessageType::Alive), Ok(()));
        assert_eq!(q.push("a3", MessageType::Alive), Err("a3"));
        assert_eq!(metrics.get(DROPPED, "handoff_queue_full"), 2);
        assert_eq!(q.len(), 4);
        let order: Vec<&str> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["a2", "a1", "u1", "s1"]);
        assert!(q.is_empty());
    }
}
