//! The async monitor drivers' real-socket tests, written once: pulse-smol
//! and pulse-tokio both hand back pulse-driver's [`Watcher`], so each test
//! here runs against either, given how to start the driver ([`Start`]).
//! `tests/tests/monitor_smol.rs` and `monitor_tokio.rs` instantiate them
//! with [`monitor_driver_tests!`](crate::monitor_driver_tests).
//!
//! Targets live in other processes (`pulse-target`, `pulse-peer`): TCP,
//! HTTP and announcing targets that are killed, frozen (SIGSTOP) or answer
//! 503 go down within their bounds ([`crate::monitor_bounds`]) and come
//! back after `rise` checks; announcements with a wrong key are rejected
//! and counted; a followed pulse connection is a target fed by its own
//! events; a balancer example forwards only to healthy backends. Each
//! moment is read just before the act: the driver runs on another thread,
//! and may stamp a transition before the test's thread reads the clock
//! after it.

use std::any::Any;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use pulse_driver::clock;
use pulse_driver::monitor::Watcher;
use pulse_monitor::{
    AnnounceKey, Announcement, Check, CheckResult, Config, Event, Health, HttpCheck, Monitor, PeerSignal, Reason,
    TargetId, TargetSpec, Transition,
};
use pulse_proto::Status;

use crate::monitor_bounds::{
    announcer, checks, config, down_when_failing_at_once, down_when_timing_out, silent_down_bound, up_after_rise,
    within, ANNOUNCE_MS, KEY, PATIENCE,
};
use crate::peer::Peer;

/// Runs a monitor on a runtime: its handle, and what keeps its driver
/// running (dropped, the driver stops).
pub type Start = fn(Monitor) -> (Watcher, Box<dyn Any>);

/// Follows a pulse connection to a server as a target: connects to the
/// address with the session config, hands the connection to
/// [`Watcher::follow`] on the runtime, and returns what keeps it running.
pub type Follow = fn(&Watcher, TargetId, SocketAddr, pulse_proto::Config) -> Box<dyn Any>;

/// Every real-socket test of an async monitor driver, as `#[test]`s:
/// `start` is a [`Start`], `follow` a [`Follow`], `balancer` the example's
/// `(package, name)`. Expands in a test target, whose `pulse-target` and
/// `pulse-peer` binaries it uses.
#[macro_export]
macro_rules! monitor_driver_tests {
    ($start:expr, $follow:expr, $balancer:expr) => {
        const TARGET: &str = env!("CARGO_BIN_EXE_pulse-target");
        const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");

        #[test]
        fn a_killed_tcp_target_goes_down_within_its_bound_and_comes_back_after_rise_checks() {
            $crate::monitor_harness::killed_tcp_target($start, TARGET);
        }

        #[test]
        fn a_frozen_http_target_goes_down_within_its_bound_and_comes_back_after_rise_checks_once_thawed() {
            $crate::monitor_harness::frozen_http_target($start, TARGET);
        }

        #[test]
        fn an_http_target_answering_503_goes_down_within_its_bound_and_comes_back_after_rise_checks() {
            $crate::monitor_harness::http_target_answering_503($start, TARGET);
        }

        #[test]
        fn an_announcing_service_killed_or_frozen_goes_down_within_its_detection_time_and_comes_back_when_it_announces()
        {
            $crate::monitor_harness::announcing_service_killed_or_frozen($start, TARGET);
        }

        #[test]
        fn announcements_with_a_wrong_key_are_rejected_counted_and_keep_no_dead_service_alive() {
            $crate::monitor_harness::announcements_with_a_wrong_key($start, TARGET);
        }

        #[test]
        fn a_followed_pulse_connection_is_a_target_and_its_frozen_peer_goes_down_at_its_dead_peer_timeout() {
            $crate::monitor_harness::followed_connection_frozen($start, $follow, PEER);
        }

        #[test]
        fn probes_waiting_for_an_answer_wake_the_driver_only_when_their_sockets_move() {
            $crate::monitor_harness::waiting_probes_take_few_turns($start);
        }

        #[test]
        fn the_balancer_example_forwards_only_to_healthy_backends() {
            let (package, name) = $balancer;
            $crate::monitor_harness::balancer_forwards_only_to_healthy_backends(package, name);
        }
    };
}

