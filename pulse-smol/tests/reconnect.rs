//! The reconnecting client over real sockets on 127.0.0.1.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{config, run};
use pulse_proto::{Backoff, CloseCode, Config, Initiator};
use pulse_smol::{ClientEvent, Error, Event, Listener, ReconnectingClient};

const MS: Duration = Duration::from_millis(1);

/// A server that completes each handshake and closes the connection at
/// once; counts the connections it saw.
async fn dropping_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    smol::spawn(async move {
        while let Ok((conn, driver, _)) = listener.accept().await {
            smol::spawn(driver).detach();
            let counter = counter.clone();
            smol::spawn(async move {
                if conn.connected().await.is_ok() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.close(CloseCode::GOING_AWAY, "not now").await;
                }
            })
            .detach();
        }
    })
    .detach();
    (addr, accepted)
}

async fn next_lost(client: &ReconnectingClient) -> (Arc<Error>, Duration) {
    loop {
        match client.recv().await {
            ClientEvent::Lost { error, retry_in } => return (error, retry_in),
            ClientEvent::GaveUp { .. } | ClientEvent::Failed { .. } | ClientEvent::Stopped => panic!("it ended"),
            _ => {}
        }
    }
}

#[test]
fn the_reconnecting_client_comes_back_after_the_server_drops_it() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backoff = Backoff::new(MS * 50, MS * 200).with_seed(1);
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
        smol::spawn(supervisor).detach();
        // First connection: the server closes it.
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        assert!(matches!(client.recv().await, ClientEvent::Connecting { attempt: 1 }));
        assert!(matches!(client.recv().await, ClientEvent::Event(Event::Connected(_))));
        assert!(client.is_connected());
        conn.close(CloseCode::GOING_AWAY, "restart").await.unwrap();
        let (error, retry_in) = next_lost(&client).await;
        assert!(!client.is_connected());
        let Error::Closed(closed) = &*error else {
            panic!("{error}")
        };
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::GOING_AWAY, Initiator::Peer)
        );
        assert!(retry_in <= MS * 50);
        // It comes back by itself.
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(client.recv().await, ClientEvent::Connecting { attempt: 1 }));
        assert!(matches!(client.recv().await, ClientEvent::Event(Event::Connected(_))));
        client.send(9, &b"back"[..]).await.unwrap();
        loop {
            match conn.recv().await {
                Event::Message { tag: 9, payload } => break assert_eq!(payload, Bytes::from_static(b"back")),
                Event::Closed(c) => panic!("{c:?}"),
                _ => {}
            }
        }
        client.close().await;
        loop {
            match client.recv().await {
                ClientEvent::Stopped => break,
                ClientEvent::Event(_) => {}
                other => panic!("{other:?}"),
            }
        }
    });
}

#[test]
fn the_reconnecting_client_gives_up_as_its_backoff_says_with_the_last_error() {
    run(async {
        // Nobody listens here: no test binds 127.0.0.77, so no port reuse.
        let addr: SocketAddr = "127.0.0.77:1".parse().unwrap();
        let backoff = Backoff::new(MS * 10, MS * 40).with_max_attempts(3);
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
        let supervisor = smol::spawn(supervisor);
        let mut attempts = 0;
        loop {
            match client.recv().await {
                ClientEvent::Connecting { .. } => attempts += 1,
                ClientEvent::Lost { error, .. } => assert!(matches!(&*error, Error::Io(_)), "{error}"),
                ClientEvent::GaveUp { attempts: n, error } => {
                    assert!(matches!(&*error, Error::Io(_)), "{error}");
                    break assert_eq!(n, 3);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(attempts, 4, "the first try and three retries");
        supervisor.await;
        assert!(
            matches!(client.recv().await, ClientEvent::GaveUp { .. }),
            "GaveUp is sticky"
        );
    });
}

#[test]
fn transient_errors_never_end_the_client_and_each_loss_says_why_in_a_typed_error() {
    run(async {
        // Refused, again and again: the client tries on.
        let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let backoff = Backoff::new(MS, MS * 2);
        let (client, supervisor) = ReconnectingClient::new(closed_port, config(200, 1000), backoff);
        smol::spawn(supervisor).detach();
        for _ in 0..50 {
            let (error, _) = next_lost(&client).await;
            let Error::Io(io) = &*error else { panic!("{error}") };
            assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        }
    });
}

#[test]
fn a_configuration_error_ends_the_client_at_once_with_that_error() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        // Invalid: the dead timeout must be at least twice the interval.
        let bad = Config::default().with_dead_timeout(Duration::from_secs(1));
        let (client, supervisor) = ReconnectingClient::new(listener.local_addr().unwrap(), bad, Backoff::new(MS, MS));
        let supervisor = smol::spawn(supervisor);
        let error = loop {
            match client.recv().await {
                ClientEvent::Connecting { attempt } => assert_eq!(attempt, 1, "a config error is not retried"),
                ClientEvent::Failed { error } => break error,
                other => panic!("{other:?}"),
            }
        };
        assert!(matches!(&*error, Error::Config(_)), "{error}");
        supervisor.await;
    });
}

