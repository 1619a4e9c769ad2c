//! Round-trip time estimation in the manner of RFC 6298, in integer
//! nanoseconds (no floating point in `no_std`).

use core::time::Duration;

/// RTT assumed before the first sample: QUIC's choice (RFC 9002, kInitialRtt).
pub const INITIAL_RTT: Duration = Duration::from_millis(333);

/// Smoothed RTT and its variance from PING/PONG samples, kept in
/// microseconds (`u32`: up to 71 minutes) so a session stays small.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    smoothed: u32,
    variance: u32,
    latest: u32,
    hold: u32,
    has_sample: bool,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn duration(us: u32) -> Duration {
    Duration::from_micros(us.into())
}

impl Default for RttEstimator {
    fn default() -> Self {
        let initial = micros(INITIAL_RTT);
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
        let (r, h) = (micros(sample), micros(peer_hold));
        self.latest = r;
        if !self.has_sample {
            self.smoothed = r;
            self.variance = r / 2;
            self.hold = h;
            self.has_sample = true;
            return;
        }
        let smooth = |old: u32, new: u32, keep: u64, of: u64| ((keep * u64::from(old) + u64::from(new)) / of) as u32;
        self.hold = smooth(self.hold, h, 7, 8);
        self.variance = smooth(self.variance, self.smoothed.abs_diff(r), 3, 4);
        self.smoothed = smooth(self.smoothed, r, 7, 8);
    }

    /// Smoothed RTT (the initial guess until the first sample).
    pub fn smoothed(&self) -> Duration {
        duration(self.smoothed)
    }

    /// RTT variance.
    pub fn variance(&self) -> Duration {
        duration(self.variance)
    }

    /// The latest sample.
    pub fn latest(&self) -> Duration {
        duration(self.latest)
    }

    /// Whether any sample has been taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// Smoothed time the peer holds a PING before answering.
    pub fn peer_hold(&self) -> Duration {
        duration(self.hold)
    }

    /// How long a PING may go unanswered before the peer is suspect:
    /// smoothed + 4 × variance + the peer's usual hold (as QUIC adds the
    /// peer's ack delay), never below `floor`.
    pub fn probe_timeout(&self, floor: Duration) -> Duration {
        let pto = u64::from(self.smoothed) + 4 * u64::from(self.variance) + u64::from(self.hold);
        Duration::from_micros(pto).max(floor)
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
            Duration::from_micros(999_000)
        );
    }
}
