//! What a monitor's handles and its driver share: pulse-driver's
//! [`WatchCore`] and the announcement sockets, behind one lock, and the
//! wake-ups between them.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_io::Async;
use pulse_driver::monitor::WatchCore;

use super::ready::Ready;

/// A monitor's state, shared by its [`super::Watcher`] handles and its driver.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Probe sockets that woke, and the driver's waker (handles wake it
    /// after any change to the monitor).
    pub(crate) ready: Arc<Ready>,
    /// Driver to handles: the monitor may have events.
    pub(crate) events: event_listener::Event,
    pub(crate) handles: AtomicUsize,
}

pub(crate) struct State {
    pub(crate) core: WatchCore,
    pub(crate) sockets: Vec<AnnounceSocket>,
}

/// An announcement socket and what it may still read this turn.
pub(crate) struct AnnounceSocket {
    pub(crate) socket: Async<UdpSocket>,
    pub(crate) budget: usize,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not take the monitor down with it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn has_handles(&self) -> bool {
        self.handles.load(Ordering::Acquire) > 0
    }
}
