//! `Handle::send` where the loop ends things: a shutdown that aborts the
//! sessions holding a handle's messages, and a handler that panics while
//! the loop hands refused messages back. Every message still goes exactly
//! one way (`tests/handle_sends.rs` has the races with a close).

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{Closed, Config, SendError};

const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Default, Debug)]
struct Log {
    opened: Vec<ConnId>,
    received: Vec<(ConnId, Bytes)>,
    /// Handed back by `on_unsent`.
    unsent: Vec<(ConnId, Bytes, SendError)>,
    /// Handed back by `take_unsent` in `on_close`.
    taken_back: Vec<(ConnId, Bytes)>,
    closed: Vec<ConnId>,
}

/// Records every callback in a log that outlives the loop; its
/// `on_unsent` panics on the payload `panic_on`, after recording it.
struct Recorder {
    log: Arc<Mutex<Log>>,
    panic_on: Option<Bytes>,
}

impl Handler for Recorder {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, _: &mut Ctx<'_, ()>, conn: ConnId) {
        self.log.lock().unwrap().opened.push(conn);
    }
    fn on_message(&mut self, _: &mut Ctx<'_, ()>, conn: ConnId, _tag: u16, payload: Bytes) {
        self.log.lock().unwrap().received.push((conn, payload));
    }
    fn on_unsent(&mut self, _: &mut Ctx<'_, ()>, conn: ConnId, _tag: u16, payload: Bytes, why: SendError) {
        let panics = self.panic_on.as_ref() == Some(&payload);
        self.log.lock().unwrap().unsent.push((conn, payload, why));
        assert!(!panics, "the handler's own bug");
    }
    fn on_close(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, _: &Closed, _: ()) {
        let taken = ctx.take_unsent(conn);
        let mut log = self.log.lock().unwrap();
        log.taken_back
            .extend(taken.into_iter().map(|(_, payload)| (conn, payload)));
        log.closed.push(conn);
    }
}

fn new_loop(panic_on: Option<&'static [u8]>) -> (EventLoop<Recorder>, SocketAddr, Arc<Mutex<Log>>) {
    let session = Config::default().with_handshake_timeout(Duration::from_secs(5));
    let session = Arc::new(session.with_timing(Duration::from_millis(500), Duration::from_secs(5)));
    let log = Arc::new(Mutex::new(Log::default()));
    let handler = Recorder {
        log: log.clone(),
        panic_on: panic_on.map(Bytes::from_static),
    };
    let mut event_loop = EventLoop::new(LoopConfig::new(session), handler).unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    (event_loop, addr, log)
}

/// Turns the loop until `done`, within PATIENCE and a bounded count.
fn turn_until(event_loop: &mut EventLoop<Recorder>, log: &Mutex<Log>, done: impl Fn(&Log) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..1_000_000 {
        if done(&log.lock().unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not done in {PATIENCE:?}: {:?}",
            log.lock().unwrap()
        );
        event_loop.turn(Some(Duration::from_millis(5))).unwrap();
    }
    panic!("not done within the turn bound: {:?}", log.lock().unwrap());
}

#[test]
fn messages_a_session_took_come_back_through_take_unsent_when_a_shutdown_aborts_it() {
    let (mut event_loop, addr, log) = new_loop(None);
    let client = event_loop.connect(addr, ()).unwrap();
    turn_until(&mut event_loop, &log, |l| l.opened.len() == 2);
    let handle = event_loop.handle();
    // One batch, in this order: the session takes both messages, the
    // shutdown closes it with them queued, and its grace of zero aborts
    // it in the same turn, before a byte of them went out.
    handle.send(client, 1, &b"one"[..]).unwrap();
    handle.send(client, 1, &b"two"[..]).unwrap();
    handle.shutdown(Duration::ZERO).unwrap();
    turn_until(&mut event_loop, &log, |l| l.closed.len() == 2);
    let log = log.lock().unwrap();
    assert_eq!(
        log.taken_back,
        vec![
            (client, Bytes::from_static(b"one")),
            (client, Bytes::from_static(b"two"))
        ],
        "{log:?}"
    );
    assert!(log.received.is_empty() && log.unsent.is_empty(), "{log:?}");
}

