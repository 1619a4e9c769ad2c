//! A client that reconnects by itself, reporting every transition. Its
//! logic (what it reports, what is kept for the application, when to try
//! again) is pulse-driver's; here are its task and its wakers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, MutexGuard};
use std::task::Poll;
use std::time::{Duration, Instant};

use pulse_driver::{AfterLoss, Attempts, ClientEvent, ClientOptions, ClientQueue, ClientState, Error};
use pulse_proto::{Backoff, CloseCode, Config, Learned};
use tokio::net::ToSocketAddrs;
use tokio::sync::Notify;

use crate::connection::Connection;
use crate::tcp::connect_prepared;

// The reconnecting client's view of a connection: its own methods.
pulse_driver::delegate_inbox!(Connection);

/// What the client's handles and its task share.
pub(crate) struct Shared {
    /// What the application's calls reach ([`ReconnectingClient`]
    /// dereferences to it).
    state: ClientState<Connection>,
    /// To the application: a transition, a connection attached, the end.
    news: Notify,
    /// `close` was called, or every handle dropped.
    stop: AtomicBool,
    stopping: Notify,
}

impl Shared {
    pub(crate) fn queue(&self) -> MutexGuard<'_, ClientQueue<Connection>> {
        ClientState::queue(&self.state)
    }

    /// Changes the queue, then tells the application.
    fn change(&self, f: impl FnOnce(&mut ClientQueue<Connection>)) {
        f(&mut self.queue());
        self.news.notify_waiters();
    }

    fn ask_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.stopping.notify_waiters();
    }

    async fn stop_asked(&self) {
        until(&self.stopping, || self.stop.load(Ordering::Acquire)).await;
    }
}

/// Waits for `notify` until `done` (registered before each look, so a
/// notification in between counts).
async fn until(notify: &Notify, done: impl Fn() -> bool) {
    let mut next = std::pin::pin!(notify.notified());
    while !done() {
        next.as_mut().await;
        next.set(notify.notified());
    }
}

/// A TCP client that reconnects after a dead peer, a dropped connection or
/// a failed attempt, waiting as its [`Backoff`] says, and reports each
/// transition ([`ClientEvent`]). Its task is spawned on the current
/// runtime when it is made.
///
/// - The address is resolved again for every attempt, so a service that
///   moved (a new address behind its name) is found.
/// - Each client draws its own jitter (unless the backoff was seeded), so a
///   fleet that lost its server does not come back in lockstep.
/// - The backoff starts over only after a connection stayed up for
///   [`DEFAULT_STABLE_AFTER`](crate::DEFAULT_STABLE_AFTER) ([`Builder::stable_after`]).
/// - It never stops by itself for a transient error; it ends on a
///   permanent one ([`ClientEvent::Failed`]), when the backoff gives up,
///   on [`ReconnectingClient::close`], or when every handle is dropped.
/// - It never waits for the application: unread transitions are dropped
///   beyond a limit and counted ([`ClientState::events_dropped`]).
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
/// Cloning gives another handle to the same client.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// use std::time::Duration;
/// use pulse_proto::{Backoff, Config, Event};
/// use pulse_tokio::{ClientEvent, ReconnectingClient};
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
/// let client = ReconnectingClient::new("localhost:7000", Config::default(), backoff);
/// loop {
///     match client.recv().await {
///         ClientEvent::Event(Event::Connected(_)) => client.send(1, "hello").await?,
///         ClientEvent::Lost { error, retry_in } => println!("{error}; again in {retry_in:?}"),
///         event if event.is_ending() => break,
///         event => println!("{event:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ReconnectingClient {
    handle: Arc<StopOnDrop>,
}

/// Sending, the adaptive learning, the state of the connection: what
/// every pulse adapter's client does the same way.
impl std::ops::Deref for ReconnectingClient {
    type Target = ClientState<Connection>;
    fn deref(&self) -> &ClientState<Connection> {
        &self.shared().state
    }
}

impl std::fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (connected, dropped) = (self.is_connected(), self.events_dropped());
        write!(
            f,
            "ReconnectingClient {{ connected: {connected}, events_dropped: {dropped} }}"
        )
    }
}

/// Held by every clone; when the last goes, the client stops.
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.ask_stop();
    }
}

