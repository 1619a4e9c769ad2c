//! UDP: one connection per peer, in datagram mode (DATA is unreliable).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use pulse_driver::{clock, config_for, no_address, unspecified_for, with_read_buffer, Demux, Error, Route};
use pulse_proto::{Config, Role, Transport};
use tokio::net::{lookup_host, ToSocketAddrs, UdpSocket};
use tokio::sync::Notify;

use crate::connection::Connection;
use crate::open::{handshake, open};
use crate::shared::{count, Shared};
use crate::transport::Io;

/// Datagrams the router takes per wake before it lets other tasks run: a
/// flood of strays must not starve the runtime.
const DATAGRAMS_PER_TURN: usize = 64;

/// Connects to a pulse server over UDP and completes the handshake (HELLO
/// is sent again if lost, within the handshake timeout); the driver task
/// is spawned on the current runtime. `addr` is resolved now and its first
/// address used. DATA over UDP is unreliable: it may be lost, duplicated
/// or reordered, and each message must fit one datagram.
///
/// Cancel safety: cancelling abandons the attempt; nothing is left behind.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// let conn = pulse_tokio::connect_udp("127.0.0.1:7000", pulse_proto::Config::default()).await?;
/// conn.send(1, "over UDP").await?;
/// # Ok(()) }
/// ```
pub async fn connect_udp(addr: impl ToSocketAddrs, config: impl Into<Arc<Config>>) -> Result<Connection, Error> {
    let config = config_for(config, Transport::Datagram)?;
    let server = lookup_host(addr).await?.next().ok_or_else(no_address)?;
    let socket = UdpSocket::bind(unspecified_for(server)).await?;
    socket.connect(server).await?;
    let local = socket.local_addr().ok();
    handshake(open(config, Role::Client, Io::Udp(socket), (Some(server), local))?).await
}

/// Peers waiting to be accepted, by default; beyond this, new peers are
/// turned away with CLOSE "refused" until the application accepts.
pub const DEFAULT_UDP_BACKLOG: usize = 128;

/// What a UDP listener's handle, its router task and its peers' driver
/// tasks share.
#[derive(Debug)]
pub(crate) struct Link {
    accepted: Mutex<VecDeque<(Connection, SocketAddr)>>,
    backlog: AtomicUsize,
    /// Whether the application's handle is still there to accept.
    listening: AtomicBool,
    /// Whether the router runs (it stops only once nobody listens and no
    /// peer is left, or its socket failed).
    routing: AtomicBool,
    /// To the router: a peer finished, or the handle is gone.
    wake_router: Notify,
    /// To `accept`: a peer is waiting, or the router stopped.
    wake_acceptor: Notify,
}

