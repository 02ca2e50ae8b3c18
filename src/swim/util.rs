//! memberlist's `util.go` helpers that the protocol needs, as pure functions:
//! the timeout and interval scaling formulas (with Go's float and integer
//! truncation kept, so timings agree with Go to the nanosecond) and the random
//! node picking, with the RNG passed in so that a seed replays a run.
//!
//! `retransmitLimit` lives with the broadcast queue, not here.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use super::Time;

/// Cluster size up to which [`push_pull_scale`] leaves the push/pull interval
/// alone (Go `pushPullScaleThreshold`): the 33rd node doubles it, the 65th
/// triples it, and so on.
pub const PUSH_PULL_SCALE_THRESHOLD: usize = 32;

/// The base suspicion timeout for a cluster of `n` nodes (Go
/// `suspicionTimeout`): `suspicion_mult * max(1, log10(max(1, n))) * interval`.
///
/// Reproduces Go's arithmetic exactly: the node scale is truncated to whole
/// thousandths (`time.Duration(nodeScale*1000)`), then
/// `mult * scale_thousandths * interval_ns / 1000` in integers, truncating
/// once at the end. Where Go's `int64` product would overflow (a probe
/// interval of weeks) this saturates instead.
pub fn suspicion_timeout(suspicion_mult: usize, n: usize, interval: Duration) -> Duration {
    let node_scale = f64::max(1.0, go_log10(f64::max(1.0, n as f64)));
    // Go converts float64 to int64 by truncation; the value is in [1000, 19266].
    let scale_thousandths = (node_scale * 1000.0) as u128;
    let nanos = (suspicion_mult as u128 * scale_thousandths).saturating_mul(interval.as_nanos()) / 1000;
    saturating_nanos(nanos)
}

/// The push/pull interval for a cluster of `n` nodes (Go `pushPullScale`):
/// `interval` up to [`PUSH_PULL_SCALE_THRESHOLD`] nodes, then
/// `(ceil(log2(n) - log2(32)) + 1) * interval`, so that the rate of full state
/// syncs each node receives stays about constant as the cluster grows.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    if n <= PUSH_PULL_SCALE_THRESHOLD {
        return interval;
    }
    let threshold_log2 = go_log2(PUSH_PULL_SCALE_THRESHOLD as f64);
    let multiplier = (go_log2(n as f64) - threshold_log2).ceil() + 1.0;
    // At most 60 for a 64-bit n.
    interval.saturating_mul(multiplier as u32)
}

/// A uniformly random index in `0..n`, or 0 when `n` is 0 (Go `randomOffset`).
///
/// Go takes `rand.Uint32() % n`, which is slightly biased for large `n`; this
/// draws without bias. Either way only the distribution is observable.
pub fn random_offset<R: Rng + ?Sized>(n: usize, rng: &mut R) -> usize {
    if n == 0 {
        return 0;
    }
    rng.random_range(0..n)
}

/// Shuffles `items` in place, every permutation equally likely (Go
/// `shuffleNodes`, a Fisher–Yates shuffle).
pub fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    items.shuffle(rng);
}

/// Picks up to `k` distinct random members of `nodes`, skipping those for
/// which `exclude` returns true (Go `kRandomNodes` and its `filterFn`).
///
/// Same search as Go: at most `3 * nodes.len()` random draws, so with few
/// eligible nodes the answer can hold fewer than `k` even when `k` were
/// eligible. `exclude` may be called several times for the same node.
pub fn k_random_nodes<'a, T, R: Rng + ?Sized>(
    k: usize,
    nodes: &'a [T],
    mut exclude: impl FnMut(&T) -> bool,
    rng: &mut R,
) -> Vec<&'a T> {
    let mut picks = RandomPicks::new(k);
    std::iter::from_fn(|| picks.next(nodes, &mut exclude, rng)).map(|i| &nodes[i]).collect()
}

/// [`k_random_nodes`] one pick at a time, for a caller that may stop
/// early: Go's gossip picks its targets first and stops at the first with
/// nothing to send, which in a quiet cluster is every round; drawing
/// lazily makes such a round cost one pick, not `k`. The picks, while they
/// last, are those [`k_random_nodes`] makes from the same RNG state.
#[derive(Debug, Default)]
pub struct RandomPicks {
    k: usize,
    /// Grown as members are picked: nothing is allocated when none is (a
    /// lone node's ticks).
    picked: Vec<usize>,
    draws: usize,
}

impl RandomPicks {
    /// A search for up to `k` members.
    pub fn new(k: usize) -> RandomPicks {
        RandomPicks { k, picked: Vec::new(), draws: 0 }
    }

