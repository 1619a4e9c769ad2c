//! What a handler can do from inside a callback.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mio::net::TcpStream;
use pulse_driver::clock;
use pulse_proto::{CloseCode, CloseError, Learned, Negotiated, Role, SendError, Status};

use crate::core::{Core, Io};
use crate::handler::ConnId;

/// The loop, as a callback sees it: send, close, connect, and each
/// connection's value. Changes take effect when the callback returns, in
/// the same turn of the loop.
pub struct Ctx<'a, T> {
    pub(crate) core: &'a mut Core<T>,
    /// In `on_close`: the closed connection's messages never begun.
    pub(crate) unsent: Option<(ConnId, Vec<(u16, Bytes)>)>,
}

impl<'a, T> Ctx<'a, T> {
    pub(crate) fn new(core: &'a mut Core<T>) -> Ctx<'a, T> {
        Ctx { core, unsent: None }
    }
}

impl<T> Ctx<'_, T> {
    /// Queues a message for `conn`. A full output queue refuses it with
    /// `SendError::QueueFull`: keep it and send it from
    /// [`crate::Handler::on_writable`]. Over UDP a message must fit one
    /// datagram (`SendError::TooLarge` otherwise).
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// use pulse_proto::SendError;
    ///
    /// fn greet(ctx: &mut Ctx<'_, ()>, conn: ConnId) {
    ///     match ctx.send(conn, 1, &b"hello"[..]) {
    ///         Ok(()) => {}
    ///         Err(SendError::QueueFull { .. }) => { /* again in on_writable */ }
    ///         Err(e) => eprintln!("{conn}: {e}"),
    ///     }
    /// }
    /// ```
    pub fn send(&mut self, conn: ConnId, tag: u16, payload: impl Into<Bytes>) -> Result<(), SendError> {
        self.core.send(conn, tag, payload.into())
    }

