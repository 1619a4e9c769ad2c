//! TCP: connecting out and accepting in.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use async_net::AsyncToSocketAddrs;
use futures_lite::{future, Stream};
use pulse_driver::{attempt_deadline, config_for, no_address, AcceptErrors};
use pulse_proto::{Config, Role, Transport};

use crate::connection::Connection;
use crate::driver::Driver;
use crate::open::{handshake, pair};
use crate::transport::Io;
use pulse_driver::Error;

/// Connects to a pulse server over TCP and completes the handshake.
///
/// `addr` is resolved now, and each address it yields is tried in turn.
/// Establishing TCP is bounded by the config's `handshake_timeout` (a
/// server whose accept queue is full would otherwise leave it pending for
/// minutes), and the handshake then by the same timeout again. Each
/// address gets an equal share of the time left, at least
/// [`pulse_driver::MIN_ADDRESS_SHARE`] (2 s), so one that never answers
/// leaves time for the next.
///
/// Returns the connection and its [`Driver`], which must be spawned (or
/// otherwise polled) for the connection to run. Fails with
/// [`Error::Closed`] if the server refuses or the handshake times out, and
/// with [`Error::Io`] (`TimedOut` for the bound above) if TCP fails.
///
/// Cancel safety: cancelling abandons the attempt; nothing is left behind.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// use pulse_proto::Config;
///
/// let (conn, driver) = pulse_smol::connect("localhost:7000", Config::default()).await?;
/// smol::spawn(driver).detach();
/// conn.send(1, "hello").await?;
/// println!("{:?}", conn.recv().await);
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
pub async fn connect(
    addr: impl AsyncToSocketAddrs,
    config: impl Into<Arc<Config>>,
) -> Result<(Connection, Driver), Error> {
    connect_prepared(addr, config, |_| {}).await
}

/// [`connect`], with `prepare` run on the connection before its HELLO goes
/// out (the reconnecting client gives it what the last one learned).
pub(crate) async fn connect_prepared(
    addr: impl AsyncToSocketAddrs,
    config: impl Into<Arc<Config>>,
    prepare: impl FnOnce(&Connection),
) -> Result<(Connection, Driver), Error> {
    let config = config_for(config, Transport::Stream)?;
    let stream = connect_tcp(addr, Instant::now() + config.handshake_timeout).await?;
    // Latency matters more than packet count here; a socket that refuses
    // the option still works.
    let _ = stream.get_ref().set_nodelay(true);
    let peer = stream.get_ref().peer_addr().ok();
    let local = stream.get_ref().local_addr().ok();
    let opened = pair(config, Role::Client, Io::Tcp(stream), peer, local)?;
    prepare(&opened.0);
    handshake(opened).await
}

