//! pulse-mio with real sockets on 127.0.0.1, against peers in other
//! processes: interop with pulse-smol both ways, 9,000 connections held for
//! 30 s, and a frozen server among healthy ones.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::future;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{CloseCode, Closed, Config, Event};
use pulse_tests::peer::{stat, Peer};

const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");

fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(30));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

#[derive(Default)]
struct Seen {
    opened: usize,
    messages: Vec<(u16, Bytes)>,
    rtts: usize,
    /// (which server, verdict time) per dead-peer verdict.
    verdicts: Vec<(u8, Instant)>,
    closed: Vec<(u8, Closed)>,
}

/// A client handler; each connection's value says which server it is on.
struct Clients {
    seen: Arc<Mutex<Seen>>,
}

impl Handler for Clients {
    type Conn = u8;
    fn accepted(&mut self, _peer: SocketAddr) -> u8 {
        0
    }
    fn on_open(&mut self, _ctx: &mut Ctx<'_, u8>, _conn: ConnId) {
        self.seen.lock().unwrap().opened += 1;
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, u8>, _conn: ConnId, tag: u16, payload: Bytes) {
        self.seen.lock().unwrap().messages.push((tag, payload));
    }
    fn on_event(&mut self, ctx: &mut Ctx<'_, u8>, conn: ConnId, event: &Event) {
        let server = ctx.value(conn).copied().unwrap_or(0);
        let mut seen = self.seen.lock().unwrap();
        match event {
            Event::Rtt(_) => seen.rtts += 1,
            Event::PeerDead { .. } => seen.verdicts.push((server, Instant::now())),
            _ => {}
        }
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, u8>, _conn: ConnId, closed: &Closed, server: u8) {
        self.seen.lock().unwrap().closed.push((server, closed.clone()));
    }
}

fn clients(config: Arc<Config>) -> (EventLoop<Clients>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    (
        EventLoop::new(LoopConfig::new(config), Clients { seen: seen.clone() }).unwrap(),
        seen,
    )
}

fn turn_until<H: Handler>(event_loop: &mut EventLoop<H>, patience: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < patience, "waited too long");
        event_loop.turn(Some(Duration::from_millis(50))).unwrap();
    }
}

#[test]
fn a_smol_client_and_a_mio_server_exchange_messages_and_heartbeats() {
    let server = Peer::start(PEER, &["mio-echo-server", "200", "600"]);
    let addr = server.addr.unwrap();
    smol::block_on(future::or(
        async {
            let (conn, driver) = pulse_smol::connect(addr, config(200, 600)).await.unwrap();
            smol::spawn(driver).detach();
            for i in 0..100u16 {
                conn.send(i, Bytes::from(vec![i as u8; 100 * i as usize]))
                    .await
                    .unwrap();
            }
            let (mut echoes, mut rtts) = (0, 0);
            while echoes < 100 || rtts < 5 {
                match conn.recv().await {
                    Event::Message { tag, payload } => {
                        assert_eq!(
                            (tag, payload),
                            (echoes, Bytes::from(vec![echoes as u8; 100 * echoes as usize]))
                        );
                        echoes += 1;
                    }
                    Event::Rtt(_) => rtts += 1,
                    Event::Connected(n) => assert_eq!(n.interval(), Duration::from_millis(200)),
                    other => panic!("{other:?}"),
                }
            }
            conn.close(CloseCode::NORMAL, "done").await.unwrap();
        },
        async {
            async_io::Timer::after(Duration::from_secs(20)).await;
            panic!("timed out");
        },
    ));
}

#[test]
fn a_mio_client_and_a_smol_server_exchange_messages_and_heartbeats() {
    let server = Peer::start(PEER, &["smol-echo-server", "200", "600"]);
    let (mut event_loop, seen) = clients(config(200, 600));
    let conn = event_loop.connect(server.addr.unwrap(), 1).unwrap();
    turn_until(&mut event_loop, Duration::from_secs(10), || {
        seen.lock().unwrap().opened == 1
    });
    for i in 0..100u16 {
        event_loop
            .with_ctx(|ctx| ctx.send(conn, i, Bytes::from(vec![i as u8; 100 * i as usize])))
            .unwrap();
    }
    turn_until(&mut event_loop, Duration::from_secs(10), || {
        let seen = seen.lock().unwrap();
        seen.messages.len() == 100 && seen.rtts >= 5
    });
    for (i, (tag, payload)) in seen.lock().unwrap().messages.iter().enumerate() {
        assert_eq!((*tag, payload), (i as u16, &Bytes::from(vec![i as u8; 100 * i])));
    }
    assert!(seen.lock().unwrap().closed.is_empty());
}

