//! What a connection's driver task and its handles share: pulse-driver's
//! [`Mailbox`] behind a lock, with the wakers of the tasks waiting on it
//! inside (no `Notify`, no `Notified` in any task's state).

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};

use pulse_driver::{Counters, CountersSnapshot, Mailbox, PeerName};
use pulse_proto::Session;

/// Every connection of this process, counted together.
static COUNTERS: Counters = Counters::new();

/// pulse-tokio's aggregate counters for this process: connections open,
/// verdicts, refusals and closes by code and initiator, bytes in and out.
///
/// # Examples
///
/// ```
/// let counters = pulse_tokio::counters();
/// println!("{} open, {} verdicts", counters.open, counters.verdicts);
/// ```
pub fn counters() -> CountersSnapshot {
    COUNTERS.snapshot()
}

pub(crate) fn count() -> &'static Counters {
    &COUNTERS
}

#[derive(Debug)]
pub(crate) struct Shared {
    mailbox: Mutex<Mailbox>,
    pub(crate) peer: PeerName,
    pub(crate) local: Option<SocketAddr>,
}

impl Shared {
    pub(crate) fn new(session: Session, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Shared {
        Shared {
            mailbox: Mutex::new(Mailbox::new(session)),
            peer: PeerName(peer),
            local,
        }
    }

    pub(crate) fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        // A panic elsewhere must not take every connection down with it.
        self.mailbox.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
