//! A heartbeat interval that adapts to the path: learn how long the
//! path's NATs and firewalls keep an idle connection, and ping just often
//! enough to stay under it.
//!
//! The policy learns the longest idle gap the path tolerates. It starts
//! from a safe gap, steps up after a few clean idle rounds, and when a
//! connection dies after an idle gap it records that gap as too long —
//! after a second failure, so one lost packet is not mistaken for the path.
//! Between the longest gap that worked and the shortest that failed it
//! bisects until they are within [`Adaptive::PRECISION_PERCENT`] (8 %), then
//! settles a margin below the longest that worked, and now and then
//! probes the failed value again in case the path changed. What it learned
//! is a small value the application keeps per network.

use core::time::Duration;

use crate::time::Instant;

/// How the adaptive interval learns, with defaults and why.
///
/// | field | default | why |
/// |---|---|---|
/// | `start` | 25 s | under the 30 s some home gateways give idle UDP bindings: safe almost anywhere |
/// | `active` | 10 s | while the application is in the foreground, a dead peer is found in seconds |
/// | `max` | 30 min | beyond it little is saved, and a dead peer goes unnoticed too long |
/// | `step_percent` | 50 | each step up is half again as long: 25 s reaches 30 min in 11 steps |
/// | `successes_per_step` | 5 | clean idle rounds at a length before trying longer (WeChat's Mars uses 5) |
/// | `failures_to_fall_back` | 2 | one lost packet is not the path's limit; two deaths at a length are |
/// | `margin_percent` | 5 | settle this far below the longest gap that worked |
/// | `reprobe_after` | 6 h | how long to stay settled before trying the failed length again |
/// | `timeout_factor` | 3 | the dead-peer timeout asked for, in intervals |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdaptiveConfig {
    /// The idle gap to start from, knowing nothing of the path.
    pub start: Duration,
    /// The interval while the application says it is active.
    pub active: Duration,
    /// The longest idle gap ever tried.
    pub max: Duration,
    /// How much longer each step up is, in percent.
    pub step_percent: u16,
    /// Clean idle rounds at a length before stepping up.
    pub successes_per_step: u8,
    /// Deaths at a length before it counts as too long.
    pub failures_to_fall_back: u8,
    /// How far below the longest working gap to settle, in percent.
    pub margin_percent: u8,
    /// Settled this long, try the failed length again.
    pub reprobe_after: Duration,
    /// The dead-peer timeout asked for, as a multiple of the interval (≥ 2).
    pub timeout_factor: u8,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            start: Duration::from_secs(25),
            active: Duration::from_secs(10),
            max: Duration::from_secs(30 * 60),
            step_percent: 50,
            successes_per_step: 5,
            failures_to_fall_back: 2,
            margin_percent: 5,
            reprobe_after: Duration::from_secs(6 * 3600),
            timeout_factor: 3,
        }
    }
}

impl AdaptiveConfig {
    /// Whether the values fit together (checked by `Config::validate`).
    pub(crate) fn is_valid(&self) -> bool {
        let ten_ms = Duration::from_millis(10);
        self.start >= ten_ms
            && self.active >= ten_ms
            && self.max >= self.start
            && self.step_percent >= 1
            && self.successes_per_step >= 1
            && self.failures_to_fall_back >= 1
            && self.margin_percent < 50
            && self.timeout_factor >= 2
    }
}

/// What an adaptive client learned about a path: keep it per network
/// (Wi-Fi SSID, carrier, interface) and give it back on the next
/// connection over that network: 17 bytes with [`Learned::to_bytes`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// The longest idle gap that worked, in milliseconds (0: none yet).
    pub good_ms: u32,
    /// The shortest idle gap that failed twice, in milliseconds (0: none).
    pub bad_ms: u32,
    /// Whether the search had settled.
    pub settled: bool,
    /// The gap being tried (ms).
    pub target_ms: u32,
    /// Deaths at the gap being tried, not yet enough to call it too long.
    pub failures: u8,
    /// The shortest gap among those deaths (ms).
    pub failed_ms: u32,
}

