//! Every decision about one target: what its deadline is, what a result
//! or a heartbeat does to it, and when it changes health (a pulse peer's
//! session events are in `peer.rs`).

use core::time::Duration;

use pulse_proto::{Instant, Status};

use crate::accrual::Accrual;
use crate::announce::{Announcement, ExitStatus, Report};
use crate::event::{CheckResult, Event, Health, ProbeId, Reason, Transition};
use crate::monitor::{Command, Monitor};
use crate::target::{Kind, ANNOUNCED_ONCE, AWAIT_SESSION, EVICTED, IN_FLIGHT, NEVER, NO_SAMPLE, STOPPED, SUPPRESSED};

impl Monitor {
    /// The earliest moment anything about target `index` can change by
    /// time alone.
    fn next_deadline(&self, index: u32) -> Instant {
        let r = &self.records[index as usize];
        let mut next = NEVER;
        if r.has(IN_FLIGHT) {
            next = r.timer + self.config.timeout;
        } else if r.kind() != Kind::Vacant {
            // A target with nothing to probe keeps NEVER here.
            next = r.timer;
        }
        if r.kind() == Kind::Announced {
            let base = r.heard.max(self.local.fresh_after);
            let y = match r.health() {
                Health::Up => Some(self.tuned.suspect_y),
                Health::Unknown | Health::Suspect => {
                    let down_at = base + r.accrual.reach(self.tuned.down_y, r.interval(), &self.tuned.tuning);
                    // Past the down level with probes still confirming, the
                    // probes decide; the evict level is next.
                    if down_at > self.now {
                        Some(self.tuned.down_y)
                    } else {
                        self.tuned.evict_y
                    }
                }
                Health::Down if !r.has(EVICTED) => self.tuned.evict_y,
                Health::Down => None,
            };
            if let Some(y) = y {
                next = next.min(base + r.accrual.reach(y, r.interval(), &self.tuned.tuning));
            }
        }
        if r.has(SUPPRESSED) {
            if let Some(damping) = &self.config.damping {
                next = next.min(r.penalty_at + damping.time_to_reuse(r.penalty));
            }
        }
        next
    }

    /// Files target `index` at its exact next deadline.
    pub(crate) fn reschedule(&mut self, index: u32, now: Instant) {
        let mut next = self.next_deadline(index);
        if next == NEVER {
            self.schedule.remove(&mut self.records, index);
            return;
        }
        // Whatever was due has been handled; never file in the past, or the
        // timeout loop would spin.
        if next <= now {
            next = now + Duration::from_millis(1);
        }
        self.schedule.set(&mut self.records, index, next);
    }

    /// Files target `index` earlier if its deadline moved earlier; leaves
    /// it alone otherwise (a deadline that comes early is a no-op). This is
    /// what keeps a heartbeat O(1).
    fn reschedule_if_earlier(&mut self, index: u32, now: Instant) {
        let r = &self.records[index as usize];
        let next = self.next_deadline(index);
        if next < r.deadline || r.heap_pos == crate::schedule::UNSCHEDULED {
            self.reschedule(index, now);
        }
    }

    /// The suspicion level (φ) of an announcing target at `now`.
    pub(crate) fn level(&self, index: u32, now: Instant) -> f32 {
        let r = &self.records[index as usize];
        let base = r.heard.max(self.local.fresh_after);
        r.accrual.level(now - base, r.interval(), &self.tuned.tuning)
    }

    fn silence_reached(&self, index: u32, now: Instant, y: f32) -> bool {
        let r = &self.records[index as usize];
        let base = r.heard.max(self.local.fresh_after);
        now - base >= r.accrual.reach(y, r.interval(), &self.tuned.tuning)
    }

