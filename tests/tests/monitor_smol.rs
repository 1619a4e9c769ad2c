//! pulse-smol's monitor driver (`pulse_smol::monitor`) over real sockets,
//! against targets in other processes (`pulse-target`, `pulse-peer`): TCP,
//! HTTP and announcing targets that are killed, frozen (SIGSTOP) or answer
//! 503 go down within their bounds and come back after `rise` checks;
//! announcements with a wrong key are rejected and counted; a pulse-smol
//! connection is a target fed by its own events; the balancer example
//! forwards only to healthy backends.
//!
//! The bounds are those of `monitor_mio.rs` (`pulse_tests::monitor_bounds`):
//! three times the detection time the configuration gives, from the moment
//! the target was killed, frozen or restarted to the monitor's own time of
//! the transition; every wait is bounded. Each moment is read just before
//! the act: the driver runs on another thread, and may stamp a transition
//! before the test's thread reads the clock after it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use pulse_driver::clock;
use pulse_monitor::{
    AnnounceKey, Announcement, Check, CheckResult, Config, Event, Health, HttpCheck, Monitor, PeerSignal, Reason,
    TargetId, TargetSpec, Transition,
};
use pulse_proto::Status;
use pulse_smol::monitor::{watch, WatchConfig, Watcher};
use pulse_tests::monitor_bounds::{
    announcer, checks, config, down_when_failing_at_once, down_when_timing_out, silent_down_bound, up_after_rise,
    within, ANNOUNCE_MS, KEY, PATIENCE,
};
use pulse_tests::peer::Peer;

const TARGET: &str = env!("CARGO_BIN_EXE_pulse-target");
const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");

/// A monitor whose driver runs on smol's executor, and every transition it
/// reported.
struct Rig {
    watcher: Watcher,
    /// When the rig was made: before any of its transitions.
    born: Instant,
    transitions: Vec<Transition>,
    _driver: smol::Task<()>,
}

impl Rig {
    fn new(config: Config) -> Rig {
        let monitor = Monitor::new(config, clock::now(), clock::seed()).unwrap();
        let (watcher, driver) = watch(WatchConfig::default(), monitor);
        Rig {
            watcher,
            born: Instant::now(),
            transitions: Vec::new(),
            _driver: smol::spawn(driver),
        }
    }

    /// Waits at most 10 ms for the monitor's events; keeps the transitions.
    fn pump(&mut self) {
        let first = smol::block_on(future::or(async { Some(self.watcher.recv().await) }, async {
            Timer::after(Duration::from_millis(10)).await;
            None
        }));
        let rest = std::iter::from_fn(|| self.watcher.try_recv());
        let events: Vec<Event> = first.into_iter().chain(rest).collect();
        for event in events {
            if let Event::Transition(t) = event {
                self.transitions.push(t);
            }
        }
    }

    /// Pumps until `target` has made a transition to `to` after `since`;
    /// returns it.
    fn until(&mut self, target: TargetId, to: Health, since: Instant) -> Transition {
        let started = Instant::now();
        loop {
            if let Some(t) = self.transition(target, to, since) {
                return t;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{target} never went {to}: {:?}",
                self.transitions
            );
            self.pump();
        }
    }

    fn transition(&self, target: TargetId, to: Health, since: Instant) -> Option<Transition> {
        self.transitions
            .iter()
            .find(|t| t.target == target && t.to == to && clock::to_std(t.at) >= since)
            .copied()
    }

    fn run_for(&mut self, span: Duration) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            self.pump();
        }
    }
}

#[test]
fn a_killed_tcp_target_goes_down_within_its_bound_and_comes_back_after_rise_checks() {
    let config = config();
    let mut rig = Rig::new(config.clone());
    let target = Peer::start(TARGET, &["tcp", "16"]);
    let addr = target.addr.unwrap();
    let pool = rig.watcher.add_pool();
    let tcp = rig.watcher.add_check(Check::Tcp);
    let id = rig
        .watcher
        .add_target(TargetSpec::checked(pool, tcp), Some(addr))
        .unwrap();
    rig.until(id, Health::Up, rig.born);
    let healthy: Vec<TargetId> = rig.watcher.healthy(pool).iter().map(|(t, _)| *t).collect();
    assert_eq!(healthy, vec![id]);

    let killed = Instant::now();
    drop(target); // killed: connects are refused
    let down = rig.until(id, Health::Down, killed);
    assert_eq!(checks(&down), (config.fall, CheckResult::Refused));
    within(&down, killed, down_when_failing_at_once(&config) * 3, "the kill");

    let restarted = Instant::now();
    let _target = Peer::start(TARGET, &["tcp", "16", &addr.to_string()]);
    let up = rig.until(id, Health::Up, restarted);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(None)));
    within(&up, restarted, up_after_rise(&config) * 3, "the restart");
    assert!(rig.watcher.stats().probes >= u64::from(config.fall + config.rise));
}

