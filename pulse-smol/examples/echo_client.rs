//! An echo client: sends five messages a second apart and prints each
//! echo (no heartbeat is needed while they flow), then idles three seconds
//! and prints the heartbeat RTTs, then closes.
//!
//! Run the server first, then:
//! `cargo run -p pulse-smol --example echo_client -- 127.0.0.1:7000`
//! (add `--udp` for a server started with `--udp`).

use std::time::Duration;

use pulse_proto::{CloseCode, Config};
use pulse_smol::Event;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let udp = args.iter().any(|a| a == "--udp");
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    smol::block_on(async {
        let (conn, driver) = if udp {
            pulse_smol::connect_udp(addr.as_str(), config).await?
        } else {
            pulse_smol::connect(addr.as_str(), config).await?
        };
        smol::spawn(driver).detach();
        println!("connected to {addr}: {:?}", conn.negotiated());
        for i in 0..8u16 {
            if i < 5 {
                conn.send(i, format!("message {i}")).await?;
            }
            let print = async {
                loop {
                    match conn.recv().await {
                        Event::Message { tag, payload } => {
                            println!("echo {tag}: {}", String::from_utf8_lossy(&payload))
                        }
                        Event::Rtt(sample) => println!("heartbeat rtt {:?}", sample.rtt),
                        Event::Closed(closed) => return Err(pulse_smol::Error::Closed(closed)),
                        _ => {}
                    }
                }
            };
            futures_lite::future::or(print, async {
                async_io::Timer::after(Duration::from_secs(1)).await;
                Ok(())
            })
            .await?;
        }
        let closed = conn.close(CloseCode::NORMAL, "done").await?;
        println!("{closed}");
        Ok(())
    })
}
