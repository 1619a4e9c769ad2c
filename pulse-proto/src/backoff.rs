//! When to try again after a lost connection: a pure policy any driver can
//! use, so reconnect timing is decided here and tested without sockets.

use core::time::Duration;

use crate::jitter::SplitMix64;

/// Reconnect delays: exponential, capped, with jitter, optionally giving up.
///
/// Attempt *n* (from 0) waits a base of `initial × 2ⁿ`, capped at `max`,
/// drawn uniformly from the upper `1 − jitter` … `1` part of it ("equal
/// jitter"): a fleet of clients that lost the same server at the same
/// moment comes back spread out, never sooner than half the base (by
/// default). The draws come from the seed, so a replay is exact.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use pulse_proto::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
///     .with_max_attempts(4)
///     .with_seed(7);
/// let delays: Vec<Duration> = core::iter::from_fn(|| backoff.next_delay()).collect();
/// assert_eq!(delays.len(), 4); // then it gives up
/// assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
/// assert!(delays[3] >= Duration::from_millis(400) && delays[3] <= Duration::from_millis(800));
/// backoff.reset(); // connected again: start over
/// assert!(backoff.next_delay().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter_percent: u8,
    max_attempts: Option<u32>,
    attempt: u32,
    rng: SplitMix64,
    seeded: bool,
}

impl Backoff {
    /// Delays from `initial`, doubling, capped at `max` (raised to
    /// `initial` if smaller), with 50 % jitter and no limit on attempts.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            jitter_percent: 50,
            max_attempts: None,
            attempt: 0,
            rng: SplitMix64(0x5EED),
            seeded: false,
        }
    }

    /// Gives up after `n` attempts in a row without a connection.
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// The share of each delay that is random, 0–100 (default 50).
    pub fn with_jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = percent.min(100);
        self
    }

    /// Seeds the jitter: give each client its own.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = SplitMix64(seed);
        self.seeded = true;
        self
    }

    /// Whether [`Backoff::with_seed`] was called: a driver that finds it
    /// unseeded gives it a seed of its own, so clients do not retry in
    /// lockstep.
    pub fn is_seeded(&self) -> bool {
        self.seeded
    }

    /// The delay before the next attempt, or `None` to give up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| self.attempt >= max) {
            return None;
        }
        let base = self.initial.saturating_mul(1 << self.attempt.min(31)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let base_ns = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
        let random_ns = base_ns / 100 * u64::from(self.jitter_percent);
        let delay = base_ns - random_ns + self.rng.below(random_ns + 1);
        Some(Duration::from_nanos(delay))
    }

    /// Attempts made since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over: call it once connected.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn delays_double_up_to_the_cap_within_their_jitter() {
        let mut backoff = Backoff::new(MS * 100, MS * 1000).with_seed(3);
        for base in [100u32, 200, 400, 800, 1000, 1000, 1000] {
            let d = backoff.next_delay().unwrap();
            assert!(d >= MS * base / 2 && d <= MS * base, "{d:?} for base {base} ms");
        }
    }

    #[test]
    fn it_gives_up_after_the_attempts_and_starts_over_on_reset() {
        let mut backoff = Backoff::new(MS, MS * 10).with_max_attempts(2);
        assert!(backoff.next_delay().is_some());
        assert!(backoff.next_delay().is_some());
        assert_eq!(backoff.next_delay(), None);
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert!(backoff.next_delay().is_some());
    }

    #[test]
    fn clients_with_different_seeds_spread_out_and_a_seed_replays_exactly() {
        let first = |seed| Backoff::new(MS * 1000, MS * 1000).with_seed(seed).next_delay().unwrap();
        let distinct: alloc::collections::BTreeSet<Duration> = (0..100).map(first).collect();
        assert!(distinct.len() > 90);
        assert_eq!(first(5), first(5));
    }

    #[test]
    fn without_jitter_the_delays_are_exact_and_huge_attempts_do_not_overflow() {
        let mut backoff = Backoff::new(MS, Duration::from_secs(3600)).with_jitter_percent(0);
        assert_eq!(backoff.next_delay(), Some(MS));
        assert_eq!(backoff.next_delay(), Some(MS * 2));
        for _ in 0..100 {
            assert!(backoff.next_delay().unwrap() <= Duration::from_secs(3600));
        }
    }
}