#[test]
fn a_frozen_http_target_goes_down_within_its_bound_and_comes_back_after_rise_checks_once_thawed() {
    let config = config();
    let mut rig = Rig::new(config.clone());
    let target = Peer::start(TARGET, &["http", "200"]);
    let pool = rig.watcher.add_pool();
    let http = HttpCheck::get("/health").unwrap().expect(200..=299);
    let http = rig.watcher.add_check(Check::Http(http));
    let id = rig
        .watcher
        .add_target(TargetSpec::checked(pool, http), target.addr)
        .unwrap();
    let up = rig.until(id, Health::Up, rig.born);
    assert_eq!(checks(&up).1, CheckResult::Passed(Some(200)));

    // Frozen, its kernel still accepts connects into the backlog, and no
    // answer ever comes: each check times out.
    let frozen = Instant::now();
    target.freeze();
    let down = rig.until(id, Health::Down, frozen);
    assert_eq!(checks(&down), (config.fall, CheckResult::TimedOut));
    within(&down, frozen, down_when_timing_out(&config) * 3, "the freeze");
    let snapshot = rig.watcher.snapshot(id).unwrap();
    assert_eq!(
        (snapshot.health, snapshot.last_result),
        (Health::Down, Some(CheckResult::TimedOut))
    );

    let thawed = Instant::now();
    target.thaw();
    let up = rig.until(id, Health::Up, thawed);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(Some(200))));
    within(&up, thawed, up_after_rise(&config) * 3, "the thaw");
    // Every probe connection closes: the last one within its timeout.
    let started = Instant::now();
    while rig.watcher.probes() > 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "{} probes stay open",
            rig.watcher.probes()
        );
        rig.pump();
    }
}

#[test]
fn an_http_target_answering_503_goes_down_within_its_bound_and_comes_back_after_rise_checks() {
    let config = config();
    let mut rig = Rig::new(config.clone());
    let mut target = Peer::start(TARGET, &["http", "200"]);
    let pool = rig.watcher.add_pool();
    let http = HttpCheck::get("/health").unwrap().expect(200..=299);
    let http = rig.watcher.add_check(Check::Http(http));
    let id = rig
        .watcher
        .add_target(TargetSpec::checked(pool, http), target.addr)
        .unwrap();
    rig.until(id, Health::Up, rig.born);

    let unavailable = Instant::now();
    assert_eq!(target.ask("status 503"), "status 503");
    let down = rig.until(id, Health::Down, unavailable);
    assert_eq!(checks(&down), (config.fall, CheckResult::UnexpectedStatus(503)));
    within(
        &down,
        unavailable,
        down_when_failing_at_once(&config) * 3,
        "the 503s began",
    );
    // Out by its verdict; as the pool's only target it is kept by the
    // panic that never lets verdicts empty a pool.
    let summary = rig.watcher.pool(pool).unwrap();
    assert_eq!((summary.up, summary.down), (0, 1));
    assert_eq!(summary.panic, Some(pulse_monitor::PanicReason::BelowThreshold));

    let available = Instant::now();
    assert_eq!(target.ask("status 200"), "status 200");
    let up = rig.until(id, Health::Up, available);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(Some(200))));
    within(&up, available, up_after_rise(&config) * 3, "the 200s came back");
}

