//! The application's side of a connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{CloseCode, Closed, Negotiated, SendError, Session, Stats};

use crate::clock;
use crate::driver::{Driver, Io};
use crate::error::Error;
use crate::incoming::Incoming;
use crate::shared::Shared;

/// One pulse connection: send and receive messages; heartbeats, RTT and
/// the dead-peer verdict run in its [`Driver`].
///
/// Cloning gives another handle to the same connection. When the last
/// handle is dropped, the connection is closed.
#[derive(Debug)]
pub struct Connection {
    shared: Arc<Shared>,
}

/// The sending half of a [`Connection`], for use from another task.
#[derive(Clone, Debug)]
pub struct SendHalf(Connection);

/// The receiving half of a [`Connection`], for use from another task.
#[derive(Debug)]
pub struct RecvHalf(Connection);

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

/// A new connection over `io` and its driver.
pub(crate) fn pair(session: Session, io: Io) -> (Connection, Driver) {
    let shared = Arc::new(Shared::new(session));
    let driver = Driver::new(shared.clone(), io);
    (Connection::new(shared), driver)
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
    /// connection is closed or if the message is larger than the peer takes.
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        loop {
            let space = self.shared.to_app.listen();
            {
                let mut inner = self.shared.lock();
                match inner.session.send(tag, payload.clone()) {
                    Ok(()) => {
                        drop(inner);
                        self.shared.driver_waker.wake();
                        return Ok(());
                    }
                    Err(SendError::TooLarge { len, max }) => return Err(Error::TooLarge { len, max }),
                    Err(SendError::Closed) => return Err(Error::Closed(inner.closed_or_pending())),
                    Err(_) if inner.finished => return Err(Error::Closed(inner.closed_or_pending())),
                    Err(_) => {} // queue full or handshaking: wait for the driver
                }
            }
            space.await;
        }
    }

    /// The next message or event. After [`Incoming::Closed`], returns it
    /// again on every call.
    pub async fn recv(&self) -> Incoming {
        loop {
            let arrived = self.shared.to_app.listen();
            if let Some(item) = self.try_recv() {
                return item;
            }
            arrived.await;
        }
    }

    /// The next message or event, if one is waiting.
    pub fn try_recv(&self) -> Option<Incoming> {
        let mut inner = self.shared.lock();
        let was_paused = inner.reading_paused();
        let item = inner.pop();
        if was_paused && !inner.reading_paused() {
            drop(inner);
            self.shared.driver_waker.wake();
        }
        item
    }

    /// Closes gracefully: queued messages go first, then CLOSE; waits for
    /// the peer's answer (at most the configured close timeout) and returns
    /// how the connection ended. Fails at once, changing nothing, for a
    /// code only the protocol may send ([`CloseCode::is_sendable`]).
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        self.shared.lock().session.close(clock::now(), code, reason)?;
        self.shared.driver_waker.wake();
        Ok(self.closed().await)
    }

    /// Waits until the connection is over and its socket is closed.
    pub async fn closed(&self) -> Closed {
        loop {
            let changed = self.shared.to_app.listen();
            {
                let inner = self.shared.lock();
                if inner.finished {
                    return inner.closed_or_pending();
                }
            }
            changed.await;
        }
    }

    /// Waits for the handshake: the agreed values, or how it failed.
    pub async fn connected(&self) -> Result<Negotiated, Closed> {
        loop {
            let changed = self.shared.to_app.listen();
            {
                let inner = self.shared.lock();
                if let Some(n) = inner.negotiated {
                    return Ok(n);
                }
                if let Some(closed) = &inner.closed {
                    return Err(closed.clone());
                }
            }
            changed.await;
        }
    }

    /// The smoothed round-trip time, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.shared.lock().session.rtt()
    }

    /// The values agreed in the handshake, once done.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.shared.lock().negotiated
    }

    /// Whether the peer is suspect right now.
    pub fn is_suspect(&self) -> bool {
        self.shared.lock().session.is_suspect()
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed.is_some()
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        *self.shared.lock().session.stats()
    }

    /// Informational events (RTT, suspect, recovered) dropped because the
    /// application did not read them.
    pub fn events_dropped(&self) -> u64 {
        self.shared.lock().events_dropped
    }

    /// Sets how many bytes of unread messages may wait before the driver
    /// stops reading the socket (default 1 MiB). While reading is paused
    /// by this backlog, no verdict is given either: the silence is ours.
    pub fn set_recv_buffer(&self, bytes: usize) {
        self.shared.lock().recv_buffer = bytes.max(1);
        self.shared.driver_waker.wake();
    }

    /// Splits into a sending and a receiving half.
    pub fn split(self) -> (SendHalf, RecvHalf) {
        (SendHalf(self.clone()), RecvHalf(self))
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

impl SendHalf {
    /// See [`Connection::send`].
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.0.send(tag, payload).await
    }

    /// See [`Connection::close`].
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<Closed, Error> {
        self.0.close(code, reason).await
    }

    /// See [`Connection::rtt`].
    pub fn rtt(&self) -> Option<Duration> {
        self.0.rtt()
    }
}

impl RecvHalf {
    /// See [`Connection::recv`].
    pub async fn recv(&self) -> Incoming {
        self.0.recv().await
    }

    /// See [`Connection::try_recv`].
    pub fn try_recv(&self) -> Option<Incoming> {
        self.0.try_recv()
    }
}