/// A monitor whose driver runs on some runtime, and every transition it
/// reported.
pub struct Rig {
    /// The monitor's handle.
    pub watcher: Watcher,
    /// When the rig was made: before any of its transitions.
    pub born: Instant,
    /// Every transition taken so far.
    pub transitions: Vec<Transition>,
    _driver: Box<dyn Any>,
}

impl Rig {
    /// A monitor with `config`, its driver started by `start`.
    pub fn new(config: Config, start: Start) -> Rig {
        let monitor = Monitor::new(config, clock::now(), clock::seed()).unwrap();
        let (watcher, driver) = start(monitor);
        Rig {
            watcher,
            born: Instant::now(),
            transitions: Vec::new(),
            _driver: driver,
        }
    }

    /// Waits at most 10 ms for the monitor's events; keeps the transitions.
    pub fn pump(&mut self) {
        let first = recv_within(&self.watcher, Duration::from_millis(10));
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
    pub fn until(&mut self, target: TargetId, to: Health, since: Instant) -> Transition {
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

    /// `target`'s first transition to `to` after `since`, if it came.
    pub fn transition(&self, target: TargetId, to: Health, since: Instant) -> Option<Transition> {
        self.transitions
            .iter()
            .find(|t| t.target == target && t.to == to && clock::to_std(t.at) >= since)
            .copied()
    }

    /// Pumps for `span`.
    pub fn run_for(&mut self, span: Duration) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            self.pump();
        }
    }
}

/// The monitor's next event, waited for at most `wait` on this thread
/// (the driver runs on its runtime's).
fn recv_within(watcher: &Watcher, wait: Duration) -> Option<Event> {
    let deadline = Instant::now() + wait;
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(event) = watcher.poll_recv(&mut cx) {
            return Some(event);
        }
        std::thread::park_timeout(deadline.checked_duration_since(Instant::now())?);
    }
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A TCP target killed (connects refused) goes down after `fall` refused
/// checks, and restarted comes back after `rise`.
pub fn killed_tcp_target(start: Start, bin: &str) {
    let config = config();
    let mut rig = Rig::new(config.clone(), start);
    let target = Peer::start(bin, &["tcp", "16"]);
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
    let _target = Peer::start(bin, &["tcp", "16", &addr.to_string()]);
    let up = rig.until(id, Health::Up, restarted);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(None)));
    within(&up, restarted, up_after_rise(&config) * 3, "the restart");
    assert!(rig.watcher.stats().probes >= u64::from(config.fall + config.rise));
}

