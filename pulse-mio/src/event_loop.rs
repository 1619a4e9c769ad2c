//! The loop: one thread, one `epoll`, one timer wheel, many connections.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mio::net::{TcpListener, UdpSocket};
use mio::{Events, Interest, Waker};
use pulse_proto::{Admission, CloseCode, Event, Role, Session};

use crate::config::LoopConfig;
use crate::core::{Core, Io, LoopStats};
use crate::ctx::{self, Ctx};
use crate::handle::{Command, Handle, Shared};
use crate::handler::{ConnId, Handler};
use crate::tokens::{Slot, Tokens, MAX_SOCKETS_PER_KIND};

/// A single-threaded event loop holding many pulse connections.
///
/// Per turn it waits in `epoll` until a socket is ready or the timer wheel's
/// next expiry, reads every ready socket until it has nothing more (edge
/// triggered), runs the timers that are due (after the reads, so a frame
/// that waited in a socket is never mistaken for silence), then services
/// each connection that changed: writes what its socket takes, hands its
/// events to the [`Handler`], and sets its one timer only if its deadline
/// moved earlier. A received frame costs no timer operation.
///
/// To use every core, run one loop per core on one port with
/// [`reuseport_listener`]: the kernel spreads connections between them.
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
///         eprintln!("{conn}: {}", closed.code);
///     }
/// }
///
/// let mut event_loop = EventLoop::new(LoopConfig::default(), Echo)?;
/// event_loop.listen("127.0.0.1:7000".parse().unwrap())?;
/// event_loop.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct EventLoop<H: Handler> {
    core: Core<H::Conn>,
    handler: H,
    events: Events,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    /// Connections whose read budget ran out: read again next turn.
    read_again: Vec<u32>,
    accepting: bool,
}

impl<H: Handler> EventLoop<H> {
    /// A loop with `config`, calling `handler`.
    pub fn new(config: LoopConfig, handler: H) -> io::Result<Self> {
        let events = Events::with_capacity(config.events_per_poll.max(16));
        let core = Core::new(config)?;
        let waker = Waker::new(core.poll.registry(), Tokens::NATIVE.waker())?;
        Ok(EventLoop {
            core,
            handler,
            events,
            listeners: Vec::new(),
            shared: Arc::new(Shared::new(waker)),
            read_again: Vec::new(),
            accepting: true,
        })
    }

