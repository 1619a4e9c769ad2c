//! A byte stream that, as TLS does, takes writes into a buffer of its
//! own (up to `room` bytes) and passes them on as the stream under it
//! takes them: bytes it "took" are not yet sent. For the tests that an
//! adapter gets a stream's last bytes out before it drops it. Both
//! futures-io's and tokio's traits, over a stream of the same kind.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// See the module docs.
pub struct Buffering<S> {
    inner: S,
    held: Vec<u8>,
    room: usize,
}

/// The inner stream's write, whichever trait it has.
type WriteInner<S> = fn(Pin<&mut S>, &mut Context<'_>, &[u8]) -> Poll<io::Result<usize>>;

impl<S: Unpin> Buffering<S> {
    /// Over `inner`, holding up to `room` bytes.
    pub fn new(inner: S, room: usize) -> Buffering<S> {
        Buffering {
            inner,
            held: Vec::new(),
            room,
        }
    }

    /// Moves held bytes on: ready once none are held.
    fn push(&mut self, cx: &mut Context<'_>, write: WriteInner<S>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(write(Pin::new(&mut self.inner), cx, &self.held))?;
            self.held.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    fn write(&mut self, cx: &mut Context<'_>, buf: &[u8], write: WriteInner<S>) -> Poll<io::Result<usize>> {
        let _ = self.push(cx, write)?;
        let take = buf.len().min(self.room - self.held.len());
        if take == 0 {
            return Poll::Pending; // `push` registered for the inner stream
        }
        self.held.extend_from_slice(&buf[..take]);
        let _ = self.push(cx, write)?;
        Poll::Ready(Ok(take))
    }
}

impl<S: futures_lite::AsyncWrite + Unpin> futures_lite::AsyncWrite for Buffering<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, buf, S::poll_write)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.push(cx, S::poll_write))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.push(cx, S::poll_write))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

impl<S: futures_lite::AsyncRead + Unpin> futures_lite::AsyncRead for Buffering<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Buffering<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().write(cx, buf, S::poll_write)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.push(cx, S::poll_write))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.push(cx, S::poll_write))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Buffering<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}
