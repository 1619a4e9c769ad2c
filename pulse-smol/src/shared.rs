//! The state a connection's driver and its handles share.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use atomic_waker::AtomicWaker;
use pulse_driver::{Mailbox, PeerName};
use pulse_proto::Session;

pulse_driver::process_counters!(pulse_smol);

pub(crate) struct Shared {
    inner: Mutex<Mailbox>,
    /// Handles to the driver (one task): output queued, close asked,
    /// inbound drained. A single waker slot, never allocated.
    pub(crate) driver_waker: AtomicWaker,
    /// Driver to handles: inbound arrived, output drained, closed.
    pub(crate) to_app: event_listener::Event,
    handles: AtomicUsize,
    pub(crate) peer: PeerName,
    pub(crate) local: Option<SocketAddr>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("peer", &self.peer.0).finish()
    }
}

/// A driver's timer wakes the driver through its waker slot, whatever task
/// polls it now.
impl std::task::Wake for Shared {
    fn wake(self: std::sync::Arc<Self>) {
        self.driver_waker.wake();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.driver_waker.wake();
    }
}

impl Shared {
    pub(crate) fn new(session: Session, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Shared {
        Shared {
            inner: Mutex::new(Mailbox::new(session)),
            driver_waker: AtomicWaker::new(),
            to_app: event_listener::Event::new(),
            handles: AtomicUsize::new(0),
            peer: PeerName(peer),
            local,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Mailbox> {
        // A panic elsewhere must not take every connection down with it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// The last handle is gone: nobody can use the connection any more, so
    /// close it rather than keep a driver heartbeating for no one.
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.lock().abandon();
            self.driver_waker.wake();
        }
    }
}
