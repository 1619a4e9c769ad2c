//! An echo server: every message comes back with its tag.
//!
//! Run: `cargo run -p pulse-tokio --example tokio_echo_server -- 127.0.0.1:7000`
//! (add `--udp` to serve over UDP instead of TCP).

use std::net::SocketAddr;
use std::time::Duration;

use pulse_proto::Config;
use pulse_tokio::{Connection, Event, Listener, UdpListener};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let udp = std::env::args().any(|a| a == "--udp");
    let addr = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "127.0.0.1:7000".to_string());
    // What the server proposes; it agrees to what clients ask within its
    // bounds.
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    if udp {
        let listener = UdpListener::bind(addr, config).await?;
        println!("echo server on udp {}", listener.local_addr());
        // `accept` fails only if the socket itself failed.
        loop {
            let (conn, peer) = listener.accept().await?;
            tokio::spawn(echo(conn, peer));
        }
    }
    let listener = Listener::bind(addr, config).await?;
    println!("echo server on tcp {}", listener.local_addr()?);
    // `accept` returns no error that passes (out of descriptors, a
    // connection reset before it was taken): the loop keeps serving.
    loop {
        let (conn, peer) = listener.accept().await?;
        tokio::spawn(echo(conn, peer));
    }
}

/// Sends back what `peer` sends, and says how its connection goes.
async fn echo(conn: Connection, peer: SocketAddr) {
    let closed = loop {
        let (tag, payload) = match conn.recv().await {
            Event::Message { tag, payload } => (tag, payload),
            Event::Connected(agreed) => {
                println!("{peer}: connected, heartbeat every {:?}", agreed.interval());
                continue;
            }
            Event::PeerDead { silent_for } => {
                println!("{peer}: silent for {silent_for:?}, declared dead");
                continue;
            }
            Event::Closed(closed) => break closed,
            _ => continue,
        };
        if conn.send(tag, payload).await.is_err() {
            break conn.closed().await;
        }
    };
    // A peer that is not pulse (an HTTP request, a scanner) says so here.
    match closed.error {
        Some(error) => println!("{peer}: refused: {error}"),
        None => println!("{peer}: {} ({:?})", closed.code, closed.initiator),
    }
}
