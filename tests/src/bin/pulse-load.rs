//! The load harness: a server in one process, N idle clients in another,
//! over 127.0.0.1, and the server's cost per connection and per heartbeat
//! round trip, beside the floor (bare syscalls, no protocol).
//!
//! Run: `cargo run --release -p pulse-tests --bin pulse-load -- [connections] [interval_ms] [seconds] [servers]`
//! e.g. `... -- 5000 1000 30 smol,floor`.
//!
//! For each server it prints one row: RSS per connection (RSS delta ÷ N,
//! measured 10 s after the last client connected) and server CPU time per
//! round trip (CPU used over the window ÷ round trips completed in it).

use std::time::Duration;

use pulse_tests::peer::Peer;

/// `pulse-peer`, built beside this binary.
fn peer_binary() -> String {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name("pulse-peer").to_string_lossy().into_owned()
}

struct Row {
    server: &'static str,
    connections: usize,
    rss_per_connection: f64,
    cpu_per_round_trip_us: f64,
    round_trips: u64,
}

fn number(answer: &str) -> u64 {
    answer
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {answer:?}"))
}

fn round_trips(stats: &str) -> u64 {
    stats
        .split_whitespace()
        .skip_while(|w| *w != "round_trips")
        .nth(1)
        .map_or(0, number)
}

fn measure(server: &'static str, connections: usize, interval_ms: u64, seconds: u64) -> Row {
    let (server_mode, client_mode) = match server {
        "smol" => ("smol-echo-server", "smol-hold"),
        "floor" => ("floor-echo", "floor-hold"),
        other => panic!("unknown server {other}"),
    };
    let interval = interval_ms.to_string();
    let dead = (3 * interval_ms).to_string();
    let peer = peer_binary();
    let mut srv = Peer::start(&peer, &[server_mode, &interval, &dead]);
    let addr = srv.addr.expect("server address").to_string();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = number(&srv.ask("rss"));
    let count = connections.to_string();
    let mut client = Peer::start(&peer, &[client_mode, &addr, &count, &interval, &dead]);
    std::thread::sleep(Duration::from_secs(10));
    let rss_after = number(&srv.ask("rss"));
    let cpu_start = number(&srv.ask("cpu"));
    let rt_start = round_trips(&client.ask("stats"));
    std::thread::sleep(Duration::from_secs(seconds));
    let cpu_end = number(&srv.ask("cpu"));
    let rt_end = round_trips(&client.ask("stats"));
    let round_trips = rt_end - rt_start;
    Row {
        server,
        connections,
        rss_per_connection: rss_after.saturating_sub(rss_before) as f64 / connections as f64,
        cpu_per_round_trip_us: (cpu_end - cpu_start) as f64 / round_trips.max(1) as f64,
        round_trips,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let interval_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(30);
    let servers: Vec<&str> = args.get(4).map_or("smol,floor", String::as_str).split(',').collect();
    println!("{connections} idle connections, heartbeat every {interval_ms} ms, CPU measured over {seconds} s");
    println!(
        "{:<8} {:>12} {:>22} {:>26} {:>12}",
        "server", "connections", "RSS/connection (bytes)", "server CPU/round trip (us)", "round trips"
    );
    for server in servers {
        let server: &'static str = match server {
            "smol" => "smol",
            "floor" => "floor",
            other => panic!("unknown server {other}"),
        };
        let row = measure(server, connections, interval_ms, seconds);
        println!(
            "{:<8} {:>12} {:>22.0} {:>26.2} {:>12}",
            row.server, row.connections, row.rss_per_connection, row.cpu_per_round_trip_us, row.round_trips
        );
    }
}