/// A rig that requires `KEY`, with service 7 as a target, announcing (its
/// first incarnation) to the rig's socket; returns the socket's address.
fn announced_rig() -> (Rig, SocketAddr, TargetId, Peer) {
    let rig = Rig::new(config());
    rig.watcher.add_announce_key(AnnounceKey::new(KEY.as_bytes()));
    let to = rig
        .watcher
        .listen_announcements("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let pool = rig.watcher.add_pool();
    let id = rig.watcher.add_target(TargetSpec::announced(pool, 7), None).unwrap();
    let service = announcer(TARGET, to, 7, 1, KEY);
    (rig, to, id, service)
}

#[test]
fn an_announcing_service_killed_or_frozen_goes_down_within_its_detection_time_and_comes_back_when_it_announces() {
    let (mut rig, to, id, service) = announced_rig();
    let up = rig.until(id, Health::Up, rig.born);
    assert_eq!(up.reason, Reason::Announced);
    // Ten announcements, so the detector has learned their rhythm.
    rig.run_for(Duration::from_millis(10 * ANNOUNCE_MS));

    let killed = Instant::now();
    drop(service);
    let down = rig.until(id, Health::Down, killed);
    assert!(matches!(down.reason, Reason::Suspicion { .. }), "{:?}", down.reason);
    within(&down, killed, silent_down_bound(), "the kill");

    // Restarted: a newer incarnation, up at its first announcement.
    let restarted = Instant::now();
    let service = announcer(TARGET, to, 7, 2, KEY);
    let up = rig.until(id, Health::Up, restarted);
    assert_eq!(up.reason, Reason::Announced);
    within(&up, restarted, Duration::from_millis(3 * ANNOUNCE_MS), "the restart");
    rig.run_for(Duration::from_millis(10 * ANNOUNCE_MS));

    let frozen = Instant::now();
    service.freeze();
    let down = rig.until(id, Health::Down, frozen);
    within(&down, frozen, silent_down_bound(), "the freeze");
    let thawed = Instant::now();
    service.thaw();
    let up = rig.until(id, Health::Up, thawed);
    within(&up, thawed, Duration::from_millis(3 * ANNOUNCE_MS), "the thaw");
    let stats = rig.watcher.monitor_stats();
    assert_eq!(
        (stats.bad_tag, stats.unauthenticated, stats.stale),
        (0, 0, 0),
        "{stats:?}"
    );
    assert!(rig.watcher.stats().datagrams >= stats.announcements);
}

#[test]
fn announcements_with_a_wrong_key_are_rejected_counted_and_keep_no_dead_service_alive() {
    let (mut rig, to, id, service) = announced_rig();
    rig.until(id, Health::Up, rig.born);
    rig.run_for(Duration::from_millis(10 * ANNOUNCE_MS));

    // The service dies; someone keeps announcing it, newer than anything
    // it sent, every 50 ms, with a wrong key.
    let killed = Instant::now();
    drop(service);
    let spoofer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let wrong = AnnounceKey::new(b"a guess");
    let (mut forged, mut next) = (0u64, Instant::now());
    let down = loop {
        if let Some(down) = rig.transition(id, Health::Down, killed) {
            break down;
        }
        assert!(killed.elapsed() < PATIENCE, "never down: {:?}", rig.transitions);
        if Instant::now() >= next {
            next += Duration::from_millis(50);
            forged += 1;
            let spoof = Announcement {
                service: 7,
                incarnation: 99,
                sequence: forged as u32,
                interval: Duration::from_millis(ANNOUNCE_MS),
                report: pulse_monitor::Report::Running(Status::default()),
            };
            spoofer.send_to(&spoof.encode(Some(&wrong)), to).unwrap();
        }
        rig.pump();
    };
    within(&down, killed, silent_down_bound(), "the kill");
    assert!(forged >= 4, "only {forged} spoofs before the verdict");
    // Every spoof read is counted as a bad tag, and nothing else was.
    let started = Instant::now();
    while rig.watcher.monitor_stats().bad_tag != forged {
        assert!(
            started.elapsed() < PATIENCE,
            "{:?}: sent {forged} forged",
            rig.watcher.monitor_stats()
        );
        rig.pump();
    }
    let snapshot = rig.watcher.snapshot(id).unwrap();
    assert_eq!(snapshot.health, Health::Down);
    assert_eq!(snapshot.sequence.unwrap().0, 1, "a spoof was taken");
}

#[test]
fn a_pulse_smol_connection_is_a_target_and_its_frozen_peer_goes_down_at_its_dead_peer_timeout() {
    const DEAD_MS: u64 = 600;
    let server = Peer::start(PEER, &["mio-echo-server", "200", &DEAD_MS.to_string()]);
    let mut rig = Rig::new(config());
    let pool = rig.watcher.add_pool();
    let target = rig.watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    let session =
        pulse_proto::Config::default().with_timing(Duration::from_millis(200), Duration::from_millis(DEAD_MS));
    let (conn, driver) = smol::block_on(pulse_smol::connect(server.addr.unwrap(), session)).unwrap();
    smol::spawn(driver).detach();
    let _follow = smol::spawn(rig.watcher.follow(target, conn));

    let up = rig.until(target, Health::Up, rig.born);
    assert_eq!(up.reason, Reason::Peer(PeerSignal::Connected));
    // A second of heartbeats: their round trips reach the monitor, and
    // nothing else is sent.
    rig.run_for(Duration::from_secs(1));
    let snapshot = rig.watcher.snapshot(target).unwrap();
    assert_eq!(snapshot.health, Health::Up);
    assert!(snapshot.rtt.is_some(), "no round trip reached the monitor");
    assert_eq!(
        rig.watcher.stats().probes,
        0,
        "the monitor opened a connection of its own"
    );

    // Frozen: the session's dead-peer verdict comes at the timeout after
    // the last frame heard, which came before the freeze.
    let frozen = Instant::now();
    server.freeze();
    let down = rig.until(target, Health::Down, frozen);
    assert_eq!(down.reason, Reason::Peer(PeerSignal::Dead));
    within(&down, frozen, Duration::from_millis(3 * DEAD_MS), "the freeze");
    server.thaw();
}

/// The balancer example's binary, beside this test's, built first (a
/// no-op when fresh): `cargo test` builds the examples, but not when asked
/// for one test target, and a binary built before the last edit would
/// test old code.
fn balancer_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "pulse-smol",
            "--features",
            "monitor",
            "--example",
            "balancer",
        ])
        .args(pulse_tests::bins::profile_args(profile))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cannot build the balancer example");
    profile.join("examples").join("balancer")
}

