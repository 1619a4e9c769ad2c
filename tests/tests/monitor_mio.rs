//! pulse-mio's monitor driver (`pulse_mio::monitor::Watcher`) over real
//! sockets, against targets in other processes (`pulse-target`,
//! `pulse-peer`): TCP, HTTP and announcing targets that are killed, frozen
//! (SIGSTOP) or answer 503 go down within their bounds and come back after
//! `rise` checks; spoofed announcements are rejected and counted; a pulse
//! connection of the loop is a target fed by its own events.
//!
//! Every bound is three times the detection time the configuration gives
//! (with jitter at its worst), measured from the moment the target was
//! killed, frozen or restarted to the monitor's own time of the
//! transition; every wait is bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll};
use pulse_driver::clock;
use pulse_mio::monitor::{WatchConfig, Watcher};
use pulse_mio::{ConnId, Ctx, Endpoint, Handler, LoopConfig};
use pulse_monitor::{
    AnnounceKey, Announcement, Check, CheckResult, Config, Health, HttpCheck, Monitor, PeerSignal, PoolId, PulseCheck,
    Reason, TargetId, TargetSpec, Transition,
};
use pulse_proto::{Closed, Event, Status};
use pulse_tests::monitor_bounds::{
    announcer, checks, config, down_when_failing_at_once, down_when_timing_out, silent_down_bound, up_after_rise,
    within, ANNOUNCE_MS, KEY, PATIENCE,
};
use pulse_tests::peer::Peer;

const TARGET: &str = env!("CARGO_BIN_EXE_pulse-target");
const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");
/// A watcher in a `Poll` of its own, and every transition it reported.
struct Rig {
    poll: Poll,
    events: Events,
    watcher: Watcher,
    transitions: Vec<Transition>,
}

impl Rig {
    fn new(config: Config) -> Rig {
        let poll = Poll::new().unwrap();
        let monitor = Monitor::new(config, clock::now(), clock::seed()).unwrap();
        let watcher = Watcher::new(WatchConfig::default(), monitor, poll.registry(), 0..10_000).unwrap();
        Rig {
            poll,
            events: Events::with_capacity(1024),
            watcher,
            transitions: Vec::new(),
        }
    }

    fn turn(&mut self) {
        self.watcher
            .turn(&mut self.poll, &mut self.events, Some(Duration::from_millis(10)))
            .unwrap();
        while let Some(event) = self.watcher.poll_event() {
            if let pulse_monitor::Event::Transition(t) = event {
                self.transitions.push(t);
            }
        }
    }

    /// Turns until `target` has made a transition to `to` after `since`;
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
            self.turn();
        }
    }

    fn transition(&self, target: TargetId, to: Health, since: Instant) -> Option<Transition> {
        self.transitions
            .iter()
            .find(|t| t.target == target && t.to == to && clock::to_std(t.at) >= since)
            .copied()
    }

    /// Turns for `span`.
    fn run_for(&mut self, span: Duration) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            self.turn();
        }
    }
}

#[test]
fn a_killed_tcp_target_goes_down_within_its_bound_and_comes_back_after_rise_checks() {
    let config = config();
    let mut rig = Rig::new(config.clone());
    let target = Peer::start(TARGET, &["tcp", "16"]);
    let addr = target.addr.unwrap();
    let pool = rig.watcher.monitor_mut().add_pool();
    let tcp = rig.watcher.monitor_mut().add_check(Check::Tcp);
    let id = rig
        .watcher
        .add_target(TargetSpec::checked(pool, tcp), Some(addr))
        .unwrap();
    let start = Instant::now();
    rig.until(id, Health::Up, start);

    drop(target); // killed: connects are refused
    let killed = Instant::now();
    let down = rig.until(id, Health::Down, killed);
    assert_eq!(checks(&down), (config.fall, CheckResult::Refused));
    let bound = down_when_failing_at_once(&config) * 3;
    within(&down, killed, bound, "the kill");

    let _target = Peer::start(TARGET, &["tcp", "16", &addr.to_string()]);
    let restarted = Instant::now();
    let up = rig.until(id, Health::Up, restarted);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(None)));
    let bound = up_after_rise(&config) * 3;
    within(&up, restarted, bound, "the restart");
    assert!(rig.watcher.stats().probes >= u64::from(config.fall + config.rise));
}

