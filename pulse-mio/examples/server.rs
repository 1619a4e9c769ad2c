//! A pulse-mio echo server that reports what happens to its connections.
//!
//! Run: `cargo run --release -p pulse-mio --example server -- 127.0.0.1:7100`
//! Stop it with Ctrl-C (or from code, with `Handle::shutdown`).

use std::net::SocketAddr;

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{Closed, Event};

struct Echo {
    open: usize,
}

impl Handler for Echo {
    /// Each connection keeps its peer's address.
    type Conn = SocketAddr;

    fn accepted(&mut self, peer: SocketAddr) -> SocketAddr {
        peer
    }

    fn on_open(&mut self, _ctx: &mut Ctx<'_, SocketAddr>, _conn: ConnId) {
        self.open += 1;
        if self.open.is_power_of_two() {
            println!("{} connections open", self.open);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, SocketAddr>, conn: ConnId, tag: u16, payload: Bytes) {
        let _ = ctx.send(conn, tag, payload);
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_, SocketAddr>, conn: ConnId, event: &Event) {
        if let Event::PeerDead { silent_for } = event {
            let peer = ctx.value(conn).copied();
            println!("{peer:?}: dead after {silent_for:?} of silence");
        }
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_, SocketAddr>, _conn: ConnId, closed: &Closed, peer: SocketAddr) {
        self.open -= 1;
        match &closed.error {
            Some(error) => println!("{peer}: refused: {error}"),
            None => println!("{peer}: closed: {} ({:?} initiated)", closed.code, closed.initiator),
        }
    }
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:7100".into());
    let mut event_loop = EventLoop::new(LoopConfig::default(), Echo { open: 0 })?;
    let addr = event_loop.listen(addr.parse().expect("an address"))?;
    println!("pulse-mio echo server on {addr}");
    event_loop.run()
}
