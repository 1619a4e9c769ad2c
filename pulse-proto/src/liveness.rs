//! When to ping, when to suspect, when to declare the peer dead.
//!
//! Everything here is derived from a few instants, so a deadline can never
//! be stale: receiving a frame only moves `last_recv` later, which only
//! moves every deadline later (the driver's timer contract).

use core::time::Duration;

use crate::time::Instant;

/// The probe timings of the moment, from the RTT estimate and the policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProbeTiming {
    /// How long a PING may go unanswered before suspicion.
    pub(crate) timeout: Duration,
    /// Spacing between probes while suspect: the timeout, but never closer
    /// than the ping policy allows.
    pub(crate) spacing: Duration,
}

/// What is due at a given moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet.
    Nothing,
    /// A PING: the schedule's, or a probe while suspect.
    Ping,
    /// Our PING went unanswered for the probe timeout.
    Suspect,
    /// The dead-peer timeout passed, but our own timer was late: give the
    /// peer one probe round before any verdict.
    Grace,
    /// Nothing heard for the dead-peer timeout: the peer is dead.
    Dead,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Liveness {
    last_recv: Instant,
    last_ping: Instant,
    grace_until: Instant,
    /// Nanoseconds; a `Duration` would take twice the room in every session.
    spacing: u64,
    dead_timeout: u64,
    suspect: bool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Liveness {
    pub(crate) fn new(now: Instant, first_spacing: Duration, dead_timeout: Duration) -> Self {
        Liveness {
            last_recv: now,
            last_ping: Instant::ZERO,
            grace_until: Instant::ZERO,
            spacing: nanos(first_spacing),
            dead_timeout: nanos(dead_timeout),
            suspect: false,
        }
    }

    /// Whether we pinged after the last thing we heard.
    fn awaiting(&self) -> bool {
        self.last_ping > self.last_recv
    }

    pub(crate) fn is_suspect(&self) -> bool {
        self.suspect
    }

    pub(crate) fn last_ping(&self) -> Instant {
        self.last_ping
    }

    fn ping_at(&self, probe: ProbeTiming) -> Instant {
        match (self.awaiting(), self.suspect) {
            (false, _) => self.last_recv + Duration::from_nanos(self.spacing),
            (true, false) => self.last_ping + probe.timeout,
            (true, true) => self.last_ping + probe.spacing,
        }
    }

    pub(crate) fn dead_at(&self) -> Instant {
        (self.last_recv + Duration::from_nanos(self.dead_timeout)).max(self.grace_until)
    }

    /// The earliest instant at which something is due.
    pub(crate) fn deadline(&self, probe: ProbeTiming) -> Instant {
        self.ping_at(probe).min(self.dead_at())
    }

    /// What is due at `now`. `stalled`: the caller's timer fired late enough
    /// that our own process, not the peer, may explain the silence.
    pub(crate) fn due(&self, now: Instant, probe: ProbeTiming, stalled: bool) -> Due {
        if now >= self.dead_at() {
            return if stalled { Due::Grace } else { Due::Dead };
        }
        if now < self.ping_at(probe) {
            Due::Nothing
        } else if self.awaiting() && !self.suspect {
            Due::Suspect
        } else {
            Due::Ping
        }
    }

    /// Any frame from the peer is proof of life. Returns how long the peer
    /// had been silent if this ends a suspicion.
    pub(crate) fn on_receive(&mut self, now: Instant) -> Option<Duration> {
        let silent_for = now - self.last_recv;
        self.last_recv = self.last_recv.max(now);
        self.grace_until = Instant::ZERO;
        core::mem::take(&mut self.suspect).then_some(silent_for)
    }

    /// A PING left (or is about to). `next_spacing`, when given, replaces the
    /// spacing for the schedule's next round; probes keep it.
    pub(crate) fn on_ping(&mut self, now: Instant, next_spacing: Option<Duration>) {
        self.last_ping = now;
        if let Some(spacing) = next_spacing {
            self.spacing = nanos(spacing);
        }
    }

    pub(crate) fn set_suspect(&mut self) {
        self.suspect = true;
    }

    pub(crate) fn grant_grace(&mut self, until: Instant) {
        self.grace_until = until;
        self.suspect = true;
    }

    pub(crate) fn silent_for(&self, now: Instant) -> Duration {
        now - self.last_recv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROBE: ProbeTiming = ProbeTiming {
        timeout: Duration::from_millis(300),
        spacing: Duration::from_millis(500),
    };

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn an_unanswered_ping_leads_to_suspicion_probes_and_death() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1), Duration::from_secs(3));
        assert_eq!(l.deadline(PROBE), at(1000));
        assert_eq!(l.due(at(999), PROBE, false), Due::Nothing);
        assert_eq!(l.due(at(1000), PROBE, false), Due::Ping);
        l.on_ping(at(1000), Some(Duration::from_secs(1)));
        assert_eq!(l.deadline(PROBE), at(1300));
        assert_eq!(l.due(at(1300), PROBE, false), Due::Suspect);
        l.set_suspect();
        assert_eq!(l.deadline(PROBE), at(1500));
        l.on_ping(at(1500), None);
        assert_eq!(l.deadline(PROBE), at(2000));
        assert_eq!(l.due(at(3000), PROBE, false), Due::Dead);
        assert_eq!(l.due(at(3000), PROBE, true), Due::Grace);
    }

    #[test]
    fn receiving_ends_suspicion_and_only_moves_deadlines_later() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1), Duration::from_secs(3));
        l.on_ping(at(1000), Some(Duration::from_secs(1)));
        l.set_suspect();
        let before = l.deadline(PROBE);
        assert_eq!(l.on_receive(at(1400)), Some(Duration::from_millis(1400)));
        assert!(l.deadline(PROBE) >= before);
        assert_eq!(l.on_receive(at(1500)), None);
    }
}