#[test]
fn a_frozen_http_target_goes_down_within_its_bound_and_comes_back_after_rise_checks_once_thawed() {
    let config = config();
    let mut rig = Rig::new(config.clone());
    let target = Peer::start(TARGET, &["http", "200"]);
    let pool = rig.watcher.monitor_mut().add_pool();
    let http = HttpCheck::get("/health")
        .unwrap()
        .host("target")
        .unwrap()
        .expect(200..=299);
    let http = rig.watcher.monitor_mut().add_check(Check::Http(http));
    let id = rig
        .watcher
        .add_target(TargetSpec::checked(pool, http), target.addr)
        .unwrap();
    let up = rig.until(id, Health::Up, Instant::now());
    assert_eq!(checks(&up).1, CheckResult::Passed(Some(200)));

    // Frozen, its kernel still accepts connects into the backlog, and no
    // answer ever comes: each check times out.
    target.freeze();
    let frozen = Instant::now();
    let down = rig.until(id, Health::Down, frozen);
    assert_eq!(checks(&down), (config.fall, CheckResult::TimedOut));
    let bound = down_when_timing_out(&config) * 3;
    within(&down, frozen, bound, "the freeze");

    target.thaw();
    let thawed = Instant::now();
    let up = rig.until(id, Health::Up, thawed);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(Some(200))));
    let bound = up_after_rise(&config) * 3;
    within(&up, thawed, bound, "the thaw");
    assert_eq!(rig.watcher.probes(), 0, "every probe connection was closed");
}

#[test]
fn an_http_target_answering_503_goes_down_within_its_bound_and_comes_back_after_rise_checks() {
    let config = config();
    let mut rig = Rig::new(config.clone());
    let mut target = Peer::start(TARGET, &["http", "200"]);
    let pool = rig.watcher.monitor_mut().add_pool();
    let http = HttpCheck::get("/health").unwrap().expect(200..=299);
    let http = rig.watcher.monitor_mut().add_check(Check::Http(http));
    let id = rig
        .watcher
        .add_target(TargetSpec::checked(pool, http), target.addr)
        .unwrap();
    rig.until(id, Health::Up, Instant::now());

    assert_eq!(target.ask("status 503"), "status 503");
    let unavailable = Instant::now();
    let down = rig.until(id, Health::Down, unavailable);
    assert_eq!(checks(&down), (config.fall, CheckResult::UnexpectedStatus(503)));
    let bound = down_when_failing_at_once(&config) * 3;
    within(&down, unavailable, bound, "the 503s began");

    assert_eq!(target.ask("status 200"), "status 200");
    let available = Instant::now();
    let up = rig.until(id, Health::Up, available);
    assert_eq!(checks(&up), (config.rise, CheckResult::Passed(Some(200))));
    let bound = up_after_rise(&config) * 3;
    within(&up, available, bound, "the 200s came back");
}

