//! The accrual detector: a continuous suspicion level for heartbeats that
//! arrive on their own (announcements), from the inter-arrival times seen
//! so far, in two numbers per target.
//!
//! The level is φ as in the phi-accrual detector of Hayashibara et al.:
//! −log10 of the chance that a live service stays silent this long, under
//! a normal model of the interval with the learned mean and deviation. φ 1
//! means a one-in-ten silence, φ 8 one in a hundred million. Three things
//! keep it honest on real networks:
//!
//! - **Running statistics, not a window.** Mean and variance are
//!   exponentially weighted: O(1) memory and work per heartbeat.
//! - **A minimum deviation and an acceptable pause**, both in units of the
//!   service's own announced interval, so a perfectly regular sender (whose
//!   learned deviation tends to zero) is not convicted by the first late
//!   datagram, and a service may skip a few beats (a GC pause, a lost
//!   datagram) before suspicion starts to climb.
//! - **Samples per sequence step.** A gap that spans lost announcements is
//!   divided by the number of sequence steps it covers, so loss does not
//!   stretch the learned interval, and each sample is clamped to a quarter
//!   to four times the announced interval, so one burst or one outlier moves
//!   the estimate by a bounded step.
//!
//! The level is only computed for snapshots and events; deciding needs no
//! transcendental function at all: each threshold is turned, once, into a
//! number of deviations `y`, and the time at which the level reaches it is
//! `mean + pause + y × deviation` after the last heartbeat.

use core::time::Duration;

/// Learned statistics of one heartbeat stream, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Accrual {
    mean_us: f32,
    var_us2: f32,
}

/// The detector's tuning, shared by all targets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Acceptable pause, in announced intervals.
    pub(crate) pause: f32,
    /// Minimum deviation, in announced intervals.
    pub(crate) min_deviation: f32,
    /// Weight of a new sample in the running statistics.
    pub(crate) alpha: f32,
}

impl Accrual {
    /// The prior for a stream announced at `interval`: that mean, and a
    /// deviation of a quarter of it until samples say otherwise.
    pub(crate) fn new(interval: Duration) -> Accrual {
        let mean = micros(interval);
        Accrual {
            mean_us: mean,
            var_us2: (mean / 4.0) * (mean / 4.0),
        }
    }

    /// Takes one sample: `gap` since the previous heartbeat, which was
    /// `steps` sequence numbers before this one.
    pub(crate) fn sample(&mut self, gap: Duration, steps: u32, interval: Duration, tuning: &Tuning) {
        let announced = micros(interval);
        let x = (micros(gap) / steps.max(1) as f32).clamp(announced / 4.0, announced * 4.0);
        let delta = x - self.mean_us;
        self.mean_us += tuning.alpha * delta;
        self.var_us2 = (1.0 - tuning.alpha) * (self.var_us2 + tuning.alpha * delta * delta);
    }

    /// The learned mean interval.
    pub(crate) fn mean(&self) -> Duration {
        Duration::from_nanos((self.mean_us.max(0.0) * 1000.0) as u64)
    }

    /// The learned deviation.
    pub(crate) fn deviation(&self) -> Duration {
        Duration::from_nanos((libm::sqrtf(self.var_us2.max(0.0)) * 1000.0) as u64)
    }

    fn effective_deviation_us(&self, interval: Duration, tuning: &Tuning) -> f32 {
        libm::sqrtf(self.var_us2.max(0.0)).max(tuning.min_deviation * micros(interval))
    }

    /// How long after the last heartbeat the level reaches the threshold
    /// whose deviation count is `y`.
    pub(crate) fn reach(&self, y: f32, interval: Duration, tuning: &Tuning) -> Duration {
        let pause = tuning.pause * micros(interval);
        let t = self.mean_us + pause + y * self.effective_deviation_us(interval, tuning);
        Duration::from_nanos((t.max(0.0) as f64 * 1000.0) as u64)
    }

