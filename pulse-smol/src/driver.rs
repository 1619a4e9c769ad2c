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
use futures_lite::future::{self, FutureExt};

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

    async fn readable(&self) {
        let _ = match self {
            Io::Tcp(s) => s.readable().await,
            Io::Udp(s) => s.readable().await,
            Io::UdpPeer(..) => future::pending().await,
        };
    }

    async fn writable(&self) {
        let _ = match self {
            Io::Tcp(s) => s.writable().await,
            Io::Udp(s) => s.writable().await,
            Io::UdpPeer(s, ..) => s.writable().await,
        };
    }
}

/// Drives one connection: its socket, its timer, its heartbeats.
///
/// A connection does nothing until its driver runs: spawn it on your
/// executor (`smol::spawn(driver).detach()`), or poll it alongside your own
/// futures. It finishes, closing the socket, once the connection is closed.
#[must_use = "a connection does nothing unless its driver runs"]
pub struct Driver {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, io: Io) -> Driver {
        Driver {
            future: Box::pin(run(shared, io)),
        }
    }
}

impl Future for Driver {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Driver")
    }
}

enum Wake {
    Readable,
    Writable,
    Timer,
    Notified,
}

/// What one pass over the session found.
struct Step {
    want_write: bool,
    paused: bool,
    deadline: Option<pulse_proto::Instant>,
    done: bool,
}

async fn run(shared: Arc<Shared>, io: Io) {
    let _live = Live::new();
    let mut timer = Timer::never();
    let mut armed: Option<pulse_proto::Instant> = None;
    loop {
        // Listen before looking, so a notification in between is not lost.
        let notified = shared.to_driver.listen();
        let step = flush(&shared, &io);
        if step.done {
            break;
        }
        // The session's deadline only moves later on input: re-arm only when
        // it moved earlier (a local call) or the timer has fired.
        if let Some(deadline) = step.deadline {
            if armed.is_none_or(|at| deadline < at) {
                timer.set_at(clock::to_std(deadline));
                armed = Some(deadline);
            }
        }
        let read = async {
            if io.reads_itself() && !step.paused {
                io.readable().await;
                Wake::Readable
            } else {
                future::pending().await
            }
        };
        let write = async {
            if step.want_write {
                io.writable().await;
                Wake::Writable
            } else {
                future::pending().await
            }
        };
        // While reading is paused by the application's backlog, the peer's
        // silence would be ours: run no timers until reading resumes.
        let time = async {
            if armed.is_some() && !step.paused {
                (&mut timer).await;
                Wake::Timer
            } else {
                future::pending().await
            }
        };
        let wake = read.or(write).or(time).or(async {
            notified.await;
            Wake::Notified
        });
        match wake.await {
            Wake::Readable => read_all(&shared, &io),
            Wake::Timer => {
                armed = None;
                // Frames may be waiting: read them before any verdict.
                read_all(&shared, &io);
                shared.lock().session.handle_timeout(clock::now());
            }
            Wake::Writable | Wake::Notified => {}
        }
    }
    shared.lock().finished = true;
    shared.to_app.notify(usize::MAX);
    if let Io::UdpPeer(_, peer, Some(gone)) = &io {
        let _ = gone.try_send(*peer);
    }
}

/// Writes what the socket takes, hands events to the application, and
/// reports what to wait for.
fn flush(shared: &Shared, io: &Io) -> Step {
    let mut inner = shared.lock();
    let now = clock::now();
    let mut want_write = false;
    let mut wrote = false;
    while let Some(bytes) = inner.session.poll_transmit(now) {
        match io.send(bytes) {
            Ok(n) => {
                inner.session.advance_transmit(n);
                wrote = true;
            }
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
    let news = inner.drain_events();
    let step = Step {
        want_write,
        paused: inner.reading_paused(),
        deadline: inner.session.poll_timeout(),
        // Once closed, what could not be written now never will be.
        done: inner.session.is_closed(),
    };
    drop(inner);
    if news || wrote {
        shared.to_app.notify(usize::MAX);
    }
    step
}

/// Reads until the socket is drained (or the budget is spent), handing
/// every read to the session at once.
fn read_all(shared: &Shared, io: &Io) {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        for _ in 0..READS_PER_WAKE {
            let result = io.recv(&mut buf);
            let mut inner = shared.lock();
            let now = clock::now();
            match result {
                Ok(0) if io.is_stream() => return inner.session.handle_eof(now),
                Ok(n) if io.is_stream() => inner.session.handle_input(now, &buf[..n]),
                Ok(n) => inner.session.handle_datagram(now, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors on UDP say little; only the protocol convicts.
                Err(_) if !io.is_stream() => return,
                Err(_) => return inner.session.handle_eof(now),
            }
            inner.drain_events();
            if inner.reading_paused() || inner.session.is_closed() {
                return;
            }
        }
    });
    shared.to_app.notify(usize::MAX);
}
