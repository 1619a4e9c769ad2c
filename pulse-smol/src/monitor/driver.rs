//! The monitor's driver: the one task that moves bytes and time between
//! the monitor's sockets and the monitor. The bookkeeping is
//! pulse-driver's; the waiting is async-io's.

use std::future::Future;
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use async_io::{Async, Timer};
use pulse_driver::monitor::{self as driver, Action, Order, ProbeConn, WatchCore};
use pulse_driver::{clock, Arm, TimerSlot};
use pulse_monitor::ProbeOutcome;
use slab::Slab;

use super::shared::{Shared, State};

/// Turns of the loop per poll before yielding to other tasks.
const TURNS_PER_POLL: usize = 8;
/// Readiness checks of one probe per wake-up: each completes a step
/// (connected, written, read), so a few suffice.
const STEPS_PER_PROBE: usize = 4;

/// One probe's connection, and the waker its socket wakes.
struct Probe {
    conn: ProbeConn,
    stream: Async<TcpStream>,
    waker: Waker,
}

/// Drives a monitor ([`super::watch`]): opens the probe connections it
/// asks for, moves them on and reports what became of them, reads the
/// announcement sockets, and runs the monitor's timers. Spawn it on any
/// executor (`smol::spawn(driver).detach()`); it finishes, closing every
/// socket, when the last [`super::Watcher`] is dropped.
///
/// # Examples
///
/// ```
/// use pulse_monitor::{Config, Monitor};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
/// let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
/// let task = smol::spawn(driver);
/// drop(watcher);
/// smol::block_on(task); // the last handle gone, the driver finishes
/// ```
#[must_use = "a monitor does nothing unless its driver runs"]
pub struct WatchDriver {
    shared: Arc<Shared>,
    probes: Slab<Probe>,
    timer: Timer,
    slot: TimerSlot,
    /// Slots woken, taken from the ready list.
    woken: Vec<u32>,
}

impl std::fmt::Debug for WatchDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchDriver")
            .field("probes", &self.probes.len())
            .finish_non_exhaustive()
    }
}

impl WatchDriver {
    pub(crate) fn new(shared: Arc<Shared>) -> WatchDriver {
        WatchDriver {
            shared,
            probes: Slab::new(),
            timer: Timer::never(),
            slot: TimerSlot::default(),
            woken: Vec::new(),
        }
    }

    /// One turn: announcements, probes that woke, the monitor's timers and
    /// the probes it asks for. Returns whether work was left (a socket's
    /// budget ran out).
    fn turn(&mut self, state: &mut State, cx: &mut Context<'_>) -> bool {
        let State { core, sockets } = state;
        let mut unread = false;
        for socket in sockets.iter_mut() {
            loop {
                let recv = socket.socket.get_ref();
                if core.read_announcements(&mut socket.budget, |buf| recv.recv(buf)) {
                    unread = true;
                    break;
                }
                // Drained: wait for more (or read again if more came).
                if socket.socket.poll_readable(cx).is_pending() {
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
            let budget = core.config().datagrams_per_turn.max(1);
            sockets.iter_mut().for_each(|s| s.budget = budget);
        }
        unread
    }

    fn start(&mut self, core: &mut WatchCore, order: Order, addr: SocketAddr) {
        let stream = match driver::connect(addr).and_then(Async::new) {
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
            let ready = if !probe.conn.is_connected() || probe.conn.wants_write() {
                probe.stream.poll_writable(&mut cx)
            } else {
                probe.stream.poll_readable(&mut cx)
            };
            if ready.is_pending() {
                return;
            }
            if let Some(outcome) = core.advance(&mut probe.conn, probe.stream.get_ref()) {
                return self.end(core, slot as usize, outcome);
            }
        }
        // Still going: look again after the others had their turn.
        self.shared.ready.push(slot);
        self.shared.ready.driver.wake();
    }

    /// Drops a probe's connection, reporting `outcome` if there is one.
    fn end(&mut self, core: &mut WatchCore, slot: usize, outcome: Option<ProbeOutcome>) {
        let Some(probe) = self.probes.try_remove(slot) else {
            return;
        };
        driver::reset_on_close(probe.stream.get_ref().into());
        core.ended(probe.conn.id(), outcome);
    }
}

impl Future for WatchDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        shared.ready.driver.register(cx.waker());
        if !shared.has_handles() {
            let mut state = shared.lock();
            for slot in 0..this.probes.capacity() {
                this.end(&mut state.core, slot, None);
            }
            state.sockets.clear();
            return Poll::Ready(());
        }
        for _ in 0..TURNS_PER_POLL {
            let unread = {
                let mut state = shared.lock();
                let unread = this.turn(&mut state, cx);
                if unread {
                    None
                } else {
                    Some(state.core.deadline())
                }
            };
            shared.events.notify(usize::MAX);
            let Some(deadline) = unread else {
                // A socket still holds datagrams: read on after others had
                // a turn.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            match this.slot.rearm(deadline) {
                Arm::Set(at) => this.timer.set_at(clock::to_std(at)),
                Arm::Cancel => this.timer.set_at(std::time::Instant::now() + FOREVER),
                Arm::Keep => {}
            }
            if Pin::new(&mut this.timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.slot.fired();
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A timer with no deadline waits this long (async-io's `Timer::never`
/// cannot be set again in place).
const FOREVER: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);
