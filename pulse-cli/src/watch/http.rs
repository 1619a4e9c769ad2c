//! The console's HTTP side: hyper 1 (HTTP/1.1 server connections, no
//! executor of its own) over async-net, through smol-hyper's adapters, on
//! a thread of its own with a local executor. It only reads the board.
//!
//! - `/`: the console (one embedded page, no external assets);
//! - `/events`: server-sent events, the board as JSON at each refresh;
//! - `/status.json`: the board as JSON;
//! - `/metrics`: Prometheus text format;
//! - `/healthz`: 200 while the monitor's thread refreshes the board.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{future, stream, AsyncRead, AsyncWrite};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::board::{self, Board};
use super::metrics;

const CONSOLE: &str = include_str!("console.html");
/// A comment on an idle event stream, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The board is stale (`/healthz` says 503) when the monitor's thread
/// has not refreshed it for this long (it refreshes every second).
const STALE_AFTER_MS: u64 = 5_000;

/// What the console serves at most (see `pulse watch --help`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections served at once; more wait in the listen queue until
    /// one ends (as a stalled server's burst does when it resumes).
    pub connections: usize,
    /// Open `/events` streams, fewer than `connections`: more are
    /// answered 503, so plain requests always find room.
    pub event_streams: usize,
    /// How long a write may wait for the client to read.
    pub write_timeout: Duration,
    /// How long a client has to send a request's headers, the first or
    /// the next on a kept-alive connection: an idle connection holds its
    /// place no longer.
    pub header_timeout: Duration,
}

type Body = BoxBody<Bytes, Infallible>;

/// Serves the board on `addr` from a new thread; the address bound.
pub fn spawn(addr: SocketAddr, board: Arc<Board>, limits: Limits) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let listener = async_net::TcpListener::try_from(listener)?;
    std::thread::Builder::new().name("http".into()).spawn(move || {
        let executor = Rc::new(smol::LocalExecutor::new());
        let open = Rc::new(Open::default());
        let streams = Arc::new(AtomicUsize::new(0));
        future::block_on(executor.run(async {
            loop {
                // At the limit, accept nothing until a connection ends:
                // the rest wait in the listen queue rather than being
                // accepted only to be closed unanswered.
                open.room_below(limits.connections).await;
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors: a moment, then accept again.
                    async_io::Timer::after(Duration::from_millis(100)).await;
                    continue;
                };
                open.count.set(open.count.get() + 1);
                let board = board.clone();
                let open = open.clone();
                let streams = streams.clone();
                executor
                    .spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let response = route(&request, board.clone(), &streams, limits.event_streams);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        let stream = WriteTimeout::new(stream, limits.write_timeout);
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(SmolTimer::new())
                            .header_read_timeout(limits.header_timeout)
                            .serve_connection(FuturesIo::new(stream), service)
                            .await;
                        open.count.set(open.count.get() - 1);
                        open.ended.notify(1);
                    })
                    .detach();
            }
        }));
    })?;
    Ok(bound)
}

/// The connections being served, and a signal when one ends.
#[derive(Default)]
struct Open {
    count: std::cell::Cell<usize>,
    ended: event_listener::Event,
}

impl Open {
    /// Returns once fewer than `limit` connections are open.
    async fn room_below(&self, limit: usize) {
        while self.count.get() >= limit {
            let ended = self.ended.listen();
            // Counted again after listening, so an end in between is seen.
            if self.count.get() >= limit {
                ended.await;
            }
        }
    }
}

fn route(
    request: &Request<Incoming>,
    board: Arc<Board>,
    streams: &Arc<AtomicUsize>,
    max_streams: usize,
) -> Response<Body> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match request.uri().path() {
        "/" => {
            // The board goes into the page, so its first view needs no
            // round trip.
            let json = serde_json::to_string(&*board.lock()).unwrap_or_else(|_| "null".into());
            let page = CONSOLE.replacen("/*BOARD*/null", &script_literal(&json), 1);
            text(StatusCode::OK, "text/html; charset=utf-8", page)
        }
        "/status.json" => {
            let json = serde_json::to_string(&*board.lock()).unwrap_or_default();
            text(StatusCode::OK, "application/json", json)
        }
        "/metrics" => text(StatusCode::OK, metrics::CONTENT_TYPE, metrics::render(&board.lock())),
        "/healthz" => healthz(&board),
        "/events" if streams.load(Ordering::Relaxed) >= max_streams => {
            let mut refused = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{max_streams} event streams are open already (--http-max-event-streams)\n"),
            );
            // Closed after the answer: an idle connection kept alive
            // would hold the room the limit keeps for plain requests.
            refused.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            refused
        }
        "/events" => events(board, StreamSlot::take(streams)),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// 200 while the monitor's thread keeps the board fresh; 503 once it has
