//! Guarding against a peer that pings faster than its policy allows,
//! without ever striking one that does not.
//!
//! A well-behaved peer sends PINGs at least `m` (the minimum spacing) apart,
//! but they need not *arrive* that way: our own stall, a TCP retransmission
//! or a peer probing us because we went quiet all deliver several at once.
//! So PINGs are judged as a rate with a burst allowance — the generic cell
//! rate algorithm: a theoretical arrival time `tat` advances by `m` per new
//! PING and never falls behind the present, and a PING is over the policy
//! only when `tat` runs more than the allowance ahead of the present. The
//! allowance, `2T + 2m` (`T` the dead-peer timeout), is more than any
//! well-behaved peer can bunch: it only pings while it hears nothing from
//! us, and gives up after `T` of that (`docs/PROTOCOL.md` §6.8 has the
//! argument). Idle time earns no credit beyond the allowance, so a flood is
//! still caught within a bound the spec states.

use core::time::Duration;

use crate::time::Instant;

/// What a received PING was, as far as the policy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PingVerdict {
    /// A new PING: answer it.
    Fresh,
    /// Not newer than the last new PING: a duplicate or reordered datagram
    /// (on a stream, a broken peer). Not answered, not counted.
    Stale,
    /// Past the strikes: close with "too many pings".
    TooMany {
        /// PINGs over the allowance when the session closed.
        strikes: u8,
    },
}

/// The policy stated in WELCOME, as the guard applies it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PingPolicy {
    /// The shortest spacing between PINGs (`m`).
    pub(crate) spacing: Duration,
    /// PINGs tolerated beyond the allowance.
    pub(crate) strikes: u8,
    /// The dead-peer timeout (`T`), which sizes the burst allowance.
    pub(crate) dead_timeout: Duration,
}

impl PingPolicy {
    /// How far ahead of the present PINGs may run: `2T + 2m`.
    pub(crate) fn allowance(&self) -> Duration {
        self.dead_timeout
            .saturating_mul(2)
            .saturating_add(self.spacing.saturating_mul(2))
    }
}

/// Whether PING id `id` is newer than `last`, in serial-number arithmetic
/// (RFC 1982), so ids may wrap. Id 0 is never newer than the start.
pub(crate) fn is_newer(id: u32, last: u32) -> bool {
    let ahead = id.wrapping_sub(last);
    ahead != 0 && ahead < 1 << 31
}

