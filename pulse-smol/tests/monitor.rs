//! The monitor driver's own work: probes over `max_probes` wait for room
//! and then run, a removed target's probe is closed, and the driver closes
//! its sockets when the last handle goes. (The real-socket tests of its
//! verdicts, against targets in other processes, are the workspace's
//! `tests/tests/monitor_smol.rs`.)
#![cfg(feature = "monitor")]

mod common;

use std::time::Duration;

use common::run;
use pulse_driver::clock;
use pulse_monitor::{Check, Config, Event, Health, HttpCheck, Monitor, TargetId, TargetSpec};
use pulse_smol::monitor::{watch, WatchConfig, Watcher};

fn watcher(config: WatchConfig) -> Watcher {
    let mut monitor = Config::lan();
    monitor.damping = None;
    let monitor = Monitor::new(monitor, clock::now(), clock::seed()).unwrap();
    let (watcher, driver) = watch(config, monitor);
    smol::spawn(driver).detach();
    watcher
}

#[test]
fn probes_over_the_limit_wait_for_room_and_then_run() {
    let watcher = watcher(WatchConfig {
        max_probes: 1,
        ..WatchConfig::default()
    });
    let pool = watcher.add_pool();
    let tcp = watcher.add_check(Check::Tcp);
    // 200 targets whose first checks are spread over one interval: some
    // are due together, and one waits for the other.
    let listeners: Vec<std::net::TcpListener> = (0..200)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let targets: Vec<TargetId> = listeners
        .iter()
        .map(|l| {
            let addr = l.local_addr().unwrap();
            watcher.add_target(TargetSpec::checked(pool, tcp), Some(addr)).unwrap()
        })
        .collect();
    run(async {
        let mut up = Vec::new();
        while up.len() < targets.len() {
            let event = watcher.recv().await;
            assert!(watcher.probes() <= 1, "{} probes open", watcher.probes());
            if let Event::Transition(t) = event {
                assert_ne!(t.to, Health::Down, "{t:?}");
                if t.to == Health::Up && !up.contains(&t.target) {
                    up.push(t.target);
                }
            }
        }
    });
    let stats = watcher.stats();
    assert!(stats.deferred > 0, "no probe ever waited: {stats:?}");
    assert!(stats.probes >= 200, "{stats:?}");
}

#[test]
fn a_removed_targets_probe_is_closed_at_once() {
    let watcher = watcher(WatchConfig::default());
    let pool = watcher.add_pool();
    let http = watcher.add_check(Check::Http(HttpCheck::get("/").unwrap()));
    // Its kernel accepts the connect; nobody ever answers: each probe stays
    // open until the monitor's timeout (500 ms), unless aborted.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = watcher
        .add_target(TargetSpec::checked(pool, http), Some(hung.local_addr().unwrap()))
        .unwrap();
    run(async {
        while watcher.probes() == 0 {
            async_io::Timer::after(Duration::from_millis(1)).await;
        }
    });
    assert!(watcher.remove_target(target));
    // Well within the timeout that would have closed it anyway.
    common::run_within(Duration::from_millis(100), async {
        while watcher.probes() > 0 {
            async_io::Timer::after(Duration::from_millis(1)).await;
        }
    });
    assert_eq!(watcher.monitor_stats().timeouts, 0);
}

#[test]
fn the_driver_finishes_and_closes_its_sockets_when_the_last_handle_goes() {
    let monitor = Monitor::new(Config::lan(), clock::now(), 1).unwrap();
    let (watcher, driver) = watch(WatchConfig::default(), monitor);
    let driver = smol::spawn(driver);
    let addr = watcher.listen_announcements("127.0.0.1:0".parse().unwrap()).unwrap();
    // Held (with SO_REUSEPORT), the port takes no socket without it.
    assert!(std::net::UdpSocket::bind(addr).is_err());
    let clone = watcher.clone();
    drop(watcher);
    assert!(!driver.is_finished(), "a handle is left");
    drop(clone);
    run(driver);
    std::net::UdpSocket::bind(addr).expect("the announcement socket is closed");
}
