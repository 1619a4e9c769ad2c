//! UDP connections and the UDP listener over real sockets.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{config, run};
use pulse_proto::{CloseCode, Initiator};
use pulse_smol::{connect_udp, Event, UdpListener};

#[test]
fn udp_peers_are_told_apart_by_address_and_exchange_messages() {
    run(async {
        let (listener, router) = UdpListener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr();
        smol::spawn(router).detach();
        let clients: Vec<_> = (0..3u16)
            .map(|i| {
                smol::spawn(async move {
                    let (conn, driver) = connect_udp(addr, config(200, 1000)).await.unwrap();
                    smol::spawn(driver).detach();
                    conn.send(i, Bytes::from(vec![i as u8; 100])).await.unwrap();
                    loop {
                        if let Event::Message { tag, payload } = conn.recv().await {
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
                    if let Event::Message { tag, payload } = conn.recv().await {
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
            // About 10 round trips in 2 s at 200 ms; a third proves it.
            assert!(stats.pongs_sent + stats.pings_sent >= 3, "{stats:?}");
        }
    });
}

#[test]
fn a_udp_peer_that_goes_silent_is_declared_dead() {
    run(async {
        let (listener, router) = UdpListener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr();
        smol::spawn(router).detach();
        let connecting = smol::spawn(connect_udp(addr, config(200, 1000)));
        let (server, server_driver, _) = listener.accept().await.unwrap();
        let server_driver = smol::spawn(server_driver);
        let (client, client_driver) = connecting.await.unwrap();
        assert!(matches!(server.recv().await, Event::Connected(_)));
        // The client falls silent without a word (not even the CLOSE a
        // dropped driver sends): its driver never runs again, and UDP has
        // no end of stream.
        std::mem::forget(client_driver);
        std::mem::forget(client);
        let started = Instant::now();
        let mut verdict = None;
        let closed = loop {
            match server.recv().await {
                Event::PeerDead { silent_for } => verdict = Some(silent_for),
                Event::Closed(closed) => break closed,
                _ => {}
            }
        };
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::TIMED_OUT, Initiator::Local)
        );
        // Never early; and, with three times the timeout to spare, on time.
        let silent_for = verdict.expect("PeerDead precedes Closed");
        assert!(
            silent_for >= Duration::from_millis(1000) && silent_for < Duration::from_millis(3000),
            "{silent_for:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(3000),
            "{:?}",
            started.elapsed()
        );
        server_driver.await;
    });
}

/// Bytes waiting in the receive queue of the UDP socket on `port`, from
/// /proc/net/udp.
fn udp_rx_queue(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields.get(1)?.rsplit(':').next()?, 16).ok()?;
            if local_port != port {
                return None;
            }
            let rx = fields.get(4)?.rsplit(':').next()?;
            usize::from_str_radix(rx, 16).ok()
        })
        .expect("the listener's socket in /proc/net/udp")
}

#[test]
fn a_flood_of_stray_datagrams_does_not_starve_the_executor() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let (listener, router) = UdpListener::from_std(socket, config(200, 1000)).unwrap();
    // A backlog of strays, queued before the router first runs: more than
    // it reads in one turn.
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        flood.send_to(&i.to_le_bytes(), listener.local_addr()).unwrap();
    }
    let queued = udp_rx_queue(port);
    assert!(queued > 0);
    let executor = smol::LocalExecutor::new();
    let seen_by_another_task = run(executor.run(async {
        let router = executor.spawn(router);
        // Spawned after the router: it runs when the router yields.
        let another = executor.spawn(async move { udp_rx_queue(port) });
        let seen = another.await;
        drop(listener);
        router.cancel().await;
        seen
    }));
    assert!(
        seen_by_another_task > 0,
        "the router read all {queued} bytes of strays before another task ran"
    );
}