/// Builds a [`ReconnectingClient`] with more than the defaults.
///
/// # Examples
///
/// ```no_run
/// # async fn run() {
/// use std::time::Duration;
/// use pulse_proto::{Backoff, Config};
///
/// let client = pulse_tokio::ReconnectingClient::builder("localhost:7000", Config::default())
///     .backoff(Backoff::new(Duration::from_millis(50), Duration::from_secs(5)))
///     .stable_after(Duration::from_secs(30))
///     .build();
/// # }
/// ```
#[derive(Debug)]
pub struct Builder<A> {
    target: A,
    config: Arc<Config>,
    pub(crate) options: ClientOptions,
}

impl<A: ToSocketAddrs + Send + Sync + 'static> Builder<A> {
    /// The delays between attempts (default [`default_backoff`](crate::default_backoff)). An
    /// unseeded backoff gets a seed of the client's own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// let backoff = pulse_tokio::default_backoff().with_max_attempts(20);
    /// let client = pulse_tokio::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default())
    ///     .backoff(backoff)
    ///     .build();
    /// # }
    /// ```
    pub fn backoff(self, backoff: Backoff) -> Self {
        let options = self.options.clone().with_backoff(backoff);
        Builder { options, ..self }
    }

    /// How long a connection must stay up for the backoff to start over
    /// at its next loss (default [`DEFAULT_STABLE_AFTER`](crate::DEFAULT_STABLE_AFTER)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// let client = pulse_tokio::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default())
    ///     .stable_after(std::time::Duration::from_secs(60))
    ///     .build();
    /// # }
    /// ```
    pub fn stable_after(self, uptime: Duration) -> Self {
        let options = self.options.clone().with_stable_after(uptime);
        Builder { options, ..self }
    }

    /// Starts from what an earlier client learned of this network (an
    /// adaptive config's [`Learned`]): the first connection asks for the
    /// learned interval.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// use pulse_proto::{AdaptiveConfig, Config, Learned};
    ///
    /// let config = Config::default().with_adaptive(Some(AdaptiveConfig::default()));
    /// let stored = std::fs::read("wifi-home.learned").ok().and_then(|b| <[u8; 17]>::try_from(b).ok());
    /// let mut builder = pulse_tokio::ReconnectingClient::builder("localhost:7000", config);
    /// if let Some(bytes) = stored {
    ///     builder = builder.learned(Learned::from_bytes(bytes));
    /// }
    /// let client = builder.build();
    /// # }
    /// ```
    pub fn learned(self, learned: Learned) -> Self {
        let options = self.options.clone().with_learned(learned);
        Builder { options, ..self }
    }

    /// How many messages may wait for the next connection while the
    /// client is between two (default [`DEFAULT_MAX_QUEUED`](crate::DEFAULT_MAX_QUEUED)); 0 makes
    /// sending while disconnected fail at once.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// let client = pulse_tokio::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default())
    ///     .max_queued(16)
    ///     .build();
    /// # }
    /// ```
    pub fn max_queued(self, messages: usize) -> Self {
        let options = self.options.clone().with_max_queued(messages);
        Builder { options, ..self }
    }

    /// The client, its task spawned on the current runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// let client = pulse_tokio::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
    /// # }
    /// ```
    pub fn build(self) -> ReconnectingClient {
        let shared = Arc::new(Shared {
            state: ClientState::new(ClientQueue::new(&self.options)),
            news: Notify::new(),
            stop: AtomicBool::new(false),
            stopping: Notify::new(),
        });
        let attempts = self.options.attempts();
        let task = Task {
            shared: shared.clone(),
            attempts,
        };
        tokio::spawn(task.run(self.target, self.config));
        ReconnectingClient {
            handle: Arc::new(StopOnDrop(shared)),
        }
    }
}

/// The client's task: connect, run the connection, wait as the backoff
/// says, and again. It never waits for the application.
struct Task {
    shared: Arc<Shared>,
    attempts: Attempts,
}

impl Drop for Task {
    fn drop(&mut self) {
        // Ended, or dropped with its runtime: every later `recv` says so.
        if !self.shared.queue().has_ended() {
            self.shared.change(|queue| queue.end(ClientEvent::Stopped));
        }
    }
}

