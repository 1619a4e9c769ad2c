//! Everything of a loop but the `Poll`: connections, listeners, timers and
//! the handler, driven by whoever polls — pulse-mio's own `EventLoop`, or
//! an application's loop with its own sockets.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use mio::net::{TcpListener, UdpSocket};
use mio::{Interest, Registry, Token, Waker};
use pulse_driver::{clock, log, Counters, CountersSnapshot, Demux};
use pulse_proto::{CloseCode, Event};

use crate::accept::{Accepted, Accepting};
use crate::config::{with_transport, LoopConfig};
use crate::core::{invalid, Core, LoopStats, UdpListener};
use crate::ctx::{self, Ctx};
use crate::handle::{Command, Handle, Shared};
use crate::handler::{ConnId, Handler};
use crate::tokens::{Slot, Tokens};

mod commands;

/// pulse connections inside a `mio::Poll` of your own: your registry, a
/// range of tokens you choose, your loop. [`crate::EventLoop`] is this plus
/// a `Poll` of its own, and the easy path when the loop holds only pulse.
///
/// The drive loop, each turn:
///
/// 1. poll with a timeout no longer than [`Endpoint::poll_timeout`];
/// 2. hand every event whose token is in the endpoint's range to
///    [`Endpoint::handle_event`] (it says whether it was one). If the
///    poll filled your `Events`, poll again at once (timeout zero) and hand
///    those over too, until a poll comes back with room to spare: `process`
///    runs the timers, and a connection whose readiness still waits in the
///    kernel would be judged silent with its peer's answer unread;
/// 3. call [`Endpoint::process`]: it reads what was left from the last
///    turn, runs the [`Handle`]'s commands, the timers that are due, and
///    writes and reports what changed.
///
/// The range holds, from its top down, the endpoint's waker, 64 UDP
/// sockets and 64 listeners; connections take the tokens from its start
/// up, so the range bounds the connections too (with
/// [`LoopConfig::max_connections`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mio::{Events, Poll, Token};
/// # use std::net::SocketAddr;
/// # use bytes::Bytes;
/// use pulse_mio::{Endpoint, LoopConfig};
/// # use pulse_mio::{ConnId, Ctx, Handler};
/// # use pulse_proto::Closed;
/// # struct Echo;
/// # impl Handler for Echo {
/// #     type Conn = ();
/// #     fn accepted(&mut self, _: SocketAddr) {}
/// #     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
/// #         let _ = ctx.send(conn, tag, payload);
/// #     }
/// #     fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
/// # }
///
/// const MY_SOCKET: Token = Token(0); // the application's own tokens are below 1,000
///
/// let mut poll = Poll::new()?;
/// let mut endpoint = Endpoint::new(LoopConfig::default(), Echo, poll.registry(), 1_000..1_000_000)?;
/// endpoint.listen("127.0.0.1:0".parse().unwrap())?;
/// let mut events = Events::with_capacity(1024);
/// for _ in 0..3 {
///     let timeout = endpoint.poll_timeout().map_or(Duration::from_millis(10), |t| t.min(Duration::from_millis(10)));
///     poll.poll(&mut events, Some(timeout))?;
///     for event in events.iter() {
///         if !endpoint.handle_event(event) {
///             match event.token() {
///                 MY_SOCKET => { /* the application's own socket */ }
///                 _ => {}
///             }
///         }
///     }
///     endpoint.process()?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Endpoint<H: Handler> {
    core: Core<H::Conn>,
    handler: H,
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    /// Commands taken from the handles and not yet run: those a panic in
    /// a handler left run at the next turn, or go back at the drop.
    commands: VecDeque<Command>,
    /// Connections whose read budget ran out: read again by `process`.
    read_again: Vec<u32>,
    carried: Vec<u32>,
    /// UDP sockets whose budget ran out this turn: read again next turn.
    udp_again: Vec<u32>,
    /// Those of the last turn, read by `process`.
    udp_carried: Vec<u32>,
    accepting: Accepting,
    /// Not shut down: new connections are welcome.
    open: bool,
}

