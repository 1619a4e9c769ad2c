//! When a simulated process gets to run: never while frozen or stalled,
//! and, when overloaded, only at the turns of its busy loop. Also its clock,
//! which may be stepped.

use std::time::Duration;

use pulse_proto::Instant;

/// The run-time behaviour of one process (a side of a [`crate::Pair`], or a
/// host of a [`crate::Net`]). A process that runs at `t` reads everything
/// that has landed in its sockets, then fires its due timers, then writes —
/// the order a real driver follows.
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// A frozen process never runs (its process was stopped for good);
    /// input waits for it.
    pub frozen: bool,
    /// How far the driver is from its timers: each fires this late.
    pub timer_lateness: Duration,
    /// Added to the time this process reads from its clock (steps so far:
    /// the session treats time going back as standing still, so only
    /// forward steps are modelled).
    pub clock_offset: Duration,
    /// Overload: a busy loop that gets to its sessions only at multiples of
    /// this period (zero: whenever something is due). Reads and timers that
    /// fall between turns wait for the next.
    pub turn: Duration,
    stalls: Vec<(Instant, Instant)>,
    clock_steps: Vec<(Instant, Duration)>,
}

/// A run of consecutive stalls, turns and steps longer than this means the
/// schedule is broken, not the session.
const MAX_HOPS: usize = 10_000;

impl Process {
    /// The process stops at `from` for `length` (SIGSTOP, a GC pause, a
    /// swapped-out page, a blocked loop): it neither reads, writes nor runs
    /// timers. When it resumes, it handles everything that landed at once.
    pub fn stall(&mut self, from: Instant, length: Duration) {
        if !length.is_zero() {
            self.stalls.push((from, from + length));
        }
    }

    /// The stalls scheduled so far, as `(from, until)`.
    pub fn stalls(&self) -> &[(Instant, Instant)] {
        &self.stalls
    }

    /// The process's clock jumps forward by `by` at `at` (a VM migrated or
    /// resumed, a laptop woke).
    pub fn step_clock(&mut self, at: Instant, by: Duration) {
        let position = self.clock_steps.partition_point(|(t, _)| *t <= at);
        self.clock_steps.insert(position, (at, by));
    }

    /// When the next scheduled clock step happens.
    pub fn next_clock_step(&self) -> Option<Instant> {
        self.clock_steps.first().map(|(at, _)| *at)
    }

    /// Applies every clock step due by `now`; true if any was.
    pub fn apply_clock_steps(&mut self, now: Instant) -> bool {
        let due = self.clock_steps.partition_point(|(t, _)| *t <= now);
        for (_, by) in self.clock_steps.drain(..due) {
            self.clock_offset += by;
        }
        due > 0
    }

    /// What this process's clock reads at shared time `now`.
    pub fn local(&self, now: Instant) -> Instant {
        now + self.clock_offset
    }

    /// When a timer armed for `deadline` (on this process's clock) fires,
    /// on the shared time base, before any stall or turn delays it.
    pub fn timer_fires(&self, deadline: Instant) -> Instant {
        deadline - self.clock_offset + self.timer_lateness
    }

    /// The first instant at or after `t` at which the process runs, or
    /// `None` if it is frozen.
    pub fn runs_at(&self, mut t: Instant) -> Option<Instant> {
        if self.frozen {
            return None;
        }
        for _ in 0..MAX_HOPS {
            let turned = self.next_turn(t);
            let resumed = self
                .stalls
                .iter()
                .find(|(from, until)| *from <= turned && turned < *until)
                .map(|(_, until)| *until);
            match resumed {
                Some(until) => t = until,
                None => return Some(turned),
            }
        }
        panic!("a process schedule that never lets it run");
    }

    /// Whether the process runs at `now`.
    pub fn is_running(&self, now: Instant) -> bool {
        self.runs_at(now) == Some(now)
    }

    fn next_turn(&self, t: Instant) -> Instant {
        let period = u64::try_from(self.turn.as_nanos()).unwrap_or(u64::MAX);
        if period == 0 {
            return t;
        }
        Instant::from_nanos(t.as_nanos().div_ceil(period).saturating_mul(period))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn a_stalled_process_runs_again_when_the_stall_ends() {
        let mut p = Process::default();
        p.stall(at(100), Duration::from_millis(50));
        assert_eq!(p.runs_at(at(99)), Some(at(99)));
        assert_eq!(p.runs_at(at(100)), Some(at(150)));
        assert_eq!(p.runs_at(at(149)), Some(at(150)));
        assert_eq!(p.runs_at(at(150)), Some(at(150)));
    }

    #[test]
    fn an_overloaded_process_runs_only_at_its_turns_and_stalls_chain() {
        let mut p = Process {
            turn: Duration::from_millis(40),
            ..Process::default()
        };
        assert_eq!(p.runs_at(at(1)), Some(at(40)));
        assert_eq!(p.runs_at(at(80)), Some(at(80)));
        p.stall(at(70), Duration::from_millis(20)); // to 90: next turn 120
        assert_eq!(p.runs_at(at(75)), Some(at(120)));
        p.frozen = true;
        assert_eq!(p.runs_at(at(0)), None);
    }

    #[test]
    fn clock_steps_apply_in_order_when_due() {
        let mut p = Process::default();
        p.step_clock(at(200), Duration::from_secs(1));
        p.step_clock(at(100), Duration::from_secs(2));
        assert_eq!(p.next_clock_step(), Some(at(100)));
        assert!(!p.apply_clock_steps(at(99)));
        assert!(p.apply_clock_steps(at(150)));
        assert_eq!(p.local(at(150)), at(2150));
        assert!(p.apply_clock_steps(at(200)));
        assert_eq!(p.clock_offset, Duration::from_secs(3));
        assert_eq!(p.timer_fires(at(3300)), at(300));
    }
}