    /// A target's deadline came.
    pub(crate) fn on_deadline(&mut self, index: u32, now: Instant) {
        let i = index as usize;
        let footprint = self.footprint(index);
        if self.records[i].has(IN_FLIGHT) && now >= self.records[i].timer + self.config.timeout {
            let id = self.probe_id(index);
            self.commands.push_back(Command::Abort(id));
            self.stats.timeouts += 1;
            self.apply_result(index, now, CheckResult::TimedOut);
        }
        if self.records[i].kind() == Kind::Announced {
            self.judge_silence(index, now);
        }
        let r = &self.records[i];
        if r.has(AWAIT_SESSION) && r.timer <= now {
            self.await_session_ended(index, now);
        }
        let r = &self.records[i];
        if !r.has(IN_FLIGHT) && r.timer <= now && r.check != crate::target::NO_CHECK {
            self.start_probe(index, now);
        }
        self.reuse_if_due(index, now);
        self.settle(index, footprint, now);
        self.reschedule(index, now);
    }

    fn probe_id(&self, index: u32) -> ProbeId {
        ProbeId {
            target: self.id_of(index),
            seq: self.records[index as usize].probe_seq,
        }
    }

    fn start_probe(&mut self, index: u32, now: Instant) {
        let r = &mut self.records[index as usize];
        r.probe_seq = r.probe_seq.wrapping_add(1);
        r.set(IN_FLIGHT, true);
        r.timer = now;
        self.stats.probes += 1;
        let id = self.probe_id(index);
        self.commands.push_back(Command::Start(id));
    }

    /// The silence of an announcing target, against its levels.
    fn judge_silence(&mut self, index: u32, now: Instant) {
        let i = index as usize;
        let confirm = self.records[i].check != crate::target::NO_CHECK;
        let health = self.records[i].health();
        if health != Health::Down && self.silence_reached(index, now, self.tuned.down_y) {
            let level = self.level(index, now);
            if !confirm {
                self.transition(index, now, Health::Down, Reason::Suspicion { level });
            } else {
                self.confirm_down(index, now);
                self.probe_soon(index, now);
            }
        } else if health == Health::Up && self.silence_reached(index, now, self.tuned.suspect_y) {
            let level = self.level(index, now);
            self.transition(index, now, Health::Suspect, Reason::Suspicion { level });
            if confirm {
                self.records[i].fails = 0;
                self.probe_soon(index, now);
            }
        }
        if let Some(evict_y) = self.tuned.evict_y {
            let r = &self.records[i];
            if r.health() == Health::Down && !r.has(EVICTED) && self.silence_reached(index, now, evict_y) {
                self.records[i].set(EVICTED, true);
                let level = self.level(index, now);
                let target = self.id_of(index);
                self.events.push_back(Event::Evicted { target, level });
            }
        }
    }

    /// Down, if the probes confirm it: `fall` consecutive failures of
    /// probes started after our last stall.
    fn confirm_down(&mut self, index: u32, now: Instant) {
        let r = &self.records[index as usize];
        let fresh = r.timer >= self.local.fresh_after;
        if r.fails >= self.config.fall && fresh && self.silence_reached(index, now, self.tuned.down_y) {
            let reason = Reason::Confirmed {
                level: self.level(index, now),
                failed: r.fails,
                last: r.last_result().unwrap_or(CheckResult::TimedOut),
            };
            self.transition(index, now, Health::Down, reason);
        }
    }

    pub(crate) fn probe_soon(&mut self, index: u32, now: Instant) {
        let r = &mut self.records[index as usize];
        if !r.has(IN_FLIGHT) && r.timer == NEVER {
            r.timer = now;
        }
    }

    /// The result of target `index`'s running probe.
    pub(crate) fn record_result(&mut self, index: u32, now: Instant, result: CheckResult) {
        let footprint = self.footprint(index);
        self.apply_result(index, now, result);
        self.settle(index, footprint, now);
        self.reschedule(index, now);
    }

