//! The monitor: its state, and every way in and out of it. What it decides
//! lives in `decide.rs`, pools in `pool.rs`, its own health in `local.rs`.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::time::Duration;

use pulse_proto::{Instant, Status};

use crate::announce::{AnnounceError, AnnounceKey, Announcement, Report};
use crate::config::{Config, ConfigError, Tuned};
use crate::event::{CheckId, CheckResult, Event, PoolId, Probe, ProbeId, ProbeKind, ProbeOutcome, Progress, TargetId};
use crate::handshake::PulseCheck;
use crate::http::{HttpCheck, Judgement};
use crate::index::ServiceIndex;
use crate::local::Local;
use crate::pool::Pool;
use crate::rng::Rng;
use crate::schedule::Schedule;
use crate::snapshot::Stats;
use crate::target::{Kind, Record, Source, TargetError, TargetSpec, IN_FLIGHT, NEVER, NO_CHECK, NO_SAMPLE};

/// A check that targets share: how to probe them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// A TCP connect.
    Tcp,
    /// An HTTP request, judged by its response's status.
    Http(HttpCheck),
    /// A pulse handshake: HELLO, answered by the live server.
    Pulse(PulseCheck),
}

/// A probe the driver has been asked to start or abort.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Command {
    Start(ProbeId),
    Abort(ProbeId),
}

/// Fleet health, sans-IO: which probe to run next and when, results and
/// heartbeats in, transitions, pools and snapshots out.
///
/// See the [crate documentation](crate) for the drive loop.
#[derive(Debug)]
pub struct Monitor {
    pub(crate) config: Config,
    pub(crate) tuned: Tuned,
    pub(crate) records: Vec<Record>,
    pub(crate) free: Vec<u32>,
    pub(crate) schedule: Schedule,
    pub(crate) services: ServiceIndex,
    pub(crate) pools: Vec<Pool>,
    pub(crate) checks: Vec<Check>,
    pub(crate) keys: Vec<AnnounceKey>,
    pub(crate) commands: VecDeque<Command>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) rng: Rng,
    pub(crate) now: Instant,
    pub(crate) local: Local,
    /// The earliest end of a pool's correlated-failure hold.
    pub(crate) pool_deadline: Instant,
    pub(crate) stats: Stats,
}

impl Monitor {
    /// A monitor with no targets. `seed` drives every random choice
    /// (interval jitter, start phases, the service table's hash): the same
    /// seed and calls give the same outputs.
    pub fn new(config: Config, now: Instant, seed: u64) -> Result<Monitor, ConfigError> {
        Self::with_capacity(config, now, seed, 0)
    }

