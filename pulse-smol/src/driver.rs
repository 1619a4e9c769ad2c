//! The driver: the one task that moves bytes and time between a socket and
//! its session. It decides nothing about the protocol.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::{Async, Timer};

use crate::clock;
use crate::shared::Shared;

/// Reads per wake-up before giving other tasks a turn.
const READS_PER_WAKE: usize = 16;
/// The shared read buffer's size: one per thread, never per connection.
const READ_BUFFER: usize = 64 * 1024;

thread_local! {
    /// Reads land here and are handed to the session before the task yields,
    /// so an idle connection holds no read buffer of its own.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUFFER]);
}

static LIVE_DRIVERS: AtomicUsize = AtomicUsize::new(0);

/// How many connection drivers are alive in this process (each owns one
/// socket and one timer): for leak checks and monitoring.
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

/// The transport under one session.
pub(crate) enum Io {
    Tcp(Async<TcpStream>),
    /// A UDP socket connected to the peer.
    Udp(Async<UdpSocket>),
    /// A peer of a UDP listener: we send from the shared socket; the
    /// listener reads and hands us the peer's datagrams.
    UdpPeer(
        Arc<Async<UdpSocket>>,
        SocketAddr,
        Option<async_channel::Sender<SocketAddr>>,
    ),
}

impl Io {
    fn is_stream(&self) -> bool {
        matches!(self, Io::Tcp(_))
    }

    fn reads_itself(&self) -> bool {
        !matches!(self, Io::UdpPeer(..))
    }

    fn send(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.get_ref().write(bytes),
            Io::Udp(s) => s.get_ref().send(bytes),
            Io::UdpPeer(s, peer, _) => s.get_ref().send_to(bytes, peer),
        }
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.get_ref().read(buf),
            Io::Udp(s) => s.get_ref().recv(buf),
            Io::UdpPeer(..) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = match self {
            Io::Tcp(s) => s.poll_readable(cx),
            Io::Udp(s) => s.poll_readable(cx),
            Io::UdpPeer(..) => return Poll::Pending,
        };
        ready.map(|_| ())
    }

    fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        let ready = match self {
            Io::Tcp(s) => s.poll_writable(cx),
            Io::Udp(s) => s.poll_writable(cx),
            Io::UdpPeer(s, ..) => s.poll_writable(cx),
        };
        ready.map(|_| ())
    }
}

/// Drives one connection: its socket, its timer, its heartbeats.
///
/// A connection does nothing until its driver runs: spawn it on your
/// executor (`smol::spawn(driver).detach()`), or poll it alongside your own
/// futures. It finishes, closing the socket, once the connection is closed.
/// Dropping it before then ends the connection as lost.
///
/// It is a plain state machine (no boxed async block inside), so a spawned
/// driver costs one task allocation of a couple of hundred bytes.
#[must_use = "a connection does nothing unless its driver runs"]
pub struct Driver {
    shared: Arc<Shared>,
    /// `None` once finished: the socket closes at once, not when dropped.
    io: Option<Io>,
    timer: Timer,
    /// The deadline the timer is set for; `None` when it is not set.
    armed: Option<pulse_proto::Instant>,
    live: Option<Live>,
}