    /// The index in `nodes` of the next pick, or `None` once `k` are
    /// picked or the `3 * nodes.len()` draws are spent. Pass the same
    /// `nodes` every time.
    pub fn next<T, R: Rng + ?Sized>(
        &mut self,
        nodes: &[T],
        mut exclude: impl FnMut(&T) -> bool,
        rng: &mut R,
    ) -> Option<usize> {
        let n = nodes.len();
        while self.draws < 3 * n && self.picked.len() < self.k {
            self.draws += 1;
            let idx = random_offset(n, rng);
            if exclude(&nodes[idx]) || self.picked.contains(&idx) {
                continue;
            }
            self.picked.push(idx);
            return Some(idx);
        }
        None
    }
}

/// Moves the nodes that have been dead for longer than
/// `gossip_to_the_dead_time` to the end of `nodes` and returns how many are
/// left in front, i.e. the index of the first moved node (Go `moveDeadNodes`).
///
/// `dead_since(node)` is `Some(time of the last state change)` for a dead node
/// and `None` otherwise. A node dead for exactly `gossip_to_the_dead_time`
/// stays. The swaps are Go's, so the same input gives the same order: each
/// moved node swaps places with the last not-yet-moved one, which is then
/// examined in its place.
pub fn move_dead_nodes<T>(
    nodes: &mut [T],
    gossip_to_the_dead_time: Duration,
    now: Time,
    mut dead_since: impl FnMut(&T) -> Option<Time>,
) -> usize {
    let mut end = nodes.len();
    let mut i = 0;
    while i < end {
        match dead_since(&nodes[i]) {
            Some(changed) if now.saturating_since(changed) > gossip_to_the_dead_time => {
                end -= 1;
                nodes.swap(i, end);
            }
            _ => i += 1,
        }
    }
    end
}