    /// A monitor with room for `targets` targets before any of its tables
    /// grows: what a server that knows its fleet uses, so memory is the
    /// per-target records and nothing more (at most 128 bytes a target).
    /// Without it the tables grow by doubling as targets are added, and up
    /// to half their room can stand empty.
    pub fn with_capacity(config: Config, now: Instant, seed: u64, targets: usize) -> Result<Monitor, ConfigError> {
        let tuned = config.tune()?;
        let mut rng = Rng::new(seed);
        let hash_key = rng.next_u64();
        Ok(Monitor {
            tuned,
            records: Vec::with_capacity(targets),
            free: Vec::new(),
            schedule: Schedule::with_capacity(targets),
            services: ServiceIndex::new(hash_key, targets),
            pools: Vec::new(),
            checks: Vec::new(),
            keys: Vec::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            rng,
            now,
            local: Local::new(now),
            pool_deadline: NEVER,
            stats: Stats::default(),
            config,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Requires every announcement to be authenticated with `key` (or with
    /// any other key added, so keys can be rotated without a gap).
    pub fn add_announce_key(&mut self, key: AnnounceKey) {
        self.keys.push(key);
    }

    /// A new, empty pool.
    ///
    /// # Panics
    ///
    /// Past 65,535 pools.
    pub fn add_pool(&mut self) -> PoolId {
        let id = u16::try_from(self.pools.len()).expect("at most 65,535 pools");
        self.pools.push(Pool::new(self.now));
        PoolId(id)
    }

    /// Registers a check that targets can share.
    ///
    /// # Panics
    ///
    /// Past 65,535 checks.
    pub fn add_check(&mut self, check: Check) -> CheckId {
        let id = u16::try_from(self.checks.len())
            .ok()
            .filter(|&id| id != NO_CHECK)
            .expect("at most 65,535 checks");
        self.checks.push(check);
        CheckId(id)
    }

    /// Adds a target. It starts [`Health::Unknown`](crate::Health::Unknown):
    /// a checked target is first probed at a random phase of its first
    /// interval; an announced one is up at its first announcement, and down
    /// if none comes within a detection time.
    pub fn add_target(&mut self, now: Instant, spec: TargetSpec) -> Result<TargetId, TargetError> {
        let now = self.advance(now);
        if spec.pool.index() >= self.pools.len() {
            return Err(TargetError::UnknownPool);
        }
        let check = match spec.source {
            Source::Checked(check)
            | Source::Announced {
                confirm: Some(check), ..
            }
            | Source::Peer { confirm: Some(check) } => Some(check),
            _ => None,
        };
        if check.is_some_and(|c| usize::from(c.0) >= self.checks.len()) {
            return Err(TargetError::UnknownCheck);
        }
        if let Source::Announced { service, .. } = spec.source {
            if self
                .services
                .get(service, |t| self.records[t as usize].service)
                .is_some()
            {
                return Err(TargetError::DuplicateService(service));
            }
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.records.len()).ok().filter(|&i| i < u32::MAX - 1);
                let index = index.ok_or(TargetError::Full)?;
                self.records.push(Record::vacant());
                index
            }
        };
        let i = index as usize;
        let generation = self.records[i].generation;
        let mut r = Record::vacant();
        r.generation = generation;
        r.pool = spec.pool.0;
        r.weight = spec.weight;
        r.check = check.map_or(NO_CHECK, |c| c.0);
        r.since = now;
        r.heard = now;
        r.penalty_at = now;
        r.interval_ms = u32::try_from(self.config.interval.as_millis()).unwrap_or(u32::MAX);
        match spec.source {
            Source::Checked(_) => {
                r.kind = Kind::Checked as u8;
                r.timer = now + self.rng.phase(self.config.interval);
            }
            Source::Announced { service, .. } => {
                r.kind = Kind::Announced as u8;
                r.service = service;
                r.accrual = crate::accrual::Accrual::new(self.config.interval);
                r.set(NO_SAMPLE, true);
            }
            Source::Peer { .. } => {
                r.kind = Kind::Peer as u8;
                r.set_vouched_epoch(self.local.epoch);
            }
        }
        self.records[i] = r;
        if let Source::Announced { service, .. } = spec.source {
            let records = &self.records;
            self.services.insert(service, index, |t| records[t as usize].service);
        }
        if !matches!(spec.source, Source::Peer { .. }) {
            self.local.add_rate(self.config.interval);
        }
        self.pools[spec.pool.index()].members.push(index);
        self.reschedule(index, now);
        Ok(TargetId { index, generation })
    }

    /// Removes a target: its probe (if any) is aborted, its id goes stale,
    /// and its pool no longer counts it.
    pub fn remove_target(&mut self, now: Instant, target: TargetId) -> bool {
        let now = self.advance(now);
        let Some(index) = self.resolve(target) else {
            return false;
        };
        let i = index as usize;
        let footprint = self.footprint(index);
        let r = &self.records[i];
        if r.has(IN_FLIGHT) {
            self.commands.push_back(Command::Abort(ProbeId {
                target,
                seq: r.probe_seq,
            }));
        }
        if r.kind() == Kind::Announced {
            let records = &self.records;
            self.services
                .remove(records[i].service, |t| records[t as usize].service);
        }
        if r.kind() != Kind::Peer {
            let interval = if r.kind() == Kind::Announced {
                r.interval()
            } else {
                self.config.interval
            };
            self.local.remove_rate(interval);
        }
        self.schedule.remove(&mut self.records, index);
        let pool = usize::from(self.records[i].pool);
        self.records[i].kind = Kind::Vacant as u8;
        self.settle(index, footprint, now);
        self.pools[pool].members.retain(|&m| m != index);
        let generation = self.records[i].generation.wrapping_add(1);
        self.records[i] = Record::vacant();
        self.records[i].generation = generation;
        self.free.push(index);
        true
    }

    /// The target's record index, if `target` is current.
    pub(crate) fn resolve(&self, target: TargetId) -> Option<u32> {
        let r = self.records.get(target.index as usize)?;
        (r.kind() != Kind::Vacant && r.generation == target.generation).then_some(target.index)
    }

    pub(crate) fn id_of(&self, index: u32) -> TargetId {
        TargetId {
            index,
            generation: self.records[index as usize].generation,
        }
    }

    /// Call when the deadline from [`poll_timeout`](Self::poll_timeout) has
    /// passed, with the current time — after reading every socket that is
    /// readable, so results already here are not taken for timeouts. A call
    /// with nothing due is a no-op.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.advance(now);
        if self.pool_deadline <= now {
            self.calm_pools(now);
        }
        // Each target handled is re-filed past `now`, so this ends; the
        // bound is a second guard against a bug spinning a driver's loop.
        for _ in 0..self.records.len().saturating_mul(4).max(16) {
            match self.schedule.peek(&self.records) {
                Some((index, deadline)) if deadline <= now => self.on_deadline(index, now),
                _ => break,
            }
        }
    }

    /// The one next deadline: call [`handle_timeout`](Self::handle_timeout)
    /// then. Read it after every call; a heartbeat never moves it earlier
    /// (a deadline that comes early because heartbeats arrived since is a
    /// no-op).
    ///
    /// While the monitor has targets there is always a deadline: besides
    /// its targets' own, a housekeeping one `stall_threshold` after the
    /// latest call, by which the monitor finds its own stalls (a call that
    /// comes far later than it asked to be called means our process was
    /// stopped). Calling [`handle_timeout`](Self::handle_timeout) then
    /// costs nothing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let top = self.schedule.peek(&self.records).map_or(NEVER, |(_, d)| d);
        let next = top.min(self.pool_deadline).min(self.housekeeping().unwrap_or(NEVER));
        (next != NEVER).then_some(next)
    }

