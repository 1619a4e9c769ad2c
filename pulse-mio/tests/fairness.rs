//! No peer starves the others, and no timer runs ahead of the reads: a
//! connection whose read budget ran out is read before its timer is run;
//! so is every socket that is ready when one poll cannot return them all;
//! and a UDP flood is read a budget a turn, the TCP frames beside it in
//! the same turn.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{Closed, Config, Event, Instant as ProtoInstant, Role, Session};

const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Default, Debug)]
struct Log {
    opened: usize,
    messages: Vec<Bytes>,
    rtts: usize,
    verdicts: usize,
    closed: Vec<Closed>,
}

struct Recorder(Arc<Mutex<Log>>);

impl Handler for Recorder {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId) {
        self.0.lock().unwrap().opened += 1;
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, payload: Bytes) {
        self.0.lock().unwrap().messages.push(payload);
    }
    fn on_event(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, event: &Event) {
        match event {
            Event::Rtt(_) => self.0.lock().unwrap().rtts += 1,
            Event::PeerDead { .. } => self.0.lock().unwrap().verdicts += 1,
            _ => {}
        }
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.0.lock().unwrap().closed.push(closed.clone());
    }
}

fn recorder() -> (Recorder, Arc<Mutex<Log>>) {
    let log = Arc::new(Mutex::new(Log::default()));
    (Recorder(log.clone()), log)
}

fn timing(interval_ms: u64, dead_ms: u64) -> Config {
    Config::default().with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms))
}

#[test]
fn a_timer_due_while_frames_wait_unread_runs_only_after_they_are_read() {
    // Interval 2 s, timeout 4 s: the stall threshold is 500 ms, so a timer
    // 200 ms late is an ordinary one, with a verdict if the peer was silent.
    let config = Arc::new(timing(2000, 4000));
    let (handler, log) = recorder();
    // One read of 64 KiB per turn: a 250 KB frame takes four turns.
    let loop_config = LoopConfig {
        reads_per_event: 1,
        ..LoopConfig::new(config.clone())
    };
    let mut server = EventLoop::new(loop_config, handler).unwrap();
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();

    // The client is a session driven by hand over a blocking socket: it
    // handshakes, then is silent (it never answers the server's PINGs)
    // until just before the server's dead-peer timeout.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let epoch = Instant::now();
    let now = || ProtoInstant::from_nanos(epoch.elapsed().as_nanos() as u64);
    let mut client = Session::new(config, Role::Client, now(), 1).unwrap();
    let hello_at = Instant::now();
    while let Some(bytes) = client.poll_transmit(now()) {
        let bytes = bytes.to_vec();
        stream.write_all(&bytes).unwrap();
        client.advance_transmit(bytes.len());
    }
    let turn_until = |server: &mut EventLoop<Recorder>, at: Instant| {
        while Instant::now() < at {
            server.turn(Some(Duration::from_millis(10))).unwrap();
        }
    };
    turn_until(&mut server, Instant::now() + Duration::from_millis(200));
    let mut buf = [0u8; 4096];
    while !matches!(client.poll_event(), Some(Event::Connected(_))) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed");
        client.handle_input(now(), &buf[..n]);
    }
    assert_eq!(log.lock().unwrap().opened, 1);

    // Silent until 3.95 s after the HELLO; the server's timeout ends at
    // 4 s after it read the HELLO, a few milliseconds after it was sent.
    turn_until(&mut server, hello_at + Duration::from_millis(3950));
    client.send(1, Bytes::from(vec![7u8; 250_000])).unwrap();
    let mut frame = Vec::new();
    while let Some(bytes) = client.poll_transmit(now()) {
        frame.extend_from_slice(bytes);
        let n = bytes.len();
        client.advance_transmit(n);
    }
    let writer = std::thread::spawn(move || {
        stream.write_all(&frame).unwrap();
        stream
    });
    // The server does not run while the frame arrives; it runs again 200 ms
    // past its deadline, the frame waiting in its socket.
    std::thread::sleep(hello_at + Duration::from_millis(4150) - Instant::now());
    turn_until(&mut server, Instant::now() + Duration::from_secs(1));
    let _stream = writer.join().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.verdicts, 0, "a verdict with the peer's frame waiting: {log:?}");
    assert!(log.closed.is_empty(), "{log:?}");
    assert_eq!(log.messages.len(), 1);
    assert_eq!(log.messages[0].len(), 250_000);
}

/// A client driven by hand over a blocking socket.
struct HandClient {
    session: Session,
    stream: TcpStream,
}

impl HandClient {
    fn write_out(&mut self, now: ProtoInstant) {
        while let Some(bytes) = self.session.poll_transmit(now) {
            let bytes = bytes.to_vec();
            self.stream.write_all(&bytes).unwrap();
            self.session.advance_transmit(bytes.len());
        }
    }
}

