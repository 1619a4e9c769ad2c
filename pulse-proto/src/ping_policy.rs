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
#[derive(Clone, Copy, Debug)]
pub(crate) struct PingGuard {
    min_spacing: Duration,
    max_strikes: u8,
    strikes: u8,
    last: Option<(u32, Instant)>,
}

impl PingGuard {
    pub(crate) fn new(min_spacing: Duration, max_strikes: u8) -> Self {
        PingGuard {
            min_spacing,
            max_strikes,
            strikes: 0,
            last: None,
        }
    }

    pub(crate) fn on_ping(&mut self, now: Instant, id: u32) -> PingVerdict {
        if let Some((last_id, last_at)) = self.last {
            if id <= last_id {
                return PingVerdict::Stale;
            }
            if now - last_at < self.min_spacing / 2 {
                self.strikes = self.strikes.saturating_add(1);
                if self.strikes > self.max_strikes {
                    return PingVerdict::TooMany { strikes: self.strikes };
                }
            } else {
                self.strikes = 0;
            }
        }
        self.last = Some((id, now));
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
        let mut guard = PingGuard::new(Duration::from_millis(500), 2);
        assert_eq!(guard.on_ping(at(0), 1), PingVerdict::Fresh);
        assert_eq!(guard.on_ping(at(10), 2), PingVerdict::Fresh);
        assert_eq!(guard.on_ping(at(20), 3), PingVerdict::Fresh);
        assert_eq!(guard.on_ping(at(30), 4), PingVerdict::TooMany { strikes: 3 });
    }

    #[test]
    fn pings_at_the_stated_spacing_never_strike_and_duplicates_are_stale() {
        let mut guard = PingGuard::new(Duration::from_millis(500), 0);
        for i in 0..100 {
            assert_eq!(guard.on_ping(at(500 * i), i as u32 + 1), PingVerdict::Fresh);
        }
        assert_eq!(guard.on_ping(at(50_001), 100), PingVerdict::Stale);
    }
}
