//! Drawing heartbeat intervals: jittered, seeded, and without drift.

use core::time::Duration;

/// SplitMix64: tiny, fast, and its output for a seed never changes, which
/// the bit-for-bit determinism of sessions (and of `pulse-monitor`'s
/// schedules) depends on. Not for secrets.
///
/// ```
/// let mut a = pulse_proto::SplitMix64::new(7);
/// let mut b = pulse_proto::SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.next()
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0), by multiply-shift.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Draws the spacing from the last proof of life to the next PING.
///
/// Each spacing is `interval + (v_k − v_{k−1})` with every `v` uniform in
/// ±(jitter / 2) × interval: every interval lies within ±jitter of the
/// nominal one, yet the offsets telescope, so *n* PINGs never drift more
/// than one jitter width from *n* intervals. That is what keeps an idle hour
/// at ⌈3600 s / interval⌉ + 1 PINGs at most, jitter or not. The first
/// spacing is uniform in [interval / 2, 3 × interval / 2): sessions opened
/// in the same millisecond ping at phases spread over a whole interval.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jitter {
    rng: SplitMix64,
    offset: i64,
}

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Jitter {
            rng: SplitMix64(seed),
            offset: 0,
        }
    }

    /// The spacing before a session's first PING.
    pub(crate) fn first(&mut self, interval: Duration) -> Duration {
        let i = nanos(interval);
        Duration::from_nanos(i / 2 + self.rng.below(i.max(1)))
    }

    /// The spacing before each later PING, within ± `percent` of `interval`.
    pub(crate) fn next(&mut self, interval: Duration, percent: u8) -> Duration {
        let i = nanos(interval);
        let half_width = i / 200 * u64::from(percent);
        let offset = self.rng.below(2 * half_width + 1) as i64 - half_width as i64;
        let spacing = i as i64 + offset - self.offset;
        self.offset = offset;
        Duration::from_nanos(spacing.max(0) as u64)
    }

    /// The server's spacing: it pings only when the client's PING is
    /// overdue, so it waits until halfway between the latest a client's
    /// PING can come, `3I/2` (its first spacing is under that, and later
    /// ones too, for any jitter up to 50 %), and the dead-peer timeout,
    /// which leaves the other half for probing. The later it is, the fewer
    /// times a driver's timer fires for nothing while the client's PINGs
    /// arrive.
    pub(crate) fn backup(interval: Duration, dead_timeout: Duration) -> Duration {
        let latest = interval * 3 / 2;
        latest + dead_timeout.saturating_sub(latest) / 2
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4).min(u64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_secs(10);

    #[test]
    fn every_spacing_lies_within_the_jitter_and_the_sum_does_not_drift() {
        let mut jitter = Jitter::new(42);
        let mut total = Duration::ZERO;
        for _ in 0..10_000 {
            let s = jitter.next(I, 10);
            assert!(s >= I * 9 / 10 && s <= I * 11 / 10, "{s:?}");
            total += s;
        }
        let drift = total.abs_diff(I * 10_000);
        assert!(drift <= I / 10, "drifted {drift:?}");
    }

    #[test]
    fn first_spacings_cover_a_whole_interval() {
        let mut buckets = [0u32; 10];
        for seed in 0..10_000 {
            let s = Jitter::new(seed).first(I);
            assert!(s >= I / 2 && s < I * 3 / 2);
            buckets[((s - I / 2).as_millis() / 1000) as usize] += 1;
        }
        assert!(buckets.iter().all(|&n| (800..1200).contains(&n)), "{buckets:?}");
    }

    #[test]
    fn the_server_waits_halfway_from_the_clients_latest_ping_to_the_timeout() {
        assert_eq!(Jitter::backup(I, I * 3), I * 225 / 100);
        // Even at the smallest timeout (two intervals) it comes before death.
        assert_eq!(Jitter::backup(I, I * 2), I * 175 / 100);
        // Later than any spacing a client may draw, at any jitter.
        let mut jitter = Jitter::new(3);
        assert!((0..1000).all(|_| jitter.next(I, 50) <= I * 3 / 2));
    }

    #[test]
    fn the_same_seed_draws_the_same_spacings() {
        let (mut a, mut b) = (Jitter::new(7), Jitter::new(7));
        for _ in 0..100 {
            assert_eq!(a.next(I, 10), b.next(I, 10));
        }
        assert_ne!(Jitter::new(8).first(I), Jitter::new(7).first(I));
    }
}