#[test]
fn a_panic_in_on_unsent_does_not_lose_the_messages_queued_behind_it() {
    let (mut event_loop, addr, log) = new_loop(Some(b"first"));
    // Not connected yet when the loop runs the sends: both are refused.
    let conn = event_loop.connect(addr, ()).unwrap();
    let handle = event_loop.handle();
    handle.send(conn, 1, &b"first"[..]).unwrap();
    handle.send(conn, 1, &b"second"[..]).unwrap();
    let turn = catch_unwind(AssertUnwindSafe(|| event_loop.turn(Some(Duration::ZERO))));
    assert!(turn.is_err(), "on_unsent panicked on the first message");
    // The application caught its handler's panic and goes on (or drops
    // the loop): the message behind the panicking one is handed back all
    // the same, once.
    turn_until(&mut event_loop, &log, |l| l.unsent.len() >= 2);
    drop(event_loop);
    let log = log.lock().unwrap();
    let unsent: Vec<&[u8]> = log.unsent.iter().map(|(_, payload, _)| &payload[..]).collect();
    assert_eq!(unsent, [&b"first"[..], b"second"], "{log:?}");
}

#[test]
fn a_loop_dropped_after_a_panic_in_on_unsent_hands_back_what_the_panic_left() {
    let (mut event_loop, addr, log) = new_loop(Some(b"first"));
    let conn = event_loop.connect(addr, ()).unwrap();
    let handle = event_loop.handle();
    handle.send(conn, 1, &b"first"[..]).unwrap();
    handle.send(conn, 1, &b"second"[..]).unwrap();
    let turn = catch_unwind(AssertUnwindSafe(|| event_loop.turn(Some(Duration::ZERO))));
    assert!(turn.is_err(), "on_unsent panicked on the first message");
    drop(event_loop);
    let log = log.lock().unwrap();
    assert_eq!(
        log.unsent
            .iter()
            .map(|(_, payload, _)| &payload[..])
            .collect::<Vec<_>>(),
        [&b"first"[..], b"second"],
        "{log:?}"
    );
    assert_eq!(
        log.unsent[1].2,
        SendError::Closed,
        "the loop is gone with the connection"
    );
}

/// One turn of an application's own loop holding an endpoint: its poll,
/// its waker's token handled by itself, then `process`.
fn turn_own_loop(poll: &mut mio::Poll, events: &mut mio::Events, endpoint: &mut pulse_mio::Endpoint<Recorder>) -> bool {
    let timeout = endpoint
        .poll_timeout()
        .map_or(Duration::from_millis(5), |t| t.min(Duration::from_millis(5)));
    poll.poll(events, Some(timeout)).unwrap();
    let mut woken = false;
    for event in events.iter() {
        if !endpoint.handle_event(event) {
            woken |= event.token() == OWN_WAKER;
        }
    }
    endpoint.process().unwrap();
    woken
}

const OWN_WAKER: mio::Token = mio::Token(7);

#[test]
fn an_endpoint_in_the_applications_own_poll_runs_handle_sends_and_hands_back_the_refused() {
    let session = Config::default().with_handshake_timeout(Duration::from_secs(5));
    let session = Arc::new(session.with_timing(Duration::from_millis(500), Duration::from_secs(5)));
    let log = Arc::new(Mutex::new(Log::default()));
    let handler = Recorder {
        log: log.clone(),
        panic_on: None,
    };
    let mut poll = mio::Poll::new().unwrap();
    let mut events = mio::Events::with_capacity(256);
    // The application's one waker, outside the endpoint's tokens: the
    // handle wakes the application's poll, and `process` runs the sends.
    let waker = Arc::new(mio::Waker::new(poll.registry(), OWN_WAKER).unwrap());
    let config = LoopConfig::new(session);
    let mut endpoint = pulse_mio::Endpoint::with_waker(config, handler, poll.registry(), 1_000..2_000, waker).unwrap();
    let addr = endpoint.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let client = endpoint.connect(addr, ()).unwrap();
    let handle = endpoint.handle();
    let too_early = handle.clone();
    std::thread::spawn(move || too_early.send(client, 1, &b"too early"[..]).unwrap())
        .join()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut woken = false;
    while log.lock().unwrap().opened.len() < 2 {
        assert!(Instant::now() < deadline, "{:?}", log.lock().unwrap());
        woken |= turn_own_loop(&mut poll, &mut events, &mut endpoint);
    }
    assert!(woken, "the handle woke the application's own poll");
    std::thread::spawn(move || handle.send(client, 1, &b"on time"[..]).unwrap())
        .join()
        .unwrap();
    while log.lock().unwrap().received.is_empty() {
        assert!(Instant::now() < deadline, "{:?}", log.lock().unwrap());
        turn_own_loop(&mut poll, &mut events, &mut endpoint);
    }
    let log = log.lock().unwrap();
    assert_eq!(
        log.unsent,
        vec![(client, Bytes::from_static(b"too early"), SendError::NotConnected)]
    );
    assert_eq!(log.received.len(), 1);
    assert_eq!(log.received[0].1, Bytes::from_static(b"on time"));
}
