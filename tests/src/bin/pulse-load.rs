//! The load harness: a server in one process, N idle clients in another,
//! over 127.0.0.1, and what the server pays per connection and per
//! heartbeat round trip, beside the floor (bare syscalls, no protocol).
//!
//! Run: `cargo run --release -p pulse-tests --bin pulse-load -- [key=value ...]`
//! It builds the child processes it starts (`pulse-peer`, and for `tokio`
//! `pulse-bench-tokio`) with its own profile first; see `pulse_tests::bins`.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `servers` | `mio,floor-1ms,smol,floor-paced` | any of `mio`, `smol`, `pulse-tokio`, `pulse-tokio-hb`, `tokio`, `floor-1ms`, `floor-paced` |
//! | `connections` | `9000` | one or more N, comma-separated |
//! | `interval_ms` | `1000` | the heartbeat interval |
//! | `dead_ms` | 3 intervals | the timeout, for every server alike |
//! | `settle` | `10` | seconds after the last client connected before memory is read |
//! | `samples` | `0` | memory readings taken during `settle`, printed to stderr with the round trips per connection so far (the growth curve) |
//! | `window` | `20` | seconds over which CPU, switches and wire bytes are counted |
//! | `runs` | `1` | runs per row; each figure is the median, with min and max |
//! | `freeze` | `0` | `1`: at the end, freeze the clients (SIGSTOP) and time the server's verdicts |
//! | `announce` | – | N, comma-separated: measure the monitor instead (below) |
//! | `sockets` | `4` | with `announce`: the monitor's announcement sockets, on one port |
//! | `senders` | `32` | with `announce`: the load generator's sockets, over 127.0.0.2–9 |
//!
//! Figures per row: memory per connection (the server's anonymous RSS
//! delta ÷ N, `settle` seconds after connecting); server CPU time and
//! context switches per round trip (over `window`, ÷ round trips the
//! clients counted); loopback bytes per connection per hour (both
//! directions, all headers: what the wire carries); and, with `freeze`,
//! seconds from the freeze to the server's first and last verdict. The
//! `held` column is how many connections the server still had at the end
//! of the window: a figure from a row that lost some is not comparable.
//!
//! With `announce=N`, the monitor's cost: one pulse-mio monitor thread
//! (`pulse-target monitor`, a `pulse_mio::monitor::Watcher`) follows N
//! services, each announcing every `interval_ms` from another process
//! (`pulse-target announce-load`). Figures: the monitor's resident memory
//! per target (its anonymous RSS less the same before the monitor was
//! made, ÷ N) once its targets were added and again after `settle` seconds
//! of load; its own account of its heap ÷ N; its CPU time (user + system,
//! and user alone) per announcement taken over `window`; the share of the announcements sent in the window
//! that it took, and that the kernel dropped for want of receive buffer
//! (`RcvbufErrors`, all the machine's UDP sockets); and its down verdicts
//! and stalls (both should be 0).
//!
//! `floor-1ms` sends the pings due each millisecond together, the pattern
//! pulse-mio's clients (a 1 ms timer wheel) produce; `floor-paced` paces
//! each alone, like pulse-smol's clients. `tokio` (the reference) is
//! loaded by the `floor-1ms` clients, whose pings it answers;
//! `pulse-tokio` (pulse-tokio on the same default runtime, with a task of
//! the application's per connection that reads its events and echoes) and
//! `pulse-tokio-hb` (the same holding connections for their heartbeats
//! alone, as the reference does) by pulse-mio's clients, which also send
//! the pings due in each millisecond together.

use std::time::{Duration, Instant};

use pulse_tests::bins::binary;
use pulse_tests::floor::sleep_until;
use pulse_tests::peer::Peer;

fn number(answer: &str) -> u64 {
    answer
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {answer:?}"))
}

fn stat(stats: &str, name: &str) -> u64 {
    stats
        .split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .map_or(0, number)
}

/// Bytes the loopback interface has carried (received; on `lo` the same
/// bytes are also counted as sent).
fn loopback_bytes() -> u64 {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    dev.lines()
        .find_map(|l| l.trim_start().strip_prefix("lo:"))
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(0, number)
}

