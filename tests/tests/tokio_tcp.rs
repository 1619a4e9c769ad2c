//! pulse-tokio over real TCP sockets on 127.0.0.1, client and server in
//! one process: messages, a peer that is not pulse, closing, an
//! application that never reads, and backpressure.

mod tokio_common;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::StreamExt;
use pulse_proto::{CloseCode, Config, Initiator, ProtocolError, Role, Session};
use pulse_tokio::{connect, Event, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_common::{bounded, config, echo_server, listening, message_or_end};

/// `count` messages from 0 to `max` bytes, each filled with its index.
fn messages(count: u16, max: usize) -> Vec<(u16, Bytes)> {
    (0..count)
        .map(|i| (i, Bytes::from(vec![i as u8; usize::from(i) * 7919 % (max + 1)])))
        .collect()
}

#[tokio::test]
async fn messages_of_many_sizes_arrive_intact_and_in_order_through_the_stream_half() {
    bounded(async {
        let addr = echo_server(config(1000, 3000)).await;
        let conn = connect(addr, config(1000, 3000)).await.unwrap();
        let (tx, rx) = conn.split();
        let sent = messages(3000, 64 * 1024);
        let to_send = sent.clone();
        tokio::spawn(async move {
            for (tag, payload) in to_send {
                tx.send(tag, payload).await.unwrap();
            }
        });
        // The receiving half as a `Stream`, with a combinator library.
        let mut rx = rx;
        let mut back = Vec::new();
        while back.len() < sent.len() {
            match rx.next().await.expect("the stream ended early") {
                Event::Message { tag, payload } => back.push((tag, payload)),
                Event::Closed(closed) => panic!("{closed:?}"),
                _ => {}
            }
        }
        assert!(back == sent, "a message came back changed or out of order");
    })
    .await;
}

#[tokio::test]
async fn an_http_client_gets_a_closed_connection_and_the_server_keeps_serving() {
    bounded(async {
        let (listener, addr) = listening().await;
        let http = tokio::task::spawn_blocking(move || pulse_tests::http_get(addr));
        let (bad, _) = listener.accept().await.unwrap();
        let Event::Closed(closed) = bad.recv().await else {
            panic!("expected a close")
        };
        assert_eq!(closed.code, CloseCode::PROTOCOL_ERROR);
        assert!(matches!(closed.error, Some(ProtocolError::BadMagic { .. })));
        let answer = http.await.unwrap();
        assert!(answer.starts_with(&pulse_proto::frame::MAGIC), "{answer:?}");
        // A real client is still served.
        let client = tokio::spawn(async move {
            let conn = connect(addr, config(1000, 3000)).await.unwrap();
            conn.send(5, "still here").await.unwrap();
            conn.closed().await
        });
        let (good, _) = listener.accept().await.unwrap();
        assert_eq!(
            message_or_end(&good).await,
            Some((5, Bytes::from_static(b"still here")))
        );
        drop(good);
        let seen = client.await.unwrap();
        assert_eq!((seen.code, seen.initiator), (CloseCode::NORMAL, Initiator::Peer));
    })
    .await;
}

#[tokio::test]
async fn a_graceful_close_reaches_the_peer_with_its_code_and_reason() {
    bounded(async {
        let (listener, addr) = listening().await;
        let client = tokio::spawn(async move {
            let conn = connect(addr, config(1000, 3000)).await.unwrap();
            assert_eq!(conn.peer_addr().unwrap(), addr);
            conn.send(1, "bye").await.unwrap();
            conn.close(CloseCode::GOING_AWAY, "done").await.unwrap()
        });
        let (conn, peer) = listener.accept().await.unwrap();
        assert_eq!(conn.local_addr().unwrap(), addr);
        assert_eq!(conn.peer_addr().unwrap(), peer);
        assert_eq!(message_or_end(&conn).await, Some((1, Bytes::from_static(b"bye"))));
        let seen = conn.closed().await;
        assert_eq!(
            (seen.code, seen.initiator, seen.reason.as_str()),
            (CloseCode::GOING_AWAY, Initiator::Peer, "done")
        );
        let mine = client.await.unwrap();
        assert_eq!((mine.code, mine.initiator), (CloseCode::GOING_AWAY, Initiator::Local));
        assert!(pulse_tokio::counters().opened >= 2);
    })
    .await;
}

#[tokio::test]
async fn a_server_that_never_reads_keeps_its_connection_alive() {
    bounded(async {
        let listener = Listener::bind("127.0.0.1:0", config(100, 400)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(connect(addr, config(100, 400)), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        // The server's application never reads. Ten round trips at a
        // 100 ms interval: 1 s, two and a half dead timeouts.
        let mut rtts = 0;
        while rtts < 10 {
            match client.recv().await {
                Event::Rtt(_) => rtts += 1,
                Event::Closed(closed) => panic!("{closed:?}"),
                _ => {}
            }
        }
        assert!(!server.is_closed() && !client.is_closed());
        assert!(server.stats().pongs_sent >= 10, "{:?}", server.stats());
    })
    .await;
}

/// A peer driven by hand: it completes the handshake, then says nothing
/// more and keeps its socket open, as a hung process does.
async fn hung_peer(listener: tokio::net::TcpListener, config: Arc<Config>) {
    let (mut stream, _) = listener.accept().await.unwrap();
    let clock = pulse_driver::clock::now;
    let mut session = Session::new(config, Role::Server, clock(), 1).unwrap();
    let mut input = vec![0u8; 4096];
    loop {
        let read = stream.read(&mut input).await.unwrap();
        assert!(read > 0, "the client left during the handshake");
        session.handle_input(clock(), &input[..read]);
        let mut output = Vec::new();
        while let Some(frame) = session.poll_transmit(clock()) {
            output.extend_from_slice(frame);
            let sent = frame.len();
            session.advance_transmit(sent);
        }
        stream.write_all(&output).await.unwrap();
        if session.negotiated().is_some() {
            break;
        }
    }
    // Hung: until the client gives up on us.
    while stream.read(&mut input).await.is_ok_and(|n| n > 0) {}
}

#[tokio::test]
async fn an_application_that_never_reads_learns_of_a_dead_peer_at_the_timeout() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(hung_peer(listener, config(100, 500)));
        let conn = connect(addr, config(100, 500)).await.unwrap();
        let opened = Instant::now();
        // No `recv`: the driver task convicts by itself.
        let closed = conn.closed().await;
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::TIMED_OUT, Initiator::Local)
        );
        let after = opened.elapsed();
        assert!(after >= Duration::from_millis(500), "convicted early: {after:?}");
        assert!(after < Duration::from_millis(1500) * 3, "convicted late: {after:?}");
        assert!(conn.is_closed());
        peer.await.unwrap();
    })
    .await;
}

