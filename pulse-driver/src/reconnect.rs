//! A reconnecting client's logic, whatever runs it: what it reports, what
//! the application has yet to read, and what follows a lost connection.
//! An adapter supplies the connecting, the sleeping and the waking.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Backoff, Event, Learned};

use crate::waiting::{client_ended, Waiting};
use crate::{Attempts, Error, Inbox};

/// Transitions (`Connecting`, `Lost`) kept for an application that does
/// not read them; older ones are dropped beyond this, and counted. The
/// supervisor never waits for the application.
pub const MAX_UNREAD_TRANSITIONS: usize = 64;
/// Ended connections whose unread events are kept; the oldest is dropped
/// (and counted) beyond this. Each holds at most its receive buffer.
pub const MAX_UNREAD_CONNECTIONS: usize = 4;
/// Messages a reconnecting client keeps for its next connection, by
/// default ([`ClientOptions::max_queued`]): those sent while it was
/// between connections and those lost connections handed back. Enough
/// for a burst through a reconnect's backoff. The payloads are the
/// application's own `Bytes`, kept (not copied) until sent: what they
/// hold is bounded by this count times the largest the application sends
/// while disconnected, as no peer can say then what it would accept.
pub const DEFAULT_MAX_QUEUED: usize = 256;

/// The default backoff: from 100 ms, doubling, up to 30 s, with no limit
/// on attempts.
///
/// # Examples
///
/// ```
/// let backoff = pulse_driver::default_backoff().with_max_attempts(10);
/// # let _ = backoff;
/// ```
pub fn default_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
}

/// How a reconnecting client retries: its backoff and how long a
/// connection must stay up for the backoff to start over. The adapters'
/// builders set it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut options = pulse_driver::ClientOptions::default();
/// options.stable_after = Duration::from_secs(30);
/// let _attempts = options.attempts();
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The delays between attempts (default [`default_backoff`]); an
    /// unseeded backoff gets a seed of the client's own.
    pub backoff: Backoff,
    /// How long a connection must stay up for the backoff to start over
    /// at its next loss (default [`crate::DEFAULT_STABLE_AFTER`]).
    pub stable_after: Duration,
    /// What an earlier client learned of this network (an adaptive
    /// config's [`Learned`]), for the first connection to start from
    /// (default none).
    pub learned: Option<Learned>,
    /// How many messages may wait for the next connection, those sent
    /// while disconnected and those lost connections handed back together
    /// (default [`DEFAULT_MAX_QUEUED`]); beyond it, sending fails with
    /// [`Error::QueueFull`]. 0 queues nothing: sending while disconnected
    /// fails at once.
    pub max_queued: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            backoff: default_backoff(),
            stable_after: crate::DEFAULT_STABLE_AFTER,
            learned: None,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

impl ClientOptions {
    /// With this backoff.
    pub fn with_backoff(self, backoff: Backoff) -> ClientOptions {
        ClientOptions { backoff, ..self }
    }

    /// With this uptime for the backoff to start over.
    pub fn with_stable_after(self, stable_after: Duration) -> ClientOptions {
        ClientOptions { stable_after, ..self }
    }

    /// Starting from what an earlier client learned of this network.
    pub fn with_learned(self, learned: Learned) -> ClientOptions {
        ClientOptions {
            learned: Some(learned),
            ..self
        }
    }

    /// With this many messages kept for the next connection at most.
    pub fn with_max_queued(self, max_queued: usize) -> ClientOptions {
        ClientOptions { max_queued, ..self }
    }

    /// The client's attempts, counted by these options.
    pub fn attempts(self) -> Attempts {
        Attempts::new(self.backoff, self.stable_after)
    }
}