impl Task {
    async fn run<A: ToSocketAddrs>(mut self, target: A, config: Arc<Config>) {
        let shared = self.shared.clone();
        let ending = loop {
            let attempt = self.attempts.next_attempt();
            shared.change(|queue| queue.report(attempt));
            let (error, up) = tokio::select! {
                biased;
                () = shared.stop_asked() => break ClientEvent::Stopped,
                attempt = connect_prepared(&target, config.clone(), |conn| shared.queue().prepare(conn)) => match attempt {
                    Ok(conn) => self.serve(conn).await,
                    Err(error) => (error, None),
                },
            };
            if shared.stop.load(Ordering::Acquire) {
                break ClientEvent::Stopped;
            }
            match self.attempts.after_loss(error, up) {
                AfterLoss::End(ending) => break ending,
                AfterLoss::Retry { lost, delay } => {
                    shared.change(|queue| queue.report(lost));
                    tokio::select! {
                        () = shared.stop_asked() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        shared.change(|queue| queue.end(ending));
    }

    /// Runs a connection that is up until it ends, delivering what still
    /// waits for it as it makes room, and closing it gracefully if the
    /// client is stopped meanwhile.
    async fn serve(&mut self, conn: Connection) -> (Error, Option<Duration>) {
        self.attempts.connected();
        let since = Instant::now();
        self.shared.change(|queue| queue.attach(&conn));
        let deliver = async {
            ClientState::deliver(&self.shared.state, &conn).await;
            std::future::pending::<std::convert::Infallible>().await
        };
        let closed = tokio::select! {
            closed = conn.closed() => closed,
            never = deliver => match never {},
            () = self.shared.stop_asked() => {
                let _normal_is_sendable = conn.close(CloseCode::NORMAL, "client closed").await;
                conn.closed().await
            }
        };
        self.shared.queue().detach();
        (Error::Closed(closed), Some(since.elapsed()))
    }
}

impl ReconnectingClient {
    /// A client for `target` (a name to resolve for each attempt, or an
    /// address), with `backoff`; its task is spawned on the current
    /// runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// use std::time::Duration;
    /// use pulse_proto::{Backoff, Config};
    ///
    /// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    /// let client = pulse_tokio::ReconnectingClient::new("localhost:7000", Config::default(), backoff);
    /// # }
    /// ```
    pub fn new<A: ToSocketAddrs + Send + Sync + 'static>(
        target: A,
        config: impl Into<Arc<Config>>,
        backoff: Backoff,
    ) -> ReconnectingClient {
        ReconnectingClient::builder(target, config).backoff(backoff).build()
    }

    /// A [`Builder`] with the defaults.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() {
    /// let client = pulse_tokio::ReconnectingClient::builder("localhost:7000", pulse_proto::Config::default()).build();
    /// # }
    /// ```
    pub fn builder<A: ToSocketAddrs + Send + Sync + 'static>(target: A, config: impl Into<Arc<Config>>) -> Builder<A> {
        Builder {
            target,
            config: config.into(),
            options: ClientOptions::default(),
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
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
    /// # async fn run(client: pulse_tokio::ReconnectingClient) {
    /// use pulse_tokio::ClientEvent;
    ///
    /// loop {
    ///     match client.recv().await {
    ///         ClientEvent::Lost { error, .. } => eprintln!("lost: {error}"),
    ///         ClientEvent::Stopped => break,
    ///         _ => {}
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv(&self) -> ClientEvent {
        let shared = self.shared();
        loop {
            // Listen to the client and to the connection being read
            // before looking: news in between is not missed.
            let mut client_news = std::pin::pin!(shared.news.notified());
            let next = std::future::poll_fn(|cx| {
                let mut queue = shared.queue();
                if let Some(conn) = queue.reading() {
                    conn.shared().mailbox().register_app(cx.waker());
                }
                if let Some(event) = queue.take_next() {
                    return Poll::Ready(Some(event));
                }
                drop(queue);
                client_news.as_mut().poll(cx).map(|()| None)
            });
            if let Some(event) = next.await {
                return event;
            }
        }
    }

    /// Stops: closes the current connection gracefully and makes no more
    /// attempts. Returns once the client's task has finished. Messages
    /// that still wait for a connection (sent while disconnected, or
    /// handed back by the last) are not sent;
    /// [`ClientState::take_unsent`] hands them back.
    ///
    /// Cancel safety: the stop is asked in the first poll; cancelling only
    /// stops the waiting.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(client: pulse_tokio::ReconnectingClient) {
    /// client.close().await;
    /// assert!(!client.is_connected());
    /// for (tag, payload) in client.take_unsent() {
    ///     eprintln!("never delivered: {tag} {payload:?}");
    /// }
    /// # }
    /// ```
    pub async fn close(&self) {
        let shared = self.shared();
        shared.ask_stop();
        until(&shared.news, || shared.queue().has_ended()).await;
    }
}
