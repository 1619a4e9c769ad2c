//! A reconnecting client as its application sees it, whatever runs it:
//! sending (to the connection that is up, or queued for the next), the
//! adaptive learning it carries, what it could not deliver. The adapters'
//! `ReconnectingClient`s dereference to [`ClientState`], so these methods,
//! and their documentation, are written once for all of them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Event, Learned};

use crate::{ClientQueue, Error};

/// A connection whose events a [`ClientQueue`] hands on, whose adaptive
/// learning it carries to the next connection, and on which a
/// [`ClientState`] sends. The adapters implement it for their
/// `Connection` with [`crate::delegate_inbox`].
pub trait Inbox: Clone {
    /// Its next event, if one is waiting (`Closed` last, and again).
    fn try_recv(&self) -> Option<Event>;
    /// What its session learned of the path, if adaptive.
    fn learned(&self) -> Option<Learned>;
    /// Starts its session from an earlier connection's learning.
    fn set_learned(&self, learned: Learned);
    /// Tells its session whether the application is active.
    fn set_active(&self, active: bool);
    /// Once it is closed, the messages it never began to send
    /// ([`crate::Mailbox::take_unsent`]).
    fn take_unsent(&self) -> Vec<(u16, Bytes)>;
    /// Queues a message now, without waiting: whether it was taken (a full
    /// queue, a message too large for this peer, or a closed connection
    /// refuse it).
    fn send_now(&self, tag: u16, payload: Bytes) -> bool;
    /// Queues a message, waiting for room; [`Error::Closed`] when the
    /// connection ended before it took the message.
    fn send(&self, tag: u16, payload: Bytes) -> impl Future<Output = Result<(), Error>> + Send;
    /// Whether it has closed.
    fn is_closed(&self) -> bool;
    /// The peer's address.
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// Its smoothed round-trip time, once measured.
    fn rtt(&self) -> Option<Duration>;
}

/// What [`delegate_inbox!`](crate::delegate_inbox) names, whatever the
/// adapter's own dependencies are called.
#[doc(hidden)]
pub mod __macro_support {
    pub use bytes::Bytes;
    pub use pulse_proto::{Event, Learned};
}

/// Implements [`Inbox`] for an adapter's connection type by calling its
/// own methods of the same names (`send_now` may be crate-private): every
/// adapter's connection has them, so the mapping is written once, here.
#[doc(hidden)]
#[macro_export]
macro_rules! delegate_inbox {
    ($conn:ty) => {
        impl $crate::Inbox for $conn {
            fn try_recv(&self) -> Option<$crate::__macro_support::Event> {
                <$conn>::try_recv(self)
            }
            fn learned(&self) -> Option<$crate::__macro_support::Learned> {
                <$conn>::learned(self)
            }
            fn set_learned(&self, learned: $crate::__macro_support::Learned) {
                <$conn>::set_learned(self, learned)
            }
            fn set_active(&self, active: bool) {
                <$conn>::set_active(self, active)
            }
            fn take_unsent(&self) -> Vec<(u16, $crate::__macro_support::Bytes)> {
                <$conn>::take_unsent(self)
            }
            fn send_now(&self, tag: u16, payload: $crate::__macro_support::Bytes) -> bool {
                <$conn>::send_now(self, tag, payload)
            }
            fn send(
                &self,
                tag: u16,
                payload: $crate::__macro_support::Bytes,
            ) -> impl std::future::Future<Output = Result<(), $crate::Error>> + Send {
                <$conn>::send(self, tag, payload)
            }
            fn is_closed(&self) -> bool {
                <$conn>::is_closed(self)
            }
            fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
                <$conn>::peer_addr(self)
            }
            fn rtt(&self) -> Option<std::time::Duration> {
                <$conn>::rtt(self)
            }
        }
    };
}