    /// What a result does to the target, leaving its pool and its deadline
    /// to the caller.
    fn apply_result(&mut self, index: u32, now: Instant, result: CheckResult) {
        let i = index as usize;
        let r = &mut self.records[i];
        let started = r.timer;
        r.set(IN_FLIGHT, false);
        r.set_last_result(result);
        let fresh = started >= self.local.fresh_after;
        if result.passed() {
            if r.kind() != Kind::Peer {
                // A peer's RTT is its session's.
                r.set_rtt(now - started);
            }
            r.passes = r.passes.saturating_add(1);
            r.fails = 0;
        } else {
            // A pulse peer's failures count only from probes started after
            // our last stall: a lost session is confirmed by fresh ones.
            if fresh || r.kind() != Kind::Peer {
                r.fails = r.fails.saturating_add(1);
            }
            r.passes = 0;
        }
        let (passes, fails, health) = (r.passes, r.fails, r.health());
        let checks = |count| Reason::Checks { count, last: result };
        match r.kind() {
            Kind::Checked => {
                let to = match health {
                    _ if result.passed() && health != Health::Down => Health::Up,
                    Health::Down if passes >= self.config.rise => Health::Up,
                    Health::Down => Health::Down,
                    _ if result.passed() => Health::Up,
                    _ if fails >= self.config.fall && fresh => Health::Down,
                    Health::Unknown => Health::Unknown,
                    _ => Health::Suspect,
                };
                let count = if result.passed() { passes } else { fails };
                self.transition(index, now, to, checks(count));
                let r = &self.records[i];
                let nominal = match r.health() {
                    Health::Up if r.fails == 0 => self.config.interval,
                    Health::Down if r.passes == 0 => self.config.down_interval,
                    _ => self.config.fast_interval,
                };
                let next = self.rng.jittered(self.stretch(nominal), self.config.jitter_percent);
                self.records[i].timer = now + next;
            }
            Kind::Announced if self.records[i].has(STOPPED) => {
                // It said it ended: its checks are moot until a newer
                // incarnation announces, and there is no next one.
                self.records[i].timer = NEVER;
            }
            Kind::Announced => {
                if result.passed() {
                    // A passing probe is proof of life, but not a heartbeat:
                    // the next heartbeat's gap is no sample.
                    let r = &mut self.records[i];
                    r.heard = now;
                    r.set(NO_SAMPLE, true);
                    let to = match health {
                        Health::Down if passes < self.config.rise => Health::Down,
                        _ => Health::Up,
                    };
                    self.transition(index, now, to, checks(passes));
                } else {
                    self.confirm_down(index, now);
                }
                let r = &self.records[i];
                let suspicious = self.silence_reached(index, now, self.tuned.suspect_y);
                let nominal = match r.health() {
                    Health::Down => Some(self.config.down_interval),
                    _ if suspicious => Some(self.config.fast_interval),
                    _ => None,
                };
                self.records[i].timer = match nominal {
                    Some(d) => now + self.rng.jittered(self.stretch(d), self.config.jitter_percent),
                    None => NEVER,
                };
            }
            Kind::Peer => self.peer_result(index, now, result),
            Kind::Vacant => {}
        }
    }

    /// An announcement, already checked as newer, for target `index`.
    pub(crate) fn on_announcement(&mut self, index: u32, now: Instant, a: &Announcement) {
        match a.report {
            Report::Running(status) => self.on_running(index, now, a, status),
            Report::Stopped(exit) => self.on_stopped(index, now, a, exit),
        }
    }

    /// The service's last word: down at once, with how it ended, instead
    /// of after the silence.
    fn on_stopped(&mut self, index: u32, now: Instant, a: &Announcement, exit: ExitStatus) {
        let footprint = self.footprint(index);
        let r = &mut self.records[index as usize];
        let restarted = r.has(ANNOUNCED_ONCE) && a.incarnation > r.incarnation;
        r.incarnation = a.incarnation;
        r.sequence = a.sequence;
        r.heard = now;
        r.set(ANNOUNCED_ONCE, true);
        r.set(STOPPED, true);
        // Its next announcement is a new incarnation: no gap to learn from.
        r.set(NO_SAMPLE, true);
        if !r.has(IN_FLIGHT) {
            r.timer = NEVER;
        }
        if restarted {
            let target = self.id_of(index);
            self.events.push_back(Event::Restarted {
                target,
                incarnation: a.incarnation,
            });
        }
        self.transition(index, now, Health::Down, Reason::Stopped(exit));
        self.settle(index, footprint, now);
        self.reschedule(index, now);
    }