impl Link {
    /// A peer's driver task finished: the router forgets it.
    pub(crate) fn peer_gone(&self) {
        self.wake_router.notify_one();
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<(Connection, SocketAddr)>> {
        self.accepted.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Accepts pulse peers over UDP, telling them apart by address. Only an
/// address that proved itself (it echoed the server's RETRY cookie) gets
/// a session: spoofed or stray datagrams cost a stateless answer at most.
///
/// A router task, spawned on the current runtime, reads the socket. Once
/// the listener is dropped no new peer is accepted, and the router ends
/// (releasing the socket) when the last peer's connection has.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// use pulse_tokio::{Event, UdpListener};
///
/// let listener = UdpListener::bind("127.0.0.1:7000", pulse_proto::Config::default()).await?;
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
pub struct UdpListener {
    link: Arc<Link>,
    local_addr: SocketAddr,
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        self.link.listening.store(false, Ordering::Release);
        self.link.wake_router.notify_one();
    }
}

impl UdpListener {
    /// Listens on `addr` (the first of its addresses that can be bound).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let listener = pulse_tokio::UdpListener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
    /// println!("listening on {}", listener.local_addr());
    /// # Ok::<(), pulse_tokio::Error>(()) }).unwrap();
    /// ```
    pub async fn bind(addr: impl ToSocketAddrs, config: impl Into<Arc<Config>>) -> Result<UdpListener, Error> {
        let config = config_for(config, Transport::Datagram)?;
        UdpListener::serve(UdpSocket::bind(addr).await?, config)
    }

    /// A listener over a UDP socket the application set up (buffer sizes,
    /// `SO_REUSEPORT`, an inherited descriptor). It is made non-blocking
    /// here. Call it within a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let listener = pulse_tokio::UdpListener::from_std(socket, pulse_proto::Config::default())?;
    /// # Ok::<(), pulse_tokio::Error>(()) }).unwrap();
    /// ```
    pub fn from_std(socket: std::net::UdpSocket, config: impl Into<Arc<Config>>) -> Result<UdpListener, Error> {
        let config = config_for(config, Transport::Datagram)?;
        socket.set_nonblocking(true)?;
        UdpListener::serve(UdpSocket::from_std(socket)?, config)
    }

    fn serve(socket: UdpSocket, config: Arc<Config>) -> Result<UdpListener, Error> {
        let local_addr = socket.local_addr()?;
        let link = Arc::new(Link {
            accepted: Mutex::new(VecDeque::new()),
            backlog: AtomicUsize::new(DEFAULT_UDP_BACKLOG),
            listening: AtomicBool::new(true),
            routing: AtomicBool::new(true),
            wake_router: Notify::new(),
            wake_acceptor: Notify::new(),
        });
        let router = Router {
            socket: Arc::new(socket),
            local: local_addr,
            demux: Demux::new(config)?.count_into(count()),
            link: link.clone(),
        };
        tokio::spawn(router.run());
        Ok(UdpListener { link, local_addr })
    }

    /// The address it listens on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(listener: pulse_tokio::UdpListener) {
    /// assert!(listener.local_addr().port() != 0);
    /// # }
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets how many new peers may wait to be accepted (default
    /// [`DEFAULT_UDP_BACKLOG`]); beyond it they are refused.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(listener: pulse_tokio::UdpListener) {
    /// listener.set_backlog(1024);
    /// # }
    /// ```
    pub fn set_backlog(&self, peers: usize) {
        self.link.backlog.store(peers, Ordering::Relaxed);
    }

    /// The next new peer, with its address; its handshake runs in its
    /// driver task. Fails only if the router stopped (its socket failed).
    ///
    /// Cancel safety: cancel-safe. A peer is taken in the poll that
    /// returns it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(listener: pulse_tokio::UdpListener) -> Result<(), pulse_tokio::Error> {
    /// let (conn, peer) = listener.accept().await?;
    /// println!("{peer}: {:?}", conn.recv().await);
    /// # Ok(()) }
    /// ```
    pub async fn accept(&self) -> Result<(Connection, SocketAddr), Error> {
        loop {
            let arrived = self.link.wake_acceptor.notified();
            if let Some(peer) = self.link.queue().pop_front() {
                return Ok(peer);
            }
            if !self.link.routing.load(Ordering::Acquire) {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the UDP listener's socket failed").into());
            }
            arrived.await;
        }
    }
}

/// The listener's task: reads the shared socket, hands each known peer
/// its datagrams, and lets the gate answer everyone else.
struct Router {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    demux: Demux<Weak<Shared>>,
    link: Arc<Link>,
}

impl Router {
    async fn run(mut self) {
        loop {
            tokio::select! {
                readable = self.socket.readable() => {
                    if readable.is_err() {
                        break;
                    }
                    self.take_datagrams();
                    tokio::task::yield_now().await;
                }
                () = self.link.wake_router.notified() => {
                    self.forget_finished();
                    if !self.link.listening.load(Ordering::Acquire) {
                        // Nobody will accept the peers still queued.
                        self.link.queue().clear();
                        self.forget_finished();
                        if self.demux.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        self.link.routing.store(false, Ordering::Release);
        self.link.wake_acceptor.notify_waiters();
    }

    fn forget_finished(&mut self) {
        self.demux
            .retain(|_, peer| peer.upgrade().is_some_and(|s| !s.mailbox().is_finished()));
    }

    /// Reads what the socket has, within a budget.
    fn take_datagrams(&mut self) {
        for _ in 0..DATAGRAMS_PER_TURN {
            let taken = with_read_buffer(|buf| {
                let (n, from) = self.socket.try_recv_from(buf)?;
                self.route(from, &buf[..n]);
                Ok::<_, io::Error>(())
            });
            // Would block: drained. Anything else is an ICMP report about
            // one peer that concerns no other: read on.
            if taken.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock) {
                return;
            }
        }
    }

    fn route(&mut self, from: SocketAddr, datagram: &[u8]) {
        let listening = self.link.listening.load(Ordering::Acquire);
        let room = self.link.queue().len() < self.link.backlog.load(Ordering::Relaxed);
        let known = match self.demux.route(clock::now(), from, datagram, listening, room) {
            Route::Peer(peer) => peer.upgrade(),
            // A full socket loses the answer; the peer asks again.
            Route::Reply(answer) => return drop(self.socket.try_send_to(answer, from)),
            Route::Drop => return,
            Route::Open => return self.open(from, datagram),
        };
        match known {
            Some(shared) => {
                shared.poke(|mailbox| ((), mailbox.deliver_datagram(count(), datagram)));
            }
            None => drop(self.demux.remove(&from)),
        }
    }

    /// A peer that proved its address: its connection, queued for
    /// `accept`.
    fn open(&mut self, from: SocketAddr, datagram: &[u8]) {
        let io = Io::UdpPeer(self.socket.clone(), from, self.link.clone());
        let Ok(conn) = open(
            self.demux.config().clone(),
            Role::Server,
            io,
            (Some(from), Some(self.local)),
        ) else {
            return; // the config was checked at bind
        };
        conn.shared()
            .poke(|mailbox| ((), mailbox.deliver_datagram(count(), datagram)));
        self.demux.insert(from, conn.weak_shared());
        self.link.queue().push_back((conn, from));
        self.link.wake_acceptor.notify_one();
    }
}
