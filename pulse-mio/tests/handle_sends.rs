//! `Handle::send` from other threads against the connection's close: every
//! message goes exactly one way — to the peer, back through
//! `Ctx::take_unsent` in `on_close`, back through `Handler::on_unsent`, or
//! back at once in the `Unsent` error — and an id of an ended connection
//! never reaches the connection that took over its slot.
//!
//! Client and server are connections of one loop, turned by the test's
//! thread, so the test decides when commands run relative to the closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handle, HandleError, Handler, LoopConfig, Unsent};
use pulse_proto::{CloseCode, Closed, Config, SendError};

const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// Which side closes when the server gets the first message of a round.
#[derive(Clone, Copy, Debug)]
enum CloseOnFirst {
    Client(ConnId),
    Server,
}

#[derive(Default, Debug)]
struct Log {
    opened: Vec<(ConnId, Side)>,
    /// Messages the peer received.
    received: Vec<(ConnId, u16, Bytes)>,
    /// Messages handed back by `on_unsent`.
    unsent: Vec<(ConnId, u16, Bytes, SendError)>,
    /// Messages handed back by `take_unsent` in `on_close`.
    taken_back: Vec<(ConnId, u16, Bytes)>,
    closed: Vec<(ConnId, Side)>,
}

struct Recorder {
    log: Arc<Mutex<Log>>,
    /// Sends from inside `on_close`, to the other connection still open.
    handle: Option<Handle>,
    close_on_first: Option<CloseOnFirst>,
    /// Set once `close_on_first` has closed.
    closing: Arc<AtomicBool>,
}

impl Recorder {
    fn new(log: Arc<Mutex<Log>>) -> Recorder {
        Recorder {
            log,
            handle: None,
            close_on_first: None,
            closing: Arc::default(),
        }
    }
}

impl Handler for Recorder {
    type Conn = Side;
    fn accepted(&mut self, _peer: SocketAddr) -> Side {
        Side::Server
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_, Side>, conn: ConnId) {
        let side = *ctx.value(conn).unwrap();
        self.log.lock().unwrap().opened.push((conn, side));
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Side>, conn: ConnId, tag: u16, payload: Bytes) {
        match self.close_on_first.take() {
            Some(CloseOnFirst::Client(client)) => ctx.close(client, CloseCode::NORMAL, "client done").unwrap(),
            Some(CloseOnFirst::Server) => ctx.close(conn, CloseCode::NORMAL, "server done").unwrap(),
            None => {}
        }
        self.closing.store(true, Ordering::Release);
        self.log.lock().unwrap().received.push((conn, tag, payload));
    }
    fn on_unsent(&mut self, _ctx: &mut Ctx<'_, Side>, conn: ConnId, tag: u16, payload: Bytes, why: SendError) {
        self.log.lock().unwrap().unsent.push((conn, tag, payload, why));
    }
    fn on_close(&mut self, ctx: &mut Ctx<'_, Side>, conn: ConnId, _closed: &Closed, side: Side) {
        let taken = ctx.take_unsent(conn);
        let mut log = self.log.lock().unwrap();
        log.taken_back
            .extend(taken.into_iter().map(|(tag, payload)| (conn, tag, payload)));
        log.closed.push((conn, side));
        if let Some(handle) = &self.handle {
            // The other connection has not been told yet: it is still the
            // loop's, its session over, when this command is queued.
            for (other, _) in log.opened.iter().filter(|(c, _)| *c != conn) {
                if !log.closed.iter().any(|(c, _)| c == other) {
                    handle.send(*other, 9, &b"from on_close"[..]).unwrap();
                }
            }
        }
    }
}

fn session_config() -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(5));
    Arc::new(config.with_timing(Duration::from_millis(500), Duration::from_secs(5)))
}

fn new_loop() -> (EventLoop<Recorder>, SocketAddr, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    let mut event_loop = EventLoop::new(LoopConfig::new(session_config()), Recorder::new(log.clone())).unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    (event_loop, addr, log)
}

/// Turns the loop until `done`, within PATIENCE and a bounded count.
fn turn_until(event_loop: &mut EventLoop<Recorder>, log: &Arc<Mutex<Log>>, mut done: impl FnMut(&Log) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    for _ in 0..1_000_000 {
        if done(&log.lock().unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not done within {PATIENCE:?}: {:?}",
            log.lock().unwrap()
        );
        event_loop.turn(Some(Duration::from_millis(5))).unwrap();
    }
    panic!("not done within the turn bound: {:?}", log.lock().unwrap());
}

