//! Review of pulse-tokio (issue 13): a runtime dropped while a connection
//! is still being made and a reconnecting client is trying. Its own
//! binary: it counts the process's driver tasks.

mod tokio_common;

use std::time::Duration;

use pulse_tokio::{connect, ClientEvent, ReconnectingClient};
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

#[test]
fn a_runtime_dropped_while_connecting_and_reconnecting_leaves_no_driver_behind() {
    // A server that accepts TCP and never answers: attempts stay pending.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    for multi_thread in [false, true] {
        let rt = runtime(multi_thread);
        let client = rt.block_on(async {
            let client = ReconnectingClient::new(addr, config(200, 3000), pulse_tokio::default_backoff());
            let pending = tokio::spawn(connect(addr, config(200, 3000)));
            // Both attempts are under way once their drivers exist.
            bounded(async {
                while pulse_tokio::live_drivers() < 2 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            drop(pending);
            client
        });
        drop(rt);
        assert_eq!(pulse_tokio::live_drivers(), 0, "multi_thread: {multi_thread}");
        // Its task went with the runtime: the client says it stopped.
        let rt = runtime(false);
        let ended = rt.block_on(bounded(until_ending(&client)));
        assert!(ended.is_ending(), "{ended:?}");
    }
}

/// Reads a client's events until its ending.
async fn until_ending(client: &ReconnectingClient) -> ClientEvent {
    loop {
        let event = client.recv().await;
        if event.is_ending() {
            return event;
        }
    }
}
