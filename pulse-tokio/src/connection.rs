//! The application's side of a connection.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_driver::{clock, no_socket_address, Error, Mailbox};
use pulse_proto::{CloseCode, Closed, Event, Negotiated, Stats};

use crate::shared::Shared;

/// One pulse connection: send and receive messages; heartbeats, RTT and
/// the dead-peer verdict run in its driver task, whether or not the
/// application reads.
///
/// Cloning gives another handle to the same connection. When the last
/// handle is dropped, the connection is closed.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// use pulse_proto::Config;
/// use pulse_tokio::Event;
///
/// let conn = pulse_tokio::connect("127.0.0.1:7000", Config::default()).await?;
/// conn.send(1, "hello").await?;
/// loop {
///     match conn.recv().await {
///         Event::Message { tag, payload } => println!("{tag}: {payload:?}"),
///         Event::Rtt(sample) => println!("rtt {:?}", sample.rtt),
///         Event::Closed(closed) => break println!("{closed}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
}

/// The handles are counted in the mailbox; the last one to go closes the
/// connection.
impl Clone for Connection {
    fn clone(&self) -> Connection {
        Connection::new(self.shared.clone())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.poke(|mailbox| ((), mailbox.drop_handle()));
    }
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>) -> Connection {
        shared.mailbox().add_handle();
        Connection { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn weak_shared(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }

    pub(crate) fn look<T>(&self, f: impl FnOnce(&Mailbox) -> T) -> T {
        f(&self.shared().mailbox())
    }

    /// Sends a message. Waits while the output queue is full (the peer
    /// reads slowly) or the handshake is still running; fails once the
    /// connection is closed, or if the message is larger than the peer
    /// takes in one frame.
    ///
    /// Cancel safety: cancel-safe. The message is queued in the poll that
    /// returns `Ok`, so a cancelled `send` has queued nothing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) -> Result<(), pulse_tokio::Error> {
    /// conn.send(7, "a message with tag 7").await?;
    /// # Ok(()) }
    /// ```
    pub fn send(&self, tag: u16, payload: impl Into<Bytes>) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        // Converted now, so the future holds the payload once: a task
        // that sends stays small.
        let (payload, shared) = (payload.into(), self.shared());
        poll_fn(move |cx| {
            let queued =
                std::task::ready!(shared.poll_for(cx, |mailbox| mailbox.try_send(tag, payload.clone()).transpose()));
            if queued.is_ok() {
                shared.wake_driver();
            }
            std::task::Poll::Ready(queued)
        })
    }

    /// The next message or event, as the core reports it. After
    /// [`Event::Closed`], returns it again on every call. Informational
    /// events (RTT, suspect, recovered) beyond
    /// [`MAX_LOSSY_EVENTS`](crate::MAX_LOSSY_EVENTS) unread are dropped
    /// and counted ([`Connection::events_dropped`]); nothing else is.
    ///
    /// Cancel safety: cancel-safe. An event is taken in the poll that
    /// returns it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) {
    /// use pulse_tokio::Event;
    ///
    /// loop {
    ///     match conn.recv().await {
    ///         Event::Message { tag, payload } => println!("{tag}: {payload:?}"),
    ///         Event::PeerDead { silent_for } => println!("dead after {silent_for:?}"),
    ///         Event::Closed(closed) => break println!("{closed}"),
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv(&self) -> Event {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// One poll of [`Connection::recv`].
    pub(crate) fn poll_recv(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Event> {
        let shared = self.shared();
        let (event, caught_up) = std::task::ready!(shared.poll_for(cx, |mailbox| match mailbox.pop_for_app() {
            (Some(event), caught_up) => Some((event, caught_up)),
            (None, _) => None,
        }));
        if caught_up {
            // Reading may resume now.
            shared.wake_driver();
        }
        std::task::Poll::Ready(event)
    }

    /// The next message or event, if one is waiting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// while let Some(event) = conn.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn try_recv(&self) -> Option<Event> {
        // Reading may resume once the application caught up.
        self.shared().poke(Mailbox::pop_for_app)
    }

    /// Closes gracefully: queued messages go first, then CLOSE; waits for
    /// the peer's answer (at most the configured close timeout) and returns
    /// how the connection ended. Fails at once, changing nothing, for a
    /// code only the protocol may send ([`CloseCode::is_sendable`]).
    ///
    /// Cancel safety: the close begins in the first poll; cancelling only
    /// stops the waiting, and the connection still closes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) -> Result<(), pulse_tokio::Error> {
    /// use pulse_proto::CloseCode;
    ///
    /// let closed = conn.close(CloseCode::GOING_AWAY, "restarting").await?;
    /// println!("{closed}");
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        self.shared()
            .poke(|mailbox| (mailbox.session.close(clock::now(), code, reason), true))?;
        Ok(self.closed().await)
    }

    /// Waits until the connection is over. A transport that keeps bytes
    /// of its own (TLS) may still be pushing out its last ones, for at most
    /// the config's close timeout, before it is closed.
    ///
    /// Cancel safety: cancel-safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) {
    /// let closed = conn.closed().await;
    /// println!("{} ({:?})", closed.code, closed.initiator);
    /// # }
    /// ```
    pub async fn closed(&self) -> Closed {
        self.shared().wait_for(|mailbox| mailbox.outcome()).await
    }

    /// Waits for the handshake: the agreed values, or how it failed.
    ///
    /// Cancel safety: cancel-safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(listener: pulse_tokio::Listener) -> Result<(), pulse_tokio::Error> {
    /// let (conn, peer) = listener.accept().await?;
    /// match conn.connected().await {
    ///     Ok(negotiated) => println!("{peer}: interval {:?}", negotiated.interval()),
    ///     Err(closed) => println!("{peer}: {closed}"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn connected(&self) -> Result<Negotiated, Closed> {
        self.shared().wait_for(|mailbox| mailbox.handshake_outcome()).await
    }

    /// The smoothed round-trip time, once measured.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// if let Some(rtt) = conn.rtt() {
    ///     println!("rtt {rtt:?}");
    /// }
    /// # }
    /// ```
    pub fn rtt(&self) -> Option<Duration> {
        self.look(|mailbox| mailbox.session.rtt())
    }

    /// The values agreed in the handshake, once done.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// let negotiated = conn.negotiated().expect("connect completes the handshake");
    /// for change in negotiated.adjustments() {
    ///     println!("the server changed our request: {change}");
    /// }
    /// # }
    /// ```
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.look(Mailbox::negotiated)
    }

    /// Whether the peer is suspect right now (a PING went unanswered; not
    /// a verdict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// if conn.is_suspect() {
    ///     println!("the peer is slow to answer");
    /// }
    /// # }
    /// ```
    pub fn is_suspect(&self) -> bool {
        self.look(|mailbox| mailbox.session.is_suspect())
    }

    /// Whether the connection is over.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// assert!(!conn.is_closed());
    /// # }
    /// ```
    pub fn is_closed(&self) -> bool {
        self.look(Mailbox::is_closed)
    }

    /// The session's counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// println!("{} PINGs sent", conn.stats().pings_sent);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.look(|mailbox| *mailbox.session.stats())
    }

    /// Informational events dropped because the application did not read
    /// them.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// println!("{} RTT samples went unread", conn.events_dropped());
    /// # }
    /// ```
    pub fn events_dropped(&self) -> u64 {
        self.look(Mailbox::events_dropped)
    }

    /// Sets how many bytes of unread messages may wait before the driver
    /// stops reading the transport (default
    /// [`DEFAULT_RECV_BUFFER`](crate::DEFAULT_RECV_BUFFER)); each message
    /// counts its payload and its slot in the queue, so many small ones
    /// are bounded too. While reading is paused the core gives no verdict:
    /// the silence is ours.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// conn.set_recv_buffer(64 * 1024);
    /// # }
    /// ```
    pub fn set_recv_buffer(&self, bytes: usize) {
        self.shared().poke(|mailbox| (mailbox.set_recv_buffer(bytes), true));
    }

    /// The peer's address; an error for a stream handed over by the
    /// application ([`Connection::client`], [`Connection::server`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) -> std::io::Result<()> {
    /// println!("connected to {}", conn.peer_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.shared().peer.0.ok_or_else(no_socket_address)
    }

    /// The local address; an error for a stream handed over by the
    /// application.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) -> std::io::Result<()> {
    /// println!("from {}", conn.local_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared().local.ok_or_else(no_socket_address)
    }

    /// Splits into a sending and a receiving half, for different tasks;
    /// the receiving half is a [`Stream`](futures_core::Stream).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) {
    /// use pulse_tokio::Event;
    ///
    /// let (tx, rx) = conn.split();
    /// tokio::spawn(async move { tx.send(1, "ping").await });
    /// while let Event::Message { tag, payload } = rx.recv().await {
    ///     println!("{tag}: {payload:?}");
    /// }
    /// # }
    /// ```
    pub fn split(self) -> (crate::SendHalf, crate::RecvHalf) {
        crate::halves::split(self)
    }
}
