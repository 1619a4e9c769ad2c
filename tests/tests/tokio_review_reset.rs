//! Review of pulse-tokio (issue 13): the answering side of a graceful
//! close drops its socket once its last bytes and CLOSE are in the
//! kernel. If bytes it never read are still waiting in the socket then
//! (anything the peer sent after its CLOSE, which §8.2 says to ignore — a
//! PONG, say — while reading was paused), the kernel answers the close
//! with a reset and throws away what it had not yet sent: the peer loses
//! the last messages and the CLOSE.

use std::time::Duration;

use bytes::Bytes;
use pulse_tests::after_close::{client, config, listener_with_send_buffer};
use pulse_tokio::Listener;

const CHUNK: usize = 16 * 1024;
/// What the server queues: more than the small socket buffers hold.
const BACKLOG: u32 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_left_unread_at_the_end_do_not_reset_away_the_answer() {
    let listener = Listener::from_std(listener_with_send_buffer(4096), config()).unwrap();
    let addr = listener.local_addr().unwrap();
    let raw = tokio::task::spawn_blocking(move || client(addr));
    let (server, _) = listener.accept().await.unwrap();
    server.connected().await.unwrap();
    while server.try_recv().is_some() {}
    // Reading pauses at the first unread message: the client's CLOSE,
    // in the same read, is seen; what comes after is not read.
    server.set_recv_buffer(1);
    let mut queued = 0;
    for i in 0..BACKLOG {
        if server.send(9, Bytes::from(vec![i as u8; CHUNK])).await.is_err() {
            break;
        }
        queued += 1;
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), raw)
        .await
        .expect("the client hung")
        .unwrap();
    println!("queued {queued}: {seen:?}");
    assert!(seen.closed.is_some(), "no CLOSE from the server: {seen:?}");
    assert_eq!(seen.messages, queued, "{seen:?}");
}
