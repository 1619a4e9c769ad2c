//! UDP: one connection per peer, in datagram mode (DATA is unreliable).

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Weak};

use async_io::Async;
use pulse_proto::{Admission, CloseCode, Config, Gate, Role, Session, Transport};

use crate::clock;
use crate::connection::{pair, Connection};
use crate::driver::{Driver, Io};
use crate::error::Error;
use crate::shared::Shared;
use crate::tcp::handshake;

fn datagram_config(mut config: Arc<Config>) -> Arc<Config> {
    if config.transport != Transport::Datagram {
        Arc::make_mut(&mut config).transport = Transport::Datagram;
    }
    config
}

/// Connects to a pulse server over UDP and completes the handshake (HELLO
/// is sent again if lost). DATA over UDP is unreliable: it may be lost,
/// duplicated or reordered, and each message must fit one datagram.
pub async fn connect_udp(addr: SocketAddr, config: impl Into<Arc<Config>>) -> Result<(Connection, Driver), Error> {
    let config = datagram_config(config.into());
    config.validate()?;
    let local: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = Async::<UdpSocket>::bind(local)?;
    socket.get_ref().connect(addr)?;
    let session = Session::new(config, Role::Client, clock::now(), clock::seed())?;
    handshake(pair(session, Io::Udp(socket))).await
}

/// Accepts pulse peers over UDP, telling them apart by address.
#[derive(Debug)]
pub struct UdpListener {
    accepted: async_channel::Receiver<(Connection, Driver, SocketAddr)>,
    local_addr: SocketAddr,
}

/// Reads the UDP listener's socket and hands each peer its datagrams.
/// Spawn it; it runs until every [`UdpListener`] handle and peer is gone.
#[must_use = "a UDP listener receives nothing unless its driver runs"]
pub struct UdpListenerDriver {
    future: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl std::future::Future for UdpListenerDriver {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for UdpListenerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UdpListenerDriver")
    }
}

/// Connections waiting to be accepted; beyond this, new peers are ignored
/// until the application accepts.
const ACCEPT_BACKLOG: usize = 128;

impl UdpListener {
    /// Listens on `addr`. Returns the listener and the driver to spawn.
    pub fn bind(addr: SocketAddr, config: impl Into<Arc<Config>>) -> Result<(UdpListener, UdpListenerDriver), Error> {
        let config = datagram_config(config.into());
        config.validate()?;
        let socket = Arc::new(Async::<UdpSocket>::bind(addr)?);
        let local_addr = socket.get_ref().local_addr()?;
        let (tx, rx) = async_channel::bounded(ACCEPT_BACKLOG);
        let future = Box::pin(route(socket, config, tx));
        Ok((
            UdpListener {
                accepted: rx,
                local_addr,
            },
            UdpListenerDriver { future },
        ))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next new peer. Its handshake runs in the returned [`Driver`],
    /// which must be spawned.
    pub async fn accept(&self) -> Result<(Connection, Driver, SocketAddr), Error> {
        self.accepted
            .recv()
            .await
            .map_err(|_| Error::Io(io::ErrorKind::BrokenPipe.into()))
    }
}

async fn route(
    socket: Arc<Async<UdpSocket>>,
    config: Arc<Config>,
    accepted: async_channel::Sender<(Connection, Driver, SocketAddr)>,
) {
    let Ok(gate) = Gate::new(config.clone(), clock::secret()) else {
        return;
    };
    let mut reply = Vec::new();
    let mut peers: HashMap<SocketAddr, Weak<Shared>> = HashMap::new();
    let (gone_tx, gone_rx) = async_channel::unbounded::<SocketAddr>();
    let mut buf = vec![0u8; 65_536];
    let mut prune_at = 64;
    loop {
        while let Ok(addr) = gone_rx.try_recv() {
            if peers
                .get(&addr)
                .is_some_and(|p| p.strong_count() == 0 || p.upgrade().is_some_and(|s| s.lock().finished))
            {
                peers.remove(&addr);
            }
        }
        if peers.len() >= prune_at {
            peers.retain(|_, p| p.strong_count() > 0);
            prune_at = (2 * peers.len()).max(64);
        }
        if accepted.is_closed() && peers.is_empty() {
            return;
        }
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => continue, // ICMP errors from one peer concern no one else
        };
        let datagram = &buf[..n];
        let shared = match peers.get(&from).and_then(Weak::upgrade) {
            Some(shared) if !shared.lock().finished => shared,
            _ => {
                // Only a proven address opens a connection: strays and
                // spoofed HELLOs cost a stateless answer at most.
                if accepted.is_closed() {
                    continue;
                }
                let admission = match gate.admit(clock::now(), from, datagram, &mut reply) {
                    Admission::Open if accepted.is_full() => {
                        gate.refuse(datagram, CloseCode::REFUSED, "accept backlog full", &mut reply)
                    }
                    other => other,
                };
                match admission {
                    Admission::Drop => continue,
                    Admission::Reply => {
                        let _ = socket.get_ref().send_to(&reply, from);
                        continue;
                    }
                    Admission::Open => {}
                }
                let Ok(session) = Session::new(config.clone(), Role::Server, clock::now(), clock::seed()) else {
                    return;
                };
                let io = Io::UdpPeer(socket.clone(), from, Some(gone_tx.clone()));
                let (conn, driver) = pair(session, io);
                let shared = conn.shared().clone();
                peers.insert(from, Arc::downgrade(&shared));
                if accepted.try_send((conn, driver, from)).is_err() {
                    continue;
                }
                shared
            }
        };
        {
            let mut inner = shared.lock();
            if inner.reading_paused() {
                continue; // the application is behind: datagrams may be lost
            }
            inner.session.handle_datagram(clock::now(), datagram);
            inner.drain_events();
        }
        shared.driver_waker.wake();
        shared.to_app.notify(usize::MAX);
    }
}