    fn on_running(&mut self, index: u32, now: Instant, a: &Announcement, status: Status) {
        let i = index as usize;
        let footprint = self.footprint(index);
        let (low, high) = self.config.announce_interval_range;
        let interval = a.interval.clamp(low, high);
        let interval_ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
        let fresh_after = self.local.fresh_after;
        let tuning = self.tuned.tuning;
        let r = &mut self.records[i];
        let first = !r.has(ANNOUNCED_ONCE);
        let restarted = !first && a.incarnation > r.incarnation;
        let old_interval = r.interval();
        if first || restarted || interval_ms != r.interval_ms {
            // A new stream, or a changed one: start again from its word.
            r.accrual = Accrual::new(interval);
        } else if !r.has(NO_SAMPLE) && r.health() != Health::Down && r.heard >= fresh_after {
            // No sample across an outage, a stall of ours or a probe.
            r.accrual
                .sample(now - r.heard, a.sequence.wrapping_sub(r.sequence), interval, &tuning);
        }
        r.incarnation = a.incarnation;
        r.sequence = a.sequence;
        r.interval_ms = interval_ms;
        r.heard = now;
        r.fails = 0;
        r.set(NO_SAMPLE, false);
        r.set(ANNOUNCED_ONCE, true);
        r.set(EVICTED, false);
        r.set(STOPPED, false);
        if !r.has(IN_FLIGHT) {
            r.timer = NEVER;
        }
        if interval != old_interval {
            self.local.remove_rate(old_interval);
            self.local.add_rate(interval);
        }
        if restarted {
            let target = self.id_of(index);
            self.events.push_back(Event::Restarted {
                target,
                incarnation: a.incarnation,
            });
        }
        self.set_status(index, status);
        self.transition(index, now, Health::Up, Reason::Announced);
        self.settle(index, footprint, now);
        self.reschedule_if_earlier(index, now);
    }

    /// Level-triggered: the full status each time; an event when it
    /// changed.
    pub(crate) fn set_status(&mut self, index: u32, status: Status) {
        let r = &mut self.records[index as usize];
        if r.status != status {
            let from = core::mem::replace(&mut r.status, status);
            let target = self.id_of(index);
            self.events.push_back(Event::StatusChanged {
                target,
                from,
                to: status,
            });
        }
    }

    /// Moves target `index` to health `to`, with flap damping.
    pub(crate) fn transition(&mut self, index: u32, now: Instant, to: Health, reason: Reason) {
        let r = &mut self.records[index as usize];
        let from = r.health();
        if from == to {
            return;
        }
        r.health = to.to_bits();
        r.since = now;
        let mut suppressed = false;
        if let Some(damping) = &self.config.damping {
            // A first verdict is not a flap; moving in or out of service is.
            if from != Health::Unknown && from.is_alive() != to.is_alive() {
                let decayed = damping.decayed(r.penalty, now - r.penalty_at);
                r.penalty = damping.add_transition(decayed);
                r.penalty_at = now;
                if !r.has(SUPPRESSED) && r.penalty >= damping.suppress {
                    r.set(SUPPRESSED, true);
                    suppressed = true;
                }
            }
        }
        let penalty = self.penalty_now(index, now);
        let target = self.id_of(index);
        self.events.push_back(Event::Transition(Transition {
            target,
            from,
            to,
            reason,
            penalty,
            at: now,
        }));
        if suppressed {
            self.events.push_back(Event::Suppressed { target, penalty });
        }
    }

    fn penalty_now(&self, index: u32, now: Instant) -> f32 {
        let r = &self.records[index as usize];
        self.config
            .damping
            .map_or(0.0, |d| d.decayed(r.penalty, now - r.penalty_at))
    }

    fn reuse_if_due(&mut self, index: u32, now: Instant) {
        let Some(damping) = self.config.damping else { return };
        let r = &self.records[index as usize];
        if r.has(SUPPRESSED) && now >= r.penalty_at + damping.time_to_reuse(r.penalty) {
            let penalty = self.penalty_now(index, now);
            self.records[index as usize].set(SUPPRESSED, false);
            let target = self.id_of(index);
            self.events.push_back(Event::Reused { target, penalty });
        }
    }
}
