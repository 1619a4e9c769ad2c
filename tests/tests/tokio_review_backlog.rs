//! Review of pulse-tokio (issue 13): what an application that does not
//! read may be made to hold. The receive buffer bounds unread messages by
//! their payload; a peer sending empty messages must not get around it.

mod tokio_common;

use std::time::{Duration, Instant};

use pulse_tokio::{connect, Event};
use tokio_common::{bounded, listening};

/// Empty messages the peer sends: 400 KB on the wire, all of it queued at
/// once by the sender (its queue holds 1 MiB).
const FLOOD: u32 = 100_000;
/// Unread bytes the receiving application allows.
const RECV_BUFFER: usize = 64 * 1024;

/// How many messages `count` says were handed over, once it stopped
/// growing for `quiet` (or reached `all`), within 20 s.
async fn settled(count: impl Fn() -> u64, all: u64, quiet: Duration) -> u64 {
    let started = Instant::now();
    let (mut last, mut since) = (count(), Instant::now());
    while last < all && since.elapsed() < quiet && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    last
}

#[tokio::test]
async fn empty_messages_cannot_grow_an_unread_backlog_past_the_receive_buffer() {
    bounded(async {
        let (listener, addr) = listening().await;
        let (client, accepted) = tokio::join!(connect(addr, tokio_common::config(1000, 3000)), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        server.set_recv_buffer(RECV_BUFFER);
        for i in 0..FLOOD {
            client.send(i as u16, bytes::Bytes::new()).await.unwrap();
        }
        // The server's application reads nothing: the driver must stop
        // reading once the unread backlog is worth the receive buffer. A
        // message costs the backlog its slot, whatever its payload; one
        // read's worth of frames (64 KiB of 4-byte frames) may land beyond.
        let taken = settled(
            || server.stats().data_received,
            u64::from(FLOOD),
            Duration::from_secs(1),
        )
        .await;
        let most = (RECV_BUFFER / std::mem::size_of::<Event>() + 64 * 1024 / 4 + 1) as u64;
        assert!(
            taken <= most,
            "{taken} empty messages taken unread (at most {most}): the receive buffer did not bound them"
        );
        // Backpressure, not loss: a reader then gets every one, in order.
        let mut got = 0;
        while got < FLOOD {
            match server.recv().await {
                Event::Message { tag, payload } => {
                    assert_eq!((tag, payload.len()), (got as u16, 0));
                    got += 1;
                }
                Event::Closed(closed) => panic!("{closed} after {got} messages"),
                _ => {}
            }
        }
        assert!(!client.is_closed() && !server.is_closed());
    })
    .await;
}
