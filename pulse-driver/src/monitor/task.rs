//! The monitor's driver task, on any async runtime: the one task that
//! moves bytes and time between the monitor's sockets and the monitor.
//! What differs between runtimes — registering a socket, waiting on its
//! readiness, a timer — is a [`WatchRuntime`]; the rest is written here
//! once.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pulse_monitor::ProbeOutcome;
use slab::Slab;
use socket2::SockRef;

use super::shared::{Shared, State};
use super::{connect, reset_on_close, Action, Order, ProbeConn, WatchConfig, WatchCore, WatchLink, Watcher};
use crate::{clock, Arm, TimerSlot};

/// Turns of the loop per poll before yielding to other tasks.
const TURNS_PER_POLL: usize = 8;
/// Readiness checks of one probe per wake-up: each completes a step
/// (connected, written, read), so a few suffice.
const STEPS_PER_PROBE: usize = 4;

/// How an async runtime waits, for a [`WatchTask`]: its socket and timer
/// types, and the few calls on them. pulse-smol and pulse-tokio each
/// implement it in a few lines; everything else a monitor's driver task
/// does is the task's.
///
/// Registering happens inside the task, so in the runtime's context
/// (tokio's `from_std` needs it); a handle may bind a socket anywhere.
pub trait WatchRuntime {
    /// A probe's TCP stream, registered with the runtime.
    type Stream: Send + Unpin;
    /// An announcement socket, registered with the runtime.
    type Socket: Send + Unpin;
    /// The runtime's timer.
    type Timer: Send + Unpin;

    /// Registers a probe's stream, its connect under way ([`connect`]).
    fn register_stream(stream: TcpStream) -> io::Result<Self::Stream>;

    /// The stream's socket, for its options.
    fn sock(stream: &Self::Stream) -> SockRef<'_>;

