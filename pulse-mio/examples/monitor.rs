//! A tiny load balancer that sends clients only to healthy backends: the
//! backends are checked over HTTP by pulse-monitor, run by a pulse-mio
//! `Watcher` in the balancer's own `mio::Poll`; each client connection is
//! answered with a redirect to one of the healthy set, chosen by weight,
//! or with 503 when there is none. Workers may also announce themselves
//! over UDP; their transitions are printed.
//!
//! Run: `cargo run -p pulse-mio --features monitor --example monitor -- 127.0.0.1:8080 127.0.0.1:9001 127.0.0.1:9002`
//! (the balancer's address, then each backend's; every backend answers
//! `GET /health`), then `curl -v 127.0.0.1:8080/`. Announcements go to the
//! balancer's port over UDP, for service ids 1 to 10.

use std::io::Write;
use std::net::SocketAddr;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use pulse_mio::monitor::{WatchConfig, Watcher};
use pulse_monitor::{Check, Config, Event, HttpCheck, Monitor, PoolId, TargetId, TargetSpec};

/// The balancer's own token is below 1,000; the watcher gets the rest.
const CLIENTS: Token = Token(0);
const WATCHER_TOKENS: std::ops::Range<usize> = 1_000..100_000;

/// The backends and the order to share clients among them.
struct Balancer {
    pool: PoolId,
    backends: Vec<(TargetId, SocketAddr)>,
    /// Counts clients: each takes the next slot of the weighted circle.
    next: u64,
}

impl Balancer {
    /// The backend for the next client, by weight, from the healthy set.
    fn pick(&mut self, watcher: &Watcher) -> Option<SocketAddr> {
        let healthy: Vec<(TargetId, u32)> = watcher.monitor().healthy(self.pool).collect();
        let total: u64 = healthy.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return None;
        }
        let mut slot = self.next % total;
        self.next += 1;
        let (target, _) = healthy.into_iter().find(|(_, weight)| {
            let here = slot < u64::from(*weight);
            slot = slot.saturating_sub(u64::from(*weight));
            here
        })?;
        self.backends.iter().find(|(t, _)| *t == target).map(|(_, addr)| *addr)
    }
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

    let mut poll = Poll::new()?;
    let mut clients = TcpListener::bind(listen)?;
    poll.registry().register(&mut clients, CLIENTS, Interest::READABLE)?;

    let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed())
        .expect("the LAN preset is valid");
    let mut watcher = Watcher::new(WatchConfig::default(), monitor, poll.registry(), WATCHER_TOKENS)?;
    let pool = watcher.monitor_mut().add_pool();
    let health = HttpCheck::get("/health").expect("a valid path");
    let health = watcher.monitor_mut().add_check(Check::Http(health));
    let mut balancer = Balancer {
        pool,
        backends: Vec::new(),
        next: 0,
    };
    for addr in backends {
        let target = watcher
            .add_target(TargetSpec::checked(pool, health), Some(addr))
            .expect("the pool and check exist");
        balancer.backends.push((target, addr));
    }
    let workers = watcher.monitor_mut().add_pool();
    for service in 1..=10 {
        watcher
            .add_target(TargetSpec::announced(workers, service), None)
            .expect("the pool exists");
    }
    let announce = watcher.listen_announcements(clients.local_addr()?)?;
    println!(
        "balancing on {}, announcements on UDP {announce}",
        clients.local_addr()?
    );

    let mut events = Events::with_capacity(1024);
    loop {
        // Every ready socket is seen before the monitor's timers run,
        // however many one poll returns.
        let sockets = watcher.probes() + 2;
        let timeout = watcher.poll_timeout();
        pulse_mio::poll_all(&mut poll, &mut events, timeout, sockets, |event| {
            if watcher.handle_event(event) {
                return;
            }
            if event.token() == CLIENTS {
                while let Ok((mut client, _)) = clients.accept() {
                    let answer = match balancer.pick(&watcher) {
                        Some(backend) => format!(
                            "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{backend}/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        ),
                        None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                    };
                    // A fresh socket takes a short answer at once.
                    let _ = client.write(answer.as_bytes());
                }
            }
        })?;
        watcher.process();
        while let Some(event) = watcher.poll_event() {
            match event {
                Event::Transition(t) => println!("{}: {} -> {} ({:?})", t.target, t.from, t.to, t.reason),
                Event::PoolChanged(pool) => {
                    let healthy: Vec<String> = watcher
                        .monitor()
                        .healthy(pool)
                        .map(|(t, w)| format!("{t} ×{w}"))
                        .collect();
                    println!("pool {}: healthy {}", pool.index(), healthy.join(", "));
                }
                other => println!("{other:?}"),
            }
        }
    }
}
