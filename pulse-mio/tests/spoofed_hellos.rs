//! A UDP listener keeps nothing for an address that has not proven it
//! receives (docs/PROTOCOL.md §9.1): a flood of HELLOs that never echo a
//! cookie — from many ports, with made-up cookies, or with a real cookie
//! replayed from another address — opens no connection, calls no handler,
//! and is answered with at most three times its bytes. A real client
//! connects through it all the same.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::frame::{Cookie, Frame, Hello, MAGIC};
use pulse_proto::{Closed, Config, Event};

const PATIENCE: Duration = Duration::from_secs(20);

#[derive(Default, Debug)]
struct Log {
    accepted: usize,
    opened: usize,
}

struct Recorder(Arc<Mutex<Log>>);

impl Handler for Recorder {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {
        self.0.lock().unwrap().accepted += 1;
    }
    fn on_open(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId) {
        self.0.lock().unwrap().opened += 1;
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_event(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _event: &Event) {}
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _closed: &Closed, _value: ()) {}
}

fn hello(cookie: Option<&[u8]>, attempt: u8) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 2,
        version_max: 2,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 4096,
        attempt,
        cookie: cookie.and_then(Cookie::new),
    })
    .encode(&mut bytes);
    bytes
}

/// The cookie of a RETRY datagram, if it is one.
fn retry_cookie(datagram: &[u8]) -> Option<Vec<u8>> {
    let mut body = datagram.strip_prefix(&MAGIC[..])?;
    match pulse_proto::next_datagram_frame(&mut body, 256) {
        Ok(Some(Frame::Retry { cookie, .. })) => Some(cookie.as_slice().to_vec()),
        _ => None,
    }
}

/// Every datagram waiting on `socket`, without blocking.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    std::iter::from_fn(|| socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())).collect()
}

#[test]
fn a_flood_of_unproven_hellos_opens_nothing_and_is_never_amplified() {
    let config = Arc::new(Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3)));
    let log = Arc::new(Mutex::new(Log::default()));
    let mut server = EventLoop::new(LoopConfig::new(config.clone()), Recorder(log.clone())).unwrap();
    let addr = server.listen_udp("127.0.0.1:0".parse().unwrap()).unwrap();

    // A real address gets a real cookie — then "spoofs" others with it.
    let honest = UdpSocket::bind("127.0.0.2:0").unwrap();
    honest.connect(addr).unwrap();
    honest.set_nonblocking(true).unwrap();
    honest.send(&hello(None, 0)).unwrap();
    let started = Instant::now();
    let cookie = loop {
        assert!(started.elapsed() < PATIENCE, "no RETRY");
        server.turn(Some(Duration::from_millis(10))).unwrap();
        if let Some(cookie) = drain(&honest).iter().find_map(|d| retry_cookie(d)) {
            break cookie;
        }
    };

    // The flood: from 64 ports on 8 addresses, HELLOs without a cookie,
    // with made-up cookies, and with the honest address's real cookie.
    let flooders: Vec<UdpSocket> = (0..64)
        .map(|i| {
            let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 3 + (i % 8) as u8], 0))).unwrap();
            socket.connect(addr).unwrap();
            socket.set_nonblocking(true).unwrap();
            socket
        })
        .collect();
    let (mut sent, mut answered) = (0usize, 0usize);
    for round in 0..60u32 {
        for (i, socket) in flooders.iter().enumerate() {
            let datagram = match (round as usize + i) % 3 {
                0 => hello(None, 0),
                1 => hello(Some(&(round ^ i as u32).to_be_bytes().repeat(3)), 1),
                _ => hello(Some(&cookie), 1),
            };
            if socket.send(&datagram).is_ok() {
                sent += datagram.len();
            }
        }
        server.turn(Some(Duration::ZERO)).unwrap();
        for socket in &flooders {
            answered += drain(socket).iter().map(Vec::len).sum::<usize>();
        }
    }
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        server.turn(Some(Duration::from_millis(10))).unwrap();
    }
    for socket in &flooders {
        answered += drain(socket).iter().map(Vec::len).sum::<usize>();
    }
    println!("{sent} bytes of unproven HELLOs answered with {answered} bytes");
    assert_eq!(server.connections(), 0, "an unproven address holds a connection");
    assert_eq!(server.stats().accepted, 0);
    assert_eq!(log.lock().unwrap().accepted, 0, "the handler was asked for a value");
    assert!(answered > 0, "the flood was never read");
    assert!(answered <= 3 * sent, "{answered} bytes sent for {sent} received");

    // The honest address echoes its cookie and is served.
    honest.send(&hello(Some(&cookie), 1)).unwrap();
    let started = Instant::now();
    while log.lock().unwrap().accepted == 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "the cookie's own address was never opened"
        );
        server.turn(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(server.connections(), 1);
}
