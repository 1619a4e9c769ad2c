//! A small chat: many clients through one server, each line typed by one
//! client shown to all the others.
//!
//! Run: `cargo run -p pulse-smol --example chat -- server 127.0.0.1:7001`
//! then, in other terminals: `cargo run -p pulse-smol --example chat -- client 127.0.0.1:7001 alice`

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::Config;
use pulse_smol::{Connection, Event, Listener};

/// Tag of a chat line.
const LINE: u16 = 1;

/// A chat member gone quiet for 10 s is dead; a ping every 3 s.
fn config() -> Config {
    Config::default().with_timing(Duration::from_secs(3), Duration::from_secs(10))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr: SocketAddr = args.get(2).map_or("127.0.0.1:7001", String::as_str).parse()?;
    match args.get(1).map(String::as_str) {
        Some("client") => client(addr, args.get(3).cloned().unwrap_or_else(|| "anon".into())),
        _ => server(addr),
    }
}

fn server(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let members: Arc<Mutex<HashMap<SocketAddr, Connection>>> = Arc::default();
    smol::block_on(async {
        let listener = Listener::bind(addr, config()).await?;
        println!("chat server on {}", listener.local_addr()?);
        // `accept` returns no error that passes: the loop keeps serving.
        while let Ok((conn, driver, peer)) = listener.accept().await {
            smol::spawn(driver).detach();
            let members = members.clone();
            smol::spawn(async move {
                members.lock().unwrap().insert(peer, conn.clone());
                loop {
                    match conn.recv().await {
                        Event::Message { tag: LINE, payload } => {
                            let others: Vec<Connection> = members
                                .lock()
                                .unwrap()
                                .iter()
                                .filter(|(addr, _)| **addr != peer)
                                .map(|(_, c)| c.clone())
                                .collect();
                            for other in others {
                                let _ = other.send(LINE, payload.clone()).await;
                            }
                        }
                        Event::Closed(closed) => {
                            println!("{peer} left: {}", closed.code);
                            break;
                        }
                        _ => {}
                    }
                }
                members.lock().unwrap().remove(&peer);
            })
            .detach();
        }
        Ok(())
    })
}

fn client(addr: SocketAddr, name: String) -> Result<(), Box<dyn std::error::Error>> {
    smol::block_on(async {
        let (conn, driver) = pulse_smol::connect(addr, config()).await?;
        smol::spawn(driver).detach();
        let (tx, rx) = conn.split();
        smol::spawn(async move {
            loop {
                match rx.recv().await {
                    Event::Message { payload, .. } => println!("{}", String::from_utf8_lossy(&payload)),
                    Event::PeerDead { .. } => println!("(the server stopped answering)"),
                    Event::Closed(closed) => {
                        println!("(disconnected: {})", closed.code);
                        std::process::exit(0);
                    }
                    _ => {}
                }
            }
        })
        .detach();
        // Typing blocks: read stdin on a thread of its own.
        let lines = blocking_lines();
        while let Ok(line) = lines.recv().await {
            tx.send(LINE, Bytes::from(format!("{name}: {line}"))).await?;
        }
        let _ = tx.close(pulse_proto::CloseCode::NORMAL, "bye").await;
        Ok(())
    })
}

fn blocking_lines() -> async_channel::Receiver<String> {
    let (tx, rx) = async_channel::bounded(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send_blocking(line).is_err() {
                break;
            }
        }
    });
    rx
}
