//! Targets for the monitor's tests and measurements, each in a process of
//! its own so that a test can freeze it (SIGSTOP) or kill it. Commands
//! arrive as lines on stdin; it exits when stdin closes.
//!
//! Modes (an `addr` of `-` or none: 127.0.0.1 on a free port; give the old
//! address to restart a target where it was):
//! - `tcp <backlog> [addr]`: a TCP listener that accepts and closes every
//!   connection. Frozen, its kernel still completes `backlog` connects.
//!   Prints `listening <addr>`.
//! - `http <status> [addr]`: a tiny HTTP/1.1 server answering every request
//!   with `status` and closing. `status <code>` changes it (answer:
//!   `status <code>`). Prints `listening <addr>`.
//! - `announce <monitor> <service> <interval_ms> <incarnation> [key]`:
//!   sends ANNOUNCE datagrams for `service` to `monitor` every interval,
//!   authenticated if a key is given. Prints `ready`; `stats` answers
//!   `sent <n>`.
//! - `announce-load <monitor> <services> <interval_ms> [sockets] [threads]`:
//!   the load of `services` services announcing every interval each
//!   (service ids 0 up), spread evenly over time, over `sockets` UDP
//!   sockets (default 32) bound to 127.0.0.2–9 and over `threads` threads
//!   (default 2). Prints `ready`; `stats` answers `sent <n> late <n>`
//!   (late: sends more than an interval behind their schedule).
//! - `monitor <services> [sockets]`: one pulse-mio monitor thread following
//!   `services` announcing services (ids 0 up), with `sockets` announcement
//!   sockets on one port (default 4). Prints `listening <addr>`; `stats`
//!   answers `announcements <n> rejected <n> datagrams <n> up <n> down <n>
//!   heap <bytes> stalls <n> rss_empty <bytes> rss_targets <bytes>
//!   timers_held <n>` (announcements taken as of the last turn; the rest
//!   as of the last 100 ms; resident memory before the monitor was made,
//!   and once its targets were added).
//!
//! Every mode also answers `rss`, `cpu`, `switches` (see
//! `pulse_tests::peer::answer_commands`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulse_monitor::{AnnounceKey, Announcement};
use pulse_proto::Status;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: {what}"))
}

/// The address to listen on: the one given, or a free port on 127.0.0.1.
fn listen_addr(args: &[String], i: usize) -> SocketAddr {
    match args.get(i).map(String::as_str) {
        None | Some("-") => "127.0.0.1:0".parse().unwrap(),
        Some(addr) => addr.parse().expect("an address"),
    }
}

/// A TCP listener with `SO_REUSEADDR` (a restarted target binds again at
/// once) and the given backlog.
fn tcp_listener(addr: SocketAddr, backlog: i32) -> TcpListener {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(backlog).expect("listen");
    socket.into()
}

/// Reads a request's head (or what comes within a second), then answers
/// with `status` and closes.
fn answer_http(mut stream: std::net::TcpStream, status: u16) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let reason = if status < 400 { "OK" } else { "Unavailable" };
    let response = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let _ = stream.write_all(response.as_bytes());
}

/// Sends one service's announcements every interval.
fn announce(
    monitor: SocketAddr,
    service: u64,
    interval: Duration,
    incarnation: u32,
    key: Option<AnnounceKey>,
    sent: &AtomicU64,
) -> ! {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.connect(monitor).expect("connect");
    let started = Instant::now();
    for sequence in 1u32.. {
        let announcement = Announcement {
            service,
            incarnation,
            sequence,
            interval,
            report: pulse_monitor::Report::Running(Status::default()),
        };
        let _ = socket.send(&announcement.encode(key.as_ref()));
        sent.fetch_add(1, Ordering::Relaxed);
        pulse_tests::floor::sleep_until(started + interval * sequence);
    }
    unreachable!("four billion announcements")
}

