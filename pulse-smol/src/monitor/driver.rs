//! The monitor's driver on async-io. pulse-driver's [`WatchTask`] does the
//! work; this only says how async-io registers a socket, waits on it and
//! keeps time.

use std::future::Future;
use std::io;
use std::net::{TcpStream, UdpSocket};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::{Async, Timer};
use pulse_driver::monitor::{PeerEvents, ProbeConn, SockRef, WatchConfig, WatchCore, WatchRuntime, WatchTask, Watcher};
use pulse_monitor::{Monitor, ProbeOutcome};

/// Runs `monitor`: hands back a [`Watcher`], the handle to add targets and
/// read transitions, snapshots and healthy sets with, and the
/// [`WatchDriver`] that opens probe connections, reads announcements and
/// keeps the monitor's time — a future to spawn on any executor
/// (`smol::spawn(driver).detach()`). The driver decides nothing: every
/// verdict is the monitor's.
///
/// # Examples
///
/// ```
/// # smol::block_on(async {
/// use pulse_monitor::{Check, Config, Monitor, TargetSpec};
/// use pulse_smol::monitor::{watch, WatchConfig};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed()).unwrap();
/// let (watcher, driver) = watch(WatchConfig::default(), monitor);
/// smol::spawn(driver).detach();
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
/// # Ok::<(), std::io::Error>(()) });
/// ```
pub fn watch(config: WatchConfig, monitor: Monitor) -> (Watcher, WatchDriver) {
    pulse_driver::monitor::watch(config, monitor)
}

/// Drives a monitor ([`watch`]): opens the probe connections it asks for,
/// moves them on and reports what became of them, reads the announcement
/// sockets, and runs the monitor's timers. Spawn it on any executor
/// (`smol::spawn(driver).detach()`); it finishes, closing every socket,
/// when the last [`Watcher`] is dropped.
///
/// # Examples
///
/// ```
/// use pulse_monitor::{Config, Monitor};
///
/// let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), 1).unwrap();
/// let (watcher, driver) = pulse_smol::monitor::watch(Default::default(), monitor);
/// let task = smol::spawn(driver);
/// drop(watcher);
/// smol::block_on(task); // the last handle gone, the driver finishes
/// ```
pub type WatchDriver = WatchTask<AsyncIo>;

/// async-io, as a monitor's driver task waits.
#[derive(Debug)]
pub enum AsyncIo {}

impl WatchRuntime for AsyncIo {
    type Stream = Async<TcpStream>;
    type Socket = Async<UdpSocket>;
    type Timer = Timer;

    fn register_stream(stream: TcpStream) -> io::Result<Async<TcpStream>> {
        Async::new(stream)
    }

    fn sock(stream: &Async<TcpStream>) -> SockRef<'_> {
        stream.get_ref().into()
    }

    fn poll_ready(stream: &Async<TcpStream>, write: bool, cx: &mut Context<'_>) -> Poll<()> {
        // An error is found by the next step's I/O.
        let ready = if write {
            stream.poll_writable(cx)
        } else {
            stream.poll_readable(cx)
        };
        ready.map(drop)
    }

    fn advance(
        core: &mut WatchCore,
        conn: &mut ProbeConn,
        stream: &Async<TcpStream>,
        _write: bool,
    ) -> Option<Option<ProbeOutcome>> {
        // async-io learns of a blocked read or write by the next poll.
        core.advance(conn, stream.get_ref())
    }

    fn register_socket(socket: UdpSocket) -> io::Result<Async<UdpSocket>> {
        Async::new(socket)
    }

    fn recv(socket: &Async<UdpSocket>, buf: &mut [u8]) -> io::Result<usize> {
        socket.get_ref().recv(buf)
    }

    fn poll_readable(socket: &Async<UdpSocket>, cx: &mut Context<'_>) -> Poll<()> {
        socket.poll_readable(cx).map(drop)
    }

    fn timer_at(at: std::time::Instant) -> Timer {
        Timer::at(at)
    }

    fn reset_timer(timer: &mut Timer, at: std::time::Instant) {
        timer.set_at(at);
    }

    fn poll_timer(timer: &mut Timer, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(timer).poll(cx).map(drop)
    }
}

/// [`Watcher::follow`] reads a pulse-smol connection's events.
impl PeerEvents for crate::Connection {
    fn next_event(&self) -> impl Future<Output = pulse_proto::Event> + Send + '_ {
        self.recv()
    }
}