/// The id after `id`: one more, wrapping past `u32::MAX` to 1 (0 is never
/// sent).
pub(crate) fn next_id(id: u32) -> u32 {
    id.checked_add(1).unwrap_or(1)
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct PingGuard {
    /// The theoretical arrival time: when the next PING would be due had
    /// every PING so far come exactly `m` apart.
    tat: Instant,
    last_id: u32,
}

impl PingGuard {
    /// A guard whose count starts at `start` (when the session was
    /// established).
    pub(crate) fn new(start: Instant) -> Self {
        PingGuard { tat: start, last_id: 0 }
    }

    /// Judges a PING that arrived at `now`.
    pub(crate) fn on_ping(&mut self, now: Instant, id: u32, policy: PingPolicy) -> PingVerdict {
        if !is_newer(id, self.last_id) {
            return PingVerdict::Stale;
        }
        self.last_id = id;
        let m = policy.spacing.max(Duration::from_nanos(1));
        self.tat = self.tat.max(now) + m;
        let ahead = self.tat - now;
        let limit = policy.allowance().saturating_add(m);
        if ahead <= limit {
            return PingVerdict::Fresh;
        }
        // Whole PINGs over the allowance, rounded up.
        let over = (ahead - limit).as_nanos().div_ceil(m.as_nanos());
        let strikes = u8::try_from(over).unwrap_or(u8::MAX);
        if strikes > policy.strikes {
            PingVerdict::TooMany { strikes }
        } else {
            PingVerdict::Fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: PingPolicy = PingPolicy {
        spacing: Duration::from_millis(500),
        strikes: 2,
        dead_timeout: Duration::from_secs(3),
    };

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn a_flooder_is_stopped_once_past_its_allowance_and_strikes() {
        let mut guard = PingGuard::new(at(0));
        // Allowance 2T + 2m = 7 s: 15 PINGs at once conform, then 2 strikes.
        let verdicts: alloc::vec::Vec<_> = (1..=20).map(|id| guard.on_ping(at(1000), id, POLICY)).collect();
        assert!(verdicts[..17].iter().all(|v| *v == PingVerdict::Fresh), "{verdicts:?}");
        assert_eq!(verdicts[17], PingVerdict::TooMany { strikes: 3 });
    }

    #[test]
    fn pings_at_the_stated_spacing_never_strike_and_duplicates_are_stale() {
        let mut guard = PingGuard::new(at(0));
        let strict = PingPolicy { strikes: 0, ..POLICY };
        for i in 0..10_000u32 {
            assert_eq!(guard.on_ping(at(500 * u64::from(i)), i + 1, strict), PingVerdict::Fresh);
        }
        assert_eq!(guard.on_ping(at(5_000_001), 10_000, strict), PingVerdict::Stale);
        assert_eq!(guard.on_ping(at(5_000_002), 3, strict), PingVerdict::Stale);
    }

    #[test]
    fn a_burst_of_every_ping_sent_over_twice_the_timeout_is_forgiven() {
        // A peer probing every m for 2T, all read at once after our stall.
        let mut guard = PingGuard::new(at(0));
        let burst = (2 * 3_000 / 500 + 2) as u32;
        for id in 1..=burst {
            assert_eq!(guard.on_ping(at(60_000), id, POLICY), PingVerdict::Fresh, "PING {id}");
        }
        // And the allowance refills at the stated rate: one more PING each m.
        for (n, id) in (burst + 1..burst + 100).enumerate() {
            let now = at(60_000 + 500 * (n as u64 + 1));
            assert_eq!(guard.on_ping(now, id, POLICY), PingVerdict::Fresh);
        }
    }

    #[test]
    fn ten_times_the_rate_is_closed_within_the_stated_bound() {
        // (allowance + (strikes + 1) m) / (r − 1) at r = 10: (7 + 1.5) / 9 s.
        let bound_ms = (7_000 + 3 * 500) / 9 + 50;
        let mut guard = PingGuard::new(at(0));
        let mut id = 0;
        let closed_at = (0..2_000u64).map(|i| 10_000 + 50 * i).find(|&t| {
            id += 1;
            matches!(guard.on_ping(at(t), id, POLICY), PingVerdict::TooMany { .. })
        });
        let after = closed_at.expect("never closed") - 10_000;
        assert!(after <= bound_ms, "closed after {after} ms, bound {bound_ms} ms");
    }

    #[test]
    fn idle_time_earns_no_credit_beyond_the_allowance() {
        let mut guard = PingGuard::new(at(0));
        let mut id = 0;
        let mut fresh = 0;
        // An hour of silence, then a flood in one instant.
        while guard.on_ping(
            at(3_600_000),
            {
                id += 1;
                id
            },
            POLICY,
        ) == PingVerdict::Fresh
        {
            fresh += 1;
        }
        assert_eq!(fresh, 7_000 / 500 + 1 + 2);
    }

    #[test]
    fn ids_wrap_and_zero_is_never_new() {
        assert!(!is_newer(0, 0));
        assert!(is_newer(1, 0));
        assert!(is_newer(1, u32::MAX));
        assert!(!is_newer(u32::MAX, 1));
        assert_eq!(next_id(u32::MAX), 1);
        assert_eq!(next_id(41), 42);
        // Half the id space ahead is not newer: the window is strictly less.
        assert!(!is_newer(1 << 31, 0));
        assert!(is_newer((1 << 31) - 1, 0));
    }
}