/// `ln x` bit for bit as Go's `math.Log` computes it (FreeBSD's `e_log.c`
/// algorithm; Go's amd64 assembly performs the same operations in the same
/// order) for every input but subnormals, which no caller here passes. The
/// platform's `ln` is more exact and so differs from Go's in the last bit now
/// and then, which is enough to move a floored or truncated timeout by a
/// millisecond: Go's `ln 3` is one unit in the last place below glibc's.
pub(crate) fn go_log(x: f64) -> f64 {
    // Go's constants, by their bits (Go's source gives both).
    const LN2_HI: f64 = f64::from_bits(0x3fe62e42_fee00000); // 6.93147180369123816490e-01
    const LN2_LO: f64 = f64::from_bits(0x3dea39ef_35793c76); // 1.90821492927058770002e-10
    const L1: f64 = f64::from_bits(0x3fe55555_55555593); // 6.666666666666735130e-01
    const L2: f64 = f64::from_bits(0x3fd99999_9997fa04); // 3.999999999940941908e-01
    const L3: f64 = f64::from_bits(0x3fd24924_94229359); // 2.857142874366239149e-01
    const L4: f64 = f64::from_bits(0x3fcc71c5_1d8e78af); // 2.222219843214978396e-01
    const L5: f64 = f64::from_bits(0x3fc74664_96cb03de); // 1.818357216161805012e-01
    const L6: f64 = f64::from_bits(0x3fc39a09_d078c69f); // 1.531383769920937332e-01
    const L7: f64 = f64::from_bits(0x3fc2f112_df3e5244); // 1.479819860511658591e-01

    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (mut f1, mut ki) = go_frexp(x);
    if f1 < std::f64::consts::FRAC_1_SQRT_2 {
        f1 *= 2.0;
        ki -= 1;
    }
    let f = f1 - 1.0;
    let k = f64::from(ki);

    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log10`: `Log(x) * (1/Ln10)`, the constant rounded once (Go
/// folds `1/Ln10` exactly before rounding, which is `LOG10_E`).
pub(crate) fn go_log10(x: f64) -> f64 {
    go_log(x) * std::f64::consts::LOG10_E
}

/// Go's `math.Log2`: exact for powers of two, else `Log(frac)*(1/Ln2) + exp`.
pub(crate) fn go_log2(x: f64) -> f64 {
    let (frac, exp) = go_frexp(x);
    if frac == 0.5 {
        return f64::from(exp - 1);
    }
    go_log(frac) * std::f64::consts::LOG2_E + f64::from(exp)
}

/// Go's `math.Frexp` for finite non-zero `x`: `x = frac * 2^exp` with
/// `|frac|` in `[0.5, 1)`.
fn go_frexp(x: f64) -> (f64, i32) {
    debug_assert!(x.is_finite() && x != 0.0);
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        // Subnormal: normalise first, as Go does.
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let frac = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (frac, exp)
}

/// `nanos` as a [`Duration`], saturating at [`Duration::MAX`].
pub(crate) fn saturating_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    match u64::try_from(nanos / NANOS_PER_SEC) {
        Ok(secs) => Duration::new(secs, (nanos % NANOS_PER_SEC) as u32),
        Err(_) => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::HashSet;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum State {
        Alive,
        Suspect,
        Dead,
    }

    #[derive(Debug, PartialEq, Eq)]
    struct Node {
        name: String,
        state: State,
        state_change: Time,
    }

    fn node(name: &str, state: State, state_change: Time) -> Node {
        Node { name: name.to_owned(), state, state_change }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Ports Go `TestRandomOffset`: 100 draws over 2<<30 values, no collision.
    #[test]
    fn go_random_offset() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let offset = random_offset(2 << 30, &mut rng);
            assert!(offset < 2 << 30);
            assert!(seen.insert(offset), "got collision");
        }
    }

    /// Ports Go `TestRandomOffset_Zero`.
    #[test]
    fn go_random_offset_zero() {
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(random_offset(0, &mut rng), 0);
    }

    /// Ports Go `TestSuspicionTimeout` (which divides by the multiplier 3).
    #[test]
    fn go_suspicion_timeout() {
        for (n, expected_ms) in [(5, 1000), (10, 1000), (50, 1698), (100, 2000), (500, 2698), (1000, 3000)] {
            let timeout = suspicion_timeout(3, n, secs(1)) / 3;
            assert_eq!(timeout, Duration::from_millis(expected_ms), "n={n}");
        }
    }

    /// Go's integer steps: the scale is truncated to thousandths before it
    /// multiplies, and the nanoseconds are truncated once after.
    #[test]
    fn suspicion_timeout_truncates_like_go() {
        // log10(50) = 1.69897..., scale 1698/1000.
        assert_eq!(suspicion_timeout(4, 50, secs(1)), Duration::from_millis(4 * 1698));
        // 5 * 1698 * 333_333_333 ns / 1000 = 2_829_999_997.17 ns, truncated.
        assert_eq!(suspicion_timeout(5, 50, Duration::from_nanos(333_333_333)), Duration::from_nanos(2_829_999_997));
        // n of 0 and 1 and anything below 10 use a scale of 1.
        for n in 0..=10 {
            assert_eq!(suspicion_timeout(4, n, secs(1)), secs(4), "n={n}");
        }
        // Powers of ten land exactly on whole scales, as in Go.
        for (n, scale) in [(100, 2), (1000, 3), (10_000, 4), (100_000, 5), (1_000_000, 6)] {
            assert_eq!(suspicion_timeout(1, n, secs(1)), secs(scale), "n={n}");
        }
        assert_eq!(suspicion_timeout(usize::MAX, usize::MAX, Duration::MAX), Duration::MAX);
        assert_eq!(suspicion_timeout(0, 50, secs(1)), Duration::ZERO);
    }

    /// Go's `math.Log`, `Log10` and `Log2`, bit for bit: the expected bits
    /// were printed by Go 1.19 on amd64 (`math.Float64bits(math.Log(x))`...).
    /// The same comparison over 300,000 integers and 300,000 random positive
    /// doubles agreed everywhere but on subnormals (Go's amd64 assembly does
    /// not normalise them; its portable code, copied here, does).
    #[test]
    fn go_math_bit_for_bit() {
        let cases: [(f64, u64, u64, u64); 8] = [
            (2.0, 0x3fe62e42fefa39ef, 0x3fd34413509f79ff, 0x3ff0000000000000),
            (3.0, 0x3ff193ea7aad030a, 0x3fde8927964fd5fc, 0x3ff95c01a39fbd69),
            (9.0, 0x400193ea7aad030b, 0x3fee8927964fd5fe, 0x40095c01a39fbd69),
            (10.0, 0x40026bb1bbb55516, 0x3ff0000000000000, 0x400a934f0979a371),
            (50.0, 0x400f4bd2b7ac1baf, 0x3ffb2efb2bd82180, 0x4016934f0979a371),
            (100.0, 0x40126bb1bbb55516, 0x4000000000000000, 0x401a934f0979a371),
            (1000.0, 0x401ba18a998fffa0, 0x4008000000000000, 0x4023ee7b471b3a95),
            (12345.0, 0x4022d78e26ae18e8, 0x40105dafd7670640, 0x402b2eeb55d7c2d7),
        ];
        for (x, ln, log10, log2) in cases {
            assert_eq!(go_log(x).to_bits(), ln, "Log({x})");
            assert_eq!(go_log10(x).to_bits(), log10, "Log10({x})");
            assert_eq!(go_log2(x).to_bits(), log2, "Log2({x})");
        }
        assert_eq!(go_log(1.0), 0.0);
        assert_eq!(go_log(0.0), f64::NEG_INFINITY);
        assert!(go_log(-1.0).is_nan());
        assert_eq!(go_log(f64::INFINITY), f64::INFINITY);
        assert_eq!(go_log2(0.5), -1.0);
        assert_eq!(go_log2(f64::MIN_POSITIVE / 4.0), -1024.0);
    }

    /// Ports Go `TestShuffleNodes`. Debian's Go package skips it ("DM:
    /// disabled failing test"): Go's `reflect.DeepEqual` compares the nodes'
    /// contents, and a shuffle of 3 dead and 5 alive nodes keeps the same
    /// state pattern 1 time in 56. With a seeded RNG it is deterministic.
    #[test]
    fn go_shuffle_nodes() {
        use State::*;
        let orig: Vec<Node> = [Dead, Alive, Alive, Dead, Alive, Alive, Dead, Alive]
            .into_iter()
            .map(|s| node("", s, Time::ZERO))
            .collect();
        let mut nodes: Vec<&Node> = orig.iter().collect();
        assert!(nodes.iter().copied().eq(orig.iter()), "should match");

        shuffle(&mut nodes, &mut StdRng::seed_from_u64(7));

        assert!(!nodes.iter().copied().eq(orig.iter()), "should not match");
        // A permutation: every node still there once.
        let mut addrs: Vec<*const Node> = nodes.iter().map(|n| *n as *const Node).collect();
        let mut want: Vec<*const Node> = orig.iter().map(|n| n as *const Node).collect();
        addrs.sort();
        want.sort();
        assert_eq!(addrs, want);
    }

    /// Same seed, same shuffle and same picks: a simulation replays.
    #[test]
    fn seeded_rng_replays() {
        let nodes: Vec<u32> = (0..50).collect();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut v = nodes.clone();
            shuffle(&mut v, &mut rng);
            let picks: Vec<u32> = k_random_nodes(5, &nodes, |n| n % 2 == 1, &mut rng).into_iter().copied().collect();
            (v, picks)
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    /// Ports Go `TestPushPullScale`.
    #[test]
    fn go_push_pull_scale() {
        let sec = secs(1);
        for n in 0..=32 {
            assert_eq!(push_pull_scale(sec, n), sec, "n={n}");
        }
        for n in 33..=64 {
            assert_eq!(push_pull_scale(sec, n), 2 * sec, "n={n}");
        }
        for n in 65..=128 {
            assert_eq!(push_pull_scale(sec, n), 3 * sec, "n={n}");
        }
    }

    /// The float formula agrees with its integer reading, `ceil(log2 n) - 4`,
    /// for any cluster size that can exist.
    #[test]
    fn push_pull_scale_matches_integer_log2() {
        let sec = secs(1);
        let check = |n: usize| {
            let ceil_log2 = (n - 1).ilog2() + 1;
            assert_eq!(push_pull_scale(sec, n), sec * (ceil_log2 - 4), "n={n}");
        };
        (33..=1 << 16).for_each(check);
        for shift in 6..40 {
            for n in [(1usize << shift) - 1, 1 << shift, (1 << shift) + 1] {
                check(n);
            }
        }
        assert_eq!(push_pull_scale(Duration::MAX, 1000), Duration::MAX);
    }

    /// Ports Go `TestMoveDeadNodes`.
    #[test]
    fn go_move_dead_nodes() {
        use State::*;
        let now = Time::from_epoch(secs(1000));
        let ago = |s: u64| Time::from_epoch(secs(1000 - s));
        let mut nodes = vec![
            node("0", Dead, ago(20)),
            node("1", Alive, ago(20)),
            // This dead node should not be moved, as its state changed less
            // than the specified GossipToTheDead time ago.
            node("2", Dead, ago(10)),
            node("3", Alive, ago(20)),
            node("4", Dead, ago(20)),
            node("5", Alive, ago(20)),
        ];

        let idx = move_dead_nodes(&mut nodes, secs(15), now, |n| (n.state == Dead).then_some(n.state_change));

        assert_eq!(idx, 4, "bad index");
        for (i, n) in nodes[..idx].iter().enumerate() {
            // The recently dead node remains at index 2, since nodes are
            // swapped out to move to the end.
            let want = if i == 2 { Dead } else { Alive };
            assert_eq!(n.state, want, "bad state {i}");
        }
        for (i, n) in nodes.iter().enumerate().skip(idx) {
            assert_eq!(n.state, Dead, "bad state {i}");
        }
        // Go's exact swaps: 0 <-> 5, then 4 moves onto itself.
        let order: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(order, ["5", "1", "2", "3", "4", "0"]);
    }

    /// The boundaries of `move_dead_nodes`: exactly gossip-to-the-dead time
    /// keeps a node (Go's `<=`), a state change in the future keeps it, an
    /// empty or all-dead slice works.
    #[test]
    fn move_dead_nodes_edges() {
        let now = Time::from_epoch(secs(100));
        let dead_since = |t: &Option<Time>| *t;
        let mut v = [Some(Time::from_epoch(secs(70))), Some(Time::from_epoch(secs(200))), None];
        assert_eq!(move_dead_nodes(&mut v, secs(30), now, dead_since), 3);
        assert_eq!(move_dead_nodes(&mut v, secs(29), now, dead_since), 2);
        assert_eq!(v[2], Some(Time::from_epoch(secs(70))));

        let mut empty: [Option<Time>; 0] = [];
        assert_eq!(move_dead_nodes(&mut empty, secs(1), now, dead_since), 0);
        let mut all = [Some(Time::ZERO); 5];
        assert_eq!(move_dead_nodes(&mut all, secs(1), now, dead_since), 0);
    }

    /// Ports Go `TestKRandomNodes`.
    #[test]
    fn go_k_random_nodes() {
        let nodes: Vec<Node> = (0..90)
            .map(|i| {
                // A third each alive, suspect and dead.
                let state = match i % 3 {
                    0 => State::Alive,
                    1 => State::Suspect,
                    _ => State::Dead,
                };
                node(&format!("test{i}"), state, Time::ZERO)
            })
            .collect();
        let filter = |n: &Node| n.name == "test0" || n.state != State::Alive;

        let mut rng = StdRng::seed_from_u64(3);
        let s1 = k_random_nodes(3, &nodes, filter, &mut rng);
        let s2 = k_random_nodes(3, &nodes, filter, &mut rng);
        let s3 = k_random_nodes(3, &nodes, filter, &mut rng);

        assert_ne!(s1, s2, "unexpected equal");
        assert_ne!(s1, s3, "unexpected equal");
        assert_ne!(s2, s3, "unexpected equal");
        for s in [&s1, &s2, &s3] {
            assert_eq!(s.len(), 3, "bad len");
            for n in s {
                assert_ne!(n.name, "test0", "bad name");
                assert_eq!(n.state, State::Alive, "bad state");
            }
            let names: HashSet<&str> = s.iter().map(|n| n.name.as_str()).collect();
            assert_eq!(names.len(), 3, "duplicate pick");
        }
    }

    /// Drawn one at a time, the picks are those of `k_random_nodes`.
    #[test]
    fn random_picks_are_k_random_nodes_one_at_a_time() {
        let nodes: Vec<u32> = (0..50).collect();
        for seed in 0..20 {
            let mut a = StdRng::seed_from_u64(seed);
            let mut b = StdRng::seed_from_u64(seed);
            let all: Vec<u32> = k_random_nodes(4, &nodes, |n| n % 3 == 0, &mut a).into_iter().copied().collect();
            let mut picks = RandomPicks::new(4);
            let first = picks.next(&nodes, |n| n % 3 == 0, &mut b).map(|i| nodes[i]);
            assert_eq!(first, all.first().copied(), "seed {seed}");
            let rest: Vec<u32> =
                std::iter::from_fn(|| picks.next(&nodes, |n| n % 3 == 0, &mut b)).map(|i| nodes[i]).collect();
            assert_eq!(rest, all[1..], "seed {seed}");
            assert_eq!(picks.next(&nodes, |_| false, &mut b), None, "k reached");
        }
    }

    /// With few eligible nodes the 3n draws make the search exhaustive in
    /// practice; with none, or k = 0, nothing comes back.
    #[test]
    fn k_random_nodes_edges() {
        let mut rng = StdRng::seed_from_u64(5);
        let nodes: Vec<u32> = (0..10).collect();
        assert!(k_random_nodes(0, &nodes, |_| false, &mut rng).is_empty());
        assert!(k_random_nodes(3, &nodes, |_| true, &mut rng).is_empty());
        assert!(k_random_nodes(3, &[] as &[u32], |_| false, &mut rng).is_empty());
        let all = k_random_nodes(100, &nodes, |_| false, &mut rng);
        assert!(all.len() <= 10);
        let distinct: HashSet<u32> = all.iter().copied().copied().collect();
        assert_eq!(distinct.len(), all.len());
    }
}
