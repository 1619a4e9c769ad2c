//! When to ping, when to suspect, when to declare the peer dead.
//!
//! Every deadline is derived from a few stored instants, and receiving a
//! frame only moves `last_recv` later and clears suspicion — it never
//! lowers `probe_at` or `grace_until` — so input can only move the
//! deadline later: the driver's timer contract, for every configuration.

use core::time::Duration;

use crate::time::Instant;

/// The probe timings of the moment, from the RTT estimate and the policy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProbeTiming {
    /// How long a PING may go unanswered before suspicion (the PTO).
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
    /// The schedule's PING.
    Ping,
    /// Our PING went unanswered for the probe timeout.
    Suspect,
    /// A probe while suspect.
    Probe,
    /// Nothing heard for the dead-peer timeout: the peer is dead.
    Dead,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Liveness {
    last_recv: Instant,
    last_ping: Instant,
    /// While awaiting an answer (we pinged after the last frame heard): when
    /// the outstanding PING makes the peer suspect, or, once suspect, when
    /// the next probe is due. Otherwise the earliest the schedule's next
    /// PING may go: never before the previous PING could be judged.
    probe_at: Instant,
    /// No verdict before this: a probe round granted after our own stall.
    grace_until: Instant,
    /// Nanoseconds from `last_recv` to the schedule's next PING; a
    /// `Duration` would take twice the room in every session.
    spacing: u64,
    suspect: bool,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Liveness {
    pub(crate) fn new(now: Instant, first_spacing: Duration) -> Self {
        Liveness {
            last_recv: now,
            last_ping: Instant::ZERO,
            probe_at: Instant::ZERO,
            grace_until: Instant::ZERO,
            spacing: nanos(first_spacing),
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

    /// When the next PING is due. `last_sent`, when given, is when we last
    /// sent anything: the schedule then also counts from it, for a NAT that
    /// only our own packets refresh (it would forget a connection we only
    /// receive on).
    fn ping_at(&self, last_sent: Option<Instant>) -> Instant {
        if self.awaiting() {
            self.probe_at
        } else {
            let from = last_sent.map_or(self.last_recv, |sent| sent.min(self.last_recv));
            (from + Duration::from_nanos(self.spacing)).max(self.probe_at)
        }
    }

    /// When the peer is dead: the dead-peer timeout after the last frame
    /// heard, or the end of a grace we granted, whichever is later.
    pub(crate) fn dead_at(&self, dead_timeout: Duration) -> Instant {
        (self.last_recv + dead_timeout).max(self.grace_until)
    }

    /// The earliest instant at which something is due.
    pub(crate) fn deadline(&self, dead_timeout: Duration, last_sent: Option<Instant>) -> Instant {
        self.ping_at(last_sent).min(self.dead_at(dead_timeout))
    }

    /// What is due at `now`.
    pub(crate) fn due(&self, now: Instant, dead_timeout: Duration, last_sent: Option<Instant>) -> Due {
        if now >= self.dead_at(dead_timeout) {
            Due::Dead
        } else if now < self.ping_at(last_sent) {
            Due::Nothing
        } else if !self.awaiting() {
            Due::Ping
        } else if self.suspect {
            Due::Probe
        } else {
            Due::Suspect
        }
    }

    /// Any frame from the peer is proof of life. Returns how long the peer
    /// had been silent if this ends a suspicion.
    pub(crate) fn on_receive(&mut self, now: Instant) -> Option<Duration> {
        let silent_for = now - self.last_recv;
        self.last_recv = self.last_recv.max(now);
        core::mem::take(&mut self.suspect).then_some(silent_for)
    }

    /// The schedule's PING left at `now`; the next comes `next_spacing`
    /// after the next frame heard.
    pub(crate) fn on_scheduled_ping(&mut self, now: Instant, probe: ProbeTiming, next_spacing: Duration) {
        self.last_ping = now;
        self.probe_at = now + probe.timeout;
        self.spacing = nanos(next_spacing);
    }

    /// New timings: the schedule's next PING comes `spacing` after the last
    /// frame heard (a timer's call, so it may move the deadline earlier).
    pub(crate) fn respace(&mut self, spacing: Duration) {
        self.spacing = nanos(spacing);
    }

    /// The schedule's next PING no later than `max` after the last frame
    /// heard — but, after input, never before `not_before` (the deadline
    /// that stood before the input: the timer contract).
    pub(crate) fn cap_spacing(&mut self, max: Duration, not_before: Instant, last_sent: Option<Instant>) {
        let from = last_sent.map_or(self.last_recv, |sent| sent.min(self.last_recv));
        let floor = nanos(not_before.saturating_since(from));
        self.spacing = self.spacing.min(nanos(max)).max(floor.min(self.spacing));
    }

    /// A probe left at `now` (while suspect, or after our own stall).
    pub(crate) fn on_probe(&mut self, now: Instant, probe: ProbeTiming) {
        self.last_ping = now;
        self.probe_at = now + if self.suspect { probe.spacing } else { probe.timeout };
    }

    /// A probe left at `now` after input: as [`Liveness::on_probe`], but
    /// judged no earlier than `not_before` (the deadline that stood before
    /// the input: the timer contract).
    pub(crate) fn on_probe_after_input(&mut self, now: Instant, probe: ProbeTiming, not_before: Instant) {
        self.on_probe(now, probe);
        self.probe_at = self.probe_at.max(not_before);
    }

    /// The outstanding PING went unanswered: the first probe follows at
    /// `probe.spacing` after it.
    pub(crate) fn set_suspect(&mut self, probe: ProbeTiming) {
        self.suspect = true;
        self.probe_at = self.last_ping + probe.spacing;
    }

    /// No verdict before `until`: our own stall may explain the silence.
    pub(crate) fn grant_grace(&mut self, until: Instant) {
        self.grace_until = self.grace_until.max(until);
    }

    /// No verdict at all until [`Liveness::end_hold`]: we are not reading,
    /// so the silence is ours.
    pub(crate) fn hold(&mut self) {
        self.grace_until = Instant::from_nanos(u64::MAX);
    }

    pub(crate) fn is_held(&self) -> bool {
        self.grace_until == Instant::from_nanos(u64::MAX)
    }

    /// Reading again: no verdict before `until` (a probe round from now).
    pub(crate) fn end_hold(&mut self, until: Instant) {
        self.grace_until = until;
    }

    pub(crate) fn silent_for(&self, now: Instant) -> Duration {
        now - self.last_recv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(3);

    const PROBE: ProbeTiming = ProbeTiming {
        timeout: Duration::from_millis(300),
        spacing: Duration::from_millis(500),
    };

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn an_unanswered_ping_leads_to_suspicion_probes_and_death() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1));
        assert_eq!(l.deadline(T, None), at(1000));
        assert_eq!(l.due(at(999), T, None), Due::Nothing);
        assert_eq!(l.due(at(1000), T, None), Due::Ping);
        l.on_scheduled_ping(at(1000), PROBE, Duration::from_secs(1));
        assert_eq!(l.deadline(T, None), at(1300));
        assert_eq!(l.due(at(1300), T, None), Due::Suspect);
        l.set_suspect(PROBE);
        assert_eq!(l.deadline(T, None), at(1500));
        assert_eq!(l.due(at(1500), T, None), Due::Probe);
        l.on_probe(at(1500), PROBE);
        assert_eq!(l.deadline(T, None), at(2000));
        assert_eq!(l.due(at(3000), T, None), Due::Dead);
    }

    #[test]
    fn a_probe_after_input_is_judged_no_earlier_than_the_deadline_that_stood() {
        let mut l = Liveness::new(at(0), Duration::from_secs(10));
        l.on_receive(at(4_000));
        let before = l.deadline(T, None);
        assert_eq!(before, at(7_000));
        l.on_probe_after_input(at(5_000), PROBE, before);
        assert_eq!(l.last_ping(), at(5_000));
        assert_eq!(
            l.deadline(T, None),
            before,
            "judged at the deadline armed, not at 5.3 s"
        );
        let mut l = Liveness::new(at(0), Duration::from_secs(10));
        l.on_receive(at(4_000));
        l.on_probe_after_input(at(5_000), PROBE, at(1_000));
        assert_eq!(l.deadline(T, None), at(5_300), "a floor already past changes nothing");
    }

    #[test]
    fn receiving_ends_suspicion_and_only_moves_deadlines_later() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1));
        l.on_scheduled_ping(at(1000), PROBE, Duration::from_secs(1));
        l.set_suspect(PROBE);
        let before = l.deadline(T, None);
        assert_eq!(l.on_receive(at(1400)), Some(Duration::from_millis(1400)));
        assert!(l.deadline(T, None) >= before);
        assert_eq!(l.on_receive(at(1500)), None);
    }

    #[test]
    fn an_answer_quicker_than_the_probe_timeout_does_not_pull_the_next_ping_earlier() {
        // 100 ms spacing, 300 ms probe timeout: the PONG comes at +1 ms.
        let mut l = Liveness::new(at(0), Duration::from_millis(100));
        l.on_scheduled_ping(at(100), PROBE, Duration::from_millis(100));
        let before = l.deadline(T, None);
        assert_eq!(before, at(400));
        l.on_receive(at(101));
        assert_eq!(
            l.deadline(T, None),
            at(400),
            "the next PING waits for the last to be judged"
        );
    }

    #[test]
    fn suspicion_the_last_ping_and_the_silence_are_what_they_say() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1));
        assert!(!l.is_suspect());
        l.on_scheduled_ping(at(1000), PROBE, Duration::from_secs(1));
        assert_eq!(l.last_ping(), at(1000));
        l.set_suspect(PROBE);
        assert!(l.is_suspect());
        assert_eq!(l.silent_for(at(1700)), Duration::from_millis(1700));
        l.on_probe(at(1500), PROBE);
        assert_eq!(l.last_ping(), at(1500));
        l.on_receive(at(1600));
        assert!(!l.is_suspect());
        assert_eq!(l.silent_for(at(1700)), Duration::from_millis(100));
    }

    #[test]
    fn new_timings_move_the_schedule() {
        let mut l = Liveness::new(at(0), Duration::from_secs(10));
        assert_eq!(l.deadline(T, None), at(3000));
        l.respace(Duration::from_millis(500));
        assert_eq!(l.deadline(T, None), at(500));
    }

    #[test]
    fn a_hold_suspends_every_verdict_until_it_ends() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1));
        assert!(!l.is_held());
        l.hold();
        assert!(l.is_held());
        assert_eq!(l.due(at(3_600_000), T, None), Due::Ping, "no verdict while held");
        l.end_hold(at(3_600_500));
        assert!(!l.is_held());
        assert_eq!(l.dead_at(T), at(3_600_500));
    }

    #[test]
    fn grace_holds_the_verdict_and_input_never_shortens_it() {
        let mut l = Liveness::new(at(0), Duration::from_secs(1));
        l.grant_grace(at(10_000));
        assert_eq!(l.due(at(5_000), T, None), Due::Ping);
        l.on_receive(at(5_000));
        assert_eq!(l.dead_at(T), at(10_000));
        assert_eq!(l.due(at(10_000), T, None), Due::Dead);
    }
}
