//! A UDP listener's router: reads the shared socket, hands each known
//! peer its datagrams, and lets the gate answer everyone else.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use async_io::Async;
use atomic_waker::AtomicWaker;
use pulse_driver::{clock, with_read_buffer, Demux, Route};
use pulse_proto::Role;

use crate::connection::Connection;
use crate::driver::Driver;
use crate::open::pair;
use crate::shared::{count, Shared};
use crate::transport::Io;

/// Datagrams read per poll before the router lets other tasks run: a
/// flood of strays must not starve the executor.
const DATAGRAMS_PER_POLL: usize = 64;

/// A new peer, waiting to be accepted.
pub(crate) type Accepted = (Connection, Driver, SocketAddr);

/// What the router, the listener's handles and the peers' drivers share.
#[derive(Debug)]
pub(crate) struct PeerLink {
    router: AtomicWaker,
    /// Peers whose drivers have finished, for the router to forget.
    gone: Mutex<Vec<SocketAddr>>,
    /// Whether a listener handle is left to accept new peers.
    listening: AtomicBool,
    pub(crate) backlog: AtomicUsize,
}

impl PeerLink {
    pub(crate) fn new(backlog: usize) -> PeerLink {
        PeerLink {
            router: AtomicWaker::new(),
            gone: Mutex::new(Vec::new()),
            listening: AtomicBool::new(true),
            backlog: AtomicUsize::new(backlog),
        }
    }

    /// A peer's driver finished.
    pub(crate) fn gone(&self, peer: SocketAddr) {
        self.gone.lock().unwrap_or_else(|p| p.into_inner()).push(peer);
        self.router.wake();
    }

    /// The last listener handle is gone: no new peers; the router ends
    /// once the last peer does.
    pub(crate) fn stop_listening(&self) {
        self.listening.store(false, Ordering::Release);
        self.router.wake();
    }

    fn take_gone(&self) -> Vec<SocketAddr> {
        std::mem::take(&mut *self.gone.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Reads the UDP listener's socket and hands each peer its datagrams.
/// Spawn it; it finishes by itself, releasing the socket, once every
/// [`crate::UdpListener`] handle is dropped and every peer's connection
/// has ended.
///
/// # Examples
///
/// ```
/// # smol::block_on(async {
/// let (listener, router) = pulse_smol::UdpListener::bind("127.0.0.1:0", pulse_proto::Config::default()).await?;
/// let router = smol::spawn(router);
/// drop(listener); // no handle, no peer: the router ends, the port is free
/// router.await;
/// # Ok::<(), pulse_smol::Error>(()) });
/// ```
#[must_use = "a UDP listener receives nothing unless its driver runs"]
pub struct UdpListenerDriver {
    socket: Arc<Async<UdpSocket>>,
    local: SocketAddr,
    demux: Demux<Weak<Shared>>,
    link: Arc<PeerLink>,
    accepted: async_channel::Sender<Accepted>,
    /// The queue's other end, to drop peers nobody will accept (boxed: a
    /// receiver is not `Unpin`, this future is).
    waiting: Box<async_channel::Receiver<Accepted>>,
}

impl std::fmt::Debug for UdpListenerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpListenerDriver")
            .field("local", &self.local)
            .field("peers", &self.demux.len())
            .finish()
    }
}

impl UdpListenerDriver {
    pub(crate) fn new(
        socket: Arc<Async<UdpSocket>>,
        local: SocketAddr,
        demux: Demux<Weak<Shared>>,
        link: Arc<PeerLink>,
        accepted: async_channel::Sender<Accepted>,
        waiting: async_channel::Receiver<Accepted>,
    ) -> UdpListenerDriver {
        UdpListenerDriver {
            socket,
            local,
            demux,
            link,
            accepted,
            waiting: Box::new(waiting),
        }
    }

    /// Forgets the peers that are gone; returns whether the router is done.
    fn tidy(&mut self) -> bool {
        let gone = self.link.take_gone();
        if !gone.is_empty() {
            self.demux
                .retain(|_, peer| peer.upgrade().is_some_and(|s| !s.lock().is_finished()));
        }
        if self.link.listening.load(Ordering::Acquire) {
            return false;
        }
        // Nobody will accept the peers still queued: end them.
        while self.waiting.try_recv().is_ok() {}
        self.demux
            .retain(|_, peer| peer.upgrade().is_some_and(|s| !s.lock().is_finished()));
        self.demux.is_empty()
    }

    /// One datagram from `from`.
    fn route(&mut self, from: SocketAddr, datagram: &[u8]) {
        let listening = self.link.listening.load(Ordering::Acquire);
        let room = self.accepted.len() < self.link.backlog.load(Ordering::Relaxed);
        match self.demux.route(clock::now(), from, datagram, listening, room) {
            Route::Peer(peer) => {
                let Some(shared) = peer.upgrade() else {
                    self.demux.remove(&from);
                    return;
                };
                deliver(&shared, datagram);
            }
            Route::Reply(answer) => {
                // A full socket loses the answer; the peer asks again.
                let _ = self.socket.get_ref().send_to(answer, from);
            }
            Route::Drop => {}
            Route::Open => self.open(from, datagram),
        }
    }

    fn open(&mut self, from: SocketAddr, datagram: &[u8]) {
        let io = Io::UdpPeer(self.socket.clone(), from, self.link.clone());
        let Ok((conn, driver)) = pair(
            self.demux.config().clone(),
            Role::Server,
            io,
            Some(from),
            Some(self.local),
        ) else {
            return; // the config was checked at bind
        };
        deliver(conn.shared(), datagram);
        self.demux.insert(from, Arc::downgrade(conn.shared()));
        let _ = self.accepted.try_send((conn, driver, from));
    }
}

/// Hands a datagram to a peer's session and wakes its driver. While the
/// application is behind, datagrams are dropped, as UDP may.
fn deliver(shared: &Shared, datagram: &[u8]) {
    if shared.lock().deliver_datagram(count(), datagram) {
        shared.driver_waker.wake();
    }
}

impl Future for UdpListenerDriver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.link.router.register(cx.waker());
        if this.tidy() {
            return Poll::Ready(());
        }
        for _ in 0..DATAGRAMS_PER_POLL {
            let received = with_read_buffer(|buf| match this.socket.get_ref().recv_from(buf) {
                Ok((n, from)) => {
                    this.route(from, &buf[..n]);
                    Ok(())
                }
                Err(e) => Err(e),
            });
            match received {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if this.socket.poll_readable(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                // Interrupted, or an ICMP report about one peer that
                // concerns no other: read on.
                Err(_) => {}
            }
        }
        // A flood: let other tasks run, then carry on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
