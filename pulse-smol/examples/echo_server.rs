//! An echo server: every message comes back with its tag.
//!
//! Run: `cargo run -p pulse-smol --example echo_server -- 127.0.0.1:7000`
//! (add `--udp` to serve over UDP instead of TCP).

use std::time::Duration;

use pulse_proto::Config;
use pulse_smol::{Connection, Event, Listener, UdpListener};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let udp = args.iter().any(|a| a == "--udp");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    // A server agrees to what clients ask within its bounds; these are the
    // values it would propose itself.
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    smol::block_on(async {
        if udp {
            let (listener, router) = UdpListener::bind(addr, config).await?;
            println!("echo server on udp {}", listener.local_addr());
            smol::spawn(router).detach();
            // `accept` fails only if the router is gone.
            while let Ok((conn, driver, peer)) = listener.accept().await {
                smol::spawn(driver).detach();
                smol::spawn(echo(conn, peer.to_string())).detach();
            }
        } else {
            let listener = Listener::bind(addr, config).await?;
            println!("echo server on tcp {}", listener.local_addr()?);
            // `accept` returns no error that passes (out of descriptors, a
            // connection reset before it was taken): the loop keeps serving.
            while let Ok((conn, driver, peer)) = listener.accept().await {
                smol::spawn(driver).detach();
                smol::spawn(echo(conn, peer.to_string())).detach();
            }
        }
        Ok(())
    })
}

async fn echo(conn: Connection, peer: String) {
    loop {
        match conn.recv().await {
            Event::Connected(n) => println!("{peer}: connected, interval {:?}", n.interval()),
            Event::Message { tag, payload } => match conn.send(tag, payload).await {
                Ok(()) => {}
                Err(_) => break,
            },
            Event::PeerDead { silent_for } => println!("{peer}: dead after {silent_for:?} of silence"),
            Event::Closed(closed) => {
                match &closed.error {
                    Some(error) => println!("{peer}: refused: {error}"),
                    None => println!("{peer}: {closed}"),
                }
                break;
            }
            _ => {}
        }
    }
}
