//! What carries a session: a tokio socket, or any tokio byte stream.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pulse_driver::{discard_input, Discarded};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

/// A byte stream pulse can run over: TLS (tokio-rustls), a Unix socket, a
/// socket the application set up. Implemented for every tokio stream that
/// is `AsyncRead + AsyncWrite + Unpin + Send`.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), pulse_tokio::Error> {
/// use pulse_tokio::{ByteStream, Connection};
///
/// // A socket set up by the application: its own options first.
/// async fn over(stream: impl ByteStream + 'static) -> Result<Connection, pulse_tokio::Error> {
///     Connection::client(stream, pulse_proto::Config::default()).await
/// }
/// let socket = tokio::net::TcpSocket::new_v4()?;
/// socket.set_keepalive(true)?;
/// let conn = over(socket.connect("127.0.0.1:7000".parse().unwrap()).await?).await?;
/// # Ok(()) }
/// ```
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// The transport under one session.
pub(crate) enum Io {
    /// A TCP socket of ours, held inline (no box).
    Tcp(TcpStream),
    /// A UDP socket connected to the peer.
    Udp(UdpSocket),
    /// A peer of a UDP listener: it sends from the shared socket and never
    /// waits on it; the listener's router hands it its datagrams.
    UdpPeer(Arc<UdpSocket>, SocketAddr, Arc<crate::udp::Link>),
    /// Any byte stream.
    Stream(Box<dyn ByteStream>),
}

/// `Pending` is "would block" to pulse-driver's steps; the waker is
/// registered by then.
fn ready_or_would_block<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

/// The transport, with the driver task's context, as pulse-driver's steps
/// want it.
pub(crate) struct Polled<'a, 'b, 'c> {
    pub(crate) io: &'a mut Io,
    pub(crate) cx: &'b mut Context<'c>,
}

impl pulse_driver::Transfer for Polled<'_, '_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let cx = &mut *self.cx;
        ready_or_would_block(match &mut *self.io {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, bytes),
            Io::Udp(s) => s.poll_send(cx, bytes),
            // A shared socket is never waited on: a full one drops.
            Io::UdpPeer(s, peer, _) => Poll::Ready(s.try_send_to(bytes, *peer)),
            Io::Stream(s) => Pin::new(s).poll_write(cx, bytes),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut *self.io {
            Io::Stream(s) => ready_or_would_block(Pin::new(s).poll_flush(self.cx)),
            _ => Ok(()),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        let cx = &mut *self.cx;
        ready_or_would_block(match &mut *self.io {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, &mut buf),
            Io::Udp(s) => s.poll_recv(cx, &mut buf),
            Io::UdpPeer(..) => Poll::Pending,
            Io::Stream(s) => Pin::new(s).poll_read(cx, &mut buf),
        })
        .map(|()| buf.filled().len())
    }

    fn is_datagram(&self) -> bool {
        matches!(self.io, Io::Udp(_) | Io::UdpPeer(..))
    }

    fn drops_when_full(&self) -> bool {
        matches!(self.io, Io::UdpPeer(..))
    }

    /// tokio clears a TCP socket's readiness after a short read, so the
    /// next read would only register: it is drained.
    fn short_read_drains(&self) -> bool {
        matches!(self.io, Io::Tcp(_))
    }
}

impl Io {
    /// The transport's last bytes once the session is over: what it
    /// buffers inside (TLS records) and its shutdown (a TLS close_notify,
    /// TCP's FIN); then, with `until_peer_ends`, what the peer still sends
    /// is read and dropped until it ends its side. A socket closed with
    /// bytes unread answers with a reset, and the kernel throws away what
    /// it had not yet sent: the last messages and the CLOSE of a graceful
    /// close. Ready once done, or the transport failed.
    pub(crate) fn poll_close_out(&mut self, cx: &mut Context<'_>, until_peer_ends: bool) -> Poll<()> {
        let shut = match self {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Stream(s) => match Pin::new(&mut **s).poll_flush(cx) {
                Poll::Ready(Ok(())) => Pin::new(s).poll_shutdown(cx),
                other => other,
            },
            Io::Udp(_) | Io::UdpPeer(..) => return Poll::Ready(()),
        };
        match shut {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(())) if !until_peer_ends => return Poll::Ready(()),
            Poll::Ready(Ok(())) => {}
        }
        let discarded = discard_input(|buf| {
            let mut buf = ReadBuf::new(buf);
            let polled = match self {
                Io::Tcp(s) => Pin::new(s).poll_read(cx, &mut buf),
                Io::Stream(s) => Pin::new(s).poll_read(cx, &mut buf),
                Io::Udp(_) | Io::UdpPeer(..) => return Ok(0),
            };
            match polled {
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                Poll::Ready(read) => read.map(|()| buf.filled().len()),
            }
        });
        match discarded {
            Discarded::Ended => Poll::Ready(()),
            Discarded::WouldBlock => Poll::Pending,
            // A peer that keeps sending: on after other tasks had a turn.
            Discarded::Busy => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// Last words before the transport is dropped: a stream gets its
    /// buffered bytes pushed and its shutdown (a TLS close_notify), as far
    /// as it goes without waiting.
    pub(crate) fn shut(&mut self, cx: &mut Context<'_>) {
        let _ = match self {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Stream(s) => Pin::new(s).poll_shutdown(cx),
            Io::Udp(_) | Io::UdpPeer(..) => return,
        };
    }
}