/// The server to start, and the client mode with its batching.
fn modes(server: &str) -> (&'static str, &'static str, Option<&'static str>) {
    match server {
        "smol" => ("smol-echo-server", "smol-hold", None),
        "mio" => ("mio-echo-server", "mio-hold", None),
        "pulse-tokio" => ("tokio-echo-server", "mio-hold", None),
        "pulse-tokio-hb" => ("tokio-heartbeat-server", "mio-hold", None),
        "tokio" => ("tokio", "floor-hold", Some("1000")),
        "floor-1ms" => ("floor-echo", "floor-hold", Some("1000")),
        "floor-paced" => ("floor-echo", "floor-hold", Some("0")),
        other => {
            panic!("unknown server {other:?}: mio, smol, pulse-tokio, pulse-tokio-hb, tokio, floor-1ms or floor-paced")
        }
    }
}

struct Settings {
    /// The `pulse-peer` binary, and the tokio reference's if needed.
    peer: String,
    tokio: Option<String>,
    interval_ms: u64,
    dead_ms: Option<u64>,
    samples: u32,
    settle: Duration,
    window: Duration,
    freeze: bool,
}

/// One run's figures.
#[derive(Clone, Copy, Default)]
struct Run {
    bytes_per_connection: f64,
    cpu_us_per_round_trip: f64,
    switches_per_round_trip: f64,
    wire_bytes_per_connection_hour: f64,
    first_verdict_s: f64,
    last_verdict_s: f64,
    held: f64,
}

fn run(server: &str, connections: usize, s: &Settings) -> Run {
    let (server_mode, client_mode, batch) = modes(server);
    let interval = s.interval_ms.to_string();
    let dead = s.dead_ms.unwrap_or(3 * s.interval_ms).to_string();
    let mut srv = match &s.tokio {
        Some(tokio) if server_mode == "tokio" => Peer::start(tokio, &[&interval, &dead]),
        _ => Peer::start(&s.peer, &[server_mode, &interval, &dead]),
    };
    let addr = srv.addr.expect("server address").to_string();
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = number(&srv.ask("rss"));
    let count = connections.to_string();
    let mut client_args = vec![client_mode, &addr, &count, &interval, &dead];
    client_args.extend(batch);
    let mut client = Peer::start(&s.peer, &client_args);
    let per_connection = |rss: u64| rss.saturating_sub(rss_before) as f64 / connections as f64;
    let connected_at = Instant::now();
    for k in 1..=s.samples {
        sleep_until(connected_at + s.settle * k / s.samples);
        let rss = per_connection(number(&srv.ask("rss")));
        let frames = stat(&client.ask("stats"), "round_trips") as f64 / connections as f64;
        eprintln!("{server} N={connections}: {frames:.0} round trips/conn, {rss:.0} B/conn");
    }
    sleep_until(connected_at + s.settle);
    let rss_after = number(&srv.ask("rss"));
    let (cpu_start, switches_start) = (number(&srv.ask("cpu")), number(&srv.ask("switches")));
    let (rt_start, wire_start) = (stat(&client.ask("stats"), "round_trips"), loopback_bytes());
    std::thread::sleep(s.window);
    let (cpu_end, switches_end) = (number(&srv.ask("cpu")), number(&srv.ask("switches")));
    let (rt_end, wire_end) = (stat(&client.ask("stats"), "round_trips"), loopback_bytes());
    let round_trips = (rt_end - rt_start).max(1) as f64;
    let mut figures = Run {
        bytes_per_connection: per_connection(rss_after),
        cpu_us_per_round_trip: (cpu_end - cpu_start) as f64 / round_trips,
        switches_per_round_trip: (switches_end - switches_start) as f64 / round_trips,
        wire_bytes_per_connection_hour: (wire_end - wire_start) as f64 / connections as f64 * 3600.0
            / s.window.as_secs_f64(),
        held: stat(&srv.ask("stats"), "connections") as f64,
        ..Run::default()
    };
    if s.freeze {
        let closed_before = stat(&srv.ask("stats"), "closed");
        client.freeze();
        let frozen_at = Instant::now();
        let bound = Duration::from_millis(10 * s.interval_ms);
        let mut first = None;
        while frozen_at.elapsed() < bound {
            let closed = stat(&srv.ask("stats"), "closed") - closed_before;
            if closed > 0 && first.is_none() {
                first = Some(frozen_at.elapsed());
            }
            if closed as usize >= connections {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        figures.first_verdict_s = first.map_or(f64::NAN, |d| d.as_secs_f64());
        figures.last_verdict_s = frozen_at.elapsed().as_secs_f64();
        client.thaw();
    }
    figures
}

/// Datagrams the machine's UDP sockets dropped for want of buffer room
/// (`RcvbufErrors` in `/proc/net/snmp`: every socket of the machine).
fn udp_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .map_or(0, |(_, value)| number(value))
}

/// User and system CPU time of process `pid`, in microseconds (`/proc`
/// counts in ticks of 10 ms).
fn user_and_system_micros(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).map_or(0, |t| number(t));
    (ticks(11) * 10_000, ticks(12) * 10_000)
}