impl<H: Handler> Endpoint<H> {
    /// An endpoint in `registry`'s `Poll`, using the tokens of `tokens`
    /// (at least 130 of them), with a `mio::Waker` of its own on the
    /// range's last token for its [`Handle`]s.
    ///
    /// mio allows one `Waker` per `Poll` (more work on Linux, not on every
    /// system): if your loop has one, use [`Endpoint::with_waker`].
    pub fn new(config: LoopConfig, handler: H, registry: &Registry, tokens: Range<usize>) -> io::Result<Self> {
        let tokens = range(tokens)?;
        let waker = Arc::new(Waker::new(registry, tokens.waker())?);
        Endpoint::build(config, handler, registry, tokens, waker)
    }

    /// Like [`Endpoint::new`], with your loop's own `Waker`: a [`Handle`]
    /// wakes your poll with it, and [`Endpoint::process`] then runs the
    /// commands (whatever token your waker has).
    pub fn with_waker(
        config: LoopConfig,
        handler: H,
        registry: &Registry,
        tokens: Range<usize>,
        waker: Arc<Waker>,
    ) -> io::Result<Self> {
        Endpoint::build(config, handler, registry, range(tokens)?, waker)
    }

    pub(crate) fn build(
        config: LoopConfig,
        handler: H,
        registry: &Registry,
        tokens: Tokens,
        waker: Arc<Waker>,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared::new(waker, config.max_commands.max(1)));
        Ok(Endpoint {
            core: Core::new(config, registry.try_clone()?, tokens)?,
            handler,
            listeners: Vec::new(),
            shared,
            commands: VecDeque::new(),
            read_again: Vec::new(),
            carried: Vec::new(),
            udp_again: Vec::new(),
            udp_carried: Vec::new(),
            accepting: Accepting::default(),
            open: true,
        })
    }

    /// Accepts pulse connections over TCP on `addr`, with a backlog of
    /// 1,024 (or the system's `somaxconn`, if lower): a burst of connects
    /// waits there while the loop accepts [`LoopConfig::accepts_per_turn`]
    /// a turn.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        self.listen_on(socket.into())
    }

    /// Accepts on a listener made elsewhere, e.g. by
    /// [`crate::reuseport_listener`].
    pub fn listen_on(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        self.add_listener(TcpListener::from_std(listener))
    }

    fn add_listener(&mut self, mut listener: TcpListener) -> io::Result<SocketAddr> {
        let token = self
            .core
            .tokens
            .listener(self.listeners.len())
            .ok_or_else(|| self.too_many("TCP listeners"))?;
        self.core.registry.register(&mut listener, token, Interest::READABLE)?;
        let addr = listener.local_addr()?;
        self.listeners.push(listener);
        Ok(addr)
    }

    /// Accepts pulse peers over UDP on `addr`, one connection per peer
    /// address, opened by a handshake datagram that proved its address
    /// (the `pulse_proto::Gate`). Its sessions use
    /// [`LoopConfig::session`] as a datagram config: messages must fit one
    /// datagram (`max_datagram_size`), and DATA over UDP is unreliable.
    pub fn listen_udp(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let token = self
            .core
            .tokens
            .udp(self.core.udp.len())
            .ok_or_else(|| self.too_many("UDP sockets"))?;
        let config = with_transport(&self.core.config.session, pulse_proto::Transport::Datagram);
        let demux = Demux::new(config).map_err(invalid)?;
        let mut socket = UdpSocket::bind(addr)?;
        self.core.registry.register(&mut socket, token, Interest::READABLE)?;
        let addr = socket.local_addr()?;
        let budget = self.core.config.datagrams_per_turn.max(1);
        self.core.udp.push(UdpListener { socket, demux, budget });
        Ok(addr)
    }

    fn too_many(&self, what: &str) -> io::Error {
        io::Error::other(format!(
            "this loop holds at most {} {what}",
            self.core.tokens.per_kind()
        ))
    }

    /// Opens a TCP connection to a pulse server; `value` is kept with it.
    pub fn connect(&mut self, addr: SocketAddr, value: H::Conn) -> io::Result<ConnId> {
        ctx::connect(&mut self.core, addr, None, value)
    }

    /// Opens a connection from a chosen local address (to spread many
    /// clients over 127.0.0.x, each with its own ports).
    pub fn connect_from(&mut self, local: SocketAddr, addr: SocketAddr, value: H::Conn) -> io::Result<ConnId> {
        ctx::connect(&mut self.core, addr, Some(local), value)
    }

    /// A handle to reach the endpoint from other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// The handler.
    pub fn handler(&mut self) -> &mut H {
        &mut self.handler
    }

    /// Counters of the loop's own work.
    pub fn stats(&self) -> LoopStats {
        self.core.stats
    }

    /// The protocol's counters (open, verdicts, closes by code, bytes), to
    /// read from any thread: keep the `Arc`.
    pub fn counters(&self) -> Arc<Counters> {
        self.core.counters.clone()
    }

    /// A snapshot of [`Endpoint::counters`].
    pub fn snapshot(&self) -> CountersSnapshot {
        self.core.counters.snapshot()
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.core.conns.len() - self.core.lingering
    }

    /// Calls `f` with a [`Ctx`], as from a callback (to send or close from
    /// the loop's own thread between turns); the changes go out at the next
    /// [`Endpoint::process`].
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<'_, H::Conn>) -> R) -> R {
        f(&mut Ctx::new(&mut self.core))
    }

    /// Whether a shutdown has completed: every connection is closed.
    pub fn is_finished(&self) -> bool {
        self.core.shutdown_at.is_some() && self.core.conns.is_empty()
    }

    /// The longest your poll may wait: until the next timer, or zero when
    /// work was left for the next turn. `None`: no deadline at all.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let busy = !self.core.dirty.is_empty()
            || !self.read_again.is_empty()
            || !self.carried.is_empty()
            || !self.udp_again.is_empty()
            || !self.udp_carried.is_empty()
            || !self.accepting.again.is_empty()
            || !self.commands.is_empty()
            || self.shared.is_woken();
        if busy {
            return Some(Duration::ZERO);
        }
        [
            self.core.wheel.next_expiration(),
            self.core.shutdown_at,
            self.accepting.paused_until,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at - clock::now())
    }

    /// Whether `token` is one of the endpoint's.
    pub fn owns(&self, token: Token) -> bool {
        self.core.tokens.contains(token)
    }

    /// Handles a readiness event if its token is one of the endpoint's
    /// (and returns whether it was): reads, accepts, or notes writability.
    /// Call [`Endpoint::process`] after the poll's events.
    pub fn handle_event(&mut self, event: &mio::event::Event) -> bool {
        if !self.owns(event.token()) {
            return false;
        }
        match self.core.tokens.slot(event.token()) {
            Slot::Waker => {} // the commands run in `process`
            Slot::Udp(n) => self.read_udp(n as u32),
            Slot::Listener(n) => self.accept(n),
            Slot::Connection(index) => {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(index);
                } else {
                    // Writable: flush when serviced.
                    self.core.mark_dirty(index);
                }
            }
        }
        true
    }

    /// The rest of a turn, after the poll's events: reads what was left
    /// from the last turn, runs the handles' commands and the timers that
    /// are due (after the reads, so a frame that waited in a socket is
    /// never mistaken for silence), then writes, hands the events to the
    /// handler, and sets each changed connection's one timer.
    pub fn process(&mut self) -> io::Result<()> {
        // Carried from the last turn, so in no list now: one that has more
        // still is carried again (a socket whose peer is blocked on a full
        // buffer signals no new edge).
        for index in std::mem::take(&mut self.carried) {
            if self.core.conns.get(index as usize).is_some_and(|c| c.unread) && self.core.read(index) {
                self.read_again.push(index);
            }
        }
        for n in std::mem::take(&mut self.udp_carried) {
            self.read_udp(n);
        }
        let now = clock::now();
        let freed = std::mem::take(&mut self.core.freed);
        let was_paused = self.accepting.paused_until.is_some();
        if self.open && !self.accepting.is_paused(now, freed) {
            // After a pause every listener may hold a backlog; otherwise
            // only those whose budget ran out do.
            let listeners: Vec<usize> = if was_paused {
                self.accepting.again.clear();
                (0..self.listeners.len()).collect()
            } else {
                std::mem::take(&mut self.accepting.again)
            };
            for n in listeners {
                self.accept(n);
            }
        }
        if self.shared.is_woken() || !self.commands.is_empty() {
            self.run_commands();
        }
        self.run_timers();
        self.carried = std::mem::take(&mut self.read_again);
        self.udp_carried = std::mem::take(&mut self.udp_again);
        let budget = self.core.config.datagrams_per_turn.max(1);
        for listener in &mut self.core.udp {
            listener.budget = budget;
        }
        self.service_dirty()
    }

    /// Reads a connection a readiness event named; one with more left is
    /// carried to the next turn, unless already carried.
    fn read(&mut self, index: u32) {
        let queued = self.core.conns.get(index as usize).is_some_and(|c| c.unread);
        if self.core.read(index) && !queued {
            self.read_again.push(index);
        }
    }

    fn read_udp(&mut self, n: u32) {
        // A socket whose budget is spent waits for the next turn, however
        // many readiness events it gets meanwhile.
        if crate::udp::read(&mut self.core, &mut self.handler, n, self.open) && !self.udp_again.contains(&n) {
            self.udp_again.push(n);
        }
    }

    fn accept(&mut self, n: usize) {
        if !self.open || self.accepting.paused_until.is_some() {
            return; // retried when the pause ends
        }
        let Some(listener) = self.listeners.get(n) else { return };
        match self.accepting.accept(&mut self.core, &mut self.handler, listener) {
            Accepted::More if !self.accepting.again.contains(&n) => self.accepting.again.push(n),
            _ => {}
        }
    }

    fn run_timers(&mut self) {
        let now = clock::now();
        while let Some((_, index)) = self.core.wheel.poll_expired(now) {
            self.core.stats.timer_fires += 1;
            let Some(conn) = self.core.conns.get_mut(index as usize) else {
                continue;
            };
            conn.timer = None;
            if conn.lingering {
                // The peer did not end its side within the close timeout.
                self.core.release(index);
                continue;
            }
            conn.slot.fired();
            if conn.unread && conn.timer_waits < timer_waits_allowed(&self.core.config, &conn.session) {
                // Frames may wait in its socket: read them first. Its read
                // next turn marks it for service, which sets the timer
                // again. (A peer that keeps it unread is sending: alive;
                // its PINGs are answered as they are read.) No longer than
                // it takes to read the largest frame, though: then a whole
                // frame has been read this turn, or the peer sends less
                // than a frame in all that time.
                conn.timer_waits += 1;
                continue;
            }
            conn.timer_waits = 0;
            conn.session.handle_timeout(now);
            self.core.mark_dirty(index);
        }
        if self.core.shutdown_at.is_some_and(|at| now >= at) {
            self.going_away(|session| session.abort(now, CloseCode::GOING_AWAY, "shutdown grace expired"));
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
        if conn.lingering {
            return Ok(());
        }
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
            self.core.counters.on_event(&event);
            match &event {
                Event::Connected(negotiated) => {
                    log::opened(self.core.peer(index), negotiated);
                }
                Event::PeerDead { silent_for } => log::verdict(self.core.peer(index), *silent_for),
                Event::Closed(closed) => log::closed(self.core.peer(index), closed),
                _ => {}
            }
            let mut ctx = Ctx::new(&mut self.core);
            match event {
                Event::Connected(_) => self.handler.on_open(&mut ctx, id),
                Event::Message { tag, payload } => self.handler.on_message(&mut ctx, id, tag, payload),
                Event::SendReady => self.handler.on_writable(&mut ctx, id),
                Event::Closed(closed) => {
                    // What the transport takes at once (a final CLOSE),
                    // then the socket goes.
                    ctx.core.flush(index);
                    if let Some((value, unsent)) = ctx.core.end(index, &closed) {
                        ctx.unsent = Some((id, unsent));
                        self.handler.on_close(&mut ctx, id, &closed, value);
                    }
                    return Ok(());
                }
                other => self.handler.on_event(&mut ctx, id, &other),
            }
        }
    }
}

fn range(tokens: Range<usize>) -> io::Result<Tokens> {
    let len = tokens.len();
    Tokens::within(tokens).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a token range of {len} has no room: an endpoint needs more than 129"),
        )
    })
}

/// Turns a due timer may wait for a connection's unread bytes: enough to
/// read its largest frame at the per-turn budget, and one more.
fn timer_waits_allowed(config: &crate::LoopConfig, session: &pulse_proto::Session) -> u32 {
    let per_turn = config.reads_per_event.max(1).saturating_mul(pulse_driver::READ_BUFFER);
    let largest = session.config().max_frame_len as usize + 16;
    u32::try_from(largest.div_ceil(per_turn))
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}
