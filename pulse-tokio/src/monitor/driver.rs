//! The monitor's driver on tokio. pulse-driver's [`WatchTask`] does the
//! work; this only says how tokio registers a socket, waits on it and
//! keeps time.

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::pin::Pin;
use std::task::{Context, Poll};

use pulse_driver::monitor::{PeerEvents, ProbeConn, SockRef, WatchConfig, WatchCore, WatchRuntime, WatchTask, Watcher};
use pulse_monitor::{Monitor, ProbeOutcome};
use tokio::io::Interest;
use tokio::time::Sleep;

/// Runs `monitor`: hands back a [`Watcher`], the handle to add targets and
/// read transitions, snapshots and healthy sets with (from any thread,
/// inside a runtime or not), and the [`WatchDriver`] that opens probe
/// connections, reads announcements and keeps the monitor's time — a
/// future to spawn on a tokio runtime (`tokio::spawn(driver)`). The
/// driver decides nothing: every verdict is the monitor's.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use pulse_monitor::{Check, Config, Monitor, TargetSpec};
/// use pulse_tokio::monitor::{watch, WatchConfig};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed()).unwrap();
/// let (watcher, driver) = watch(WatchConfig::default(), monitor);
/// tokio::spawn(driver);
/// let pool = watcher.add_pool();
/// let tcp = watcher.add_check(Check::Tcp);
/// let backend = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let target = watcher.add_target(TargetSpec::checked(pool, tcp), Some(backend.local_addr()?)).unwrap();
/// let up = loop {
///     if let pulse_monitor::Event::Transition(t) = watcher.recv().await {
///         break t;
///     }
/// };
/// assert_eq!((up.target, up.to), (target, pulse_monitor::Health::Up));
/// assert_eq!(watcher.healthy(pool).len(), 1);
/// # Ok(()) }
/// ```
pub fn watch(config: WatchConfig, monitor: Monitor) -> (Watcher, WatchDriver) {
    pulse_driver::monitor::watch(config, monitor)
}

/// Drives a monitor ([`watch`]): opens the probe connections it asks for,
/// moves them on and reports what became of them, reads the announcement
/// sockets, and runs the monitor's timers. Spawn it on a tokio runtime
/// (`tokio::spawn(driver)`): it registers its sockets and its one `Sleep`
/// with the runtime it runs on. It finishes, closing every socket, when
/// the last [`Watcher`] is dropped.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use pulse_monitor::{Config, Monitor};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
/// let (watcher, driver) = pulse_tokio::monitor::watch(Default::default(), monitor);
/// let task = tokio::spawn(driver);
/// drop(watcher);
/// task.await.unwrap(); // the last handle gone, the driver finishes
/// # }
/// ```
pub type WatchDriver = WatchTask<Tokio>;

/// tokio, as a monitor's driver task waits.
#[derive(Debug)]
pub enum Tokio {}

/// A probe's stream, read and written with tokio's `try_read` and
/// `try_write`: tokio clears a readiness only when its own I/O would block.
#[derive(Debug)]
pub struct ProbeStream(tokio::net::TcpStream);

impl Read for &ProbeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for &ProbeStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
impl std::os::fd::AsFd for ProbeStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(windows)]
impl std::os::windows::io::AsSocket for ProbeStream {
    fn as_socket(&self) -> std::os::windows::io::BorrowedSocket<'_> {
        self.0.as_socket()
    }
}

impl WatchRuntime for Tokio {
    type Stream = ProbeStream;
    type Socket = tokio::net::UdpSocket;
    type Timer = Pin<Box<Sleep>>;

    fn register_stream(stream: TcpStream) -> io::Result<ProbeStream> {
        tokio::net::TcpStream::from_std(stream).map(ProbeStream)
    }

    fn sock(stream: &ProbeStream) -> SockRef<'_> {
        SockRef::from(stream)
    }

    fn poll_ready(stream: &ProbeStream, write: bool, cx: &mut Context<'_>) -> Poll<()> {
        // An error (the runtime shutting down) is found by the next step.
        let ready = match write {
            true => stream.0.poll_write_ready(cx),
            false => stream.0.poll_read_ready(cx),
        };
        ready.map(drop)
    }

    fn advance(
        core: &mut WatchCore,
        conn: &mut ProbeConn,
        stream: &ProbeStream,
        write: bool,
    ) -> Option<Option<ProbeOutcome>> {
        // A step that ends nothing has either blocked in its own I/O or
        // found the connect still under way: in both, the readiness it was
        // polled for is used up (tokio keeps it otherwise, and the probe
        // would be polled again at once, forever).
        let interest = if write { Interest::WRITABLE } else { Interest::READABLE };
        let step = || {
            core.advance(conn, stream)
                .ok_or_else(|| io::Error::from(io::ErrorKind::WouldBlock))
        };
        stream.0.try_io(interest, step).ok()
    }

    fn register_socket(socket: UdpSocket) -> io::Result<tokio::net::UdpSocket> {
        tokio::net::UdpSocket::from_std(socket)
    }

    fn recv(socket: &tokio::net::UdpSocket, buf: &mut [u8]) -> io::Result<usize> {
        socket.try_recv(buf)
    }

    fn poll_readable(socket: &tokio::net::UdpSocket, cx: &mut Context<'_>) -> Poll<()> {
        socket.poll_recv_ready(cx).map(drop)
    }

    fn timer_at(at: std::time::Instant) -> Pin<Box<Sleep>> {
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn reset_timer(timer: &mut Pin<Box<Sleep>>, at: std::time::Instant) {
        timer.as_mut().reset(at.into());
    }

    fn poll_timer(timer: &mut Pin<Box<Sleep>>, cx: &mut Context<'_>) -> Poll<()> {
        timer.as_mut().poll(cx)
    }
}

/// [`Watcher::follow`] reads a pulse-tokio connection's events.
impl PeerEvents for crate::Connection {
    fn next_event(&self) -> impl Future<Output = pulse_proto::Event> + Send + '_ {
        self.recv()
    }
}
