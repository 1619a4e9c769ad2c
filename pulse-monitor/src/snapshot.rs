//! What consoles and metrics read: a snapshot per target, and counters.

use core::time::Duration;

use pulse_proto::Status;

use crate::announce::AnnounceError;
use crate::event::{CheckResult, Health, PoolId, TargetId};
use crate::monitor::Monitor;
use crate::target::{Kind, STOPPED, SUPPRESSED};

/// A target as a console shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// The target.
    pub target: TargetId,
    /// Its pool.
    pub pool: PoolId,
    /// Its health.
    pub health: Health,
    /// How long it has had this health.
    pub in_state_for: Duration,
    /// Its own report of itself.
    pub status: Status,
    /// Whether flap damping holds it out of its pool.
    pub suppressed: bool,
    /// Its flap-damping penalty now.
    pub penalty: f32,
    /// Its suspicion level (φ) now, for targets that announce; 0 otherwise.
    pub suspicion: f32,
    /// The latest check's result, if it has been checked.
    pub last_result: Option<CheckResult>,
    /// The latest round trip: a passing check's connect or response time,
    /// or a pulse peer's RTT.
    pub rtt: Option<Duration>,
    /// Consecutive passing checks.
    pub passes: u8,
    /// Consecutive failed checks.
    pub fails: u8,
    /// Time since the latest proof of life.
    pub silent_for: Duration,
    /// For targets that announce: the learned mean interval.
    pub mean_interval: Option<Duration>,
    /// For targets that announce: the learned deviation of the interval.
    pub deviation: Option<Duration>,
    /// For targets that announce: the latest incarnation and sequence.
    pub sequence: Option<(u32, u32)>,
    /// Whether its latest incarnation said it stopped (its last
    /// announcement; the transition's [`crate::Reason::Stopped`] says how).
    pub stopped: bool,
}

/// Counters since the monitor started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Announcements taken.
    pub announcements: u64,
    /// Datagrams that were not announcements.
    pub not_announcements: u64,
    /// Announcements of a version this monitor does not speak.
    pub unsupported_version: u64,
    /// Malformed announcements.
    pub malformed: u64,
    /// Announcements without the required tag.
    pub unauthenticated: u64,
    /// Announcements whose tag matched no key: forged, or a wrong key.
    pub bad_tag: u64,
    /// Announcements for no registered service.
    pub unknown_service: u64,
    /// Announcements not newer than the last taken: replays, duplicates,
    /// reordering.
    pub stale: u64,
    /// Probes started.
    pub probes: u64,
    /// Probes that timed out.
    pub timeouts: u64,
    /// Results for probes that were aborted or superseded.
    pub stale_results: u64,
    /// Stalls of our own detected (late timers, bursts).
    pub stalls: u64,
    /// Of which bursts of arrivals.
    pub bursts: u64,
    /// Lost sessions of pulse peers (with a confirming check) that never
    /// became a down: a probe found the peer alive, or a new session
    /// connected, first.
    pub sessions_refuted: u64,
    /// Lost sessions of pulse peers (without a confirming check) taken as
    /// no verdict because they crossed a stall of ours: the peer was given
    /// a new session to prove itself (`reconnect_grace`).
    pub losses_excused: u64,
}

impl Stats {
    pub(crate) fn count_rejection(&mut self, error: AnnounceError) {
        let counter = match error {
            AnnounceError::NotAnnouncement => &mut self.not_announcements,
            AnnounceError::UnsupportedVersion(_) => &mut self.unsupported_version,
            AnnounceError::Malformed => &mut self.malformed,
            AnnounceError::Unauthenticated => &mut self.unauthenticated,
            AnnounceError::BadTag => &mut self.bad_tag,
            AnnounceError::UnknownService(_) => &mut self.unknown_service,
            AnnounceError::Stale => &mut self.stale,
        };
        *counter += 1;
    }
}

impl Monitor {
    /// A target's snapshot, or `None` for a stale id.
    pub fn snapshot(&self, target: TargetId) -> Option<Snapshot> {
        let index = self.resolve(target)?;
        let r = &self.records[index as usize];
        let announced = r.kind() == Kind::Announced;
        let penalty = self
            .config
            .damping
            .map_or(0.0, |d| d.decayed(r.penalty, self.now - r.penalty_at));
        Some(Snapshot {
            target,
            pool: PoolId(r.pool),
            health: r.health(),
            in_state_for: self.now - r.since,
            status: r.status,
            suppressed: r.has(SUPPRESSED),
            penalty,
            suspicion: if announced { self.level(index, self.now) } else { 0.0 },
            last_result: r.last_result(),
            rtt: r.rtt(),
            passes: r.passes,
            fails: r.fails,
            silent_for: self.now - r.heard,
            mean_interval: announced.then(|| r.accrual.mean()),
            deviation: announced.then(|| r.accrual.deviation()),
            sequence: announced.then_some((r.incarnation, r.sequence)),
            stopped: r.has(STOPPED),
        })
    }
}
