//! A tiny TCP load balancer on tokio that forwards clients only to
//! healthy backends: pulse-monitor checks each backend over HTTP
//! (`GET /health`), run by pulse-tokio's monitor driver; each client
//! connection is spliced to the backend the monitor picks from the pool's
//! healthy set by weight, or closed at once when nothing is healthy. What
//! the monitor says is printed as it says it.
//!
//! Run: `cargo run -p pulse-tokio --features monitor --example tokio_balancer -- 127.0.0.1:8080 127.0.0.1:9001 127.0.0.1:9002`
//! (the balancer's address, then each backend's; every backend answers
//! `GET /health`), then `curl -v 127.0.0.1:8080/`.

use std::io;
use std::net::SocketAddr;

use pulse_monitor::{Check, Config, Event, HttpCheck, Monitor, TargetSpec};
use pulse_tokio::monitor::{watch, WatchConfig, Watcher};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> io::Result<()> {
    let addrs: Vec<SocketAddr> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().expect("an address, as IP:port"))
        .collect();
    let Some((&listen, backends)) = addrs.split_first() else {
        eprintln!("usage: tokio_balancer LISTEN BACKEND...");
        std::process::exit(2);
    };

    let config = Config::lan();
    let monitor =
        Monitor::new(config, pulse_driver::clock::now(), pulse_driver::clock::seed()).expect("the LAN preset is valid");
    let (watcher, driver) = watch(WatchConfig::default(), monitor);
    tokio::spawn(driver);
    let pool = watcher.add_pool();
    let health = HttpCheck::get("/health").expect("a valid path");
    let health = watcher.add_check(Check::Http(health));
    for &backend in backends {
        let spec = TargetSpec::checked(pool, health);
        watcher
            .add_target(spec, Some(backend))
            .expect("the pool and check exist");
    }
    tokio::spawn(report(watcher.clone()));

    let clients = TcpListener::bind(listen).await?;
    println!("balancing on {}", clients.local_addr()?);
    let mut turn = 0u64;
    loop {
        let (client, _) = clients.accept().await?;
        turn += 1;
        // Nothing healthy: the client is dropped, so closed at once.
        let Some(backend) = watcher.pick(pool, turn).and_then(|target| watcher.address(target)) else {
            continue;
        };
        tokio::spawn(async move {
            if let Err(e) = splice(client, backend).await {
                eprintln!("{backend}: {e}");
            }
        });
    }
}

/// Copies bytes between `client` and `backend` both ways until both
/// sides are done.
async fn splice(mut client: TcpStream, backend: SocketAddr) -> io::Result<()> {
    let mut server = TcpStream::connect(backend).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await.map(drop)
}

/// Prints each transition and each new healthy set.
async fn report(watcher: Watcher) {
    loop {
        let line = match watcher.recv().await {
            Event::Transition(t) => format!("{}: {} -> {} ({:?})", t.target, t.from, t.to, t.reason),
            Event::PoolChanged(pool) => {
                let healthy = watcher.healthy(pool);
                let shares: Vec<String> = healthy.iter().map(|(t, w)| format!("{t} ×{w}")).collect();
                format!("pool {}: healthy {}", pool.index(), shares.join(", "))
            }
            _ => continue,
        };
        println!("{line}");
    }
}
