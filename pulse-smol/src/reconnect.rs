//! A client that reconnects by itself, reporting every transition.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_io::Timer;
use bytes::Bytes;
use event_listener::Event;
use futures_lite::future;
use pulse_proto::{Backoff, CloseCode, Closed, Config, Negotiated, RttSample};

use crate::connection::Connection;
use crate::error::Error;
use crate::incoming::Incoming;
use crate::tcp::connect;

/// What a [`ReconnectingClient`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Attempt `attempt` (from 1 since the last connection) is starting.
    Connecting {
        /// The attempt number.
        attempt: u32,
    },
    /// Connected, with the agreed values.
    Connected(Negotiated),
    /// An application message.
    Message {
        /// The application's message type or route.
        tag: u16,
        /// The message.
        payload: Bytes,
    },
    /// A heartbeat round trip was measured.
    Rtt(RttSample),
    /// The server has not answered a PING in time; not a verdict.
    Suspect {
        /// Time since the last frame from the server.
        silent_for: Duration,
    },
    /// The server answered again.
    Recovered {
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// The connection was lost, or an attempt failed: why. A new attempt
    /// follows after the backoff's delay unless it gives up.
    Lost {
        /// How the connection ended, if one was made.
        closed: Option<Closed>,
        /// Why the attempt failed, if none was.
        error: Option<String>,
        /// How long until the next attempt.
        retry_in: Option<Duration>,
    },
    /// The backoff policy gave up after this many attempts in a row.
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
    /// [`ReconnectingClient::close`] was called; nothing follows.
    Stopped,
}

/// Events kept for an application that does not read them.
const BACKLOG: usize = 1024;

struct State {
    current: Option<Connection>,
    events: VecDeque<ClientEvent>,
    stopped: bool,
    /// The last event (`GaveUp` or `Stopped`), once the supervisor is done:
    /// returned by every `recv` after the queue drains.
    finished: Option<ClientEvent>,
}

struct Inner {
    state: Mutex<State>,
    to_app: Event,
    to_supervisor: Event,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues an event, waiting while the application is a backlog behind.
    async fn report(&self, event: ClientEvent) {
        loop {
            let space = self.to_supervisor.listen();
            {
                let mut state = self.lock();
                if state.events.len() < BACKLOG || state.stopped {
                    state.events.push_back(event);
                    break;
                }
            }
            space.await;
        }
        self.to_app.notify(usize::MAX);
    }
}

/// A TCP client that reconnects after a dead peer or a dropped connection,
/// waiting as its [`Backoff`] says, and reports each transition.
#[derive(Clone)]
pub struct ReconnectingClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReconnectingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReconnectingClient")
    }
}

/// Runs a [`ReconnectingClient`]: its connections and their drivers. Spawn
/// it; it finishes when the client is closed or its backoff gives up.
#[must_use = "a reconnecting client does nothing unless its supervisor runs"]
pub struct Supervisor {
    future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
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

impl ReconnectingClient {
    /// A client for `addr`. Nothing happens until the [`Supervisor`] runs.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// use std::time::Duration;
    /// use pulse_proto::{Backoff, Config};
    /// use pulse_smol::{ClientEvent, ReconnectingClient};
    ///
    /// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    /// let (client, supervisor) = ReconnectingClient::new("127.0.0.1:7000".parse().unwrap(), Config::default(), backoff);
    /// smol::spawn(supervisor).detach();
    /// loop {
    ///     match client.recv().await {
    ///         ClientEvent::Connected(_) => client.send(1, &b"hello"[..]).await.unwrap(),
    ///         ClientEvent::GaveUp { .. } => break,
    ///         event => println!("{event:?}"),
    ///     }
    /// }
    /// # });
    /// ```
    pub fn new(addr: SocketAddr, config: impl Into<Arc<Config>>, backoff: Backoff) -> (ReconnectingClient, Supervisor) {
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                current: None,
                events: VecDeque::new(),
                stopped: false,
                finished: None,
            }),
            to_app: Event::new(),
            to_supervisor: Event::new(),
        });
        let future = Box::pin(supervise(inner.clone(), addr, config.into(), backoff));
        (ReconnectingClient { inner }, Supervisor { future })
    }

    /// Sends on the current connection; fails with [`Error::Closed`] while
    /// disconnected (messages are not kept across connections).
    pub async fn send(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), Error> {
        let current = self.inner.lock().current.clone();
        match current {
            Some(conn) => conn.send(tag, payload).await,
            None => Err(Error::Closed(Closed::new(
                CloseCode::LOST,
                "not connected",
                pulse_proto::Initiator::Local,
            ))),
        }
    }

    /// The next event. After [`ClientEvent::GaveUp`] or
    /// [`ClientEvent::Stopped`], returns it again on every call.
    pub async fn recv(&self) -> ClientEvent {
        loop {
            let arrived = self.inner.to_app.listen();
            {
                let mut state = self.inner.lock();
                if let Some(event) = state.events.pop_front() {
                    drop(state);
                    self.inner.to_supervisor.notify(usize::MAX);
                    return event;
                }
                if let Some(last) = &state.finished {
                    return last.clone();
                }
            }
            arrived.await;
        }
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.lock().current.is_some()
    }

    /// The current connection's smoothed RTT.
    pub fn rtt(&self) -> Option<Duration> {
        self.inner.lock().current.as_ref().and_then(Connection::rtt)
    }

    /// Stops: closes the current connection gracefully and makes no more
    /// attempts. Returns once the supervisor has finished.
    pub async fn close(&self) {
        self.inner.lock().stopped = true;
        self.inner.to_supervisor.notify(usize::MAX);
        loop {
            let changed = self.inner.to_app.listen();
            if self.inner.lock().finished.is_some() {
                return;
            }
            changed.await;
        }
    }
}