/// Sends the announcements of `services` services, each every `interval`,
/// their phases spread evenly, through `sockets` sockets bound to
/// 127.0.0.2–9, from `threads` threads (each with its share of the
/// services and sockets). Counts sends more than an interval behind their
/// schedule.
fn announce_load(
    monitor: SocketAddr,
    services: u64,
    interval: Duration,
    sockets: usize,
    threads: u64,
    sent: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
) {
    let threads = threads.clamp(1, services.max(1));
    let per_thread = sockets.div_ceil(threads as usize).max(1);
    for thread in 0..threads {
        let (sent, late) = (sent.clone(), late.clone());
        let sockets: Vec<UdpSocket> = (0..per_thread)
            .map(|k| {
                let k = thread as usize * per_thread + k;
                let socket = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 2 + (k % 8) as u8], 0))).expect("bind");
                socket.connect(monitor).expect("connect");
                socket
            })
            .collect();
        // This thread's services: thread, thread + threads, ...
        let mine: Vec<u64> = (thread..services).step_by(threads as usize).collect();
        std::thread::spawn(move || send_announcements(&mine, interval, &sockets, &sent, &late));
    }
}

/// One load thread: each of `services` every `interval`, phases spread.
fn send_announcements(services: &[u64], interval: Duration, sockets: &[UdpSocket], sent: &AtomicU64, late: &AtomicU64) {
    let count = services.len() as u64;
    if count == 0 {
        return;
    }
    let started = Instant::now();
    let spacing = interval / u32::try_from(count).expect("services fit u32");
    let mut sequences = vec![0u32; services.len()];
    let (mut sent_here, mut late_here) = (0u64, 0u64);
    // Service j of this thread sends at j × spacing + k × interval.
    for n in 0u64.. {
        let (round, j) = (n / count, (n % count) as usize);
        let due = started + interval * round as u32 + spacing * j as u32;
        let now = Instant::now();
        if due > now {
            // Sleep in steps of at least a millisecond: the sends due in
            // it go out together.
            pulse_tests::floor::sleep_until(due.max(now + Duration::from_millis(1)));
        } else if now - due > interval {
            late_here += 1;
        }
        sequences[j] += 1;
        let announcement = Announcement {
            service: services[j],
            incarnation: 1,
            sequence: sequences[j],
            interval,
            report: pulse_monitor::Report::Running(Status::default()),
        };
        let _ = sockets[j % sockets.len()].send(&announcement.encode(None));
        sent_here += 1;
        if sent_here == 256 {
            sent.fetch_add(std::mem::take(&mut sent_here), Ordering::Relaxed);
            late.fetch_add(std::mem::take(&mut late_here), Ordering::Relaxed);
        }
    }
}

