//! Round-trip time estimation in the manner of RFC 6298, in integer
//! nanoseconds (no floating point in `no_std`).

use core::time::Duration;

/// RTT assumed before the first sample: QUIC's choice (RFC 9002, kInitialRtt).
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

/// Smoothed RTT and its variance from PING/PONG samples.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    smoothed: u64,
    variance: u64,
    latest: u64,
    hold: u64,
    has_sample: bool,
}

impl Default for RttEstimator {
    fn default() -> Self {
        let initial = INITIAL_RTT.as_nanos() as u64;
        RttEstimator {
            smoothed: initial,
            variance: initial / 2,
            latest: initial,
            hold: 0,
            has_sample: false,
        }
    }
}

impl RttEstimator {
    /// Folds in one sample of network round-trip time, and how long the
    /// peer held the PING before answering. The first sample sets the
    /// estimate; later ones move it by 1/8 (smoothed, hold) and 1/4 (variance).
    pub fn update(&mut self, sample: Duration, peer_hold: Duration) {
        let r = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX / 8);
        let h = u64::try_from(peer_hold.as_nanos()).unwrap_or(u64::MAX / 8);
        self.latest = r;
        if !self.has_sample {
            self.smoothed = r;
            self.variance = r / 2;
            self.hold = h;
            self.has_sample = true;
            return;
        }
        self.hold = (7 * self.hold + h) / 8;
        let deviation = self.smoothed.abs_diff(r);
        self.variance = (3 * self.variance + deviation) / 4;
        self.smoothed = (7 * self.smoothed + r) / 8;
    }

    /// Smoothed RTT (the initial guess until the first sample).
    pub fn smoothed(&self) -> Duration {
        Duration::from_nanos(self.smoothed)
    }

    /// RTT variance.
    pub fn variance(&self) -> Duration {
        Duration::from_nanos(self.variance)
    }

    /// The latest sample.
    pub fn latest(&self) -> Duration {
        Duration::from_nanos(self.latest)
    }

    /// Whether any sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// Smoothed time the peer holds a PING before answering.
    pub fn peer_hold(&self) -> Duration {
        Duration::from_nanos(self.hold)
    }

    /// How long a PING may go unanswered before the peer is suspect:
    /// smoothed + 4 × variance + the peer's usual hold (as QUIC adds the
    /// peer's ack delay), never below `floor`.
    pub fn probe_timeout(&self, floor: Duration) -> Duration {
        let pto = self
            .smoothed
            .saturating_add(self.variance.saturating_mul(4))
            .saturating_add(self.hold);
        Duration::from_nanos(pto).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sample_sets_the_estimate_and_later_ones_smooth_it() {
        let mut rtt = RttEstimator::default();
        rtt.update(Duration::from_millis(100), Duration::ZERO);
        assert_eq!(
            (rtt.smoothed(), rtt.variance()),
            (Duration::from_millis(100), Duration::from_millis(50))
        );
        rtt.update(Duration::from_millis(180), Duration::ZERO);
        assert_eq!(rtt.smoothed(), Duration::from_millis(110));
        assert_eq!(rtt.variance(), Duration::from_millis(57) + Duration::from_micros(500));
    }

    #[test]
    fn the_probe_timeout_never_drops_below_its_floor() {
        let mut rtt = RttEstimator::default();
        rtt.update(Duration::from_micros(50), Duration::ZERO);
        assert_eq!(
            rtt.probe_timeout(Duration::from_millis(250)),
            Duration::from_millis(250)
        );
        assert_eq!(
            RttEstimator::default().probe_timeout(Duration::ZERO),
            Duration::from_nanos(999_000_000)
        );
    }
}
