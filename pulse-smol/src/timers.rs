//! One reactor timer per thread for all the connections of that thread.
//!
//! A connection's deadline is an entry in its thread's timer wheel; only
//! the wheel's earliest tick is a timer in async-io's reactor. Setting an
//! async-io timer costs a wake-up of the reactor (an eventfd write and one
//! more `epoll_wait` round, six syscalls), so per-connection timers made
//! every heartbeat deadline pay that; here connections due in the same tick
//! share one, and moving a deadline costs no syscall at all.
//!
//! The reactor timer is driven by a waker of our own: when async-io fires
//! it, the due entries' wakers are woken and the timer is set for the next
//! tick with work, with no task in between (so no spawner is needed).

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

static RESOLUTION_NANOS: AtomicU64 = AtomicU64::new(1_000_000);

/// Sets the resolution of pulse-smol's timers for threads that have not
/// used one yet (call it at start-up). A coarser resolution fires more
/// connections together: fewer wake-ups, at the price of heartbeats and
/// verdicts up to one resolution late. Default
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
    let nanos = u64::try_from(resolution.as_nanos()).unwrap_or(u64::MAX).max(1_000);
    RESOLUTION_NANOS.store(nanos, Ordering::Relaxed);
}

/// The resolution new threads' timers use ([`set_timer_resolution`]).
pub fn timer_resolution() -> Duration {
    Duration::from_nanos(RESOLUTION_NANOS.load(Ordering::Relaxed))
}

/// The timers of one thread's connections.
pub(crate) struct Shard {
    state: Mutex<State>,
}

struct State {
    wheel: TimerWheel<Waker>,
    /// The reactor timer, set for the wheel's next tick with work.
    reactor: Timer,
    /// What `reactor` is set for; `None` while the wheel is empty.
    armed: Option<Instant>,
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
                waker: Waker::from(Arc::new(Fire(me.clone()))),
            }),
        })
    }

    /// The calling thread's shard.
    pub(crate) fn current() -> Arc<Shard> {
        SHARD.with(Arc::clone)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes `waker` at `deadline` (at most one resolution late).
    pub(crate) fn insert(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let mut state = self.lock();
        let key = state.wheel.insert(deadline, waker);
        let due = state.arm();
        drop(state);
        if due {
            self.fire();
        }
        key
    }

    /// Forgets a timer; a stale key is a no-op.
    pub(crate) fn cancel(&self, key: TimerKey) {
        // The reactor timer stays: firing early with nothing due is cheap,
        // moving it is not.
        self.lock().wheel.cancel(key);
    }

    /// The reactor timer fired: wake whatever is due, set it for the next.
    fn fire(&self) {
        let mut due = Vec::new();
        loop {
            let mut state = self.lock();
            let now = clock::now();
            while let Some((_, waker)) = state.wheel.poll_expired(now) {
                due.push(waker);
            }
            state.armed = None;
            if !state.arm() {
                break;
            }
            // The next tick came while we worked: take it now.
        }
        for waker in due {
            waker.wake();
        }
    }
}

impl State {
    /// Sets the reactor timer for the wheel's next tick with work, unless
    /// it is already set that early. Returns whether that tick has already
    /// come: then the caller fires, once it has let go of the lock.
    fn arm(&mut self) -> bool {
        let Some(next) = self.wheel.next_expiration() else {
            return false;
        };
        if self.armed.is_some_and(|armed| armed <= next) {
            return false;
        }
        self.reactor.set_at(clock::to_std(next));
        // Polling registers it with our waker (set_at alone re-registers
        // only a timer polled before).
        let mut cx = Context::from_waker(&self.waker);
        match self.reactor.poll(&mut cx) {
            Poll::Ready(_) => true,
            Poll::Pending => {
                self.armed = Some(next);
                false
            }
        }
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
            shard.fire();
        }
    }
}

/// A connection's one timer: an entry in a shard's wheel, moved only when
/// the deadline moves earlier or the timer fired ([`pulse_driver::TimerSlot`]).
#[derive(Default)]
pub(crate) struct ConnTimer {
    slot: pulse_driver::TimerSlot,
    entry: Option<(Arc<Shard>, TimerKey)>,
    /// The waker the entry holds, to tell when the task's waker changed.
    waker: Option<Waker>,
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

    /// Follows the session's deadline, by the re-arm rule, waking `waker`.
    pub(crate) fn follow(&mut self, deadline: Option<Instant>, waker: &Waker) {
        match self.slot.rearm(deadline) {
            pulse_driver::Arm::Keep => {
                if let (Some(at), Some(held)) = (self.slot.armed(), &self.waker) {
                    if !held.will_wake(waker) {
                        self.set(at, waker);
                    }
                }
            }
            pulse_driver::Arm::Set(at) => self.set(at, waker),
            pulse_driver::Arm::Cancel => self.cancel_entry(),
        }
    }

    fn set(&mut self, at: Instant, waker: &Waker) {
        let shard = match self.entry.take() {
            Some((shard, key)) => {
                shard.cancel(key);
                shard
            }
            None => Shard::current(),
        };
        let key = shard.insert(at, waker.clone());
        self.entry = Some((shard, key));
        self.waker = Some(waker.clone());
    }

    fn cancel_entry(&mut self) {
        if let Some((shard, key)) = self.entry.take() {
            shard.cancel(key);
        }
        self.waker = None;
    }

    /// When it is set for.
    pub(crate) fn armed(&self) -> Option<Instant> {
        self.slot.armed()
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
}