/// One run of the monitor's figures (`announce=N`).
#[derive(Clone, Copy, Default)]
struct MonitorRun {
    bytes_per_target_at_rest: f64,
    bytes_per_target_loaded: f64,
    heap_per_target: f64,
    cpu_us_per_announcement: f64,
    user_us_per_announcement: f64,
    taken_per_second: f64,
    taken_share: f64,
    dropped_share: f64,
    down: f64,
    stalls: f64,
}

fn monitor_run(target: &str, services: usize, s: &Settings, sockets: usize, senders: usize) -> MonitorRun {
    let (n, interval) = (services.to_string(), s.interval_ms.to_string());
    let mut monitor = Peer::start(target, &["monitor", &n, &sockets.to_string()]);
    let addr = monitor.addr.expect("the monitor's address").to_string();
    let mut load = Peer::start(target, &["announce-load", &addr, &n, &interval, &senders.to_string()]);
    std::thread::sleep(s.settle);
    let before = monitor.ask("stats");
    let (cpu_start, sent_start) = (user_and_system_micros(monitor.pid()), stat(&load.ask("stats"), "sent"));
    let drops_start = udp_drops();
    std::thread::sleep(s.window);
    let after = monitor.ask("stats");
    let (cpu_end, sent_end) = (user_and_system_micros(monitor.pid()), stat(&load.ask("stats"), "sent"));
    let drops = udp_drops() - drops_start;
    eprintln!("monitor N={services}: {after}; load: {}", load.ask("stats"));
    let rss = number(&monitor.ask("rss"));
    let taken = (stat(&after, "announcements") - stat(&before, "announcements")).max(1) as f64;
    let per_target = |rss: u64| rss.saturating_sub(stat(&after, "rss_empty")) as f64 / services as f64;
    MonitorRun {
        bytes_per_target_at_rest: per_target(stat(&after, "rss_targets")),
        bytes_per_target_loaded: per_target(rss),
        heap_per_target: stat(&after, "heap") as f64 / services as f64,
        cpu_us_per_announcement: ((cpu_end.0 + cpu_end.1) - (cpu_start.0 + cpu_start.1)) as f64 / taken,
        user_us_per_announcement: (cpu_end.0 - cpu_start.0) as f64 / taken,
        taken_per_second: taken / s.window.as_secs_f64(),
        taken_share: taken / (sent_end - sent_start).max(1) as f64,
        dropped_share: drops as f64 / (sent_end - sent_start).max(1) as f64,
        down: stat(&after, "down") as f64,
        stalls: stat(&after, "stalls") as f64,
    }
}

/// The monitor's table, for `announce=N,...`.
fn monitor_table(counts: &str, s: &Settings, runs: usize, sockets: usize, senders: usize) {
    let target = binary("pulse-tests", "pulse-target").to_string_lossy().into_owned();
    println!(
        "one pulse-mio monitor thread, {sockets} announcement socket(s); each service announces every {} ms from {senders} sockets over 127.0.0.2–9; memory read after {} s of load, CPU over {} s, {runs} run(s) per row (median (min–max))\n",
        s.interval_ms,
        s.settle.as_secs(),
        s.window.as_secs()
    );
    println!("| services | announcements taken/s | memory/target at rest (B) | memory/target under load (B) | monitor heap/target (B) | monitor CPU/announcement (µs) | of which user (µs) | taken/sent | dropped by the kernel/sent | down | stalls |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for n in counts
        .split(',')
        .map(|n| n.trim().parse::<usize>().expect("a number of services"))
    {
        let results: Vec<MonitorRun> = (0..runs)
            .map(|_| monitor_run(&target, n, s, sockets, senders))
            .collect();
        let spread = |figure: fn(&MonitorRun) -> f64, digits| spread(&results, figure, digits);
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            spread(|r| r.taken_per_second, 0),
            spread(|r| r.bytes_per_target_at_rest, 0),
            spread(|r| r.bytes_per_target_loaded, 0),
            spread(|r| r.heap_per_target, 0),
            spread(|r| r.cpu_us_per_announcement, 2),
            spread(|r| r.user_us_per_announcement, 2),
            spread(|r| r.taken_share, 4),
            spread(|r| r.dropped_share, 4),
            spread(|r| r.down, 0),
            spread(|r| r.stalls, 0),
        );
    }
}

