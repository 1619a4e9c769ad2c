//! A target: what is checked and how, and the record the monitor keeps of
//! it — at most 104 bytes, with nothing on the heap.

use core::fmt;
use core::time::Duration;

use pulse_proto::{Instant, Status};

use crate::accrual::Accrual;
use crate::event::{CheckId, CheckResult, Health, PoolId};
use crate::schedule::{Slot, UNSCHEDULED};

/// How a target is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Active checks (TCP or HTTP) with rise and fall.
    Checked(CheckId),
    /// The service announces itself (the ANNOUNCE datagram) under this id;
    /// if `confirm` is set, a suspicion is confirmed by probes before a
    /// down verdict.
    Announced {
        /// The service id in its announcements.
        service: u64,
        /// A check to confirm suspicions with.
        confirm: Option<CheckId>,
    },
    /// A pulse peer: its session's events are fed in with
    /// [`crate::Monitor::handle_peer_event`]. If `confirm` is set, a session
    /// that lost the peer (its dead verdict, or the transport ending
    /// without CLOSE) is confirmed by probes before a down verdict;
    /// without, the loss is a down verdict at once — unless the session
    /// crossed a stall of the monitor's own, when a new session decides
    /// (see the crate documentation, "Our own stalls").
    Peer {
        /// A check to confirm a lost session with (best a
        /// [`crate::PulseCheck`]: a TCP connect passes for a frozen peer).
        confirm: Option<CheckId>,
    },
}

/// A target to add to the monitor.
///
/// # Examples
///
/// ```
/// use pulse_monitor::{Check, Config, Monitor, TargetSpec};
/// use pulse_proto::Instant;
///
/// let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 7).unwrap();
/// let pool = monitor.add_pool();
/// let tcp = monitor.add_check(Check::Tcp);
/// let backend = monitor.add_target(Instant::ZERO, TargetSpec::checked(pool, tcp).weight(50)).unwrap();
/// let worker = monitor.add_target(Instant::ZERO, TargetSpec::announced(pool, 42).confirm_with(tcp)).unwrap();
/// assert_ne!(backend, worker);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    pub(crate) pool: PoolId,
    pub(crate) source: Source,
    pub(crate) weight: u16,
}

impl TargetSpec {
    /// A target checked actively with `check`.
    pub fn checked(pool: PoolId, check: CheckId) -> TargetSpec {
        TargetSpec {
            pool,
            source: Source::Checked(check),
            weight: 100,
        }
    }

    /// A service that announces itself under `service`.
    pub fn announced(pool: PoolId, service: u64) -> TargetSpec {
        TargetSpec {
            pool,
            source: Source::Announced { service, confirm: None },
            weight: 100,
        }
    }

    /// A pulse peer.
    pub fn peer(pool: PoolId) -> TargetSpec {
        TargetSpec {
            pool,
            source: Source::Peer { confirm: None },
            weight: 100,
        }
    }

    /// For an announced service or a pulse peer: confirm suspicions with
    /// `check` (fast probes while suspect; down only when `fall` of them
    /// fail in a row, and a passing one keeps it up). Ignored for a checked
    /// target, which its checks decide already.
    pub fn confirm_with(mut self, check: CheckId) -> TargetSpec {
        if let Source::Announced { confirm, .. } | Source::Peer { confirm } = &mut self.source {
            *confirm = Some(check);
        }
        self
    }

    /// Its nominal weight in its pool (default 100), which the service's
    /// own reported weight scales.
    pub fn weight(mut self, weight: u16) -> TargetSpec {
        self.weight = weight;
        self
    }
}

/// Why a target could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// No such pool.
    UnknownPool,
    /// No such check.
    UnknownCheck,
    /// Another target already has this service id.
    DuplicateService(u64),
    /// The monitor holds as many targets as it can number.
    Full,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::UnknownPool => f.write_str("no such pool"),
            TargetError::UnknownCheck => f.write_str("no such check"),
            TargetError::DuplicateService(id) => write!(f, "service {id} is already a target"),
            TargetError::Full => f.write_str("the monitor is full"),
        }
    }
}

pub(crate) const NEVER: Instant = Instant::from_nanos(u64::MAX);
pub(crate) const NO_CHECK: u16 = u16::MAX;
pub(crate) const NO_RTT: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Vacant = 0,
    Checked = 1,
    Announced = 2,
    Peer = 3,
}

/// Flag bits.
pub(crate) const IN_FLIGHT: u8 = 1;
pub(crate) const NO_SAMPLE: u8 = 2;
pub(crate) const SUPPRESSED: u8 = 4;
pub(crate) const EVICTED: u8 = 8;
pub(crate) const ANNOUNCED_ONCE: u8 = 16;
/// Its latest incarnation said it ended (a `stopped` announcement).
pub(crate) const STOPPED: u8 = 32;
/// A pulse peer's session lost it: probes decide until a session connects
/// again.
pub(crate) const SESSION_LOST: u8 = 64;
/// A pulse peer (without a confirming check) whose lost session crossed a
/// stall of ours: only a new session, or the end of `reconnect_grace`,
/// decides.
pub(crate) const AWAIT_SESSION: u8 = 128;

