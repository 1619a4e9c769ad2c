//! A pulse-mio echo server that reports what happens to its connections.
//!
//! Run: `cargo run --release -p pulse-mio --example server -- 127.0.0.1:7100 [--udp]`
//!
//! With `--udp` it also serves pulse over UDP on the same port. Press Enter
//! (or close stdin) for a graceful shutdown: every client is told "going
//! away" after what was queued for it, and the server exits.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{Closed, Config, Event};

struct Echo {
    open: usize,
}

/// What the server keeps with each connection.
struct Peer {
    addr: SocketAddr,
    /// `on_open` came: only then does `on_close` take it off the count (a
    /// connection that never completed its handshake, such as an HTTP
    /// probe, is closed without having opened).
    opened: bool,
}

impl Handler for Echo {
    type Conn = Peer;

    fn accepted(&mut self, addr: SocketAddr) -> Peer {
        Peer { addr, opened: false }
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_, Peer>, conn: ConnId) {
        self.open += 1;
        if let Some(peer) = ctx.value(conn) {
            peer.opened = true;
        }
        if self.open.is_power_of_two() {
            println!("{} connections open", self.open);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Peer>, conn: ConnId, tag: u16, payload: Bytes) {
        // A full output queue drops the echo: this server keeps no backlog
        // (see `Handler::on_writable` for one that does).
        let _ = ctx.send(conn, tag, payload);
    }

    fn on_event(&mut self, ctx: &mut Ctx<'_, Peer>, conn: ConnId, event: &Event) {
        if let Event::PeerDead { silent_for } = event {
            if let Some(peer) = ctx.value(conn) {
                println!("{}: dead after {silent_for:?} of silence", peer.addr);
            }
        }
    }

    fn on_close(&mut self, _ctx: &mut Ctx<'_, Peer>, _conn: ConnId, closed: &Closed, peer: Peer) {
        if peer.opened {
            self.open -= 1;
        }
        println!("{}: {closed}", peer.addr);
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let udp = args.iter().any(|a| a == "--udp");
    let addr: SocketAddr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("127.0.0.1:7100", String::as_str)
        .parse()
        .expect("an address");
    let session = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    let mut event_loop = EventLoop::new(LoopConfig::new(session), Echo { open: 0 })?;
    let addr = event_loop.listen(addr)?;
    if udp {
        event_loop.listen_udp(addr)?;
    }
    println!(
        "pulse-mio echo server on {addr}{}",
        if udp { " (TCP and UDP)" } else { "" }
    );
    let handle = event_loop.handle();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        println!("shutting down");
        let _ = handle.shutdown(Duration::from_secs(5));
    });
    event_loop.run()
}
