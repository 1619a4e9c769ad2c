//! pulse-smol over real TCP sockets on 127.0.0.1, client and server in one
//! process. (Tests that freeze a peer process live in the workspace's
//! `tests/` crate.)

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use pulse_proto::{CloseCode, Config, Initiator, ProtocolError};
use pulse_smol::{connect, Connection, Incoming, Listener};

/// Generous bound for anything a test waits on.
const PATIENCE: Duration = Duration::from_secs(20);

fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    Arc::new(Config::default().with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

/// Runs `f` under smol with a deadline, so a bug fails instead of hanging.
fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(PATIENCE).await;
        None
    }))
    .expect("test timed out")
}

/// An echo server; returns its address.
fn echo_server(config: Arc<Config>) -> std::net::SocketAddr {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
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

async fn echo(conn: Connection) {
    loop {
        let (tag, payload) = match conn.recv().await {
            Incoming::Message { tag, payload } => (tag, payload),
            Incoming::Closed(_) => return,
            _ => continue,
        };
        if conn.send(tag, payload).await.is_err() {
            return;
        }
    }
}

async fn next_message(conn: &Connection) -> (u16, Bytes) {
    loop {
        match conn.recv().await {
            Incoming::Message { tag, payload } => return (tag, payload),
            Incoming::Closed(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

#[test]
fn ten_thousand_messages_of_random_sizes_arrive_intact_and_in_order() {
    run(async {
        let addr = echo_server(config(1000, 3000));
        let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
        smol::spawn(driver).detach();
        let (tx, rx) = conn.split();
        let mut rng = 0x1234_5678_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let messages: Vec<(u16, Bytes)> = (0..10_000)
            .map(|i| {
                let len = (next() % (64 * 1024 + 1)) as usize;
                let byte = (i % 251) as u8;
                (next() as u16, Bytes::from(vec![byte; len]))
            })
            .collect();
        let expected = messages.clone();
        let sender = smol::spawn(async move {
            for (tag, payload) in messages {
                tx.send(tag, payload).await.unwrap();
            }
        });
        for (i, (tag, payload)) in expected.iter().enumerate() {
            let (got_tag, got) = loop {
                match rx.recv().await {
                    Incoming::Message { tag, payload } => break (tag, payload),
                    Incoming::Closed(c) => panic!("closed after {i}: {c:?}"),
                    _ => {}
                }
            };
            assert_eq!((got_tag, got.len()), (*tag, payload.len()), "message {i}");
            assert_eq!(&got, payload, "message {i}");
        }
        sender.await;
    });
}

#[test]
fn an_http_client_gets_a_closed_connection_and_the_server_keeps_serving() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), config(1000, 3000)).unwrap();
        let addr = listener.local_addr().unwrap();
        let http = smol::spawn(async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let mut stream = smol::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: pulse\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap(); // returns: the server closed
            answer
        });
        let (bad, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        let Incoming::Closed(closed) = bad.recv().await else {
            panic!("expected a close")
        };
        assert_eq!(closed.code, CloseCode::PROTOCOL_ERROR);
        let error = closed.error.unwrap();
        assert!(matches!(error, ProtocolError::BadMagic { .. }));
        assert!(error.to_string().contains("not a pulse peer"), "{error}");
        let answer = http.await;
        assert!(
            answer.starts_with(&pulse_proto::frame::MAGIC),
            "the HTTP client saw {answer:?}"
        );
        // The listener still serves a real client.
        let client = smol::spawn(async move {
            let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
            smol::spawn(driver).detach();
            conn.send(5, &b"still here"[..]).await.unwrap();
            conn.closed().await
        });
        let (good, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(good.recv().await, Incoming::Connected(_)));
        assert_eq!(next_message(&good).await, (5, Bytes::from_static(b"still here")));
        drop(good);
        client.await;
    });
}

#[test]
fn a_peer_that_drops_its_socket_without_close_is_reported_at_once() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut stream, _) = listener.accept().unwrap();
            // Answer like a pulse server by hand, then vanish without CLOSE.
            let mut hello = [0u8; 4 + 2 + 16]; // magic, header, HELLO without a cookie
            stream.read_exact(&mut hello).unwrap();
            let mut out = pulse_proto::frame::MAGIC.to_vec();
            pulse_proto::frame::Frame::Welcome(pulse_proto::frame::Welcome {
                version: 1,
                interval_ms: 10_000,
                dead_timeout_ms: 30_000,
                max_frame_len: 65_536,
                min_ping_spacing_ms: 500,
                ping_strikes: 2,
                ext: None,
            })
            .encode(&mut out);
            stream.write_all(&out).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        });
        let (conn, driver) = connect(addr, config(10_000, 30_000)).await.unwrap();
        smol::spawn(driver).detach();
        let started = std::time::Instant::now();
        let closed = conn.closed().await;
        assert_eq!((closed.code, closed.initiator), (CloseCode::LOST, Initiator::Peer));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        server.join().unwrap();
    });
}

#[test]
fn a_graceful_close_reaches_the_peer_with_its_code_and_reason() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), config(1000, 3000)).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = smol::spawn(async move {
            let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
            let driver = smol::spawn(driver);
            conn.send(1, &b"bye"[..]).await.unwrap();
            let closed = conn.close(CloseCode::GOING_AWAY, "done").await.unwrap();
            driver.await;
            closed
        });
        let (conn, driver, _) = listener.accept().await.unwrap();
        let server_driver = smol::spawn(driver);
        assert!(matches!(conn.recv().await, Incoming::Connected(_)));
        assert_eq!(next_message(&conn).await.1, Bytes::from_static(b"bye"));
        let Incoming::Closed(seen) = conn.recv().await else {
            panic!()
        };
        assert_eq!(
            (seen.code, seen.initiator, seen.reason.as_str()),
            (CloseCode::GOING_AWAY, Initiator::Peer, "done")
        );
        let mine = client.await;
        assert_eq!((mine.code, mine.initiator), (CloseCode::GOING_AWAY, Initiator::Local));
        server_driver.await;
    });
}

#[test]
fn heartbeats_run_while_the_application_reads_nothing() {
    run(async {
        let addr = echo_server(config(100, 400));
        let (conn, driver) = connect(addr, config(100, 400)).await.unwrap();
        smol::spawn(driver).detach();
        async_io::Timer::after(Duration::from_millis(2_000)).await; // never calling recv
        assert!(!conn.is_closed());
        assert!(conn.stats().pings_sent >= 10, "{:?}", conn.stats());
        assert!(conn.rtt().is_some());
    });
}