/// What a reconnecting client reports, in order: `Connecting`, then
/// either the connection's events (`Event(Connected)` first,
/// `Event(Closed)` last) or none, then `Lost`, and again; or one of the
/// endings, `GaveUp`, `Failed` or `Stopped`, after which nothing follows.
///
/// # Examples
///
/// ```
/// use pulse_driver::ClientEvent;
///
/// # fn show(event: ClientEvent) {
/// match event {
///     ClientEvent::Connecting { attempt } => println!("attempt {attempt}"),
///     ClientEvent::Event(event) => println!("{event:?}"),
///     ClientEvent::Lost { error, retry_in } => println!("{error}; again in {retry_in:?}"),
///     ending => println!("{ending:?}"),
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Attempt `attempt` (from 1 since the last connection) is starting.
    Connecting {
        /// The attempt number.
        attempt: u32,
    },
    /// An event of the current connection, as the core reported it.
    Event(Event),
    /// The connection was lost, or an attempt failed: why, and when the
    /// next attempt comes.
    Lost {
        /// How the connection ended ([`Error::Closed`]), or why the attempt
        /// failed.
        error: Arc<Error>,
        /// How long until the next attempt.
        retry_in: Duration,
    },
    /// The backoff's limit on attempts was reached.
    GaveUp {
        /// Attempts made in a row.
        attempts: u32,
        /// Why the last one failed.
        error: Arc<Error>,
    },
    /// An error that trying again cannot mend ([`Error::is_permanent`]):
    /// an invalid configuration or a malformed address.
    Failed {
        /// The error.
        error: Arc<Error>,
    },
    /// The client was closed, or every handle of it dropped.
    Stopped,
}

impl ClientEvent {
    /// Whether nothing follows this event.
    ///
    /// ```
    /// assert!(pulse_driver::ClientEvent::Stopped.is_ending());
    /// assert!(!pulse_driver::ClientEvent::Connecting { attempt: 1 }.is_ending());
    /// ```
    pub fn is_ending(&self) -> bool {
        matches!(
            self,
            ClientEvent::GaveUp { .. } | ClientEvent::Failed { .. } | ClientEvent::Stopped
        )
    }
}

enum Entry<C> {
    Transition(ClientEvent),
    /// The application reads this connection's events, up to its Closed.
    Connection(C),
}

/// What a reconnecting client's application has yet to read, and the
/// connection that is up. Its supervisor only ever adds to it, never
/// waits on it; the adapter keeps it behind a lock and wakes the
/// application after every change.
///
/// No message is lost with a connection, nor sent into the gap between
/// two: the messages a connection never began to send when it ended (held
/// over an idle path it could not confirm, or queued; `docs/PROTOCOL.md`
/// §6.11.1) are kept at [`ClientQueue::detach`], those the application
/// sends while no connection is up wait behind them
/// ([`ClientQueue::route`], at most [`ClientOptions::max_queued`] in
/// all), and the next connection takes them at [`ClientQueue::attach`]
/// as far as it has room, the rest as it makes room
/// ([`crate::ClientState::deliver`]), in order, before anything newer the
/// application sends. One the next connection refuses as too large for
/// the new peer is set aside for the application
/// ([`ClientQueue::take_unsent`]), holding nothing up.
///
/// # Examples
///
/// ```
/// use std::future::Future;
/// use pulse_driver::{ClientEvent, ClientOptions, ClientQueue, Error, Inbox};
///
/// #[derive(Clone)]
/// struct NoConnection;
/// impl Inbox for NoConnection {
///     fn try_recv(&self) -> Option<pulse_proto::Event> { None }
///     fn learned(&self) -> Option<pulse_proto::Learned> { None }
///     fn set_learned(&self, _: pulse_proto::Learned) {}
///     fn set_active(&self, _: bool) {}
///     fn take_unsent(&self) -> Vec<(u16, bytes::Bytes)> { Vec::new() }
///     fn send_now(&self, _: u16, _: bytes::Bytes) -> bool { false }
///     fn send(&self, _: u16, _: bytes::Bytes) -> impl Future<Output = Result<(), Error>> + Send {
///         std::future::ready(Ok(()))
///     }
///     fn is_closed(&self) -> bool { true }
///     fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> { Err(std::io::ErrorKind::NotConnected.into()) }
///     fn rtt(&self) -> Option<std::time::Duration> { None }
/// }
///
/// let mut queue = ClientQueue::<NoConnection>::new(&ClientOptions::default().with_max_queued(1));
/// assert!(matches!(queue.route(1, "while down".into()), Ok(None)), "queued");
/// assert!(matches!(queue.route(2, "one too many".into()), Err(Error::QueueFull { limit: 1 })));
/// queue.report(ClientEvent::Connecting { attempt: 1 });
/// assert!(matches!(queue.take_next(), Some(ClientEvent::Connecting { attempt: 1 })));
/// queue.end(ClientEvent::Stopped);
/// assert!(matches!(queue.take_next(), Some(ClientEvent::Stopped)));
/// assert!(matches!(queue.take_next(), Some(ClientEvent::Stopped)), "the ending stays");
/// ```
pub struct ClientQueue<C> {
    queue: VecDeque<Entry<C>>,
    current: Option<C>,
    dropped: u64,
    ended: Option<ClientEvent>,
    /// What the connections learned of the path, for the next one.
    learned: Option<Learned>,
    /// Whether the application said it is active.
    active: bool,
    /// Messages for the next connection: those lost connections never
    /// began to send, then those sent while none could take them.
    waiting: Waiting,
}

