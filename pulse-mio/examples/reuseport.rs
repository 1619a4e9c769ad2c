//! Using every core: one pulse-mio loop per core, each on its own thread,
//! all accepting on one port through `SO_REUSEPORT`. The kernel spreads new
//! connections between the loops; nothing is shared between them, so there
//! is no lock and no work stealing.
//!
//! Run: `cargo run --release -p pulse-mio --example reuseport -- 127.0.0.1:7200`
//! then point clients (e.g. the `swarm` example) at that address.
//!
//! The kernel spreads connections this way on Linux; see
//! `reuseport_listener` for what other systems do.
#![cfg_attr(
    not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))),
    allow(dead_code, unused_imports)
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::Closed;

struct Echo {
    loop_index: usize,
    open: Arc<AtomicUsize>,
}

impl Handler for Echo {
    /// Whether the connection opened (only those are counted off).
    type Conn = bool;
    fn accepted(&mut self, _peer: SocketAddr) -> bool {
        false
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_, bool>, conn: ConnId) {
        if let Some(opened) = ctx.value(conn) {
            *opened = true;
        }
        let n = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            println!("loop {}: {n} connections", self.loop_index);
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, bool>, conn: ConnId, tag: u16, payload: Bytes) {
        let _ = ctx.send(conn, tag, payload);
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, bool>, _conn: ConnId, _closed: &Closed, opened: bool) {
        if opened {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7200".into())
        .parse()
        .expect("an address");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cores)
        .map(|loop_index| {
            let listener = pulse_mio::reuseport_listener(addr)?;
            Ok(std::thread::spawn(move || -> std::io::Result<()> {
                let open = Arc::new(AtomicUsize::new(0));
                let mut event_loop = EventLoop::new(LoopConfig::default(), Echo { loop_index, open })?;
                event_loop.listen_on(listener)?;
                event_loop.run()
            }))
        })
        .collect::<std::io::Result<_>>()?;
    println!("{cores} pulse-mio loops sharing {addr}");
    for thread in threads {
        thread.join().expect("loop thread")?;
    }
    Ok(())
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
fn main() {
    eprintln!("SO_REUSEPORT is not available on this system");
}
