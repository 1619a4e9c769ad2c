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
use std::sync::{Arc, Mutex};
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
struct Client {
    server: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    resend: Arc<Mutex<Vec<(u16, Bytes)>>>,
}

impl Client {
    fn tell(&self, change: impl FnOnce(&mut Seen)) {
        change(&mut self.seen.lock().expect("seen"));
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
        let first = self.seen.lock().expect("seen").closed.is_empty();
        if first {
            ctx.connect(self.server, ()).expect("reconnect");
        }
        self.tell(|seen| {
            seen.closed.push(closed.clone());
            seen.unsent.push(unsent);
        });
    }
}

/// Turns the loop until `done`, at most [`BOUND`].
fn drive(event_loop: &mut EventLoop<Client>, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + BOUND;
    while !done(&event_loop.handler().seen.lock().expect("seen")) {
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?}");
        event_loop.turn(Some(Duration::from_millis(10))).expect("a turn");
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
    // Driven on this thread, so both messages are sent in one callback,
    // before the loop can see the reset.
    let mut event_loop = EventLoop::new(LoopConfig::new(adaptive_client_config()), client).expect("a loop");
    let first = event_loop.connect(server.addr(), ()).expect("connect");
    drive(&mut event_loop, "the first connection", |seen| seen.opened == 1);
    std::thread::sleep(IDLE);
    event_loop.with_ctx(|ctx| {
        ctx.send(first, 7, "held").expect("taken by the session");
        ctx.send(first, 8, "behind it").expect("taken by the session");
    });
    drive(&mut event_loop, "the reset and the next connection", |seen| {
        seen.opened == 2
    });
    let bound = Instant::now() + BOUND;
    while server.messages().len() < 2 && Instant::now() < bound {
        event_loop.turn(Some(Duration::from_millis(10))).expect("a turn");
    }
    let received = server.messages();

    let seen = event_loop.handler().seen.lock().expect("seen");
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
