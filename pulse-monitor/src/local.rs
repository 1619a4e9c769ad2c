//! Local health, after memberlist's Lifeguard: the monitor watches itself.
//! When its own timers fire late, or results arrive in a burst, it was
//! stalled (paused, swapped, starved of CPU, its socket not read), and what
//! it measured during the stall says nothing about the targets. So it
//! gives no down verdict until fresh evidence comes in, and stretches its
//! intervals while the stalls go on.
//!
//! To find a stall it must be called often enough: it always keeps a
//! housekeeping deadline `stall_threshold` after the last time it was
//! handed, so a driver idle or busy elsewhere calls it at least that
//! often, and a gap of more than twice the threshold between two
//! timestamps is a stall of ours — even in a monitor of pulse peers
//! alone, which has no probe of its own to be late for. (While the local
//! score is up, only pulse peers' sessions are judged by the unstretched
//! gap; every other verdict waits only for a gap over the stretched
//! threshold.)

use alloc::collections::VecDeque;
use core::time::Duration;

use pulse_proto::Instant;

use crate::config::Config;
use crate::event::Event;
use crate::monitor::Monitor;
use crate::snapshot::Stats;

#[derive(Debug)]
pub(crate) struct Local {
    /// 0 is healthy; each stall adds one, up to `max_local_score`.
    pub(crate) score: u8,
    /// Evidence from before this instant cannot convict: a probe must have
    /// started after it, a silence must be measured from it.
    pub(crate) fresh_after: Instant,
    last_change: Instant,
    /// Deadlines before this were already found late.
    stall_mark: Instant,
    /// Grows by one at each stall, and at each gap in our calls over twice
    /// `stall_threshold` even if the stretched threshold finds it no
    /// stall: a pulse peer's session that last vouched for it in an older
    /// epoch crossed a stall of ours since.
    pub(crate) epoch: u32,
    /// When the latest stall or gap ended: what a pulse peer's session
    /// reports within a probe timeout after it may predate its effects.
    gap_end: Instant,
    burst_start: Instant,
    burst_count: u32,
    /// Expected results and announcements per second, from all targets.
    rate: f64,
}

impl Local {
    pub(crate) fn new(now: Instant) -> Local {
        Local {
            score: 0,
            fresh_after: Instant::ZERO,
            last_change: now,
            stall_mark: Instant::ZERO,
            epoch: 0,
            gap_end: Instant::ZERO,
            burst_start: now,
            burst_count: 0,
            rate: 0.0,
        }
    }

    pub(crate) fn add_rate(&mut self, interval: Duration) {
        self.rate += 1.0 / interval.as_secs_f64().max(1e-3);
    }

    pub(crate) fn remove_rate(&mut self, interval: Duration) {
        self.rate = (self.rate - 1.0 / interval.as_secs_f64().max(1e-3)).max(0.0);
    }

    /// We were stalled (by `late_by`, if known).
    pub(crate) fn stall(
        &mut self,
        now: Instant,
        late_by: Duration,
        events: &mut VecDeque<Event>,
        stats: &mut Stats,
        config: &Config,
    ) {
        self.fresh_after = now;
        self.stall_mark = now;
        self.gap(now);
        self.last_change = now;
        self.score = self.score.saturating_add(1).min(config.max_local_score);
        stats.stalls += 1;
        events.push_back(Event::LocalHealth {
            score: self.score,
            late_by,
        });
    }

    /// Our calls stopped for a while, up to `now`: pulse peers' sessions,
    /// which live in our process, stopped too.
    fn gap(&mut self, now: Instant) {
        self.epoch = self.epoch.wrapping_add(1);
        self.gap_end = now;
    }

    /// One result or announcement arrived: too many in one window means
    /// they were held up on our side.
    pub(crate) fn note_arrival(
        &mut self,
        now: Instant,
        events: &mut VecDeque<Event>,
        stats: &mut Stats,
        config: &Config,
    ) {
        if now >= self.burst_start + config.burst_window {
            self.burst_start = now;
            self.burst_count = 0;
        }
        self.burst_count += 1;
        let expected = self.rate * config.burst_window.as_secs_f64();
        let limit = (4.0 * expected).max(64.0) as u32;
        if self.burst_count == limit {
            stats.bursts += 1;
            self.stall(now, Duration::ZERO, events, stats, config);
        }
    }
}

impl Monitor {
    /// The housekeeping deadline: `stall_threshold` after the last call,
    /// while there is any target. A driver that keeps it hands the monitor
    /// a timestamp at least that often, so a longer gap is our own stall.
    pub(crate) fn housekeeping(&self) -> Option<Instant> {
        (!self.is_empty()).then(|| self.now + self.config.stall_threshold)
    }

    /// Whether `now` is in the wake of our latest stall: what arrives
    /// within a (stretched) probe timeout of its end may have been sent,
    /// or caused, during it — a peer that timed our session out while we
    /// were stopped, the frames that waited in our sockets.
    pub(crate) fn in_stall_wake(&self, now: Instant) -> bool {
        self.local.epoch > 0 && now <= self.local.gap_end + self.stretch(self.config.timeout)
    }

    /// Every entry point starts here: time never goes backwards, and a
    /// `now` far past a deadline that was due means we were stalled.
    pub(crate) fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.now);
        // A gap in our calls over twice the housekeeping period: a pulse
        // peer may have timed out our sessions, stopped with us, even when
        // the threshold, stretched below, takes the gap for no stall. Such
        // a session cannot convict its peer (`peer.rs`); no other verdict
        // waits for it.
        if !self.is_empty() && now > self.now + self.config.stall_threshold * 2 {
            self.local.gap(now);
        }
        if let Some(due) = self.poll_timeout() {
            // The threshold stretches with the score too: a loop that is
            // late at every turn is found stalled once per recovery period,
            // not at every call — which would deny every verdict forever.
            let threshold = self.stretch(self.config.stall_threshold);
            if due >= self.local.stall_mark && now > due + threshold {
                let late_by = now - due;
                self.local
                    .stall(now, late_by, &mut self.events, &mut self.stats, &self.config);
            }
        }
        let local = &mut self.local;
        if local.score > 0 && now >= local.last_change + self.config.local_recovery {
            let steps = (now - local.last_change).as_nanos() / self.config.local_recovery.as_nanos().max(1);
            local.score = local.score.saturating_sub(u8::try_from(steps).unwrap_or(u8::MAX));
            local.last_change = now;
            self.events.push_back(Event::LocalHealth {
                score: local.score,
                late_by: Duration::ZERO,
            });
        }
        self.now = now;
        now
    }
}
