//! The sending side of ANNOUNCE (PROTOCOL.md §12.3) as a sans-IO state
//! machine, so a service in Rust announces itself the way `pulse announce`
//! does without copying its counters, jitter and stop.

use core::time::Duration;

use pulse_proto::{Instant, Status};

use crate::announce::{AnnounceKey, Announcement, Datagram, ExitStatus, Report};
use crate::rng::Rng;

/// How far each interval moves at random, in percent (§12.3 recommends up
/// to ±10 %), so a fleet started together does not announce in lockstep.
pub const JITTER_PERCENT: u8 = 10;

/// How many `stopped` announcements [`Announcer::stop`] sends: one lost
/// datagram must not hide that the service ended (§12.3).
pub const FINAL_REPEATS: u32 = 3;

/// The time between two `stopped` announcements: a short while, so a
/// burst of loss (a full buffer) does not take them all, and a service
/// that is ending is not held up for long.
pub const FINAL_SPACING: Duration = Duration::from_millis(20);

/// One announcement to send: what it says, and its bytes (signed when the
/// announcer has a key).
#[derive(Clone, Copy, Debug)]
pub struct Outgoing {
    /// What the datagram announces (for a log line).
    pub announcement: Announcement,
    /// The datagram to send to the monitor.
    pub datagram: Datagram,
}

/// A service announcing itself (PROTOCOL.md §12.3): the announcements'
/// incarnation and sequence (from 1; a sequence that would wrap starts a
/// new incarnation), their timing (the interval with ±10 % jitter, the
/// first one at a random phase of the first interval), the status each one
/// carries, and the `stopped` ones at the end, repeated.
///
/// It never does I/O or reads a clock: after any call, drain
/// [`poll_transmit`](Announcer::poll_transmit) with the current time and
/// send each datagram, then arm one timer at
/// [`poll_timeout`](Announcer::poll_timeout). `None` there means it has
/// said everything: the service stopped.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use pulse_monitor::{AnnounceKey, Announcement, Announcer, ExitStatus, Report};
/// use pulse_proto::{Instant, Status, ServiceState};
///
/// let key = AnnounceKey::new(b"a shared secret");
/// let start = Instant::ZERO;
/// let mut announcer = Announcer::new(start, 7, 1_700_000_000, Duration::from_secs(1), Some(key.clone()), 42);
/// let mut sent = Vec::new();
/// let mut now = start;
/// // A driver's loop: send what is due, sleep until the deadline.
/// while let Some(deadline) = announcer.poll_timeout() {
///     now = deadline;
///     while let Some(out) = announcer.poll_transmit(now) {
///         // A real driver sends `out.datagram` over UDP to the monitor.
///         sent.push(Announcement::decode(&out.datagram, &[key.clone()]).unwrap());
///     }
///     if now > start + Duration::from_secs(5) {
///         announcer.set_status(Status::new(ServiceState::Draining, 0));
///     }
///     if now > start + Duration::from_secs(8) {
///         announcer.stop(now, ExitStatus::exited(0));
///     }
/// }
/// assert_eq!(sent[0].sequence, 1);
/// assert!(sent.iter().any(|a| a.report == Report::Running(Status::new(ServiceState::Draining, 0))));
/// assert!(sent.iter().rev().take(3).all(|a| a.report == Report::Stopped(ExitStatus::exited(0))));
/// ```
#[derive(Clone, Debug)]
pub struct Announcer {
    service: u64,
    incarnation: u32,
    /// The last sequence sent; 0 before the first.
    sequence: u32,
    interval: Duration,
    key: Option<AnnounceKey>,
    rng: Rng,
    status: Status,
    /// When the next announcement is due; `None` once the last `stopped`
    /// one is out.
    deadline: Option<Instant>,
    /// Once stopped: the exit status and how many `stopped` announcements
    /// are still to send.
    stopping: Option<(ExitStatus, u32)>,
}

impl Announcer {
    /// An announcer for `service` in `incarnation` (it MUST grow across
    /// restarts; without stored state, the start time in whole seconds
    /// since the Unix epoch), announcing every `interval` (at least 1 ms:
    /// shorter is taken as 1 ms, as the wire carries whole milliseconds
    /// and 0 is malformed there), signing with `key` if
    /// given. Its first announcement is due at a random phase of the first
    /// interval after `now`, drawn from `seed` (give each service its own).
    /// It announces [`Status::default`] until [`set_status`](Self::set_status).
    pub fn new(
        now: Instant,
        service: u64,
        incarnation: u32,
        interval: Duration,
        key: Option<AnnounceKey>,
        seed: u64,
    ) -> Announcer {
        // A zero interval would make every deadline `now`: a driver's loop
        // would spin, sending without end.
        let interval = interval.max(Duration::from_millis(1));
        let mut rng = Rng::new(seed);
        let first = now + rng.phase(interval);
        Announcer {
            service,
            incarnation,
            sequence: 0,
            interval,
            key,
            rng,
            status: Status::default(),
            deadline: Some(first),
            stopping: None,
        }
    }

    /// Makes the first announcement due at `now` instead of at a random
    /// phase: for a lone service that must be seen at once (a job that may
    /// end within its first interval), not for a fleet started together.
    pub fn announce_at_once(&mut self, now: Instant) {
        if self.sequence == 0 && self.stopping.is_none() {
            self.deadline = Some(now);
        }
    }

    /// The status the following announcements carry (level-triggered: the
    /// next one due says it, nothing is sent early). Ignored once stopped.
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }

    /// The service has ended with `exit`: the next [`FINAL_REPEATS`]
    /// announcements, due from `now` on [`FINAL_SPACING`] apart, are
    /// `stopped` ones, and then nothing more in this incarnation. A second
    /// call changes nothing.
    pub fn stop(&mut self, now: Instant, exit: ExitStatus) {
        if self.stopping.is_none() {
            self.stopping = Some((exit, FINAL_REPEATS));
            self.deadline = Some(now);
        }
    }

    /// The next announcement due at `now`, if any, with the following one
    /// scheduled. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Outgoing> {
        if self.deadline? > now {
            return None;
        }
        let report = match &mut self.stopping {
            None => {
                // From now, not from the deadline: a driver that was late
                // sends one announcement, not a burst to catch up.
                self.deadline = Some(now + self.rng.jittered(self.interval, JITTER_PERCENT));
                Report::Running(self.status)
            }
            Some((exit, left)) => {
                *left -= 1;
                self.deadline = (*left > 0).then(|| now + FINAL_SPACING);
                Report::Stopped(*exit)
            }
        };
        if self.sequence == u32::MAX {
            // §12.3: a sequence that would wrap starts a new incarnation.
            self.incarnation = self.incarnation.wrapping_add(1);
            self.sequence = 0;
        }
        self.sequence += 1;
        let announcement = Announcement {
            service: self.service,
            incarnation: self.incarnation,
            sequence: self.sequence,
            interval: self.interval,
            report,
        };
        let datagram = announcement.encode(self.key.as_ref());
        Some(Outgoing { announcement, datagram })
    }

    /// When the next announcement is due; `None` once the last `stopped`
    /// one has been sent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The incarnation of the announcements (greater than the one given to
    /// [`new`](Self::new) after a sequence wrapped).
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }
}

#[cfg(test)]
mod tests;
