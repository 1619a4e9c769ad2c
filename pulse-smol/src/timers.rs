//! One reactor timer per thread for all the connections of that thread.
//!
//! A connection's deadline is an entry in its thread's timer wheel. Every
//! async-io timer set or moved writes the reactor's eventfd and costs it one
//! more `epoll_wait` round (six syscalls), so per-connection timers made
//! each heartbeat deadline pay that. Here moving a deadline costs no
//! syscall: due entries are fired by whichever connection of the thread is
//! polled next, and one async-io timer backs them up.
//!
//! That timer sits at the wheel's next tick while it is what fires the
//! entries (a thread with little traffic: deadlines fire within the
//! resolution). While the thread's own polls fire deadlines between its
//! firings (a busy thread), it stays one slack behind, so it is set at most
//! once per slack; when they stop, it goes back.
//!
//! It is driven by a waker of our own: when async-io fires it, the due
//! entries' wakers are woken and it is set again, with no task in between
//! (so no spawner is needed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use async_io::Timer;
use futures_lite::FutureExt;
use pulse_driver::clock;
use pulse_proto::{Instant, TimerKey, TimerWheel};

/// The default timer resolution: deadlines due within the same millisecond
/// fire together, as with tokio's timer and pulse-mio's wheel.
pub const DEFAULT_TIMER_RESOLUTION: Duration = Duration::from_millis(1);
/// The default timer slack: on a busy thread, the reactor's timer stays
/// this far behind the next deadline, so it is set at most once per slack
/// (the thread's own polls fire the deadlines meanwhile). A deadline that
/// no poll fires, when traffic stops, is at most this late; the ones after
/// it fire within the resolution.
pub const DEFAULT_TIMER_SLACK: Duration = Duration::from_millis(10);

static RESOLUTION_NANOS: AtomicU64 = AtomicU64::new(1_000_000);
static SLACK_NANOS: AtomicU64 = AtomicU64::new(10_000_000);

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sets the resolution of pulse-smol's timers for threads that have not
/// used one yet (call it at start-up): deadlines within one resolution of
/// each other fire together, never early. Default
/// [`DEFAULT_TIMER_RESOLUTION`]; at least 1 µs.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// pulse_smol::set_timer_resolution(Duration::from_millis(5));
/// assert_eq!(pulse_smol::timer_resolution(), Duration::from_millis(5));
/// ```
pub fn set_timer_resolution(resolution: Duration) {
    RESOLUTION_NANOS.store(nanos(resolution).max(1_000), Ordering::Relaxed);
}

/// The resolution new threads' timers use ([`set_timer_resolution`]).
///
/// # Examples
///
/// ```
/// assert!(pulse_smol::timer_resolution() > std::time::Duration::ZERO);
/// ```
pub fn timer_resolution() -> Duration {
    Duration::from_nanos(RESOLUTION_NANOS.load(Ordering::Relaxed))
}

/// Sets how far the reactor's timer stays behind the next deadline on a
/// busy thread (default [`DEFAULT_TIMER_SLACK`]): it is set at most once
/// per slack per thread, each time a write to the reactor's eventfd and an
/// extra wake-up. The price: when traffic stops, the first deadline no
/// poll fires may be up to the slack late. Zero keeps every deadline
/// within the resolution, at up to one timer setting per resolution.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// pulse_smol::set_timer_slack(Duration::from_millis(2));
/// assert_eq!(pulse_smol::timer_slack(), Duration::from_millis(2));
/// ```
pub fn set_timer_slack(slack: Duration) {
    SLACK_NANOS.store(nanos(slack), Ordering::Relaxed);
}

/// The slack of pulse-smol's timers ([`set_timer_slack`]).
///
/// # Examples
///
/// ```
/// println!("{:?}", pulse_smol::timer_slack());
/// ```
pub fn timer_slack() -> Duration {
    Duration::from_nanos(SLACK_NANOS.load(Ordering::Relaxed))
}

