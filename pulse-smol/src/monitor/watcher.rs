//! The application's side of a monitor: targets in, transitions,
//! snapshots and healthy sets out. The state it shares with its driver is
//! pulse-driver's [`WatchCore`] and the announcement sockets.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_io::Async;
use pulse_driver::monitor::{bind_announce_socket, WatchConfig, WatchCore, WatchStats};
use pulse_monitor::{
    AnnounceKey, Check, CheckId, Event, Monitor, PoolId, PoolSummary, Snapshot, Stats, TargetError, TargetId,
    TargetSpec,
};
use pulse_proto::{Closed, Status};

use super::driver::WatchDriver;
use super::shared::{AnnounceSocket, Shared, State};
use crate::Connection;

/// The most announcement sockets one monitor reads.
pub const MAX_ANNOUNCE_SOCKETS: usize = 64;

/// Runs `monitor`: hands back a [`Watcher`], the handle to add targets and
/// read transitions, snapshots and healthy sets with, and the
/// [`WatchDriver`] that opens probe connections, reads announcements and
/// keeps the monitor's time — a future to spawn on any executor
/// (`smol::spawn(driver).detach()`). The driver decides nothing: every
/// verdict is the monitor's.
///
/// # Examples
///
/// ```
/// # smol::block_on(async {
/// use pulse_monitor::{Check, Config, Monitor, TargetSpec};
/// use pulse_smol::monitor::{watch, WatchConfig};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed()).unwrap();
/// let (watcher, driver) = watch(WatchConfig::default(), monitor);
/// smol::spawn(driver).detach();
/// let pool = watcher.add_pool();
/// let tcp = watcher.add_check(Check::Tcp);
/// let backend = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let target = watcher.add_target(TargetSpec::checked(pool, tcp), Some(backend.local_addr()?)).unwrap();
/// let up = loop {
///     if let pulse_monitor::Event::Transition(t) = watcher.recv().await {
///         break t;
///     }
/// };
/// assert_eq!((up.target, up.to), (target, pulse_monitor::Health::Up));
/// assert_eq!(watcher.healthy(pool).len(), 1);
/// # Ok::<(), std::io::Error>(()) });
/// ```
pub fn watch(config: WatchConfig, monitor: Monitor) -> (Watcher, WatchDriver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            core: WatchCore::new(config, monitor),
            sockets: Vec::new(),
        }),
        ready: Arc::default(),
        events: event_listener::Event::new(),
        handles: AtomicUsize::new(0),
    });
    (Watcher::new(shared.clone()), WatchDriver::new(shared))
}

/// A handle to a monitor run by a [`WatchDriver`]: targets and their
/// addresses in; transitions ([`Watcher::recv`]), snapshots and healthy
/// sets out. Cloning gives another handle to the same monitor; when the
/// last one is dropped, the driver finishes and closes its sockets.
///
/// Every method takes the monitor's lock for a moment: none waits on
/// the network.
///
/// # Examples
///
/// ```
/// # smol::block_on(async {
/// use pulse_monitor::{Config, Monitor, TargetSpec};
/// use pulse_smol::monitor::{watch, WatchConfig};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
/// let (watcher, driver) = watch(WatchConfig::default(), monitor);
/// smol::spawn(driver).detach();
/// let workers = watcher.add_pool();
/// let worker = watcher.add_target(TargetSpec::announced(workers, 42), None).unwrap();
/// let announce_to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
/// println!("service 42 announces to {announce_to}");
/// println!("{:?}", watcher.snapshot(worker).unwrap().health);
/// # Ok::<(), std::io::Error>(()) });
/// ```
pub struct Watcher {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("core", &self.shared.lock().core)
            .finish()
    }
}

impl Watcher {
    fn new(shared: Arc<Shared>) -> Watcher {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Watcher { shared }
    }

    /// Runs `f` on the monitor, then lets the driver see what changed.
    fn change<R>(&self, f: impl FnOnce(&mut WatchCore) -> R) -> R {
        let result = f(&mut self.shared.lock().core);
        self.shared.ready.driver.wake();
        self.shared.events.notify(usize::MAX);
        result
    }

