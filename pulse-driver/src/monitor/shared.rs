//! What a monitor's handles ([`super::Watcher`]) and its driver task
//! ([`super::WatchTask`]) share: the [`WatchCore`] behind one lock, the
//! announcement sockets bound for the driver to take, and the wake-ups
//! between them. Nothing here is a runtime's: wakers only.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

use super::WatchCore;

/// A monitor's state, shared by its handles and its driver.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Probe sockets that woke, and the driver's waker.
    pub(crate) ready: Arc<Ready>,
    pub(crate) handles: AtomicUsize,
}

pub(crate) struct State {
    pub(crate) core: WatchCore,
    /// Announcement sockets bound by a handle, not yet taken by the
    /// driver (which registers them with its runtime, in its runtime).
    pub(crate) bound: Vec<UdpSocket>,
    /// Announcement sockets bound in all.
    pub(crate) sockets: usize,
    /// The tasks waiting for the monitor's events, each once.
    waiting: Vec<Waker>,
}

impl Shared {
    pub(crate) fn new(core: WatchCore) -> Shared {
        Shared {
            state: Mutex::new(State {
                core,
                bound: Vec::new(),
                sockets: 0,
                waiting: Vec::new(),
            }),
            ready: Arc::default(),
            handles: AtomicUsize::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the monitor down with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn has_handles(&self) -> bool {
        self.handles.load(Ordering::Acquire) > 0
    }
}

impl State {
    /// Keeps `waker` to be woken when the monitor may have events.
    pub(crate) fn wait(&mut self, waker: &Waker) {
        if !self.waiting.iter().any(|w| w.will_wake(waker)) {
            self.waiting.push(waker.clone());
        }
    }

    /// The tasks to wake now that the monitor may have events: woken
    /// outside the lock. A task that was cancelled while waiting is woken
    /// once for nothing, then forgotten.
    pub(crate) fn take_waiting(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.waiting)
    }
}

/// Which probe connections may have moved: each probe's socket wakes a
/// waker of its own, which files its slot here and wakes the driver, so a
/// wake-up polls only the probes it concerns, not all of them.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    slots: Mutex<Vec<u32>>,
    driver: Mutex<Option<Waker>>,
}

impl Ready {
    /// A waker for the probe in `slot`.
    pub(crate) fn waker(self: &Arc<Self>, slot: u32) -> Waker {
        Waker::from(Arc::new(SlotWaker {
            slot,
            ready: self.clone(),
        }))
    }

    /// Files `slot` as ready (a probe just opened polls once to register
    /// its interest).
    pub(crate) fn push(&self, slot: u32) {
        lock(&self.slots).push(slot);
    }

    /// The slots woken since the last call, each once. A slot may be one
    /// reused since by another probe: polling it is then only a spurious
    /// wake-up.
    pub(crate) fn take(&self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(&mut *lock(&self.slots), into);
        into.sort_unstable();
        into.dedup();
    }

    /// The driver task's waker, kept for the probes and the handles.
    pub(crate) fn register_driver(&self, waker: &Waker) {
        let mut driver = lock(&self.driver);
        if !driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *driver = Some(waker.clone());
        }
    }

    /// Wakes the driver task (outside the lock: a waker may run anything).
    pub(crate) fn wake_driver(&self) {
        let driver = lock(&self.driver).clone();
        if let Some(driver) = driver {
            driver.wake();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct SlotWaker {
    slot: u32,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.slot);
        self.ready.wake_driver();
    }
}
