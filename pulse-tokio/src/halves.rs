//! A connection split in two, for a sending task and a receiving task;
//! the receiving half is a `Stream` of events.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use pulse_driver::Error;
use pulse_proto::{CloseCode, Closed, Event};

use crate::connection::Connection;

/// The sending half of a [`Connection`] ([`Connection::split`]).
///
/// # Examples
///
/// ```no_run
/// # async fn run(conn: pulse_tokio::Connection) -> Result<(), pulse_tokio::Error> {
/// let (tx, _rx) = conn.split();
/// let tx2 = tx.clone();
/// tx.send(1, "one").await?;
/// tx2.send(2, "two").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SendHalf {
    conn: Connection,
}

/// The receiving half of a [`Connection`] ([`Connection::split`]): a
/// [`Stream`] of the connection's events that ends after
/// [`Event::Closed`] (use it with `tokio_stream::StreamExt` or any
/// `futures` combinator). Clones read the same events: each goes to one
/// of them; a clone of a stream that has ended has ended too.
///
/// # Examples
///
/// ```no_run
/// # async fn run(conn: pulse_tokio::Connection) {
/// use std::pin::pin;
/// use pulse_tokio::Event;
///
/// let (_tx, rx) = conn.split();
/// let mut rx = pin!(rx);
/// // Any Stream combinator works; here, by hand:
/// while let Some(event) = std::future::poll_fn(|cx| futures_core::Stream::poll_next(rx.as_mut(), cx)).await {
///     if let Event::Message { payload, .. } = event {
///         println!("{payload:?}");
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RecvHalf {
    conn: Connection,
    ended: bool,
}

pub(crate) fn split(conn: Connection) -> (SendHalf, RecvHalf) {
    let receiving = RecvHalf {
        conn: conn.clone(),
        ended: false,
    };
    (SendHalf { conn }, receiving)
}

impl SendHalf {
    /// The whole connection, for its other methods.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// let (tx, _rx) = conn.split();
    /// println!("{:?} {:?}", tx.connection().stats(), tx.connection().rtt());
    /// # }
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// See [`Connection::send`] (cancel-safe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) -> Result<(), pulse_tokio::Error> {
    /// let (tx, _rx) = conn.split();
    /// tx.send(1, "hello").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.connection().send(tag, payload).await
    }

    /// See [`Connection::rtt`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// let (tx, _rx) = conn.split();
    /// println!("{:?}", tx.rtt());
    /// # }
    /// ```
    pub fn rtt(&self) -> Option<Duration> {
        self.connection().rtt()
    }

    /// See [`Connection::close`] (the close goes on if cancelled).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) -> Result<(), pulse_tokio::Error> {
    /// let (tx, _rx) = conn.split();
    /// tx.close(pulse_proto::CloseCode::NORMAL, "done").await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        self.connection().close(code, reason).await
    }
}

impl RecvHalf {
    /// The whole connection, for its other methods.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// let (_tx, rx) = conn.split();
    /// println!("{}", rx.connection().is_suspect());
    /// # }
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// See [`Connection::recv`] (cancel-safe). After [`Event::Closed`],
    /// returns it again on every call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) {
    /// let (_tx, rx) = conn.split();
    /// println!("{:?}", rx.recv().await);
    /// # }
    /// ```
    pub async fn recv(&self) -> Event {
        self.connection().recv().await
    }

    /// See [`Connection::try_recv`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// let (_tx, rx) = conn.split();
    /// if let Some(event) = rx.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// # }
    /// ```
    pub fn try_recv(&self) -> Option<Event> {
        self.connection().try_recv()
    }
}

impl Stream for RecvHalf {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let event = std::task::ready!(self.conn.poll_recv(cx));
        self.ended = matches!(event, Event::Closed(_));
        Poll::Ready(Some(event))
    }
}
