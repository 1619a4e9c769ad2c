//! A pulse-smol application gets back the messages a connection never
//! began to send (`docs/PROTOCOL.md` §6.11.1), over real sockets: an
//! adaptive client idle past what its path was seen to keep holds its next
//! message while a PING confirms the path; a loopback relay that forgot
//! the idle connection resets it instead (`pulse_tests::held`). The
//! message comes back from `Connection::take_unsent`, and a
//! `ReconnectingClient` sends it first on its next connection.
//!
//! Every wait is bounded by `held::BOUND`; the one timed pause is the
//! idle stretch the scenario needs (`held::IDLE`).

use std::future::Future;
use std::time::Duration;

use async_io::Timer;
use bytes::Bytes;
use pulse_proto::{Backoff, CloseCode, Event};
use pulse_smol::{ClientEvent, ReconnectingClient};
use pulse_tests::held::{adaptive_client_config, HeldServer, BOUND, IDLE};

/// `future`, or a panic after [`BOUND`].
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    futures_lite::future::or(future, async {
        Timer::after(BOUND).await;
        panic!("{what}: not within {BOUND:?}")
    })
    .await
}

#[test]
fn a_message_held_over_a_forgotten_path_comes_back_from_the_connection() {
    let server = HeldServer::start();
    smol::block_on(async {
        let (conn, driver) = pulse_smol::connect(server.addr(), adaptive_client_config())
            .await
            .expect("connect");
        smol::spawn(driver).detach();
        bounded("the handshake", conn.connected()).await.expect("connected");
        assert!(conn.take_unsent().is_empty(), "nothing before the end");
        Timer::after(IDLE).await;
        conn.send(7, "held").await.expect("taken by the session");
        let mut sent = vec![(7, Bytes::from("held"))];
        // The reset may beat this one (then refused, and not handed back).
        if conn.send(8, "behind it").await.is_ok() {
            sent.push((8, Bytes::from("behind it")));
        }
        let closed = bounded("the reset", conn.closed()).await;
        assert_eq!(closed.code, CloseCode::LOST, "{closed}");
        assert_eq!(conn.take_unsent(), sent, "{closed}");
        assert!(conn.take_unsent().is_empty(), "taken once");
    });
    assert_eq!(server.resets(), 1);
    assert!(server.wait_for_messages(0).is_empty(), "the peer saw none of them");
}

#[test]
fn a_reconnecting_client_sends_what_its_lost_connection_held_first_on_the_next() {
    let server = HeldServer::start();
    let backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
    let (client, supervisor) = ReconnectingClient::builder(server.addr(), adaptive_client_config())
        .backoff(backoff)
        .build();
    let supervisor = smol::spawn(supervisor);
    smol::block_on(async {
        let connected = || async {
            loop {
                match client.recv().await {
                    ClientEvent::Event(Event::Connected(_)) => break,
                    event => assert!(!event.is_ending(), "{event:?}"),
                }
            }
        };
        bounded("the first connection", connected()).await;
        Timer::after(IDLE).await;
        client.send(7, "held").await.expect("taken by the session");
        bounded("the next connection", connected()).await;
        client.send(8, "newer").await.expect("sent on the next connection");
    });
    let received = server.wait_for_messages(2);
    let tags: Vec<u16> = received.iter().map(|(_, tag, _)| *tag).collect();
    assert_eq!(tags, [7, 8], "{received:?}");
    assert_eq!(received[0].0, received[1].0, "both on the next connection");
    assert_eq!(server.resets(), 1);
    smol::block_on(async {
        client.close().await;
        supervisor.await;
    });
    assert!(client.take_unsent().is_empty(), "all delivered");
}