/// "median (min–max)" of one figure over the runs.
fn spread<R>(runs: &[R], figure: impl Fn(&R) -> f64, digits: usize) -> String {
    let mut values: Vec<f64> = runs.iter().map(figure).collect();
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    if values.len() == 1 {
        format!("{median:.digits$}")
    } else {
        format!(
            "{median:.digits$} ({:.digits$}–{:.digits$})",
            values[0],
            values[values.len() - 1]
        )
    }
}

fn main() {
    let mut servers = "mio,floor-1ms,smol,floor-paced".to_string();
    let mut connections = "9000".to_string();
    let mut settings = Settings {
        peer: String::new(),
        tokio: None,
        interval_ms: 1000,
        dead_ms: None,
        samples: 0,
        settle: Duration::from_secs(10),
        window: Duration::from_secs(20),
        freeze: false,
    };
    let mut runs = 1;
    let (mut announce, mut sockets, mut senders) = (None, 4, 32);
    for arg in std::env::args().skip(1) {
        let (key, value) = arg
            .split_once('=')
            .unwrap_or_else(|| panic!("arguments are key=value: {arg:?}"));
        let secs = |v: &str| Duration::from_secs(v.parse().expect("seconds"));
        match key {
            "servers" => servers = value.to_string(),
            "connections" => connections = value.to_string(),
            "interval_ms" => settings.interval_ms = value.parse().expect("milliseconds"),
            "dead_ms" => settings.dead_ms = Some(value.parse().expect("milliseconds")),
            "samples" => settings.samples = value.parse().expect("a count"),
            "settle" => settings.settle = secs(value),
            "window" => settings.window = secs(value),
            "runs" => runs = value.parse::<usize>().expect("a count").max(1),
            "freeze" => settings.freeze = value == "1",
            "announce" => announce = Some(value.to_string()),
            "sockets" => sockets = value.parse().expect("a count"),
            "senders" => senders = value.parse().expect("a count"),
            other => panic!("unknown key {other:?}"),
        }
    }
    if let Some(counts) = announce {
        return monitor_table(&counts, &settings, runs, sockets, senders);
    }
    let most = connections
        .split(',')
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .max();
    // The server and the clients each hold N sockets; they inherit this.
    pulse_tests::fd_limit::require_open_files(most.unwrap_or(0) + 1000);
    let path = |package, name| binary(package, name).to_string_lossy().into_owned();
    settings.peer = path("pulse-tests", "pulse-peer");
    if servers.split(',').any(|s| s == "tokio") {
        settings.tokio = Some(path("pulse-bench-tokio", "pulse-bench-tokio"));
    }
    println!(
        "heartbeat every {} ms, timeout {} ms, memory read {} s after connecting, CPU over {} s, {runs} run(s) per row (median (min–max))\n",
        settings.interval_ms,
        settings.dead_ms.unwrap_or(3 * settings.interval_ms),
        settings.settle.as_secs(),
        settings.window.as_secs()
    );
    println!("| server | N | memory/conn (B) | server CPU/round trip (µs) | switches/round trip | wire bytes/conn/hour | verdicts after freeze (s) | held |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in connections
        .split(',')
        .map(|n| n.trim().parse::<usize>().expect("a number of connections"))
    {
        for server in servers.split(',') {
            let results: Vec<Run> = (0..runs).map(|_| run(server, n, &settings)).collect();
            let verdicts = if settings.freeze {
                format!(
                    "{} – {}",
                    spread(&results, |r| r.first_verdict_s, 2),
                    spread(&results, |r| r.last_verdict_s, 2)
                )
            } else {
                "–".to_string()
            };
            println!(
                "| {server} | {n} | {} | {} | {} | {} | {verdicts} | {} |",
                spread(&results, |r| r.bytes_per_connection, 0),
                spread(&results, |r| r.cpu_us_per_round_trip, 2),
                spread(&results, |r| r.switches_per_round_trip, 2),
                spread(&results, |r| r.wire_bytes_per_connection_hour, 0),
                spread(&results, |r| r.held, 0),
            );
        }
    }
}
