//! The application's side of a monitor: targets in, transitions,
//! snapshots and healthy sets out, from any thread, with no runtime of its
//! own. What it shares with its driver task is the [`WatchCore`], the
//! announcement sockets it binds, and wakers.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pulse_monitor::{
    AnnounceKey, Check, CheckId, Event, Monitor, PoolId, PoolSummary, Snapshot, Stats, TargetError, TargetId,
    TargetSpec,
};
use pulse_proto::{Closed, Status};

use super::shared::Shared;
#[cfg(doc)]
use super::WatchTask;
use super::{bind_announce_socket, WatchConfig, WatchCore, WatchStats};

/// The most announcement sockets one monitor reads.
pub const MAX_ANNOUNCE_SOCKETS: usize = 64;

/// A pulse connection, as [`Watcher::follow`] reads it: pulse-smol's and
/// pulse-tokio's `Connection` are ones (with their `monitor` feature).
pub trait PeerEvents: Send + Sync + 'static {
    /// The connection's next event; `Closed` is the last.
    fn next_event(&self) -> impl Future<Output = pulse_proto::Event> + Send + '_;
}

/// The driver task's side of a [`Watcher::new`]: hand it to
/// [`WatchTask::new`]. One per monitor, so that one task drives it.
pub struct WatchLink {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for WatchLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchLink").finish_non_exhaustive()
    }
}

