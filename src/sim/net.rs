//! The network model of one directed link: loss, duplication, corruption
//! and delay, for datagrams and for streams.

use std::time::Duration;

use rand::{Rng, RngExt};

/// Bytes per segment of a simulated stream (Ethernet's TCP MSS).
pub const STREAM_SEGMENT: usize = 1460;
/// How long a simulated stream waits before it resends a lost segment the
/// first time (Linux's minimum RTO); each further loss of the same segment
/// doubles it.
pub const STREAM_RTO: Duration = Duration::from_millis(200);
/// Losses of one segment after which a simulated stream gives up (the
/// connection breaks: 200 ms × (2⁶ − 1) = 12.6 s of retries, past every
/// stream deadline the core sets).
pub const MAX_STREAM_RETRIES: u32 = 6;

/// The behaviour of packets and streams from one node to another.
///
/// **Datagrams**: each is lost with probability `loss`; a datagram that
/// gets through arrives twice with probability `duplicate` (each copy with
/// its own delay, so the copy may come first), and each copy arrives with
/// one byte changed with probability `corrupt` (a random byte XOR a random
/// non-zero value). Probabilities of 0 draw nothing from the world's RNG,
/// so adding these knobs changed no earlier trace.
///
/// **Streams** (TCP, one request and one reply): each direction is one
/// handshake segment plus one segment per [`STREAM_SEGMENT`] bytes. Each
/// segment is lost with probability `loss`, and every loss of it costs a
/// retransmission timeout ([`STREAM_RTO`], doubling); after
/// [`MAX_STREAM_RETRIES`] losses of one segment the connection breaks and
/// nothing arrives. A direction's delay is one `delay` draw plus its
/// retransmission timeouts, so loss makes a stream *late*, and the
/// requester's deadline answers [`Timeout`](crate::swim::StreamError) when
/// it is too late. Streams are neither duplicated nor corrupted (TCP's
/// checksum and sequence numbers). Partitions and dead peers are the
/// world's: a dial across a partition hangs until the deadline, a dial to a
/// dead node is refused one round trip later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Link {
    /// Probability in `[0, 1]` that a datagram, or one segment of a
    /// stream, is lost.
    pub loss: f64,
    /// Probability in `[0, 1]` that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability in `[0, 1]` that a delivered datagram has a byte changed.
    pub corrupt: f64,
    /// One-way delay of datagrams and of each stream message.
    pub delay: Delay,
}

impl Link {
    /// No loss, a fixed delay.
    pub const fn fixed(delay: Duration) -> Link {
        Link { loss: 0.0, duplicate: 0.0, corrupt: 0.0, delay: Delay { base: delay, jitter: Jitter::None } }
    }

    /// `self` with `loss` (clamped to `[0, 1]`).
    pub fn with_loss(self, loss: f64) -> Link {
        Link { loss: loss.clamp(0.0, 1.0), ..self }
    }

    /// `self` with `duplicate` (clamped to `[0, 1]`).
    pub fn with_duplicate(self, duplicate: f64) -> Link {
        Link { duplicate: duplicate.clamp(0.0, 1.0), ..self }
    }

    /// `self` with `corrupt` (clamped to `[0, 1]`).
    pub fn with_corrupt(self, corrupt: f64) -> Link {
        Link { corrupt: corrupt.clamp(0.0, 1.0), ..self }
    }

    /// `self` with `jitter` added to the delay.
    pub fn with_jitter(self, jitter: Jitter) -> Link {
        Link { delay: Delay { jitter, ..self.delay }, ..self }
    }

    /// Whether a datagram (or stream segment) is lost. Draws from `rng`
    /// only when the outcome is not certain.
    pub(super) fn lose(&self, rng: &mut impl Rng) -> bool {
        chance(self.loss, rng)
    }

    /// Whether a datagram that got through arrives twice.
    pub(super) fn duplicates(&self, rng: &mut impl Rng) -> bool {
        chance(self.duplicate, rng)
    }

    /// Changes one byte of `bytes` with probability `corrupt`; whether it
    /// did.
    pub(super) fn corrupt(&self, bytes: &mut [u8], rng: &mut impl Rng) -> bool {
        if bytes.is_empty() || !chance(self.corrupt, rng) {
            return false;
        }
        let at = rng.random_range(0..bytes.len());
        bytes[at] ^= rng.random_range(1..=u8::MAX);
        true
    }

