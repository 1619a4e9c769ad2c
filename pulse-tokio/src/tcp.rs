//! TCP: connecting out and accepting in.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;

use pulse_driver::{attempt_deadline, config_for, no_address, AcceptErrors, Error};
use pulse_proto::{Config, Role, Transport};
use tokio::net::{lookup_host, TcpListener, TcpStream, ToSocketAddrs};
use tokio::time::timeout_at;

use crate::connection::Connection;
use crate::open::{handshake, open};
use crate::transport::Io;

/// Connects to a pulse server over TCP and completes the handshake; the
/// connection's driver task is spawned on the current tokio runtime.
///
/// `addr` is resolved now, and each address it yields is tried in turn.
/// Establishing TCP is bounded by the config's `handshake_timeout` (a
/// server whose accept queue is full would otherwise leave it pending for
/// minutes), and the handshake then by the same timeout again. Each
/// address gets an equal share of the time left, at least
/// [`pulse_driver::MIN_ADDRESS_SHARE`] (2 s), so one that never answers
/// leaves time for the next.
///
/// Fails with [`Error::Closed`] if the server refuses or the handshake
/// times out, and with [`Error::Io`] (`TimedOut` for the bound above) if
/// TCP fails.
///
/// Cancel safety: cancelling abandons the attempt; nothing is left behind.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// use pulse_proto::Config;
///
/// let conn = pulse_tokio::connect("localhost:7000", Config::default()).await?;
/// conn.send(1, "hello").await?;
/// println!("{:?}", conn.recv().await);
/// # Ok(()) }
/// ```
pub async fn connect(addr: impl ToSocketAddrs, config: impl Into<Arc<Config>>) -> Result<Connection, Error> {
    connect_prepared(addr, config, |_| {}).await
}

/// [`connect`], with `prepare` run on the connection before its HELLO goes
/// out (the reconnecting client gives it what the last one learned).
pub(crate) async fn connect_prepared(
    addr: impl ToSocketAddrs,
    config: impl Into<Arc<Config>>,
    prepare: impl FnOnce(&Connection),
) -> Result<Connection, Error> {
    let config = config_for(config, Transport::Stream)?;
    let deadline = Instant::now() + config.handshake_timeout;
    let stream = first_answering(addr, deadline).await?;
    // Latency matters more than packet count here; a socket that refuses
    // the option still works.
    let _ = stream.set_nodelay(true);
    let addrs = (stream.peer_addr().ok(), stream.local_addr().ok());
    let opened = open(config, Role::Client, Io::Tcp(stream), addrs)?;
    prepare(&opened);
    handshake(opened).await
}

