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
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{future, stream};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use super::board::{self, Board};
use super::metrics;

const CONSOLE: &str = include_str!("console.html");
/// Time a client has to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A comment on an idle event stream, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The board is stale (`/healthz` says 503) when the monitor's thread
/// has not refreshed it for this long (it refreshes every second).
const STALE_AFTER_MS: u64 = 5_000;
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

type Body = BoxBody<Bytes, Infallible>;

/// Serves the board on `addr` from a new thread; the address bound.
pub fn spawn(addr: SocketAddr, board: Arc<Board>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let listener = async_net::TcpListener::try_from(listener)?;
    std::thread::Builder::new().name("http".into()).spawn(move || {
        let executor = Rc::new(smol::LocalExecutor::new());
        let open = Rc::new(std::cell::Cell::new(0usize));
        future::block_on(executor.run(async {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors: a moment, then accept again.
                    async_io::Timer::after(Duration::from_millis(100)).await;
                    continue;
                };
                if open.get() >= MAX_CONNECTIONS {
                    continue;
                }
                open.set(open.get() + 1);
                let board = board.clone();
                let open = open.clone();
                executor
                    .spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let board = board.clone();
                            async move { Ok::<_, Infallible>(route(&request, board)) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(SmolTimer::new())
                            .header_read_timeout(HEADER_TIMEOUT)
                            .serve_connection(FuturesIo::new(stream), service)
                            .await;
                        open.set(open.get() - 1);
                    })
                    .detach();
            }
        }));
    })?;
    Ok(bound)
}

fn route(request: &Request<Incoming>, board: Arc<Board>) -> Response<Body> {
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
        "/healthz" => {
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
        "/events" => events(board),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
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
fn events(board: Arc<Board>) -> Response<Body> {
    let frames = stream::unfold((board, None::<u64>), |(board, sent)| async move {
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
                    return Some((Ok::<_, Infallible>(frame), (board, Some(sent))));
                }
            }
        }
        let (json, generation) = {
            let state = board.lock();
            (serde_json::to_string(&*state).unwrap_or_default(), state.generation)
        };
        let frame = Frame::data(Bytes::from(format!("data: {json}\n\n")));
        Some((Ok(frame), (board, Some(generation))))
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

#[cfg(test)]
mod tests {
    use super::script_literal;

    #[test]
    fn names_cannot_end_or_change_the_page_s_script() {
        let json = serde_json::json!({"name": "<!--<script></script>"}).to_string();
        let literal = script_literal(&json);
        assert!(!literal.contains('<'), "{literal}");
        let back: serde_json::Value = serde_json::from_str(&literal).unwrap();
        assert_eq!(back["name"], "<!--<script></script>");
    }
}