/// The timers of one thread's connections.
pub(crate) struct Shard {
    state: Mutex<State>,
    /// The wheel's next tick with work, in nanoseconds (`u64::MAX`: none),
    /// for every poll of a connection to check without the lock. It may be
    /// earlier than the truth (a cancelled entry): that costs one look.
    next_due: AtomicU64,
}

struct State {
    wheel: TimerWheel<Waker>,
    /// The reactor timer, set at most one slack after the next tick with
    /// work.
    reactor: Timer,
    /// What `reactor` is set for; `None` when it is not.
    armed: Option<Instant>,
    /// The thread's polls fired the due entries before the reactor timer
    /// did: it may keep the slack.
    busy: bool,
    /// The thread's polls fired entries since the reactor timer last did.
    polled: bool,
    /// Wakes the shard when `reactor` fires.
    waker: Waker,
}

thread_local! {
    static SHARD: Arc<Shard> = Shard::new();
}

impl Shard {
    fn new() -> Arc<Shard> {
        Arc::new_cyclic(|me: &Weak<Shard>| Shard {
            state: Mutex::new(State {
                wheel: TimerWheel::new(timer_resolution()),
                reactor: Timer::never(),
                armed: None,
                busy: false,
                polled: false,
                waker: Waker::from(Arc::new(Fire(me.clone()))),
            }),
            next_due: AtomicU64::new(u64::MAX),
        })
    }

    /// The calling thread's shard.
    pub(crate) fn current() -> Arc<Shard> {
        SHARD.with(Arc::clone)
    }

    /// Fires the calling thread's due timers, if any.
    pub(crate) fn service_current(now: Instant) {
        SHARD.with(|shard| shard.service(now));
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes `waker` at `deadline`: within the resolution if the thread
    /// has traffic, within the slack if not.
    pub(crate) fn insert(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let mut state = self.lock();
        let key = state.wheel.insert(deadline, waker);
        let due = self.follow(&mut state);
        drop(state);
        if due {
            self.fire(false);
        }
        key
    }

    /// Forgets a timer; a stale key is a no-op.
    pub(crate) fn cancel(&self, key: TimerKey) {
        // The reactor timer stays: firing early with nothing due is cheap,
        // moving it is not.
        self.lock().wheel.cancel(key);
    }

    /// Fires what is due, if anything: a connection of the thread is
    /// being polled anyway.
    pub(crate) fn service(&self, now: Instant) {
        if now.as_nanos() >= self.next_due.load(Ordering::Relaxed) {
            self.fire(false);
        }
    }

    /// Wakes whatever is due, and sets the reactor timer for the rest.
    /// When the reactor timer fired, what it finds tells whether the
    /// thread's polls keep up on their own.
    fn fire(&self, by_reactor: bool) {
        let mut due = Vec::new();
        let mut first = by_reactor;
        loop {
            let mut state = self.lock();
            let now = clock::now();
            while let Some((_, waker)) = state.wheel.poll_expired(now) {
                due.push(waker);
            }
            if std::mem::take(&mut first) {
                // Busy: the thread's polls fired entries since the last
                // time (what this one finds says little: the wheel also
                // asks to be woken where it moves timers down a level).
                state.armed = None;
                state.busy = state.polled;
                state.polled = false;
            } else if !by_reactor && !due.is_empty() {
                state.polled = true;
            }
            if !self.follow(&mut state) {
                break;
            }
            // The reactor timer's moment came while we worked: go on.
        }
        for waker in due {
            waker.wake();
        }
    }

    /// After the wheel changed: publishes its next tick, and sets the
    /// reactor timer for it (one slack after it on a busy thread) unless it
    /// is set sooner. Returns
    /// whether that moment has already come (the caller then fires, once
    /// it has let go of the lock).
    fn follow(&self, state: &mut State) -> bool {
        let next = state.wheel.next_expiration();
        self.next_due
            .store(next.map_or(u64::MAX, Instant::as_nanos), Ordering::Relaxed);
        let Some(next) = next else { return false };
        let at = if state.busy { next + timer_slack() } else { next };
        if state.armed.is_some_and(|armed| armed <= at) {
            return false;
        }
        state.reactor.set_at(clock::to_std(at));
        // Polling registers it with our waker (set_at alone re-registers
        // only a timer polled before).
        let mut cx = Context::from_waker(&state.waker);
        match state.reactor.poll(&mut cx) {
            Poll::Ready(_) => {
                state.armed = None;
                true
            }
            Poll::Pending => {
                state.armed = Some(at);
                false
            }
        }
    }

    /// The reactor timer fired.
    fn on_reactor_timer(&self) {
        self.fire(true);
    }
}

/// The reactor timer's waker.
struct Fire(Weak<Shard>);

impl Wake for Fire {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shard) = self.0.upgrade() {
            shard.on_reactor_timer();
        }
    }
}

