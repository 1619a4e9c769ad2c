//! Guarding against a peer that pings faster than its policy allows.

use core::time::Duration;

use crate::time::Instant;

/// What a received PING was, as far as the policy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PingVerdict {
    /// A new PING: answer it.
    Fresh,
    /// A duplicate or one overtaken by a newer PING (datagrams): no answer.
    Stale,
    /// Past the strikes: close with "too many pings".
    TooMany {
        /// Strikes collected.
        strikes: u8,
    },
}

/// Counts strikes against PINGs that arrive closer together than half the
/// stated minimum spacing. Half, because network jitter can squeeze two
/// well-spaced PINGs together on the way; an honest peer never sends closer
/// than the full spacing. A well-spaced PING forgives earlier strikes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PingGuard {
    last_at: Instant,
    last_id: u32,
    seen: bool,
    strikes: u8,
}

impl PingGuard {
    /// Judges a PING against the policy: `min_spacing`, `max_strikes`.
    pub(crate) fn on_ping(&mut self, now: Instant, id: u32, min_spacing: Duration, max_strikes: u8) -> PingVerdict {
        if self.seen {
            if id <= self.last_id {
                return PingVerdict::Stale;
            }
            if now - self.last_at < min_spacing / 2 {
                self.strikes = self.strikes.saturating_add(1);
                if self.strikes > max_strikes {
                    return PingVerdict::TooMany { strikes: self.strikes };
                }
            } else {
                self.strikes = 0;
            }
        }
        (self.last_at, self.last_id, self.seen) = (now, id, true);
        PingVerdict::Fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn a_flooder_is_stopped_after_its_strikes() {
        let mut guard = PingGuard::default();
        let mut ping = |ms, id| guard.on_ping(at(ms), id, Duration::from_millis(500), 2);
        assert_eq!(ping(0, 1), PingVerdict::Fresh);
        assert_eq!(ping(10, 2), PingVerdict::Fresh);
        assert_eq!(ping(20, 3), PingVerdict::Fresh);
        assert_eq!(ping(30, 4), PingVerdict::TooMany { strikes: 3 });
    }

    #[test]
    fn pings_at_the_stated_spacing_never_strike_and_duplicates_are_stale() {
        let mut guard = PingGuard::default();
        let mut ping = |ms, id| guard.on_ping(at(ms), id, Duration::from_millis(500), 0);
        for i in 0..100 {
            assert_eq!(ping(500 * i, i as u32 + 1), PingVerdict::Fresh);
        }
        assert_eq!(ping(50_001, 100), PingVerdict::Stale);
    }
}
