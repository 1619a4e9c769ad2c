//! pulse-mio at the end of a graceful close, as smol_close_tail and
//! tokio_review_reset check of the other adapters: a socket closed while
//! it still sends its tail answers whatever the peer sends after that
//! with a reset, and the kernel throws the tail away. Here the server's
//! answer (its backlog and CLOSE) fits the kernel's send buffer, so its
//! session is done at once, while the client has not read it; the client
//! then sends a frame after its CLOSE.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::Closed;
use pulse_tests::after_close;

const CHUNK: usize = 16 * 1024;
/// 512 KiB: far more than the client's 4 KiB receive buffer, far less
/// than the server's send buffer.
const BACKLOG: usize = 32;

/// Queues its backlog as soon as the connection opens.
#[derive(Default)]
struct Backlog {
    queued: u32,
    closed: Option<Closed>,
}

impl Handler for Backlog {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        for i in 0..BACKLOG {
            if ctx.send(conn, 9, Bytes::from(vec![i as u8; CHUNK])).is_err() {
                return;
            }
            self.queued += 1;
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.closed = Some(closed.clone());
    }
}

#[test]
fn bytes_sent_after_the_close_do_not_reset_away_the_answer() {
    let mut server = EventLoop::new(LoopConfig::new(after_close::config()), Backlog::default()).unwrap();
    let addr = server
        .listen_on(after_close::listener_with_send_buffer(4 << 20))
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let client = std::thread::spawn({
        let done = done.clone();
        move || {
            let seen = after_close::client(addr);
            done.store(true, Ordering::Release);
            seen
        }
    });
    let started = Instant::now();
    while !done.load(Ordering::Acquire) && started.elapsed() < Duration::from_secs(40) {
        server.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let seen = client.join().unwrap();
    let handler = server.handler();
    println!("queued {}: {seen:?}; the server: {:?}", handler.queued, handler.closed);
    assert_eq!(handler.queued, BACKLOG as u32);
    assert!(seen.closed.is_some(), "no CLOSE from the server: {seen:?}");
    assert_eq!(seen.messages, handler.queued, "{seen:?}");
}
