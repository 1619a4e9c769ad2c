//! The driver: the one task that moves bytes and time between a transport
//! and its session. It decides nothing about the protocol: the steps are
//! pulse-driver's, the waiting is async-io's.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pulse_driver::{clock, Flushed, Linger};

use crate::shared::{count, Shared};
use crate::timers::ConnTimer;
use crate::transport::{Io, Lingering, WithContext};

/// Turns of the loop per poll before yielding to other tasks.
const TURNS_PER_POLL: usize = 8;

static LIVE_DRIVERS: AtomicUsize = AtomicUsize::new(0);

/// How many connection drivers are alive in this process (each owns one
/// transport and one timer entry): for leak checks and monitoring.
///
/// # Examples
///
/// ```
/// assert_eq!(pulse_smol::live_drivers(), 0);
/// ```
pub fn live_drivers() -> usize {
    LIVE_DRIVERS.load(Ordering::Relaxed)
}

struct Live;

impl Live {
    fn new() -> Live {
        LIVE_DRIVERS.fetch_add(1, Ordering::Relaxed);
        Live
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        LIVE_DRIVERS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drives one connection: its transport, its timer, its heartbeats.
///
/// A connection does nothing until its driver runs: spawn it on your
/// executor (`smol::spawn(driver).detach()`), or poll it alongside your own
/// futures. It finishes, closing the transport, once the connection is
/// closed. Dropping it before then closes the connection at once
/// ("going away"), telling the peer if its transport takes the CLOSE now.
///
/// It is a plain state machine (no boxed async block inside), so a spawned
/// driver costs one task allocation of a couple of hundred bytes.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
/// // On any executor; or polled beside the application's own futures.
/// smol::spawn(driver).detach();
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[must_use = "a connection does nothing unless its driver runs"]
pub struct Driver {
    shared: Arc<Shared>,
    /// `None` once finished: the transport closes at once, not when dropped.
    io: Option<Io>,
    timer: ConnTimer,
    /// The last read filled the buffer: read again before asking for
    /// readiness, which would only report what is already there.
    more: bool,
    /// The session is over, the transport's last bytes not yet out.
    lingering: Option<Lingering>,
    live: Option<Live>,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, io: Io) -> Driver {
        Driver {
            shared,
            io: Some(io),
            timer: ConnTimer::default(),
            more: false,
            lingering: None,
            live: Some(Live::new()),
        }
    }

    /// Ends the connection for the application: the session, if it has
    /// not ended ("going away" to the peer, if the transport takes it
    /// now), the counters, and the tasks waiting on it. The transport
    /// stays, for its last bytes.
    fn end_session(&mut self, cx: &mut Context<'_>) {
        let Some(io) = self.io.as_mut() else { return };
        let mut inner = self.shared.lock();
        if inner.is_finished() {
            return;
        }
        inner.finish(self.shared.peer, count(), &mut WithContext(io, cx));
        drop(inner);
        self.shared.to_app.notify(usize::MAX);
    }

    /// Drops the transport, after its last words as far as they go now.
    fn release(&mut self, cx: &mut Context<'_>) {
        let Some(mut io) = self.io.take() else { return };
        self.live = None;
        io.shut(cx);
        if let Io::UdpPeer(_, peer, link) = &io {
            link.gone(*peer);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let cx = &mut Context::from_waker(Waker::noop());
        self.end_session(cx);
        self.release(cx);
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Register before looking, so a notification in between is not lost.
        this.shared.driver_waker.register(cx.waker());
        this.timer.service(clock::now());
        for _ in 0..TURNS_PER_POLL {
            let Some(io) = this.io.as_mut() else {
                return Poll::Ready(());
            };
            if let Some(lingering) = &mut this.lingering {
                // Over, but the transport still holds bytes the session
                // counted as sent (TLS records: the last messages, the
                // CLOSE), and after a graceful close the peer may still
                // send until it ends its side. For at most the close
                // timeout.
                if io.poll_close_out(cx, lingering).is_ready() || this.timer.is_due(clock::now()) {
                    this.release(cx);
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
            let mut inner = this.shared.lock();
            let peer = this.shared.peer;
            let step = inner.send_step(peer, count(), &mut WithContext(io, cx));
            if inner.session.is_closed() {
                // Whatever the session did not hand the transport now
                // never goes; what the transport took must still get out.
                let linger = Linger::after(&inner);
                drop(inner);
                this.end_session(cx);
                this.lingering = Some(Lingering::new(linger));
                this.timer.fired();
                let shared = &this.shared;
                let until = clock::now() + linger.timeout;
                this.timer.follow(Some(until), || Waker::from(shared.clone()));
                continue;
            }
            let mut busy = false;
            if !inner.session.is_input_paused() && (this.more || io.poll_readable(cx)) {
                let (read, more) = inner.receive_step(peer, count(), &mut WithContext(io, cx));
                this.more = more;
                busy |= read;
            }
            if step == Flushed::Blocked && io.poll_writable(cx) {
                busy = true;
            }
            // The timer after the reads: frames that arrived before the
            // deadline are counted before any verdict.
            let now = clock::now();
            if this.timer.is_due(now) {
                this.timer.fired();
                inner.session.handle_timeout(now);
                busy = true;
            }
            if !busy {
                let shared = &this.shared;
                this.timer
                    .follow(inner.session.poll_timeout(), || Waker::from(shared.clone()));
            }
            let news = inner.take_news();
            drop(inner);
            if news {
                this.shared.to_app.notify(usize::MAX);
            }
            if !busy {
                return Poll::Pending;
            }
        }
        // A long burst: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("armed", &self.timer.armed())
            .field("finished", &self.io.is_none())
            .finish()
    }
}