/// One pulse-mio monitor thread following `services` announcing services.
fn monitor(services: u64, sockets: usize, stats: Arc<Mutex<String>>, taken: Arc<AtomicU64>) -> SocketAddr {
    use pulse_mio::monitor::{WatchConfig, Watcher};
    use pulse_monitor::{Config, Monitor, TargetSpec};
    let mut poll = mio::Poll::new().expect("poll");
    let rss_empty = pulse_tests::peer::rss_bytes();
    let now = pulse_driver::clock::now();
    let monitor =
        Monitor::with_capacity(Config::lan(), now, pulse_driver::clock::seed(), services as usize).expect("config");
    let mut watcher = Watcher::new(WatchConfig::default(), monitor, poll.registry(), 0..1_000).expect("watcher");
    let pool = watcher.monitor_mut().add_pool();
    for service in 0..services {
        watcher
            .add_target(TargetSpec::announced(pool, service), None)
            .expect("target");
    }
    let rss_targets = pulse_tests::peer::rss_bytes();
    let mut addr = watcher
        .listen_announcements("127.0.0.1:0".parse().unwrap())
        .expect("listen");
    for _ in 1..sockets {
        addr = watcher.listen_announcements(addr).expect("listen on the same port");
    }
    std::thread::spawn(move || {
        let mut events = mio::Events::with_capacity(1024);
        let mut next_report = Instant::now();
        // The longest turn since the last report, waiting in epoll included:
        // a turn much longer than the 100 ms wait is a stall of this thread.
        let mut longest = Duration::ZERO;
        loop {
            let turn = Instant::now();
            watcher
                .turn(&mut poll, &mut events, Some(Duration::from_millis(100)))
                .expect("turn");
            longest = longest.max(turn.elapsed());
            while watcher.poll_event().is_some() {}
            taken.store(watcher.monitor().stats().announcements, Ordering::Relaxed);
            if Instant::now() >= next_report {
                next_report = Instant::now() + Duration::from_millis(100);
                let m = watcher.monitor();
                let s = m.stats();
                let rejected = s.not_announcements
                    + s.unsupported_version
                    + s.malformed
                    + s.unauthenticated
                    + s.bad_tag
                    + s.unknown_service
                    + s.stale;
                let summary = m.pool(pool).expect("the pool");
                *stats.lock().unwrap() = format!(
                    "rejected {rejected} datagrams {} up {} down {} heap {} stalls {} \
                     rss_empty {rss_empty} rss_targets {rss_targets} timers_held {} longest_turn_ms {}",
                    watcher.stats().datagrams,
                    summary.up,
                    summary.down,
                    m.heap_bytes(),
                    s.stalls,
                    watcher.stats().timers_held,
                    std::mem::take(&mut longest).as_millis(),
                );
            }
        }
    });
    addr
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sent = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let status = Arc::new(AtomicU16::new(200));
    let monitor_stats = Arc::new(Mutex::new(String::new()));
    match args.get(1).map(String::as_str) {
        Some("tcp") => {
            let listener = tcp_listener(listen_addr(&args, 3), arg(&args, 2, "backlog"));
            println!("listening {}", listener.local_addr().unwrap());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    drop(stream);
                }
            });
        }
        Some("http") => {
            status.store(arg(&args, 2, "status"), Ordering::Relaxed);
            let listener = tcp_listener(listen_addr(&args, 3), 16);
            println!("listening {}", listener.local_addr().unwrap());
            let status = status.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    answer_http(stream, status.load(Ordering::Relaxed));
                }
            });
        }
        Some("announce") => {
            let monitor: SocketAddr = arg(&args, 2, "monitor address");
            let service: u64 = arg(&args, 3, "service");
            let interval = Duration::from_millis(arg(&args, 4, "interval_ms"));
            let incarnation: u32 = arg(&args, 5, "incarnation");
            let key = args.get(6).map(|k| AnnounceKey::new(k.as_bytes()));
            let sent = sent.clone();
            std::thread::spawn(move || announce(monitor, service, interval, incarnation, key, &sent));
            println!("ready");
        }
        Some("announce-load") => {
            let monitor: SocketAddr = arg(&args, 2, "monitor address");
            let services: u64 = arg(&args, 3, "services");
            let interval = Duration::from_millis(arg(&args, 4, "interval_ms"));
            let sockets = args.get(5).map_or(32, |s| s.parse().expect("sockets"));
            let threads = args.get(6).map_or(2, |s| s.parse().expect("threads"));
            announce_load(
                monitor,
                services,
                interval,
                sockets,
                threads,
                sent.clone(),
                late.clone(),
            );
            println!("ready");
        }
        Some("monitor") => {
            let services: u64 = arg(&args, 2, "services");
            let sockets = args.get(3).map_or(4, |s| s.parse().expect("sockets"));
            let addr = monitor(services, sockets, monitor_stats.clone(), sent.clone());
            println!("listening {addr}");
        }
        other => panic!("unknown mode {other:?}"),
    }
    pulse_tests::peer::answer_commands(|command| {
        let mut words = command.split_whitespace();
        match (words.next(), words.next()) {
            (Some("status"), Some(code)) => {
                let code: u16 = code.parse().ok()?;
                status.store(code, Ordering::Relaxed);
                Some(format!("status {code}"))
            }
            (Some("stats"), None) if args[1] == "monitor" => Some(format!(
                "announcements {} {}",
                sent.load(Ordering::Relaxed),
                monitor_stats.lock().unwrap()
            )),
            (Some("stats"), None) => Some(format!(
                "sent {} late {}",
                sent.load(Ordering::Relaxed),
                late.load(Ordering::Relaxed)
            )),
            _ => None,
        }
    });
}