    /// Closes `conn` gracefully: what was queued goes first, then CLOSE;
    /// [`crate::Handler::on_close`] follows. Refuses a code only the
    /// protocol may send.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// use pulse_proto::CloseCode;
    ///
    /// fn done(ctx: &mut Ctx<'_, ()>, conn: ConnId) {
    ///     ctx.close(conn, CloseCode::NORMAL, "bye").expect("NORMAL is sendable");
    ///     assert!(ctx.close(conn, CloseCode::TIMED_OUT, "no").is_err()); // the protocol's own
    /// }
    /// ```
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) -> Result<(), CloseError> {
        self.core.close(conn, code, reason)
    }

    /// Opens a connection to a pulse server; `value` is kept with it and
    /// handed back by [`crate::Handler::on_close`] (also if it never
    /// opens). When the socket cannot even be started (an error returned
    /// here), there is no connection: `value` is dropped and no callback
    /// follows.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// /// Opens a second connection to the same server, e.g. to fail over.
    /// fn reconnect(ctx: &mut Ctx<'_, &'static str>) -> std::io::Result<ConnId> {
    ///     ctx.connect("127.0.0.1:7100".parse().unwrap(), "backup")
    /// }
    /// ```
    pub fn connect(&mut self, addr: SocketAddr, value: T) -> io::Result<ConnId> {
        connect(self.core, addr, None, value)
    }

    /// The value kept with `conn`.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// /// Counts the messages of each connection in its value.
    /// fn count(ctx: &mut Ctx<'_, u64>, conn: ConnId) {
    ///     if let Some(messages) = ctx.value(conn) {
    ///         *messages += 1;
    ///     }
    /// }
    /// ```
    pub fn value(&mut self, conn: ConnId) -> Option<&mut T> {
        self.core.get(conn).and_then(|c| c.value.as_mut())
    }

    /// The smoothed RTT of `conn`, once measured.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// fn slow(ctx: &mut Ctx<'_, ()>, conn: ConnId) -> bool {
    ///     ctx.rtt(conn).is_some_and(|rtt| rtt > std::time::Duration::from_millis(200))
    /// }
    /// ```
    pub fn rtt(&mut self, conn: ConnId) -> Option<Duration> {
        self.core.get(conn).and_then(|c| c.session.rtt())
    }

    /// The values agreed in `conn`'s handshake, and what the server changed
    /// of what the client asked ([`Negotiated::adjustments`]).
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// fn interval(ctx: &mut Ctx<'_, ()>, conn: ConnId) -> Option<std::time::Duration> {
    ///     ctx.negotiated(conn).map(|n| n.interval())
    /// }
    /// ```
    pub fn negotiated(&mut self, conn: ConnId) -> Option<Negotiated> {
        self.core.get(conn).and_then(|c| c.session.negotiated())
    }

    /// Tells `conn`'s peer this service's own state, level-triggered
    /// (`docs/PROTOCOL.md` §6.9): a server about to stop says it is
    /// draining, and a monitor or balancer stops sending it new work.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// use pulse_proto::{ServiceState, Status};
    ///
    /// fn drain(ctx: &mut Ctx<'_, ()>) {
    ///     for conn in ctx.ids() {
    ///         let _ = ctx.send_status(conn, Status::new(ServiceState::Draining, 0));
    ///     }
    /// }
    /// ```
    pub fn send_status(&mut self, conn: ConnId, status: Status) -> Result<(), SendError> {
        self.core
            .with_session(conn, |session| session.send_status(status))
            .unwrap_or(Err(SendError::Closed))
    }

    /// Asks the server for new timings in-session (a client;
    /// `docs/PROTOCOL.md` §6.10): [`crate::Handler::on_event`] sees
    /// `Event::Retimed` with what both ends switched to.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// use std::time::Duration;
    ///
    /// fn relax(ctx: &mut Ctx<'_, ()>, conn: ConnId) {
    ///     let _ = ctx.retime(conn, Duration::from_secs(30), Duration::from_secs(90));
    /// }
    /// ```
    pub fn retime(&mut self, conn: ConnId, interval: Duration, dead_timeout: Duration) -> Result<(), SendError> {
        self.core
            .with_session(conn, |session| session.retime(clock::now(), interval, dead_timeout))
            .unwrap_or(Err(SendError::Closed))
    }

    /// Tells an adaptive client connection whether its application is
    /// active (in the foreground, say): while active it heartbeats at the
    /// adaptive config's minimum, then returns to what it learned, without
    /// a reconnect. No-op for a connection that is not adaptive.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// fn foreground(ctx: &mut Ctx<'_, ()>, conn: ConnId, visible: bool) {
    ///     ctx.set_active(conn, visible);
    /// }
    /// ```
    pub fn set_active(&mut self, conn: ConnId, active: bool) {
        self.core
            .with_session(conn, |session| session.set_active(clock::now(), active));
    }

    /// What an adaptive client connection has learned of its path: keep it
    /// per network (in [`crate::Handler::on_event`] at `Event::Closed`, or
    /// whenever) and hand it to the next connection on that network with
    /// [`Ctx::set_learned`]. `None` when not adaptive, or for an unknown
    /// connection.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// use pulse_proto::Learned;
    ///
    /// fn remember(ctx: &mut Ctx<'_, ()>, conn: ConnId, store: &mut Option<[u8; 17]>) {
    ///     if let Some(learned) = ctx.learned(conn) {
    ///         *store = Some(learned.to_bytes());
    ///     }
    /// }
    /// ```
    pub fn learned(&mut self, conn: ConnId) -> Option<Learned> {
        self.core.get(conn).and_then(|c| c.session.learned())
    }

    /// Gives an adaptive client connection what an earlier one learned of
    /// this network. Called in the callback that [`Ctx::connect`]s, before
    /// the handshake goes out, its HELLO already asks for the learned
    /// interval.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Ctx};
    /// use pulse_proto::Learned;
    ///
    /// fn reconnect(ctx: &mut Ctx<'_, ()>, stored: Option<[u8; 17]>) -> std::io::Result<ConnId> {
    ///     let conn = ctx.connect("127.0.0.1:7100".parse().unwrap(), ())?;
    ///     if let Some(bytes) = stored {
    ///         ctx.set_learned(conn, Learned::from_bytes(bytes));
    ///     }
    ///     Ok(conn)
    /// }
    /// ```
    pub fn set_learned(&mut self, conn: ConnId, learned: Learned) {
        self.core.with_session(conn, |session| session.set_learned(learned));
    }

    /// In [`crate::Handler::on_close`] for `conn`, the messages it was
    /// given but never began to send, in the order they were sent (empty
    /// anywhere else, and once taken). The peer cannot have seen any of
    /// them: a connection that died while it held DATA over an idle path
    /// it could not confirm (an adaptive client, or a server whose client
    /// retimed; `docs/PROTOCOL.md` §6.11.1), or with DATA still queued,
    /// hands them back here rather than drop them. Send them again on the
    /// next connection, first. Messages of [`crate::Handle::send`] that
    /// the session took are among them; those it refused went to
    /// [`crate::Handler::on_unsent`] instead, never to both.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::Closed;
    /// /// A client that reconnects, and sends what the lost connection
    /// /// never began to send before anything newer.
    /// struct Client {
    ///     server: SocketAddr,
    ///     resend: Vec<(u16, Bytes)>,
    /// }
    ///
    /// impl Handler for Client {
    ///     type Conn = ();
    ///     fn accepted(&mut self, _peer: SocketAddr) {}
    ///     fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
    ///         for (tag, payload) in self.resend.drain(..) {
    ///             let _ = ctx.send(conn, tag, payload);
    ///         }
    ///     }
    ///     fn on_close(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, _closed: &Closed, _value: ()) {
    ///         self.resend.extend(ctx.take_unsent(conn));
    ///         let _ = ctx.connect(self.server, ());
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
    /// }
    /// ```
    pub fn take_unsent(&mut self, conn: ConnId) -> Vec<(u16, Bytes)> {
        match self.unsent.take() {
            Some((id, unsent)) if id == conn => unsent,
            other => {
                self.unsent = other;
                Vec::new()
            }
        }
    }

    /// Connections held now (opened or not yet).
    ///
    /// ```
    /// # use pulse_mio::Ctx;
    /// fn busy(ctx: &Ctx<'_, ()>) -> bool {
    ///     ctx.connections() > 10_000
    /// }
    /// ```
    pub fn connections(&self) -> usize {
        self.core.conns.len() - self.core.lingering
    }

    /// Every connection held now (for a broadcast of your own).
    ///
    /// ```
    /// # use pulse_mio::Ctx;
    /// fn announce(ctx: &mut Ctx<'_, ()>) {
    ///     for conn in ctx.ids() {
    ///         let _ = ctx.send(conn, 9, &b"maintenance at noon"[..]);
    ///     }
    /// }
    /// ```
    pub fn ids(&self) -> Vec<ConnId> {
        self.core
            .conns
            .iter()
            .map(|(i, c)| ConnId {
                index: i as u32,
                generation: c.generation,
            })
            .collect()
    }
}