/// An HTTP target frozen (SIGSTOP) times out `fall` checks; thawed, it
/// passes `rise`, and every probe connection closes.
pub fn frozen_http_target(start: Start, bin: &str) {
    let config = config();
    let mut rig = Rig::new(config.clone(), start);
    let target = Peer::start(bin, &["http", "200"]);
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

/// An HTTP target answering 503 fails `fall` checks and leaves the
/// healthy set; answering 200 again, it passes `rise`.
pub fn http_target_answering_503(start: Start, bin: &str) {
    let config = config();
    let mut rig = Rig::new(config.clone(), start);
    let mut target = Peer::start(bin, &["http", "200"]);
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
fn announced_rig(start: Start, bin: &str) -> (Rig, SocketAddr, TargetId, Peer) {
    let rig = Rig::new(config(), start);
    rig.watcher.add_announce_key(AnnounceKey::new(KEY.as_bytes()));
    let to = rig
        .watcher
        .listen_announcements("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let pool = rig.watcher.add_pool();
    let id = rig.watcher.add_target(TargetSpec::announced(pool, 7), None).unwrap();
    let service = announcer(bin, to, 7, 1, KEY);
    (rig, to, id, service)
}

/// An announcing service killed, then restarted and frozen, goes down
/// within its detection time each time, and up at its next announcement.
pub fn announcing_service_killed_or_frozen(start: Start, bin: &str) {
    let (mut rig, to, id, service) = announced_rig(start, bin);
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
    let service = announcer(bin, to, 7, 2, KEY);
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

/// A dead service announced by someone with a wrong key: every spoof is
/// read, rejected and counted, and the service still goes down in time.
pub fn announcements_with_a_wrong_key(start: Start, bin: &str) {
    let (mut rig, to, id, service) = announced_rig(start, bin);
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

/// A pulse connection followed as a target: up when connected, its round
/// trips reach the monitor with no traffic of the monitor's own, and its
/// frozen server is down at the session's dead-peer timeout.
pub fn followed_connection_frozen(start: Start, follow: Follow, bin: &str) {
    const DEAD_MS: u64 = 600;
    let server = Peer::start(bin, &["mio-echo-server", "200", &DEAD_MS.to_string()]);
    let mut rig = Rig::new(config(), start);
    let pool = rig.watcher.add_pool();
    let target = rig.watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    let session =
        pulse_proto::Config::default().with_timing(Duration::from_millis(200), Duration::from_millis(DEAD_MS));
    let _follow = follow(&rig.watcher, target, server.addr.unwrap(), session);

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

/// Twenty HTTP targets that begin every answer and never finish it (a
/// slow backend): each probe reads a part, then waits for the rest until
/// the monitor's timeout. A driver that polled a waiting probe again
/// without its socket moving (a readiness its runtime never cleared)
/// would turn without end; this one turns a few times per probe: started,
/// connected and written, the part read, timed out.
pub fn waiting_probes_take_few_turns(start: Start) {
    const TARGETS: u64 = 20;
    let config = config();
    let mut rig = Rig::new(config.clone(), start);
    let pool = rig.watcher.add_pool();
    let http = rig.watcher.add_check(Check::Http(HttpCheck::get("/health").unwrap()));
    let slow = SlowBackend::start();
    let targets: Vec<TargetId> = (0..TARGETS)
        .map(|_| {
            let spec = TargetSpec::checked(pool, http);
            rig.watcher.add_target(spec, Some(slow.addr)).unwrap()
        })
        .collect();
    let (before, started) = (rig.watcher.stats(), Instant::now());
    rig.run_for(Duration::from_secs(2));
    let after = rig.watcher.stats();
    let (turns, probes) = (after.turns - before.turns, after.probes - before.probes);
    // A probe takes about five turns (started; connected and written; the
    // part read; timed out; the timer's deadline moving), and the rig's
    // reads wake none. More than three times that is a driver woken for
    // nothing.
    let span = started.elapsed();
    let bound = 16 * probes + 100;
    eprintln!("{turns} turns for {probes} probes in {span:?} (bound {bound})");
    assert!(probes >= TARGETS, "only {probes} probes ran");
    assert!(turns <= bound, "{turns} turns for {probes} probes in {span:?}");
    for target in targets {
        let last = rig.watcher.snapshot(target).unwrap().last_result;
        assert_eq!(last, Some(CheckResult::TimedOut), "{target}");
    }
}

/// A backend in a thread that answers every connection with the first
/// bytes of a response, and nothing more while the connection lasts.
struct SlowBackend {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl SlowBackend {
    fn start() -> SlowBackend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            for mut stream in listener.incoming().flatten() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n");
                // Probes close with a reset; their streams go with the
                // thread.
                open.push(stream);
            }
        });
        SlowBackend { addr, stop }
    }
}

impl Drop for SlowBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes its accept.
        let _ = TcpStream::connect(self.addr);
    }
}

/// The example `name` of `package` (built with its `monitor` feature),
/// beside this test's binary, built first (a no-op when fresh): `cargo
/// test` builds the examples, but not when asked for one test target, and
/// a binary built before the last edit would test old code.
pub fn example(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--features",
            "monitor",
            "--example",
            name,
        ])
        .args(crate::bins::profile_args(profile))
        .status()
        .expect("run cargo");
    assert!(status.success(), "cannot build the {name} example");
    profile.join("examples").join(name)
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

/// The balancer example `name` of `package`, in front of two backends:
/// every client goes to the one that passes its checks, and when they
/// swap, to the other.
pub fn balancer_forwards_only_to_healthy_backends(package: &str, name: &str) {
    let (a_status, b_status) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(503)));
    let a = backend("A", a_status.clone());
    let b = backend("B", b_status.clone());
    let mut balancer = Killed(
        Command::new(example(package, name))
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
