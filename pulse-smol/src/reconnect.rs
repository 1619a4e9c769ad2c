//! A client that reconnects by itself, reporting every transition.

use std::sync::Arc;
use std::time::Duration;

use async_net::AsyncToSocketAddrs;
use pulse_driver::{ClientEvent, ClientOptions, ClientState};
use pulse_proto::{Backoff, Config, Learned};

use crate::client_state::Inner;
use crate::connection::Connection;
use crate::supervisor::supervise;
#[cfg(doc)]
use crate::Error;

/// A TCP client that reconnects after a dead peer, a dropped connection or
/// a failed attempt, waiting as its [`Backoff`] says, and reports each
/// transition ([`ClientEvent`]).
///
/// - The address is resolved again for every attempt, so a service that
///   moved (a new address behind its name) is found.
/// - Each client draws its own jitter (unless the backoff was seeded), so a
///   fleet that lost its server does not come back in lockstep.
/// - The backoff starts over only after a connection stayed up for
///   [`DEFAULT_STABLE_AFTER`](crate::DEFAULT_STABLE_AFTER) ([`Builder::stable_after`]): a server that
///   accepts and drops at once is backed off from too.
/// - It never stops by itself for a transient error; it ends on a
///   permanent one ([`ClientEvent::Failed`]), when the backoff gives up,
///   on [`ReconnectingClient::close`], or when every handle is dropped.
/// - It never waits for the application: unread transitions and
///   informational events are dropped beyond a limit and counted
///   ([`ClientState::events_dropped`]); messages wait in the
///   connection, whose reading pauses when the application is behind.
/// - A message sent while it is between connections is queued for the
///   next, and a message a lost connection took but never began to send
///   (held over an idle path it could not confirm, or queued;
///   `docs/PROTOCOL.md` §6.11.1) is not lost: the next connection sends
///   them first, in order, ahead of anything sent after. At most
///   [`Builder::max_queued`] wait (default [`DEFAULT_MAX_QUEUED`](crate::DEFAULT_MAX_QUEUED)); beyond
///   it `send` fails with [`Error::QueueFull`]. After [`ReconnectingClient::close`],
///   what was never sent is the application's: [`ClientState::take_unsent`].
///
/// Sending, the adaptive learning and the state of the connection are
/// [`ClientState`]'s methods (the same for every pulse adapter), which
/// the client dereferences to: `client.send(..)`, `client.learned()`.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// use std::time::Duration;
/// use pulse_proto::{Backoff, Config, Event};
/// use pulse_smol::{ClientEvent, ReconnectingClient};
///
/// // Not seeded: the client draws its own jitter.
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
/// let (client, supervisor) = ReconnectingClient::new("localhost:7000", Config::default(), backoff);
/// smol::spawn(supervisor).detach();
/// loop {
///     match client.recv().await {
///         ClientEvent::Event(Event::Connected(_)) => client.send(1, "hello").await?,
///         ClientEvent::Lost { error, retry_in } => println!("{error}; again in {retry_in:?}"),
///         ClientEvent::GaveUp { .. } | ClientEvent::Failed { .. } | ClientEvent::Stopped => break,
///         event => println!("{event:?}"),
///     }
/// }
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[derive(Clone)]
pub struct ReconnectingClient {
    handle: Arc<Handle>,
}

/// Held by every clone; when the last goes, the client stops.
struct Handle(Arc<Inner>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Sending, the adaptive learning, the state of the connection: what
/// every pulse adapter's client does the same way.
impl std::ops::Deref for ReconnectingClient {
    type Target = ClientState<Connection>;
    fn deref(&self) -> &ClientState<Connection> {
        &self.inner().state
    }
}

impl std::fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectingClient")
            .field("connected", &self.is_connected())
            .finish()
    }
}

/// Runs a [`ReconnectingClient`]: its connections and their drivers. Spawn
/// it; it finishes when the client ends (see [`ClientEvent`]) or every
/// handle of it is dropped.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
/// let supervisor = smol::spawn(supervisor);
/// drop(client); // the last handle: the client stops
/// supervisor.await;
/// # });
/// ```
#[must_use = "a reconnecting client does nothing unless its supervisor runs"]
pub struct Supervisor {
    future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    inner: Arc<Inner>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // Dropped before its end (its executor shut down, say): the
        // client has stopped, and `close` and `recv` must say so.
        if !self.inner.lock().has_ended() {
            self.inner.tell(|queue| queue.end(ClientEvent::Stopped));
        }
    }
}

impl std::future::Future for Supervisor {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Supervisor")
    }
}

/// Builds a [`ReconnectingClient`] with more than the defaults.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pulse_proto::{Backoff, Config};
///
/// let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", Config::default())
///     .backoff(Backoff::new(Duration::from_millis(50), Duration::from_secs(5)))
///     .stable_after(Duration::from_secs(30))
///     .build();
/// smol::spawn(supervisor).detach();
/// ```
#[derive(Debug)]
pub struct Builder<A> {
    target: A,
    config: Arc<Config>,
    pub(crate) options: ClientOptions,
}