    /// Receives ANNOUNCE datagrams on `addr` (UDP); returns the address
    /// bound. Call it again with the same address for more sockets on one
    /// port (`SO_REUSEPORT` where the system has it), or with other
    /// addresses; at most [`MAX_ANNOUNCE_SOCKETS`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
    /// println!("services announce to UDP {to}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_announcements(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let mut state = self.shared.lock();
        if state.sockets.len() >= MAX_ANNOUNCE_SOCKETS {
            return Err(io::Error::other("a monitor reads at most 64 announcement sockets"));
        }
        let config = state.core.config();
        let budget = config.datagrams_per_turn.max(1);
        let socket = Async::new(bind_announce_socket(addr, config.recv_buffer)?)?;
        let bound = socket.get_ref().local_addr()?;
        state.sockets.push(AnnounceSocket { socket, budget });
        drop(state);
        self.shared.ready.driver.wake();
        Ok(bound)
    }

    /// Adds a pool ([`Monitor::add_pool`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let backends = watcher.add_pool();
    /// assert!(watcher.healthy(backends).is_empty());
    /// ```
    pub fn add_pool(&self) -> PoolId {
        self.change(|core| core.monitor_mut().add_pool())
    }

    /// Adds a check that targets can share ([`Monitor::add_check`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// use pulse_monitor::{Check, HttpCheck};
    ///
    /// let tcp = watcher.add_check(Check::Tcp);
    /// let http = watcher.add_check(Check::Http(HttpCheck::get("/health").unwrap().expect(200..=299)));
    /// ```
    pub fn add_check(&self, check: Check) -> CheckId {
        self.change(|core| core.monitor_mut().add_check(check))
    }

    /// Accepts announcements authenticated with `key`
    /// ([`Monitor::add_announce_key`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// watcher.add_announce_key(pulse_monitor::AnnounceKey::new(b"the fleet's secret"));
    /// ```
    pub fn add_announce_key(&self, key: AnnounceKey) {
        self.change(|core| core.monitor_mut().add_announce_key(key));
    }

    /// Adds a target. `addr` is where its probes connect: needed for
    /// checked targets and for announced ones confirmed by a check (a probe
    /// of a target without one is reported unreachable); announced targets
    /// and pulse peers need none.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// use pulse_monitor::{Check, TargetSpec};
    ///
    /// let pool = watcher.add_pool();
    /// let tcp = watcher.add_check(Check::Tcp);
    /// let backend = watcher.add_target(TargetSpec::checked(pool, tcp), Some("127.0.0.1:9001".parse().unwrap()));
    /// let worker = watcher.add_target(TargetSpec::announced(pool, 42), None);
    /// assert!(backend.is_ok() && worker.is_ok());
    /// ```
    pub fn add_target(&self, spec: TargetSpec, addr: Option<SocketAddr>) -> Result<TargetId, TargetError> {
        self.change(|core| core.add_target(spec, addr))
    }

    /// Removes a target; its probe, if one runs, is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// let worker = watcher.add_target(pulse_monitor::TargetSpec::announced(pool, 42), None).unwrap();
    /// assert!(watcher.remove_target(worker));
    /// assert!(watcher.snapshot(worker).is_none());
    /// ```
    pub fn remove_target(&self, target: TargetId) -> bool {
        self.change(|core| core.remove_target(target))
    }

    /// One of a pulse connection's events ([`Connection::recv`]), for the
    /// target it is (added with [`TargetSpec::peer`]): its RTT, suspicion,
    /// recovery, dead-peer verdict, status and close feed the target's
    /// health, with no traffic of the monitor's own. An application that
    /// reads its connection forwards each event here; one that keeps the
    /// connection only for its health hands it to [`Watcher::follow`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// # smol::block_on(async {
    /// let pool = watcher.add_pool();
    /// let backend = watcher.add_target(pulse_monitor::TargetSpec::peer(pool), None).unwrap();
    /// let (conn, conn_driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// smol::spawn(conn_driver).detach();
    /// loop {
    ///     let event = conn.recv().await;
    ///     watcher.handle_peer_event(backend, &event);
    ///     match event {
    ///         pulse_smol::Event::Message { tag, payload } => println!("{tag}: {payload:?}"),
    ///         pulse_smol::Event::Closed(_) => break,
    ///         _ => {}
    ///     }
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn handle_peer_event(&self, target: TargetId, event: &pulse_proto::Event) {
        self.change(|core| core.handle_peer_event(target, event));
    }

    /// Reads `conn`'s events and hands each to the monitor as `target`'s
    /// ([`Watcher::handle_peer_event`]) until the connection closes;
    /// returns how it closed. Messages the peer sends are dropped: give it
    /// a connection kept for its health, and spawn the future. It holds a
    /// handle: the monitor's driver runs while it does.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// use pulse_monitor::TargetSpec;
    ///
    /// let pool = watcher.add_pool();
    /// let backend = watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    /// let (conn, conn_driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// smol::spawn(conn_driver).detach();
    /// smol::spawn(watcher.follow(backend, conn)).detach();
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn follow(&self, target: TargetId, conn: Connection) -> impl Future<Output = Closed> + Send + 'static {
        let watcher = self.clone();
        async move {
            loop {
                let event = conn.recv().await;
                watcher.handle_peer_event(target, &event);
                if let pulse_proto::Event::Closed(closed) = event {
                    return closed;
                }
            }
        }
    }

    /// A target's own report of its status, from any channel you have.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// use pulse_proto::Status;
    ///
    /// let pool = watcher.add_pool();
    /// let worker = watcher.add_target(pulse_monitor::TargetSpec::announced(pool, 42), None).unwrap();
    /// watcher.handle_status(worker, Status::default());
    /// ```
    pub fn handle_status(&self, target: TargetId, status: Status) {
        self.change(|core| core.handle_status(target, status));
    }

    /// The monitor's next event: transitions with their reasons, status
    /// changes, suppression, pool changes, local health. Events wait in the
    /// monitor until taken: read them.
    ///
    /// Cancel safety: cancel-safe. An event is taken in the poll that
    /// returns it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// # smol::block_on(async {
    /// use pulse_monitor::Event;
    ///
    /// loop {
    ///     match watcher.recv().await {
    ///         Event::Transition(t) => println!("{}: {} -> {} ({:?})", t.target, t.from, t.to, t.reason),
    ///         Event::PoolChanged(pool) => println!("healthy: {:?}", watcher.healthy(pool)),
    ///         _ => {}
    ///     }
    /// }
    /// # });
    /// ```
    pub async fn recv(&self) -> Event {
        loop {
            let arrived = self.shared.events.listen();
            if let Some(event) = self.try_recv() {
                return event;
            }
            arrived.await;
        }
    }

    /// The monitor's next event, if one is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// while let Some(event) = watcher.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// ```
    pub fn try_recv(&self) -> Option<Event> {
        self.shared.lock().core.monitor_mut().poll_event()
    }

    /// A target's snapshot (health, last result, RTT, suspicion, penalty,
    /// time in state), or `None` for a removed target.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// let worker = watcher.add_target(pulse_monitor::TargetSpec::announced(pool, 42), None).unwrap();
    /// let snapshot = watcher.snapshot(worker).unwrap();
    /// assert_eq!(snapshot.health, pulse_monitor::Health::Unknown);
    /// ```
    pub fn snapshot(&self, target: TargetId) -> Option<Snapshot> {
        self.shared.lock().core.monitor().snapshot(target)
    }

    /// A pool's healthy set, with weights: where a load balancer sends
    /// traffic.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// for (target, weight) in watcher.healthy(pool) {
    ///     println!("{target} takes {weight} shares");
    /// }
    /// ```
    pub fn healthy(&self, pool: PoolId) -> Vec<(TargetId, u32)> {
        self.shared.lock().core.monitor().healthy(pool).collect()
    }

    /// A pool's summary ([`Monitor::pool`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// println!("{:?}", watcher.pool(pool).unwrap());
    /// ```
    pub fn pool(&self, pool: PoolId) -> Option<PoolSummary> {
        self.shared.lock().core.monitor().pool(pool)
    }

    /// What the monitor took and rejected: announcements, forged or stale
    /// ones, probes, timeouts.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let stats = watcher.monitor_stats();
    /// println!("{} announcements taken, {} forged", stats.announcements, stats.bad_tag);
    /// ```
    pub fn monitor_stats(&self) -> Stats {
        *self.shared.lock().core.monitor().stats()
    }

    /// Counters of the driver's own work.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// println!("{} probe connections opened", watcher.stats().probes);
    /// ```
    pub fn stats(&self) -> WatchStats {
        self.shared.lock().core.stats()
    }

    /// Probe connections open now.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// assert_eq!(watcher.probes(), 0);
    /// ```
    pub fn probes(&self) -> usize {
        self.shared.lock().core.probes()
    }

    /// Runs `f` on the monitor itself, for what this handle does not
    /// offer. Add and remove targets through the handle, which keeps their
    /// addresses.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
    /// let score = watcher.with_monitor(|monitor| monitor.local_score());
    /// assert_eq!(score, 0);
    /// ```
    pub fn with_monitor<R>(&self, f: impl FnOnce(&mut Monitor) -> R) -> R {
        self.change(|core| f(core.monitor_mut()))
    }
}

impl Clone for Watcher {
    fn clone(&self) -> Self {
        Watcher::new(self.shared.clone())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.driver.wake();
        }
    }
}
