//! pulse-tokio's reconnecting client over real sockets on 127.0.0.1: a
//! server that restarts, a server that is not there, and stopping.

mod tokio_common;

use std::time::Duration;

use pulse_proto::{Backoff, CloseCode, Initiator};
use pulse_tokio::{ClientEvent, Error, Event, Listener, ReconnectingClient};
use tokio_common::{bounded, config, message_or_end};

const MS: Duration = Duration::from_millis(1);

/// Reads the client's events until `wanted` says one is what it waits for.
async fn until(client: &ReconnectingClient, mut wanted: impl FnMut(&ClientEvent) -> bool) -> ClientEvent {
    loop {
        let event = client.recv().await;
        if wanted(&event) {
            return event;
        }
        assert!(!event.is_ending(), "the client ended: {event:?}");
    }
}

#[tokio::test]
async fn the_client_comes_back_after_the_server_restarts_on_its_port() {
    bounded(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backoff = Backoff::new(MS * 50, MS * 200).with_seed(3);
        let client = ReconnectingClient::new(addr, config(200, 1000), backoff);
        let (first, _) = listener.accept().await.unwrap();
        until(&client, |e| matches!(e, ClientEvent::Event(Event::Connected(_)))).await;
        assert!(client.is_connected());
        assert_eq!(client.peer_addr(), Some(addr));
        client.send(1, "before").await.unwrap();
        assert_eq!(message_or_end(&first).await.unwrap().0, 1);
        // The server goes away: its listener and its connection.
        drop(listener);
        first.close(CloseCode::GOING_AWAY, "restarting").await.unwrap();
        let ClientEvent::Lost { error, retry_in } = until(&client, |e| matches!(e, ClientEvent::Lost { .. })).await
        else {
            unreachable!()
        };
        let Error::Closed(closed) = &*error else {
            panic!("{error}")
        };
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::GOING_AWAY, Initiator::Peer)
        );
        assert!(retry_in <= MS * 50, "{retry_in:?}");
        // It comes back on the same port, and the client with it.
        let listener = Listener::bind(addr, config(200, 1000)).await.unwrap();
        let (second, _) = listener.accept().await.unwrap();
        until(&client, |e| matches!(e, ClientEvent::Event(Event::Connected(_)))).await;
        client.send(2, "after").await.unwrap();
        assert_eq!(message_or_end(&second).await.unwrap().0, 2);
        // Stopping closes the connection gracefully, and the client ends.
        client.close().await;
        assert!(matches!(client.recv().await, ClientEvent::Event(Event::Closed(_))));
        assert!(matches!(client.recv().await, ClientEvent::Stopped));
        assert!(matches!(client.recv().await, ClientEvent::Stopped), "the ending stays");
        let seen = second.closed().await;
        assert_eq!((seen.code, seen.initiator), (CloseCode::NORMAL, Initiator::Peer));
    })
    .await;
}

#[tokio::test]
async fn a_client_whose_server_never_answers_gives_up_after_its_attempts() {
    bounded(async {
        // A port that was just free: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let backoff = Backoff::new(MS * 10, MS * 40).with_seed(5).with_max_attempts(3);
        let client = ReconnectingClient::new(addr, config(200, 1000), backoff);
        let mut connecting = 0;
        let mut lost = 0;
        let ending = loop {
            match client.recv().await {
                ClientEvent::Connecting { attempt } => {
                    connecting += 1;
                    assert_eq!(attempt, connecting);
                }
                ClientEvent::Lost { error, .. } => {
                    lost += 1;
                    assert!(matches!(&*error, Error::Io(_)), "{error}");
                }
                event => break event,
            }
        };
        assert!(matches!(ending, ClientEvent::GaveUp { .. }), "{ending:?}");
        assert_eq!((connecting, lost), (4, 3), "three retries after the first attempt");
        assert!(client.send(1, "nobody").await.is_err());
    })
    .await;
}
