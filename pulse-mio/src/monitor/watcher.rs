//! The watcher: a monitor, its probe connections and announcement sockets,
//! and the moves between them. No health decision is made here.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry, Token};
use pulse_driver::{clock, log};
use pulse_monitor::{Monitor, Probe, ProbeId, ProbeKind, ProbeOutcome, Progress, TargetError, TargetId, TargetSpec};
use pulse_proto::{Instant, Status};
use slab::Slab;

use super::announce::AnnounceSocket;
use super::probe::{self, Order, Step};
use crate::tokens::{Slot, Tokens};

/// How a [`Watcher`] moves bytes; what it decides is the monitor's own
/// [`pulse_monitor::Config`].
///
/// | field | default | why |
/// |---|---|---|
/// | `datagrams_per_turn` | 1,024 | announcements read from one socket per turn: a flood cannot hold the probes back |
/// | `max_timer_delay` | 100 ms | how long the monitor's timers wait for an announcement socket to be read empty |
/// | `max_probes` | 4,096 | probe connections open at once; more wait for room |
/// | `recv_buffer` | 4 MiB | receive buffer asked for each announcement socket |
/// | `retry` | 50 ms | a probe this process had no descriptor or port for is tried again this much later |
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Datagrams read from one announcement socket per turn. Raise it if
    /// one socket receives far more than a thousand announcements between
    /// two turns; the rest wait in its receive buffer for the next.
    pub datagrams_per_turn: usize,
    /// While an announcement socket still holds datagrams after its
    /// budget, the monitor's timers wait for it to be read empty — a
    /// silence must not be judged with the announcement that ends it
    /// unread — but no longer than this, so that a flood at the socket
    /// cannot stop the probes. Beyond it the monitor's timers run late,
    /// and it counts that as a stall of its own.
    pub max_timer_delay: Duration,
    /// Probe connections open at once. A probe beyond it waits for a
    /// connection to end; one that cannot start before the monitor's
    /// timeout fails as timed out. Keep it over `targets × timeout ÷
    /// interval`, and under the process's descriptor limit.
    pub max_probes: usize,
    /// Receive buffer asked for each announcement socket, in bytes. The
    /// system caps it (`net.core.rmem_max` on Linux): at 100,000
    /// announcements a second, 4 MiB holds about 50 ms of them.
    pub recv_buffer: usize,
    /// A probe that could not start because this process was out of
    /// descriptors or local ports (not the target's fault) is tried again
    /// after this, or as soon as a probe connection closes. One that still
    /// cannot start before the monitor's timeout counts as timed out:
    /// pulse-monitor has no outcome for a probe we could not start.
    pub retry: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            datagrams_per_turn: 1024,
            max_timer_delay: Duration::from_millis(100),
            max_probes: 4096,
            recv_buffer: 4 << 20,
            retry: Duration::from_millis(50),
        }
    }
}

/// Counters of a [`Watcher`]'s own work; what the monitor took and
/// rejected is in [`pulse_monitor::Stats`] ([`Monitor::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchStats {
    /// Datagrams read from the announcement sockets.
    pub datagrams: u64,
    /// Probe connections opened.
    pub probes: u64,
    /// Probe starts put off: no room under `max_probes`, or this process
    /// out of descriptors or local ports.
    pub deferred: u64,
    /// Probes of targets added without an address, reported unreachable.
    pub no_address: u64,
    /// Turns whose timers waited for an announcement socket to be read.
    pub timers_held: u64,
}