/// Turns of the loop per poll before yielding to other tasks.
const TURNS_PER_POLL: usize = 8;

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, io: Io) -> Driver {
        Driver {
            shared,
            io: Some(io),
            timer: Timer::never(),
            armed: None,
            live: Some(Live::new()),
        }
    }

    fn finish(&mut self) {
        let Some(io) = self.io.take() else { return };
        self.live = None;
        {
            let mut inner = self.shared.lock();
            if inner.closed.is_none() {
                // Dropped before the session ended: to the application, lost.
                inner.session.handle_eof(clock::now());
                inner.drain_events();
            }
            inner.finished = true;
        }
        self.shared.to_app.notify(usize::MAX);
        if let Io::UdpPeer(_, peer, Some(gone)) = &io {
            let _ = gone.try_send(*peer);
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Register before looking, so a notification in between is not lost.
        this.shared.driver_waker.register(cx.waker());
        for _ in 0..TURNS_PER_POLL {
            let Some(io) = this.io.as_ref() else {
                return Poll::Ready(());
            };
            let step = flush(&this.shared, io);
            if step.done {
                this.finish();
                return Poll::Ready(());
            }
            // The session's deadline only moves later on input: re-arm only
            // when it moved earlier (a local call) or the timer has fired.
            if let Some(deadline) = step.deadline {
                if this.armed.is_none_or(|at| deadline < at) {
                    this.timer.set_at(clock::to_std(deadline));
                    this.armed = Some(deadline);
                }
            }
            let mut busy = false;
            if io.reads_itself() && !step.paused && io.poll_readable(cx).is_ready() {
                read_all(&this.shared, io);
                busy = true;
            }
            if step.want_write && io.poll_writable(cx).is_ready() {
                busy = true;
            }
            // While reading is paused by the application's backlog, the
            // peer's silence would be ours: run no timers until it resumes.
            if this.armed.is_some() && !step.paused && Pin::new(&mut this.timer).poll(cx).is_ready() {
                this.armed = None;
                // Frames waiting to be read were read above: readiness is
                // polled before the timer, and the reactor reports both from
                // the same pass. So no verdict overlooks them.
                this.shared.lock().session.handle_timeout(clock::now());
                busy = true;
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
            .field("armed", &self.armed)
            .field("finished", &self.io.is_none())
            .finish()
    }
}

/// What one pass over the session found.
struct Step {
    want_write: bool,
    paused: bool,
    deadline: Option<pulse_proto::Instant>,
    done: bool,
}

/// Writes what the socket takes, hands events to the application, and
/// reports what to wait for.
fn flush(shared: &Shared, io: &Io) -> Step {
    let mut inner = shared.lock();
    let now = clock::now();
    let queued_before = inner.session.queued_bytes();
    let mut want_write = false;
    while let Some(bytes) = inner.session.poll_transmit(now) {
        match io.send(bytes) {
            Ok(n) => inner.session.advance_transmit(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                want_write = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A datagram that could not go is lost, as datagrams may be.
            Err(_) if !io.is_stream() => inner.session.advance_transmit(0),
            Err(_) => inner.session.handle_eof(now),
        }
    }
    // Wake the application only for news: events, or room for a sender.
    let news = inner.drain_events() || inner.session.queued_bytes() < queued_before;
    let step = Step {
        want_write,
        paused: inner.reading_paused(),
        deadline: inner.session.poll_timeout(),
        // Once closed, what could not be written now never will be.
        done: inner.session.is_closed(),
    };
    drop(inner);
    if news {
        shared.to_app.notify(usize::MAX);
    }
    step
}

/// Reads until the socket is drained (or the budget is spent), handing
/// every read to the session at once.
fn read_all(shared: &Shared, io: &Io) {
    let news = READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut news = false;
        for _ in 0..READS_PER_WAKE {
            let result = io.recv(&mut buf);
            let mut inner = shared.lock();
            let now = clock::now();
            match result {
                Ok(0) if io.is_stream() => inner.session.handle_eof(now),
                Ok(n) if io.is_stream() => inner.session.handle_input(now, &buf[..n]),
                Ok(n) => inner.session.handle_datagram(now, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors on UDP say little; only the protocol convicts.
                Err(_) if !io.is_stream() => break,
                Err(_) => inner.session.handle_eof(now),
            }
            news |= inner.drain_events();
            if inner.reading_paused() || inner.session.is_closed() {
                break;
            }
            // A short read drained the stream. async-io re-arms interest
            // level-triggered, so data arriving later is reported anyway:
            // reading on just to hear EAGAIN would cost a syscall per wake.
            if io.is_stream() && matches!(result, Ok(n) if n < buf.len()) {
                break;
            }
        }
        news
    });
    if news {
        shared.to_app.notify(usize::MAX);
    }
}
