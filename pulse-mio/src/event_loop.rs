//! The loop: one thread, one `epoll`, one timer wheel, many connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mio::{Events, Poll, Waker};
use pulse_driver::{Counters, CountersSnapshot};

use crate::config::LoopConfig;
use crate::core::LoopStats;
use crate::ctx::Ctx;
use crate::endpoint::Endpoint;
use crate::handle::Handle;
use crate::handler::{ConnId, Handler};
use crate::tokens::Tokens;

/// A single-threaded event loop holding many pulse connections.
///
/// Per turn it waits in `epoll` until a socket is ready or the timer wheel's
/// next expiry, reads every ready socket until it has nothing more (edge
/// triggered, within a budget per socket so no peer starves the others),
/// runs the timers that are due (after the reads, so a frame that waited in
/// a socket is never mistaken for silence), then services each connection
/// that changed: writes what its socket takes, hands its events to the
/// [`Handler`], and sets its one timer only if its deadline moved earlier.
/// A received frame costs no timer operation.
///
/// To use every core, run one loop per core on one port with
/// [`crate::reuseport_listener`]: the kernel spreads connections between
/// them. To run pulse connections inside a `mio::Poll` of your own, use an
/// [`Endpoint`].
///
/// # Examples
///
/// ```no_run
/// use bytes::Bytes;
/// use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
/// use pulse_proto::Closed;
///
/// struct Echo;
///
/// impl Handler for Echo {
///     type Conn = ();
///     fn accepted(&mut self, _peer: std::net::SocketAddr) {}
///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
///         let _ = ctx.send(conn, tag, payload);
///     }
///     fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId, closed: &Closed, _value: ()) {
///         eprintln!("{conn}: {closed}");
///     }
/// }
///
/// let mut event_loop = EventLoop::new(LoopConfig::default(), Echo)?;
/// event_loop.listen("127.0.0.1:7000".parse().unwrap())?;
/// event_loop.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct EventLoop<H: Handler> {
    poll: Poll,
    events: Events,
    endpoint: Endpoint<H>,
}

impl<H: Handler> EventLoop<H> {
    /// A loop with `config`, calling `handler`.
    pub fn new(config: LoopConfig, handler: H) -> io::Result<Self> {
        let poll = Poll::new()?;
        let events = Events::with_capacity(config.events_per_poll.max(16));
        let tokens = Tokens::NATIVE;
        let waker = Arc::new(Waker::new(poll.registry(), tokens.waker())?);
        let endpoint = Endpoint::build(config, handler, poll.registry(), tokens, waker)?;
        Ok(EventLoop { poll, events, endpoint })
    }

    /// Accepts pulse connections over TCP on `addr`.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.endpoint.listen(addr)
    }

    /// Accepts on a listener made elsewhere, e.g. by
    /// [`crate::reuseport_listener`].
    pub fn listen_on(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        self.endpoint.listen_on(listener)
    }

    /// Accepts pulse peers over UDP on `addr` (see
    /// [`Endpoint::listen_udp`]): one connection per proven peer address,
    /// on the datagram version of [`LoopConfig::session`].
    pub fn listen_udp(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.endpoint.listen_udp(addr)
    }

    /// Opens a TCP connection to a pulse server; `value` is kept with it.
    pub fn connect(&mut self, addr: SocketAddr, value: H::Conn) -> io::Result<ConnId> {
        self.endpoint.connect(addr, value)
    }

    /// Opens a connection from a chosen local address (to spread many
    /// clients over 127.0.0.x, each with its own ports).
    pub fn connect_from(&mut self, local: SocketAddr, addr: SocketAddr, value: H::Conn) -> io::Result<ConnId> {
        self.endpoint.connect_from(local, addr, value)
    }

    /// A handle to reach the loop from other threads.
    pub fn handle(&self) -> Handle {
        self.endpoint.handle()
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        self.endpoint.handler()
    }

    /// Counters of the loop's own work.
    pub fn stats(&self) -> LoopStats {
        self.endpoint.stats()
    }

    /// The protocol's counters (open, verdicts, closes by code, bytes), to
    /// read from any thread: keep the `Arc`.
    pub fn counters(&self) -> Arc<Counters> {
        self.endpoint.counters()
    }

    /// A snapshot of [`EventLoop::counters`].
    pub fn snapshot(&self) -> CountersSnapshot {
        self.endpoint.snapshot()
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.endpoint.connections()
    }

    /// Calls `f` with a [`Ctx`], as from a callback (to send or close from
    /// the loop's own thread between turns).
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<'_, H::Conn>) -> R) -> R {
        self.endpoint.with_ctx(f)
    }

    /// Whether a shutdown has completed: every connection is closed.
    pub fn is_finished(&self) -> bool {
        self.endpoint.is_finished()
    }

    /// Runs turns until [`EventLoop::shutdown`] (or [`Handle::shutdown`])
    /// has completed.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.is_finished() {
            self.turn(None)?;
        }
        Ok(())
    }

    /// Stops accepting, closes every connection with "going away" (queued
    /// data first), and ends those still open after `grace`.
    pub fn shutdown(&mut self, grace: Duration) {
        self.endpoint.shutdown(grace);
    }

    /// Sends to every connection that takes it now. Best effort: one
    /// that refuses it (not open yet, closing, its queue full) is skipped,
    /// and no callback says so; to know, send to each with
    /// [`Ctx::send`](crate::Ctx::send).
    pub fn broadcast(&mut self, tag: u16, payload: Bytes) {
        self.endpoint.broadcast(tag, payload);
    }

    /// One turn: wait (at most `max_wait`) for readiness or the next timer,
    /// then read, run timers, and service what changed.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = match (self.endpoint.poll_timeout(), max_wait) {
            (Some(t), Some(max)) => Some(t.min(max)),
            (t, max) => t.or(max),
        };
        // Every socket that is ready is read before the timers run in
        // `process`, however many one poll returns.
        let endpoint = &mut self.endpoint;
        let sockets = endpoint.connections() + 2 * crate::tokens::MAX_SOCKETS_PER_KIND;
        crate::poll_all(&mut self.poll, &mut self.events, timeout, sockets, |event| {
            endpoint.handle_event(event);
        })?;
        self.endpoint.process()
    }
}

/// A TCP listener with `SO_REUSEPORT` (and `SO_REUSEADDR`): bind one per
/// loop, each loop on its own thread and core, all on the same port, and
/// the kernel spreads new connections between them.
///
/// What the kernel does with several sockets on one port depends on the
/// system:
///
/// - **Linux** (3.9 and later) spreads new connections between them by a
///   hash of each connection's addresses: what this function is for.
/// - **FreeBSD** lets them share the port but spreads connections only with
///   its own `SO_REUSEPORT_LB`, which this function does not set; **macOS**,
///   OpenBSD and NetBSD let them share the port and hand new connections to
///   one of them. There, run one loop per port.
/// - Where `socket2` does not offer the option (Windows, Solaris, illumos),
///   the function is absent.
#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
