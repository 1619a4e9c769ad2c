//! What a connection's driver task and its handles share: pulse-driver's
//! [`Mailbox`] behind a lock, with the wakers of the tasks waiting on it
//! inside (no `Notify`, no `Notified` in any task's state).

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use pulse_driver::{Mailbox, PeerName, TimerSlot};
use pulse_proto::Session;

use crate::transport::Io;

pulse_driver::process_counters!(pulse_tokio);

pub(crate) struct Shared {
    locked: Mutex<Locked>,
    pub(crate) peer: PeerName,
    pub(crate) local: Option<SocketAddr>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never waits for the lock: a connection may be printed by the
        // task that holds it.
        let mut debug = f.debug_struct("Shared");
        match self.locked.try_lock() {
            Ok(locked) => debug.field("mailbox", &locked.mailbox),
            Err(_) => debug.field("mailbox", &format_args!("<locked>")),
        };
        debug.field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// What the lock guards: the mailbox, and what only the driver task
/// uses — the transport and its timer slot. They live here rather than
/// in the task's own state (the driver holds this lock whenever it uses
/// them anyway) so that tokio's task cell, which it aligns to 128 bytes,
/// stays at two lines instead of three: 64 bytes moved here save 128
/// there, for every connection.
pub(crate) struct Locked {
    pub(crate) mailbox: Mailbox,
    /// Taken when the driver finishes.
    pub(crate) io: Option<Io>,
    pub(crate) timer: TimerSlot,
    /// The session is over and ended gracefully: before the transport
    /// goes, what the peer still sends is read until it ends its side.
    pub(crate) drain_peer: bool,
}

/// The mailbox, locked.
pub(crate) struct MailboxGuard<'a>(MutexGuard<'a, Locked>);

impl Deref for MailboxGuard<'_> {
    type Target = Mailbox;
    fn deref(&self) -> &Mailbox {
        &self.0.mailbox
    }
}

impl DerefMut for MailboxGuard<'_> {
    fn deref_mut(&mut self) -> &mut Mailbox {
        &mut self.0.mailbox
    }
}

impl Shared {
    pub(crate) fn new(session: Session, io: Io, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Shared {
        Shared {
            locked: Mutex::new(Locked {
                mailbox: Mailbox::new(session),
                io: Some(io),
                timer: TimerSlot::default(),
                drain_peer: false,
            }),
            peer: PeerName(peer),
            local,
        }
    }

    /// Everything under the lock: for the driver task.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panic elsewhere must not take every connection down with it.
        self.locked.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn mailbox(&self) -> MailboxGuard<'_> {
        MailboxGuard(self.lock())
    }

    /// Runs `f` on the mailbox, then wakes the driver task if `f` says
    /// so: output queued, a close asked, the application caught up. The
    /// task's waker waits in the mailbox (no `Notify` in the task).
    pub(crate) fn poke<T>(&self, f: impl FnOnce(&mut Mailbox) -> (T, bool)) -> T {
        let (result, driver) = {
            let mut mailbox = self.mailbox();
            let (result, wake) = f(&mut mailbox);
            (result, wake.then(|| mailbox.driver_waker()).flatten())
        };
        if let Some(driver) = driver {
            driver.wake();
        }
        result
    }

    /// Wakes the driver task.
    pub(crate) fn wake_driver(&self) {
        self.poke(|_| ((), true));
    }

    /// Waits until `ready` finds what it looks for in the mailbox; the
    /// task's waker waits in the mailbox meanwhile, for the driver's news.
    pub(crate) fn wait_for<'a, T>(
        &'a self,
        mut ready: impl FnMut(&mut Mailbox) -> Option<T> + 'a,
    ) -> impl Future<Output = T> + 'a {
        poll_fn(move |cx| self.poll_for(cx, &mut ready))
    }

    /// [`Shared::wait_for`], one poll of it.
    pub(crate) fn poll_for<T>(&self, cx: &mut Context<'_>, ready: impl FnOnce(&mut Mailbox) -> Option<T>) -> Poll<T> {
        let mut mailbox = self.mailbox();
        match ready(&mut mailbox) {
            Some(found) => Poll::Ready(found),
            None => {
                // Under the lock the driver takes to tell news: none is
                // missed in between.
                mailbox.register_app(cx.waker());
                Poll::Pending
            }
        }
    }
}
