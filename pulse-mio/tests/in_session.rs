//! What a handler can change of a connection while it runs, over real
//! sockets on 127.0.0.1: its service status, its timings (RETIME), and an
//! adaptive client's learned value and active mode. Client and server
//! share one loop, turned by the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{AdaptiveConfig, Closed, Config, Event, Learned, ServiceState, Status};

const PATIENCE: Duration = Duration::from_secs(20);

/// Keeps every event with the connection it came on.
#[derive(Default)]
struct Recorder {
    opened: Vec<ConnId>,
    closed: Vec<ConnId>,
    events: Vec<(ConnId, Event)>,
}

impl Handler for Recorder {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        self.opened.push(conn);
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: bytes::Bytes) {}
    fn on_event(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId, event: &Event) {
        self.events.push((conn, event.clone()));
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId, _closed: &Closed, _value: ()) {
        self.closed.push(conn);
    }
}

fn adaptive() -> AdaptiveConfig {
    let mut adaptive = AdaptiveConfig::default();
    adaptive.start = Duration::from_millis(400);
    adaptive.active = Duration::from_millis(150);
    adaptive.max = Duration::from_secs(60);
    adaptive
}

/// The interval an adaptive client asks for to keep every idle gap under
/// `gap_ms` (PROTOCOL.md §6.11: `L / (1 + j)`, at the default 10 % jitter).
fn asked_for(gap_ms: u64) -> Duration {
    Duration::from_millis(gap_ms * 100 / 110)
}

/// One loop with a listener; its config lets the server agree to
/// intervals from 100 ms, and makes its clients adaptive (a server ignores
/// that part).
fn start(adaptive: Option<AdaptiveConfig>) -> (EventLoop<Recorder>, SocketAddr) {
    let config = Config::default()
        .with_min_interval(Duration::from_millis(100))
        .with_timing(Duration::from_millis(400), Duration::from_millis(1200))
        .with_adaptive(adaptive);
    let mut event_loop = EventLoop::new(LoopConfig::new(Arc::new(config)), Recorder::default()).unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    (event_loop, addr)
}

/// Turns the loop until `found` picks something from the recorder.
fn wait_for<T>(event_loop: &mut EventLoop<Recorder>, mut found: impl FnMut(&Recorder) -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = found(event_loop.handler()) {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "waited too long");
        event_loop.turn(Some(Duration::from_millis(50))).unwrap();
    }
}

/// The server's end of the one connection a test opened.
fn server_end(recorder: &Recorder, client: ConnId) -> Option<ConnId> {
    recorder.opened.iter().copied().find(|&conn| conn != client)
}

#[test]
fn a_status_sent_from_a_handler_reaches_the_peer_as_peer_status() {
    let (mut event_loop, addr) = start(None);
    let client = event_loop.with_ctx(|ctx| ctx.connect(addr, ())).unwrap();
    wait_for(&mut event_loop, |r| (r.opened.len() == 2).then_some(()));

    let draining = Status::new(ServiceState::Draining, 10);
    event_loop.with_ctx(|ctx| ctx.send_status(client, draining)).unwrap();
    let (at, seen) = wait_for(&mut event_loop, |r| {
        r.events.iter().find_map(|(conn, event)| match event {
            Event::PeerStatus(status) => Some((*conn, *status)),
            _ => None,
        })
    });
    assert_eq!(Some(at), server_end(event_loop.handler(), client));
    assert_eq!(seen, draining);
}

#[test]
fn a_retime_from_a_handler_switches_both_ends_to_the_new_timings() {
    let (mut event_loop, addr) = start(None);
    let client = event_loop.with_ctx(|ctx| ctx.connect(addr, ())).unwrap();
    wait_for(&mut event_loop, |r| (r.opened.len() == 2).then_some(()));

    event_loop
        .with_ctx(|ctx| ctx.retime(client, Duration::from_millis(200), Duration::from_millis(800)))
        .unwrap();
    let retimed = |r: &Recorder| {
        let ends: Vec<_> = r
            .events
            .iter()
            .filter_map(|(conn, event)| match event {
                Event::Retimed(n) => Some((*conn, n.interval(), n.dead_timeout())),
                _ => None,
            })
            .collect();
        (ends.len() == 2).then_some(ends)
    };
    let ends = wait_for(&mut event_loop, retimed);
    for (_, interval, dead) in &ends {
        assert_eq!(
            (*interval, *dead),
            (Duration::from_millis(200), Duration::from_millis(800))
        );
    }
    assert!(ends.iter().any(|(conn, ..)| *conn == client));
}

#[test]
fn a_handler_refuses_status_and_retime_on_a_connection_it_does_not_hold() {
    let (mut event_loop, addr) = start(None);
    let client = event_loop.with_ctx(|ctx| ctx.connect(addr, ())).unwrap();
    // Not yet open: the session has no peer to tell.
    let early = event_loop.with_ctx(|ctx| ctx.send_status(client, Status::default()));
    assert_eq!(early, Err(pulse_proto::SendError::NotConnected));
    wait_for(&mut event_loop, |r| (r.opened.len() == 2).then_some(()));
    event_loop
        .with_ctx(|ctx| ctx.close(client, pulse_proto::CloseCode::NORMAL, "bye"))
        .unwrap();
    wait_for(&mut event_loop, |r| r.closed.contains(&client).then_some(()));
    let gone = event_loop.with_ctx(|ctx| ctx.retime(client, Duration::from_secs(1), Duration::from_secs(3)));
    assert_eq!(gone, Err(pulse_proto::SendError::Closed));
}

#[test]
fn a_learned_value_given_at_connect_is_what_the_hello_asks_for_and_comes_back_out() {
    let (mut event_loop, addr) = start(Some(adaptive()));
    // What an earlier connection on this network found: 900 ms worked.
    let stored = Learned {
        good_ms: 900,
        ..Learned::default()
    };
    let client = event_loop
        .with_ctx(|ctx| {
            let conn = ctx.connect(addr, ())?;
            ctx.set_learned(conn, Learned::from_bytes(stored.to_bytes()));
            Ok::<_, std::io::Error>(conn)
        })
        .unwrap();
    wait_for(&mut event_loop, |r| r.opened.contains(&client).then_some(()));
    let negotiated = event_loop.with_ctx(|ctx| ctx.negotiated(client)).unwrap();
    // Without the learned value it would ask for its 400 ms start.
    assert_eq!(negotiated.interval(), asked_for(900));
    let learned = event_loop
        .with_ctx(|ctx| ctx.learned(client))
        .expect("an adaptive client");
    assert_eq!(learned.good_ms, 900);
}

#[test]
fn an_active_application_gets_its_minimum_interval_and_then_its_learned_one_back() {
    let (mut event_loop, addr) = start(Some(adaptive()));
    let client = event_loop.with_ctx(|ctx| ctx.connect(addr, ())).unwrap();
    wait_for(&mut event_loop, |r| (r.opened.len() == 2).then_some(()));
    let client_retimes = |r: &Recorder| -> Vec<Duration> {
        r.events
            .iter()
            .filter_map(|(conn, event)| match event {
                Event::Retimed(n) if *conn == client => Some(n.interval()),
                _ => None,
            })
            .collect()
    };

    event_loop.with_ctx(|ctx| ctx.set_active(client, true));
    let active = wait_for(&mut event_loop, |r| client_retimes(r).first().copied());
    assert_eq!(active, asked_for(150));

    event_loop.with_ctx(|ctx| ctx.set_active(client, false));
    let back = wait_for(&mut event_loop, |r| client_retimes(r).get(1).copied());
    assert_eq!(back, asked_for(400));
}