/// A handle to a monitor run by a driver task (a [`WatchTask`]: pulse-smol's
/// and pulse-tokio's `monitor::watch` hand back one of each): targets and
/// their addresses in; transitions ([`Watcher::recv`]), snapshots and
/// healthy sets out. Cloning gives another handle to the same monitor;
/// when the last one is dropped, the driver finishes and closes its
/// sockets. It needs no runtime of its own: use it from any thread.
///
/// Every method takes the monitor's lock for a moment: none waits on
/// the network.
///
/// # Examples
///
/// ```
/// use pulse_driver::monitor::{WatchConfig, Watcher};
/// use pulse_monitor::{Config, Monitor, TargetSpec};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
/// let (watcher, link) = Watcher::new(WatchConfig::default(), monitor);
/// // A runtime's driver task takes `link` (pulse-smol and pulse-tokio
/// // do it in `monitor::watch`).
/// let workers = watcher.add_pool();
/// let worker = watcher.add_target(TargetSpec::announced(workers, 42), None).unwrap();
/// let announce_to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
/// println!("service 42 announces to {announce_to}");
/// println!("{:?}", watcher.snapshot(worker).unwrap().health);
/// # Ok::<(), std::io::Error>(())
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
    /// A handle to `monitor`, and the [`WatchLink`] its driver task
    /// takes ([`WatchTask::new`]); the bytes are moved as `config` says.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_monitor::{Config, Monitor};
    ///
    /// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// assert_eq!(watcher.probes(), 0);
    /// ```
    pub fn new(config: WatchConfig, monitor: Monitor) -> (Watcher, WatchLink) {
        let shared = Arc::new(Shared::new(WatchCore::new(config, monitor)));
        let link = WatchLink { shared: shared.clone() };
        (Watcher::handle(shared), link)
    }

    fn handle(shared: Arc<Shared>) -> Watcher {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        Watcher { shared }
    }

    /// Runs `f` on the monitor, then lets the driver and the tasks waiting
    /// for events see what changed.
    fn change<R>(&self, f: impl FnOnce(&mut WatchCore) -> R) -> R {
        let (result, waiting) = {
            let mut state = self.shared.lock();
            (f(&mut state.core), state.take_waiting())
        };
        self.shared.ready.wake_driver();
        waiting.into_iter().for_each(Waker::wake);
        result
    }

    /// Receives ANNOUNCE datagrams on `addr` (UDP); returns the address
    /// bound. Call it again with the same address for more sockets on one
    /// port (`SO_REUSEPORT` where the system has it), or with other
    /// addresses; at most [`MAX_ANNOUNCE_SOCKETS`]. The driver task takes
    /// the socket at its next turn.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// let to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
    /// println!("services announce to UDP {to}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_announcements(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let mut state = self.shared.lock();
        if state.sockets >= MAX_ANNOUNCE_SOCKETS {
            return Err(io::Error::other("a monitor reads at most 64 announcement sockets"));
        }
        let socket = bind_announce_socket(addr, state.core.config().recv_buffer)?;
        let bound = socket.local_addr()?;
        state.bound.push(socket);
        state.sockets += 1;
        drop(state);
        self.shared.ready.wake_driver();
        Ok(bound)
    }

    /// Adds a pool ([`Monitor::add_pool`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// let worker = watcher.add_target(pulse_monitor::TargetSpec::announced(pool, 42), None).unwrap();
    /// assert!(watcher.remove_target(worker));
    /// assert!(watcher.snapshot(worker).is_none());
    /// ```
    pub fn remove_target(&self, target: TargetId) -> bool {
        self.change(|core| core.remove_target(target))
    }

    /// One of a pulse connection's events (its `recv`), for the
    /// target it is (added with [`TargetSpec::peer`]): its RTT, suspicion,
    /// recovery, dead-peer verdict, status and close feed the target's
    /// health, with no traffic of the monitor's own. An application that
    /// reads its connection forwards each event here; one that keeps the
    /// connection only for its health hands it to [`Watcher::follow`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// use pulse_monitor::{Health, TargetSpec};
    /// use pulse_proto::Event;
    ///
    /// let pool = watcher.add_pool();
    /// let backend = watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    /// // What the backend's connection said (`conn.recv().await`):
    /// let event = Event::PeerDead { silent_for: std::time::Duration::from_secs(3) };
    /// watcher.handle_peer_event(backend, &event);
    /// assert_eq!(watcher.snapshot(backend).unwrap().health, Health::Down);
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
    /// ```
    /// # async fn run(watcher: pulse_driver::monitor::Watcher, conn: impl pulse_driver::monitor::PeerEvents) {
    /// use pulse_monitor::TargetSpec;
    ///
    /// let pool = watcher.add_pool();
    /// let backend = watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    /// // Spawned on the runtime that runs the connection:
    /// let closed = watcher.follow(backend, conn).await;
    /// println!("{closed}");
    /// # }
    /// ```
    pub fn follow<C: PeerEvents>(&self, target: TargetId, conn: C) -> impl Future<Output = Closed> + Send + 'static {
        let watcher = self.clone();
        async move {
            loop {
                let event = conn.next_event().await;
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// ```
    /// # async fn run(watcher: pulse_driver::monitor::Watcher) {
    /// use pulse_monitor::Event;
    ///
    /// loop {
    ///     match watcher.recv().await {
    ///         Event::Transition(t) => println!("{}: {} -> {} ({:?})", t.target, t.from, t.to, t.reason),
    ///         Event::PoolChanged(pool) => println!("healthy: {:?}", watcher.healthy(pool)),
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv(&self) -> Event {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// One poll of [`Watcher::recv`]: the next event, or `cx` woken when
    /// the monitor may have one.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    /// assert!(watcher.poll_recv(&mut cx).is_pending());
    /// ```
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Event> {
        let mut state = self.shared.lock();
        match state.core.monitor_mut().poll_event() {
            Some(event) => Poll::Ready(event),
            None => {
                // Under the lock the driver takes to tell news: none is
                // missed in between.
                state.wait(cx.waker());
                Poll::Pending
            }
        }
    }

    /// The monitor's next event, if one is waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// for (target, weight) in watcher.healthy(pool) {
    ///     println!("{target} takes {weight} shares");
    /// }
    /// ```
    pub fn healthy(&self, pool: PoolId) -> Vec<(TargetId, u32)> {
        self.shared.lock().core.monitor().healthy(pool).collect()
    }

    /// The target for a load balancer's `turn`-th client: one of the
    /// pool's healthy set, each taking turns in proportion to its weight
    /// (`turn` modulo the weights' sum falls in one target's share). `None`
    /// when no target of the pool is healthy: a balancer refuses the
    /// client rather than send it to one that is not.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// let pool = watcher.add_pool();
    /// for turn in 0..3 {
    ///     match watcher.pick(pool, turn).and_then(|target| watcher.address(target)) {
    ///         Some(backend) => println!("client {turn} goes to {backend}"),
    ///         None => println!("client {turn} is refused: nothing is healthy"),
    ///     }
    /// }
    /// ```
    pub fn pick(&self, pool: PoolId, turn: u64) -> Option<TargetId> {
        let state = self.shared.lock();
        let monitor = state.core.monitor();
        let total: u64 = monitor.healthy(pool).map(|(_, weight)| u64::from(weight)).sum();
        let mut share = turn.checked_rem(total)?;
        let picked = monitor
            .healthy(pool)
            .find_map(|(target, weight)| match share.checked_sub(weight.into()) {
                Some(rest) => {
                    share = rest;
                    None
                }
                None => Some(target),
            });
        picked
    }

    /// Where `target`'s probes connect (the address it was added with):
    /// where a load balancer sends its clients.
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// use pulse_monitor::{Check, TargetSpec};
    ///
    /// let pool = watcher.add_pool();
    /// let tcp = watcher.add_check(Check::Tcp);
    /// let at = "127.0.0.1:9001".parse().unwrap();
    /// let backend = watcher.add_target(TargetSpec::checked(pool, tcp), Some(at)).unwrap();
    /// assert_eq!(watcher.address(backend), Some(at));
    /// ```
    pub fn address(&self, target: TargetId) -> Option<SocketAddr> {
        self.shared.lock().core.address(target)
    }

    /// A pool's summary ([`Monitor::pool`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # let monitor = pulse_monitor::Monitor::new(pulse_monitor::Config::lan(), pulse_driver::clock::now(), 1).unwrap();
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
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
    /// # let (watcher, _link) = pulse_driver::monitor::Watcher::new(Default::default(), monitor);
    /// let score = watcher.with_monitor(|monitor| monitor.local_score());
    /// assert_eq!(score, 0);
    /// ```
    pub fn with_monitor<R>(&self, f: impl FnOnce(&mut Monitor) -> R) -> R {
        self.change(|core| f(core.monitor_mut()))
    }
}

impl Clone for Watcher {
    fn clone(&self) -> Self {
        Watcher::handle(self.shared.clone())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.wake_driver();
        }
    }
}
