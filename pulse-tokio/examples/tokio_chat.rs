//! A small chat: many clients through one server, each line typed by one
//! client shown to all the others.
//!
//! Run: `cargo run -p pulse-tokio --example tokio_chat -- server 127.0.0.1:7001`
//! then, in other terminals:
//! `cargo run -p pulse-tokio --example tokio_chat -- client 127.0.0.1:7001 alice`

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::Config;
use pulse_tokio::{Connection, Event, Listener};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::broadcast;

/// Tag of a chat line.
const LINE: u16 = 1;

/// A member gone quiet for 10 s is dead; a heartbeat every 3 s.
fn config() -> Config {
    Config::default().with_timing(Duration::from_secs(3), Duration::from_secs(10))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_default();
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:7001").parse()?;
    if role == "client" {
        return client(addr, args.next().unwrap_or_else(|| "anon".to_string())).await;
    }
    let listener = Listener::bind(addr, config()).await?;
    println!("chat server on {}", listener.local_addr()?);
    // Every line, with who said it, to every member's task.
    let (lines, _) = broadcast::channel::<(SocketAddr, Bytes)>(256);
    loop {
        let (conn, peer) = listener.accept().await?;
        tokio::spawn(member(conn, peer, lines.clone()));
    }
}

/// One member on the server: its lines to the others, theirs to it.
async fn member(conn: Connection, peer: SocketAddr, lines: broadcast::Sender<(SocketAddr, Bytes)>) {
    let mut heard = lines.subscribe();
    loop {
        tokio::select! {
            event = conn.recv() => match event {
                Event::Message { tag: LINE, payload } => drop(lines.send((peer, payload))),
                Event::Closed(closed) => break println!("{peer} left: {}", closed.code),
                _ => {}
            },
            line = heard.recv() => match line {
                Ok((from, text)) if from != peer => drop(conn.send(LINE, text).await),
                Ok(_) => {}
                // A member too slow to keep up misses lines, and is told.
                Err(broadcast::error::RecvError::Lagged(n)) => drop(conn.send(LINE, format!("({n} lines missed)")).await),
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
}

async fn client(addr: SocketAddr, name: String) -> Result<(), Box<dyn std::error::Error>> {
    let conn = pulse_tokio::connect(addr, config()).await?;
    let (tx, rx) = conn.split();
    tokio::spawn(async move {
        let closed = loop {
            match rx.recv().await {
                Event::Message { payload, .. } => println!("{}", String::from_utf8_lossy(&payload)),
                Event::Suspect { .. } => println!("(the server is slow to answer)"),
                Event::PeerDead { .. } => println!("(the server stopped answering)"),
                Event::Closed(closed) => break closed,
                _ => {}
            }
        };
        println!("(disconnected: {})", closed.code);
        std::process::exit(0);
    });
    let mut typed = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = typed.next_line().await? {
        tx.send(LINE, format!("{name}: {line}")).await?;
    }
    tx.close(pulse_proto::CloseCode::NORMAL, "bye").await?;
    Ok(())
}
