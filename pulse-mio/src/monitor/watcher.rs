//! The watcher: a monitor, its probe connections and announcement sockets
//! in a `mio::Poll`, and the moves between them. The bookkeeping is
//! pulse-driver's ([`WatchCore`]); no health decision is made here.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use pulse_driver::clock;
use pulse_driver::monitor::{self as driver, Action, ProbeConn, WatchConfig, WatchCore, WatchStats};
use pulse_monitor::{Monitor, ProbeOutcome, TargetError, TargetId, TargetSpec};
use pulse_proto::Status;
use slab::Slab;

use super::announce::AnnounceSocket;
use crate::tokens::{Slot, Tokens};

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
    core: WatchCore,
    registry: Registry,
    tokens: Tokens,
    /// Probe connections, by slot (the core knows them by that slot).
    probes: Slab<(ProbeConn, TcpStream)>,
    sockets: Vec<AnnounceSocket>,
    /// Announcement sockets whose budget ran out this turn.
    udp_again: Vec<u32>,
    /// Those of the last turn, read first by `process`.
    udp_carried: Vec<u32>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("core", &self.core)
            .field("sockets", &self.sockets.len())
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
            core: WatchCore::new(config, monitor),
            registry: registry.try_clone()?,
            tokens,
            probes: Slab::new(),
            sockets: Vec::new(),
            udp_again: Vec::new(),
            udp_carried: Vec::new(),
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
        let config = self.core.config();
        let mut socket = AnnounceSocket::bind(addr, config.recv_buffer, config.datagrams_per_turn.max(1))?;
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
        self.core.add_target(spec, addr)
    }

    /// Removes a target; its probe, if one runs, is dropped.
    pub fn remove_target(&mut self, target: TargetId) -> bool {
        let removed = self.core.remove_target(target);
        if removed {
            self.drain_actions();
        }
        removed
    }

    /// One of a pulse connection's session events, for the target it is
    /// (added with `TargetSpec::peer`). From a [`crate::Handler`]: forward
    /// `Event::Connected(ctx.negotiated(conn))` from `on_open`, the events
    /// of `on_event`, and `Event::Closed(closed.clone())` from `on_close`.
    pub fn handle_peer_event(&mut self, target: TargetId, event: &pulse_proto::Event) {
        self.core.handle_peer_event(target, event);
    }

    /// A target's own report of its status, from any channel you have.
    pub fn handle_status(&mut self, target: TargetId, status: Status) {
        self.core.handle_status(target, status);
    }

    /// The monitor: [`Monitor::healthy`], [`Monitor::snapshot`],
    /// [`Monitor::stats`].
    pub fn monitor(&self) -> &Monitor {
        self.core.monitor()
    }

    /// The monitor, to add pools, checks and keys. Add and remove targets
    /// with [`Watcher::add_target`] and [`Watcher::remove_target`], which
    /// keep their addresses; what the monitor asks for meanwhile is done
    /// at the next [`Watcher::process`].
    pub fn monitor_mut(&mut self) -> &mut Monitor {
        self.core.monitor_mut()
    }

    /// The monitor's next event: transitions, pool changes, local health.
    /// Drain them every turn: they wait in the monitor until taken.
    pub fn poll_event(&mut self) -> Option<pulse_monitor::Event> {
        self.core.monitor_mut().poll_event()
    }

    /// Counters of the watcher's own work.
    pub fn stats(&self) -> WatchStats {
        self.core.stats()
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
        self.core.run_timers(!self.udp_again.is_empty());
        self.drain_actions();
        self.udp_carried = std::mem::take(&mut self.udp_again);
        let budget = self.core.config().datagrams_per_turn.max(1);
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
        Some(self.core.deadline()? - clock::now())
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

    fn read_announcements(&mut self, n: u32) {
        let Some(socket) = self.sockets.get_mut(n as usize) else {
            return;
        };
        // A socket whose budget is spent waits for the next turn, however
        // many readiness events it gets meanwhile.
        if socket.read(&mut self.core) && !self.udp_again.contains(&n) {
            self.udp_again.push(n);
        }
    }

    /// Starts and aborts what the monitor asks for.
    fn drain_actions(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Start(order, addr) => self.start(order, addr),
                Action::Abort(slot) => self.end(slot, None),
            }
        }
    }

    fn start(&mut self, order: driver::Order, addr: SocketAddr) {
        let entry = self.probes.vacant_entry();
        let slot = entry.key() as u32;
        let Some(token) = self.tokens.connection(slot) else {
            return self.core.defer(order, None);
        };
        let mut stream = match driver::connect(addr) {
            Ok(stream) => TcpStream::from_std(stream),
            Err(e) => return self.core.start_failed(order, &e),
        };
        // Writable: the connect completed; readable: the response.
        if let Err(e) = self
            .registry
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            return self.core.defer(order, Some(&e));
        }
        self.core.started(order.id, slot);
        entry.insert((ProbeConn::new(order), stream));
    }

    /// Moves a probe on after a readiness event.
    fn on_probe_ready(&mut self, slot: u32) {
        let Some((conn, stream)) = self.probes.get_mut(slot as usize) else {
            return;
        };
        if let Some(outcome) = self.core.advance(conn, &*stream) {
            self.end(slot, outcome);
        }
    }

    /// Drops a probe's connection, reporting `outcome` if there is one.
    fn end(&mut self, slot: u32, outcome: Option<ProbeOutcome>) {
        let Some((conn, mut stream)) = self.probes.try_remove(slot as usize) else {
            return;
        };
        let _ = self.registry.deregister(&mut stream);
        driver::reset_on_close((&stream).into());
        self.core.ended(conn.id(), outcome);
    }
}
