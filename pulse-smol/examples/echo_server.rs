//! An echo server: every message comes back with its tag.
//!
//! Run: `cargo run -p pulse-smol --example echo_server -- 127.0.0.1:7000`

use pulse_proto::Config;
use pulse_smol::{Incoming, Listener};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()?;
    smol::block_on(async {
        let listener = Listener::bind(addr, Config::default())?;
        println!("echo server on {}", listener.local_addr()?);
        loop {
            let (conn, driver, peer) = listener.accept().await?;
            smol::spawn(driver).detach();
            smol::spawn(async move {
                loop {
                    match conn.recv().await {
                        Incoming::Connected(n) => println!("{peer}: connected, interval {:?}", n.interval()),
                        Incoming::Message { tag, payload } => match conn.send(tag, payload).await {
                            Ok(()) => {}
                            Err(_) => break,
                        },
                        Incoming::PeerDead { silent_for } => println!("{peer}: dead after {silent_for:?} of silence"),
                        Incoming::Closed(closed) => {
                            match &closed.error {
                                Some(error) => println!("{peer}: refused: {error}"),
                                None => println!("{peer}: closed: {} ({:?} initiated)", closed.code, closed.initiator),
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            })
            .detach();
        }
    })
}
