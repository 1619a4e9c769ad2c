//! The way a Rust developer writes a heartbeat server today, as the
//! comparison's reference: tokio, `tokio-util`'s length-delimited codec,
//! one task per connection, a `tokio::time::interval` per connection,
//! answering each PING with a PONG and dropping a connection silent for
//! three intervals (or `dead_ms`, when given). Frames: a 4-byte length,
//! then `PI` (a 6-byte PING) or `PONG\0\0` (a 10-byte PONG) — the sizes
//! of pulse's PING and PONG.
//!
//! It speaks the `pulse-peer` line protocol on stdin (`rss`, `cpu`,
//! `switches`, `stats`), so `pulse-load` can measure it beside pulse.
//!
//! Run: `cargo run --release -p pulse-bench-tokio -- <interval_ms> [dead_ms]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    verdicts: AtomicU64,
    closed: AtomicU64,
    pongs: AtomicU64,
}

async fn serve(stream: TcpStream, interval: Duration, dead: Duration, counters: Arc<Counters>) {
    let mut framed = Framed::new(stream, LengthDelimitedCodec::new());
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            frame = framed.next() => match frame {
                Some(Ok(frame)) => {
                    last_heard = Instant::now();
                    if &frame[..] == b"PI" {
                        if framed.send(Bytes::from_static(b"PONG\0\0")).await.is_err() {
                            break;
                        }
                        counters.pongs.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => break,
            },
            _ = tick.tick() => {
                if last_heard.elapsed() > dead {
                    counters.verdicts.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
    counters.closed.fetch_add(1, Ordering::Relaxed);
    counters.connections.fetch_sub(1, Ordering::Relaxed);
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let millis = |i: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .map(Duration::from_millis)
    };
    let interval = millis(1).unwrap_or(Duration::from_secs(1));
    let dead = millis(2).unwrap_or(interval * 3);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let counters = Arc::new(Counters::default());
    let accepting = counters.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            accepting.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(serve(stream, interval, dead, accepting.clone()));
        }
    });
    // The measuring harness's commands, answered off the runtime.
    tokio::task::spawn_blocking(move || {
        pulse_tests::peer::answer_commands(|command| {
            (command == "stats").then(|| {
                format!(
                    "connections {} verdicts {} closed {} round_trips {}",
                    counters.connections.load(Ordering::Relaxed),
                    counters.verdicts.load(Ordering::Relaxed),
                    counters.closed.load(Ordering::Relaxed),
                    counters.pongs.load(Ordering::Relaxed),
                )
            })
        })
    })
    .await
    .ok();
    Ok(())
}