/// Connects a client and waits until both its ends opened: (client, server).
fn open_pair(event_loop: &mut EventLoop<Recorder>, addr: SocketAddr, log: &Arc<Mutex<Log>>) -> (ConnId, ConnId) {
    let client = event_loop.connect(addr, Side::Client).unwrap();
    let before = log.lock().unwrap().opened.len();
    turn_until(event_loop, log, |l| {
        l.opened.iter().any(|(c, _)| *c == client) && l.opened.len() >= before + 2
    });
    let log = log.lock().unwrap();
    let server = log.opened[before..].iter().find(|(_, s)| *s == Side::Server).unwrap().0;
    (client, server)
}

fn both_closed(log: &Log, a: ConnId, b: ConnId) -> bool {
    [a, b].iter().all(|id| log.closed.iter().any(|(c, _)| c == id))
}

/// The loop's slot of `id`, from its display `#index.generation`.
fn slot(id: ConnId) -> String {
    id.to_string()
        .trim_start_matches('#')
        .split('.')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_send_queued_behind_a_close_comes_back_to_on_unsent_and_the_one_before_it_goes_out() {
    let (mut event_loop, addr, log) = new_loop();
    let (client, server) = open_pair(&mut event_loop, addr, &log);
    let handle = event_loop.handle();
    // The loop is not turning: all three wait, and run in this order.
    handle.send(client, 1, &b"before"[..]).unwrap();
    handle.close(client, CloseCode::NORMAL, "done").unwrap();
    handle.send(client, 2, &b"after"[..]).unwrap();
    turn_until(&mut event_loop, &log, |l| both_closed(l, client, server));
    let log = log.lock().unwrap();
    assert_eq!(log.received, vec![(server, 1, Bytes::from_static(b"before"))]);
    assert_eq!(
        log.unsent,
        vec![(client, 2, Bytes::from_static(b"after"), SendError::Closed)],
        "the send the close overtook comes back once"
    );
    assert!(log.taken_back.is_empty(), "{:?}", log.taken_back);
}

#[test]
fn a_send_queued_before_the_connection_ended_and_run_after_comes_back_to_on_unsent() {
    let (mut event_loop, addr, log) = new_loop();
    let (client, server) = open_pair(&mut event_loop, addr, &log);
    event_loop.handler().handle = Some(event_loop.handle());
    // A shutdown whose grace is over aborts both connections in one turn:
    // the first `on_close` queues a send to the other, whose session is
    // over but whose `on_close` has not come yet. The send runs next turn,
    // when that connection is gone.
    event_loop.shutdown(Duration::ZERO);
    turn_until(&mut event_loop, &log, |l| both_closed(l, client, server));
    let last = log.lock().unwrap().closed[1].0;
    turn_until(&mut event_loop, &log, |l| !l.unsent.is_empty());
    let log = log.lock().unwrap();
    assert_eq!(
        log.unsent,
        vec![(last, 9, Bytes::from_static(b"from on_close"), SendError::Closed)]
    );
    assert!(log.received.is_empty() && log.taken_back.is_empty(), "{log:?}");
}

#[test]
fn a_send_before_the_handshake_completes_comes_back_as_not_connected() {
    let (mut event_loop, addr, log) = new_loop();
    let client = event_loop.connect(addr, Side::Client).unwrap();
    event_loop.handle().send(client, 3, &b"too early"[..]).unwrap();
    // Runs at the first turn, before the server has even accepted.
    event_loop.turn(Some(Duration::ZERO)).unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        log.unsent,
        vec![(client, 3, Bytes::from_static(b"too early"), SendError::NotConnected)]
    );
}