    /// How long one direction of a stream exchange carrying `bytes` takes
    /// to arrive, retransmissions included; `None` if the connection breaks
    /// (see [`Link`]).
    pub(super) fn stream_delay(&self, bytes: usize, rng: &mut impl Rng) -> Option<Duration> {
        let mut delay = self.delay.sample(rng);
        if self.loss <= 0.0 {
            return Some(delay);
        }
        let segments = 1 + bytes.div_ceil(STREAM_SEGMENT);
        for _ in 0..segments {
            let mut rto = STREAM_RTO;
            let mut losses = 0;
            while self.lose(rng) {
                losses += 1;
                if losses > MAX_STREAM_RETRIES {
                    return None;
                }
                delay += rto;
                rto *= 2;
            }
        }
        Some(delay)
    }
}

/// True with probability `p`; draws from `rng` only when `p` is strictly
/// between 0 and 1.
fn chance(p: f64, rng: &mut impl Rng) -> bool {
    if p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.random_bool(p)
    }
}

impl Default for Link {
    /// A quiet LAN: no loss, 500 µs ± up to 500 µs.
    fn default() -> Link {
        Link::fixed(Duration::from_micros(500)).with_jitter(Jitter::Uniform(Duration::from_micros(500)))
    }
}

/// A one-way delay: `base` plus a random `jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delay {
    /// The least delay.
    pub base: Duration,
    /// What is added to `base`.
    pub jitter: Jitter,
}

/// The random part of a [`Delay`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jitter {
    /// Always `base`.
    None,
    /// Uniform in `[0, max]`.
    Uniform(Duration),
    /// Exponential with this mean (a long tail; at most ~37 × the mean).
    Exponential(Duration),
}

impl Delay {
    /// Draws one delay. Integer and IEEE `+ - * /` arithmetic only, so the
    /// same RNG state gives the same delay on every platform.
    pub(super) fn sample(&self, rng: &mut impl Rng) -> Duration {
        let extra = match self.jitter {
            Jitter::None => Duration::ZERO,
            Jitter::Uniform(max) => {
                let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rng.random_range(0..=max))
            }
            Jitter::Exponential(mean) => {
                // u in (0, 1], 53 random bits.
                let u = ((rng.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64);
                let ns = -portable_ln(u) * mean.as_nanos() as f64;
                Duration::from_nanos(ns as u64)
            }
        };
        self.base.saturating_add(extra)
    }
}

/// Natural logarithm of a positive, normal `x`, with `+ - * /` only:
/// `f64::ln` calls the platform's libm, whose last bit may differ between
/// platforms, and the simulator must not.
pub(super) fn portable_ln(x: f64) -> f64 {
    debug_assert!(x.is_normal() && x > 0.0, "portable_ln({x})");
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    // x = m * 2^exponent with m in [1, 2).
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + …), s = (m-1)/(m+1) in [0, 1/3).
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..24 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    2.0 * sum + exponent as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::Xoshiro256PlusPlus;

    #[test]
    fn portable_ln_matches_libm() {
        for x in [1e-16, 1.0 / 3.0, 0.5, 0.999_999, 1.0, 1.5, 2.0, 10.0, 12345.678] {
            let (ours, libm) = (portable_ln(x), x.ln());
            assert!((ours - libm).abs() <= 1e-14 * libm.abs().max(1.0), "ln({x}): {ours} vs {libm}");
        }
    }

    #[test]
    fn delays_stay_in_their_distribution() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let base = Duration::from_millis(1);
        let uniform = Delay { base, jitter: Jitter::Uniform(Duration::from_millis(2)) };
        let expo = Delay { base, jitter: Jitter::Exponential(Duration::from_millis(2)) };
        let (mut sum_u, mut sum_e) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..10_000 {
            let (u, e) = (uniform.sample(&mut rng), expo.sample(&mut rng));
            assert!(u >= base && u <= base + Duration::from_millis(2), "{u:?}");
            assert!(e >= base && e <= base + Duration::from_millis(2 * 40), "{e:?}");
            sum_u += u - base;
            sum_e += e - base;
        }
        // Both means are 1 ms / 2 ms; 10k draws land within 5 %.
        let (mean_u, mean_e) = (sum_u / 10_000, sum_e / 10_000);
        assert!(mean_u.abs_diff(Duration::from_millis(1)) < Duration::from_micros(50), "{mean_u:?}");
        assert!(mean_e.abs_diff(Duration::from_millis(2)) < Duration::from_micros(100), "{mean_e:?}");
        let fixed = Delay { base, jitter: Jitter::None };
        assert_eq!(fixed.sample(&mut rng), base);
    }
}