    /// Accepts pulse connections over TCP on `addr`.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        self.add_listener(TcpListener::bind(addr)?)
    }

    /// Accepts on a listener made elsewhere, e.g. by [`reuseport_listener`].
    pub fn listen_on(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        self.add_listener(TcpListener::from_std(listener))
    }

    fn add_listener(&mut self, mut listener: TcpListener) -> io::Result<SocketAddr> {
        let token = Tokens::NATIVE
            .listener(self.listeners.len())
            .ok_or_else(|| too_many("TCP listeners"))?;
        self.core
            .poll
            .registry()
            .register(&mut listener, token, Interest::READABLE)?;
        let addr = listener.local_addr()?;
        self.listeners.push(listener);
        Ok(addr)
    }

    /// Accepts pulse peers over UDP on `addr`, one connection per peer
    /// address, opened by a handshake datagram. DATA over UDP is unreliable.
    pub fn listen_udp(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let token = Tokens::NATIVE
            .udp(self.core.udp_sockets.len())
            .ok_or_else(|| too_many("UDP sockets"))?;
        let mut socket = UdpSocket::bind(addr)?;
        self.core
            .poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        let addr = socket.local_addr()?;
        self.core.udp_sockets.push(socket);
        Ok(addr)
    }

    /// Opens a connection to a pulse server; `value` is kept with it.
    pub fn connect(&mut self, addr: SocketAddr, value: H::Conn) -> io::Result<ConnId> {
        ctx::connect(&mut self.core, addr, None, value)
    }

    /// Opens a connection from a chosen local address (to spread many
    /// clients over 127.0.0.x, each with its own ports).
    pub fn connect_from(&mut self, local: SocketAddr, addr: SocketAddr, value: H::Conn) -> io::Result<ConnId> {
        ctx::connect(&mut self.core, addr, Some(local), value)
    }

    /// A handle to reach the loop from other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Counters.
    pub fn stats(&self) -> LoopStats {
        self.core.stats
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.core.conns.len()
    }

    /// Calls `f` with a [`Ctx`], as from a callback (to send or close from
    /// the loop's own thread between turns).
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<'_, H::Conn>) -> R) -> R {
        f(&mut Ctx { core: &mut self.core })
    }

    /// Whether a shutdown has completed: every connection is closed.
    pub fn is_finished(&self) -> bool {
        self.core.shutdown_at.is_some() && self.core.conns.is_empty()
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
        if self.core.shutdown_at.is_some() {
            return;
        }
        for mut listener in self.listeners.drain(..) {
            let _ = self.core.poll.registry().deregister(&mut listener);
        }
        self.accepting = false;
        let now = self.core.now();
        let indices: Vec<usize> = self.core.conns.iter().map(|(i, _)| i).collect();
        for index in indices {
            let _going_away_is_sendable =
                self.core.conns[index]
                    .session
                    .close(now, CloseCode::GOING_AWAY, "shutting down");
            self.core.mark_dirty(index as u32);
        }
        self.core.shutdown_at = Some(now + grace);
    }

    /// One turn: wait (at most `max_wait`) for readiness or the next timer,
    /// then read, run timers, and service what changed.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        self.service_dirty()?;
        let mut timeout = self.core.wheel.next_expiration().map(|at| self.core.until(at));
        if let Some(at) = self.core.shutdown_at {
            timeout = Some(timeout.map_or(self.core.until(at), |t| t.min(self.core.until(at))));
        }
        if !self.read_again.is_empty() {
            timeout = Some(Duration::ZERO);
        }
        if let Some(max) = max_wait {
            timeout = Some(timeout.map_or(max, |t| t.min(max)));
        }
        match self.core.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            other => other?,
        }
        let mut woken = false;
        // Connections left unread last turn: read after this turn's events.
        let carried = std::mem::take(&mut self.read_again);
        for event in self.events.iter() {
            match Tokens::NATIVE.slot(event.token()) {
                Slot::Waker => woken = true,
                Slot::Udp(n) => read_udp(&mut self.core, &mut self.handler, n as u32, self.accepting),
                Slot::Listener(n) => {
                    if let Some(listener) = self.listeners.get(n) {
                        accept(&mut self.core, &mut self.handler, listener);
                    }
                }
                Slot::Connection(index) => {
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        if self.core.read(index) {
                            self.read_again.push(index);
                        }
                    } else {
                        // Writable: flush when serviced.
                        self.core.mark_dirty(index);
                    }
                }
            }
        }
        for index in carried {
            if self.core.read(index) {
                self.read_again.push(index);
            }
        }
        if woken {
            self.run_commands();
        }
        self.run_timers();
        self.service_dirty()
    }

    fn run_timers(&mut self) {
        let now = self.core.now();
        while let Some((_, index)) = self.core.wheel.poll_expired(now) {
            self.core.stats.timer_fires += 1;
            if let Some(conn) = self.core.conns.get_mut(index as usize) {
                conn.timer = None;
                conn.session.handle_timeout(now);
                self.core.mark_dirty(index);
            }
        }
        if self.core.shutdown_at.is_some_and(|at| now >= at) {
            let indices: Vec<usize> = self.core.conns.iter().map(|(i, _)| i).collect();
            for index in indices {
                let _going_away_is_sendable =
                    self.core.conns[index]
                        .session
                        .abort(now, CloseCode::GOING_AWAY, "shutdown grace expired");
                self.core.mark_dirty(index as u32);
            }
        }
    }

    fn run_commands(&mut self) {
        for command in self.shared.take() {
            match command {
                Command::Send(conn, tag, payload) => {
                    let _ = self.core.send(conn, tag, payload);
                }
                Command::Close(conn, code, reason) => {
                    let _ = self.core.close(conn, code, &reason);
                }
                Command::Broadcast(tag, payload) => self.broadcast(tag, payload),
                Command::Shutdown(grace) => self.shutdown(grace),
            }
        }
    }

    /// Sends to every established connection.
    pub fn broadcast(&mut self, tag: u16, payload: Bytes) {
        let ids: Vec<u32> = self.core.conns.iter().map(|(i, _)| i as u32).collect();
        for index in ids {
            let id = self.core.id(index);
            let _ = self.core.send(id, tag, payload.clone());
        }
    }

    fn service_dirty(&mut self) -> io::Result<()> {
        while let Some(index) = self.core.dirty.pop() {
            self.service(index)?;
        }
        Ok(())
    }

    /// Writes, hands over events, then sets interest and the timer.
    fn service(&mut self, index: u32) -> io::Result<()> {
        let Some(conn) = self.core.conns.get_mut(index as usize) else {
            return Ok(());
        };
        conn.dirty = false;
        let id = ConnId {
            index,
            generation: conn.generation,
        };
        loop {
            let pending = self.core.flush(index);
            let Some(conn) = self.core.conns.get_mut(index as usize) else {
                return Ok(());
            };
            let Some(event) = conn.session.poll_event() else {
                return self.core.rearm(index, pending);
            };
            let mut ctx = Ctx { core: &mut self.core };
            match event {
                Event::Connected(_) => self.handler.on_open(&mut ctx, id),
                Event::Message { tag, payload } => self.handler.on_message(&mut ctx, id, tag, payload),
                Event::Closed(closed) => {
                    if let Some(value) = ctx.core.remove(index) {
                        self.handler.on_close(&mut ctx, id, &closed, value);
                    }
                    return Ok(());
                }
                other => self.handler.on_event(&mut ctx, id, &other),
            }
        }
    }
}