/// A [`pulse_monitor::Monitor`] and its sockets in a `mio::Poll`: it opens
/// the probe connections the monitor asks for (a non-blocking TCP connect;
/// for HTTP it writes the request and hands the response over until the
/// monitor has enough), reports what became of them, hands it every
/// ANNOUNCE datagram of its UDP sockets, and, through
/// [`Watcher::handle_peer_event`], the events of pulse connections that
/// are targets. It decides nothing: which probe when, and every verdict,
/// are the monitor's.
///
/// The drive loop, each turn, in a `Poll` of its own ([`Watcher::turn`]
/// does all of it) or one it shares with an [`crate::Endpoint`]:
///
/// 1. poll with a timeout no longer than [`Watcher::poll_timeout`];
/// 2. hand every event to [`Watcher::handle_event`] (it says whether it
///    was one of its tokens); if the poll filled its `Events`, poll again
///    at once and hand those over too — the monitor's timers run next, and
///    a result or announcement still in the kernel would be missed;
/// 3. call [`Watcher::process`]: it runs the monitor's timers and starts
///    and aborts the probes it asks for;
/// 4. drain [`Watcher::poll_event`] (transitions, pool changes) and read
///    [`Monitor::healthy`] through [`Watcher::monitor`] as you need.
///
/// The range of tokens holds, from its top down, one unused token, 64
/// announcement sockets and 64 unused ones; probe connections take the
/// tokens from its start up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mio::{Events, Poll};
/// use pulse_mio::monitor::{WatchConfig, Watcher};
/// use pulse_monitor::{Check, Config, Event, Monitor, TargetSpec};
///
/// let mut poll = Poll::new()?;
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 7).unwrap();
/// let mut watcher = Watcher::new(WatchConfig::default(), monitor, poll.registry(), 0..10_000)?;
/// let pool = watcher.monitor_mut().add_pool();
/// let tcp = watcher.monitor_mut().add_check(Check::Tcp);
/// // A backend that is probed with a TCP connect, and a worker that
/// // announces itself to our UDP socket.
/// let backend = std::net::TcpListener::bind("127.0.0.1:0")?;
/// watcher.add_target(TargetSpec::checked(pool, tcp), Some(backend.local_addr()?)).unwrap();
/// watcher.add_target(TargetSpec::announced(pool, 42), None).unwrap();
/// let _announce_to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
///
/// let mut events = Events::with_capacity(1024);
/// let until = std::time::Instant::now() + Duration::from_millis(100);
/// while std::time::Instant::now() < until {
///     watcher.turn(&mut poll, &mut events, Some(Duration::from_millis(10)))?;
///     while let Some(event) = watcher.poll_event() {
///         if let Event::Transition(t) = event {
///             println!("{}: {} -> {}", t.target, t.from, t.to);
///         }
///     }
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Watcher {
    monitor: Monitor,
    config: WatchConfig,
    registry: Registry,
    tokens: Tokens,
    /// Addresses of the targets that have one, by index (with the id, so a
    /// reused index never reaches a removed target's address).
    addrs: HashMap<u32, (TargetId, SocketAddr)>,
    probes: Slab<probe::Conn>,
    in_flight: HashMap<ProbeId, u32>,
    /// Probes that could not start yet.
    waiting: VecDeque<Order>,
    retry_at: Option<Instant>,
    /// A probe connection closed since the last retry: a descriptor is free.
    freed: bool,
    /// The HTTP requests of the checks, shared by their probes.
    requests: Vec<Arc<[u8]>>,
    sockets: Vec<AnnounceSocket>,
    /// Announcement sockets whose budget ran out this turn.
    udp_again: Vec<u32>,
    /// Those of the last turn, read first by `process`.
    udp_carried: Vec<u32>,
    /// Since when the monitor's timers wait for the sockets to be read.
    held_since: Option<Instant>,
    stats: WatchStats,
    shortage: log::Episode,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("targets", &self.monitor.len())
            .field("probes", &self.probes.len())
            .field("sockets", &self.sockets.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher running `monitor` in `registry`'s `Poll`, on the tokens of
    /// `tokens` (at least 130 of them; probe connections take one each).
    pub fn new(config: WatchConfig, monitor: Monitor, registry: &Registry, tokens: Range<usize>) -> io::Result<Self> {
        let len = tokens.len();
        let tokens = Tokens::within(tokens).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a token range of {len} has no room: a watcher needs more than 129"),
            )
        })?;
        Ok(Watcher {
            monitor,
            config,
            registry: registry.try_clone()?,
            tokens,
            addrs: HashMap::new(),
            probes: Slab::new(),
            in_flight: HashMap::new(),
            waiting: VecDeque::new(),
            retry_at: None,
            freed: false,
            requests: Vec::new(),
            sockets: Vec::new(),
            udp_again: Vec::new(),
            udp_carried: Vec::new(),
            held_since: None,
            stats: WatchStats::default(),
            shortage: log::Episode::default(),
        })
    }

    /// Receives ANNOUNCE datagrams on `addr` (UDP). Call it again with the
    /// same address for more sockets on one port (`SO_REUSEPORT` where the
    /// system has it: the kernel spreads the senders between them), or
    /// with other addresses. At most 64 sockets.
    pub fn listen_announcements(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let token = self
            .tokens
            .udp(self.sockets.len())
            .ok_or_else(|| io::Error::other("a watcher holds at most 64 announcement sockets"))?;
        let budget = self.config.datagrams_per_turn.max(1);
        let mut socket = AnnounceSocket::bind(addr, self.config.recv_buffer, budget)?;
        self.registry.register(&mut socket.socket, token, Interest::READABLE)?;
        let addr = socket.socket.local_addr()?;
        self.sockets.push(socket);
        Ok(addr)
    }

    /// Adds a target to the monitor. `addr` is where its probes connect:
    /// needed for checked targets and for announced ones confirmed by a
    /// check (a probe of a target without one is reported unreachable);
    /// announced targets and pulse peers need none, and cost the watcher
    /// nothing.
    pub fn add_target(&mut self, spec: TargetSpec, addr: Option<SocketAddr>) -> Result<TargetId, TargetError> {
        let target = self.monitor.add_target(clock::now(), spec)?;
        if let Some(addr) = addr {
            self.addrs.insert(target.index() as u32, (target, addr));
        }
        Ok(target)
    }

    /// Removes a target; its probe, if one runs, is dropped.
    pub fn remove_target(&mut self, target: TargetId) -> bool {
        let removed = self.monitor.remove_target(clock::now(), target);
        if removed {
            self.addrs.remove(&(target.index() as u32));
            self.drain_probes();
        }
        removed
    }

    /// One of a pulse connection's session events, for the target it is
    /// (added with `TargetSpec::peer`). From a [`crate::Handler`]: forward
    /// `Event::Connected(ctx.negotiated(conn))` from `on_open`, the events
    /// of `on_event`, and `Event::Closed(closed.clone())` from `on_close`.
    pub fn handle_peer_event(&mut self, target: TargetId, event: &pulse_proto::Event) {
        self.monitor.handle_peer_event(clock::now(), target, event);
    }

    /// A target's own report of its status, from any channel you have.
    pub fn handle_status(&mut self, target: TargetId, status: Status) {
        self.monitor.handle_status(clock::now(), target, status);
    }

    /// The monitor: [`Monitor::healthy`], [`Monitor::snapshot`],
    /// [`Monitor::stats`].
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The monitor, to add pools, checks and keys. Add and remove targets
    /// with [`Watcher::add_target`] and [`Watcher::remove_target`], which
    /// keep their addresses; what the monitor asks for meanwhile is done
    /// at the next [`Watcher::process`].
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        &mut self.monitor
    }

    /// The monitor's next event: transitions, pool changes, local health.
    /// Drain them every turn: they wait in the monitor until taken.
    pub fn poll_event(&mut self) -> Option<pulse_monitor::Event> {
        self.monitor.poll_event()
    }

    /// Counters of the watcher's own work.
    pub fn stats(&self) -> WatchStats {
        self.stats
    }

    /// Probe connections open now.
    pub fn probes(&self) -> usize {
        self.probes.len()
    }

    /// Whether `token` is one of the watcher's.
    pub fn owns(&self, token: Token) -> bool {
        self.tokens.contains(token)
    }

    /// Handles a readiness event if its token is one of the watcher's (and
    /// returns whether it was): reads announcements, or moves a probe on.
    /// Call [`Watcher::process`] after the poll's events.
    pub fn handle_event(&mut self, event: &mio::event::Event) -> bool {
        if !self.owns(event.token()) {
            return false;
        }
        match self.tokens.slot(event.token()) {
            Slot::Udp(n) => self.read_announcements(n as u32),
            Slot::Connection(index) => self.on_probe_ready(index),
            Slot::Listener(_) | Slot::Waker => {}
        }
        true
    }

    /// The rest of a turn, after the poll's events: reads what the
    /// announcement sockets had left, runs the monitor's timers if they are
    /// due, and starts and aborts the probes it asks for.
    pub fn process(&mut self) {
        for n in std::mem::take(&mut self.udp_carried) {
            self.read_announcements(n);
        }
        let now = clock::now();
        let retry = std::mem::take(&mut self.freed) || self.retry_at.is_some_and(|at| now >= at);
        if retry && !self.waiting.is_empty() {
            self.retry_at = None;
            for order in std::mem::take(&mut self.waiting) {
                self.start(order);
            }
        }
        if self.monitor.poll_timeout().is_some_and(|at| at <= now) && !self.hold_timers(now) {
            self.monitor.handle_timeout(now);
        }
        self.drain_probes();
        self.udp_carried = std::mem::take(&mut self.udp_again);
        let budget = self.config.datagrams_per_turn.max(1);
        for socket in &mut self.sockets {
            socket.budget = budget;
        }
    }

    /// The longest your poll may wait: until the monitor's next deadline,
    /// or zero when work was left for the next turn.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if !self.udp_carried.is_empty() || !self.udp_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let retry = self.retry_at.filter(|_| !self.waiting.is_empty());
        let next = [self.monitor.poll_timeout(), retry].into_iter().flatten().min()?;
        Some(next - clock::now())
    }

    /// One turn of a `Poll` that holds only this watcher (the one whose
    /// registry it was made with): poll at most `max_wait`, hand over every
    /// event, then [`Watcher::process`]. Drain [`Watcher::poll_event`]
    /// after it.
    pub fn turn(&mut self, poll: &mut Poll, events: &mut Events, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = match (self.poll_timeout(), max_wait) {
            (Some(t), Some(max)) => Some(t.min(max)),
            (t, max) => t.or(max),
        };
        let sockets = self.probes.len() + self.sockets.len();
        crate::poll_all(poll, events, timeout, sockets, |event| {
            self.handle_event(event);
        })?;
        self.process();
        Ok(())
    }

    /// Whether the monitor's timers wait this turn: an announcement socket
    /// still holds datagrams, and they have not waited `max_timer_delay`.
    fn hold_timers(&mut self, now: Instant) -> bool {
        if self.udp_again.is_empty() {
            self.held_since = None;
            return false;
        }
        let since = *self.held_since.get_or_insert(now);
        let hold = now - since < self.config.max_timer_delay;
        self.stats.timers_held += u64::from(hold);
        hold
    }

    fn read_announcements(&mut self, n: u32) {
        let Some(socket) = self.sockets.get_mut(n as usize) else {
            return;
        };
        let (read, more) = socket.read(&mut self.monitor);
        self.stats.datagrams += read;
        // A socket whose budget is spent waits for the next turn, however
        // many readiness events it gets meanwhile.
        if more && !self.udp_again.contains(&n) {
            self.udp_again.push(n);
        }
    }

    /// Starts and aborts what the monitor asks for.
    fn drain_probes(&mut self) {
        loop {
            let Watcher { monitor, requests, .. } = self;
            let asked = match monitor.poll_probe() {
                None => return,
                Some(Probe::Abort(id)) => Err(id),
                Some(Probe::Start { id, kind, .. }) => Ok(Order {
                    id,
                    request: match kind {
                        ProbeKind::Tcp => None,
                        ProbeKind::Http { request } => Some(intern(requests, request)),
                    },
                }),
            };
            match asked {
                Ok(order) => self.start(order),
                Err(id) => self.abort(id),
            }
        }
    }

    fn address(&self, target: TargetId) -> Option<SocketAddr> {
        self.addrs
            .get(&(target.index() as u32))
            .filter(|(id, _)| *id == target)
            .map(|(_, addr)| *addr)
    }

    fn start(&mut self, order: Order) {
        let Some(addr) = self.address(order.id.target()) else {
            self.stats.no_address += 1;
            self.monitor
                .handle_probe_result(clock::now(), order.id, ProbeOutcome::Unreachable);
            return;
        };
        let room = self.probes.len() < self.config.max_probes;
        let entry = self.probes.vacant_entry();
        let token = u32::try_from(entry.key()).ok().and_then(|i| self.tokens.connection(i));
        let Some(token) = token.filter(|_| room) else {
            return self.defer(order, None);
        };
        let mut conn = match probe::Conn::connect(order.clone(), addr) {
            Ok(conn) => conn,
            Err(e) if probe::is_local_shortage(&e) => return self.defer(order, Some(&e)),
            Err(e) => {
                let outcome = probe::connect_failure(&e);
                return self.monitor.handle_probe_result(clock::now(), order.id, outcome);
            }
        };
        // Writable: the connect completed; readable: the response.
        if let Err(e) = self
            .registry
            .register(&mut conn.stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            return self.defer(order, Some(&e));
        }
        self.in_flight.insert(order.id, entry.key() as u32);
        entry.insert(conn);
        self.stats.probes += 1;
        self.shortage.end("probes start again");
    }

    /// The probe cannot start now, through no fault of its target's.
    fn defer(&mut self, order: Order, error: Option<&io::Error>) {
        self.stats.deferred += 1;
        if let Some(e) = error {
            self.shortage
                .begin("out of descriptors or local ports: probes wait and are retried", e);
        }
        self.waiting.push_back(order);
        self.retry_at.get_or_insert(clock::now() + self.config.retry);
    }

    fn abort(&mut self, id: ProbeId) {
        match self.in_flight.get(&id) {
            Some(&index) => self.end(index, None),
            None => self.waiting.retain(|order| order.id != id),
        }
    }

    /// Moves a probe on after a readiness event: connected, the request
    /// written, the response read and handed over.
    fn on_probe_ready(&mut self, index: u32) {
        let Some(conn) = self.probes.get_mut(index as usize) else {
            return;
        };
        let id = conn.order.id;
        match conn.finish_connect() {
            Step::Connecting => return,
            Step::Failed(outcome) => return self.end(index, Some(outcome)),
            Step::Connected => {
                let http = conn.is_http();
                self.monitor
                    .handle_probe_result(clock::now(), id, ProbeOutcome::Connected);
                if !http {
                    return self.end(index, None);
                }
            }
            Step::Idle => {}
        }
        let conn = &mut self.probes[index as usize];
        if let Step::Failed(outcome) = conn.write_request() {
            return self.end(index, Some(outcome));
        }
        let (got, ended) = conn.read_response(self.monitor.config().max_response_bytes);
        if got && self.monitor.handle_http_response(clock::now(), id, &conn.response) == Progress::Done {
            return self.end(index, None);
        }
        if let Some(outcome) = ended {
            self.end(index, Some(outcome));
        }
    }

    /// Drops a probe's connection, reporting `outcome` if there is one.
    fn end(&mut self, index: u32, outcome: Option<ProbeOutcome>) {
        let Some(mut conn) = self.probes.try_remove(index as usize) else {
            return;
        };
        self.in_flight.remove(&conn.order.id);
        let _ = self.registry.deregister(&mut conn.stream);
        let id = conn.order.id;
        conn.reset();
        self.freed = true;
        if let Some(outcome) = outcome {
            self.monitor.handle_probe_result(clock::now(), id, outcome);
        }
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
