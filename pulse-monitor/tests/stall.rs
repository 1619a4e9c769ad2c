//! The monitor's own stalls: a stall of any length gives no down verdict.

mod sim;

use std::time::Duration;

use pulse_monitor::{Check, Config, Event, Health, Monitor, TargetSpec};
use pulse_proto::Instant;
use sim::{at, secs, seeds, Link, Rng, Sim};

/// 50 checked targets and 50 announcers, all alive, in five pools.
fn fleet(seed: u64) -> Sim {
    let monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
    let mut sim = Sim::new(monitor, Link::CLEAN, seed);
    let tcp = sim.monitor.add_check(Check::Tcp);
    let pools: Vec<_> = (0..5).map(|_| sim.monitor.add_pool()).collect();
    for k in 0..100 {
        let pool = pools[k % 5];
        if k % 2 == 0 {
            let id = sim.monitor.add_target(sim.now, TargetSpec::checked(pool, tcp)).unwrap();
            sim.add_probed(id);
        } else {
            let service = k as u64;
            let id = sim
                .monitor
                .add_target(sim.now, TargetSpec::announced(pool, service))
                .unwrap();
            sim.add_announcer(id, service, Duration::from_secs(1));
        }
    }
    sim
}

fn stalls_give_no_down(drop_during_stall: bool) {
    let lengths = [0.2, 0.45, 0.6, 1.0, 2.5, 3.4, 5.0, 10.0, 30.0, 120.0, 600.0];
    for seed in seeds(3) {
        let mut sim = fleet(seed);
        sim.drop_during_stall = drop_during_stall;
        sim.run_until(at(20.0));
        let mut rng = Rng::new(seed);
        for length in lengths {
            // Stall at a random phase, then run long enough for any verdict
            // the stall could have caused to come out.
            sim.run_for(secs(rng.unit() * 2.0));
            sim.stall(secs(length));
            sim.run_for(secs(length + 10.0));
        }
        let downs: Vec<_> = sim
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Transition(t) if t.to == Health::Down))
            .collect();
        assert!(downs.is_empty(), "seed {seed}, drop {drop_during_stall}: {downs:?}");
        let noticed = sim
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::LocalHealth { score: 1.., .. }))
            .count();
        assert!(noticed >= 7, "seed {seed}: only {noticed} stalls noticed");
        for k in 0..sim.targets.len() {
            let health = sim.monitor.snapshot(sim.targets[k].id).unwrap().health;
            assert_eq!(health, Health::Up, "seed {seed}: target {k}");
        }
    }
}

#[test]
fn a_stall_of_any_length_gives_no_down_verdict_when_the_socket_kept_everything() {
    stalls_give_no_down(false);
}

#[test]
fn a_stall_of_any_length_gives_no_down_verdict_even_when_the_socket_overflowed() {
    stalls_give_no_down(true);
}

#[test]
fn a_target_that_died_during_a_stall_is_still_found_down_after_it() {
    let mut sim = fleet(9);
    sim.run_until(at(20.0));
    sim.set(0, sim::Behaviour::Killed);
    sim.set(1, sim::Behaviour::Killed);
    sim.stall(secs(30.0));
    sim.run_for(secs(40.0));
    for k in [0, 1] {
        let id = sim.targets[k].id;
        let down = sim.first_transition(id, Health::Down, at(20.0)).expect("found down");
        // Fresh evidence first: no verdict at the instant the stall ended.
        assert!(down > at(50.0), "{down:?}");
        assert!(down < at(56.0), "{down:?}");
    }
}

#[test]
fn intervals_stretch_while_the_monitor_is_unhealthy_and_recover_after() {
    let mut sim = fleet(4);
    sim.run_until(at(20.0));
    let probes = |sim: &mut Sim, d: f64| {
        let before = sim.monitor.stats().probes;
        sim.run_for(secs(d));
        sim.monitor.stats().probes - before
    };
    let healthy_rate = probes(&mut sim, 10.0);
    sim.stall(secs(2.0));
    sim.run_for(secs(2.0));
    assert!(sim.monitor.local_score() >= 1);
    let stretched = probes(&mut sim, 4.0) as f64 / 4.0;
    assert!(
        stretched < healthy_rate as f64 / 10.0 * 0.75,
        "{stretched} vs {healthy_rate}/10"
    );
    sim.run_for(secs(30.0));
    assert_eq!(sim.monitor.local_score(), 0);
}