impl<C> Default for ClientQueue<C> {
    fn default() -> Self {
        ClientQueue {
            queue: VecDeque::new(),
            current: None,
            dropped: 0,
            ended: None,
            learned: None,
            active: false,
            waiting: Waiting::new(DEFAULT_MAX_QUEUED),
        }
    }
}

impl<C> std::fmt::Debug for ClientQueue<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientQueue")
            .field("unread", &self.queue.len())
            .field("dropped", &self.dropped)
            .field("ended", &self.ended)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl<C: Inbox> ClientQueue<C> {
    /// A client's queue, with its options' limit on waiting messages and
    /// their starting point ([`ClientOptions::learned`]).
    pub fn new(options: &ClientOptions) -> ClientQueue<C> {
        ClientQueue {
            learned: options.learned,
            waiting: Waiting::new(options.max_queued),
            ..ClientQueue::default()
        }
    }

    /// Queues a transition, never waiting: beyond the limit the oldest
    /// unread one goes.
    pub fn report(&mut self, event: ClientEvent) {
        let transitions = self.queue.iter().filter(|e| matches!(e, Entry::Transition(_))).count();
        if transitions >= MAX_UNREAD_TRANSITIONS {
            let oldest = self
                .queue
                .iter()
                .position(|e| matches!(e, Entry::Transition(t) if !t.is_ending()));
            if let Some(i) = oldest {
                self.queue.remove(i);
                self.dropped += 1;
            }
        }
        self.queue.push_back(Entry::Transition(event));
    }

    /// A connection is up: the application reads its events next, and
    /// what waits (what earlier connections never began to send, then
    /// what was sent meanwhile) is queued on it first, in order, as far as
    /// it has room (call it with the handshake done, before the
    /// application can send on `conn`; then run
    /// [`crate::ClientState::deliver`] beside the connection for the rest).
    pub fn attach(&mut self, conn: &C) {
        self.waiting.offer(conn);
        let connections = self.queue.iter().filter(|e| matches!(e, Entry::Connection(_))).count();
        if connections >= MAX_UNREAD_CONNECTIONS {
            if let Some(i) = self.queue.iter().position(|e| matches!(e, Entry::Connection(_))) {
                self.queue.remove(i);
                self.dropped += 1;
            }
        }
        self.queue.push_back(Entry::Connection(conn.clone()));
        self.current = Some(conn.clone());
    }

    /// The connection is over (closed): keep what it learned, and the
    /// messages it never began to send, for the next one.
    pub fn detach(&mut self) {
        if let Some(conn) = self.current.take() {
            if let Some(learned) = conn.learned() {
                self.learned = Some(learned);
            }
            self.waiting.hand_back(conn.take_unsent());
        }
    }

    /// Where the application's message goes: `Some(conn)`, send it there
    /// (outside the lock; it may wait for room); `None`, it waits here for
    /// the next connection, as no connection is up or older messages
    /// still wait (given to the connection first, as far as it takes
    /// them). [`Error::QueueFull`] beyond [`ClientOptions::max_queued`];
    /// [`Error::Closed`] once the client has ended.
    pub fn route(&mut self, tag: u16, payload: Bytes) -> Result<Option<C>, Error> {
        if self.ended.is_some() {
            return Err(client_ended());
        }
        let open = self.current.as_ref().filter(|conn| !conn.is_closed());
        match open {
            Some(conn) if self.waiting.offer(conn) => Ok(Some(conn.clone())),
            _ => self.waiting.push(tag, payload).map(|()| None),
        }
    }

    /// A message [`ClientQueue::route`] sent to a connection that ended
    /// before it took it: it waits for the next (behind what that one
    /// hands back), or goes to one that came up meanwhile.
    pub fn requeue(&mut self, tag: u16, payload: Bytes) -> Result<(), Error> {
        if self.ended.is_some() {
            return Err(client_ended());
        }
        self.waiting.push(tag, payload)?;
        if let Some(conn) = self.current.as_ref().filter(|conn| !conn.is_closed()) {
            self.waiting.offer(conn);
        }
        Ok(())
    }

    /// The messages waiting, for [`crate::ClientState::deliver`].
    pub(crate) fn waiting_mut(&mut self) -> &mut Waiting {
        &mut self.waiting
    }

    /// How many messages wait for the next connection.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The messages waiting for the next connection (those lost
    /// connections never began to send, then those sent while none was
    /// up), taken: they will not be sent by the client. After the client
    /// ended, what it could not deliver.
    pub fn take_unsent(&mut self) -> Vec<(u16, Bytes)> {
        self.waiting.take()
    }

    /// Gives a new connection, before its handshake, what the client knows:
    /// the path's learned value and whether the application is active.
    pub fn prepare(&self, conn: &C) {
        if let Some(learned) = self.learned {
            conn.set_learned(learned);
        }
        if self.active {
            conn.set_active(true);
        }
    }

    /// What the client knows of the path: the current connection's
    /// learning, or the last one's.
    pub fn learned(&self) -> Option<Learned> {
        self.current.as_ref().and_then(Inbox::learned).or(self.learned)
    }

    /// Records whether the application is active; returns the connection
    /// that is up, to tell it too (outside the lock).
    pub fn set_active(&mut self, active: bool) -> Option<C> {
        self.active = active;
        self.current.clone()
    }

    /// Ends with `last`: queued, and returned by every `take_next` after.
    pub fn end(&mut self, last: ClientEvent) {
        self.queue.push_back(Entry::Transition(last.clone()));
        self.ended = Some(last);
        self.current = None;
    }

    /// The connection whose events the application reads next, to wait on
    /// when [`ClientQueue::take_next`] has nothing (listen to it first,
    /// then take, so no news is missed).
    pub fn reading(&self) -> Option<&C> {
        match self.queue.front() {
            Some(Entry::Connection(conn)) => Some(conn),
            _ => None,
        }
    }

    /// The next event for the application: a transition, or the next
    /// event of the connection it is reading (its `Closed` last); `None`
    /// to wait.
    pub fn take_next(&mut self) -> Option<ClientEvent> {
        match self.queue.front() {
            Some(Entry::Transition(_)) => match self.queue.pop_front() {
                Some(Entry::Transition(event)) => Some(event),
                _ => None,
            },
            Some(Entry::Connection(conn)) => match conn.try_recv()? {
                Event::Closed(closed) => {
                    self.queue.pop_front();
                    Some(ClientEvent::Event(Event::Closed(closed)))
                }
                event => Some(ClientEvent::Event(event)),
            },
            None => self.ended.clone(),
        }
    }

    /// The connection that is up, if one is.
    pub fn current(&self) -> Option<&C> {
        self.current.as_ref()
    }

    /// Entries dropped unread.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether the ending was reported.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
    }
}
