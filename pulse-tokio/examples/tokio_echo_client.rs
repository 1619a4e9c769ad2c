//! An echo client: sends five messages a second apart and prints each
//! echo (no heartbeat is needed while they flow), then idles three seconds
//! and prints the heartbeat RTTs, then closes.
//!
//! Run the server first, then:
//! `cargo run -p pulse-tokio --example tokio_echo_client -- 127.0.0.1:7000`
//! (add `--udp` for a server started with `--udp`).

use std::time::Duration;

use pulse_proto::{CloseCode, Config};
use pulse_tokio::Event;
use tokio::time::{interval, sleep};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut addr, mut udp) = ("127.0.0.1:7000".to_string(), false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--udp" => udp = true,
            _ => addr = arg,
        }
    }
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    let conn = match udp {
        true => pulse_tokio::connect_udp(addr.as_str(), config).await?,
        false => pulse_tokio::connect(addr.as_str(), config).await?,
    };
    println!("connected to {}: {:?}", conn.peer_addr()?, conn.negotiated());
    let mut ticks = interval(Duration::from_secs(1));
    let idle = sleep(Duration::from_secs(8));
    tokio::pin!(idle);
    let mut sent = 0u16;
    loop {
        tokio::select! {
            _ = ticks.tick(), if sent < 5 => {
                conn.send(sent, format!("message {sent}")).await?;
                sent += 1;
            }
            event = conn.recv() => match event {
                Event::Message { tag, payload } => println!("echo {tag}: {}", String::from_utf8_lossy(&payload)),
                Event::Rtt(sample) => println!("heartbeat rtt {:?}", sample.rtt),
                Event::Closed(closed) => return Err(closed.into()),
                _ => {}
            },
            () = &mut idle => break,
        }
    }
    println!("{}", conn.close(CloseCode::NORMAL, "done").await?);
    Ok(())
}