#[test]
fn a_timer_due_while_more_sockets_are_ready_than_one_poll_returns_runs_only_after_all_are_read() {
    // Interval 2 s, timeout 4 s: the stall threshold is 500 ms, so a timer
    // 200 ms late is an ordinary one, with a verdict if the peer was silent.
    const CLIENTS: usize = 64;
    let config = Arc::new(timing(2000, 4000));
    let (handler, log) = recorder();
    // 16 readiness events a poll: the 64 sockets made ready at once take
    // four polls.
    let loop_config = LoopConfig {
        events_per_poll: 16,
        ..LoopConfig::new(config.clone())
    };
    let mut server = EventLoop::new(loop_config, handler).unwrap();
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let epoch = Instant::now();
    let now = || ProtoInstant::from_nanos(epoch.elapsed().as_nanos() as u64);
    let turn_until = |server: &mut EventLoop<Recorder>, at: Instant| {
        while Instant::now() < at {
            server.turn(Some(Duration::from_millis(10))).unwrap();
        }
    };

    // Every client handshakes, then is silent (it never answers the
    // server's PINGs) until just before the server's dead-peer timeout.
    let hello_at = Instant::now();
    let mut clients: Vec<HandClient> = (0..CLIENTS)
        .map(|i| {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let session = Session::new(config.clone(), Role::Client, now(), i as u64).unwrap();
            let mut client = HandClient { session, stream };
            client.write_out(now());
            client
        })
        .collect();
    turn_until(&mut server, Instant::now() + Duration::from_millis(200));
    let mut buf = [0u8; 4096];
    for client in &mut clients {
        while !matches!(client.session.poll_event(), Some(Event::Connected(_))) {
            let n = client.stream.read(&mut buf).unwrap();
            assert!(n > 0, "the server closed");
            client.session.handle_input(now(), &buf[..n]);
        }
    }
    assert_eq!(log.lock().unwrap().opened, CLIENTS);

    // At 3.95 s every client sends a message; the server's timeouts end
    // at 4 s after it read the HELLOs, a few milliseconds after they were
    // sent. The server does not run meanwhile; it runs again 200 ms past
    // its deadlines, 64 sockets ready, 16 readiness events a poll.
    turn_until(&mut server, hello_at + Duration::from_millis(3950));
    for client in &mut clients {
        client.session.send(1, Bytes::from_static(b"alive")).unwrap();
        client.write_out(now());
    }
    std::thread::sleep((hello_at + Duration::from_millis(4150)).saturating_duration_since(Instant::now()));
    server.turn(Some(Duration::ZERO)).unwrap();
    {
        let log = log.lock().unwrap();
        assert_eq!(
            (log.verdicts, log.closed.len()),
            (0, 0),
            "verdicts with the peers' frames waiting behind a full poll"
        );
        assert_eq!(log.messages.len(), CLIENTS, "one turn reads every ready socket");
    }
    turn_until(&mut server, Instant::now() + Duration::from_millis(500));
    let log = log.lock().unwrap();
    assert_eq!((log.verdicts, log.closed.len()), (0, 0), "{log:?}");
}

#[test]
fn a_turn_reads_at_most_its_budget_of_a_udp_flood_and_the_tcp_frame_waiting_beside_it() {
    const BUDGET: usize = 64;
    const FLOOD: usize = 200;
    let config = Arc::new(timing(2000, 4000));
    let (handler, log) = recorder();
    let loop_config = LoopConfig {
        datagrams_per_turn: BUDGET,
        ..LoopConfig::new(config.clone())
    };
    let mut server = EventLoop::new(loop_config, handler).unwrap();
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let udp_addr = server.listen_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let epoch = Instant::now();
    let now = || ProtoInstant::from_nanos(epoch.elapsed().as_nanos() as u64);

    // A TCP peer, handshaken.
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let session = Session::new(config.clone(), Role::Client, now(), 1).unwrap();
    let mut tcp = HandClient { session, stream };
    tcp.write_out(now());
    let started = Instant::now();
    while log.lock().unwrap().opened == 0 {
        assert!(started.elapsed() < PATIENCE, "no handshake");
        server.turn(Some(Duration::from_millis(10))).unwrap();
    }
    let mut buf = [0u8; 4096];
    while !matches!(tcp.session.poll_event(), Some(Event::Connected(_))) {
        let n = tcp.stream.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed");
        tcp.session.handle_input(now(), &buf[..n]);
    }

    // The flood: handshake datagrams, each costing the loop a cookie and a
    // RETRY, all waiting in the UDP socket; the TCP peer's frame waits in
    // its own socket beside them.
    let datagram = Arc::new((*config).clone().with_transport(pulse_proto::Transport::Datagram));
    let mut hello_session = Session::new(datagram, Role::Client, ProtoInstant::ZERO, 2).unwrap();
    let hello = hello_session.poll_transmit(ProtoInstant::ZERO).unwrap().to_vec();
    let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    flood.connect(udp_addr).unwrap();
    flood.set_nonblocking(true).unwrap();
    for _ in 0..FLOOD {
        flood.send(&hello).unwrap();
    }
    tcp.session.send(1, Bytes::from_static(b"alive")).unwrap();
    tcp.write_out(now());
    let answered = |flood: &std::net::UdpSocket| {
        let mut buf = [0u8; 2048];
        std::iter::from_fn(|| flood.recv(&mut buf).ok()).count()
    };

    // One turn: the budget's worth of the flood, and the TCP frame.
    server.turn(Some(Duration::ZERO)).unwrap();
    let first = answered(&flood);
    assert!(
        (1..=BUDGET).contains(&first),
        "one turn answered {first} datagrams of the flood (budget {BUDGET})"
    );
    assert_eq!(
        log.lock().unwrap().messages.len(),
        1,
        "the TCP frame waited for the flood"
    );

    // The rest of the flood in later turns, never more than the budget each.
    let mut total = first;
    for _ in 0..FLOOD {
        if total == FLOOD {
            break;
        }
        server.turn(Some(Duration::from_millis(10))).unwrap();
        let turn = answered(&flood);
        assert!(turn <= BUDGET, "a turn answered {turn} datagrams (budget {BUDGET})");
        total += turn;
    }
    assert_eq!(total, FLOOD, "every datagram of the flood was answered in the end");
    let log = log.lock().unwrap();
    assert_eq!((log.verdicts, log.closed.len()), (0, 0), "{log:?}");
}