/// The first of `addr`'s addresses that accepts a TCP connection by
/// `deadline`; each gets its share of the time ([`attempt_deadline`]).
async fn first_answering(addr: impl ToSocketAddrs, deadline: Instant) -> io::Result<TcpStream> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
    let addrs: Vec<_> = timeout_at(deadline.into(), lookup_host(addr))
        .await
        .map_err(|_| timed_out())??
        .collect();
    let mut last = None;
    for (tried, addr) in addrs.iter().enumerate() {
        let give_up = attempt_deadline(Instant::now(), deadline, addrs.len() - tried);
        match timeout_at(give_up.into(), TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(timed_out()),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

/// Accepts pulse connections over TCP, as [`tokio::net::TcpListener`]
/// accepts TCP.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// use pulse_proto::Config;
/// use pulse_tokio::{Event, Listener};
///
/// let listener = Listener::bind("127.0.0.1:7000", Config::default()).await?;
/// loop {
///     let (conn, _peer) = listener.accept().await?;
///     tokio::spawn(async move {
///         while let Event::Message { tag, payload } = conn.recv().await {
///             let _ = conn.send(tag, payload).await;
///         }
///     });
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    config: Arc<Config>,
    errors: AcceptErrors,
}

impl Listener {
    /// Listens on `addr` (the first of its addresses that can be bound)
    /// with `config` for every accepted session (used as a stream config).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = pulse_tokio::Listener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// println!("listening on {}", listener.local_addr()?);
    /// # Ok::<(), pulse_tokio::Error>(()) }).unwrap();
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: impl Into<Arc<Config>>) -> Result<Listener, Error> {
        let config = config_for(config, Transport::Stream)?;
        Ok(Listener::new(TcpListener::bind(addr).await?, config))
    }

    /// A listener over a listening socket the application set up (socket
    /// options, `SO_REUSEPORT`, an inherited descriptor). It is made
    /// non-blocking here. Call it within a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let listener = pulse_tokio::Listener::from_std(socket, pulse_proto::Config::default())?;
    /// # Ok::<(), pulse_tokio::Error>(()) }).unwrap();
    /// ```
    pub fn from_std(listener: std::net::TcpListener, config: impl Into<Arc<Config>>) -> Result<Listener, Error> {
        let config = config_for(config, Transport::Stream)?;
        listener.set_nonblocking(true)?;
        Ok(Listener::new(TcpListener::from_std(listener)?, config))
    }

    fn new(listener: TcpListener, config: Arc<Config>) -> Listener {
        Listener {
            listener,
            config,
            errors: AcceptErrors::default(),
        }
    }

    /// The address it listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = pulse_tokio::Listener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// assert!(listener.local_addr()?.port() != 0);
    /// # Ok::<(), pulse_tokio::Error>(()) }).unwrap();
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Sets how long accepting pauses when the process is out of
    /// descriptors (or the kernel out of memory) before trying again
    /// (default [`DEFAULT_ACCEPT_RETRY`](crate::DEFAULT_ACCEPT_RETRY)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(listener: pulse_tokio::Listener) {
    /// listener.set_accept_retry(std::time::Duration::from_millis(20));
    /// # }
    /// ```
    pub fn set_accept_retry(&self, delay: Duration) {
        self.errors.set_retry(delay);
    }

    /// The next connection, as soon as TCP accepted it, with the peer's
    /// address: the handshake runs in its driver task, spawned on the
    /// current runtime. A peer that is not a pulse client (an HTTP
    /// request, a scanner) ends with [`crate::Event::Closed`] saying what
    /// it sent, and troubles no other connection.
    ///
    /// Errors that pass are not returned: a connection that failed before
    /// it was taken is skipped, and when the process runs out of
    /// descriptors, accepting pauses (logged once, on `pulse::accept`) and
    /// resumes by itself. So a loop over `accept` keeps serving; it ends
    /// only if the socket itself is unusable.
    ///
    /// Cancel safety: cancel-safe, as [`tokio::net::TcpListener::accept`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(listener: pulse_tokio::Listener) {
    /// while let Ok((conn, peer)) = listener.accept().await {
    ///     println!("{peer} connected");
    ///     tokio::spawn(async move { conn.closed().await });
    /// }
    /// # }
    /// ```
    pub async fn accept(&self) -> Result<(Connection, SocketAddr), Error> {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    self.errors.on_accept();
                    let _ = stream.set_nodelay(true);
                    let local = stream.local_addr().ok();
                    let conn = open(self.config.clone(), Role::Server, Io::Tcp(stream), (Some(peer), local))?;
                    return Ok((conn, peer));
                }
                Err(error) => {
                    if let Some(pause) = self.errors.on_error(error)? {
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
    }

    /// The connections as they come, as a [`Stream`]: [`Listener::accept`]
    /// in a loop, without the peers' addresses ([`Connection::peer_addr`]
    /// has them), as `tokio-stream`'s `TcpListenerStream` is to a
    /// `TcpListener`. Like `accept`, it yields no error that passes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(listener: pulse_tokio::Listener) -> Result<(), pulse_tokio::Error> {
    /// use std::pin::pin;
    ///
    /// let mut incoming = pin!(listener.incoming());
    /// // Any Stream combinator works; here, by hand:
    /// while let Some(conn) = std::future::poll_fn(|cx| futures_core::Stream::poll_next(incoming.as_mut(), cx)).await {
    ///     let conn = conn?;
    ///     tokio::spawn(async move { conn.closed().await });
    /// }
    /// # Ok(()) }
    /// ```
    pub fn incoming(&self) -> impl Stream<Item = Result<Connection, Error>> + Send + Unpin + '_ {
        Incoming {
            listener: self,
            next: None,
        }
    }
}

/// What one [`Listener::accept`] is while it waits.
type Accepting<'a> = Pin<Box<dyn Future<Output = Result<(Connection, SocketAddr), Error>> + Send + 'a>>;

/// [`Listener::incoming`]: an `accept` in progress, kept between polls
/// (an accept is cancel-safe, so dropping the stream loses nothing).
struct Incoming<'a> {
    listener: &'a Listener,
    next: Option<Accepting<'a>>,
}

impl Stream for Incoming<'_> {
    type Item = Result<Connection, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let listener = self.listener;
        let accepting = self.next.get_or_insert_with(|| Box::pin(listener.accept()));
        let accepted = std::task::ready!(accepting.as_mut().poll(cx));
        self.next = None;
        Poll::Ready(Some(accepted.map(|(conn, _)| conn)))
    }
}
