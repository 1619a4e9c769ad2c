//! A tiny TCP load balancer that forwards clients only to healthy
//! backends: pulse-monitor checks each backend over HTTP (`GET /health`),
//! run by pulse-smol's monitor driver; each client connection is piped to
//! a backend of the pool's healthy set, chosen by weight, or closed at
//! once when there is none. Transitions are printed as they come.
//!
//! Run: `cargo run -p pulse-smol --features monitor --example balancer -- 127.0.0.1:8080 127.0.0.1:9001 127.0.0.1:9002`
//! (the balancer's address, then each backend's; every backend answers
//! `GET /health`), then `curl -v 127.0.0.1:8080/`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_net::{TcpListener, TcpStream};
use futures_lite::{future, io};
use pulse_monitor::{Check, Config, Event, HttpCheck, Monitor, PoolId, TargetId, TargetSpec};
use pulse_smol::monitor::{watch, WatchConfig, Watcher};

/// The backends, and the order to share clients among them.
struct Balancer {
    watcher: Watcher,
    pool: PoolId,
    backends: Vec<(TargetId, SocketAddr)>,
    /// Counts clients: each takes the next slot of the weighted circle.
    next: AtomicU64,
}

impl Balancer {
    /// The backend for the next client, by weight, from the healthy set.
    fn pick(&self) -> Option<SocketAddr> {
        let healthy = self.watcher.healthy(self.pool);
        let total: u64 = healthy.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut slot = self.next.fetch_add(1, Ordering::Relaxed) % total;
        let (target, _) = healthy.into_iter().find(|(_, weight)| {
            let here = slot < u64::from(*weight);
            slot = slot.saturating_sub(u64::from(*weight));
            here
        })?;
        self.backends.iter().find(|(t, _)| *t == target).map(|(_, addr)| *addr)
    }
}

/// Pipes `client` to `backend` both ways until either side closes.
async fn forward(client: TcpStream, backend: SocketAddr) -> std::io::Result<()> {
    let server = TcpStream::connect(backend).await?;
    let (mut client_in, mut client_out) = (client.clone(), client);
    let (mut server_in, mut server_out) = (server.clone(), server);
    let up = async {
        io::copy(&mut client_in, &mut server_out).await?;
        server_out.shutdown(std::net::Shutdown::Write)
    };
    let down = async {
        io::copy(&mut server_in, &mut client_out).await?;
        client_out.shutdown(std::net::Shutdown::Write)
    };
    future::try_zip(up, down).await.map(|_| ())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse()
        .expect("an address");
    let backends: Vec<SocketAddr> = args.map(|a| a.parse().expect("a backend address")).collect();

    smol::block_on(async {
        let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed())
            .expect("the LAN preset is valid");
        let (watcher, driver) = watch(WatchConfig::default(), monitor);
        smol::spawn(driver).detach();
        let pool = watcher.add_pool();
        let health = watcher.add_check(Check::Http(HttpCheck::get("/health").expect("a valid path")));
        let backends = backends
            .into_iter()
            .map(|addr| {
                let target = watcher
                    .add_target(TargetSpec::checked(pool, health), Some(addr))
                    .expect("the pool and check exist");
                (target, addr)
            })
            .collect();
        let balancer = Arc::new(Balancer {
            watcher: watcher.clone(),
            pool,
            backends,
            next: AtomicU64::new(0),
        });

        // What the monitor says, as it says it.
        smol::spawn(async move {
            loop {
                match watcher.recv().await {
                    Event::Transition(t) => println!("{}: {} -> {} ({:?})", t.target, t.from, t.to, t.reason),
                    Event::PoolChanged(pool) => {
                        let healthy: Vec<String> =
                            watcher.healthy(pool).iter().map(|(t, w)| format!("{t} ×{w}")).collect();
                        println!("pool {}: healthy {}", pool.index(), healthy.join(", "));
                    }
                    _ => {}
                }
            }
        })
        .detach();

        let clients = TcpListener::bind(listen).await?;
        println!("balancing on {}", clients.local_addr()?);
        loop {
            let (client, _) = clients.accept().await?;
            // No healthy backend: the client is closed at once.
            if let Some(backend) = balancer.pick() {
                smol::spawn(async move {
                    if let Err(e) = forward(client, backend).await {
                        eprintln!("{backend}: {e}");
                    }
                })
                .detach();
            }
        }
    })
}