/// Resolves `addr` and connects to the first address that answers, by
/// `deadline`; each address gets its share of the time
/// ([`attempt_deadline`]).
async fn connect_tcp(addr: impl AsyncToSocketAddrs, deadline: Instant) -> io::Result<Async<TcpStream>> {
    let addrs = future::or(async_net::resolve(addr), timed_out(deadline)).await?;
    let mut last = None;
    for (tried, addr) in addrs.iter().enumerate() {
        let give_up = attempt_deadline(Instant::now(), deadline, addrs.len() - tried);
        match future::or(Async::<TcpStream>::connect(*addr), timed_out(give_up)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

async fn timed_out<T>(deadline: Instant) -> io::Result<T> {
    Timer::at(deadline).await;
    Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
}

/// Accepts pulse connections over TCP.
///
/// Cloning gives another handle to the same listening socket.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// use pulse_proto::Config;
/// use pulse_smol::{Event, Listener};
///
/// let listener = Listener::bind("127.0.0.1:7000", Config::default()).await?;
/// loop {
///     let (conn, driver, peer) = listener.accept().await?;
///     smol::spawn(driver).detach();
///     smol::spawn(async move {
///         while let Event::Message { tag, payload } = conn.recv().await {
///             let _ = conn.send(tag, payload).await;
///         }
///     })
///     .detach();
/// }
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[derive(Clone, Debug)]
pub struct Listener {
    inner: Arc<ListenerInner>,
}

#[derive(Debug)]
struct ListenerInner {
    listener: Async<TcpListener>,
    config: Arc<Config>,
    errors: AcceptErrors,
}

impl Listener {
    /// Listens on `addr` (the first of its addresses that can be bound)
    /// with `config` for every accepted session (used as a stream config).
    ///
    /// Cancel safety: cancelling abandons the resolution; no socket is
    /// left bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// let listener = pulse_smol::Listener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// println!("listening on {}", listener.local_addr()?);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn bind(addr: impl AsyncToSocketAddrs, config: impl Into<Arc<Config>>) -> Result<Listener, Error> {
        let config = config_for(config, Transport::Stream)?;
        let mut last = None;
        for addr in async_net::resolve(addr).await? {
            match Async::<TcpListener>::bind(addr) {
                Ok(listener) => return Ok(Listener::new(listener, config)),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))
            .into())
    }

    /// A listener over a listening socket the application set up (socket
    /// options, `SO_REUSEPORT`, an inherited descriptor).
    ///
    /// # Examples
    ///
    /// ```
    /// let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let listener = pulse_smol::Listener::from_std(socket, pulse_proto::Config::default())?;
    /// # Ok::<(), pulse_smol::Error>(())
    /// ```
    pub fn from_std(listener: TcpListener, config: impl Into<Arc<Config>>) -> Result<Listener, Error> {
        let config = config_for(config, Transport::Stream)?;
        Ok(Listener::new(Async::new(listener)?, config))
    }

    fn new(listener: Async<TcpListener>, config: Arc<Config>) -> Listener {
        Listener {
            inner: Arc::new(ListenerInner {
                listener,
                config,
                errors: AcceptErrors::default(),
            }),
        }
    }

    /// The address it listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// let listener = pulse_smol::Listener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// assert!(listener.local_addr()?.port() != 0);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.listener.get_ref().local_addr()
    }

    /// Sets how long accepting pauses when the process is out of
    /// descriptors (or the kernel out of memory) before trying again
    /// (default [`DEFAULT_ACCEPT_RETRY`](crate::DEFAULT_ACCEPT_RETRY)).
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// use std::time::Duration;
    ///
    /// let listener = pulse_smol::Listener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// listener.set_accept_retry(Duration::from_millis(20));
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn set_accept_retry(&self, delay: Duration) {
        self.inner.errors.set_retry(delay);
    }

    /// The next connection, as soon as TCP accepted it: the handshake runs
    /// in its [`Driver`], which must be spawned. A peer that is not a pulse
    /// client (an HTTP request, a scanner) ends with [`crate::Event::Closed`]
    /// saying what it sent, and troubles no other connection.
    ///
    /// Errors that pass are not returned: a connection that failed before
    /// it was taken is skipped, and when the process runs out of
    /// descriptors, accepting pauses (logged once, on `pulse::accept`) and
    /// resumes by itself. So a loop over `accept` keeps serving; it ends
    /// only if the socket itself is unusable.
    ///
    /// Cancel safety: cancel-safe. A connection is taken in the poll that
    /// returns it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let listener = pulse_smol::Listener::bind("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// while let Ok((conn, driver, peer)) = listener.accept().await {
    ///     println!("{peer} connected");
    ///     smol::spawn(driver).detach();
    ///     smol::spawn(async move { conn.closed().await }).detach();
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn accept(&self) -> Result<(Connection, Driver, SocketAddr), Error> {
        let inner = &self.inner;
        loop {
            let error = match inner.listener.accept().await {
                Ok((stream, peer)) => {
                    inner.errors.on_accept();
                    // A socket that refuses the option still works.
                    let _ = stream.get_ref().set_nodelay(true);
                    let local = stream.get_ref().local_addr().ok();
                    let (conn, driver) = pair(inner.config.clone(), Role::Server, Io::Tcp(stream), Some(peer), local)?;
                    return Ok((conn, driver, peer));
                }
                Err(e) => e,
            };
            if let Some(pause) = inner.errors.on_error(error)? {
                Timer::after(pause).await;
            }
        }
    }

    /// The connections as they come, as a [`Stream`]: [`Listener::accept`]
    /// in a loop, without the peers' addresses
    /// ([`Connection::peer_addr`] has them).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// use futures_lite::StreamExt;
    ///
    /// let listener = pulse_smol::Listener::bind("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let mut incoming = listener.incoming();
    /// while let Some((conn, driver)) = incoming.next().await.transpose()? {
    ///     smol::spawn(driver).detach();
    ///     println!("{:?}", conn.peer_addr());
    /// }
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn incoming(&self) -> impl Stream<Item = Result<(Connection, Driver), Error>> + Send + Unpin + '_ {
        Box::pin(futures_lite::stream::unfold(self, |listener| async move {
            let next = listener.accept().await.map(|(conn, driver, _)| (conn, driver));
            Some((next, listener))
        }))
    }
}