#[test]
fn a_send_to_an_ended_connection_never_reaches_the_one_that_took_over_its_slot() {
    let (mut event_loop, addr, log) = new_loop();
    let (old_client, old_server) = open_pair(&mut event_loop, addr, &log);
    let handle = event_loop.handle();
    handle.close(old_client, CloseCode::NORMAL, "done").unwrap();
    turn_until(&mut event_loop, &log, |l| both_closed(l, old_client, old_server));
    // Both sockets linger until each peer ended its side; then the slots
    // are free.
    let deadline = Instant::now() + PATIENCE;
    while !event_loop.with_ctx(|ctx| ctx.ids().is_empty()) {
        assert!(Instant::now() < deadline, "the old connections still hold their slots");
        event_loop.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let (new_client, new_server) = open_pair(&mut event_loop, addr, &log);
    let reused: Vec<String> = [new_client, new_server].into_iter().map(slot).collect();
    assert!(
        reused.contains(&slot(old_client)) && reused.contains(&slot(old_server)),
        "the new connections took over the old slots: {old_client} {old_server} -> {new_client} {new_server}"
    );
    handle.send(old_client, 4, &b"stale"[..]).unwrap();
    handle.send(old_server, 5, &b"stale"[..]).unwrap();
    handle.send(new_client, 6, &b"fresh"[..]).unwrap();
    // Each of the three is received or handed back.
    turn_until(&mut event_loop, &log, |l| l.unsent.len() + l.received.len() == 3);
    let log = log.lock().unwrap();
    assert_eq!(log.received, vec![(new_server, 6, Bytes::from_static(b"fresh"))]);
    assert_eq!(
        log.unsent,
        vec![
            (old_client, 4, Bytes::from_static(b"stale"), SendError::Closed),
            (old_server, 5, Bytes::from_static(b"stale"), SendError::Closed),
        ]
    );
}

#[test]
fn an_id_of_another_loops_connection_never_reaches_a_connection_of_this_loop() {
    // Two loops of one process (one per core, say), each with a pair in
    // its first slots: an id of one given to the other's handle by
    // mistake must not find the other's connection in the same slot.
    let (mut loop_a, addr_a, log_a) = new_loop();
    let (mut loop_b, addr_b, log_b) = new_loop();
    let (a_client, _) = open_pair(&mut loop_a, addr_a, &log_a);
    let (b_client, _) = open_pair(&mut loop_b, addr_b, &log_b);
    assert_eq!(slot(a_client), slot(b_client), "the same slot in both loops");
    loop_b.handle().send(a_client, 7, &b"for loop a"[..]).unwrap();
    turn_until(&mut loop_b, &log_b, |l| l.unsent.len() + l.received.len() == 1);
    let log = log_b.lock().unwrap();
    assert!(log.received.is_empty(), "loop b delivered loop a's message: {log:?}");
    assert_eq!(
        log.unsent,
        vec![(a_client, 7, Bytes::from_static(b"for loop a"), SendError::Closed)]
    );
}

/// A handler that only records what `on_unsent` hands back; it outlives
/// the loop through the shared vector.
struct Unsents(Arc<Mutex<Vec<(ConnId, Bytes, SendError)>>>);

impl Handler for Unsents {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
    fn on_unsent(&mut self, _: &mut Ctx<'_, ()>, conn: ConnId, _tag: u16, payload: Bytes, why: SendError) {
        self.0.lock().unwrap().push((conn, payload, why));
    }
    fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
}

#[test]
fn a_full_queue_and_a_dropped_loop_give_the_message_back_and_what_waited_goes_to_on_unsent() {
    let config = LoopConfig {
        max_commands: 2,
        ..LoopConfig::new(session_config())
    };
    let unsent = Arc::new(Mutex::new(Vec::new()));
    let mut event_loop = EventLoop::new(config, Unsents(unsent.clone())).unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = event_loop.connect(addr, ()).unwrap();
    let handle = event_loop.handle();
    handle.send(conn, 1, &b"one"[..]).unwrap();
    handle.send(conn, 1, &b"two"[..]).unwrap();
    match handle.send(conn, 1, &b"three"[..]) {
        Err(Unsent {
            error: HandleError::Full { capacity: 2 },
            conn: back,
            payload,
            ..
        }) => assert_eq!((back, &payload[..]), (conn, &b"three"[..])),
        other => panic!("{other:?}"),
    }
    drop(event_loop);
    let mut waited = std::mem::take(&mut *unsent.lock().unwrap());
    waited.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        waited,
        vec![
            (conn, Bytes::from_static(b"one"), SendError::Closed),
            (conn, Bytes::from_static(b"two"), SendError::Closed),
        ]
    );
    match handle.send(conn, 1, &b"four"[..]) {
        Err(Unsent {
            error: HandleError::Stopped,
            payload,
            ..
        }) => assert_eq!(&payload[..], b"four"),
        other => panic!("{other:?}"),
    }
    handle.shutdown(Duration::ZERO).expect("a gone loop needs no shutdown");
}

/// How a racing sender's round ended.
enum Sent {
    /// This many sent; these returned by `send`.
    All(u32, Vec<Bytes>),
    /// Stuck at this message: the window never moved.
    Stalled(u32),
}

/// Messages a racing sender may have sent that are not yet received or
/// handed back.
const WINDOW: usize = 64;

/// How many messages of the round may have been sent now: those accounted
/// for since `before`, and WINDOW more.
fn before_window(before: usize, log: &Mutex<Log>, accounted: impl Fn(&Log) -> usize) -> usize {
    accounted(&log.lock().unwrap()) - before + WINDOW
}