#[test]
fn nine_thousand_connections_hold_for_thirty_seconds_without_a_false_verdict_and_close_cleanly() {
    const N: usize = 9000;
    // Both processes hold N sockets: the server inherits the raised limit.
    pulse_tests::fd_limit::require_open_files(N as u64 + 1000);
    let mut server = Peer::start(PEER, &["mio-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    let (mut event_loop, seen) = clients(config(1000, 3000));
    for i in 0..N {
        let local = SocketAddr::from(([127, 0, 0, 2 + (i % 8) as u8], 0));
        event_loop.connect_from(local, addr, 1).unwrap();
    }
    turn_until(&mut event_loop, Duration::from_secs(60), || {
        seen.lock().unwrap().opened == N
    });
    let until = Instant::now() + Duration::from_secs(30);
    turn_until(&mut event_loop, Duration::from_secs(40), || Instant::now() >= until);
    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.verdicts.is_empty() && seen.closed.is_empty(),
            "{} verdicts, {} closed, the first: {:?}",
            seen.verdicts.len(),
            seen.closed.len(),
            seen.closed.first()
        );
        // About 30 round trips each in 30 s; a third of that, so a loaded
        // machine does not fail it, still shows the heartbeats ran.
        assert!(seen.rtts >= N * 10, "only {} round trips", seen.rtts);
    }
    assert_eq!(
        stat(&server.ask("stats"), "verdicts"),
        0,
        "the server gave a false verdict"
    );
    // Graceful shutdown of the server: every client is told "going away".
    let answer = std::thread::scope(|scope| {
        let asking = scope.spawn(|| server.ask("shutdown"));
        turn_until(&mut event_loop, Duration::from_secs(30), || {
            seen.lock().unwrap().closed.len() == N
        });
        asking.join().unwrap()
    });
    assert_eq!(answer, format!("closed {N}"));
    let seen = seen.lock().unwrap();
    let otherwise: Vec<_> = seen
        .closed
        .iter()
        .filter(|(_, c)| c.code != CloseCode::GOING_AWAY)
        .collect();
    assert!(
        otherwise.is_empty(),
        "{} connections ended otherwise, the first: {:?}",
        otherwise.len(),
        otherwise.first()
    );
}

#[test]
fn a_frozen_server_is_declared_dead_in_time_and_the_other_connections_are_untouched() {
    let frozen = Peer::start(PEER, &["mio-echo-server", "1000", "3000"]);
    let healthy = Peer::start(PEER, &["mio-echo-server", "1000", "3000"]);
    let (mut event_loop, seen) = clients(config(1000, 3000));
    for _ in 0..50 {
        event_loop.connect(frozen.addr.unwrap(), 1).unwrap();
        event_loop.connect(healthy.addr.unwrap(), 2).unwrap();
    }
    turn_until(&mut event_loop, Duration::from_secs(10), || {
        seen.lock().unwrap().opened == 100
    });
    let settle = Instant::now() + Duration::from_secs(3);
    turn_until(&mut event_loop, Duration::from_secs(10), || Instant::now() >= settle);
    frozen.freeze();
    let frozen_at = Instant::now();
    turn_until(&mut event_loop, Duration::from_secs(10), || {
        seen.lock().unwrap().verdicts.len() == 50
    });
    let after = Instant::now() + Duration::from_secs(2);
    turn_until(&mut event_loop, Duration::from_secs(10), || Instant::now() >= after);
    let seen = seen.lock().unwrap();
    for (server, at) in &seen.verdicts {
        assert_eq!(*server, 1, "a healthy connection was convicted");
        let after = *at - frozen_at;
        // At most the 3 s timeout from the last frame heard, which came
        // before the freeze; the slack past it is three intervals, so a
        // loaded machine does not fail it.
        assert!(
            after <= Duration::from_secs(6),
            "verdict {after:?} after the freeze (timeout 3 s)"
        );
    }
    assert!(seen
        .closed
        .iter()
        .all(|(server, c)| *server == 1 && c.code == CloseCode::TIMED_OUT));
    assert_eq!(seen.closed.len(), 50);
    frozen.thaw();
}