async fn supervise(inner: Arc<Inner>, addr: SocketAddr, config: Arc<Config>, mut backoff: Backoff) {
    let mut attempt = 0u32;
    loop {
        if inner.lock().stopped {
            break;
        }
        attempt += 1;
        inner.report(ClientEvent::Connecting { attempt }).await;
        let (closed, error) = match connect(addr, config.clone()).await {
            Ok((conn, driver)) => {
                backoff.reset();
                attempt = 0;
                inner.lock().current = Some(conn.clone());
                if let Some(n) = conn.negotiated() {
                    inner.report(ClientEvent::Connected(n)).await;
                }
                let run = future::or(forward(&inner, &conn), close_when_stopped(&inner, &conn));
                let (_, closed) = future::zip(driver, run).await;
                inner.lock().current = None;
                (Some(closed), None)
            }
            Err(Error::Closed(closed)) => (Some(closed), None),
            Err(e) => (None, Some(e.to_string())),
        };
        if inner.lock().stopped {
            break;
        }
        let retry_in = backoff.next_delay();
        inner
            .report(ClientEvent::Lost {
                closed,
                error,
                retry_in,
            })
            .await;
        let Some(delay) = retry_in else {
            finish(
                &inner,
                ClientEvent::GaveUp {
                    attempts: backoff.attempts(),
                },
            );
            return;
        };
        // Sleep, but wake at once if the client is closed meanwhile.
        future::or(
            async {
                Timer::after(delay).await;
            },
            stopped(&inner),
        )
        .await;
    }
    finish(&inner, ClientEvent::Stopped);
}

/// Ends with `last`: queued, and returned by every `recv` after.
fn finish(inner: &Inner, last: ClientEvent) {
    {
        let mut state = inner.lock();
        state.events.push_back(last.clone());
        state.finished = Some(last);
    }
    inner.to_app.notify(usize::MAX);
}

/// Waits for [`ReconnectingClient::close`]. The same notification also
/// says "the application read an event", so it is checked each time.
async fn stopped(inner: &Inner) {
    loop {
        let changed = inner.to_supervisor.listen();
        if inner.lock().stopped {
            return;
        }
        changed.await;
    }
}

/// Waits for [`ReconnectingClient::close`], then closes the connection.
async fn close_when_stopped(inner: &Inner, conn: &Connection) -> Closed {
    stopped(inner).await;
    match conn.close(CloseCode::NORMAL, "client closed").await {
        Ok(closed) => closed,
        Err(_) => conn.closed().await,
    }
}

/// Passes the connection's items on until it closes; returns how.
async fn forward(inner: &Inner, conn: &Connection) -> Closed {
    loop {
        let event = match conn.recv().await {
            Incoming::Closed(closed) => return closed,
            Incoming::Message { tag, payload } => ClientEvent::Message { tag, payload },
            Incoming::Rtt(sample) => ClientEvent::Rtt(sample),
            Incoming::Suspect { silent_for } => ClientEvent::Suspect { silent_for },
            Incoming::Recovered { silent_for } => ClientEvent::Recovered { silent_for },
            _ => continue,
        };
        inner.report(event).await;
    }
}
