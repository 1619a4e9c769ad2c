//! Review of pulse-tokio (issue 13): what pulse-smol's listener and
//! halves offer, pulse-tokio offers too — `Listener::incoming`,
//! `SendHalf::rtt`, `RecvHalf::try_recv`, and `RecvHalf` clones.

mod tokio_common;

use bytes::Bytes;
use futures_lite::StreamExt;
use pulse_tokio::{connect, Event, Listener};
use tokio_common::{bounded, config, message_or_end};

#[tokio::test]
async fn a_listener_yields_its_connections_as_a_stream() {
    bounded(async {
        let listener = Listener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = tokio::spawn(async move {
            let mut clients = Vec::new();
            for i in 0..3u16 {
                let conn = connect(addr, config(200, 1000)).await.unwrap();
                conn.send(i, "hello").await.unwrap();
                clients.push(conn);
            }
            clients
        });
        let mut incoming = listener.incoming();
        let mut tags = Vec::new();
        while tags.len() < 3 {
            let conn = incoming.next().await.unwrap().unwrap();
            assert!(conn.peer_addr().is_ok());
            let (tag, payload) = message_or_end(&conn).await.unwrap();
            assert_eq!(payload, Bytes::from_static(b"hello"));
            tags.push(tag);
        }
        assert_eq!(tags, [0, 1, 2]);
        drop(clients.await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn halves_have_rtt_try_recv_and_clones() {
    bounded(async {
        let (listener, addr) = tokio_common::listening().await;
        let (client, accepted) = tokio::join!(connect(addr, config(100, 1000)), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        let (tx, rx) = client.split();
        assert!(rx.try_recv().is_some(), "the Connected event waits");
        // A heartbeat's round trip, seen from the sending half.
        while tx.rtt().is_none() {
            let _ = rx.recv().await;
        }
        // A clone reads the same connection; dropping one keeps it open.
        let rx2 = rx.clone();
        drop(rx);
        server.send(4, "to a clone").await.unwrap();
        loop {
            match rx2.recv().await {
                Event::Message { tag, .. } => break assert_eq!(tag, 4),
                Event::Closed(closed) => panic!("{closed}"),
                _ => {}
            }
        }
        assert!(!tx.connection().is_closed());
    })
    .await;
}
