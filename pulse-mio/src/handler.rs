//! What the application plugs into the loop, and what it can do from there.

use std::net::SocketAddr;

use bytes::Bytes;
use pulse_proto::{Closed, Event, SendError};

use crate::ctx::Ctx;

/// A connection of the loop. Ids are not reused while the process runs:
/// an id of a closed connection never reaches a newer one, even one that
/// took over its slot, and an id of another loop's connection never
/// reaches one of this loop (each connection gets a generation of 64
/// bits never given before in the process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u64,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// The application's side of the loop. Every method gets a [`Ctx`] to send,
/// close, open connections and reach each connection's own value.
///
/// Callbacks run on the loop's thread and should not block: every
/// connection waits while one runs.
///
/// # How the callbacks pair up
///
/// Every connection the loop holds has a value: made by
/// [`Handler::accepted`] for an accepted one, given to [`Ctx::connect`]
/// for an outgoing one. For each such connection:
///
/// - [`Handler::on_close`] comes **exactly once**, last, and hands the
///   value back — also for a connection that never completed its
///   handshake (a refused connect, a peer that spoke no pulse, a handshake
///   timeout). No value is dropped without it, except when the loop itself
///   is dropped with connections still open.
/// - [`Handler::on_open`] comes **at most once**, before any message, and
///   only if the handshake completed. So count "open connections" in
///   `on_open` and take them off in `on_close` only for connections that
///   had opened (keep that in the value, as the example does), and never
///   from `accepted`.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use bytes::Bytes;
/// use pulse_mio::{ConnId, Ctx, Handler};
/// use pulse_proto::Closed;
///
/// #[derive(Default)]
/// struct Echo {
///     open: usize,
/// }
///
/// /// Each connection keeps its peer and whether it opened.
/// struct Peer {
///     addr: SocketAddr,
///     opened: bool,
/// }
///
/// impl Handler for Echo {
///     type Conn = Peer;
///     fn accepted(&mut self, addr: SocketAddr) -> Peer {
///         Peer { addr, opened: false }
///     }
///     fn on_open(&mut self, ctx: &mut Ctx<'_, Peer>, conn: ConnId) {
///         self.open += 1;
///         if let Some(peer) = ctx.value(conn) {
///             peer.opened = true;
///         }
///     }
///     fn on_message(&mut self, ctx: &mut Ctx<'_, Peer>, conn: ConnId, tag: u16, payload: Bytes) {
///         let _ = ctx.send(conn, tag, payload);
///     }
///     fn on_close(&mut self, _ctx: &mut Ctx<'_, Peer>, _conn: ConnId, closed: &Closed, peer: Peer) {
///         if peer.opened {
///             self.open -= 1;
///         }
///         println!("{}: {closed}", peer.addr);
///     }
/// }
/// ```
pub trait Handler {
    /// The value the application keeps with each connection.
    type Conn;

