//! What an application can change of a connection while it runs: the
//! status it reports, its timings, and an adaptive client's learning.

use std::time::Duration;

use bytes::Bytes;
use pulse_driver::clock;
use pulse_proto::{Learned, SendError, Status};

use crate::connection::Connection;

impl Connection {
    /// Tells the peer this service's own state, level-triggered
    /// (`docs/PROTOCOL.md` §6.9): a server about to stop says it is
    /// draining, and a monitor or balancer stops sending it new work. The
    /// peer sees `Event::PeerStatus`. Needs a version-2 peer
    /// (`SendError::Unsupported` otherwise).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// use pulse_proto::{ServiceState, Status};
    ///
    /// conn.send_status(Status::new(ServiceState::Draining, 0))?;
    /// # Ok(()) }
    /// ```
    pub fn send_status(&self, status: Status) -> Result<(), SendError> {
        self.shared()
            .poke(|mailbox| (mailbox.session.send_status(status), true))
    }

    /// Asks the server for new timings in-session (a client;
    /// `docs/PROTOCOL.md` §6.10). The server agrees, clamps or keeps what
    /// it has; both ends switch at their next timer, each with an
    /// `Event::Retimed` carrying the values in use.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(conn: pulse_tokio::Connection) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    ///
    /// // The app went to the background: heartbeat less often.
    /// conn.retime(Duration::from_secs(60), Duration::from_secs(180))?;
    /// # Ok(()) }
    /// ```
    pub fn retime(&self, interval: Duration, dead_timeout: Duration) -> Result<(), SendError> {
        self.shared()
            .poke(|mailbox| (mailbox.session.retime(clock::now(), interval, dead_timeout), true))
    }

    /// Tells an adaptive client whether its application is active (in the
    /// foreground, say): while active it heartbeats at the adaptive
    /// config's `active` interval, then returns to what it learned, without
    /// a reconnect. No-op for a connection that is not adaptive.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// conn.set_active(true); // the user opened the app
    /// # }
    /// ```
    pub fn set_active(&self, active: bool) {
        self.shared()
            .poke(|mailbox| (mailbox.session.set_active(clock::now(), active), true));
    }

    /// What an adaptive client has learned of its path, to keep per
    /// network and give to the next connection on it
    /// ([`crate::ReconnectingClient`] does so by itself). `None` when not
    /// adaptive.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) -> std::io::Result<()> {
    /// if let Some(learned) = conn.learned() {
    ///     std::fs::write("wifi-home.learned", learned.to_bytes())?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn learned(&self) -> Option<Learned> {
        self.look(|mailbox| mailbox.session.learned())
    }

    /// Gives an adaptive client what an earlier connection learned of this
    /// network; the session asks for the learned interval at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(conn: pulse_tokio::Connection) {
    /// use pulse_proto::Learned;
    ///
    /// if let Ok(bytes) = std::fs::read("wifi-home.learned") {
    ///     if let Ok(bytes) = <[u8; 17]>::try_from(bytes) {
    ///         conn.set_learned(Learned::from_bytes(bytes));
    ///     }
    /// }
    /// # }
    /// ```
    pub fn set_learned(&self, learned: Learned) {
        self.shared()
            .poke(|mailbox| (mailbox.session.set_learned(learned), true));
    }

    /// Once the connection has ended, the messages it was given but never
    /// began to send, in the order they were sent; empty before, and once
    /// taken. The peer cannot have seen any of them: a connection that
    /// died while it held DATA over an idle path it could not confirm
    /// (an adaptive client, or a server whose client retimed;
    /// `docs/PROTOCOL.md` §6.11.1), or with DATA still queued, hands them
    /// back here rather than drop them. Send them again on the next
    /// connection ([`crate::ReconnectingClient`] does so by itself). A
    /// split connection's halves reach it through `connection()`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), pulse_tokio::Error> {
    /// use pulse_proto::{AdaptiveConfig, Config};
    ///
    /// let config = Config::default().with_adaptive(Some(AdaptiveConfig::default()));
    /// let conn = pulse_tokio::connect("127.0.0.1:7000", config.clone()).await?;
    /// conn.send(1, "hello").await?;
    /// let closed = conn.closed().await;
    /// let unsent = conn.take_unsent();
    /// if !unsent.is_empty() {
    ///     println!("{closed}: {} messages to send again", unsent.len());
    ///     let next = pulse_tokio::connect("127.0.0.1:7000", config).await?;
    ///     for (tag, payload) in unsent {
    ///         next.send(tag, payload).await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn take_unsent(&self) -> Vec<(u16, Bytes)> {
        self.shared().poke(|mailbox| (mailbox.take_unsent(), false))
    }

    /// Queues a message without waiting: whether it was taken.
    pub(crate) fn send_now(&self, tag: u16, payload: Bytes) -> bool {
        self.shared().poke(|mailbox| {
            let taken = matches!(mailbox.try_send(tag, payload), Ok(Some(())));
            (taken, taken)
        })
    }
}
