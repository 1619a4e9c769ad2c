//! An echo client: sends five messages a second apart and prints each
//! echo (no heartbeat is needed while they flow), then idles three seconds
//! and prints the heartbeat RTTs, then closes.
//!
//! Run the server first, then:
//! `cargo run -p pulse-smol --example echo_client -- 127.0.0.1:7000`

use std::time::Duration;

use pulse_proto::{CloseCode, Config};
use pulse_smol::Incoming;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into())
        .parse()?;
    let config = Config::default()
        .with_interval(Duration::from_secs(1))
        .with_dead_timeout(Duration::from_secs(3));
    smol::block_on(async {
        let (conn, driver) = pulse_smol::connect(addr, config).await?;
        smol::spawn(driver).detach();
        println!("connected to {addr}: {:?}", conn.negotiated());
        for i in 0..8u16 {
            if i < 5 {
                conn.send(i, format!("message {i}")).await?;
            }
            let deadline = async_io::Timer::after(Duration::from_secs(1));
            let print = async {
                loop {
                    match conn.recv().await {
                        Incoming::Message { tag, payload } => {
                            println!("echo {tag}: {}", String::from_utf8_lossy(&payload))
                        }
                        Incoming::Rtt(sample) => println!("heartbeat rtt {:?}", sample.rtt),
                        Incoming::Closed(closed) => return Err(pulse_smol::Error::Closed(closed)),
                        _ => {}
                    }
                }
            };
            futures_lite::future::or(print, async {
                deadline.await;
                Ok(())
            })
            .await?;
        }
        let closed = conn.close(CloseCode::NORMAL, "done").await?;
        println!("closed: {}", closed.code);
        Ok(())
    })
}
