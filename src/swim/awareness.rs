//! Lifeguard's local health awareness (memberlist `awareness.go`): a score of
//! how badly this node is keeping up. Missed acks and having to refute
//! suspicions of ourselves raise it, successful probes lower it, and the probe
//! interval and probe timeouts stretch with it, so that a slow node slows its
//! own failure detection instead of accusing healthy peers.
//!
//! The core owns it and is single-threaded, so unlike Go there is no lock.

use std::time::Duration;

/// The local health score, in `0..max` (lower is healthier).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awareness {
    /// Exclusive upper bound of the score (Go `AwarenessMaxMultiplier`).
    max: usize,
    score: usize,
}

impl Awareness {
    /// A healthy node (score 0) whose score stays below `max`, Go
    /// `newAwareness`. A `max` of 0 is taken as 1: the score stays 0 and
    /// timeouts are never scaled. (Go would rail the score at -1 there and
    /// scale every timeout to zero.)
    pub fn new(max: usize) -> Awareness {
        Awareness { max: max.max(1), score: 0 }
    }

    /// Adds `delta` to the score, kept within `0..max` (Go `ApplyDelta`): a
    /// delta that pushes past either end leaves the score railed there.
    /// Returns whether the score changed; Go updates its
    /// `memberlist.health.score` gauge only then.
    pub fn apply_delta(&mut self, delta: i32) -> bool {
        let initial = self.score;
        let top = self.max - 1;
        self.score = if delta < 0 {
            self.score.saturating_sub(delta.unsigned_abs() as usize)
        } else {
            self.score.saturating_add(delta as usize).min(top)
        };
        self.score != initial
    }

    /// The raw score (Go `GetHealthScore`).
    pub fn health_score(&self) -> usize {
        self.score
    }

    /// `timeout * (score + 1)`: the less healthy, the longer (Go
    /// `ScaleTimeout`). Saturates instead of overflowing.
    pub fn scale_timeout(&self, timeout: Duration) -> Duration {
        let factor = u32::try_from(self.score + 1).unwrap_or(u32::MAX);
        timeout.saturating_mul(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ports Go `TestAwareness`.
    #[test]
    fn go_awareness() {
        let cases: [(i32, usize, u64); 14] = [
            (0, 0, 1),
            (-1, 0, 1),
            (-10, 0, 1),
            (1, 1, 2),
            (-1, 0, 1),
            (10, 7, 8),
            (-1, 6, 7),
            (-1, 5, 6),
            (-1, 4, 5),
            (-1, 3, 4),
            (-1, 2, 3),
            (-1, 1, 2),
            (-1, 0, 1),
            (-1, 0, 1),
        ];
        let mut a = Awareness::new(8);
        for (i, (delta, score, timeout_secs)) in cases.into_iter().enumerate() {
            a.apply_delta(delta);
            assert_eq!(a.health_score(), score, "case {i}: score mismatch");
            assert_eq!(
                a.scale_timeout(Duration::from_secs(1)),
                Duration::from_secs(timeout_secs),
                "case {i}: scaled timeout mismatch"
            );
        }
    }

    /// `apply_delta` reports a change only when the score moved.
    #[test]
    fn apply_delta_reports_change() {
        let mut a = Awareness::new(3);
        assert!(!a.apply_delta(-1));
        assert!(!a.apply_delta(0));
        assert!(a.apply_delta(5));
        assert_eq!(a.health_score(), 2);
        assert!(!a.apply_delta(1));
        assert!(a.apply_delta(i32::MIN));
        assert_eq!(a.health_score(), 0);
        assert!(a.apply_delta(i32::MAX));
        assert_eq!(a.health_score(), 2);
    }

    /// Degenerate bounds: max 0 or 1 never scales; huge scales saturate.
    #[test]
    fn extreme_bounds() {
        for max in [0, 1] {
            let mut a = Awareness::new(max);
            assert!(!a.apply_delta(3));
            assert_eq!(a.health_score(), 0);
            assert_eq!(a.scale_timeout(Duration::from_secs(2)), Duration::from_secs(2));
        }
        let mut a = Awareness::new(usize::MAX);
        a.apply_delta(i32::MAX);
        assert_eq!(a.scale_timeout(Duration::from_secs(1)), Duration::from_secs(1 << 31));
        assert_eq!(a.scale_timeout(Duration::MAX), Duration::MAX);
    }
}
