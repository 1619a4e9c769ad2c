//! Active checks (TCP, HTTP) with interval 1 s, fast interval 250 ms, fall
//! 3 and timeout 500 ms (`Config::lan()`), in the simulator.

mod sim;

use pulse_monitor::{Check, CheckResult, Config, Event, Health, HttpCheck, Monitor, Reason, TargetSpec};
use pulse_proto::Instant;
use sim::{at, quantile, secs, seeds, Behaviour, Link, Rng, Sim};
use std::time::Duration;

const TARGETS: usize = 400;

/// `n` targets, each in a pool of its own (so that killing many does not
/// trip the correlated-failure guard, which has its own property).
fn fleet(seed: u64, n: usize, http: bool) -> Sim {
    let mut monitor = Monitor::with_capacity(Config::lan(), Instant::ZERO, seed, n).unwrap();
    let check = if http {
        monitor.add_check(Check::Http(HttpCheck::get("/health").unwrap()))
    } else {
        monitor.add_check(Check::Tcp)
    };
    let mut sim = Sim::new(monitor, Link::CLEAN, seed);
    for _ in 0..n {
        let pool = sim.monitor.add_pool();
        let id = sim
            .monitor
            .add_target(sim.now, TargetSpec::checked(pool, check))
            .unwrap();
        sim.add_probed(id);
    }
    sim
}

/// Breaks each target at a random time in [10 s, 20 s) and returns the
/// time each took to go down.
fn detection_times(behaviour: Behaviour, http: bool, bound: Duration) -> Vec<Duration> {
    let mut all = Vec::new();
    for seed in seeds(2) {
        let mut sim = fleet(seed, TARGETS, http);
        sim.run_until(at(10.0));
        for k in 0..TARGETS {
            let health = sim.monitor.snapshot(sim.targets[k].id).unwrap().health;
            assert_eq!(health, Health::Up, "seed {seed}: target {k} not up after 10 s");
        }
        let mut rng = Rng::new(seed);
        let mut breaks: Vec<(Instant, usize)> = (0..TARGETS).map(|k| (at(10.0 + 10.0 * rng.unit()), k)).collect();
        breaks.sort();
        for &(t, k) in &breaks {
            sim.run_until(t);
            sim.set(k, behaviour);
        }
        sim.run_until(at(30.0));
        for &(t, k) in &breaks {
            let id = sim.targets[k].id;
            let down = sim
                .first_transition(id, Health::Down, t)
                .unwrap_or_else(|| panic!("seed {seed}: target {k} ({behaviour:?}) never went down"));
            let took = down - t;
            assert!(took <= bound * 3, "seed {seed}: target {k} took {took:?}");
            all.push(took);
        }
    }
    all
}

#[test]
fn a_killed_target_is_down_within_2_s_at_p99() {
    let mut times = detection_times(Behaviour::Killed, false, secs(2.0));
    let p50 = quantile(&mut times, 0.5);
    let p99 = quantile(&mut times, 0.99);
    println!(
        "killed (refused): p50 {p50:?}, p99 {p99:?}, max {:?}, n {}",
        times.last().unwrap(),
        times.len()
    );
    assert!(p99 <= secs(2.0), "p99 {p99:?}");
}

#[test]
fn a_frozen_target_is_down_within_3_5_s_at_p99() {
    let mut times = detection_times(Behaviour::Frozen, false, secs(3.5));
    let p50 = quantile(&mut times, 0.5);
    let p99 = quantile(&mut times, 0.99);
    println!(
        "frozen (no answer): p50 {p50:?}, p99 {p99:?}, max {:?}, n {}",
        times.last().unwrap(),
        times.len()
    );
    assert!(p99 <= secs(3.5), "p99 {p99:?}");
}

