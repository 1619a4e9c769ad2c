//! pulse's main job over real sockets on 127.0.0.1: a server in another
//! process, many idle connections held by heartbeats with their RTTs, then
//! the server frozen with SIGSTOP — its kernel still ACKs TCP, so TCP
//! keepalive would notice nothing — and every connection's dead-peer
//! verdict with its measured timing.
//!
//! Run: `cargo run --example demo`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future;
use pulse_proto::Config;
use pulse_smol::{Event, Listener};

const CONNECTIONS: usize = 200;
const INTERVAL: Duration = Duration::from_secs(1);
const DEAD_TIMEOUT: Duration = Duration::from_secs(3);

fn config() -> Config {
    Config::default().with_timing(INTERVAL, DEAD_TIMEOUT)
}

/// The server process: echo, until its stdin closes.
fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let listener = smol::block_on(Listener::bind("127.0.0.1:0", config()))?;
    println!("{}", listener.local_addr()?);
    std::thread::spawn(move || {
        smol::block_on(async {
            while let Ok((conn, driver, _)) = listener.accept().await {
                smol::spawn(driver).detach();
                smol::spawn(async move { while !matches!(conn.recv().await, Event::Closed(_)) {} }).detach();
            }
        })
    });
    let _ = std::io::stdin().lock().lines().count();
    Ok(())
}

#[derive(Default)]
struct Seen {
    rtts: Vec<Duration>,
    suspects: usize,
    verdicts: Vec<(Duration, Instant)>,
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn signal(pid: u32, which: &str) {
    let _ = Command::new("kill").args([which, &pid.to_string()]).status();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--serve") {
        return serve();
    }
    println!("pulse demo: real sockets on 127.0.0.1, interval {INTERVAL:?}, dead-peer timeout {DEAD_TIMEOUT:?}\n");
    let mut server = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = server.id();
    let mut line = String::new();
    BufReader::new(server.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
    let addr: std::net::SocketAddr = line.trim().parse()?;
    println!("server process {pid} listening on {addr}");

    let seen = Arc::new(Mutex::new(Seen::default()));
    smol::block_on(async {
        let started = Instant::now();
        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS {
            let (conn, driver) = pulse_smol::connect(addr, config()).await?;
            smol::spawn(driver).detach();
            let seen = seen.clone();
            connections.push(smol::spawn(async move {
                loop {
                    match conn.recv().await {
                        Event::Rtt(sample) => seen.lock().unwrap().rtts.push(sample.rtt),
                        Event::Suspect { .. } => seen.lock().unwrap().suspects += 1,
                        Event::PeerDead { silent_for } => {
                            seen.lock().unwrap().verdicts.push((silent_for, Instant::now()));
                        }
                        Event::Closed(_) => return,
                        _ => {}
                    }
                }
            }));
        }
        println!(
            "{CONNECTIONS} connections up in {:?}; idle, held by heartbeats:",
            started.elapsed()
        );
        for second in 1..=4 {
            async_io::Timer::after(Duration::from_secs(1)).await;
            let mut rtts = std::mem::take(&mut seen.lock().unwrap().rtts);
            rtts.sort();
            println!(
                "  second {second}: {:>3} heartbeat round trips, RTT median {:?}, p99 {:?}",
                rtts.len(),
                percentile(&rtts, 50),
                percentile(&rtts, 99)
            );
        }
        println!("\nfreezing the server with SIGSTOP (its kernel still ACKs TCP: TCP keepalive would see nothing)");
        signal(pid, "-STOP");
        let frozen_at = Instant::now();
        let all_dead = future::or(
            async {
                for c in connections {
                    c.await;
                }
                true
            },
            async {
                async_io::Timer::after(DEAD_TIMEOUT * 3).await;
                false
            },
        )
        .await;
        let seen = seen.lock().unwrap();
        let mut silences: Vec<Duration> = seen.verdicts.iter().map(|(s, _)| *s).collect();
        silences.sort();
        let mut since_freeze: Vec<Duration> = seen.verdicts.iter().map(|(_, at)| *at - frozen_at).collect();
        since_freeze.sort();
        println!(
            "  {} suspicions (probing faster), then {} of {CONNECTIONS} peers declared dead",
            seen.suspects,
            seen.verdicts.len()
        );
        println!(
            "  verdict after the last frame received: min {:?}, max {:?} (timeout {DEAD_TIMEOUT:?}; the core decides \
             within 1 ms of a timer firing on time, and the event loop's timer latency comes on top)",
            silences.first().copied().unwrap_or_default(),
            silences.last().copied().unwrap_or_default()
        );
        println!(
            "  verdict after SIGSTOP: min {:?}, max {:?}",
            since_freeze.first().copied().unwrap_or_default(),
            since_freeze.last().copied().unwrap_or_default()
        );
        if !all_dead {
            println!("  (not every connection reached a verdict in time)");
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    signal(pid, "-CONT");
    drop(server.stdin.take());
    server.wait()?;
    Ok(())
}
