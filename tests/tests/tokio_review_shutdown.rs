//! Review of pulse-tokio (issue 13): a runtime that shuts down with live
//! connections, on either of tokio's schedulers. The peer must hear
//! "going away" at once (not find out at its dead-peer timeout), nothing
//! may panic, and handles that outlive the runtime must see the end
//! instead of waiting forever.

mod tokio_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pulse_proto::{CloseCode, Initiator};
use pulse_tokio::{connect, Connection, Event, Listener};
use tokio_common::{bounded, config};

/// A runtime of the given kind, as an application builds it.
fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.worker_threads(2);
    builder.enable_all().build().unwrap()
}

/// A server on its own runtime, in its own thread, as an application
/// runs it: its accepted connections come out through `accepted`; once
/// `stop` is told, the runtime is dropped with them alive (their handles
/// kept by the test, outside any runtime).
struct Server {
    addr: SocketAddr,
    accepted: std::sync::mpsc::Receiver<Connection>,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn server_runtime(multi_thread: bool) -> Server {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, accepted) = std::sync::mpsc::channel();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = runtime(multi_thread);
        rt.block_on(async move {
            let listener = Listener::bind("127.0.0.1:0", config(200, 3000)).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    let _ = tx.send(conn);
                }
            });
            let _ = stopped.await;
        });
        drop(rt);
    });
    let addr = addr_rx.recv().unwrap();
    Server {
        addr,
        accepted,
        stop,
        thread,
    }
}

async fn shutting_down_tells_the_peer_at_once(multi_thread: bool) {
    let server = tokio::task::spawn_blocking(move || server_runtime(multi_thread))
        .await
        .unwrap();
    let client = connect(server.addr, config(200, 3000)).await.unwrap();
    let accepted = server.accepted;
    let server_side = tokio::task::spawn_blocking(move || accepted.recv().unwrap())
        .await
        .unwrap();
    assert!(server_side.connected().await.is_ok());
    // The server's runtime goes while its connection lives (its handle
    // with it, outside any runtime now).
    let shut_at = Instant::now();
    server.stop.send(()).unwrap();
    let thread = server.thread;
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
    let closed = client.closed().await;
    assert_eq!(
        (closed.code, closed.initiator),
        (CloseCode::GOING_AWAY, Initiator::Peer),
        "{closed}"
    );
    // Well before the client's own 3 s verdict.
    assert!(shut_at.elapsed() < Duration::from_secs(1), "{:?}", shut_at.elapsed());
    // The handle that outlived its runtime sees the end, and cannot send.
    let end = loop {
        if let Event::Closed(closed) = server_side.recv().await {
            break closed;
        }
    };
    assert_eq!((end.code, end.initiator), (CloseCode::GOING_AWAY, Initiator::Local));
    assert!(server_side.send(1, "after the end").await.is_err());
    assert_eq!(server_side.closed().await, end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_thread_runtime_shutting_down_tells_its_peers_going_away() {
    bounded(shutting_down_tells_the_peer_at_once(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_current_thread_runtime_shutting_down_tells_its_peers_going_away() {
    bounded(shutting_down_tells_the_peer_at_once(false)).await;
}
