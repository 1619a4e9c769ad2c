//! The mio loop over real sockets on 127.0.0.1: messages and heartbeats,
//! limits, isolation of bad peers, backpressure and slow readers, and
//! graceful shutdown. Timing bounds keep a margin of at least 3× over what
//! they expect, so a loaded machine does not fail them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handle, HandleError, Handler, LoopConfig};
use pulse_proto::frame::{Frame, Hello, MAGIC};
use pulse_proto::{CloseCode, Closed, Config, Event, Initiator, SendError, StreamDecoder};

const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Default, Debug)]
struct Log {
    opened: Vec<ConnId>,
    messages: Vec<(ConnId, u16, Bytes)>,
    rtts: usize,
    verdicts: usize,
    closed: Vec<(ConnId, Closed)>,
}

/// Records everything; echoes messages when `echo`.
struct Recorder {
    log: Arc<Mutex<Log>>,
    echo: bool,
}

impl Handler for Recorder {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        self.log.lock().unwrap().opened.push(conn);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
        if self.echo {
            let _ = ctx.send(conn, tag, payload.clone());
        }
        self.log.lock().unwrap().messages.push((conn, tag, payload));
    }
    fn on_event(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, event: &Event) {
        let mut log = self.log.lock().unwrap();
        match event {
            Event::Rtt(_) => log.rtts += 1,
            Event::PeerDead { .. } => log.verdicts += 1,
            _ => {}
        }
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, conn: ConnId, closed: &Closed, _value: ()) {
        self.log.lock().unwrap().closed.push((conn, closed.clone()));
    }
}

fn session_config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(2));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

struct Server {
    addr: SocketAddr,
    handle: Handle,
    log: Arc<Mutex<Log>>,
    thread: Option<JoinHandle<pulse_mio::LoopStats>>,
}

impl Server {
    fn start(config: LoopConfig, echo: bool) -> Server {
        let log = Arc::new(Mutex::new(Log::default()));
        let mut event_loop = EventLoop::new(config, Recorder { log: log.clone(), echo }).unwrap();
        let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || {
            event_loop.run().unwrap();
            event_loop.stats()
        });
        Server {
            addr,
            handle,
            log,
            thread: Some(thread),
        }
    }

    fn stop(mut self, grace: Duration) -> pulse_mio::LoopStats {
        self.handle.shutdown(grace).unwrap();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.handle.shutdown(Duration::ZERO);
            let _ = thread.join();
        }
    }
}

/// Turns `event_loop` until `done` says so, or fails after the patience.
fn turn_until<H: Handler>(event_loop: &mut EventLoop<H>, mut done: impl FnMut(&mut EventLoop<H>) -> bool) {
    let started = Instant::now();
    while !done(event_loop) {
        assert!(started.elapsed() < PATIENCE, "waited too long");
        event_loop.turn(Some(Duration::from_millis(50))).unwrap();
    }
}

fn client_loop(config: Arc<Config>) -> (EventLoop<Recorder>, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    (
        EventLoop::new(
            LoopConfig::new(config),
            Recorder {
                log: log.clone(),
                echo: false,
            },
        )
        .unwrap(),
        log,
    )
}

#[test]
fn clients_and_server_exchange_messages_and_heartbeats_then_shut_down_cleanly() {
    let server = Server::start(LoopConfig::new(session_config(100, 400)), true);
    let (mut clients, log) = client_loop(session_config(100, 400));
    let ids: Vec<ConnId> = (0..20).map(|_| clients.connect(server.addr, ()).unwrap()).collect();
    turn_until(&mut clients, |_| log.lock().unwrap().opened.len() == 20);
    for (i, id) in ids.iter().enumerate() {
        clients
            .with_ctx(|ctx| ctx.send(*id, i as u16, Bytes::from(vec![i as u8; 1000 * i])))
            .unwrap();
    }
    turn_until(&mut clients, |_| log.lock().unwrap().messages.len() == 20);
    for (conn, tag, payload) in &log.lock().unwrap().messages {
        assert_eq!(*conn, ids[*tag as usize]);
        assert_eq!(payload, &Bytes::from(vec![*tag as u8; 1000 * *tag as usize]));
    }
    // Idle for a while: heartbeats keep every connection alive. About 15
    // round trips each in 1.5 s; a third of that shows they ran.
    let until = Instant::now() + Duration::from_millis(1500);
    turn_until(&mut clients, |_| Instant::now() >= until);
    assert!(log.lock().unwrap().rtts >= 20 * 5, "{:?}", log.lock().unwrap().rtts);
    assert!(log.lock().unwrap().closed.is_empty());
    // Graceful shutdown: every client is told "going away".
    server.handle.shutdown(Duration::from_secs(2)).unwrap();
    turn_until(&mut clients, |_| log.lock().unwrap().closed.len() == 20);
    for (_, closed) in &log.lock().unwrap().closed {
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::GOING_AWAY, Initiator::Peer),
            "{closed:?}"
        );
    }
    let server_log = server.log.clone();
    let stats = server.stop(Duration::ZERO);
    assert_eq!((stats.accepted, stats.closed), (20, 20));
    assert_eq!(server_log.lock().unwrap().verdicts, 0);
}

