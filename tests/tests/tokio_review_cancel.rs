//! Review of pulse-tokio (issue 13): the documented cancel safety, under
//! `tokio::select!` as applications use it. A `recv` or `send` that loses
//! the race must lose nothing and send nothing twice; dropping a half, or
//! a send in flight, must not close a connection another handle still
//! uses.

mod tokio_common;

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use pulse_tokio::{connect, Event};
use tokio_common::{bounded, config, listening};

const MESSAGES: u32 = 20_000;

/// Polls `f` once: whether it finished.
async fn finishes_now(f: impl Future) -> bool {
    let mut f = pin!(f);
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_ready())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_and_send_that_lose_a_select_lose_nothing_and_send_nothing_twice() {
    bounded(async {
        let (listener, addr) = listening().await;
        // A small queue, so sends wait often and lose many races.
        let small = (*config(1000, 3000)).clone().with_max_queued_bytes(4096);
        let (client, accepted) = tokio::join!(connect(addr, small), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        let sender = tokio::spawn(async move {
            let mut i = 0u32;
            let mut lost_races = 0u32;
            while i < MESSAGES {
                let payload = Bytes::from(i.to_be_bytes().repeat(64));
                tokio::select! {
                    sent = client.send(1, payload) => {
                        sent.unwrap();
                        i += 1;
                    }
                    () = tokio::task::yield_now() => lost_races += 1,
                }
            }
            (client, lost_races)
        });
        let mut next = 0u32;
        let mut lost_races = 0u32;
        let mut tick = tokio::time::interval(Duration::from_micros(50));
        while next < MESSAGES {
            tokio::select! {
                event = server.recv() => match event {
                    Event::Message { payload, .. } => {
                        let got = u32::from_be_bytes(payload[..4].try_into().unwrap());
                        assert_eq!(got, next, "a message lost or repeated");
                        assert_eq!(payload.len(), 256);
                        next += 1;
                    }
                    Event::Closed(closed) => panic!("{closed} after {next}"),
                    _ => {}
                },
                _ = tick.tick() => lost_races += 1,
            }
        }
        let (client, sender_lost) = sender.await.unwrap();
        println!("recv lost {lost_races} races, send {sender_lost}");
        assert!(sender_lost > 0, "no send was ever cancelled: the test tested nothing");
        // Nothing more came: every cancelled send queued nothing.
        client.send(2, "end").await.unwrap();
        loop {
            match server.recv().await {
                Event::Message { tag, .. } => break assert_eq!(tag, 2, "a cancelled send went out"),
                Event::Closed(closed) => panic!("{closed}"),
                _ => {}
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_half_or_a_waiting_send_leaves_the_connection_to_the_other_half() {
    bounded(async {
        let small = pulse_proto::Config::default().with_max_queued_bytes(16 * 1024);
        let (listener, addr) = listening().await;
        let (client, accepted) = tokio::join!(connect(addr, small), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        server.set_recv_buffer(1);
        let (tx, rx) = client.split();
        // A send that waits (the server reads nothing), then dropped.
        let chunk = Bytes::from(vec![1u8; 8 * 1024]);
        let mut waited = false;
        for _ in 0..10_000 {
            if !finishes_now(tx.send(1, chunk.clone())).await {
                waited = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(waited, "send never waited");
        drop(tx);
        // The receiving half still has the connection.
        server.set_recv_buffer(pulse_tokio::DEFAULT_RECV_BUFFER);
        server.send(3, "to the receiving half").await.unwrap();
        loop {
            match rx.recv().await {
                Event::Message { tag, .. } => break assert_eq!(tag, 3),
                Event::Closed(closed) => panic!("dropping the sending half closed it: {closed}"),
                _ => {}
            }
        }
        assert!(!rx.connection().is_closed());
        // The last half going closes it, and the peer hears it.
        drop(rx);
        let closed = loop {
            if let Event::Closed(closed) = server.recv().await {
                break closed;
            }
        };
        assert_eq!(closed.code, pulse_proto::CloseCode::NORMAL, "{closed}");
    })
    .await;
}