/// Opens a TCP connection, optionally from a chosen local address (to
/// spread many clients over 127.0.0.x), with a stream session.
pub(crate) fn connect<T>(
    core: &mut Core<T>,
    addr: SocketAddr,
    from: Option<SocketAddr>,
    value: T,
) -> io::Result<ConnId> {
    let stream = match from {
        None => TcpStream::connect(addr)?,
        Some(local) => {
            let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            socket.bind(&local.into())?;
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if is_in_progress(&e) => {}
                Err(e) => return Err(e),
            }
            TcpStream::from_std(socket.into())
        }
    };
    stream.set_nodelay(true)?;
    let config = core.stream.clone();
    let id = core.add(Io::Tcp(stream), config, Role::Client, || value)?;
    core.stats.connected += 1;
    Ok(id)
}

/// Whether a non-blocking connect has started rather than failed: Unix says
/// EINPROGRESS (its number differs between systems: 115 on Linux, 36 on
/// macOS and the BSDs), Windows says WSAEWOULDBLOCK, which is `WouldBlock`.
fn is_in_progress(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    e.kind() == io::ErrorKind::WouldBlock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_in_progress_is_told_from_a_failed_one_by_the_platform_s_own_numbers() {
        #[cfg(unix)]
        assert!(is_in_progress(&io::Error::from_raw_os_error(libc::EINPROGRESS)));
        assert!(is_in_progress(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(!is_in_progress(&io::Error::from(io::ErrorKind::ConnectionRefused)));
        #[cfg(unix)]
        assert!(!is_in_progress(&io::Error::from_raw_os_error(libc::ECONNREFUSED)));
    }
}