    /// The suspicion level φ after `silent` without a heartbeat.
    pub(crate) fn level(&self, silent: Duration, interval: Duration, tuning: &Tuning) -> f32 {
        let pause = tuning.pause * micros(interval);
        let y = (micros(silent) - self.mean_us - pause) / self.effective_deviation_us(interval, tuning);
        phi(y)
    }
}

fn micros(d: Duration) -> f32 {
    d.as_secs_f32() * 1e6
}

/// The logistic approximation of the normal tail that Akka's detector uses,
/// written so that neither end overflows: φ = softplus(k) / ln 10 with
/// k = y (1.5976 + 0.070566 y²).
pub(crate) fn phi(y: f32) -> f32 {
    let k = y * (1.5976 + 0.070566 * y * y);
    let softplus = if k > 0.0 {
        k + libm::log1pf(libm::expf(-k))
    } else {
        libm::log1pf(libm::expf(k))
    };
    softplus / core::f32::consts::LN_10
}

/// The number of deviations `y` at which φ reaches `level` (> 0): the
/// inverse of [`phi`], by bisection, once per threshold at configuration.
pub(crate) fn deviations_for(level: f32) -> f32 {
    let (mut low, mut high) = (-20.0f32, 40.0f32);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if phi(mid) < level {
            low = mid;
        } else {
            high = mid;
        }
    }
    (low + high) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(1);
    const TUNING: Tuning = Tuning {
        pause: 2.0,
        min_deviation: 0.1,
        alpha: 1.0 / 16.0,
    };

    #[test]
    fn phi_grows_with_silence_and_inverts_exactly() {
        assert!(phi(-3.0) < phi(0.0) && phi(0.0) < phi(3.0));
        assert!((phi(0.0) - core::f32::consts::LOG10_2).abs() < 1e-4);
        for level in [0.5f32, 1.0, 3.0, 8.0, 16.0] {
            let y = deviations_for(level);
            assert!((phi(y) - level).abs() < 1e-3, "{level}: {}", phi(y));
        }
        assert!(phi(1000.0).is_finite() && phi(-1000.0) >= 0.0);
    }

    #[test]
    fn a_regular_sender_is_down_after_mean_plus_pause_plus_the_minimum_deviations() {
        let mut a = Accrual::new(I);
        for _ in 0..200 {
            a.sample(I, 1, I, &TUNING);
        }
        let y = deviations_for(8.0);
        let reach = a.reach(y, I, &TUNING);
        let expected = 3.0 + y * 0.1;
        assert!((reach.as_secs_f32() - expected).abs() < 0.01, "{reach:?} vs {expected}");
        assert!((a.level(reach, I, &TUNING) - 8.0).abs() < 0.05);
    }

    #[test]
    fn a_gap_over_lost_announcements_is_sampled_per_sequence_step() {
        let mut a = Accrual::new(I);
        for _ in 0..100 {
            a.sample(I, 1, I, &TUNING);
        }
        let before = a.mean();
        a.sample(I * 3, 3, I, &TUNING);
        assert_eq!(a.mean(), before);
        a.sample(I * 3, 1, I, &TUNING);
        assert!(a.mean() > before);
    }

    #[test]
    fn one_outlier_moves_the_estimate_by_a_bounded_step() {
        let mut a = Accrual::new(I);
        for _ in 0..100 {
            a.sample(I, 1, I, &TUNING);
        }
        a.sample(Duration::from_secs(3600), 1, I, &TUNING);
        assert!(a.mean() < I + I * 4 / 16 + Duration::from_millis(1), "{:?}", a.mean());
    }

    #[test]
    fn jitter_widens_the_learned_deviation() {
        let (mut calm, mut noisy) = (Accrual::new(I), Accrual::new(I));
        for k in 0..400 {
            calm.sample(I, 1, I, &TUNING);
            let d = if k % 2 == 0 { I * 7 / 10 } else { I * 13 / 10 };
            noisy.sample(d, 1, I, &TUNING);
        }
        assert!(calm.deviation() < Duration::from_millis(10));
        assert!(noisy.deviation() > Duration::from_millis(250));
        let y = deviations_for(8.0);
        assert!(noisy.reach(y, I, &TUNING) > calm.reach(y, I, &TUNING));
    }
}