/// A rig that requires `KEY`, with service 7 as a target, announcing (its
/// first incarnation) to the rig's socket; returns the socket's address.
fn announced_rig() -> (Rig, SocketAddr, TargetId, Peer) {
    let mut rig = Rig::new(config());
    rig.watcher
        .monitor_mut()
        .add_announce_key(AnnounceKey::new(KEY.as_bytes()));
    let to = rig
        .watcher
        .listen_announcements("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let pool = rig.watcher.monitor_mut().add_pool();
    let id = rig.watcher.add_target(TargetSpec::announced(pool, 7), None).unwrap();
    let service = announcer(TARGET, to, 7, 1, KEY);
    (rig, to, id, service)
}

#[test]
fn an_announcing_service_killed_or_frozen_goes_down_within_its_detection_time_and_comes_back_when_it_announces() {
    let (mut rig, to, id, service) = announced_rig();
    let up = rig.until(id, Health::Up, Instant::now());
    assert_eq!(up.reason, Reason::Announced);
    // Ten announcements, so the detector has learned their rhythm.
    rig.run_for(Duration::from_millis(10 * ANNOUNCE_MS));

    drop(service);
    let killed = Instant::now();
    let down = rig.until(id, Health::Down, killed);
    assert!(matches!(down.reason, Reason::Suspicion { .. }), "{:?}", down.reason);
    within(&down, killed, silent_down_bound(), "the kill");

    // Restarted: a newer incarnation, up at its first announcement.
    let service = announcer(TARGET, to, 7, 2, KEY);
    let restarted = Instant::now();
    let up = rig.until(id, Health::Up, restarted);
    assert_eq!(up.reason, Reason::Announced);
    within(&up, restarted, Duration::from_millis(3 * ANNOUNCE_MS), "the restart");
    rig.run_for(Duration::from_millis(10 * ANNOUNCE_MS));

    service.freeze();
    let frozen = Instant::now();
    let down = rig.until(id, Health::Down, frozen);
    within(&down, frozen, silent_down_bound(), "the freeze");
    service.thaw();
    let thawed = Instant::now();
    let up = rig.until(id, Health::Up, thawed);
    within(&up, thawed, Duration::from_millis(3 * ANNOUNCE_MS), "the thaw");
    let stats = *rig.watcher.monitor().stats();
    assert_eq!(
        (stats.bad_tag, stats.unauthenticated, stats.stale),
        (0, 0, 0),
        "{stats:?}"
    );
}

#[test]
fn spoofed_announcements_are_rejected_counted_and_keep_no_dead_service_alive() {
    let (mut rig, to, id, service) = announced_rig();
    rig.until(id, Health::Up, Instant::now());
    rig.run_for(Duration::from_millis(10 * ANNOUNCE_MS));

    // The service dies; someone keeps announcing it, newer than anything
    // it sent, every 50 ms: half with a wrong key, half with none.
    drop(service);
    let killed = Instant::now();
    let spoofer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let wrong = AnnounceKey::new(b"a guess");
    let (mut forged, mut bare, mut next) = (0u64, 0u64, Instant::now());
    let down = loop {
        if let Some(down) = rig.transition(id, Health::Down, killed) {
            break down;
        }
        assert!(killed.elapsed() < PATIENCE, "never down: {:?}", rig.transitions);
        if Instant::now() >= next {
            next += Duration::from_millis(50);
            let spoof = Announcement {
                service: 7,
                incarnation: 99,
                sequence: (forged + bare + 1) as u32,
                interval: Duration::from_millis(ANNOUNCE_MS),
                report: pulse_monitor::Report::Running(Status::default()),
            };
            if (forged + bare) % 2 == 0 {
                spoofer.send_to(&spoof.encode(Some(&wrong)), to).unwrap();
                forged += 1;
            } else {
                spoofer.send_to(&spoof.encode(None), to).unwrap();
                bare += 1;
            }
        }
        rig.turn();
    };
    within(&down, killed, silent_down_bound(), "the kill");
    assert!(forged + bare >= 4, "only {} spoofs before the verdict", forged + bare);
    // Every spoof read is counted, and nothing else was.
    let started = Instant::now();
    loop {
        let stats = *rig.watcher.monitor().stats();
        if (stats.bad_tag, stats.unauthenticated) == (forged, bare) {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{stats:?}: sent {forged} forged, {bare} bare"
        );
        rig.turn();
    }
    assert_eq!(rig.watcher.monitor().snapshot(id).unwrap().health, Health::Down);
    assert_eq!(
        rig.watcher.monitor().snapshot(id).unwrap().sequence.unwrap().0,
        1,
        "a spoof was taken"
    );
}

/// A load balancer's loop: pulse connections to its backends, each a
/// monitor target fed by its own events.
struct Backends {
    watcher: Watcher,
}

impl Handler for Backends {
    /// The target each connection is.
    type Conn = Option<TargetId>;
    fn accepted(&mut self, _peer: SocketAddr) -> Option<TargetId> {
        None
    }
    fn on_open(&mut self, ctx: &mut Ctx<'_, Option<TargetId>>, conn: ConnId) {
        if let (Some(Some(target)), Some(negotiated)) = (ctx.value(conn).copied(), ctx.negotiated(conn)) {
            self.watcher.handle_peer_event(target, &Event::Connected(negotiated));
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, Option<TargetId>>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_event(&mut self, ctx: &mut Ctx<'_, Option<TargetId>>, conn: ConnId, event: &Event) {
        if let Some(Some(target)) = ctx.value(conn).copied() {
            self.watcher.handle_peer_event(target, event);
        }
    }
    fn on_close(
        &mut self,
        _ctx: &mut Ctx<'_, Option<TargetId>>,
        _conn: ConnId,
        closed: &Closed,
        target: Option<TargetId>,
    ) {
        if let Some(target) = target {
            self.watcher.handle_peer_event(target, &Event::Closed(closed.clone()));
        }
    }
}

/// An [`Endpoint`] and its handler's [`Watcher`] in one `Poll`.
struct Balancer {
    poll: Poll,
    events: Events,
    endpoint: Endpoint<Backends>,
    transitions: Vec<Transition>,
}

impl Balancer {
    fn turn(&mut self) {
        let timeout = [
            self.endpoint.poll_timeout(),
            self.endpoint.handler().watcher.poll_timeout(),
            Some(Duration::from_millis(10)),
        ]
        .into_iter()
        .flatten()
        .min();
        let endpoint = &mut self.endpoint;
        let sockets = endpoint.connections() + endpoint.handler().watcher.probes() + 130;
        pulse_mio::poll_all(&mut self.poll, &mut self.events, timeout, sockets, |event| {
            if !endpoint.handle_event(event) {
                endpoint.handler().watcher.handle_event(event);
            }
        })
        .unwrap();
        self.endpoint.process().unwrap();
        let watcher = &mut self.endpoint.handler().watcher;
        watcher.process();
        while let Some(event) = watcher.poll_event() {
            if let pulse_monitor::Event::Transition(t) = event {
                self.transitions.push(t);
            }
        }
    }

    fn until(&mut self, target: TargetId, to: Health, since: Instant) -> Transition {
        let started = Instant::now();
        loop {
            let found = self
                .transitions
                .iter()
                .find(|t| t.target == target && t.to == to && clock::to_std(t.at) >= since);
            if let Some(t) = found {
                return *t;
            }
            assert!(started.elapsed() < PATIENCE, "never {to}: {:?}", self.transitions);
            self.turn();
        }
    }
}

/// The dead-peer timeout of the pulse connections to `pulse-peer`.
const DEAD_MS: u64 = 600;

/// A `pulse-peer` echo server (200 ms / [`DEAD_MS`]) and a balancer loop.
fn balancer() -> (Peer, Balancer) {
    balancer_with(config())
}

/// [`balancer`], its monitor configured with `config`.
fn balancer_with(config: Config) -> (Peer, Balancer) {
    let server = Peer::start(PEER, &["mio-echo-server", "200", &DEAD_MS.to_string()]);
    let poll = Poll::new().unwrap();
    let monitor = Monitor::new(config, clock::now(), clock::seed()).unwrap();
    let watcher = Watcher::new(WatchConfig::default(), monitor, poll.registry(), 100_000..110_000).unwrap();
    let session =
        pulse_proto::Config::default().with_timing(Duration::from_millis(200), Duration::from_millis(DEAD_MS));
    let endpoint = Endpoint::new(
        LoopConfig::new(session),
        Backends { watcher },
        poll.registry(),
        0..100_000,
    )
    .unwrap();
    let lb = Balancer {
        poll,
        events: Events::with_capacity(1024),
        endpoint,
        transitions: Vec::new(),
    };
    (server, lb)
}

#[test]
fn a_pulse_connection_of_the_loop_is_a_target_and_its_frozen_peer_goes_down_at_its_dead_peer_timeout() {
    let (server, mut lb) = balancer();
    let watcher = &mut lb.endpoint.handler().watcher;
    let pool = watcher.monitor_mut().add_pool();
    let target = watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    lb.endpoint.connect(server.addr.unwrap(), Some(target)).unwrap();

    let up = lb.until(target, Health::Up, Instant::now());
    assert_eq!(up.reason, Reason::Peer(PeerSignal::Connected));
    // A second of heartbeats: their round trips reach the monitor.
    let steady = Instant::now() + Duration::from_secs(1);
    while Instant::now() < steady {
        lb.turn();
    }
    let snapshot = lb.endpoint.handler().watcher.monitor().snapshot(target).unwrap();
    assert_eq!(snapshot.health, Health::Up);
    assert!(snapshot.rtt.is_some(), "no round trip reached the monitor");

    // Frozen: the session's dead-peer verdict comes at the timeout after
    // the last frame heard, which came before the freeze.
    server.freeze();
    let frozen = Instant::now();
    let down = lb.until(target, Health::Down, frozen);
    assert_eq!(down.reason, Reason::Peer(PeerSignal::Dead));
    let bound = Duration::from_millis(3 * DEAD_MS);
    within(&down, frozen, bound, "the freeze");
    server.thaw();
}

/// The monitor's own stall, for real: the balancer's loop — its pulse
/// connections and its monitor alike — stops for four of the server's
/// dead-peer timeouts, and the server times both sessions out and closes
/// them. Those closes are no verdict: each peer is suspect, in its pool;
/// the one whose connection is renewed is up again, the other is down only
/// after `reconnect_grace` ([`Reason::NotReconnected`]).
#[test]
fn a_stall_of_the_monitors_own_loop_takes_no_pulse_peer_down_before_a_fresh_chance() {
    let mut config = config();
    config.reconnect_grace = Duration::from_secs(1);
    let grace = config.reconnect_grace;
    let (server, mut lb) = balancer_with(config);
    let addr = server.addr.unwrap();
    let watcher = &mut lb.endpoint.handler().watcher;
    let pool = watcher.monitor_mut().add_pool();
    let renewed = watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    let left = watcher.add_target(TargetSpec::peer(pool), None).unwrap();
    lb.endpoint.connect(addr, Some(renewed)).unwrap();
    lb.endpoint.connect(addr, Some(left)).unwrap();
    let born = Instant::now();
    lb.until(renewed, Health::Up, born);
    lb.until(left, Health::Up, born);
    let steady = Instant::now() + Duration::from_secs(1);
    while Instant::now() < steady {
        lb.turn();
    }

    // The stall itself: nothing in the loop runs (as under SIGSTOP).
    let stalled = Instant::now();
    std::thread::sleep(Duration::from_millis(4 * DEAD_MS));
    let resumed = Instant::now();
    for target in [renewed, left] {
        // Its first move after the stall: suspect, not down.
        let started = Instant::now();
        let lost = loop {
            let first = lb
                .transitions
                .iter()
                .find(|t| t.target == target && clock::to_std(t.at) >= stalled);
            if let Some(t) = first {
                break *t;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{target} never lost: {:?}",
                lb.transitions
            );
            lb.turn();
        };
        assert_eq!(lost.to, Health::Suspect, "{lost:?}");
        assert!(
            matches!(lost.reason, Reason::Peer(PeerSignal::Closed(_) | PeerSignal::Dead)),
            "{:?}",
            lost.reason
        );
    }
    let stats = *lb.endpoint.handler().watcher.monitor().stats();
    assert!(stats.stalls >= 1, "the monitor did not notice its stall: {stats:?}");
    assert_eq!(stats.losses_excused, 2, "{stats:?}");

    lb.endpoint.connect(addr, Some(renewed)).unwrap();
    let up = lb.until(renewed, Health::Up, resumed);
    assert_eq!(up.reason, Reason::Peer(PeerSignal::Connected));
    let down = lb.until(left, Health::Down, resumed);
    assert_eq!(down.reason, Reason::NotReconnected);
    assert!(clock::to_std(down.at) >= resumed + grace, "down before its grace");
    within(&down, resumed, grace * 3, "the stall's end");
    let renewed_down = lb
        .transitions
        .iter()
        .any(|t| t.target == renewed && t.to == Health::Down);
    assert!(!renewed_down, "{:?}", lb.transitions);
}

/// The pulse handshake as a probe over real sockets: a pulse peer whose
/// session is lost goes down only once the handshake probes confirm it,
/// and a target checked by the handshake alone goes up and down with the
/// process. A TCP connect to the same frozen process still passes (its
/// kernel accepts): why a peer is confirmed by the handshake.
#[test]
fn a_frozen_pulse_peer_is_confirmed_down_by_handshake_probes_that_a_tcp_connect_would_pass() {
    let (server, mut lb) = balancer();
    let addr = server.addr;
    let watcher = &mut lb.endpoint.handler().watcher;
    let handshake = watcher.monitor_mut().add_check(Check::Pulse(PulseCheck::new()));
    let tcp = watcher.monitor_mut().add_check(Check::Tcp);
    // Each in a pool of its own.
    let mut add = |spec: &dyn Fn(PoolId) -> TargetSpec| {
        let pool = watcher.monitor_mut().add_pool();
        watcher.add_target(spec(pool), addr).unwrap()
    };
    let peer = add(&|pool| TargetSpec::peer(pool).confirm_with(handshake));
    let checked = add(&|pool| TargetSpec::checked(pool, handshake));
    let connect = add(&|pool| TargetSpec::checked(pool, tcp));
    lb.endpoint.connect(addr.unwrap(), Some(peer)).unwrap();
    let born = Instant::now();
    lb.until(peer, Health::Up, born);
    let up = lb.until(checked, Health::Up, born);
    assert_eq!(checks(&up).1, CheckResult::Passed(None));
    lb.until(connect, Health::Up, born);

    server.freeze();
    let frozen = Instant::now();
    let config = config();
    let down = lb.until(peer, Health::Down, frozen);
    assert!(
        matches!(
            down.reason,
            Reason::LostConfirmed {
                failed: 3..,
                last: CheckResult::TimedOut
            }
        ),
        "{:?}",
        down.reason
    );
    let bound = (Duration::from_millis(DEAD_MS) + down_when_timing_out(&config)) * 3;
    within(&down, frozen, bound, "the freeze");
    let down = lb.until(checked, Health::Down, frozen);
    assert_eq!(checks(&down), (config.fall, CheckResult::TimedOut));
    within(&down, frozen, down_when_timing_out(&config) * 3, "the freeze");
    let connect_health = lb
        .endpoint
        .handler()
        .watcher
        .monitor()
        .snapshot(connect)
        .unwrap()
        .health;
    assert_eq!(connect_health, Health::Up, "a TCP connect to a frozen process failed");

    server.thaw();
    let thawed = Instant::now();
    let up = lb.until(checked, Health::Up, thawed);
    within(&up, thawed, up_after_rise(&config) * 3, "the thaw");
}
