//! Review of pulse-tokio (issue 13): a peer that floods DATA and never
//! reads keeps its socket readable every turn. The driver's timer must
//! still run: such a peer is closed as a slow reader, and a graceful close
//! gives up after `close_timeout` on a peer that floods instead of
//! answering, whether the application reads everything or nothing.
//! (pulse-mio's `flooding_peer.rs` checks the same of pulse-mio.)

mod tokio_common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_proto::frame::Frame;
use pulse_proto::{CloseCode, Closed, Config, Instant as ProtoInstant, Role, Session};
use pulse_tokio::{Connection, Event, Listener};
use tokio_common::bounded;

/// A client that says HELLO, then writes DATA as fast as the socket takes
/// it, and never reads.
fn flood(addr: SocketAddr, config: Arc<Config>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut session = Session::new(config, Role::Client, ProtoInstant::ZERO, 1).unwrap();
        let hello = session.poll_transmit(ProtoInstant::ZERO).unwrap().to_vec();
        stream.write_all(&hello).unwrap();
        let mut data = Vec::new();
        for _ in 0..16 {
            Frame::Data {
                tag: 1,
                payload: Bytes::from(vec![7u8; 4096]),
            }
            .encode(&mut data);
        }
        stream.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        // Whole frames, however the writes split them.
        let mut at = 0;
        while !stop.load(Ordering::Relaxed) {
            match stream.write(&data[at..]) {
                Ok(n) => at = (at + n) % data.len(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return, // closed by the server
            }
        }
    })
}

/// What the server's application does with the flooded connection.
#[derive(Clone, Copy, Debug)]
enum App {
    /// Fills its output queue and reads (and drops) every message.
    SendsAndReads,
    /// Fills its output queue and reads nothing.
    SendsOnly,
    /// Closes gracefully at once, then reads every message.
    ClosesAndReads,
    /// Closes gracefully at once and reads nothing.
    ClosesOnly,
}

async fn run(conn: Connection, app: App) -> Closed {
    // Past the handshake: a close during it ends at once.
    conn.connected().await.unwrap();
    let reads = matches!(app, App::SendsAndReads | App::ClosesAndReads);
    if matches!(app, App::ClosesAndReads | App::ClosesOnly) {
        let closing = conn.clone();
        tokio::spawn(async move { closing.close(CloseCode::NORMAL, "bye").await });
    } else {
        let sending = conn.clone();
        tokio::spawn(async move {
            let chunk = Bytes::from(vec![0u8; 16 * 1024]);
            while sending.send(1, chunk.clone()).await.is_ok() {}
        });
    }
    if reads {
        loop {
            if let Event::Closed(closed) = conn.recv().await {
                return closed;
            }
        }
    }
    conn.closed().await
}

/// How long the server's connection lasted against the flood.
async fn closed_within(app: App, config: Arc<Config>) -> (Duration, Closed) {
    let listener = Listener::bind("127.0.0.1:0", config.clone()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(listener.local_addr().unwrap(), config, stop.clone());
    let (conn, _) = listener.accept().await.unwrap();
    let started = Instant::now();
    let closed = bounded(run(conn, app)).await;
    let after = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || flooder.join())
        .await
        .unwrap()
        .unwrap();
    println!("{app:?}: closed after {after:?}: {closed}");
    (after, closed)
}

/// Interval 200 ms, timeout 600 ms: a peer that took nothing for that
/// long is a slow reader; 5 s is more than 8 times that.
fn slow_reader_config() -> Arc<Config> {
    Arc::new(
        Config::default()
            .with_timing(Duration::from_millis(200), Duration::from_millis(600))
            .with_max_queued_bytes(256 * 1024)
            .with_close_timeout(Duration::from_millis(500)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_floods_and_never_reads_is_closed_as_a_slow_reader_while_the_application_reads() {
    let (after, closed) = closed_within(App::SendsAndReads, slow_reader_config()).await;
    assert_eq!(closed.code, CloseCode::SLOW_READER, "{closed}");
    assert!(after < Duration::from_secs(5), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_floods_and_never_reads_is_closed_as_a_slow_reader_while_the_application_reads_nothing() {
    let (after, closed) = closed_within(App::SendsOnly, slow_reader_config()).await;
    assert_eq!(closed.code, CloseCode::SLOW_READER, "{closed}");
    assert!(after < Duration::from_secs(5), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_close_gives_up_after_its_timeout_on_a_flooding_peer_while_the_application_reads() {
    let (after, closed) = closed_within(App::ClosesAndReads, slow_reader_config()).await;
    assert_eq!(closed.code, CloseCode::NORMAL, "{closed}");
    assert!(after < Duration::from_secs(5), "{after:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_graceful_close_gives_up_after_its_timeout_on_a_flooding_peer_while_the_application_reads_nothing() {
    let (after, closed) = closed_within(App::ClosesOnly, slow_reader_config()).await;
    assert_eq!(closed.code, CloseCode::NORMAL, "{closed}");
    assert!(after < Duration::from_secs(5), "{after:?}");
}