/// Polls `f` once: whether it finished.
async fn finishes_now(f: impl Future) -> bool {
    let mut f = pin!(f);
    poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx).is_ready())).await
}

#[tokio::test]
async fn send_waits_while_the_queue_is_full_and_a_fast_reader_then_gets_everything() {
    bounded(async {
        let small_queue = Config::default().with_max_queued_bytes(64 * 1024);
        let (listener, addr) = listening().await;
        let (client, accepted) = tokio::join!(connect(addr, small_queue), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        // The server reads nothing yet, and keeps at most 16 KiB unread:
        // TCP's buffers fill, then the client's queue.
        server.set_recv_buffer(16 * 1024);
        let chunk = Bytes::from(vec![7u8; 16 * 1024]);
        let mut sent = 0u32;
        let mut waited = false;
        for _ in 0..100_000 {
            if !finishes_now(client.send(1, chunk.clone())).await {
                waited = true;
                break;
            }
            sent += 1;
            tokio::task::yield_now().await; // the drivers run
        }
        assert!(waited, "send never waited ({sent} messages queued)");
        // Bounded: the queue, and what the kernel holds.
        assert!(u64::from(sent) * 16 < 64 + 16 * 1024, "{sent} messages before waiting");
        // Now a fast reader: everything arrives, in order, and the
        // waiting sender goes on.
        let last = tokio::spawn({
            let client = client.clone();
            async move { client.send(2, "last").await }
        });
        let mut got = 0;
        loop {
            match message_or_end(&server).await {
                Some((1, payload)) => {
                    assert_eq!(payload.len(), 16 * 1024);
                    got += 1;
                }
                Some((2, _)) => break,
                other => panic!("{other:?} after {got}"),
            }
        }
        assert_eq!(got, sent);
        last.await.unwrap().unwrap();
        assert!(!client.is_closed() && !server.is_closed());
    })
    .await;
}
