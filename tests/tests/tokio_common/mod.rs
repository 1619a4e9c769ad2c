//! What the pulse-tokio test binaries share: configs, a bound on every
//! test, an echo.
#![allow(dead_code)] // each binary uses its own part

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Closed, Config};
use pulse_tokio::{Connection, Event, Listener};

/// Both ends can use it: `with_timing` lowers the server's bounds to fit.
pub fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(2));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

/// A bug fails the test instead of hanging it.
pub async fn bounded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("test timed out")
}

/// The next message, or `None` once the connection is over.
pub async fn message_or_end(conn: &Connection) -> Option<(u16, Bytes)> {
    loop {
        match conn.recv().await {
            Event::Message { tag, payload } => return Some((tag, payload)),
            Event::Closed(_) => return None,
            _ => {}
        }
    }
}

/// Sends every message back until the connection ends.
pub async fn echo(conn: Connection) {
    while let Some((tag, payload)) = message_or_end(&conn).await {
        if conn.send(tag, payload).await.is_err() {
            break;
        }
    }
}

/// Serves pulse over TCP on 127.0.0.1, sending every message back.
pub async fn echo_server(config: Arc<Config>) -> SocketAddr {
    let listener = Listener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(echo(conn));
        }
    });
    addr
}

/// A listener on 127.0.0.1 with a 1 s interval and a 3 s timeout, and
/// its address.
pub async fn listening() -> (Listener, SocketAddr) {
    let listener = Listener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Reads `conn` to its end: the silence its dead-peer verdict named (if
/// one came), and how it closed.
pub async fn verdict_then_close(conn: &Connection) -> (Option<Duration>, Closed) {
    let mut silence = None;
    loop {
        let event = conn.recv().await;
        if let Event::PeerDead { silent_for } = event {
            silence = Some(silent_for);
        } else if let Event::Closed(closed) = event {
            return (silence, closed);
        }
    }
}