#[test]
fn a_client_that_never_reads_keeps_reconnecting_and_says_when_it_is_down() {
    run(async {
        let (addr, accepted) = dropping_server().await;
        // Retries come fast and never grow past 2 ms; the application
        // never reads an event.
        let backoff = Backoff::new(MS, MS * 2);
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
        smol::spawn(supervisor).detach();
        // Each connection makes three events (Connecting, Connected,
        // Closed) and a Lost: far past any backlog a blocking queue keeps.
        while accepted.load(Ordering::SeqCst) < 600 {
            async_io::Timer::after(MS * 10).await;
        }
        assert!(client.events_dropped() > 0);
        // Down between connections: never "connected" for long.
        let mut down = 0;
        for _ in 0..100 {
            if !client.is_connected() {
                down += 1;
            }
            async_io::Timer::after(MS).await;
        }
        assert!(down > 0, "is_connected said true for 100 ms of dropped connections");
        // What it kept is bounded, whatever it went through.
        let mut kept = 0;
        while futures_lite::future::poll_once(client.recv()).await.is_some() {
            kept += 1;
            assert!(kept < 10_000, "an unbounded backlog");
        }
    });
}

#[test]
fn the_client_ends_when_every_handle_is_dropped() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), Backoff::new(MS * 10, MS * 100));
        let supervisor = smol::spawn(supervisor);
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        while !matches!(client.recv().await, ClientEvent::Event(Event::Connected(_))) {}
        let other_handle = client.clone();
        drop(client);
        assert!(other_handle.is_connected(), "a handle is left");
        drop(other_handle);
        supervisor.await;
        let Event::Closed(closed) = conn.recv().await else {
            panic!()
        };
        assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Peer));
    });
}

#[test]
fn a_server_that_accepts_and_drops_at_once_is_backed_off_from() {
    run(async {
        let (addr, _) = dropping_server().await;
        // No jitter, so the delays are exact; connections never stay up
        // the default ten seconds that would start the backoff over.
        let backoff = Backoff::new(MS * 5, Duration::from_secs(1)).with_jitter_percent(0);
        let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
        smol::spawn(supervisor).detach();
        let mut delays = Vec::new();
        for _ in 0..6 {
            let (error, retry_in) = next_lost(&client).await;
            assert!(matches!(&*error, Error::Closed(_)), "each attempt connected: {error}");
            delays.push(retry_in);
        }
        assert_eq!(delays, [MS * 5, MS * 10, MS * 20, MS * 40, MS * 80, MS * 160]);
    });
}

#[test]
fn closing_the_reconnecting_client_right_after_it_connects_stops_it() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        smol::spawn(async move {
            while let Ok((conn, driver, _)) = listener.accept().await {
                smol::spawn(driver).detach();
                smol::spawn(async move { conn.closed().await }).detach();
            }
        })
        .detach();
        for seed in 0..20 {
            let backoff = Backoff::new(MS * 10, MS * 50).with_seed(seed);
            let (client, supervisor) = ReconnectingClient::new(addr, config(200, 1000), backoff);
            let supervisor = smol::spawn(supervisor);
            while !matches!(client.recv().await, ClientEvent::Event(Event::Connected(_))) {}
            client.close().await;
            supervisor.await;
            assert!(!client.is_connected());
        }
    });
}

#[test]
fn a_host_name_is_resolved_and_connected_to() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (client, supervisor) = ReconnectingClient::new(
            format!("localhost:{port}"),
            config(200, 1000),
            Backoff::new(MS * 10, MS * 50),
        );
        smol::spawn(supervisor).detach();
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        while !matches!(client.recv().await, ClientEvent::Event(Event::Connected(_))) {}
        client.close().await;
    });
}
