//! Which probe connections may have moved: each probe's socket wakes a
//! waker of its own, which files its slot here and wakes the driver, so a
//! wake-up polls only the probes it concerns, not all of them.

use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

use atomic_waker::AtomicWaker;

/// The slots woken since the driver last looked, and the driver's waker.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    slots: Mutex<Vec<u32>>,
    pub(crate) driver: AtomicWaker,
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
        self.lock().push(slot);
    }

    /// The slots woken since the last call, each once. A slot may be one
    /// reused since by another probe: polling it is then only a spurious
    /// wake-up.
    pub(crate) fn take(&self, into: &mut Vec<u32>) {
        into.clear();
        std::mem::swap(&mut *self.lock(), into);
        into.sort_unstable();
        into.dedup();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
        self.ready.driver.wake();
    }
}
