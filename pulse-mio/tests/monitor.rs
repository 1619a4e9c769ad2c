//! The monitor driver's own limits: probes over `max_probes` wait for room
//! and then run, and a flood at an announcement socket, read a budget a
//! turn, never stops the probes.
#![cfg(feature = "monitor")]

use std::time::{Duration, Instant};

use mio::{Events, Poll};
use pulse_driver::clock;
use pulse_mio::monitor::{WatchConfig, Watcher};
use pulse_monitor::{Check, Config, Event, Health, Monitor, TargetId, TargetSpec};

const PATIENCE: Duration = Duration::from_secs(20);

fn watcher(poll: &Poll, config: WatchConfig) -> Watcher {
    let mut monitor = Config::lan();
    monitor.damping = None;
    let monitor = Monitor::new(monitor, clock::now(), clock::seed()).unwrap();
    Watcher::new(config, monitor, poll.registry(), 0..10_000).unwrap()
}

/// Turns until every one of `targets` is up; fails on any down, and on
/// more than `max_probes` probe connections open.
fn until_all_up(poll: &mut Poll, watcher: &mut Watcher, targets: &[TargetId], max_probes: usize) {
    let mut events = Events::with_capacity(256);
    let mut up = Vec::new();
    let started = Instant::now();
    while up.len() < targets.len() {
        assert!(
            started.elapsed() < PATIENCE,
            "up: {up:?} of {targets:?}; {:?}",
            watcher.stats()
        );
        watcher
            .turn(poll, &mut events, Some(Duration::from_millis(10)))
            .unwrap();
        assert!(watcher.probes() <= max_probes, "{} probes open", watcher.probes());
        while let Some(event) = watcher.poll_event() {
            if let Event::Transition(t) = event {
                assert_ne!(t.to, Health::Down, "{t:?}");
                if t.to == Health::Up && !up.contains(&t.target) {
                    up.push(t.target);
                }
            }
        }
    }
}

#[test]
fn probes_over_the_limit_wait_for_room_and_then_run() {
    let mut poll = Poll::new().unwrap();
    let config = WatchConfig {
        max_probes: 1,
        ..WatchConfig::default()
    };
    let mut watcher = watcher(&poll, config);
    let pool = watcher.monitor_mut().add_pool();
    let tcp = watcher.monitor_mut().add_check(Check::Tcp);
    // 200 targets whose first checks are spread over one interval: some
    // start in the same turn, and one waits for the other.
    let listeners: Vec<std::net::TcpListener> = (0..200)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let targets: Vec<TargetId> = listeners
        .iter()
        .map(|l| {
            watcher
                .add_target(TargetSpec::checked(pool, tcp), Some(l.local_addr().unwrap()))
                .unwrap()
        })
        .collect();
    until_all_up(&mut poll, &mut watcher, &targets, 1);
    let stats = watcher.stats();
    assert!(stats.deferred > 0, "no probe ever waited: {stats:?}");
    assert!(stats.probes >= 200, "{stats:?}");
}

#[test]
fn a_flood_at_an_announcement_socket_never_stops_the_probes() {
    let mut poll = Poll::new().unwrap();
    // One datagram a turn, and timers that wait at most 5 ms for the
    // socket to be read empty.
    let config = WatchConfig {
        datagrams_per_turn: 1,
        max_timer_delay: Duration::from_millis(5),
        ..WatchConfig::default()
    };
    let mut monitor = Config::lan();
    monitor.interval = Duration::from_millis(50);
    monitor.fast_interval = Duration::from_millis(20);
    monitor.down_interval = Duration::from_millis(50);
    monitor.timeout = Duration::from_millis(25);
    let monitor = Monitor::new(monitor, clock::now(), clock::seed()).unwrap();
    let mut watcher = Watcher::new(config, monitor, poll.registry(), 0..10_000).unwrap();
    let to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap()).unwrap();
    // The flood waits in the socket: two thousand datagrams (or as many as
    // its buffer holds; a few hundred with the smallest common limit),
    // read one a turn at a turn a millisecond.
    let flood = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..2000 {
        let _ = flood.send_to(b"not an announcement", to);
    }
    let pool = watcher.monitor_mut().add_pool();
    let tcp = watcher.monitor_mut().add_check(Check::Tcp);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = watcher
        .add_target(TargetSpec::checked(pool, tcp), Some(listener.local_addr().unwrap()))
        .unwrap();
    // Its first check is due within 55 ms: long before the flood is read.
    let mut events = Events::with_capacity(256);
    let started = Instant::now();
    let mut up = false;
    while !up {
        assert!(started.elapsed() < PATIENCE, "never up: {:?}", watcher.stats());
        watcher
            .turn(&mut poll, &mut events, Some(Duration::from_millis(1)))
            .unwrap();
        while let Some(event) = watcher.poll_event() {
            up |= matches!(event, Event::Transition(t) if t.target == target && t.to == Health::Up);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let read_when_up = watcher.stats().datagrams;
    watcher
        .turn(&mut poll, &mut events, Some(Duration::from_millis(1)))
        .unwrap();
    let stats = watcher.stats();
    assert!(
        stats.datagrams > read_when_up,
        "the probe ran only once the flood was read: {stats:?}"
    );
    assert!(stats.timers_held > 0, "{stats:?}");
    assert_eq!(watcher.monitor().stats().not_announcements, stats.datagrams);
}