    /// A connection was accepted (TCP) or a peer's handshake opened one
    /// (UDP): the value to keep with it, handed back by
    /// [`Handler::on_close`]. The handshake has not run yet. (An outgoing
    /// connection takes its value from [`Ctx::connect`] instead.)
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::Closed;
    /// struct Server;
    /// impl Handler for Server {
    ///     type Conn = SocketAddr;
    ///     fn accepted(&mut self, peer: SocketAddr) -> SocketAddr {
    ///         peer // keep the address, for the logs
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, SocketAddr>, _: ConnId, _: u16, _: Bytes) {}
    /// #   fn on_close(&mut self, _: &mut Ctx<'_, SocketAddr>, _: ConnId, _: &Closed, _: SocketAddr) {}
    /// }
    /// ```
    fn accepted(&mut self, peer: SocketAddr) -> Self::Conn;

    /// The handshake completed; messages may flow. Comes at most once per
    /// connection, and never for one that did not complete its handshake.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::Closed;
    /// struct Greeter;
    /// impl Handler for Greeter {
    ///     type Conn = ();
    ///     fn accepted(&mut self, _peer: SocketAddr) {}
    ///     fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
    ///         let _ = ctx.send(conn, 0, &b"welcome"[..]);
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
    /// #   fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
    /// }
    /// ```
    fn on_open(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// A message arrived.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::Closed;
    /// struct Echo;
    /// impl Handler for Echo {
    ///     type Conn = ();
    ///     fn accepted(&mut self, _peer: SocketAddr) {}
    ///     fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
    ///         let _ = ctx.send(conn, tag, payload); // back as it came
    ///     }
    /// #   fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
    /// }
    /// ```
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, tag: u16, payload: Bytes);

    /// The output queue has room again after a send was refused with
    /// `SendError::QueueFull`: send the rest now. The peer is not blamed
    /// for a full queue; one that reads nothing for the dead-peer timeout
    /// is closed by the session as a slow reader.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use std::collections::VecDeque;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::{Closed, SendError};
    /// /// Streams a backlog to each peer as fast as it reads.
    /// struct Feed;
    /// impl Handler for Feed {
    ///     type Conn = VecDeque<Bytes>;
    ///     fn accepted(&mut self, _peer: SocketAddr) -> VecDeque<Bytes> {
    ///         (0..1000).map(|_| Bytes::from(vec![0u8; 10_000])).collect()
    ///     }
    ///     fn on_open(&mut self, ctx: &mut Ctx<'_, VecDeque<Bytes>>, conn: ConnId) {
    ///         self.on_writable(ctx, conn);
    ///     }
    ///     fn on_writable(&mut self, ctx: &mut Ctx<'_, VecDeque<Bytes>>, conn: ConnId) {
    ///         while let Some(next) = ctx.value(conn).and_then(|q| q.pop_front()) {
    ///             if let Err(SendError::QueueFull { .. }) = ctx.send(conn, 1, next.clone()) {
    ///                 ctx.value(conn).unwrap().push_front(next); // again at the next on_writable
    ///                 break;
    ///             }
    ///         }
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, VecDeque<Bytes>>, _: ConnId, _: u16, _: Bytes) {}
    /// #   fn on_close(&mut self, _: &mut Ctx<'_, VecDeque<Bytes>>, _: ConnId, _: &Closed, _: VecDeque<Bytes>) {}
    /// }
    /// ```
    fn on_writable(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// Any other event: RTT measured, peer suspect, recovered, the
    /// dead-peer verdict (which [`Handler::on_close`] follows), the peer's
    /// status.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::{Closed, Event, SendError};
    /// struct Watch;
    /// impl Handler for Watch {
    ///     type Conn = ();
    ///     fn accepted(&mut self, _peer: SocketAddr) {}
    ///     fn on_event(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId, event: &Event) {
    ///         if let Event::PeerDead { silent_for } = event {
    ///             eprintln!("{conn}: dead after {silent_for:?} of silence");
    ///         }
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
    /// #   fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
    /// }
    /// ```
    fn on_event(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, event: &Event) {
        let _ = (ctx, conn, event);
    }

    /// A message given to [`crate::Handle::send`] that `conn`'s session
    /// refused when the loop came to it, handed back with why: the
    /// connection had closed or was closing (`SendError::Closed`, also for
    /// an id whose connection is gone, and for what still waited when the
    /// loop was dropped, unless while unwinding from a panic), had not
    /// completed its handshake
    /// (`NotConnected`), its output queue was full (`QueueFull`; an
    /// [`Handler::on_writable`] follows), or the message is larger than
    /// the peer accepts (`TooLarge`). Comes once for each such message,
    /// never for one the session took: the peer has seen nothing of it.
    /// Send it again (on this connection once it can take it, or on the
    /// next), or drop it knowingly.
    ///
    /// The default drops it with a warning (target `pulse::conn`): an
    /// application that sends from other threads and must not lose a
    /// message implements this.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::{Closed, SendError};
    /// /// Keeps what a connection did not take, to send once it can.
    /// struct Pusher {
    ///     later: Vec<(ConnId, u16, Bytes)>,
    ///     undeliverable: Vec<(u16, Bytes)>,
    /// }
    /// impl Handler for Pusher {
    ///     type Conn = ();
    ///     fn accepted(&mut self, _peer: SocketAddr) {}
    ///     fn on_unsent(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes, why: SendError) {
    ///         match why {
    ///             SendError::NotConnected | SendError::QueueFull { .. } => self.later.push((conn, tag, payload)),
    ///             _ => self.undeliverable.push((tag, payload)), // for the next connection
    ///         }
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
    /// #   fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
    /// }
    /// ```
    fn on_unsent(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, tag: u16, payload: Bytes, why: SendError) {
        let _ = ctx;
        tracing::warn!(
            target: "pulse::conn",
            %conn,
            tag,
            len = payload.len(),
            %why,
            "a message from a Handle was refused and dropped (Handler::on_unsent keeps it)"
        );
    }

    /// The connection is over and its socket closed: how it ended, and its
    /// value, handed back. Comes exactly once for every connection, whether
    /// or not it had opened (see [How the callbacks pair up](Handler)).
    /// Messages it never began to send are there for
    /// [`Ctx::take_unsent`], to send again.
    ///
    /// ```
    /// # use std::net::SocketAddr;
    /// # use bytes::Bytes;
    /// # use pulse_mio::{ConnId, Ctx, Handler};
    /// # use pulse_proto::Closed;
    /// struct Server;
    /// impl Handler for Server {
    ///     type Conn = SocketAddr;
    ///     fn accepted(&mut self, peer: SocketAddr) -> SocketAddr {
    ///         peer
    ///     }
    ///     fn on_close(&mut self, _ctx: &mut Ctx<'_, SocketAddr>, _conn: ConnId, closed: &Closed, peer: SocketAddr) {
    ///         println!("{peer}: {closed}"); // e.g. "closed by the peer: normal"
    ///     }
    /// #   fn on_message(&mut self, _: &mut Ctx<'_, SocketAddr>, _: ConnId, _: u16, _: Bytes) {}
    /// }
    /// ```
    fn on_close(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, closed: &Closed, value: Self::Conn);
}
