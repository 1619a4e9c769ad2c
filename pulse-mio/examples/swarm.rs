//! A client swarm for load tests: opens N connections to a pulse server,
//! spreading their source addresses over 127.0.0.2 .. 127.0.0.9 (each has
//! its own ports), holds them idle, and prints once a second how many are
//! open, the heartbeat round trips, and any verdicts.
//!
//! Run: `cargo run --release -p pulse-mio --example swarm -- 127.0.0.1:7100 5000 [seconds]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{Closed, Config, Event};

#[derive(Default)]
struct Swarm {
    open: usize,
    round_trips: u64,
    verdicts: u64,
    closed: u64,
}

impl Handler for Swarm {
    /// Whether the connection opened: one that never did (refused, or its
    /// handshake failed) still gets `on_close`, and must not be taken off
    /// the open count.
    type Conn = bool;
    fn accepted(&mut self, _peer: SocketAddr) -> bool {
        false
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_, bool>, conn: ConnId) {
        self.open += 1;
        if let Some(opened) = ctx.value(conn) {
            *opened = true;
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, bool>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_event(&mut self, _ctx: &mut Ctx<'_, bool>, _conn: ConnId, event: &Event) {
        match event {
            Event::Rtt(_) => self.round_trips += 1,
            Event::PeerDead { .. } => self.verdicts += 1,
            _ => {}
        }
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, bool>, _conn: ConnId, _closed: &Closed, opened: bool) {
        if opened {
            self.open -= 1;
        }
        self.closed += 1;
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let server: SocketAddr = args
        .get(1)
        .map_or("127.0.0.1:7100", String::as_str)
        .parse()
        .expect("an address");
    let count: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(30);
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    let mut event_loop = EventLoop::new(LoopConfig::new(config), Swarm::default())?;
    for i in 0..count {
        let local = SocketAddr::from(([127, 0, 0, 2 + (i % 8) as u8], 0));
        event_loop.connect_from(local, server, false)?;
    }
    let started = Instant::now();
    let mut next_report = started + Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(seconds) {
        event_loop.turn(Some(Duration::from_millis(100)))?;
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let s = event_loop.handler();
            println!(
                "{:>4} s: {} open, {} round trips, {} verdicts, {} closed",
                started.elapsed().as_secs(),
                s.open,
                s.round_trips,
                s.verdicts,
                s.closed
            );
        }
    }
    event_loop.shutdown(Duration::from_secs(2));
    event_loop.run()
}