impl Learned {
    /// The value as bytes, to store.
    pub fn to_bytes(&self) -> [u8; 17] {
        let mut out = [0; 17];
        out[..4].copy_from_slice(&self.good_ms.to_be_bytes());
        out[4..8].copy_from_slice(&self.bad_ms.to_be_bytes());
        out[8] = u8::from(self.settled) | (self.failures.min(127) << 1);
        out[9..13].copy_from_slice(&self.target_ms.to_be_bytes());
        out[13..17].copy_from_slice(&self.failed_ms.to_be_bytes());
        out
    }

    /// The value stored with [`Learned::to_bytes`].
    pub fn from_bytes(bytes: [u8; 17]) -> Learned {
        let u = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        Learned {
            good_ms: u(0),
            bad_ms: u(4),
            settled: bytes[8] & 1 == 1,
            failures: bytes[8] >> 1,
            target_ms: u(9),
            failed_ms: u(13),
        }
    }
}

fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn dur(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

/// The adaptive policy's state; kept in a session whose config asks for it.
#[derive(Clone, Debug)]
pub struct Adaptive {
    config: AdaptiveConfig,
    /// The longest gap that worked, and the shortest that failed (ms).
    good: u32,
    bad: u32,
    /// The gap being tried now (ms).
    target: u32,
    clean: u8,
    failures: u8,
    /// The shortest failing gap among the failures counted at this target.
    failed_gap: u32,
    settled_since: Option<Instant>,
    /// Trying the failed length again after a long settled stretch.
    reprobing: bool,
    active: bool,
    /// The longest gap the server's clamp allows (ms; 0: no clamp met).
    ceiling: u32,
}

impl Adaptive {
    /// The search stops once the shortest failing gap is within this share
    /// of the longest working one.
    pub const PRECISION_PERCENT: u32 = 8;

    /// A policy knowing `learned` of the path (or nothing: `Learned::default()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use pulse_proto::{Adaptive, AdaptiveConfig, Instant, Learned};
    ///
    /// let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
    /// assert_eq!(policy.target_gap(), Duration::from_secs(25));
    /// for _ in 0..5 {
    ///     policy.on_idle_round(Duration::from_secs(24), Instant::ZERO);
    /// }
    /// // A step up: half again the longest gap that worked.
    /// assert_eq!(policy.target_gap(), Duration::from_secs(36));
    /// ```
    pub fn new(config: AdaptiveConfig, learned: Learned, now: Instant) -> Adaptive {
        let mut policy = Adaptive {
            config,
            good: learned.good_ms,
            bad: learned.bad_ms,
            target: ms(config.start),
            clean: 0,
            failures: 0,
            failed_gap: u32::MAX,
            settled_since: None,
            reprobing: false,
            active: false,
            ceiling: 0,
        };
        // Resume at the longest gap known to work, or below a known failure.
        policy.target = match (policy.good, policy.bad) {
            (0, _) => policy.next_target(),
            (good, _) => good.min(ms(config.max)),
        };
        if learned.settled && policy.is_narrow() {
            policy.settle(now);
        } else if learned.settled && learned.target_ms > policy.good {
            // Settled at a server's clamp, which the next server may not
            // have: try again the length the clamp stopped.
            policy.target = learned.target_ms.min(ms(config.max));
        } else if learned.failures > 0 && learned.target_ms != 0 {
            // A death at the length being tried: try it again.
            policy.target = learned.target_ms.min(ms(config.max));
            policy.failures = learned.failures;
            policy.failed_gap = if learned.failed_ms == 0 {
                u32::MAX
            } else {
                learned.failed_ms
            };
        }
        policy
    }

    /// The idle gap the policy wants now: the session's heartbeat spacing
    /// never exceeds it.
    pub fn target_gap(&self) -> Duration {
        if self.active {
            self.config.active
        } else if self.ceiling != 0 {
            dur(self.target.min(self.ceiling))
        } else {
            dur(self.target)
        }
    }

    /// The server's clamp allows no idle gap longer than `ceiling` (its
    /// maximum interval, at the widest jitter), or, with `None`, no clamp
    /// is known. Rounds at the ceiling teach nothing beyond it: once
    /// [`AdaptiveConfig::successes_per_step`] of them are clean with the
    /// target at or past it, the policy settles there.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use pulse_proto::{Adaptive, AdaptiveConfig, Instant, Learned};
    ///
    /// let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
    /// policy.set_ceiling(Some(Duration::from_secs(33)));
    /// for _ in 0..10 {
    ///     let gap = policy.target_gap();
    ///     policy.on_idle_round(gap, Instant::ZERO);
    /// }
    /// assert!(policy.is_settled());
    /// assert_eq!(policy.target_gap(), Duration::from_secs(33));
    /// ```
    pub fn set_ceiling(&mut self, ceiling: Option<Duration>) {
        self.ceiling = ceiling.map_or(0, ms);
    }

    /// Whether the gap the policy wants is the server's ceiling (or past it).
    pub fn at_ceiling(&self) -> bool {
        self.ceiling != 0 && self.target >= self.ceiling && !self.active
    }

    /// What was learned so far.
    pub fn learned(&self) -> Learned {
        Learned {
            good_ms: self.good,
            bad_ms: self.bad,
            settled: self.settled_since.is_some(),
            target_ms: self.target,
            failures: self.failures,
            failed_ms: if self.failed_gap == u32::MAX {
                0
            } else {
                self.failed_gap
            },
        }
    }

    /// Whether the search has settled.
    pub fn is_settled(&self) -> bool {
        self.settled_since.is_some() && !self.reprobing
    }

    /// The application is active (foreground) or not: while active the
    /// interval is [`AdaptiveConfig::active`], and nothing is learned.
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    /// Whether the application said it is active ([`Adaptive::set_active`]).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The timeout factor to ask for.
    pub fn timeout_factor(&self) -> u8 {
        self.config.timeout_factor
    }

    /// A PING sent after `gap` of silence was answered: the path kept the
    /// connection through that gap.
    pub fn on_idle_round(&mut self, gap: Duration, now: Instant) {
        if self.active {
            return;
        }
        let gap = ms(gap);
        self.good = self.good.max(gap);
        self.failures = 0;
        self.failed_gap = u32::MAX;
        if self.bad != 0 && self.good >= self.bad {
            // The path now keeps what once failed: it changed. Search anew.
            self.bad = 0;
        }
        self.clean = self.clean.saturating_add(1);
        if self.clean < self.config.successes_per_step {
            return;
        }
        self.clean = 0;
        if self.reprobing {
            self.reprobing = false;
            if self.bad != 0 {
                // No gap as long as the failed one was tried: inconclusive.
                self.settle(now);
                return;
            }
            // The failed length works now: the path changed.
            self.settled_since = None;
        }
        match self.settled_since {
            // A failed length past the server's ceiling cannot be tried.
            Some(since)
                if now - since >= self.config.reprobe_after
                    && self.bad != 0
                    && (self.ceiling == 0 || self.bad <= self.ceiling) =>
            {
                self.reprobing = true;
                self.target = self.bad;
            }
            Some(_) => {}
            None if self.is_narrow() || (self.bad == 0 && self.target >= ms(self.config.max)) => self.settle(now),
            // Clean at the server's ceiling: as long as this server allows.
            None if self.at_ceiling() => {
                self.settled_since = Some(now);
                self.reprobing = false;
            }
            // Up, never down: rounds whose quiets were short (the peer's
            // traffic kept arriving) proved only those quiets, not that the
            // target is too long.
            None => self.target = self.target.max(self.next_target()),
        }
    }

    /// The connection died after a PING sent after `gap` of silence went
    /// unanswered: perhaps the path forgot it.
    pub fn on_idle_death(&mut self, gap: Duration, now: Instant) {
        if self.active {
            return;
        }
        let gap = ms(gap);
        self.clean = 0;
        self.failures = self.failures.saturating_add(1);
        self.failed_gap = self.failed_gap.min(gap);
        if self.failures < self.config.failures_to_fall_back && !self.reprobing {
            return;
        }
        self.failures = 0;
        self.bad = if self.bad == 0 {
            self.failed_gap
        } else {
            self.bad.min(self.failed_gap)
        };
        self.failed_gap = u32::MAX;
        if self.good >= self.bad {
            // Even the longest that worked failed since: it was luck, or the
            // path shrank. Forget it and start below what failed.
            self.good = 0;
        }
        if self.reprobing && self.good != 0 {
            self.reprobing = false;
            self.settle(now);
            return;
        }
        // Nothing known to work any more: search again, from below the
        // failure (settling on nothing would ping as often as allowed).
        self.reprobing = false;
        self.settled_since = None;
        self.target = self.next_target();
        if self.is_narrow() {
            self.settle(now);
        }
    }

    /// Whether the longest working gap and the shortest failing one are
    /// close enough to stop searching (or the maximum works).
    fn is_narrow(&self) -> bool {
        let max = ms(self.config.max);
        if self.bad == 0 {
            return self.good >= max;
        }
        self.good > 0
            && u64::from(self.bad - self.good.min(self.bad)) * 100
                <= u64::from(self.bad) * u64::from(Self::PRECISION_PERCENT)
    }

    fn settle(&mut self, now: Instant) {
        // With no failure known, the target itself ran clean (its rounds'
        // quiets may have been short: the peer's traffic kept arriving).
        let worked = if self.bad == 0 {
            self.good.max(self.target)
        } else {
            self.good
        };
        let below = u64::from(worked) * u64::from(100 - u32::from(self.config.margin_percent)) / 100;
        self.target = (below as u32)
            .max(ms(Duration::from_millis(10)))
            .min(ms(self.config.max));
        self.settled_since = Some(now);
        self.reprobing = false;
    }

    /// The next gap to try: step up from the longest that worked, or
    /// bisect toward the shortest that failed.
    fn next_target(&self) -> u32 {
        let (max, start) = (ms(self.config.max), ms(self.config.start));
        let next = match (self.good, self.bad) {
            (0, 0) => start,
            (good, 0) => {
                (u64::from(good) * (100 + u64::from(self.config.step_percent)) / 100).min(u64::from(max)) as u32
            }
            // Only a failure known: well below it.
            (0, bad) => (bad / 2).min(start),
            (good, bad) => good + bad.saturating_sub(good) / 2,
        };
        next.clamp(10, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u32 = 1000;

    /// Runs the policy against a path that forgets idle connections after
    /// `timeout_ms`: each round at the target gap works if the gap is under
    /// it, else the connection dies.
    fn learn(timeout_ms: u32, rounds: usize) -> Adaptive {
        let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
        let mut now = Instant::ZERO;
        for _ in 0..rounds {
            let gap = policy.target_gap();
            now += gap;
            if ms(gap) < timeout_ms {
                policy.on_idle_round(gap, now);
            } else {
                policy.on_idle_death(gap, now);
            }
        }
        policy
    }

    #[test]
    fn it_settles_within_fifteen_percent_below_the_paths_timeout() {
        for timeout in [30 * S, 45 * S, 60 * S, 120 * S, 300 * S, 600 * S, 1_200 * S, 1_799 * S] {
            let policy = learn(timeout, 400);
            assert!(policy.is_settled(), "{timeout} ms: not settled: {policy:?}");
            let gap = ms(policy.target_gap());
            assert!(gap < timeout, "{timeout} ms: settled above: {gap}");
            assert!(gap * 100 >= timeout * 85, "{timeout} ms: settled at {gap}");
        }
    }

    #[test]
    fn a_path_that_keeps_everything_settles_at_the_maximum() {
        let policy = learn(u32::MAX, 200);
        assert!(policy.is_settled());
        assert!(policy.target_gap() >= Duration::from_secs(30 * 60) * 95 / 100);
    }

    #[test]
    fn one_death_is_not_the_paths_limit() {
        let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
        let target = policy.target_gap();
        policy.on_idle_death(target, Instant::ZERO);
        assert_eq!(policy.target_gap(), target, "one failure: the same length again");
        policy.on_idle_death(target, Instant::ZERO);
        assert!(policy.target_gap() < target, "two: too long");
    }

    #[test]
    fn the_learned_value_survives_a_round_trip_and_resumes_the_search() {
        let policy = learn(300 * S, 400);
        let stored = policy.learned().to_bytes();
        let again = Adaptive::new(AdaptiveConfig::default(), Learned::from_bytes(stored), Instant::ZERO);
        assert!(again.is_settled());
        assert_eq!(again.target_gap(), policy.target_gap());
    }

    #[test]
    fn after_settling_it_probes_the_failed_length_again_and_finds_a_path_that_changed() {
        let mut policy = learn(120 * S, 400);
        assert!(policy.is_settled());
        let settled = policy.target_gap();
        // Long after it settled, the path keeps everything: the re-probe
        // (after six settled hours) finds it.
        let mut now = Instant::ZERO + Duration::from_secs(1_000 * 3600);
        for _ in 0..200 {
            let gap = policy.target_gap();
            now += gap;
            policy.on_idle_round(gap, now);
        }
        assert!(policy.target_gap() > settled * 2, "{:?}", policy.target_gap());
    }

    #[test]
    fn a_reprobe_that_dies_below_the_longest_gap_that_worked_searches_again_rather_than_settle_on_nothing() {
        let mut policy = learn(120 * S, 400);
        let mut now = Instant::ZERO + Duration::from_secs(1_000 * 3600);
        while !policy.reprobing {
            let gap = policy.target_gap();
            now += gap;
            policy.on_idle_round(gap, now);
        }
        // The path shrank: the re-probe's connection dies after a short gap.
        policy.on_idle_death(Duration::from_secs(20), now);
        assert!(!policy.is_settled(), "{policy:?}");
        assert!(policy.target_gap() >= Duration::from_secs(10), "{policy:?}");
    }

    #[test]
    fn at_the_servers_ceiling_it_settles_there_and_a_stored_value_tries_past_it_again() {
        let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
        let ceiling = Duration::from_secs(66);
        policy.set_ceiling(Some(ceiling));
        for _ in 0..40 {
            let gap = policy.target_gap();
            assert!(gap <= ceiling);
            policy.on_idle_round(gap, Instant::ZERO);
        }
        assert!(policy.is_settled() && policy.at_ceiling(), "{policy:?}");
        assert_eq!(policy.target_gap(), ceiling);
        let stored = Learned::from_bytes(policy.learned().to_bytes());
        let next = Adaptive::new(AdaptiveConfig::default(), stored, Instant::ZERO);
        assert!(!next.is_settled());
        assert!(next.target_gap() > ceiling, "{next:?}");
    }

    #[test]
    fn while_active_it_uses_the_active_interval_and_learns_nothing() {
        let mut policy = learn(300 * S, 400);
        let learned = policy.learned();
        policy.set_active(true);
        assert_eq!(policy.target_gap(), Duration::from_secs(10));
        policy.on_idle_death(Duration::from_secs(10), Instant::ZERO);
        policy.on_idle_death(Duration::from_secs(10), Instant::ZERO);
        assert_eq!(policy.learned(), learned);
        policy.set_active(false);
        assert!(policy.target_gap() > Duration::from_secs(200));
    }
}