    /// Whether the stream may be writable (`write`) or readable; if not,
    /// `cx` is woken when it may be.
    fn poll_ready(stream: &Self::Stream, write: bool, cx: &mut Context<'_>) -> Poll<()>;

    /// Moves the probe on with [`WatchCore::advance`], through the
    /// runtime's own non-blocking I/O (so that it learns which readiness
    /// was used up); `write` is the readiness [`WatchRuntime::poll_ready`]
    /// found.
    fn advance(
        core: &mut WatchCore,
        conn: &mut ProbeConn,
        stream: &Self::Stream,
        write: bool,
    ) -> Option<Option<ProbeOutcome>>;

    /// Registers an announcement socket (bound by
    /// [`super::bind_announce_socket`]).
    fn register_socket(socket: UdpSocket) -> io::Result<Self::Socket>;

    /// A non-blocking receive on an announcement socket.
    fn recv(socket: &Self::Socket, buf: &mut [u8]) -> io::Result<usize>;

    /// Whether the socket may be readable; if not, `cx` is woken when it
    /// may be.
    fn poll_readable(socket: &Self::Socket, cx: &mut Context<'_>) -> Poll<()>;

    /// A timer that fires at `at`.
    fn timer_at(at: std::time::Instant) -> Self::Timer;

    /// Sets `timer` to fire at `at` instead.
    fn reset_timer(timer: &mut Self::Timer, at: std::time::Instant);

    /// Whether `timer` fired; if not, `cx` is woken when it does.
    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()>;
}

/// Runs `monitor` on runtime `R`: a [`Watcher`], the handle to add
/// targets and read transitions, snapshots and healthy sets with, and the
/// [`WatchTask`] to spawn on that runtime, which opens probe connections,
/// reads announcements and keeps the monitor's time. pulse-smol's and
/// pulse-tokio's `monitor::watch` are this, for their runtime.
///
/// # Examples
///
/// ```
/// use pulse_driver::monitor::{watch, WatchConfig, WatchRuntime, WatchTask, Watcher};
/// use pulse_monitor::{Config, Monitor};
///
/// fn run<R: WatchRuntime>() -> (Watcher, WatchTask<R>) {
///     let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
///     watch(WatchConfig::default(), monitor)
/// }
/// ```
pub fn watch<R: WatchRuntime>(config: WatchConfig, monitor: pulse_monitor::Monitor) -> (Watcher, WatchTask<R>) {
    let (watcher, link) = Watcher::new(config, monitor);
    (watcher, WatchTask::new(link))
}

/// One probe's connection, and the waker its socket wakes.
struct Probe<S> {
    conn: ProbeConn,
    stream: S,
    waker: Waker,
}

/// An announcement socket and what it may still read this turn.
struct AnnounceSocket<S> {
    socket: S,
    budget: usize,
}

/// Drives a monitor on runtime `R` (see [`super::Watcher::new`]): opens
/// the probe connections it asks for, moves them on and reports what
/// became of them, reads the announcement sockets, and runs the monitor's
/// timers. A future; it finishes, closing every socket, when the last
/// [`super::Watcher`] is dropped. pulse-smol's and pulse-tokio's
/// `monitor::WatchDriver` are this, for their runtime.
///
/// # Examples
///
/// ```
/// use pulse_driver::monitor::{WatchConfig, WatchRuntime, WatchTask, Watcher};
/// use pulse_monitor::{Config, Monitor};
///
/// fn driver<R: WatchRuntime>() -> (Watcher, WatchTask<R>) {
///     let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
///     let (watcher, link) = Watcher::new(WatchConfig::default(), monitor);
///     (watcher, WatchTask::new(link))
/// }
/// ```
#[must_use = "a monitor does nothing unless its driver runs"]
pub struct WatchTask<R: WatchRuntime> {
    shared: Arc<Shared>,
    probes: Slab<Probe<R::Stream>>,
    sockets: Vec<AnnounceSocket<R::Socket>>,
    /// Made at the first deadline, in the runtime's context.
    timer: Option<R::Timer>,
    slot: TimerSlot,
    /// Slots woken, taken from the ready list.
    woken: Vec<u32>,
}

impl<R: WatchRuntime> std::fmt::Debug for WatchTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchTask")
            .field("probes", &self.probes.len())
            .field("sockets", &self.sockets.len())
            .finish_non_exhaustive()
    }
}

impl<R: WatchRuntime> WatchTask<R> {
    /// The driver of the monitor `link` came with.
    pub fn new(link: WatchLink) -> WatchTask<R> {
        WatchTask {
            shared: link.shared,
            probes: Slab::new(),
            sockets: Vec::new(),
            timer: None,
            slot: TimerSlot::default(),
            woken: Vec::new(),
        }
    }

    /// One turn: announcements, probes that woke, the monitor's timers and
    /// the probes it asks for. Returns whether work was left (a socket's
    /// budget ran out).
    fn turn(&mut self, state: &mut State, cx: &mut Context<'_>) -> bool {
        let budget = state.core.config().datagrams_per_turn.max(1);
        for socket in state.bound.drain(..) {
            match R::register_socket(socket) {
                Ok(socket) => self.sockets.push(AnnounceSocket { socket, budget }),
                Err(e) => tracing::warn!(target: "pulse::monitor", "an announcement socket is dropped: {e}"),
            }
        }
        let core = &mut state.core;
        let mut unread = false;
        for socket in &mut self.sockets {
            loop {
                if core.read_announcements(&mut socket.budget, |buf| R::recv(&socket.socket, buf)) {
                    unread = true;
                    break;
                }
                // Drained: wait for more (or read again if more came).
                if R::poll_readable(&socket.socket, cx).is_pending() {
                    break;
                }
            }
        }
        let mut woken = std::mem::take(&mut self.woken);
        self.shared.ready.take(&mut woken);
        for &slot in &woken {
            self.poll_probe(core, slot);
        }
        self.woken = woken;
        core.run_timers(unread);
        while let Some(action) = core.poll_action() {
            match action {
                Action::Start(order, addr) => self.start(core, order, addr),
                Action::Abort(slot) => self.end(core, slot as usize, None),
            }
        }
        if unread {
            // The rest waits for the next turn, with a fresh budget.
            self.sockets.iter_mut().for_each(|s| s.budget = budget);
        }
        unread
    }

