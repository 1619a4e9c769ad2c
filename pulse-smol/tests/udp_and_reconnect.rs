//! UDP connections and the reconnecting client over real sockets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use pulse_proto::{Backoff, CloseCode, Config, Initiator};
use pulse_smol::{connect_udp, ClientEvent, Incoming, Listener, ReconnectingClient, UdpListener};

const PATIENCE: Duration = Duration::from_secs(30);

fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(2));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(PATIENCE).await;
        None
    }))
    .expect("test timed out")
}

#[test]
fn udp_peers_are_told_apart_by_address_and_exchange_messages() {
    run(async {
        let (listener, driver) = UdpListener::bind("127.0.0.1:0".parse().unwrap(), config(200, 1000)).unwrap();
        let addr = listener.local_addr();
        smol::spawn(driver).detach();
        let clients: Vec<_> = (0..3u16)
            .map(|i| {
                smol::spawn(async move {
                    let (conn, driver) = connect_udp(addr, config(200, 1000)).await.unwrap();
                    smol::spawn(driver).detach();
                    conn.send(i, Bytes::from(vec![i as u8; 100])).await.unwrap();
                    loop {
                        if let Incoming::Message { tag, payload } = conn.recv().await {
                            return (i, tag, payload, conn);
                        }
                    }
                })
            })
            .collect();
        let mut servers = Vec::new();
        for _ in 0..3 {
            let (conn, driver, _peer) = listener.accept().await.unwrap();
            smol::spawn(driver).detach();
            servers.push(smol::spawn(async move {
                loop {
                    if let Incoming::Message { tag, payload } = conn.recv().await {
                        conn.send(tag + 100, payload).await.unwrap();
                        // Hold the connection: heartbeats keep it alive.
                        async_io::Timer::after(Duration::from_secs(2)).await;
                        assert!(!conn.is_closed());
                        return conn.stats();
                    }
                }
            }));
        }
        let mut held = Vec::new();
        for client in clients {
            let (i, tag, payload, conn) = client.await;
            assert_eq!(tag, i + 100);
            assert_eq!(payload, Bytes::from(vec![i as u8; 100]));
            held.push(conn); // dropping every handle would close it
        }
        for server in servers {
            let stats = server.await;
            assert!(stats.pongs_sent + stats.pings_sent >= 5, "{stats:?}");
        }
    });
}

#[test]
fn a_udp_peer_that_goes_silent_is_declared_dead() {
    run(async {
        let (listener, driver) = UdpListener::bind("127.0.0.1:0".parse().unwrap(), config(200, 1000)).unwrap();
        let addr = listener.local_addr();
        smol::spawn(driver).detach();
        let connecting = smol::spawn(connect_udp(addr, config(200, 1000)));
        let (server, server_driver, _) = listener.accept().await.unwrap();
        let server_driver = smol::spawn(server_driver);
        let (_client, client_driver) = connecting.await.unwrap();
        let client_driver = smol::spawn(client_driver);
        assert!(matches!(server.recv().await, Incoming::Connected(_)));
        // The client dies without a word: UDP has no end of stream.
        client_driver.cancel().await;
        let started = std::time::Instant::now();
        let mut verdict = None;
        let closed = loop {
            match server.recv().await {
                Incoming::PeerDead { silent_for } => verdict = Some(silent_for),
                Incoming::Closed(closed) => break closed,
                _ => {}
            }
        };
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::TIMED_OUT, Initiator::Local)
        );
        let silent_for = verdict.expect("PeerDead precedes Closed");
        assert!(
            silent_for >= Duration::from_millis(1000) && silent_for < Duration::from_millis(1100),
            "{silent_for:?}"
        );
        assert!(
            started.elapsed() <= Duration::from_millis(2_000),
            "{:?}",
            started.elapsed()
        );
        server_driver.await;
    });
}

#[test]
fn the_reconnecting_client_comes_back_after_the_server_drops_it() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), config(200, 1000)).unwrap();
        let addr = listener.local_addr().unwrap();
        let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200)).with_seed(1);
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
        smol::spawn(supervisor).detach();
        // First connection: the server closes it.
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Incoming::Connected(_)));
        assert_eq!(client.recv().await, ClientEvent::Connecting { attempt: 1 });
        assert!(matches!(client.recv().await, ClientEvent::Connected(_)));
        conn.close(CloseCode::GOING_AWAY, "restart").await.unwrap();
        let ClientEvent::Lost {
            closed: Some(closed),
            retry_in: Some(retry_in),
            ..
        } = client.recv().await
        else {
            panic!("expected Lost");
        };
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::GOING_AWAY, Initiator::Peer)
        );
        assert!(retry_in <= Duration::from_millis(50));
        // It comes back by itself.
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert_eq!(client.recv().await, ClientEvent::Connecting { attempt: 1 });
        assert!(matches!(client.recv().await, ClientEvent::Connected(_)));
        client.send(9, &b"back"[..]).await.unwrap();
        loop {
            match conn.recv().await {
                Incoming::Message { tag: 9, payload } => break assert_eq!(payload, Bytes::from_static(b"back")),
                Incoming::Closed(c) => panic!("{c:?}"),
                _ => {}
            }
        }
        client.close().await;
        assert_eq!(client.recv().await, ClientEvent::Stopped);
    });
}

#[test]
fn the_reconnecting_client_gives_up_as_its_backoff_says() {
    run(async {
        // Nobody listens here: no test binds 127.0.0.77, so no port reuse.
        let addr = "127.0.0.77:1".parse().unwrap();
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(40)).with_max_attempts(3);
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
        let supervisor = smol::spawn(supervisor);
        let mut attempts = 0;
        let started = std::time::Instant::now();
        loop {
            match client.recv().await {
                ClientEvent::Connecting { .. } => attempts += 1,
                ClientEvent::Lost {
                    closed: None,
                    error: Some(_),
                    ..
                } => {}
                ClientEvent::GaveUp { attempts: n } => break assert_eq!(n, 3),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(attempts, 4, "the first try and three retries");
        // The three waits were really waited: at least half of 10 + 20 + 40 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(35),
            "{:?}",
            started.elapsed()
        );
        supervisor.await;
        assert!(
            matches!(client.recv().await, ClientEvent::GaveUp { .. }),
            "GaveUp is sticky"
        );
    });
}

#[test]
fn closing_the_reconnecting_client_right_after_it_connects_stops_it() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), config(200, 1000)).unwrap();
        let addr = listener.local_addr().unwrap();
        smol::spawn(async move {
            while let Ok((conn, driver, _)) = listener.accept().await {
                smol::spawn(driver).detach();
                smol::spawn(async move { conn.closed().await }).detach();
            }
        })
        .detach();
        for seed in 0..20 {
            let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).with_seed(seed);
            let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
            let supervisor = smol::spawn(supervisor);
            while !matches!(client.recv().await, ClientEvent::Connected(_)) {}
            client.close().await;
            supervisor.await;
            assert!(!client.is_connected());
        }
    });
}
