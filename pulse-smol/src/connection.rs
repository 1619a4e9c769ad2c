//! The application's side of a connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_driver::{clock, no_socket_address};
use pulse_proto::{CloseCode, Closed, Event, Negotiated, Stats};

use crate::shared::Shared;
use pulse_driver::Error;

/// One pulse connection: send and receive messages; heartbeats, RTT and
/// the dead-peer verdict run in its [`Driver`](crate::Driver), whether or not the
/// application reads.
///
/// Cloning gives another handle to the same connection. When the last
/// handle is dropped, the connection is closed.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// use pulse_proto::Config;
/// use pulse_smol::Event;
///
/// let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", Config::default()).await?;
/// smol::spawn(driver).detach();
/// conn.send(1, "hello").await?;
/// loop {
///     match conn.recv().await {
///         Event::Message { tag, payload } => println!("{tag}: {payload:?}"),
///         Event::Rtt(sample) => println!("rtt {:?}", sample.rtt),
///         Event::Closed(closed) => break println!("{closed}"),
///         _ => {}
///     }
/// }
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[derive(Debug)]
pub struct Connection {
    pub(crate) shared: Arc<Shared>,
}

impl Connection {
    pub(crate) fn new(shared: Arc<Shared>) -> Connection {
        shared.add_handle();
        Connection { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// conn.send(7, "a message with tag 7").await?;
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        loop {
            let space = self.shared.to_app.listen();
            if self.shared.lock().try_send(tag, payload.clone())?.is_some() {
                self.shared.driver_waker.wake();
                return Ok(());
            }
            space.await;
        }
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
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// use pulse_smol::Event;
    ///
    /// loop {
    ///     match conn.recv().await {
    ///         Event::Message { tag, payload } => println!("{tag}: {payload:?}"),
    ///         Event::PeerDead { silent_for } => println!("dead after {silent_for:?}"),
    ///         Event::Closed(closed) => break println!("{closed}"),
    ///         _ => {}
    ///     }
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn recv(&self) -> Event {
        loop {
            let arrived = self.shared.to_app.listen();
            if let Some(item) = self.try_recv() {
                return item;
            }
            arrived.await;
        }
    }

    /// The next message or event, if one is waiting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// while let Some(event) = conn.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn try_recv(&self) -> Option<Event> {
        let (item, caught_up) = self.shared.lock().pop_for_app();
        if caught_up {
            self.shared.driver_waker.wake();
        }
        item
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
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// use pulse_proto::CloseCode;
    ///
    /// let closed = conn.close(CloseCode::GOING_AWAY, "restarting").await?;
    /// println!("{closed}");
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        self.shared.lock().session.close(clock::now(), code, reason)?;
        self.shared.driver_waker.wake();
        Ok(self.closed().await)
    }

    /// Waits until the connection is over and its transport is closed.
    ///
    /// Cancel safety: cancel-safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let closed = conn.closed().await;
    /// println!("{} ({:?})", closed.code, closed.initiator);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn closed(&self) -> Closed {
        loop {
            let changed = self.shared.to_app.listen();
            if let Some(closed) = self.shared.lock().outcome() {
                return closed;
            }
            changed.await;
        }
    }

    /// Waits for the handshake: the agreed values, or how it failed.
    ///
    /// Cancel safety: cancel-safe.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let listener = pulse_smol::Listener::bind("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (conn, driver, peer) = listener.accept().await?;
    /// smol::spawn(driver).detach();
    /// match conn.connected().await {
    ///     Ok(negotiated) => println!("{peer}: interval {:?}", negotiated.interval()),
    ///     Err(closed) => println!("{peer}: {closed}"),
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn connected(&self) -> Result<Negotiated, Closed> {
        loop {
            let changed = self.shared.to_app.listen();
            if let Some(outcome) = self.shared.lock().handshake_outcome() {
                return outcome;
            }
            changed.await;
        }
    }

    /// The smoothed round-trip time, once measured.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// if let Some(rtt) = conn.rtt() {
    ///     println!("rtt {rtt:?}");
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.lock().session.rtt()
    }

    /// The values agreed in the handshake, once done.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let negotiated = conn.negotiated().expect("connect completes the handshake");
    /// for change in negotiated.adjustments() {
    ///     println!("the server changed our request: {change}");
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.shared.lock().negotiated()
    }

    /// Whether the peer is suspect right now (a PING went unanswered; not
    /// a verdict).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// if conn.is_suspect() {
    ///     println!("the peer is slow to answer");
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn is_suspect(&self) -> bool {
        self.shared.lock().session.is_suspect()
    }

    /// Whether the connection is over.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// assert!(!conn.is_closed());
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.lock().is_closed()
    }

    /// The session's counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// println!("{} PINGs sent", conn.stats().pings_sent);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn stats(&self) -> Stats {
        *self.shared.lock().session.stats()
    }

    /// Informational events dropped because the application did not read
    /// them.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// println!("{} RTT samples went unread", conn.events_dropped());
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn events_dropped(&self) -> u64 {
        self.shared.lock().events_dropped()
    }

    /// Sets how many bytes of unread messages may wait before the driver
    /// stops reading the transport (default
    /// [`DEFAULT_RECV_BUFFER`](crate::DEFAULT_RECV_BUFFER)). While reading
    /// is paused the core gives no verdict: the silence is ours.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// conn.set_recv_buffer(64 * 1024);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn set_recv_buffer(&self, bytes: usize) {
        self.shared.lock().set_recv_buffer(bytes);
        self.shared.driver_waker.wake();
    }

    /// The peer's address; an error for a stream handed over by the
    /// application ([`Connection::client`], [`Connection::server`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// println!("connected to {}", conn.peer_addr()?);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.shared.peer.0.ok_or_else(no_socket_address)
    }

    /// The local address; an error for a stream handed over by the
    /// application.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// println!("from {}", conn.local_addr()?);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.local.ok_or_else(no_socket_address)
    }

    /// Splits into a sending and a receiving half, for different tasks.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// use futures_lite::StreamExt;
    ///
    /// let (tx, mut rx) = conn.split();
    /// smol::spawn(async move { tx.send(1, "ping").await }).detach();
    /// while let Some(event) = rx.next().await {
    ///     println!("{event:?}");
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn split(self) -> (crate::SendHalf, crate::RecvHalf) {
        crate::halves::split(self)
    }
}

impl Clone for Connection {
    fn clone(&self) -> Self {
        Connection::new(self.shared.clone())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.drop_handle();
    }
}