/// What a reconnecting client's handles share: its [`ClientQueue`] behind
/// a lock, and what the application asks of the client while it runs.
/// pulse-smol's and pulse-tokio's `ReconnectingClient` dereference to it,
/// so every method here is theirs; their supervisors reach the queue with
/// [`ClientState::queue`].
///
/// # Sending while disconnected
///
/// [`ClientState::send`] never fails for a lost connection: a message
/// sent while no connection is up (or while older messages still wait) is
/// queued in the client and sent on the next connection, in order, after
/// what earlier connections handed back; the connection takes what waits
/// as it makes room, before anything newer. At most
/// [`ClientOptions::max_queued`](crate::ClientOptions::max_queued)
/// messages wait (default [`DEFAULT_MAX_QUEUED`](crate::DEFAULT_MAX_QUEUED),
/// those handed back included); beyond that `send` fails with
/// [`Error::QueueFull`], and nothing is dropped. Once the client has
/// ended, `send` fails with [`Error::Closed`] and what still waits is the
/// application's: [`ClientState::take_unsent`].
///
/// # Examples
///
/// ```
/// use pulse_driver::{ClientState, Inbox};
///
/// // Works with either adapter's client (`&*client`).
/// async fn report<C: Inbox>(client: &ClientState<C>) -> Result<(), pulse_driver::Error> {
///     client.send(1, "queued if the client is between connections").await?;
///     println!("up: {}, rtt {:?}", client.is_connected(), client.rtt());
///     Ok(())
/// }
/// ```
pub struct ClientState<C> {
    queue: Mutex<ClientQueue<C>>,
}

impl<C> std::fmt::Debug for ClientState<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientState")
    }
}

impl<C: Inbox> ClientState<C> {
    /// A client's state around its queue.
    pub fn new(queue: ClientQueue<C>) -> ClientState<C> {
        ClientState {
            queue: Mutex::new(queue),
        }
    }

