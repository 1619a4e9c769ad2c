//! A pulse-mio handler gets back the messages a connection never began to
//! send (`docs/PROTOCOL.md` §6.11.1), over real sockets: an adaptive
//! client idle past what its path was seen to keep holds its next message
//! while a PING confirms the path; a loopback relay that forgot the idle
//! connection resets it instead (`pulse_tests::held`). In `on_close` the
//! handler takes the messages back (`Ctx::take_unsent`), reconnects, and
//! sends them on the next connection.
//!
//! Every wait is bounded by `held::BOUND`; the one timed pause is the
//! idle stretch the scenario needs (`held::IDLE`).

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{CloseCode, Closed};
use pulse_tests::held::{adaptive_client_config, HeldServer, BOUND, IDLE};

#[derive(Default)]
struct Seen {
    opened: usize,
    closed: Vec<Closed>,
    /// What `take_unsent` gave in each `on_close`.
    unsent: Vec<Vec<(u16, Bytes)>>,
}

/// Reconnects once, and sends what the lost connection never began first.
#[derive(Clone)]
struct Client {
    server: SocketAddr,
    seen: Arc<(Mutex<Seen>, Condvar)>,
    resend: Arc<Mutex<Vec<(u16, Bytes)>>>,
}

impl Client {
    fn wait(&self, what: &str, done: impl Fn(&Seen) -> bool) {
        let (seen, changed) = &*self.seen;
        let deadline = Instant::now() + BOUND;
        let mut seen = seen.lock().expect("seen");
        while !done(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{what}: not within {BOUND:?}");
            seen = changed.wait_timeout(seen, left).expect("seen").0;
        }
    }

    fn tell(&self, change: impl FnOnce(&mut Seen)) {
        change(&mut self.seen.0.lock().expect("seen"));
        self.seen.1.notify_all();
    }
}

impl Handler for Client {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        for (tag, payload) in self.resend.lock().expect("resend").drain(..) {
            ctx.send(conn, tag, payload).expect("room for what the last one held");
        }
        self.tell(|seen| seen.opened += 1);
    }
    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
    fn on_close(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, closed: &Closed, _: ()) {
        let unsent = ctx.take_unsent(conn);
        assert!(ctx.take_unsent(conn).is_empty(), "taken once");
        self.resend.lock().expect("resend").extend(unsent.iter().cloned());
        let first = self.seen.0.lock().expect("seen").closed.is_empty();
        if first {
            ctx.connect(self.server, ()).expect("reconnect");
        }
        self.tell(|seen| {
            seen.closed.push(closed.clone());
            seen.unsent.push(unsent);
        });
    }
}

#[test]
fn a_handler_takes_back_in_on_close_what_the_lost_connection_held_and_sends_it_on_the_next() {
    let server = HeldServer::start();
    let client = Client {
        server: server.addr(),
        seen: Arc::default(),
        resend: Arc::default(),
    };
    let mut event_loop = EventLoop::new(LoopConfig::new(adaptive_client_config()), client.clone()).expect("a loop");
    let first = event_loop.connect(server.addr(), ()).expect("connect");
    let handle = event_loop.handle();
    let thread = std::thread::spawn(move || event_loop.run().expect("the client loop"));

    client.wait("the first connection", |seen| seen.opened == 1);
    std::thread::sleep(IDLE);
    handle.send(first, 7, "held").expect("the loop runs");
    handle.send(first, 8, "behind it").expect("the loop runs");
    client.wait("the reset and the next connection", |seen| seen.opened == 2);
    let received = server.wait_for_messages(2);

    let _ = handle.shutdown(Duration::ZERO);
    thread.join().expect("the client loop");
    let seen = client.seen.0.lock().expect("seen");
    assert_eq!(seen.closed[0].code, CloseCode::LOST, "{:?}", seen.closed);
    assert_eq!(
        seen.unsent[0],
        vec![(7, Bytes::from("held")), (8, Bytes::from("behind it"))],
        "{:?}",
        seen.closed
    );
    let got: Vec<(u16, Bytes)> = received
        .iter()
        .map(|(_, tag, payload)| (*tag, payload.clone()))
        .collect();
    assert_eq!(got, seen.unsent[0], "sent again, in order, on the next connection");
    assert_eq!(received[0].0, received[1].0, "both on the next connection");
    assert_eq!(server.resets(), 1);
}
