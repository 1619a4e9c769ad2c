//! What a pulse-tokio application changes of a connection while it runs,
//! over real sockets on 127.0.0.1: its status, and the adaptive learning a
//! reconnecting client carries to its next connection.

mod tokio_common;

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::{AdaptiveConfig, Backoff, CloseCode, Config, Learned, ServiceState, Status};
use pulse_tokio::{ClientEvent, Event, Listener, ReconnectingClient};
use tokio_common::bounded;

const MS: Duration = Duration::from_millis(1);

/// Both ends: the server agrees to intervals from 50 ms; a client learns
/// fast (a step up after every clean idle round) when adaptive.
fn config(adaptive: bool) -> Arc<Config> {
    let mut policy = AdaptiveConfig::default();
    policy.start = MS * 200;
    policy.active = MS * 100;
    policy.max = Duration::from_secs(60);
    policy.successes_per_step = 1;
    let config = Config::default()
        .with_handshake_timeout(Duration::from_secs(2))
        .with_min_interval(MS * 50)
        .with_timing(MS * 400, MS * 1200)
        .with_adaptive(adaptive.then_some(policy));
    Arc::new(config)
}

/// The interval an adaptive client asks for to keep every idle gap under
/// `gap_ms` (PROTOCOL.md §6.11, at the default 10 % jitter).
fn asked_for(gap_ms: u32) -> Duration {
    MS * (gap_ms * 100 / 110)
}

async fn connected(client: &ReconnectingClient) -> pulse_proto::Negotiated {
    loop {
        match client.recv().await {
            ClientEvent::Event(Event::Connected(n)) => return n,
            event => assert!(!event.is_ending(), "the client ended: {event:?}"),
        }
    }
}

#[tokio::test]
async fn a_status_reaches_the_peer() {
    bounded(async {
        let listener = Listener::bind("127.0.0.1:0", config(false)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(pulse_tokio::connect(addr, config(false)), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        server.connected().await.unwrap();
        let draining = Status::new(ServiceState::Draining, 25);
        server.send_status(draining).unwrap();
        loop {
            match client.recv().await {
                Event::PeerStatus(status) => break assert_eq!(status, draining),
                Event::Closed(closed) => panic!("{closed}"),
                _ => {}
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_reconnecting_client_starts_each_connection_from_what_the_last_one_learned() {
    bounded(async {
        let listener = Listener::bind("127.0.0.1:0", config(false)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stored = Learned {
            good_ms: 300,
            ..Learned::default()
        };
        let client = ReconnectingClient::builder(addr, config(true))
            .backoff(Backoff::new(MS * 20, MS * 100).with_seed(3))
            .learned(stored)
            .build();
        let (first, _) = listener.accept().await.unwrap();
        // Without the stored value it would ask for its 200 ms start.
        assert_eq!(connected(&client).await.interval(), asked_for(300));
        // Let it learn longer gaps, then lose the connection.
        loop {
            match first.recv().await {
                Event::Retimed(_) if client.learned().unwrap().good_ms > 300 => break,
                Event::Closed(closed) => panic!("{closed}"),
                _ => {}
            }
        }
        first.close(CloseCode::GOING_AWAY, "restart").await.unwrap();
        loop {
            if let ClientEvent::Lost { .. } = client.recv().await {
                break;
            }
        }
        let kept = client.learned().expect("kept while disconnected");
        assert!(kept.good_ms > 300, "{kept:?}");
        let (_second, _) = listener.accept().await.unwrap();
        assert_eq!(connected(&client).await.interval(), asked_for(kept.good_ms));
        client.close().await;
    })
    .await;
}
