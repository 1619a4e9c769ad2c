//! The runtime-free half of a monitor driver: the monitor, where its
//! targets are, which probes run or wait, and the moves between them. No
//! health decision is made here, and no socket is waited on.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use pulse_monitor::{Monitor, Probe, ProbeId, ProbeOutcome, Progress, TargetError, TargetId, TargetSpec};
use pulse_proto::{Instant, Status};
use socket2::SockRef;

use super::probe::{self, Order, ProbeConn, Step};
use super::{WatchConfig, WatchStats};
use crate::{clock, log};

/// What the driver must do next, from [`WatchCore::poll_action`].
#[derive(Debug)]
pub enum Action {
    /// Open a probe connection to `addr` ([`probe::connect`]), then tell
    /// [`WatchCore::started`] under which slot the driver keeps it, or
    /// [`WatchCore::start_failed`] why it could not.
    Start(Order, SocketAddr),
    /// Drop the probe connection in this slot (and call
    /// [`WatchCore::ended`] with no outcome).
    Abort(u32),
}

/// A [`Monitor`] and the bookkeeping every driver of it keeps the same
/// way: target addresses by index, probes in flight by slot, probes
/// waiting for room, the monitor's timers held while an announcement
/// socket is read, and [`WatchStats`]. The driver owns the sockets and
/// waits on them; this decides nothing either: every verdict is the
/// monitor's.
///
/// A driver's turn: read announcement sockets with
/// [`WatchCore::read_announcements`] and move ready probes on with
/// [`WatchCore::advance`]; then [`WatchCore::run_timers`]; then do every
/// [`WatchCore::poll_action`]; then wait until [`WatchCore::deadline`].
pub struct WatchCore {
    monitor: Monitor,
    config: WatchConfig,
    /// Addresses of the targets that have one, by index (with the id, so a
    /// reused index never reaches a removed target's address).
    addrs: HashMap<u32, (TargetId, SocketAddr)>,
    /// Probes open, by the driver's slot.
    in_flight: HashMap<ProbeId, u32>,
    /// Probes that could not start yet.
    waiting: VecDeque<Order>,
    /// Waiting probes being tried again now.
    retrying: VecDeque<Order>,
    retry_at: Option<Instant>,
    /// A probe connection closed since the last retry: a descriptor is free.
    freed: bool,
    /// The HTTP requests of the checks, shared by their probes.
    requests: Vec<Arc<[u8]>>,
    /// Since when the monitor's timers wait for the sockets to be read.
    held_since: Option<Instant>,
    stats: WatchStats,
    shortage: log::Episode,
}