/// not for [`STALE_AFTER_MS`] (a wedged monitor is not a live console).
fn healthz(board: &Board) -> Response<Body> {
    let age = board::unix_ms().saturating_sub(board.lock().now_ms);
    if age <= STALE_AFTER_MS {
        text(StatusCode::OK, "text/plain", "ok\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("monitor silent for {age} ms\n"),
        )
    }
}

/// JSON made safe inside the page's `<script>`: every `<` written as
/// `\u003c` (in JSON a `<` is only ever inside a string), so neither
/// `</script>` nor `<!--<script>` in a target's name can end the script or
/// change how the browser parses it.
fn script_literal(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = content_type.parse() {
        headers.insert(hyper::header::CONTENT_TYPE, value);
    }
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Server-sent events: the board now, then at each change. The stream
/// makes the next event only when hyper has written the last, so a slow
/// reader holds one board, not a queue of them.
fn events(board: Arc<Board>, slot: StreamSlot) -> Response<Body> {
    // The slot goes with the stream's state: hyper drops it, and frees
    // the slot, when the stream ends or the client goes.
    let frames = stream::unfold((board, None::<u64>, slot), |(board, sent, slot)| async move {
        if let Some(sent) = sent {
            loop {
                let changed = board.changed.listen();
                if board.lock().generation != sent {
                    break;
                }
                let woke = future::or(
                    async {
                        changed.await;
                        true
                    },
                    async {
                        async_io::Timer::after(KEEP_ALIVE).await;
                        false
                    },
                )
                .await;
                if !woke {
                    let frame = Frame::data(Bytes::from_static(b": still here\n\n"));
                    return Some((Ok::<_, Infallible>(frame), (board, Some(sent), slot)));
                }
            }
        }
        let (json, generation) = {
            let state = board.lock();
            (serde_json::to_string(&*state).unwrap_or_default(), state.generation)
        };
        let frame = Frame::data(Bytes::from(format!("data: {json}\n\n")));
        Some((Ok(frame), (board, Some(generation), slot)))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}

/// One open `/events` stream, counted while it lives.
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<AtomicUsize>) -> StreamSlot {
        open.fetch_add(1, Ordering::Relaxed);
        StreamSlot(open.clone())
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection whose writes give up when the client has taken nothing
/// for `limit`: a client that never reads would otherwise hold its
/// connection, and the response waiting for it, for ever.
struct WriteTimeout {
    inner: async_net::TcpStream,
    limit: Duration,
    /// Armed while a write waits for the client.
    stalled: Option<async_io::Timer>,
}

impl WriteTimeout {
    fn new(inner: async_net::TcpStream, limit: Duration) -> WriteTimeout {
        WriteTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// `Ready(Err)` once a pending write has waited `limit`.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| async_io::Timer::after(limit));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing in time",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(done) => {
                self.stalled = None;
                Poll::Ready(done)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }
}

impl AsyncRead for WriteTimeout {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteTimeout {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, polled)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{healthz, script_literal, WriteTimeout, STALE_AFTER_MS};
    use crate::watch::board::{self, Board, State};
    use futures_lite::{future, AsyncWriteExt};
    use std::time::Duration;

    #[test]
    fn a_client_that_reads_nothing_is_cut_off_after_the_write_timeout() {
        smol::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = async_net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let mut server = WriteTimeout::new(server, Duration::from_millis(200));
            let chunk = vec![0u8; 64 * 1024];
            // The kernel's buffers take a few MB at most; then writes wait
            // for a client that never reads, until the timeout.
            let writes = async {
                for _ in 0..10_000 {
                    if let Err(e) = server.write_all(&chunk).await {
                        return Some(e);
                    }
                }
                None
            };
            let bound = async {
                async_io::Timer::after(Duration::from_secs(10)).await;
                None
            };
            let failed = future::or(writes, bound).await;
            drop(client);
            let e = failed.expect("writes to a client that never reads went on");
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        });
    }

    #[test]
    fn healthz_is_503_once_the_board_is_stale() {
        let board = Board::new(State::new(Vec::new()));
        assert_eq!(healthz(&board).status(), 200);
        board.lock().now_ms = board::unix_ms() - STALE_AFTER_MS - 1_000;
        assert_eq!(healthz(&board).status(), 503);
    }

    #[test]
    fn names_cannot_end_or_change_the_page_s_script() {
        let json = serde_json::json!({"name": "<!--<script></script>"}).to_string();
        let literal = script_literal(&json);
        assert!(!literal.contains('<'), "{literal}");
        let back: serde_json::Value = serde_json::from_str(&literal).unwrap();
        assert_eq!(back["name"], "<!--<script></script>");
    }
}
