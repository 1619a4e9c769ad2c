//! What an application changes of a connection while it runs, over real
//! sockets on 127.0.0.1: its status, its timings, and an adaptive
//! client's learning, which a reconnecting client carries to its next
//! connection.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::run;
use pulse_proto::{AdaptiveConfig, CloseCode, Config, Learned, Negotiated, SendError, ServiceState, Status};
use pulse_smol::{ClientEvent, Connection, Event, Listener, ReconnectingClient};

const MS: Duration = Duration::from_millis(1);

/// Both ends: the server agrees to intervals from 50 ms; a client is
/// adaptive when `adaptive` says so (a server ignores that part).
fn config(adaptive: Option<AdaptiveConfig>) -> Arc<Config> {
    let config = Config::default()
        .with_handshake_timeout(Duration::from_secs(2))
        .with_min_interval(MS * 50)
        .with_timing(MS * 400, MS * 1200)
        .with_adaptive(adaptive);
    Arc::new(config)
}

/// Learns fast: a step up after every clean idle round.
fn eager() -> AdaptiveConfig {
    let mut adaptive = AdaptiveConfig::default();
    adaptive.start = MS * 200;
    adaptive.active = MS * 100;
    adaptive.max = Duration::from_secs(60);
    adaptive.successes_per_step = 1;
    adaptive
}

/// The interval an adaptive client asks for to keep every idle gap under
/// `gap_ms` (PROTOCOL.md §6.11: `L / (1 + j)`, at the default 10 % jitter).
fn asked_for(gap_ms: u32) -> Duration {
    MS * (gap_ms * 100 / 110)
}

/// The next event of `conn` that `pick` wants.
async fn next<T>(conn: &Connection, mut pick: impl FnMut(Event) -> Option<T>) -> T {
    loop {
        let event = conn.recv().await;
        assert!(!matches!(event, Event::Closed(_)), "closed while waiting: {event:?}");
        if let Some(found) = pick(event) {
            return found;
        }
    }
}

async fn pair(client: Arc<Config>) -> (Connection, Connection) {
    let listener = Listener::bind("127.0.0.1:0", config(None)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The server's side must run for the client's handshake to complete.
    let accepting = async {
        let (server, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        server
    };
    let (connected, server) = futures_lite::future::zip(pulse_smol::connect(addr, client), accepting).await;
    let (client, driver) = connected.unwrap();
    smol::spawn(driver).detach();
    server.connected().await.unwrap();
    (client, server)
}

#[test]
fn a_status_reaches_the_peer_and_a_retime_switches_both_ends() {
    run(async {
        let (client, server) = pair(config(None)).await;
        let draining = Status::new(ServiceState::Draining, 25);
        server.send_status(draining).unwrap();
        assert_eq!(
            next(&client, |e| match e {
                Event::PeerStatus(s) => Some(s),
                _ => None,
            })
            .await,
            draining
        );

        client.retime(MS * 200, MS * 900).unwrap();
        let retimed = |e| match e {
            Event::Retimed(n) => Some((n.interval(), n.dead_timeout())),
            _ => None,
        };
        assert_eq!(next(&client, retimed).await, (MS * 200, MS * 900));
        assert_eq!(next(&server, retimed).await, (MS * 200, MS * 900));
        // Only a client asks for new timings.
        assert!(matches!(
            server.retime(MS * 300, MS * 900),
            Err(SendError::Unsupported { .. })
        ));
    });
}

#[test]
fn an_active_application_gets_its_minimum_interval_then_its_learned_one() {
    run(async {
        let (client, _server) = pair(config(Some(eager()))).await;
        client.set_active(true);
        let retimed = |e| match e {
            Event::Retimed(n) => Some(n.interval()),
            _ => None,
        };
        assert_eq!(next(&client, retimed).await, asked_for(100));
        client.set_active(false);
        let back = next(&client, retimed).await;
        let learned = client.learned().expect("adaptive");
        assert!(back > asked_for(100), "{back:?}");
        assert!(
            back <= asked_for(learned.target_ms.max(200)),
            "{back:?} for {learned:?}"
        );
    });
}

#[test]
fn a_reconnecting_client_starts_each_connection_from_what_the_last_one_learned() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(None)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        // What an earlier client found on this network: 300 ms worked.
        let stored = Learned {
            good_ms: 300,
            ..Learned::default()
        };
        let (client, supervisor) = ReconnectingClient::builder(addr, config(Some(eager())))
            .backoff(pulse_proto::Backoff::new(MS * 20, MS * 100).with_seed(3))
            .learned(stored)
            .build();
        smol::spawn(supervisor).detach();

        let connected = |client: &ReconnectingClient| {
            let client = client.clone();
            async move {
                loop {
                    if let ClientEvent::Event(Event::Connected(n)) = client.recv().await {
                        return n;
                    }
                }
            }
        };
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        let first: Negotiated = connected(&client).await;
        // Without the stored value it would ask for its 200 ms start.
        assert_eq!(first.interval(), asked_for(300));

        // Let it learn longer gaps (a step up after each clean round),
        // then lose the connection.
        let learned = loop {
            next(&conn, |e| matches!(e, Event::Retimed(_)).then_some(())).await;
            let learned = client.learned().unwrap();
            if learned.good_ms > 300 {
                break learned;
            }
        };
        conn.close(CloseCode::GOING_AWAY, "restart").await.unwrap();
        loop {
            if let ClientEvent::Lost { .. } = client.recv().await {
                break;
            }
        }
        let kept = client.learned().expect("kept while disconnected");
        assert!(kept.good_ms >= learned.good_ms, "{kept:?} after {learned:?}");

        let (_conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        let second = connected(&client).await;
        assert_eq!(second.interval(), asked_for(kept.good_ms));
        client.close().await;
    });
}