impl std::fmt::Debug for WatchCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCore")
            .field("targets", &self.monitor.len())
            .field("probes", &self.in_flight.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl WatchCore {
    /// Runs `monitor`, moving bytes as `config` says.
    pub fn new(config: WatchConfig, monitor: Monitor) -> WatchCore {
        WatchCore {
            monitor,
            config,
            addrs: HashMap::new(),
            in_flight: HashMap::new(),
            waiting: VecDeque::new(),
            retrying: VecDeque::new(),
            retry_at: None,
            freed: false,
            requests: Vec::new(),
            held_since: None,
            stats: WatchStats::default(),
            shortage: log::Episode::default(),
        }
    }

    /// How bytes are moved.
    pub fn config(&self) -> &WatchConfig {
        &self.config
    }

    /// Adds a target to the monitor; `addr` is where its probes connect
    /// (a probe of a target without one is reported unreachable).
    pub fn add_target(&mut self, spec: TargetSpec, addr: Option<SocketAddr>) -> Result<TargetId, TargetError> {
        let target = self.monitor.add_target(clock::now(), spec)?;
        if let Some(addr) = addr {
            self.addrs.insert(target.index() as u32, (target, addr));
        }
        Ok(target)
    }

    /// Removes a target; the abort of its probe, if one runs, comes from
    /// [`WatchCore::poll_action`].
    pub fn remove_target(&mut self, target: TargetId) -> bool {
        let removed = self.monitor.remove_target(clock::now(), target);
        if removed {
            self.addrs.remove(&(target.index() as u32));
        }
        removed
    }

    /// One of a pulse connection's session events, for the target it is.
    pub fn handle_peer_event(&mut self, target: TargetId, event: &pulse_proto::Event) {
        self.monitor.handle_peer_event(clock::now(), target, event);
    }

    /// A target's own report of its status.
    pub fn handle_status(&mut self, target: TargetId, status: Status) {
        self.monitor.handle_status(clock::now(), target, status);
    }

    /// The monitor.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The monitor, to add pools, checks and keys (targets through
    /// [`WatchCore::add_target`], which keeps their addresses).
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        &mut self.monitor
    }

    /// Counters of the driver's own work.
    pub fn stats(&self) -> WatchStats {
        self.stats
    }

    /// Probe connections open now.
    pub fn probes(&self) -> usize {
        self.in_flight.len()
    }

    /// Reads an announcement socket: `recv` is its non-blocking receive,
    /// `budget` what it may still read this turn. Returns whether the
    /// budget ran out with datagrams perhaps left: read it again next turn,
    /// and tell [`WatchCore::run_timers`].
    pub fn read_announcements(&mut self, budget: &mut usize, recv: impl FnMut(&mut [u8]) -> io::Result<usize>) -> bool {
        let (read, more) = super::announce::read_announcements(&mut self.monitor, budget, recv);
        self.stats.datagrams += read;
        more
    }

    /// Runs the monitor's timers if they are due, unless an announcement
    /// socket still holds datagrams (`unread`) and they have not waited
    /// `max_timer_delay`; and queues waiting probes to be tried again if
    /// their time came or a connection was freed.
    pub fn run_timers(&mut self, unread: bool) {
        self.stats.turns += 1;
        let now = clock::now();
        let retry = std::mem::take(&mut self.freed) || self.retry_at.is_some_and(|at| now >= at);
        if retry && !self.waiting.is_empty() {
            self.retry_at = None;
            self.retrying.append(&mut self.waiting);
        }
        if self.monitor.poll_timeout().is_some_and(|at| at <= now) && !self.hold_timers(now, unread) {
            self.monitor.handle_timeout(now);
        }
    }

    /// Whether the monitor's timers wait this turn.
    fn hold_timers(&mut self, now: Instant, unread: bool) -> bool {
        if !unread {
            self.held_since = None;
            return false;
        }
        let since = *self.held_since.get_or_insert(now);
        let hold = now - since < self.config.max_timer_delay;
        self.stats.timers_held += u64::from(hold);
        hold
    }

    /// The next probe to start or abort. Probes of targets without an
    /// address are reported unreachable here, and probes beyond
    /// `max_probes` wait here, so the driver sees neither.
    pub fn poll_action(&mut self) -> Option<Action> {
        loop {
            let order = match self.retrying.pop_front() {
                Some(order) => order,
                None => match self.next_probe()? {
                    Ok(order) => order,
                    Err(id) => match self.in_flight.get(&id) {
                        Some(&slot) => return Some(Action::Abort(slot)),
                        None => {
                            self.waiting.retain(|order| order.id != id);
                            self.retrying.retain(|order| order.id != id);
                            continue;
                        }
                    },
                },
            };
            let Some(addr) = self.address(order.id.target()) else {
                self.stats.no_address += 1;
                self.monitor
                    .handle_probe_result(clock::now(), order.id, ProbeOutcome::Unreachable);
                continue;
            };
            if self.in_flight.len() >= self.config.max_probes {
                self.defer(order, None);
                continue;
            }
            return Some(Action::Start(order, addr));
        }
    }

    /// The monitor's next probe: an order to start, or the id to abort.
    fn next_probe(&mut self) -> Option<Result<Order, ProbeId>> {
        let WatchCore { monitor, requests, .. } = self;
        Some(match monitor.poll_probe()? {
            Probe::Abort(id) => Err(id),
            // HTTP and the pulse handshake move the same way: send the
            // request, hand back the response; the monitor judges it.
            Probe::Start { id, kind, .. } => Ok(Order {
                id,
                request: kind.request().map(|request| intern(requests, request)),
            }),
        })
    }

    /// Where `target`'s probes connect, if it was added with an address.
    pub fn address(&self, target: TargetId) -> Option<SocketAddr> {
        self.addrs
            .get(&(target.index() as u32))
            .filter(|(id, _)| *id == target)
            .map(|(_, addr)| *addr)
    }

    /// The probe's connection is open, kept by the driver in `slot`.
    pub fn started(&mut self, id: ProbeId, slot: u32) {
        self.in_flight.insert(id, slot);
        self.stats.probes += 1;
        self.shortage.end("probes start again");
    }

    /// The probe's connect failed at once: this process's shortage makes
    /// it wait, any other error is its result.
    pub fn start_failed(&mut self, order: Order, error: &io::Error) {
        if probe::is_local_shortage(error) {
            self.defer(order, Some(error));
        } else {
            let outcome = probe::connect_failure(error);
            self.monitor.handle_probe_result(clock::now(), order.id, outcome);
        }
    }

    /// The probe cannot start now, through no fault of its target's (no
    /// room for it in the driver, or `error`); it is tried again after
    /// `retry`, or once a probe connection ends.
    pub fn defer(&mut self, order: Order, error: Option<&io::Error>) {
        self.stats.deferred += 1;
        if let Some(e) = error {
            self.shortage
                .begin("out of descriptors or local ports: probes wait and are retried", e);
        }
        self.waiting.push_back(order);
        self.retry_at.get_or_insert(clock::now() + self.config.retry);
    }

    /// The probe's connection is dropped (after [`WatchCore::advance`]
    /// said it ended, or an [`Action::Abort`]); `outcome` goes to the
    /// monitor if there is one.
    pub fn ended(&mut self, id: ProbeId, outcome: Option<ProbeOutcome>) {
        if self.in_flight.remove(&id).is_some() {
            self.freed = true;
        }
        if let Some(outcome) = outcome {
            self.monitor.handle_probe_result(clock::now(), id, outcome);
        }
    }

    /// Moves a probe on after its socket may have become ready: the
    /// connect completed, the request written, the response read and
    /// handed to the monitor. Returns `None` while it goes on; once it
    /// ended, what to report: call [`WatchCore::ended`] with it, and drop
    /// the connection ([`probe::reset_on_close`] first).
    pub fn advance<S>(&mut self, conn: &mut ProbeConn, stream: &S) -> Option<Option<ProbeOutcome>>
    where
        for<'a> &'a S: Read + Write,
        for<'a> SockRef<'a>: From<&'a S>,
    {
        let id = conn.id();
        match conn.finish_connect(SockRef::from(stream)) {
            Step::Connecting => return None,
            Step::Failed(outcome) => return Some(Some(outcome)),
            Step::Connected => {
                self.monitor
                    .handle_probe_result(clock::now(), id, ProbeOutcome::Connected);
                if !conn.is_http() {
                    return Some(None);
                }
            }
            Step::Idle => {}
        }
        if let Step::Failed(outcome) = conn.write_request(stream) {
            return Some(Some(outcome));
        }
        let (got, ended) = conn.read_response(stream, self.monitor.config().max_response_bytes);
        if got && self.monitor.handle_response(clock::now(), id, conn.response()) == Progress::Done {
            return Some(None);
        }
        ended.map(Some)
    }

    /// When the driver must next call [`WatchCore::run_timers`] (and then
    /// [`WatchCore::poll_action`]): the monitor's deadline, or a waiting
    /// probe's retry.
    pub fn deadline(&self) -> Option<Instant> {
        let retry = self.retry_at.filter(|_| !self.waiting.is_empty());
        [self.monitor.poll_timeout(), retry].into_iter().flatten().min()
    }
}

/// The shared copy of `request`: the checks are few, their probes many.
fn intern(requests: &mut Vec<Arc<[u8]>>, request: &[u8]) -> Arc<[u8]> {
    if let Some(known) = requests.iter().find(|r| ***r == *request) {
        return known.clone();
    }
    let shared: Arc<[u8]> = request.into();
    requests.push(shared.clone());
    shared
}