#[test]
fn an_http_target_answering_503_is_down_within_2_s_at_p99_and_says_why() {
    let mut times = detection_times(Behaviour::Unhealthy, true, secs(2.0));
    let p99 = quantile(&mut times, 0.99);
    println!("HTTP 503: p99 {p99:?}");
    assert!(p99 <= secs(2.0), "p99 {p99:?}");
    let mut sim = fleet(1, 1, true);
    sim.run_until(at(5.0));
    sim.set(0, Behaviour::Unhealthy);
    sim.run_until(at(10.0));
    let reason = sim.events.iter().find_map(|(_, e)| match e {
        Event::Transition(t) if t.to == Health::Down => Some(t.reason),
        _ => None,
    });
    assert_eq!(
        reason,
        Some(Reason::Checks {
            count: 3,
            last: CheckResult::UnexpectedStatus(503)
        })
    );
}

#[test]
fn a_restarted_target_comes_back_after_rise_passing_checks() {
    let mut sim = fleet(3, 1, false);
    let id = sim.targets[0].id;
    sim.run_until(at(5.0));
    sim.set(0, Behaviour::Killed);
    sim.run_until(at(10.0));
    assert_eq!(sim.monitor.snapshot(id).unwrap().health, Health::Down);
    sim.restart(0);
    let restarted = sim.now;
    sim.run_until(at(20.0));
    let up = sim.first_transition(id, Health::Up, restarted).expect("came back");
    let reason = sim.events.iter().rev().find_map(|(_, e)| match e {
        Event::Transition(t) if t.to == Health::Up => Some(t.reason),
        _ => None,
    });
    assert_eq!(
        reason,
        Some(Reason::Checks {
            count: 2,
            last: CheckResult::Passed(None)
        })
    );
    // One down interval to notice, one fast interval for the second pass.
    let config = Config::lan();
    let bound = (config.down_interval + config.fast_interval) * 11 / 10 + Duration::from_millis(10);
    assert!(up - restarted <= bound, "{:?}", up - restarted);
}

#[test]
fn ten_thousand_targets_are_never_checked_in_lockstep() {
    let n = 10_000;
    let mut sim = fleet(5, n, false);
    sim.keep_events = false;
    sim.run_until(at(30.0));
    let before = sim.monitor.stats().probes;
    // Count probes started in each 10 ms over ten seconds.
    let mut buckets = vec![0u64; 1000];
    let mut last = before;
    for bucket in buckets.iter_mut() {
        sim.run_for(Duration::from_millis(10));
        let probes = sim.monitor.stats().probes;
        *bucket = probes - last;
        last = probes;
    }
    let mean = (last - before) as f64 / 1000.0;
    let max = *buckets.iter().max().unwrap() as f64;
    println!("probes per 10 ms: mean {mean:.1}, max {max}");
    assert!((mean - 100.0).abs() < 10.0, "mean {mean}");
    assert!(max < mean * 2.0, "a burst of {max} probes in 10 ms");
}

/// A spread start: 10,000 targets added in one instant are first checked
/// at phases spread over the first interval, not all at once (the jitter
/// alone would only spread them after several rounds).
#[test]
fn ten_thousand_targets_added_at_once_are_first_checked_spread_over_an_interval() {
    let n = 10_000;
    let mut sim = fleet(6, n, false);
    sim.keep_events = false;
    // Count probes started in each 10 ms of the first second.
    let mut buckets = vec![0u64; 100];
    let mut last = sim.monitor.stats().probes;
    for bucket in buckets.iter_mut() {
        sim.run_for(Duration::from_millis(10));
        let probes = sim.monitor.stats().probes;
        *bucket = probes - last;
        last = probes;
    }
    let max = *buckets.iter().max().unwrap();
    println!("first second: {last} probes, at most {max} in 10 ms");
    assert!(
        last >= n as u64 * 9 / 10,
        "only {last} of {n} targets checked in the first interval"
    );
    assert!(max < 200, "a burst of {max} probes in 10 ms where 100 are expected");
}
