//! A peer that floods DATA keeps its socket readable every turn. Its
//! session's timer must still run: a peer that floods but never reads is
//! still closed as a slow reader, and a graceful close still gives up after
//! `close_timeout` on a peer that floods instead of answering.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::frame::Frame;
use pulse_proto::{CloseCode, Closed, Config, Instant as ProtoInstant, Role, SendError, Session};

const PATIENCE: Duration = Duration::from_secs(20);

/// On open: fills the connection's queue (`firehose`) or closes it.
struct Server {
    close_on_open: bool,
    closed: Vec<(Instant, Closed)>,
}

impl Handler for Server {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        if self.close_on_open {
            ctx.close(conn, CloseCode::NORMAL, "bye").unwrap();
            return;
        }
        loop {
            match ctx.send(conn, 1, Bytes::from(vec![0u8; 16 * 1024])) {
                Ok(()) => {}
                Err(SendError::QueueFull { .. }) => return,
                Err(e) => panic!("{e}"),
            }
        }
    }
    fn on_writable(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        if !self.close_on_open {
            self.on_open(ctx, conn);
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.closed.push((Instant::now(), closed.clone()));
    }
}

/// A client that says HELLO, then writes DATA as fast as the socket takes
/// it, and never reads.
fn flood(addr: SocketAddr, config: Arc<Config>, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        let mut session = Session::new(config, Role::Client, ProtoInstant::ZERO, 1).unwrap();
        let hello = session.poll_transmit(ProtoInstant::ZERO).unwrap().to_vec();
        stream.write_all(&hello).unwrap();
        let mut data = Vec::new();
        for _ in 0..16 {
            Frame::Data {
                tag: 1,
                payload: Bytes::from(vec![7u8; 4096]),
            }
            .encode(&mut data);
        }
        stream.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
        // Whole frames, however the writes split them.
        let mut at = 0;
        while !stop.load(Ordering::Relaxed) {
            match stream.write(&data[at..]) {
                Ok(n) => at = (at + n) % data.len(),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return, // closed by the server
            }
        }
    })
}

fn closed_within(close_on_open: bool, config: Arc<Config>, bound: Duration) -> (Duration, Closed) {
    let server = Server {
        close_on_open,
        closed: Vec::new(),
    };
    // One read per connection per turn: the flood outpaces the loop for
    // sure, as it does by chance with the default budget.
    let loop_config = LoopConfig {
        reads_per_event: 1,
        ..LoopConfig::new(config.clone())
    };
    let mut server = EventLoop::new(loop_config, server).unwrap();
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(addr, config, stop.clone());
    let started = Instant::now();
    while server.handler().closed.is_empty() && started.elapsed() < PATIENCE {
        server.turn(Some(Duration::from_millis(10))).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let closed = server.handler().closed.first().cloned();
    let (at, closed) = closed.unwrap_or_else(|| panic!("a flooding peer held its connection for {PATIENCE:?}"));
    let after = at - started;
    assert!(after <= bound, "closed after {after:?} ({closed:?}), bound {bound:?}");
    (after, closed)
}

#[test]
fn a_peer_that_floods_and_never_reads_is_still_closed_as_a_slow_reader() {
    // Timeout 600 ms: a peer that took nothing for that long is a slow
    // reader; 5 s is more than 8 times that.
    let config = Arc::new(
        Config::default()
            .with_timing(Duration::from_millis(200), Duration::from_millis(600))
            .with_max_queued_bytes(256 * 1024),
    );
    let (after, closed) = closed_within(false, config, Duration::from_secs(5));
    println!("closed after {after:?}: {closed:?}");
    assert_eq!(closed.code, CloseCode::SLOW_READER);
}

#[test]
fn a_graceful_close_gives_up_after_its_timeout_on_a_peer_that_floods_instead_of_answering() {
    let config = Arc::new(
        Config::default()
            .with_timing(Duration::from_millis(200), Duration::from_millis(600))
            .with_close_timeout(Duration::from_millis(500)),
    );
    let (after, closed) = closed_within(true, config, Duration::from_secs(5));
    println!("closed after {after:?}: {closed:?}");
    assert_eq!(closed.code, CloseCode::NORMAL);
}