#[test]
fn beyond_the_connection_limit_a_client_is_refused_and_the_others_are_served() {
    let server = Server::start(
        LoopConfig {
            max_connections: 2,
            ..LoopConfig::new(session_config(1000, 3000))
        },
        true,
    );
    let (mut clients, log) = client_loop(session_config(1000, 3000));
    let first = clients.connect(server.addr, ()).unwrap();
    clients.connect(server.addr, ()).unwrap();
    turn_until(&mut clients, |_| log.lock().unwrap().opened.len() == 2);
    let third = clients.connect(server.addr, ()).unwrap();
    turn_until(&mut clients, |_| !log.lock().unwrap().closed.is_empty());
    let (closed_id, closed) = log.lock().unwrap().closed[0].clone();
    assert_eq!(closed_id, third);
    assert_eq!((closed.code, closed.initiator), (CloseCode::REFUSED, Initiator::Peer));
    clients
        .with_ctx(|ctx| ctx.send(first, 1, &b"still served"[..]))
        .unwrap();
    turn_until(&mut clients, |_| !log.lock().unwrap().messages.is_empty());
    let stats = server.stop(Duration::from_secs(1));
    assert_eq!(stats.refused, 1);
}

/// A raw TCP peer that completed the handshake by hand.
fn raw_client(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut hello = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 1,
        version_max: 1,
        interval_ms: 1000,
        dead_timeout_ms: 3000,
        max_frame_len: 1 << 20,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut hello);
    stream.write_all(&hello).unwrap();
    stream
}

/// Reads frames until a CLOSE; returns its code.
fn close_code(stream: &mut TcpStream) -> Option<CloseCode> {
    let mut decoder = StreamDecoder::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        let mut input = &buf[..n];
        while let Ok(Some(frame)) = decoder.decode(&mut input) {
            if let Frame::Close { code, .. } = frame {
                return Some(code);
            }
        }
    }
}

#[test]
fn bad_peers_are_closed_with_their_code_and_disturb_no_one_else() {
    let server = Server::start(LoopConfig::new(session_config(1000, 3000)), true);
    let (mut clients, log) = client_loop(session_config(1000, 3000));
    let good = clients.connect(server.addr, ()).unwrap();
    turn_until(&mut clients, |_| log.lock().unwrap().opened.len() == 1);

    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.set_read_timeout(Some(PATIENCE)).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(close_code(&mut garbage), Some(CloseCode::PROTOCOL_ERROR));

    let mut oversized = raw_client(server.addr);
    oversized.write_all(&[0x05, 0x80, 0x40, 0x00, 0x00]).unwrap(); // DATA of 4 MiB
    assert_eq!(close_code(&mut oversized), Some(CloseCode::FRAME_TOO_LARGE));

    // Past the burst allowance (2 T + 2 m = 7 s of PINGs 500 ms apart: 15)
    // and the two strikes.
    // One write: the server reads the whole flood at once, so it closes
    // with nothing unread and its CLOSE is not lost to a reset (a write per
    // PING could meet the reset of a server that had already closed).
    let mut flooder = raw_client(server.addr);
    let mut flood = Vec::new();
    for id in 1..=40u32 {
        Frame::Ping { id }.encode(&mut flood);
    }
    flooder.write_all(&flood).unwrap();
    assert_eq!(close_code(&mut flooder), Some(CloseCode::TOO_MANY_PINGS));

    let mut trickler = TcpStream::connect(server.addr).unwrap();
    trickler.set_read_timeout(Some(PATIENCE)).unwrap();
    trickler.write_all(&MAGIC[..2]).unwrap(); // then nothing: the handshake times out
    let started = Instant::now();
    assert_eq!(close_code(&mut trickler), Some(CloseCode::HANDSHAKE_TIMEOUT));
    // The handshake timeout is 2 s: three times that is "in time".
    assert!(started.elapsed() < Duration::from_secs(6));

    // The good connection never noticed.
    clients.with_ctx(|ctx| ctx.send(good, 7, &b"fine"[..])).unwrap();
    turn_until(&mut clients, |_| !log.lock().unwrap().messages.is_empty());
    assert!(log.lock().unwrap().closed.is_empty());
    drop(server);
}

/// Sends `total` messages of `size` bytes to every peer as fast as it
/// reads: what the queue refuses waits for `on_writable`.
struct Firehose {
    total: usize,
    size: usize,
    /// Messages queued, per connection (one connection in these tests).
    queued: usize,
    refusals: usize,
    closed: Vec<Closed>,
}

impl Firehose {
    fn new(total: usize, size: usize) -> Self {
        Firehose {
            total,
            size,
            queued: 0,
            refusals: 0,
            closed: Vec::new(),
        }
    }
}