#[test]
fn a_smol_udp_client_and_a_mio_udp_listener_exchange_messages_and_heartbeats() {
    // The mio loop runs on a thread of this process; it echoes over UDP.
    let udp = Arc::new(
        (*config(200, 600))
            .clone()
            .with_transport(pulse_proto::Transport::Datagram),
    );
    let mut server = EventLoop::new(LoopConfig::new(udp.clone()), Echo).unwrap();
    let addr = server.listen_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || {
        server.run().unwrap();
        server.stats()
    });
    smol::block_on(future::or(
        async {
            let (conn, driver) = pulse_smol::connect_udp(addr, udp.clone()).await.unwrap();
            smol::spawn(driver).detach();
            for i in 0..20u16 {
                conn.send(i, Bytes::from(vec![i as u8; 500])).await.unwrap();
            }
            let (mut echoes, mut rtts) = (0, 0);
            while echoes < 20 || rtts < 5 {
                match conn.recv().await {
                    Event::Message { tag, payload } => {
                        assert_eq!(payload, Bytes::from(vec![tag as u8; 500]));
                        echoes += 1;
                    }
                    Event::Rtt(_) => rtts += 1,
                    Event::Closed(c) => panic!("{c:?}"),
                    _ => {}
                }
            }
            conn.close(CloseCode::NORMAL, "done").await.unwrap();
        },
        async {
            async_io::Timer::after(Duration::from_secs(20)).await;
            panic!("timed out");
        },
    ));
    handle.shutdown(Duration::from_secs(1)).unwrap();
    let stats = thread.join().unwrap();
    assert_eq!((stats.accepted, stats.closed), (1, 1));
}

/// Echoes on TCP and UDP, in a thread of this process.
struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
        let _ = ctx.send(conn, tag, payload);
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _closed: &Closed, _value: ()) {}
}

#[test]
fn a_message_near_the_datagram_limit_crosses_a_mio_udp_listener_with_default_settings() {
    // The loop's config is a stream config, as the default is: its UDP
    // listener must still make datagram sessions of it. Datagrams of up to
    // 60,000 bytes (loopback carries them whole): a stream session would
    // cut each message into 16 KiB chunks, one datagram each, and the peer
    // could not put them together.
    const DATAGRAM: usize = 60_000;
    let stream = (*config(200, 600)).clone().with_max_datagram_size(DATAGRAM);
    assert_eq!(stream.transport, pulse_proto::Transport::Stream);
    let mut server = EventLoop::new(LoopConfig::new(stream.clone()), Echo).unwrap();
    let addr = server.listen_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    let udp = Arc::new(stream.with_transport(pulse_proto::Transport::Datagram));
    let largest = DATAGRAM - pulse_proto::frame::data_overhead(DATAGRAM);
    smol::block_on(future::or(
        async {
            let (conn, driver) = pulse_smol::connect_udp(addr, udp.clone()).await.unwrap();
            smol::spawn(driver).detach();
            let sizes = [largest, largest - 1, 20_000, 1000];
            for (tag, size) in sizes.iter().enumerate() {
                conn.send(tag as u16, Bytes::from(vec![tag as u8; *size]))
                    .await
                    .unwrap();
            }
            let mut echoed = Vec::new();
            while echoed.len() < sizes.len() {
                match conn.recv().await {
                    Event::Message { tag, payload } => {
                        assert_eq!(payload, Bytes::from(vec![tag as u8; sizes[tag as usize]]));
                        echoed.push(tag);
                    }
                    Event::Closed(c) => panic!("{c:?}"),
                    _ => {}
                }
            }
            conn.close(CloseCode::NORMAL, "done").await.unwrap();
        },
        async {
            async_io::Timer::after(Duration::from_secs(20)).await;
            panic!("timed out: the messages near the datagram limit did not come back");
        },
    ));
    handle.shutdown(Duration::from_secs(1)).unwrap();
    thread.join().unwrap();
}

#[test]
fn a_mio_server_out_of_descriptors_accepts_and_serves_every_connection_once_they_are_free() {
    // The server may hold 64 descriptors: about 55 connections.
    let mut server = Peer::start("prlimit", &["--nofile=64:64", PEER, "mio-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    // A flood far past the limit (but within a backlog of 128): the kernel
    // completes the handshakes and queues them; the server accepts until
    // it runs out of descriptors.
    let flood: Vec<std::net::TcpStream> = (0..150).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(flood);
    // Every later connection is accepted and served, one after another:
    // none may wait in the backlog for a connection after it.
    let (mut event_loop, seen) = clients(config(1000, 3000));
    for i in 0..20usize {
        let conn = event_loop.connect(addr, 1).unwrap();
        turn_until(&mut event_loop, Duration::from_secs(15), || {
            seen.lock().unwrap().opened == i + 1
        });
        event_loop
            .with_ctx(|ctx| ctx.send(conn, i as u16, Bytes::from(vec![i as u8; 100])))
            .unwrap();
        turn_until(&mut event_loop, Duration::from_secs(15), || {
            seen.lock().unwrap().messages.len() == i + 1
        });
    }
    assert!(seen.lock().unwrap().closed.is_empty());
    assert_eq!(stat(&server.ask("stats"), "connections"), 20);
}
