//! The driver task: the one task per connection that moves bytes and time
//! between the transport and the session. Its steps are pulse-driver's;
//! the waiting is tokio's: the transport's readiness, one `Sleep`, and the
//! task's waker kept in the mailbox for the application's handles.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pulse_driver::{clock, Arm, Linger};
use tokio::time::Sleep;

use crate::shared::{count, Locked, Shared};
use crate::transport::{Io, Polled};

/// Turns of the loop per poll before yielding to other tasks.
const TURNS_PER_POLL: usize = 8;

static LIVE_DRIVERS: AtomicUsize = AtomicUsize::new(0);

/// How many connection driver tasks are alive in this process (each owns
/// one transport and one timer): for leak checks and monitoring.
///
/// # Examples
///
/// ```
/// assert_eq!(pulse_tokio::live_drivers(), 0);
/// ```
pub fn live_drivers() -> usize {
    LIVE_DRIVERS.load(Ordering::Relaxed)
}

/// Spawns the driver task of a new connection on the current runtime.
///
/// The task's state is the connection's `Arc` and its one `Sleep`, pinned
/// in it: no allocation of their own. The transport and the timer slot
/// wait in the shared state, under the lock the driver takes for every
/// turn anyway, so that tokio's task cell (aligned to 128 bytes) stays at
/// two cache lines. It is a block that keeps `owned` where it was
/// captured, not an `async fn` (which would hold a moved copy too).
pub(crate) fn spawn(shared: Arc<Shared>) {
    LIVE_DRIVERS.fetch_add(1, Ordering::Relaxed);
    let mut owned = Owned { shared };
    tokio::spawn(async move {
        let mut sleep = pin!(tokio::time::sleep(std::time::Duration::from_secs(3600)));
        poll_fn(|cx| owned.turns(sleep.as_mut(), cx)).await;
    });
}

/// What the task owns; dropping it (the runtime shutting down, the task
/// aborted) ends the connection as finishing does.
struct Owned {
    shared: Arc<Shared>,
}

/// Ends the connection for the application: the session, if it has not
/// ended ("going away" to the peer, if the transport takes it now), the
/// counters, and the tasks waiting on it. The transport stays, for its
/// last bytes.
fn end_session(shared: &Shared, cx: &mut Context<'_>) {
    let waiting = {
        let mut locked = shared.lock();
        let Locked { mailbox, io, .. } = &mut *locked;
        match io.as_mut() {
            Some(io) if !mailbox.is_finished() => {
                mailbox.finish(shared.peer, count(), &mut Polled { io, cx });
                mailbox.app_wakers()
            }
            _ => return,
        }
    };
    waiting.into_iter().for_each(Waker::wake);
}

/// Drops the transport, after its last words as far as they go now.
fn release(shared: &Shared, cx: &mut Context<'_>) {
    let Some(mut io) = shared.lock().io.take() else {
        return;
    };
    io.shut(cx);
    if let Io::UdpPeer(_, _, link) = &io {
        link.peer_gone();
    }
    LIVE_DRIVERS.fetch_sub(1, Ordering::Relaxed);
}

impl Drop for Owned {
    fn drop(&mut self) {
        let cx = &mut Context::from_waker(Waker::noop());
        end_session(&self.shared, cx);
        release(&self.shared, cx);
    }
}

impl Owned {
    fn turns(&mut self, mut sleep: Pin<&mut Sleep>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &*self.shared;
        for _ in 0..TURNS_PER_POLL {
            let mut locked = shared.lock();
            let Locked {
                mailbox,
                io,
                timer,
                drain_peer,
            } = &mut *locked;
            let Some(io) = io.as_mut() else {
                return Poll::Ready(());
            };
            if mailbox.is_finished() {
                // Over, but the transport still holds bytes the session
                // counted as sent (TLS records: the last messages, the
                // CLOSE), and after a graceful close the peer may still
                // send (a PONG) until it ends its side. For at most the
                // close timeout.
                let out = io.poll_close_out(cx, *drain_peer).is_ready();
                drop(locked);
                if out || sleep.as_mut().poll(cx).is_ready() {
                    release(shared, cx);
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
            // Registered before looking: the handles wake this task
            // through it for what they change after.
            mailbox.register_driver(cx.waker());
            let mut polled = Polled { io, cx };
            // A write that would block registered this task with the
            // transport: nothing more to do for it here.
            let _flushed = mailbox.send_step(shared.peer, count(), &mut polled);
            if mailbox.session.is_closed() {
                // Whatever the session did not hand the transport now
                // never goes; what the transport took must still get out.
                let linger = Linger::after(mailbox);
                *drain_peer = linger.until_peer_ends;
                drop(locked);
                end_session(shared, cx);
                sleep.as_mut().reset(tokio::time::Instant::now() + linger.timeout);
                continue;
            }
            let mut busy = false;
            if !mailbox.session.is_input_paused() {
                // Read again at once when the last read filled the buffer.
                let (read, more) = mailbox.receive_step(shared.peer, count(), &mut polled);
                busy |= read || more;
            }
            // The timer after the reads: frames that arrived before the
            // deadline are counted before any verdict.
            if timer.armed().is_some() && sleep.as_mut().poll(cx).is_ready() {
                timer.fired();
                mailbox.session.handle_timeout(clock::now());
                busy = true;
            }
            // The one `Sleep` moves only when the deadline moved earlier
            // (or it fired): a received frame costs no timer operation.
            if let Arm::Set(at) = timer.rearm(mailbox.session.poll_timeout()) {
                sleep.as_mut().reset(clock::to_std(at).into());
                // Registers the new deadline with this task.
                busy |= sleep.as_mut().poll(cx).is_ready();
            }
            let waiting = mailbox.wakers_for_news();
            drop(locked);
            waiting.into_iter().for_each(Waker::wake);
            if !busy {
                return Poll::Pending;
            }
        }
        // A long burst: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