/// Rounds of a sender thread sending in a tight loop while the loop closes
/// the connection (the client's end or the server's, in turn), on until
/// it sees the close begun and a few hundred sends more: each message is
/// received, taken back in `on_close`, handed to `on_unsent`, or returned
/// by `send`, exactly once.
#[test]
fn sends_racing_a_close_are_each_delivered_or_handed_back_exactly_once() {
    const ROUNDS: u32 = 40;
    /// Sends after the sender saw the close begin.
    const AFTER: u32 = 300;
    const MOST_PER_ROUND: u32 = 100_000;
    let (mut event_loop, addr, log) = new_loop();
    let mut returned = Vec::new();
    let mut sent = 0usize;
    for round in 0..ROUNDS {
        let (client, server) = open_pair(&mut event_loop, addr, &log);
        event_loop.handler().close_on_first = Some(if round % 2 == 0 {
            CloseOnFirst::Client(client)
        } else {
            CloseOnFirst::Server
        });
        let handle = event_loop.handle();
        let closing = Arc::new(AtomicBool::new(false));
        event_loop.handler().closing = closing.clone();
        let shared_log = log.clone();
        let accounted = move |log: &Log| log.received.len() + log.unsent.len() + log.taken_back.len();
        let before = accounted(&log.lock().unwrap());
        let sender = std::thread::spawn(move || {
            let (mut returned, mut after) = (Vec::new(), 0);
            for seq in 0..MOST_PER_ROUND {
                // At most WINDOW messages not yet accounted for: the
                // sender stays close to the loop, so its sends straddle
                // the close rather than all come before it. A window that
                // never moves holds messages the loop lost.
                let deadline = Instant::now() + PATIENCE;
                while seq as usize - returned.len() >= before_window(before, &shared_log, accounted) {
                    if Instant::now() > deadline {
                        return Sent::Stalled(seq);
                    }
                    std::thread::yield_now();
                }
                let payload = [round.to_be_bytes(), seq.to_be_bytes()].concat();
                if let Err(unsent) = handle.send(client, 1, payload) {
                    returned.push(unsent.payload);
                }
                if after > 0 || closing.load(Ordering::Acquire) {
                    after += 1;
                }
                if after > AFTER {
                    return Sent::All(seq + 1, returned);
                }
            }
            Sent::All(MOST_PER_ROUND, returned)
        });
        let deadline = Instant::now() + 2 * PATIENCE;
        while !(sender.is_finished() && both_closed(&log.lock().unwrap(), client, server)) {
            assert!(Instant::now() < deadline, "round {round} did not end");
            event_loop.turn(Some(Duration::from_millis(5))).unwrap();
        }
        match sender.join().unwrap() {
            Sent::All(count, back) => {
                returned.extend(back);
                sent += count as usize;
            }
            Sent::Stalled(seq) => {
                let log = log.lock().unwrap();
                let counts = [log.received.len(), log.unsent.len(), log.taken_back.len()];
                panic!(
                    "round {round}: of {seq} messages sent, {WINDOW} were neither received nor handed back \
                     within {PATIENCE:?} (received, on_unsent, take_unsent so far: {counts:?})"
                );
            }
        }
        // What the sender queued after the loop's last look at the queue.
        event_loop.turn(Some(Duration::ZERO)).unwrap();
    }
    let log = log.lock().unwrap();
    let mut seen: HashMap<Vec<u8>, Vec<&str>> = HashMap::new();
    let ways = [
        ("received", log.received.iter().map(|m| &m.2).collect::<Vec<_>>()),
        ("on_unsent", log.unsent.iter().map(|m| &m.2).collect()),
        ("take_unsent", log.taken_back.iter().map(|m| &m.2).collect()),
        ("returned", returned.iter().collect()),
    ];
    for (way, payloads) in &ways {
        for payload in payloads {
            seen.entry(payload.to_vec()).or_default().push(way);
        }
    }
    let counts: Vec<(&str, usize)> = ways.iter().map(|(way, p)| (*way, p.len())).collect();
    let twice: Vec<_> = seen.iter().filter(|(_, ways)| ways.len() > 1).take(5).collect();
    assert!(twice.is_empty(), "messages that went two ways: {twice:?}; {counts:?}");
    assert_eq!(seen.len(), sent, "every message sent went exactly one way: {counts:?}");
    assert!(
        !log.unsent.is_empty(),
        "no send lost the race in {ROUNDS} rounds: the test did not test it ({counts:?})"
    );
}