/// A connection's one timer: an entry in a shard's wheel, moved only when
/// the deadline moves earlier or the timer fired ([`pulse_driver::TimerSlot`]).
#[derive(Default)]
pub(crate) struct ConnTimer {
    slot: pulse_driver::TimerSlot,
    entry: Option<(Arc<Shard>, TimerKey)>,
}

impl ConnTimer {
    /// Whether the timer is set and its deadline has passed.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.slot.armed().is_some_and(|at| at <= now)
    }

    /// The deadline was handled: the next must be set afresh.
    pub(crate) fn fired(&mut self) {
        self.slot.fired();
        self.cancel_entry();
    }

    /// Follows the session's deadline, by the re-arm rule. `waker` wakes
    /// the connection's driver whichever task polls it (it goes through
    /// the driver's own waker slot), so it never goes stale.
    pub(crate) fn follow(&mut self, deadline: Option<Instant>, waker: impl FnOnce() -> Waker) {
        match self.slot.rearm(deadline) {
            pulse_driver::Arm::Keep => {}
            pulse_driver::Arm::Set(at) => {
                let shard = match self.entry.take() {
                    Some((shard, key)) => {
                        shard.cancel(key);
                        shard
                    }
                    None => Shard::current(),
                };
                let key = shard.insert(at, waker());
                self.entry = Some((shard, key));
            }
            pulse_driver::Arm::Cancel => self.cancel_entry(),
        }
    }

    fn cancel_entry(&mut self) {
        if let Some((shard, key)) = self.entry.take() {
            shard.cancel(key);
        }
    }

    /// When it is set for.
    pub(crate) fn armed(&self) -> Option<Instant> {
        self.slot.armed()
    }

    /// Fires the due timers of this connection's thread (its shard), if
    /// any: the first step of every poll.
    pub(crate) fn service(&self, now: Instant) {
        match &self.entry {
            Some((shard, _)) => shard.service(now),
            None => Shard::service_current(now),
        }
    }
}

impl Drop for ConnTimer {
    fn drop(&mut self) {
        self.cancel_entry();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn entries_fire_on_time_and_cancelled_ones_never() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let shard = Shard::current();
        let at = clock::now() + Duration::from_millis(20);
        shard.insert(at, waker.clone());
        let cancelled = shard.insert(at, waker);
        shard.cancel(cancelled);
        async_io::block_on(async {
            let started = std::time::Instant::now();
            while count.0.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(10) {
                Timer::after(Duration::from_millis(5)).await;
            }
        });
        assert!(clock::now() >= at);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one fired, the cancelled one not");
    }

    #[test]
    fn a_poll_on_the_thread_fires_what_is_due_without_the_reactor() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let shard = Shard::current();
        let at = clock::now() + Duration::from_millis(5);
        shard.insert(at, Waker::from(count.clone()));
        shard.service(clock::now());
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "never early");
        // No reactor runs on this thread: only the service can fire it.
        std::thread::sleep(Duration::from_millis(7));
        shard.service(clock::now());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