/// A backend in a thread: answers every connection's request with its
/// current status and its name in the body, and closes.
fn backend(name: &'static str, status: Arc<AtomicU16>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            // The request is small: one read takes it.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = stream.read(&mut [0u8; 1024]);
            let status = status.load(Ordering::Relaxed);
            let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{name}");
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    addr
}

#[test]
fn the_balancer_example_forwards_only_to_healthy_backends() {
    let (a_status, b_status) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(503)));
    let a = backend("A", a_status.clone());
    let b = backend("B", b_status.clone());
    let mut balancer = Killed(
        Command::new(balancer_example())
            .args(["127.0.0.1:0", &a.to_string(), &b.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the balancer example"),
    );
    let stdout = BufReader::new(balancer.0.stdout.take().unwrap());
    let (said, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = said.send(line);
        }
    });
    let wait_for = |want: &dyn Fn(&str) -> bool| {
        let started = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(started.elapsed());
            let line = lines.recv_timeout(left).expect("the balancer went quiet");
            if want(&line) {
                return line;
            }
        }
    };
    let line = wait_for(&|line| line.starts_with("balancing on "));
    let addr: SocketAddr = line["balancing on ".len()..].parse().unwrap();
    // The body of the backend a client was forwarded to; empty when the
    // balancer had none.
    let ask = || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.rsplit("\r\n\r\n").next().unwrap_or_default().to_string()
    };
    // A (target 0) passes its checks, B (target 1) answers 503 and never
    // joins the pool: every client goes to A.
    wait_for(&|line| healthy_only(line, "target 0"));
    for _ in 0..20 {
        assert_eq!(ask(), "A", "forwarded to an unhealthy backend");
    }
    // A fails its checks and B passes them: every client goes to B.
    a_status.store(503, Ordering::Relaxed);
    b_status.store(200, Ordering::Relaxed);
    wait_for(&|line| healthy_only(line, "target 1"));
    for _ in 0..20 {
        assert_eq!(ask(), "B", "forwarded to an unhealthy backend");
    }
}

/// Whether the balancer's `line` says its pool's healthy set is `target`
/// alone (`pool 0: healthy target 0 ×100`).
fn healthy_only(line: &str, target: &str) -> bool {
    line.strip_prefix("pool 0: healthy ")
        .and_then(|set| set.split_once(" ×"))
        .is_some_and(|(only, weight)| only == target && !weight.contains(','))
}

/// A child process killed when the test ends, passed or failed.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