impl<A: AsyncToSocketAddrs + Send + Sync + 'static> Builder<A> {
    /// The delays between attempts (default [`default_backoff`](crate::default_backoff)). An
    /// unseeded backoff gets a seed of the client's own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// let backoff = pulse_proto::Backoff::new(Duration::from_millis(50), Duration::from_secs(5)).with_max_attempts(20);
    /// let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default())
    ///     .backoff(backoff)
    ///     .build();
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.options.backoff = backoff;
        self
    }

    /// How long a connection must stay up for the backoff to start over
    /// at its next loss (default [`DEFAULT_STABLE_AFTER`](crate::DEFAULT_STABLE_AFTER)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default())
    ///     .stable_after(std::time::Duration::from_secs(60))
    ///     .build();
    /// ```
    pub fn stable_after(mut self, uptime: Duration) -> Self {
        self.options.stable_after = uptime;
        self
    }

    /// Starts from what an earlier client learned of this network (an
    /// adaptive config's [`Learned`]): the first connection's HELLO asks
    /// for the learned interval.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pulse_proto::{AdaptiveConfig, Config, Learned};
    ///
    /// let config = Config::default().with_adaptive(Some(AdaptiveConfig::default()));
    /// let stored = std::fs::read("wifi-home.learned").ok().and_then(|b| <[u8; 17]>::try_from(b).ok());
    /// let mut builder = pulse_smol::ReconnectingClient::builder("localhost:7000", config);
    /// if let Some(bytes) = stored {
    ///     builder = builder.learned(Learned::from_bytes(bytes));
    /// }
    /// let (client, supervisor) = builder.build();
    /// ```
    pub fn learned(mut self, learned: Learned) -> Self {
        self.options.learned = Some(learned);
        self
    }

    /// How many messages may wait for the next connection while the
    /// client is between two (default [`DEFAULT_MAX_QUEUED`](crate::DEFAULT_MAX_QUEUED)); 0 makes
    /// sending while disconnected fail at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default())
    ///     .max_queued(16)
    ///     .build();
    /// ```
    pub fn max_queued(mut self, messages: usize) -> Self {
        self.options.max_queued = messages;
        self
    }

    /// The client, and the supervisor to spawn.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
    /// smol::spawn(supervisor).detach();
    /// ```
    pub fn build(self) -> (ReconnectingClient, Supervisor) {
        let inner = Arc::new(Inner::new(&self.options));
        let attempts = self.options.attempts();
        let future = Box::pin(supervise(inner.clone(), self.target, self.config, attempts));
        let supervisor = Supervisor {
            future,
            inner: inner.clone(),
        };
        let client = ReconnectingClient {
            handle: Arc::new(Handle(inner)),
        };
        (client, supervisor)
    }
}

impl ReconnectingClient {
    /// A client for `target` (a name to resolve for each attempt, or an
    /// address), with `backoff`. Nothing happens until the [`Supervisor`]
    /// runs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use pulse_proto::{Backoff, Config};
    ///
    /// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    /// let (client, supervisor) = pulse_smol::ReconnectingClient::new("localhost:7000", Config::default(), backoff);
    /// smol::spawn(supervisor).detach();
    /// ```
    pub fn new<A: AsyncToSocketAddrs + Send + Sync + 'static>(
        target: A,
        config: impl Into<Arc<Config>>,
        backoff: Backoff,
    ) -> (ReconnectingClient, Supervisor) {
        ReconnectingClient::builder(target, config).backoff(backoff).build()
    }

    /// A [`Builder`] with the defaults.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let (client, supervisor) =
    ///     pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
    /// ```
    pub fn builder<A: AsyncToSocketAddrs + Send + Sync + 'static>(
        target: A,
        config: impl Into<Arc<Config>>,
    ) -> Builder<A> {
        Builder {
            target,
            config: config.into(),
            options: ClientOptions::default(),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.handle.0
    }

    /// The next event. After an ending ([`ClientEvent::GaveUp`],
    /// [`ClientEvent::Failed`], [`ClientEvent::Stopped`]), returns it
    /// again on every call.
    ///
    /// Cancel safety: cancel-safe. An event is taken in the poll that
    /// returns it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
    /// use pulse_smol::ClientEvent;
    ///
    /// loop {
    ///     match client.recv().await {
    ///         ClientEvent::Lost { error, .. } => eprintln!("lost: {error}"),
    ///         ClientEvent::Stopped => break,
    ///         _ => {}
    ///     }
    /// }
    /// # });
    /// ```
    pub async fn recv(&self) -> ClientEvent {
        let inner = self.inner();
        loop {
            let arrived = inner.to_app.listen();
            match inner.take_next() {
                Ok(event) => return event,
                Err(Some(from_connection)) => {
                    futures_lite::future::or(arrived, from_connection).await;
                }
                Err(None) => arrived.await,
            }
        }
    }

    /// Stops: closes the current connection gracefully and makes no more
    /// attempts. Returns once the supervisor has finished. Messages that
    /// still wait for a connection (sent while disconnected, or handed
    /// back by the last) are not sent; [`ClientState::take_unsent`] hands
    /// them back.
    ///
    /// Cancel safety: the stop is asked in the first poll; cancelling only
    /// stops the waiting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (client, supervisor) = pulse_smol::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
    /// client.close().await;
    /// assert!(!client.is_connected());
    /// for (tag, payload) in client.take_unsent() {
    ///     eprintln!("never delivered: {tag} {payload:?}");
    /// }
    /// # });
    /// ```
    pub async fn close(&self) {
        let inner = self.inner();
        inner.stop();
        loop {
            let changed = inner.to_app.listen();
            if inner.lock().has_ended() {
                return;
            }
            changed.await;
        }
    }
}
