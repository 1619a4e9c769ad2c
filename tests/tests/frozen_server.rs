//! A stalled server must never throw out its healthy clients. The scenario
//! from the field, over real sockets: a server with 500 idle clients
//! (interval 1 s, timeout 3 s) is frozen with SIGSTOP for 2.6 s and later
//! for 2.8 s — both under the timeout — then resumed. The clients probe
//! while it is silent, and their PINGs reach it all at once: none of them
//! may be closed for pinging too fast, and the server, whose own stall it
//! was, convicts none of them. Run against both adapters' servers.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{CloseCode, Closed, Config, Event, Initiator};
use pulse_tests::peer::{stat, Peer};

const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");
const CLIENTS: usize = 500;

#[derive(Default)]
struct Seen {
    opened: usize,
    verdicts: usize,
    closed: Vec<Closed>,
}

struct Clients(Arc<Mutex<Seen>>);

impl Handler for Clients {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId) {
        self.0.lock().unwrap().opened += 1;
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_event(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, event: &Event) {
        if matches!(event, Event::PeerDead { .. }) {
            self.0.lock().unwrap().verdicts += 1;
        }
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.0.lock().unwrap().closed.push(closed.clone());
    }
}

/// Turns the client loop for `d` (the clients keep running while the
/// server is frozen or not).
fn run_for(event_loop: &mut EventLoop<Clients>, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        event_loop.turn(Some(until - Instant::now())).unwrap();
    }
}

fn freezes_shorter_than_the_timeout_close_no_client_for_its_ping_rate(server_mode: &str) {
    let mut server = Peer::start(PEER, &[server_mode, "1000", "3000"]);
    let addr = server.addr.unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = Config::default()
        .with_timing(Duration::from_secs(1), Duration::from_secs(3))
        .with_handshake_timeout(Duration::from_secs(30));
    let mut clients = EventLoop::new(LoopConfig::new(config), Clients(seen.clone())).unwrap();
    for i in 0..CLIENTS {
        let local = SocketAddr::from(([127, 0, 0, 2 + (i % 8) as u8], 0));
        clients.connect_from(local, addr, ()).unwrap();
    }
    let started = Instant::now();
    while seen.lock().unwrap().opened < CLIENTS {
        assert!(started.elapsed() < Duration::from_secs(60), "clients did not connect");
        clients.turn(Some(Duration::from_millis(50))).unwrap();
    }
    run_for(&mut clients, Duration::from_secs(3));
    for freeze in [Duration::from_millis(2_600), Duration::from_millis(2_800)] {
        server.freeze();
        run_for(&mut clients, freeze);
        server.thaw();
        run_for(&mut clients, Duration::from_secs(4));
    }
    let stats = server.ask("stats");
    let seen = seen.lock().unwrap();
    let for_ping_rate = seen
        .closed
        .iter()
        .filter(|c| c.code == CloseCode::TOO_MANY_PINGS)
        .count();
    let convicted_by_server = seen
        .closed
        .iter()
        .filter(|c| c.code == CloseCode::TIMED_OUT && c.initiator == Initiator::Peer)
        .count();
    println!(
        "{server_mode}: {} of {CLIENTS} clients closed ({for_ping_rate} for their ping rate, {convicted_by_server} \
         convicted by the stalled server); {} clients convicted the silent server; server stats: {stats}",
        seen.closed.len(),
        seen.verdicts,
    );
    assert_eq!(for_ping_rate, 0, "clients closed for pinging a stalled server");
    assert_eq!(
        stat(&stats, "too_many_pings"),
        0,
        "the server closed clients for their ping rate"
    );
    assert_eq!(convicted_by_server, 0, "the server convicted clients for its own stall");
    assert_eq!(
        stat(&stats, "verdicts"),
        0,
        "the server convicted clients for its own stall"
    );
}

#[test]
fn a_frozen_mio_server_closes_no_client_for_pinging_while_it_was_silent() {
    freezes_shorter_than_the_timeout_close_no_client_for_its_ping_rate("mio-echo-server");
}

#[test]
fn a_frozen_smol_server_closes_no_client_for_pinging_while_it_was_silent() {
    freezes_shorter_than_the_timeout_close_no_client_for_its_ping_rate("smol-echo-server");
}
