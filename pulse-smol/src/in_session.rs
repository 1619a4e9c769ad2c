//! What an application can change of a connection while it runs: the
//! status it reports, its timings, and an adaptive client's learning.

use std::time::Duration;

use bytes::Bytes;
use pulse_driver::clock;
use pulse_proto::{Learned, SendError, Session, Status};

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
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// use pulse_proto::{ServiceState, Status};
    ///
    /// conn.send_status(Status::new(ServiceState::Draining, 0))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) });
    /// ```
    pub fn send_status(&self, status: Status) -> Result<(), SendError> {
        self.with_session(|session| session.send_status(status))
    }

    /// Asks the server for new timings in-session (a client;
    /// `docs/PROTOCOL.md` §6.10). The server agrees, clamps or keeps what
    /// it has; both ends switch at their next timer, each with an
    /// `Event::Retimed` carrying the values in use.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// use std::time::Duration;
    ///
    /// // The app went to the background: heartbeat less often.
    /// conn.retime(Duration::from_secs(60), Duration::from_secs(180))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(()) });
    /// ```
    pub fn retime(&self, interval: Duration, dead_timeout: Duration) -> Result<(), SendError> {
        self.with_session(|session| session.retime(clock::now(), interval, dead_timeout))
    }

    /// Tells an adaptive client whether its application is active (in the
    /// foreground, say): while active it heartbeats at the adaptive
    /// config's `active` interval, then returns to what it learned, without
    /// a reconnect. No-op for a connection that is not adaptive.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// conn.set_active(true); // the user opened the app
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn set_active(&self, active: bool) {
        self.with_session(|session| session.set_active(clock::now(), active));
    }

    /// What an adaptive client has learned of its path, to keep per
    /// network and give to the next connection on it
    /// ([`crate::ReconnectingClient`] does so by itself). `None` when not
    /// adaptive.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// if let Some(learned) = conn.learned() {
    ///     std::fs::write("wifi-home.learned", learned.to_bytes())?;
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(()) });
    /// ```
    pub fn learned(&self) -> Option<Learned> {
        self.shared.lock().session.learned()
    }

    /// Gives an adaptive client what an earlier connection learned of this
    /// network; the session asks for the learned interval at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// use pulse_proto::Learned;
    ///
    /// if let Ok(bytes) = std::fs::read("wifi-home.learned") {
    ///     if let Ok(bytes) = <[u8; 17]>::try_from(bytes) {
    ///         conn.set_learned(Learned::from_bytes(bytes));
    ///     }
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn set_learned(&self, learned: Learned) {
        self.with_session(|session| session.set_learned(learned));
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
    /// # smol::block_on(async {
    /// use pulse_proto::{AdaptiveConfig, Config};
    ///
    /// let config = Config::default().with_adaptive(Some(AdaptiveConfig::default()));
    /// let (conn, driver) = pulse_smol::connect("127.0.0.1:7000", config.clone()).await?;
    /// smol::spawn(driver).detach();
    /// conn.send(1, "hello").await?;
    /// let closed = conn.closed().await;
    /// let unsent = conn.take_unsent();
    /// if !unsent.is_empty() {
    ///     println!("{closed}: {} messages to send again", unsent.len());
    ///     let (next, driver) = pulse_smol::connect("127.0.0.1:7000", config).await?;
    ///     smol::spawn(driver).detach();
    ///     for (tag, payload) in unsent {
    ///         next.send(tag, payload).await?;
    ///     }
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn take_unsent(&self) -> Vec<(u16, Bytes)> {
        self.shared.lock().take_unsent()
    }

    /// Queues a message without waiting: whether it was taken.
    pub(crate) fn send_now(&self, tag: u16, payload: Bytes) -> bool {
        let taken = matches!(self.shared.lock().try_send(tag, payload), Ok(Some(())));
        if taken {
            self.shared.driver_waker.wake();
        }
        taken
    }

    /// Runs a local call on the session, then wakes the driver: the call
    /// may have queued a frame or moved the deadline earlier.
    fn with_session<R>(&self, call: impl FnOnce(&mut Session) -> R) -> R {
        let result = call(&mut self.shared.lock().session);
        self.shared.driver_waker.wake();
        result
    }
}
