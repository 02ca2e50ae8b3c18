//! Time as the protocol core sees it: a point on the driver's clock.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in nanoseconds since an epoch the driver picks (process
/// start for the engine, zero for the simulator). Only differences matter, so
/// the same inputs give the same outputs whatever the epoch: that is what makes
/// a simulation replayable from its seed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(0);

    /// `d` after the epoch.
    pub fn from_epoch(d: Duration) -> Time {
        Time(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Time since the epoch.
    pub fn since_epoch(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    /// Saturates at the end of time rather than wrapping.
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

impl Sub<Time> for Time {
    type Output = Duration;
    /// Same as [`Time::saturating_since`].
    fn sub(self, earlier: Time) -> Duration {
        self.saturating_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_epoch(Duration::from_secs(5));
        assert_eq!(t + Duration::from_millis(1500) - t, Duration::from_millis(1500));
        assert_eq!(Time::ZERO - t, Duration::ZERO);
        assert_eq!(Time::from_epoch(Duration::MAX) + Duration::from_secs(1), Time(u64::MAX));
    }
}