impl Handler for Firehose {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        self.on_writable(ctx, conn);
    }
    fn on_writable(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        while self.queued < self.total {
            match ctx.send(conn, 1, Bytes::from(vec![self.queued as u8; self.size])) {
                Ok(()) => self.queued += 1,
                Err(SendError::QueueFull { .. }) => {
                    self.refusals += 1;
                    return;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.closed.push(closed.clone());
    }
}

#[test]
fn a_burst_over_the_output_limit_is_pushed_back_and_a_fast_reader_gets_all_of_it() {
    let config = session_config(1000, 3000);
    // 60 MB, sixty times the output limit, all asked for in one callback.
    let (total, size) = (1000, 60_000);
    let mut server = EventLoop::new(LoopConfig::new(config.clone()), Firehose::new(total, size)).unwrap();
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let (mut clients, log) = client_loop(config);
    clients.connect(addr, ()).unwrap();
    let started = Instant::now();
    while log.lock().unwrap().messages.len() < total {
        assert!(started.elapsed() < PATIENCE * 3, "waited too long");
        assert!(server.handler().closed.is_empty(), "{:?}", server.handler().closed);
        server.turn(Some(Duration::from_millis(1))).unwrap();
        clients.turn(Some(Duration::from_millis(1))).unwrap();
    }
    let log = log.lock().unwrap();
    for (i, (_, _, payload)) in log.messages.iter().enumerate() {
        assert_eq!(payload.len(), size);
        assert_eq!(payload[0], i as u8, "message {i} out of order");
    }
    assert!(log.closed.is_empty(), "{:?}", log.closed);
    assert!(server.handler().refusals > 0, "the queue never pushed back");
    assert_eq!(server.snapshot().closed("slow_reader"), 0);
}

#[test]
fn a_peer_that_reads_nothing_is_closed_by_the_session_as_a_slow_reader() {
    let config = session_config(1000, 3000);
    let mut event_loop = EventLoop::new(LoopConfig::new(config), Firehose::new(1000, 60_000)).unwrap();
    let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    // Never reads what the server sends, but pings (a peer that is alive):
    // only its reading is at fault.
    let mut reader = raw_client(addr);
    let (mut id, mut next_ping) = (0, Instant::now());
    turn_until(&mut event_loop, |l| {
        if Instant::now() >= next_ping {
            id += 1;
            let mut ping = Vec::new();
            Frame::Ping { id }.encode(&mut ping);
            reader.write_all(&ping).unwrap();
            next_ping += Duration::from_millis(600);
        }
        !l.handler().closed.is_empty()
    });
    assert_eq!(event_loop.handler().closed[0].code, CloseCode::SLOW_READER);
    assert_eq!(event_loop.snapshot().closed("slow_reader"), 1);
    // Its socket is full, so the CLOSE may not fit: the stream ends, with
    // it or without it.
    assert!(matches!(close_code(&mut reader), None | Some(CloseCode::SLOW_READER)));
}

#[test]
fn a_handle_refuses_commands_beyond_its_bound_but_never_a_shutdown() {
    let config = LoopConfig {
        max_commands: 4,
        ..LoopConfig::new(session_config(1000, 3000))
    };
    let mut event_loop = EventLoop::new(config, Firehose::new(0, 0)).unwrap();
    let handle = event_loop.handle();
    // The loop is not turning: commands pile up to the bound.
    for _ in 0..4 {
        handle.broadcast(1, &b"x"[..]).unwrap();
    }
    assert!(matches!(
        handle.broadcast(1, &b"x"[..]),
        Err(HandleError::Full { capacity: 4 })
    ));
    handle.shutdown(Duration::ZERO).unwrap();
    turn_until(&mut event_loop, |l| l.is_finished());
    // Taken by the loop: room again.
    handle.broadcast(1, &b"x"[..]).unwrap();
}

#[test]
fn the_open_gauge_counts_only_connections_that_opened() {
    let server = Server::start(LoopConfig::new(session_config(200, 600)), true);
    let (mut clients, log) = client_loop(session_config(200, 600));
    // A port nothing listens on: the connect is refused, it never opens.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    clients.connect(nobody, ()).unwrap();
    let conn = clients.connect(server.addr, ()).unwrap();
    turn_until(&mut clients, |_| {
        let log = log.lock().unwrap();
        log.opened.len() == 1 && log.closed.len() == 1
    });
    let counted = clients.snapshot();
    assert_eq!((counted.open, counted.opened), (1, 1), "{counted:?}");
    clients
        .with_ctx(|ctx| ctx.close(conn, CloseCode::NORMAL, "done"))
        .unwrap();
    turn_until(&mut clients, |_| log.lock().unwrap().closed.len() == 2);
    let counted = clients.snapshot();
    assert_eq!((counted.open, counted.opened), (0, 1), "{counted:?}");
}
