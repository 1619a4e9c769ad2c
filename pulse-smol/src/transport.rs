//! What carries a session: a socket of our own, or any byte stream.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::io::{AsyncRead, AsyncWrite};
use pulse_driver::{discard_input, Discarded, Linger};

use crate::router::PeerLink;

/// A byte stream pulse can run over: TLS, a Unix socket, a socket the
/// application set up itself. Implemented for every futures-io stream.
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// The transport under one session.
pub(crate) enum Io {
    /// A TCP socket we opened or accepted: waited on for readiness, then
    /// read and written directly.
    Tcp(Async<TcpStream>),
    /// A UDP socket connected to the peer.
    Udp(Async<UdpSocket>),
    /// A peer of a UDP listener: we send from the shared socket and never
    /// wait on it; the listener's router reads and hands us our datagrams.
    UdpPeer(Arc<Async<UdpSocket>>, SocketAddr, Arc<PeerLink>),
    /// Any byte stream, driven through its `poll_*` methods.
    Stream(Box<dyn ByteStream>),
}

/// A transport with the task's context: what pulse-driver's steps use.
pub(crate) struct WithContext<'a, 'b, 'c>(pub(crate) &'a mut Io, pub(crate) &'b mut Context<'c>);

impl pulse_driver::Transfer for WithContext<'_, '_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(self.1, bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush(self.1)
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(self.1, buf)
    }

    fn is_datagram(&self) -> bool {
        self.0.is_datagram()
    }

    fn drops_when_full(&self) -> bool {
        self.0.drops_when_full()
    }

    fn short_read_drains(&self) -> bool {
        self.0.short_read_drains()
    }
}

/// How a write went, in the terms of `pulse_driver::flush`.
fn pending_is_would_block<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl Io {
    /// Whether the transport carries datagrams.
    pub(crate) fn is_datagram(&self) -> bool {
        matches!(self, Io::Udp(_) | Io::UdpPeer(..))
    }

    /// A socket shared by many peers is never waited on by one of them.
    pub(crate) fn drops_when_full(&self) -> bool {
        matches!(self, Io::UdpPeer(..))
    }

    /// Writes without waiting. A stream that cannot take more registers
    /// `cx` to be woken when it can.
    pub(crate) fn write(&mut self, cx: &mut Context<'_>, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.get_ref().write(bytes),
            Io::Udp(s) => s.get_ref().send(bytes),
            Io::UdpPeer(s, peer, _) => s.get_ref().send_to(bytes, *peer),
            Io::Stream(s) => pending_is_would_block(Pin::new(s).poll_write(cx, bytes)),
        }
    }

    /// Pushes out what a stream buffers inside (TLS records). Sockets
    /// buffer nothing of ours.
    pub(crate) fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self {
            Io::Stream(s) => pending_is_would_block(Pin::new(s).poll_flush(cx)),
            _ => Ok(()),
        }
    }

    /// Reads without waiting; a stream with nothing registers `cx`.
    pub(crate) fn read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(s) => s.get_ref().read(buf),
            Io::Udp(s) => s.get_ref().recv(buf),
            Io::UdpPeer(..) => Err(io::ErrorKind::WouldBlock.into()),
            Io::Stream(s) => pending_is_would_block(Pin::new(s).poll_read(cx, buf)),
        }
    }

    /// Whether to read now. Sockets are asked for readiness first (a read
    /// that would only say "would block" is a wasted syscall); a stream is
    /// simply read, and registers for readiness when it has nothing.
    pub(crate) fn poll_readable(&self, cx: &mut Context<'_>) -> bool {
        match self {
            Io::Tcp(s) => s.poll_readable(cx).is_ready(),
            Io::Udp(s) => s.poll_readable(cx).is_ready(),
            Io::UdpPeer(..) => false,
            Io::Stream(_) => true,
        }
    }

    /// After a write would block: whether it can go on now. A stream
    /// registered itself in the write.
    pub(crate) fn poll_writable(&self, cx: &mut Context<'_>) -> bool {
        match self {
            Io::Tcp(s) => s.poll_writable(cx).is_ready(),
            Io::Udp(s) => s.poll_writable(cx).is_ready(),
            Io::UdpPeer(..) | Io::Stream(_) => false,
        }
    }

    /// A short read means the socket is drained: async-io re-arms interest
    /// level-triggered, so later data is reported anyway. A stream (TLS)
    /// may hold more than it returned.
    pub(crate) fn short_read_drains(&self) -> bool {
        matches!(self, Io::Tcp(_))
    }

    /// The transport's last bytes once the session is over: what a stream
    /// buffers inside (TLS records) and its close (a TLS close_notify),
    /// TCP's FIN; then, after a graceful close, what the peer still sends
    /// is read and dropped until it ends its side ([`Linger`]). Ready once
    /// done, or the transport failed.
    pub(crate) fn poll_close_out(&mut self, cx: &mut Context<'_>, lingering: &mut Lingering) -> Poll<()> {
        if !lingering.shut {
            let shut = match self {
                Io::Tcp(s) => s.get_ref().shutdown(Shutdown::Write),
                Io::Stream(s) => match Pin::new(&mut **s).poll_flush(cx) {
                    Poll::Ready(Ok(())) => std::task::ready!(Pin::new(s).poll_close(cx)),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => return Poll::Pending,
                },
                Io::Udp(_) | Io::UdpPeer(..) => return Poll::Ready(()),
            };
            lingering.shut = true;
            if shut.is_err() || !lingering.linger.until_peer_ends {
                return Poll::Ready(());
            }
        }
        let discarded = discard_input(|buf| match &mut *self {
            // Asked for readiness first: that registers the task.
            Io::Tcp(s) => match s.poll_readable(cx) {
                Poll::Ready(Ok(())) => s.get_ref().read(buf),
                Poll::Ready(Err(e)) => Err(e),
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            },
            other => other.read(cx, buf),
        });
        match discarded {
            Discarded::Ended => Poll::Ready(()),
            // A socket's readiness that was stale: look again, registered.
            Discarded::WouldBlock if self.poll_readable(cx) && !matches!(self, Io::Stream(_)) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Discarded::WouldBlock => Poll::Pending,
            // A peer that keeps sending: on after other tasks had a turn.
            Discarded::Busy => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// Last words before the transport is dropped: a stream gets its
    /// buffered bytes pushed and its close (a TLS close_notify), as far as
    /// it goes without waiting.
    pub(crate) fn shut(&mut self, cx: &mut Context<'_>) {
        if let Io::Stream(s) = self {
            let _ = Pin::new(&mut *s).poll_flush(cx);
            let _ = Pin::new(s).poll_close(cx);
        }
    }
}

/// A transport outliving its session ([`Io::poll_close_out`]).
pub(crate) struct Lingering {
    pub(crate) linger: Linger,
    /// The flush and shutdown are done: what is left is reading.
    shut: bool,
}

impl Lingering {
    pub(crate) fn new(linger: Linger) -> Lingering {
        Lingering { linger, shut: false }
    }
}
