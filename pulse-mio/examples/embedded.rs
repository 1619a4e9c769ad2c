//! pulse inside a mio loop of your own: the application polls, owns some
//! sockets of its own (here a plain TCP port that prints the counters to
//! whoever connects), and hands pulse the events of the tokens it gave it.
//!
//! Run: `cargo run -p pulse-mio --example embedded -- 127.0.0.1:7300 127.0.0.1:7301`
//! then point pulse clients at the first address (e.g. the `swarm`
//! example), and `nc 127.0.0.1 7301` for the counters.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use pulse_mio::{ConnId, Ctx, Endpoint, Handler, LoopConfig};
use pulse_proto::{Closed, Config};

/// The application's own tokens are below 1,000; pulse gets the rest.
const STATUS: Token = Token(0);
const PULSE_TOKENS: std::ops::Range<usize> = 1_000..usize::MAX;

struct Echo;

impl Handler for Echo {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_message(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
        let _ = ctx.send(conn, tag, payload);
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _closed: &Closed, _value: ()) {}
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let pulse_addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:7300")
        .parse()
        .expect("an address");
    let status_addr: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:7301")
        .parse()
        .expect("an address");

    let mut poll = Poll::new()?;
    let mut status = TcpListener::bind(status_addr)?;
    poll.registry().register(&mut status, STATUS, Interest::READABLE)?;

    let session = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    let mut pulse = Endpoint::new(LoopConfig::new(session), Echo, poll.registry(), PULSE_TOKENS)?;
    let pulse_addr = pulse.listen(pulse_addr)?;
    println!("pulse on {pulse_addr}, counters on {}", status.local_addr()?);

    let mut events = Events::with_capacity(1024);
    loop {
        // Every ready socket is seen before `process` runs pulse's timers,
        // however many one poll returns.
        let sockets = pulse.connections() + 2;
        pulse_mio::poll_all(&mut poll, &mut events, pulse.poll_timeout(), sockets, |event| {
            if pulse.handle_event(event) {
                return;
            }
            if event.token() == STATUS {
                // The application's own socket: accept everything waiting.
                while let Ok((mut stream, _)) = status.accept() {
                    let _ = writeln!(stream, "{} connections, {:?}", pulse.connections(), pulse.snapshot());
                }
            }
        })?;
        pulse.process()?;
    }
}
