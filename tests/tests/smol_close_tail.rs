//! pulse-smol at the end of a graceful close (as tokio_review_close and
//! tokio_review_reset check of pulse-tokio): the transport outlives the
//! session until its last bytes are out, and, after a graceful close,
//! until the peer ended its side.
//! - A stream that buffers (TLS) holds bytes the session counted as sent:
//!   dropped after one poll of its close, it loses the answer's last
//!   messages and its CLOSE.
//! - A TCP socket closed with bytes unread answers with a reset, which
//!   throws away what the kernel had not yet sent.

use std::time::Duration;

use bytes::Bytes;
use futures_lite::future;
use pulse_proto::{CloseCode, Closed, Config, Initiator};
use pulse_smol::{Connection, Event, Listener};
use pulse_tests::after_close;
use pulse_tests::buffering::Buffering;

/// A bug fails the test instead of hanging it.
fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(Duration::from_secs(40)).await;
        None
    }))
    .expect("test timed out")
}

const CHUNK: usize = 64 * 1024;
/// 32 MiB: more than the pipe, the stream's buffer, the queue and the
/// receive buffer hold together.
const CHUNKS: u32 = 512;

fn config() -> Config {
    Config::default()
        .with_timing(Duration::from_millis(500), Duration::from_secs(5))
        .with_max_queued_bytes(4 * 1024 * 1024)
        .with_close_timeout(Duration::from_secs(20))
}

/// Numbered messages from `next` on, read slowly, until the close.
async fn read_from(conn: &Connection, mut next: u32) -> (u32, Closed) {
    loop {
        match conn.recv().await {
            Event::Message { payload, .. } => {
                assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), next);
                next += 1;
                if next % 16 == 0 {
                    // A slow reader: the sender's stream stays full.
                    async_io::Timer::after(Duration::from_millis(20)).await;
                }
            }
            Event::Closed(closed) => return (next, closed),
            _ => {}
        }
    }
}

#[test]
fn the_answering_side_delivers_its_whole_backlog_through_a_stream_that_buffers() {
    bounded(async {
        // A Unix socket pair with small buffers, full whenever the client
        // does not read; the server's stream holds up to 64 KiB more.
        let (near, far) = std::os::unix::net::UnixStream::pair().unwrap();
        socket2::SockRef::from(&near).set_send_buffer_size(4096).unwrap();
        socket2::SockRef::from(&far).set_recv_buffer_size(4096).unwrap();
        let near = Buffering::new(async_io::Async::new(near).unwrap(), 64 * 1024);
        let (server, server_driver) = Connection::server(near, config()).unwrap();
        smol::spawn(server_driver).detach();
        let (client, client_driver) = Connection::client(async_io::Async::new(far).unwrap(), config())
            .await
            .unwrap();
        smol::spawn(client_driver).detach();
        server.connected().await.unwrap();
        // The client keeps little unread: the pipe stays full.
        client.set_recv_buffer(16 * 1024);
        let sending = smol::spawn(async move {
            let mut taken = 0;
            while taken < CHUNKS {
                let mut chunk = vec![0u8; CHUNK];
                chunk[..4].copy_from_slice(&taken.to_be_bytes());
                if server.send(9, Bytes::from(chunk)).await.is_err() {
                    break;
                }
                taken += 1;
            }
            (taken, server.closed().await)
        });
        let (first, _) = loop {
            if let Event::Message { payload, .. } = client.recv().await {
                break (payload, ());
            }
        };
        assert_eq!(&first[..4], &0u32.to_be_bytes());
        let closing = smol::spawn({
            let client = client.clone();
            async move { client.close(CloseCode::NORMAL, "done").await }
        });
        let (arrived, closed) = read_from(&client, 1).await;
        let (taken, server_end) = sending.await;
        println!("{taken} taken, {arrived} arrived: {closed}; the server: {server_end}");
        assert!(taken > 1 && taken < CHUNKS, "the close came after {taken} messages");
        assert_eq!(arrived, taken, "messages lost in the answer to a close: {closed}");
        assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Local));
        closing.await.unwrap();
    });
}

#[test]
fn bytes_left_unread_at_the_end_do_not_reset_away_the_answer() {
    // The server's backlog waits in its session: the client's frame
    // after its CLOSE arrives while the server still sends, not read.
    reset_scenario(4096);
}

#[test]
fn bytes_sent_after_the_server_is_done_do_not_reset_away_its_tail() {
    // The backlog fits the server's send buffer: its session is done at
    // once, its tail still in the kernel when the client's frame comes.
    reset_scenario(4 << 20);
}

/// A raw client that sends a frame after its CLOSE (`after_close`),
/// against a server whose accepted sockets have a `send_buffer`.
fn reset_scenario(send_buffer: usize) {
    const BACKLOG: u32 = 64;
    bounded(async {
        let listener = Listener::from_std(
            after_close::listener_with_send_buffer(send_buffer),
            after_close::config(),
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let raw = std::thread::spawn(move || after_close::client(addr));
        let (server, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        server.connected().await.unwrap();
        while server.try_recv().is_some() {}
        // Reading pauses at the first unread message: the client's CLOSE,
        // in the same read, is seen; what comes after is not read.
        server.set_recv_buffer(1);
        let mut queued = 0;
        while queued < BACKLOG {
            if server
                .send(9, Bytes::from(vec![queued as u8; 16 * 1024]))
                .await
                .is_err()
            {
                break;
            }
            queued += 1;
        }
        let seen = smol::unblock(move || raw.join().unwrap()).await;
        println!("queued {queued}: {seen:?}");
        assert!(seen.closed.is_some(), "no CLOSE from the server: {seen:?}");
        assert_eq!(seen.messages, queued, "{seen:?}");
    });
}
