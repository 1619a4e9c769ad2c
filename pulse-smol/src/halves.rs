//! A connection split in two, for a sending task and a receiving task;
//! the receiving half is a `Stream` of events.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use event_listener::EventListener;
use futures_lite::{FutureExt, Stream};
use pulse_proto::{CloseCode, Closed, Event};

use crate::connection::Connection;
use pulse_driver::Error;

/// The sending half of a [`Connection`] ([`Connection::split`]).
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
/// let (tx, rx) = conn.split();
/// let tx2 = tx.clone();
/// tx.send(1, "one").await?;
/// tx2.send(2, "two").await?;
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[derive(Clone, Debug)]
pub struct SendHalf(Connection);

/// The receiving half of a [`Connection`] ([`Connection::split`]): a
/// [`Stream`] of the connection's events that ends after
/// [`Event::Closed`]. Clones read the same events: each goes to one of
/// them.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
/// use futures_lite::StreamExt;
/// use pulse_smol::Event;
///
/// let (_tx, rx) = conn.split();
/// let messages: Vec<_> = rx
///     .filter_map(|event| match event {
///         Event::Message { payload, .. } => Some(payload),
///         _ => None,
///     })
///     .take(10)
///     .collect()
///     .await;
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[derive(Clone, Debug)]
pub struct RecvHalf {
    conn: Connection,
    listener: Listening,
    ended: bool,
}

/// The half's wait for the connection's news, kept between polls. A
/// clone of the half waits afresh: a listener wakes only the task that
/// polled it.
#[derive(Debug, Default)]
struct Listening(Option<Pin<Box<EventListener>>>);

impl Clone for Listening {
    fn clone(&self) -> Listening {
        Listening(None)
    }
}

pub(crate) fn split(conn: Connection) -> (SendHalf, RecvHalf) {
    (
        SendHalf(conn.clone()),
        RecvHalf {
            conn,
            listener: Listening::default(),
            ended: false,
        },
    )
}

impl SendHalf {
    /// See [`Connection::send`] (cancel-safe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (tx, _rx) = conn.split();
    /// tx.send(1, "hello").await?;
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.0.send(tag, payload).await
    }

    /// See [`Connection::close`] (the close goes on if cancelled).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (tx, _rx) = conn.split();
    /// tx.close(pulse_proto::CloseCode::NORMAL, "done").await?;
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        self.0.close(code, reason).await
    }

    /// See [`Connection::rtt`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (tx, _rx) = conn.split();
    /// println!("{:?}", tx.rtt());
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn rtt(&self) -> Option<Duration> {
        self.0.rtt()
    }

    /// The whole connection, for its other accessors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (tx, _rx) = conn.split();
    /// println!("{:?}", tx.connection().stats());
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.0
    }
}

impl RecvHalf {
    /// See [`Connection::recv`] (cancel-safe). After [`Event::Closed`],
    /// returns it again on every call.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (_tx, rx) = conn.split();
    /// println!("{:?}", rx.recv().await);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn recv(&self) -> Event {
        self.conn.recv().await
    }

    /// See [`Connection::try_recv`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (_tx, rx) = conn.split();
    /// if let Some(event) = rx.try_recv() {
    ///     println!("{event:?}");
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn try_recv(&self) -> Option<Event> {
        self.conn.try_recv()
    }

    /// The whole connection, for its other accessors.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (_tx, rx) = conn.split();
    /// println!("{}", rx.connection().is_suspect());
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Stream for RecvHalf {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            if let Some(event) = self.conn.try_recv() {
                self.listener.0 = None;
                self.ended = matches!(event, Event::Closed(_));
                return Poll::Ready(Some(event));
            }
            match self.listener.0.as_mut() {
                // Listen, then look again: a notification in between is
                // not lost.
                None => self.listener.0 = Some(Box::pin(self.conn.shared().to_app.listen())),
                Some(listener) => {
                    if listener.poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.listener.0 = None;
                }
            }
        }
    }
}
