//! The monitor's one source of randomness: seeded by the caller, so the
//! same seed and the same calls give the same probes at the same times.

use core::time::Duration;

use pulse_proto::SplitMix64;

/// pulse-proto's SplitMix64, with what the monitor draws from it.
#[derive(Clone, Debug)]
pub(crate) struct Rng(SplitMix64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(SplitMix64::new(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }

    /// A spread start: uniform in `[0, interval)`, so targets added in the
    /// same instant are checked at phases spread over a whole interval.
    pub(crate) fn phase(&mut self, interval: Duration) -> Duration {
        Duration::from_nanos(self.below(nanos(interval)))
    }

    /// `interval` moved by a uniform amount within ± `percent` of it.
    pub(crate) fn jittered(&mut self, interval: Duration, percent: u8) -> Duration {
        let i = nanos(interval);
        let half_width = i / 100 * u64::from(percent.min(100));
        let offset = self.below(2 * half_width + 1);
        Duration::from_nanos((i + offset).saturating_sub(half_width))
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4).min(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(1);

    #[test]
    fn jittered_intervals_stay_within_the_percentage_and_cover_it() {
        let mut rng = Rng::new(3);
        let (mut low, mut high) = (I, I);
        for _ in 0..10_000 {
            let d = rng.jittered(I, 10);
            assert!(d >= I * 9 / 10 && d <= I * 11 / 10, "{d:?}");
            low = low.min(d);
            high = high.max(d);
        }
        assert!(low < I * 91 / 100 && high > I * 109 / 100, "{low:?} {high:?}");
    }

    #[test]
    fn phases_spread_over_the_whole_interval() {
        let mut rng = Rng::new(9);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            let p = rng.phase(I);
            assert!(p < I);
            buckets[(p.as_millis() / 100) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (800..1200).contains(&n)), "{buckets:?}");
    }
}
