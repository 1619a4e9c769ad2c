//! Review of pulse-tokio (issue 13): a graceful close with a full socket
//! loses nothing. Every message queued before the close arrives, then the
//! CLOSE (PROTOCOL.md §8.2), whether the closing side or the answering
//! side holds the backlog, and however slowly the other side reads.
//! Over TCP, and over TLS, which keeps bytes of its own between the
//! session and the socket. (pulse-mio's `close_drains.rs` checks the same
//! of pulse-mio.)

mod tokio_common;

use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{CloseCode, Closed, Config, Initiator};
use pulse_tests::buffering::Buffering;
use pulse_tests::tls::{localhost, tokio_connector, Identity};
use pulse_tokio::{connect, Connection, Event, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio_common::bounded;

const CHUNK: usize = 64 * 1024;
/// 32 MiB: more than the socket buffers, the queue and the receive
/// buffer hold together.
const CHUNKS: u32 = 512;

fn config() -> Config {
    Config::default()
        .with_timing(Duration::from_millis(500), Duration::from_secs(5))
        .with_max_queued_bytes(4 * 1024 * 1024)
        .with_close_timeout(Duration::from_secs(20))
}

/// Queues `CHUNKS` numbered messages as fast as the queue takes them, or
/// until the connection refuses more (it is closing): how many it took.
async fn send_all(conn: &Connection) -> u32 {
    for i in 0..CHUNKS {
        let mut chunk = vec![(i % 251) as u8; CHUNK];
        chunk[..4].copy_from_slice(&i.to_be_bytes());
        if conn.send(9, Bytes::from(chunk)).await.is_err() {
            return i;
        }
    }
    CHUNKS
}

/// Reads, slowly at first, every message until the close: how many came,
/// intact and in order, and how it ended.
async fn read_all(conn: &Connection) -> (u32, Closed) {
    let mut next = 0u32;
    loop {
        match conn.recv().await {
            Event::Message { payload, .. } => {
                assert_eq!(payload.len(), CHUNK);
                assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), next);
                assert!(payload[4..].iter().all(|&b| b == (next % 251) as u8));
                next += 1;
                if next % 16 == 0 {
                    // A slow reader: the sender's socket stays full.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Event::Closed(closed) => return (next, closed),
            _ => {}
        }
    }
}

async fn pair(tls: bool) -> (Connection, Connection) {
    if tls {
        return tls_pair().await;
    }
    let listener = Listener::bind("127.0.0.1:0", config()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(connect(addr, config()), listener.accept());
    let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
    server.connected().await.unwrap();
    (client, server)
}

/// A client and a server connection over tokio-rustls.
async fn tls_pair() -> (Connection, Connection) {
    let identity = Identity::localhost();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = identity.tokio_acceptor();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        Connection::server(acceptor.accept(tcp).await.unwrap(), config()).unwrap()
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_connector(&identity.cert).connect(localhost(), tcp).await.unwrap();
    let client = Connection::client(tls, config()).await.unwrap();
    let server = server.await.unwrap();
    server.connected().await.unwrap();
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closing_side_delivers_its_whole_backlog_before_its_close() {
    bounded(closing_side(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closing_side_delivers_its_whole_backlog_before_its_close_over_tls() {
    bounded(closing_side(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answering_side_delivers_its_whole_backlog_before_its_answer() {
    bounded(answering_side(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answering_side_delivers_its_whole_backlog_before_its_answer_over_tls() {
    bounded(answering_side(true)).await;
}

async fn closing_side(tls: bool) {
    {
        let (client, server) = pair(tls).await;
        // The server queues 32 MiB and closes at once, its socket full.
        let closing = tokio::spawn(async move {
            assert_eq!(send_all(&server).await, CHUNKS);
            server.close(CloseCode::GOING_AWAY, "restart").await.unwrap()
        });
        let (got, closed) = read_all(&client).await;
        assert_eq!(got, CHUNKS, "messages lost in the close");
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::GOING_AWAY, Initiator::Peer)
        );
        let ours = closing.await.unwrap();
        assert_eq!(
            (ours.code, ours.initiator),
            (CloseCode::GOING_AWAY, Initiator::Local),
            "{ours}"
        );
    }
}

async fn answering_side(tls: bool) {
    {
        let (client, server) = pair(tls).await;
        // The server queues 32 MiB; the client closes while it arrives,
        // and keeps reading until the server's answer (§8.2).
        let sending = tokio::spawn(async move {
            let taken = send_all(&server).await;
            (taken, server.closed().await)
        });
        let first = loop {
            if let Event::Message { payload, .. } = client.recv().await {
                break payload;
            }
        };
        assert_eq!(&first[..4], &0u32.to_be_bytes());
        let closing = tokio::spawn({
            let client = client.clone();
            async move { client.close(CloseCode::NORMAL, "done").await.unwrap() }
        });
        // The rest, after the first.
        let (rest, closed) = read_all_from(&client, 1).await;
        let (taken, server_end) = sending.await.unwrap();
        assert_eq!(
            (server_end.code, server_end.initiator),
            (CloseCode::NORMAL, Initiator::Peer)
        );
        assert!(taken > 1 && taken < CHUNKS, "the close came after {taken} messages");
        assert_eq!(rest, taken, "messages lost in the answer to a close: {closed}");
        assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Local));
        closing.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answering_side_delivers_its_whole_backlog_through_a_stream_that_buffers() {
    bounded(async {
        // A 4 KiB pipe, full whenever the client does not read; the
        // server's stream holds up to 64 KiB more, as TLS does.
        let (near, far) = tokio::io::duplex(4096);
        let server = Connection::server(Buffering::new(near, 64 * 1024), config()).unwrap();
        let client = Connection::client(far, config()).await.unwrap();
        server.connected().await.unwrap();
        // The client keeps little unread: the pipe stays full.
        client.set_recv_buffer(16 * 1024);
        let sending = tokio::spawn(async move {
            let taken = send_all(&server).await;
            (taken, server.closed().await)
        });
        let first = loop {
            if let Event::Message { payload, .. } = client.recv().await {
                break payload;
            }
        };
        assert_eq!(&first[..4], &0u32.to_be_bytes());
        let closing = tokio::spawn({
            let client = client.clone();
            async move { client.close(CloseCode::NORMAL, "done").await.unwrap() }
        });
        let (rest, closed) = read_all_from(&client, 1).await;
        let (taken, server_end) = sending.await.unwrap();
        println!("{taken} taken, {rest} arrived: {closed}; the server: {server_end}");
        assert!(taken > 1 && taken < CHUNKS, "the close came after {taken} messages");
        assert_eq!(rest, taken, "messages lost in the answer to a close: {closed}");
        assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Local));
        closing.await.unwrap();
    })
    .await;
}

/// [`read_all`], from message `next` on.
async fn read_all_from(conn: &Connection, mut next: u32) -> (u32, Closed) {
    loop {
        match conn.recv().await {
            Event::Message { payload, .. } => {
                assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), next);
                next += 1;
                if next % 16 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Event::Closed(closed) => return (next, closed),
            _ => {}
        }
    }
}