    /// The next probe to start or abort, if any.
    pub fn poll_probe(&mut self) -> Option<Probe<'_>> {
        loop {
            match self.commands.pop_front()? {
                Command::Abort(id) => return Some(Probe::Abort(id)),
                Command::Start(id) => {
                    let Some(index) = self.resolve(id.target) else { continue };
                    let r = &self.records[index as usize];
                    if !r.has(IN_FLIGHT) || r.probe_seq != id.seq {
                        continue;
                    }
                    let kind = match &self.checks[usize::from(r.check)] {
                        Check::Tcp => ProbeKind::Tcp,
                        Check::Http(http) => ProbeKind::Http {
                            request: http.request(),
                        },
                        Check::Pulse(pulse) => ProbeKind::Pulse { hello: pulse.request() },
                    };
                    return Some(Probe::Start {
                        id,
                        kind,
                        timeout: self.config.timeout,
                    });
                }
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::PoolChanged(pool) = event {
            self.pools[pool.index()].change_pending = false;
        }
        Some(event)
    }

    /// What became of a probe's connection. For a TCP check `Connected`
    /// passes; for HTTP and the pulse handshake it is only a step (the
    /// response decides). A result for a probe that was aborted or
    /// superseded is ignored.
    pub fn handle_probe_result(&mut self, now: Instant, probe: ProbeId, outcome: ProbeOutcome) {
        let now = self.advance(now);
        let Some(index) = self.current_probe(probe) else { return };
        let answers = !matches!(self.checks[usize::from(self.records[index as usize].check)], Check::Tcp);
        let result = match outcome {
            ProbeOutcome::Connected if answers => return,
            ProbeOutcome::Connected => CheckResult::Passed(None),
            ProbeOutcome::Refused => CheckResult::Refused,
            ProbeOutcome::Reset => CheckResult::Reset,
            ProbeOutcome::Unreachable => CheckResult::Unreachable,
            ProbeOutcome::Closed => CheckResult::Closed,
        };
        self.local
            .note_arrival(now, &mut self.events, &mut self.stats, &self.config);
        self.record_result(index, now, result);
    }

    /// The bytes of a probe's response received so far (all of them, from
    /// the first), for a probe that sent a request (HTTP, the pulse
    /// handshake). Returns whether the check needs more; once `Done`, close
    /// the connection. Bytes past `max_response_bytes` without a complete
    /// answer (an HTTP status line and headers, a pulse frame) fail the
    /// check.
    pub fn handle_response(&mut self, now: Instant, probe: ProbeId, response: &[u8]) -> Progress {
        let now = self.advance(now);
        let Some(index) = self.current_probe(probe) else {
            return Progress::Done;
        };
        let limit = self.config.max_response_bytes;
        let complete = response.len() >= limit;
        let response = &response[..response.len().min(limit)];
        let result = match &self.checks[usize::from(self.records[index as usize].check)] {
            Check::Tcp => return Progress::Done,
            Check::Pulse(pulse) => match pulse.judge(response) {
                None if !complete => return Progress::NeedMore,
                None => CheckResult::BadResponse,
                Some(result) => result,
            },
            Check::Http(http) => match http.judge(response) {
                Judgement::Incomplete if !complete => return Progress::NeedMore,
                Judgement::Incomplete | Judgement::Invalid => CheckResult::BadResponse,
                Judgement::Passed(code) => CheckResult::Passed(Some(code)),
                Judgement::UnexpectedStatus(code) => CheckResult::UnexpectedStatus(code),
            },
        };
        self.local
            .note_arrival(now, &mut self.events, &mut self.stats, &self.config);
        self.record_result(index, now, result);
        Progress::Done
    }

    /// [`handle_response`](Self::handle_response), by its first name.
    pub fn handle_http_response(&mut self, now: Instant, probe: ProbeId, response: &[u8]) -> Progress {
        self.handle_response(now, probe, response)
    }

    fn current_probe(&mut self, probe: ProbeId) -> Option<u32> {
        let index = self.resolve(probe.target);
        let current = index.filter(|&i| {
            let r = &self.records[i as usize];
            r.has(IN_FLIGHT) && r.probe_seq == probe.seq
        });
        if current.is_none() {
            self.stats.stale_results += 1;
        }
        current
    }

    /// A datagram that may be an announcement. On success, the target it
    /// was for. A rejected datagram is counted in [`Stats`] and disturbs
    /// nothing; a datagram that is not an announcement at all (say, a pulse
    /// session's) is [`AnnounceError::NotAnnouncement`].
    pub fn handle_announcement(&mut self, now: Instant, datagram: &[u8]) -> Result<TargetId, AnnounceError> {
        let now = self.advance(now);
        let result = self.take_announcement(now, datagram);
        match result {
            Ok(_) => self.stats.announcements += 1,
            Err(e) => self.stats.count_rejection(e),
        }
        result
    }

    fn take_announcement(&mut self, now: Instant, datagram: &[u8]) -> Result<TargetId, AnnounceError> {
        let announcement = Announcement::decode(datagram, &self.keys)?;
        let records = &self.records;
        let index = self
            .services
            .get(announcement.service, |t| records[t as usize].service)
            .ok_or(AnnounceError::UnknownService(announcement.service))?;
        let r = &self.records[index as usize];
        if r.has(crate::target::ANNOUNCED_ONCE) && !announcement.is_newer_than(r.incarnation, r.sequence) {
            return Err(AnnounceError::Stale);
        }
        // A stopped incarnation has ended: only its repeated last word, or
        // a newer incarnation, is news.
        let running = matches!(announcement.report, Report::Running(_));
        if r.has(crate::target::STOPPED) && running && announcement.incarnation == r.incarnation {
            return Err(AnnounceError::Stale);
        }
        self.local
            .note_arrival(now, &mut self.events, &mut self.stats, &self.config);
        self.on_announcement(index, now, &announcement);
        Ok(self.id_of(index))
    }

    /// One of a pulse peer's session events, for the target it belongs to
    /// (other events and unknown targets are ignored).
    pub fn handle_peer_event(&mut self, now: Instant, target: TargetId, event: &pulse_proto::Event) {
        let now = self.advance(now);
        if let Some(index) = self.resolve(target) {
            if self.records[index as usize].kind() == Kind::Peer {
                self.on_peer_event(index, now, event);
            }
        }
    }

    /// A target's own report of its status (a pulse peer's STATUS, or any
    /// other channel the driver has): level-triggered, the full status
    /// each time.
    pub fn handle_status(&mut self, now: Instant, target: TargetId, status: Status) {
        let now = self.advance(now);
        if let Some(index) = self.resolve(target) {
            let footprint = self.footprint(index);
            self.set_status(index, status);
            self.settle(index, footprint, now);
        }
    }

    /// Counters of what the monitor took and rejected.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The number of targets.
    pub fn len(&self) -> usize {
        self.records.len() - self.free.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the monitor holds on the heap for its targets: records, the
    /// schedule, the service table and pool membership (not its queues of
    /// probes and events, which drain).
    pub fn heap_bytes(&self) -> usize {
        self.records.capacity() * core::mem::size_of::<Record>()
            + self.schedule.heap_bytes()
            + self.services.heap_bytes()
            + self.pools.iter().map(|p| p.members.capacity() * 4).sum::<usize>()
    }

    /// The local health score: 0 when healthy, higher after our own stalls.
    pub fn local_score(&self) -> u8 {
        self.local.score
    }

    /// `d` stretched by the local health score.
    pub(crate) fn stretch(&self, d: Duration) -> Duration {
        d * (1 + u32::from(self.local.score))
    }
}
