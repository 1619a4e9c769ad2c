//! What the test binaries share: a deadline for every test, configs, an
//! echo server.
#![allow(dead_code)] // each binary uses its own part

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use pulse_proto::Config;
use pulse_smol::{Connection, Event, Listener};

/// Generous bound for anything a test waits on.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Both ends can use it: `with_timing` lowers the server's bounds to fit.
pub fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(2));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

/// Runs `f` under smol with a deadline, so a bug fails instead of hanging.
pub fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    run_within(PATIENCE, f)
}

pub fn run_within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    }))
    .expect("test timed out")
}

/// An echo server on 127.0.0.1; returns its address.
pub async fn echo_server(config: Arc<Config>) -> SocketAddr {
    let listener = Listener::bind("127.0.0.1:0", config).await.unwrap();
    let addr = listener.local_addr().unwrap();
    smol::spawn(async move {
        while let Ok((conn, driver, _)) = listener.accept().await {
            smol::spawn(driver).detach();
            smol::spawn(echo(conn)).detach();
        }
    })
    .detach();
    addr
}

/// Sends every message back with its tag, until the connection closes.
pub async fn echo(conn: Connection) {
    loop {
        let (tag, payload) = match conn.recv().await {
            Event::Message { tag, payload } => (tag, payload),
            Event::Closed(_) => return,
            _ => continue,
        };
        if conn.send(tag, payload).await.is_err() {
            return;
        }
    }
}

pub async fn next_message(conn: &Connection) -> (u16, Bytes) {
    loop {
        match conn.recv().await {
            Event::Message { tag, payload } => return (tag, payload),
            Event::Closed(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Messages of random sizes up to `max`, from a fixed seed.
pub fn random_messages(count: usize, max: usize) -> Vec<(u16, Bytes)> {
    let mut rng = 0x1234_5678_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    (0..count)
        .map(|i| {
            let len = (next() % (max as u64 + 1)) as usize;
            (next() as u16, Bytes::from(vec![(i % 251) as u8; len]))
        })
        .collect()
}

/// Sends `messages` on `conn` and checks they come back intact and in
/// order (from an echo peer).
pub async fn round_trip(conn: Connection, messages: Vec<(u16, Bytes)>) {
    let (tx, rx) = conn.split();
    let expected = messages.clone();
    let sender = smol::spawn(async move {
        for (tag, payload) in messages {
            tx.send(tag, payload).await.unwrap();
        }
        tx
    });
    for (i, (tag, payload)) in expected.iter().enumerate() {
        let (got_tag, got) = loop {
            match rx.recv().await {
                Event::Message { tag, payload } => break (tag, payload),
                Event::Closed(c) => panic!("closed after {i}: {c:?}"),
                _ => {}
            }
        };
        assert_eq!((got_tag, got.len()), (*tag, payload.len()), "message {i}");
        assert_eq!(&got, payload, "message {i}");
    }
    sender.await;
}