/// Everything the monitor keeps of one target. Field order packs it.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// When the schedule looks at it next (may be earlier than needed).
    pub(crate) deadline: Instant,
    /// Probe timer: the next probe's start, or the running one's start.
    pub(crate) timer: Instant,
    /// When it entered its current health.
    pub(crate) since: Instant,
    /// The latest proof of life: heartbeat, passing probe, peer frame.
    pub(crate) heard: Instant,
    /// When `penalty` was last brought up to date.
    pub(crate) penalty_at: Instant,
    pub(crate) service: u64,
    pub(crate) accrual: Accrual,
    pub(crate) penalty: f32,
    pub(crate) rtt_us: u32,
    /// For an announced target, its incarnation; for a pulse peer, the
    /// stall epoch in which its session last vouched for it, or, while it
    /// waits for a new session, in which it began waiting
    /// ([`Record::vouched_epoch`]).
    pub(crate) incarnation: u32,
    /// For an announced target, its latest sequence number; for a pulse
    /// peer waiting for a new session, its grace renewals
    /// ([`Record::grace_renewals`]).
    pub(crate) sequence: u32,
    /// The announced interval, in ms.
    pub(crate) interval_ms: u32,
    pub(crate) heap_pos: u32,
    pub(crate) weight: u16,
    pub(crate) pool: u16,
    pub(crate) check: u16,
    pub(crate) generation: u16,
    pub(crate) probe_seq: u16,
    pub(crate) http_code: u16,
    pub(crate) status: Status,
    pub(crate) kind: u8,
    pub(crate) health: u8,
    pub(crate) passes: u8,
    pub(crate) fails: u8,
    pub(crate) flags: u8,
    pub(crate) last_result: u8,
}

impl Slot for Record {
    fn deadline(&self) -> Instant {
        self.deadline
    }
    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }
    fn heap_pos(&self) -> u32 {
        self.heap_pos
    }
    fn set_heap_pos(&mut self, pos: u32) {
        self.heap_pos = pos;
    }
}

impl Record {
    pub(crate) fn vacant() -> Record {
        Record {
            deadline: NEVER,
            timer: NEVER,
            since: Instant::ZERO,
            heard: Instant::ZERO,
            penalty_at: Instant::ZERO,
            service: 0,
            accrual: Accrual::new(Duration::from_secs(1)),
            penalty: 0.0,
            rtt_us: NO_RTT,
            incarnation: 0,
            sequence: 0,
            interval_ms: 0,
            heap_pos: UNSCHEDULED,
            weight: 0,
            pool: 0,
            check: NO_CHECK,
            generation: 0,
            probe_seq: 0,
            http_code: 0,
            status: Status::default(),
            kind: Kind::Vacant as u8,
            health: Health::Unknown.to_bits(),
            passes: 0,
            fails: 0,
            flags: 0,
            last_result: 0,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        match self.kind {
            1 => Kind::Checked,
            2 => Kind::Announced,
            3 => Kind::Peer,
            _ => Kind::Vacant,
        }
    }

    pub(crate) fn health(&self) -> Health {
        Health::from_bits(self.health)
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub(crate) fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// A pulse peer's: the stall epoch (`Local::epoch`) in which its
    /// session last vouched for it outside a stall's wake; older than the
    /// monitor's, the session crossed a stall of ours since.
    pub(crate) fn vouched_epoch(&self) -> u32 {
        self.incarnation
    }

    pub(crate) fn set_vouched_epoch(&mut self, epoch: u32) {
        self.incarnation = epoch;
    }

    /// A pulse peer's, while it waits for a new session after our stall:
    /// how many later stalls gave it the whole `reconnect_grace` again.
    pub(crate) fn grace_renewals(&self) -> u32 {
        self.sequence
    }

    pub(crate) fn set_grace_renewals(&mut self, renewals: u32) {
        self.sequence = renewals;
    }

    pub(crate) fn interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.interval_ms))
    }

    pub(crate) fn rtt(&self) -> Option<Duration> {
        (self.rtt_us != NO_RTT).then(|| Duration::from_micros(u64::from(self.rtt_us)))
    }

    pub(crate) fn set_rtt(&mut self, rtt: Duration) {
        self.rtt_us = u32::try_from(rtt.as_micros()).unwrap_or(NO_RTT - 1);
    }

    pub(crate) fn last_result(&self) -> Option<CheckResult> {
        Some(match self.last_result {
            1 => CheckResult::Passed(None),
            2 => CheckResult::Passed(Some(self.http_code)),
            3 => CheckResult::Refused,
            4 => CheckResult::Reset,
            5 => CheckResult::Unreachable,
            6 => CheckResult::Closed,
            7 => CheckResult::TimedOut,
            8 => CheckResult::UnexpectedStatus(self.http_code),
            9 => CheckResult::BadResponse,
            _ => return None,
        })
    }

    pub(crate) fn set_last_result(&mut self, result: CheckResult) {
        let (bits, code) = match result {
            CheckResult::Passed(None) => (1, 0),
            CheckResult::Passed(Some(code)) => (2, code),
            CheckResult::Refused => (3, 0),
            CheckResult::Reset => (4, 0),
            CheckResult::Unreachable => (5, 0),
            CheckResult::Closed => (6, 0),
            CheckResult::TimedOut => (7, 0),
            CheckResult::UnexpectedStatus(code) => (8, code),
            CheckResult::BadResponse => (9, 0),
        };
        self.last_result = bits;
        self.http_code = code;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fits_in_104_bytes() {
        assert!(
            core::mem::size_of::<Record>() <= 104,
            "{}",
            core::mem::size_of::<Record>()
        );
    }

    #[test]
    fn every_check_result_round_trips_through_the_record() {
        let mut r = Record::vacant();
        assert_eq!(r.last_result(), None);
        for result in [
            CheckResult::Passed(None),
            CheckResult::Passed(Some(204)),
            CheckResult::Refused,
            CheckResult::Reset,
            CheckResult::Unreachable,
            CheckResult::Closed,
            CheckResult::TimedOut,
            CheckResult::UnexpectedStatus(503),
            CheckResult::BadResponse,
        ] {
            r.set_last_result(result);
            assert_eq!(r.last_result(), Some(result));
        }
    }
}