    /// The queue, locked (for the adapter's supervisor; an associated
    /// function, so it is no method of the adapter's client). Never held
    /// across an await.
    pub fn queue(state: &ClientState<C>) -> MutexGuard<'_, ClientQueue<C>> {
        state.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// For the adapter's supervisor, beside a connection that is up
    /// (attached): sends it what still waits (what it had no room for at
    /// [`ClientQueue::attach`]), in order, each as room frees, while the
    /// application's new messages wait behind. A message too large for
    /// the connection's peer (sent while no peer could say so) is set
    /// aside for [`ClientState::take_unsent`], and the rest go on: it
    /// would hold up all behind it on every connection to that server.
    /// Returns when nothing waits, or the connection ended (what it
    /// refused waits for the next). An associated function, so it is no
    /// method of the adapter's client. Cancel-safe: a message not yet
    /// taken stays first.
    pub async fn deliver(state: &ClientState<C>, conn: &C) {
        /// Puts the message back first if the delivery stops before the
        /// connection took it.
        struct InFlight<'a, C: Inbox>(&'a ClientState<C>);
        impl<C: Inbox> Drop for InFlight<'_, C> {
            fn drop(&mut self) {
                ClientState::queue(self.0).waiting_mut().undelivered();
            }
        }
        loop {
            let next = Self::queue(state).waiting_mut().start_delivery();
            let Some((tag, payload)) = next else {
                return;
            };
            let in_flight = InFlight(state);
            match conn.send(tag, payload).await {
                Ok(()) => Self::queue(state).waiting_mut().delivered(),
                Err(error @ Error::TooLarge { .. }) => {
                    tracing::warn!(target: "pulse::conn", tag, %error, "a queued message is set aside, never sent");
                    Self::queue(state).waiting_mut().set_aside();
                }
                Err(_) => return, // `in_flight` puts it back
            }
            drop(in_flight);
        }
    }

    /// Sends on the current connection, waiting for room there as its
    /// `send` does; while the client is between connections, queues the
    /// message for the next one instead (see the type's documentation):
    /// `Ok` then means queued. Fails with [`Error::QueueFull`] when the
    /// queue is at its limit, [`Error::TooLarge`] for a message the
    /// current peer cannot take, and [`Error::Closed`] once the client has
    /// ended.
    ///
    /// Cancel safety: cancel-safe. A message is queued, in the client or
    /// in the connection, in the poll that returns `Ok`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_driver::{ClientState, Error, Inbox};
    ///
    /// async fn tell<C: Inbox>(client: &ClientState<C>) {
    ///     match client.send(1, "hello").await {
    ///         Ok(()) => {}
    ///         Err(Error::QueueFull { limit }) => eprintln!("{limit} messages already wait: slow down"),
    ///         Err(e) => eprintln!("not sent: {e}"),
    ///     }
    /// }
    /// ```
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        let conn = Self::queue(self).route(tag, payload.clone())?;
        let Some(conn) = conn else {
            return Ok(());
        };
        match conn.send(tag, payload.clone()).await {
            // The connection ended before it took the message: it waits
            // for the next one, behind what this one hands back.
            Err(Error::Closed(_)) => Self::queue(self).requeue(tag, payload),
            sent => sent,
        }
    }

    /// What the client's adaptive connections have learned of the path:
    /// the current connection's, or the last one's while disconnected.
    /// Every connection starts from it; keep it per network to start the
    /// next client there too (the adapters' builders take it).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn keep<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) -> std::io::Result<()> {
    /// if let Some(learned) = client.learned() {
    ///     std::fs::write("wifi-home.learned", learned.to_bytes())?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn learned(&self) -> Option<Learned> {
        Self::queue(self).learned()
    }

    /// Tells the client's adaptive connections, this one and the next,
    /// whether the application is active (in the foreground, say): while
    /// active they heartbeat at the adaptive config's `active` interval,
    /// then return to what they learned, without a reconnect.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn background<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// client.set_active(false); // the app went to the background
    /// # }
    /// ```
    pub fn set_active(&self, active: bool) {
        // Told outside the lock: the connection takes its own.
        let current = Self::queue(self).set_active(active);
        if let Some(conn) = current {
            conn.set_active(active);
        }
    }

    /// The messages waiting for the next connection, taken: the client
    /// will not send them. They are those sent while no connection was up
    /// ([`ClientState::send`]) and those a connection that ended never
    /// began to send (its `take_unsent`), in the order they were sent,
    /// after any a connection refused as too large for its peer (set
    /// aside, never sent; a `pulse::conn` warning says so). A
    /// next connection takes them first, as it makes room, so while one
    /// is up this is what it has not taken yet; the one being handed to
    /// it this moment is not among them (it is sent, or, should the
    /// connection end first, waits again), so no message is both sent
    /// and handed back. After `close`, or once the client gave up, it is
    /// all the client could not deliver.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn after_close<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// for (tag, payload) in client.take_unsent() {
    ///     eprintln!("never delivered: {tag} {payload:?}");
    /// }
    /// # }
    /// ```
    pub fn take_unsent(&self) -> Vec<(u16, Bytes)> {
        Self::queue(self).take_unsent()
    }

    /// How many messages wait for the next connection, with any set aside
    /// as too large for the last peer: those [`ClientState::take_unsent`]
    /// would hand back, and the one being handed to the connection. They
    /// count against [`ClientOptions::max_queued`](crate::ClientOptions::max_queued).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn show<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// println!("{} messages wait for a connection", client.queued());
    /// # }
    /// ```
    pub fn queued(&self) -> usize {
        Self::queue(self).waiting()
    }

    /// Whether a connection is up now (its handshake done, not yet closed).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn show<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// println!("{}", if client.is_connected() { "up" } else { "down" });
    /// # }
    /// ```
    pub fn is_connected(&self) -> bool {
        self.open().is_some()
    }

    /// The address of the server the current connection reached: after a
    /// move, the new one.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn show<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// if let Some(server) = client.peer_addr() {
    ///     println!("connected to {server}");
    /// }
    /// # }
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.open()?.peer_addr().ok()
    }

    /// The current connection's smoothed RTT.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn show<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// println!("{:?}", client.rtt());
    /// # }
    /// ```
    pub fn rtt(&self) -> Option<Duration> {
        Self::queue(self).current()?.rtt()
    }

    /// Transitions and ended connections dropped, unread, because the
    /// application fell behind ([`crate::MAX_UNREAD_TRANSITIONS`],
    /// [`crate::MAX_UNREAD_CONNECTIONS`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn show<C: pulse_driver::Inbox>(client: &pulse_driver::ClientState<C>) {
    /// println!("{} dropped", client.events_dropped());
    /// # }
    /// ```
    pub fn events_dropped(&self) -> u64 {
        Self::queue(self).dropped()
    }

    /// The connection that is up and not closed, taken out of the lock.
    fn open(&self) -> Option<C> {
        let current = Self::queue(self).current().cloned();
        current.filter(|conn| !conn.is_closed())
    }
}
