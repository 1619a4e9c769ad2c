//! The load harness: a server in one process, N idle clients in another,
//! over 127.0.0.1, and the server's cost per connection and per heartbeat
//! round trip, beside the floor (bare syscalls, no protocol).
//!
//! Run: `cargo run --release -p pulse-tests --bin pulse-load -- [connections] [interval_ms] [seconds] [servers]`
//! e.g. `... -- 9000 1000 30 mio,floor-1ms,smol,floor-paced`.
//!
//! Per server, one row: memory per connection (server anonymous RSS delta ÷ N, 10 s
//! after the last client connected), server CPU per round trip (user +
//! system time over the window ÷ round trips completed in it, as counted by
//! the clients) and context switches per round trip.

use std::time::Duration;

use pulse_tests::peer::Peer;

/// `pulse-peer`, built beside this binary.
fn peer_binary() -> String {
    let me = std::env::current_exe().expect("own path");
    me.with_file_name("pulse-peer").to_string_lossy().into_owned()
}

struct Row {
    rss_per_connection: f64,
    cpu_per_round_trip_us: f64,
    switches_per_round_trip: f64,
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

/// The `pulse-peer` modes of a server and of its clients, and the floor
/// client's batching: `floor-1ms` sends the pings due each millisecond
/// together (the pattern pulse-mio's clients, with a 1 ms wheel, produce),
/// `floor-paced` each alone (pulse-smol's clients, with ns timers).
fn modes(server: &str) -> (&'static str, &'static str, Option<&'static str>) {
    match server {
        "smol" => ("smol-echo-server", "smol-hold", None),
        "mio" => ("mio-echo-server", "mio-hold", None),
        "floor-1ms" => ("floor-echo", "floor-hold", Some("1000")),
        // Build it first: `cargo build --release -p pulse-bench-tokio`.
        "tokio" => ("tokio", "floor-hold", Some("1000")),
        "floor-paced" => ("floor-echo", "floor-hold", Some("0")),
        other => panic!("unknown server {other:?}: mio, smol, tokio, floor-1ms or floor-paced"),
    }
}

fn measure(server: &str, connections: usize, interval_ms: u64, seconds: u64) -> Row {
    let (server_mode, client_mode, batch) = modes(server);
    let peer = peer_binary();
    let interval = interval_ms.to_string();
    let dead = (3 * interval_ms).to_string();
    let mut srv = if server_mode == "tokio" {
        Peer::start(&peer.replace("pulse-peer", "pulse-bench-tokio"), &[&interval])
    } else {
        Peer::start(&peer, &[server_mode, &interval, &dead])
    };
    let addr = srv.addr.expect("server address").to_string();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = number(&srv.ask("rss"));
    let count = connections.to_string();
    let mut client_args = vec![client_mode, &addr, &count, &interval, &dead];
    client_args.extend(batch);
    let mut client = Peer::start(&peer, &client_args);
    std::thread::sleep(Duration::from_secs(10));
    let rss_after = number(&srv.ask("rss"));
    if std::env::var_os("PULSE_LOAD_SMAPS").is_some() {
        eprintln!("{server}: resident kB by mapping: {}", srv.ask("smaps"));
    }
    let (cpu_start, switches_start) = (number(&srv.ask("cpu")), number(&srv.ask("switches")));
    let rt_start = round_trips(&client.ask("stats"));
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu_end, switches_end) = (number(&srv.ask("cpu")), number(&srv.ask("switches")));
    let round_trips = round_trips(&client.ask("stats")) - rt_start;
    let per_round_trip = |x: u64| x as f64 / round_trips.max(1) as f64;
    Row {
        rss_per_connection: rss_after.saturating_sub(rss_before) as f64 / connections as f64,
        cpu_per_round_trip_us: per_round_trip(cpu_end - cpu_start),
        switches_per_round_trip: per_round_trip(switches_end - switches_start),
        round_trips,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let connections: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let interval_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(30);
    let servers = args.get(4).map_or("mio,floor-1ms,smol,floor-paced", String::as_str);
    println!("{connections} idle connections, heartbeat every {interval_ms} ms, CPU measured over {seconds} s");
    println!(
        "{:<7} {:>11} {:>15} {:>17} {:>17} {:>12}",
        "server", "connections", "RSS/conn (B)", "CPU/round trip", "switches/rtrip", "round trips"
    );
    for server in servers.split(',') {
        let row = measure(server, connections, interval_ms, seconds);
        println!(
            "{:<7} {:>11} {:>15.0} {:>14.2} us {:>17.2} {:>12}",
            server,
            connections,
            row.rss_per_connection,
            row.cpu_per_round_trip_us,
            row.switches_per_round_trip,
            row.round_trips
        );
    }
}