    fn start(&mut self, core: &mut WatchCore, order: Order, addr: SocketAddr) {
        let stream = match connect(addr).and_then(R::register_stream) {
            Ok(stream) => stream,
            Err(e) => return core.start_failed(order, &e),
        };
        let entry = self.probes.vacant_entry();
        let slot = entry.key() as u32;
        core.started(order.id, slot);
        entry.insert(Probe {
            conn: ProbeConn::new(order),
            stream,
            waker: self.shared.ready.waker(slot),
        });
        // Polled once now, to register its interest.
        self.poll_probe(core, slot);
    }

    /// Moves a probe on as far as its socket allows, then waits on the
    /// readiness it needs next: writable while connecting or writing the
    /// request, readable for the response.
    fn poll_probe(&mut self, core: &mut WatchCore, slot: u32) {
        let Some(probe) = self.probes.get_mut(slot as usize) else {
            return;
        };
        let mut cx = Context::from_waker(&probe.waker);
        for _ in 0..STEPS_PER_PROBE {
            let write = !probe.conn.is_connected() || probe.conn.wants_write();
            if R::poll_ready(&probe.stream, write, &mut cx).is_pending() {
                return;
            }
            if let Some(outcome) = R::advance(core, &mut probe.conn, &probe.stream, write) {
                return self.end(core, slot as usize, outcome);
            }
        }
        // Still going: look again after the others had their turn.
        self.shared.ready.push(slot);
        self.shared.ready.wake_driver();
    }

    /// Drops a probe's connection, reporting `outcome` if there is one.
    fn end(&mut self, core: &mut WatchCore, slot: usize, outcome: Option<ProbeOutcome>) {
        let Some(probe) = self.probes.try_remove(slot) else {
            return;
        };
        reset_on_close(R::sock(&probe.stream));
        core.ended(probe.conn.id(), outcome);
    }

    /// The last handle is gone: every socket closes.
    fn finish(&mut self) {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        for slot in 0..self.probes.capacity() {
            self.end(&mut state.core, slot, None);
        }
        self.sockets.clear();
        state.bound.clear();
    }

    /// Waits for the monitor's next deadline: whether it has come.
    fn timer_fired(&mut self, deadline: Option<pulse_proto::Instant>, cx: &mut Context<'_>) -> bool {
        if let Arm::Set(at) = self.slot.rearm(deadline) {
            let at = clock::to_std(at);
            match &mut self.timer {
                Some(timer) => R::reset_timer(timer, at),
                None => self.timer = Some(R::timer_at(at)),
            }
        }
        // A timer that fired and was not set again is never polled: some
        // runtimes' fire again at once.
        let Some(timer) = self.timer.as_mut().filter(|_| self.slot.armed().is_some()) else {
            return false;
        };
        if R::poll_timer(timer, cx).is_pending() {
            return false;
        }
        self.slot.fired();
        true
    }
}

impl<R: WatchRuntime> Future for WatchTask<R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        shared.ready.register_driver(cx.waker());
        if !shared.has_handles() {
            this.finish();
            return Poll::Ready(());
        }
        for _ in 0..TURNS_PER_POLL {
            let (unread, deadline, waiting) = {
                let mut state = shared.lock();
                let unread = this.turn(&mut state, cx);
                (unread, state.core.deadline(), state.take_waiting())
            };
            // The monitor may have events for the handles.
            waiting.into_iter().for_each(Waker::wake);
            if unread {
                // A socket still holds datagrams: read on after others had
                // a turn.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !this.timer_fired(deadline, cx) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