fn too_many(what: &str) -> io::Error {
    io::Error::other(format!("one loop holds at most {MAX_SOCKETS_PER_KIND} {what}"))
}

/// Accepts until the listener has no more; beyond the connection limit a
/// connection gets CLOSE "refused" and is dropped.
fn accept<H: Handler>(core: &mut Core<H::Conn>, handler: &mut H, listener: &TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if core.is_full() {
                    refuse(core, stream, peer);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let value = handler.accepted(peer);
                match core.add(Io::Tcp(stream), Role::Server, value) {
                    Ok(_) => core.stats.accepted += 1,
                    Err(e) => log::error!("cannot register a connection from {peer}: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors, most likely: keep serving the others.
                log::error!("accept failed: {e}");
                return;
            }
        }
    }
}

/// Tells a connection over the limit why it is turned away: the session
/// writes the CLOSE (with the magic before it), the loop drops the socket.
fn refuse<T>(core: &mut Core<T>, mut stream: mio::net::TcpStream, peer: SocketAddr) {
    core.stats.refused += 1;
    log::warn!(
        "refused {peer}: at the connection limit of {}",
        core.config.max_connections
    );
    let now = core.now();
    if let Ok(mut session) = Session::new(core.config.session.clone(), Role::Server, now, 0) {
        let _refused_is_sendable = session.abort(now, CloseCode::REFUSED, "connection limit reached");
        if let Some(bytes) = session.poll_transmit(now) {
            let _ = stream.write(bytes);
        }
    }
}

/// Reads datagrams until the socket has no more, routing each to its
/// peer's session; a handshake datagram from a new address opens one.
fn read_udp<H: Handler>(core: &mut Core<H::Conn>, handler: &mut H, socket: u32, accepting: bool) {
    loop {
        let (n, from) = match core.udp_sockets[socket as usize].recv_from(&mut core.read_buf) {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            // ICMP errors concern one peer; the socket carries on.
            Err(_) => continue,
        };
        let index = match core.udp_by_addr.get(&(socket, from)) {
            Some(&index) => index,
            None => {
                // Only a proven address opens a connection: strays and
                // spoofed HELLOs cost a stateless answer at most.
                if !accepting {
                    continue;
                }
                let now = core.now();
                let datagram = &core.read_buf[..n];
                let admission = match core.gate.admit(now, from, datagram, &mut core.reply) {
                    Admission::Open if core.is_full() => {
                        core.stats.refused += 1;
                        core.gate.refuse(
                            datagram,
                            CloseCode::REFUSED,
                            "connection limit reached",
                            &mut core.reply,
                        )
                    }
                    other => other,
                };
                match admission {
                    Admission::Drop => continue,
                    Admission::Reply => {
                        let _ = core.udp_sockets[socket as usize].send_to(&core.reply, from);
                        continue;
                    }
                    Admission::Open => {}
                }
                let peer = core.udp_peers.insert(from) as u32;
                let value = handler.accepted(from);
                match core.add(Io::Udp { socket, peer }, Role::Server, value) {
                    Ok(id) => {
                        core.udp_by_addr.insert((socket, from), id.index);
                        core.stats.accepted += 1;
                        id.index
                    }
                    Err(_) => {
                        core.udp_peers.remove(peer as usize);
                        continue;
                    }
                }
            }
        };
        let now = core.now();
        core.conns[index as usize]
            .session
            .handle_datagram(now, &core.read_buf[..n]);
        core.mark_dirty(index);
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
#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
