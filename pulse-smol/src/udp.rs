//! UDP: one connection per peer, in datagram mode (DATA is unreliable).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_io::Async;
use async_net::AsyncToSocketAddrs;
use pulse_driver::{config_for, no_address, unspecified_for, Demux};
use pulse_proto::{Config, Role, Transport};

use crate::connection::Connection;
use crate::driver::Driver;
use crate::open::{handshake, pair};
use crate::router::{Accepted, PeerLink, UdpListenerDriver};
use crate::shared::count;
use crate::transport::Io;
use pulse_driver::Error;

/// Connects to a pulse server over UDP and completes the handshake (HELLO
/// is sent again if lost, within the handshake timeout). `addr` is
/// resolved now and its first address used. DATA over UDP is unreliable:
/// it may be lost, duplicated or reordered, and each message must fit one
/// datagram.
///
/// Cancel safety: cancelling abandons the attempt; nothing is left behind.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// let (conn, driver) = pulse_smol::connect_udp("127.0.0.1:7000", pulse_proto::Config::default()).await?;
/// smol::spawn(driver).detach();
/// conn.send(1, "over UDP").await?;
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
pub async fn connect_udp(
    addr: impl AsyncToSocketAddrs,
    config: impl Into<Arc<Config>>,
) -> Result<(Connection, Driver), Error> {
    let config = config_for(config, Transport::Datagram)?;
    let addr = async_net::resolve(addr)
        .await?
        .into_iter()
        .next()
        .ok_or_else(no_address)?;
    let socket = Async::<UdpSocket>::bind(unspecified_for(addr))?;
    socket.get_ref().connect(addr)?;
    let local = socket.get_ref().local_addr().ok();
    handshake(pair(config, Role::Client, Io::Udp(socket), Some(addr), local)?).await
}

/// Peers waiting to be accepted, by default; beyond this, new peers are
/// turned away with CLOSE "refused" until the application accepts.
pub const DEFAULT_UDP_BACKLOG: usize = 128;

/// Accepts pulse peers over UDP, telling them apart by address. Only an
/// address that proved itself (it echoed the server's RETRY cookie) gets
/// a session: spoofed or stray datagrams cost a stateless answer at most.
///
/// Cloning gives another handle to the same listener. Once every handle
/// is dropped no new peer is accepted, and the [`UdpListenerDriver`] ends
/// when the last peer's connection has.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// use pulse_smol::{Event, UdpListener};
///
/// let (listener, router) = UdpListener::bind("127.0.0.1:7000", pulse_proto::Config::default()).await?;
/// smol::spawn(router).detach();
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
pub struct UdpListener {
    inner: Arc<ListenerInner>,
}

#[derive(Debug)]
struct ListenerInner {
    accepted: async_channel::Receiver<Accepted>,
    local_addr: SocketAddr,
    link: Arc<PeerLink>,
}

impl Drop for ListenerInner {
    fn drop(&mut self) {
        self.link.stop_listening();
    }
}

impl UdpListener {
    /// Listens on `addr` (the first of its addresses that can be bound).
    /// Returns the listener and the router to spawn.
    ///
    /// Cancel safety: cancelling abandons the resolution; no socket is
    /// left bound.
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// let (listener, router) = pulse_smol::UdpListener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// smol::spawn(router).detach();
    /// println!("listening on {}", listener.local_addr());
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn bind(
        addr: impl AsyncToSocketAddrs,
        config: impl Into<Arc<Config>>,
    ) -> Result<(UdpListener, UdpListenerDriver), Error> {
        let mut last = None;
        for addr in async_net::resolve(addr).await? {
            match UdpSocket::bind(addr) {
                Ok(socket) => return UdpListener::from_std(socket, config),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))
            .into())
    }

    /// A listener over a UDP socket the application set up (buffer sizes,
    /// `SO_REUSEPORT`, an inherited descriptor).
    ///
    /// # Examples
    ///
    /// ```
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let (listener, router) = pulse_smol::UdpListener::from_std(socket, pulse_proto::Config::default())?;
    /// # Ok::<(), pulse_smol::Error>(())
    /// ```
    pub fn from_std(
        socket: UdpSocket,
        config: impl Into<Arc<Config>>,
    ) -> Result<(UdpListener, UdpListenerDriver), Error> {
        let config = config_for(config, Transport::Datagram)?;
        let socket = Arc::new(Async::new(socket)?);
        let local_addr = socket.get_ref().local_addr()?;
        let (tx, rx) = async_channel::unbounded();
        let link = Arc::new(PeerLink::new(DEFAULT_UDP_BACKLOG));
        let router = UdpListenerDriver::new(
            socket,
            local_addr,
            Demux::new(config)?.count_into(count()),
            link.clone(),
            tx,
            rx.clone(),
        );
        let inner = ListenerInner {
            accepted: rx,
            local_addr,
            link,
        };
        Ok((UdpListener { inner: Arc::new(inner) }, router))
    }

    /// The address it listens on.
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// let (listener, _router) = pulse_smol::UdpListener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// assert!(listener.local_addr().port() != 0);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Sets how many new peers may wait to be accepted (default
    /// [`DEFAULT_UDP_BACKLOG`]); beyond it they are refused.
    ///
    /// # Examples
    ///
    /// ```
    /// # smol::block_on(async {
    /// let (listener, _router) = pulse_smol::UdpListener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// listener.set_backlog(1024);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn set_backlog(&self, peers: usize) {
        self.inner.link.backlog.store(peers, Ordering::Relaxed);
    }

    /// The next new peer. Its handshake runs in the returned [`Driver`],
    /// which must be spawned. Fails only once the [`UdpListenerDriver`] is
    /// gone (dropped without running to its end).
    ///
    /// Cancel safety: cancel-safe. A peer is taken in the poll that
    /// returns it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// # let (listener, router) = pulse_smol::UdpListener::bind("127.0.0.1:7000", pulse_proto::Config::default()).await?;
    /// let (conn, driver, peer) = listener.accept().await?;
    /// smol::spawn(driver).detach();
    /// println!("{peer}: {:?}", conn.recv().await);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn accept(&self) -> Result<(Connection, Driver, SocketAddr), Error> {
        self.inner.accepted.recv().await.map_err(|_| {
            Error::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the UDP listener's driver is gone",
            ))
        })
    }
}
