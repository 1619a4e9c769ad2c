//! Flap damping and the pool guards, in the simulator.

mod sim;

use std::time::Duration;

use pulse_monitor::{Check, Config, Event, Health, Monitor, PanicReason, TargetSpec};
use pulse_proto::Instant;
use sim::{at, secs, seeds, Behaviour, Link, Sim};

/// A pool of `n` checked targets.
fn pool_of(seed: u64, n: usize) -> (Sim, pulse_monitor::PoolId) {
    let monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
    let mut sim = Sim::new(monitor, Link::CLEAN, seed);
    let tcp = sim.monitor.add_check(Check::Tcp);
    let pool = sim.monitor.add_pool();
    for _ in 0..n {
        let id = sim.monitor.add_target(sim.now, TargetSpec::checked(pool, tcp)).unwrap();
        sim.add_probed(id);
    }
    (sim, pool)
}

#[test]
fn a_target_flapping_every_10_s_is_suppressed_within_10_transitions_and_readmitted_after_one_half_life() {
    let half_life = Config::lan().damping.unwrap().half_life;
    for seed in seeds(3) {
        let (mut sim, pool) = pool_of(seed, 4);
        let id = sim.targets[0].id;
        sim.run_until(at(10.0));
        // Dead for 10 s, alive for 10 s, three minutes long.
        for cycle in 0..9 {
            sim.set(0, Behaviour::Killed);
            sim.run_until(at(20.0 + 20.0 * cycle as f64));
            sim.restart(0);
            sim.run_until(at(30.0 + 20.0 * cycle as f64));
        }
        let mine = |e: &Event| match e {
            Event::Transition(t) => t.target == id,
            Event::Suppressed { target, .. } | Event::Reused { target, .. } => *target == id,
            _ => false,
        };
        let history: Vec<_> = sim.events.iter().filter(|(_, e)| mine(e)).collect();
        let suppressed_after = history
            .iter()
            .take_while(|(_, e)| !matches!(e, Event::Suppressed { .. }))
            .filter(|(_, e)| matches!(e, Event::Transition(t) if t.from != Health::Unknown))
            .count();
        let suppressed = history
            .iter()
            .any(|(_, e)| matches!(e, Event::Suppressed { penalty, .. } if *penalty >= 2500.0));
        assert!(suppressed, "seed {seed}: never suppressed: {history:?}");
        assert!(
            suppressed_after <= 10,
            "seed {seed}: suppressed after {suppressed_after} transitions"
        );
        // While suppressed and up, it is out of the pool; the others are in.
        let s = sim.monitor.snapshot(id).unwrap();
        assert!(s.suppressed && s.health == Health::Up, "seed {seed}: {s:?}");
        let healthy: Vec<_> = sim.monitor.healthy(pool).map(|(t, _)| t).collect();
        assert_eq!(healthy.len(), 3, "seed {seed}");
        assert!(!healthy.contains(&id));
        // Now it stays up: back in the pool within one half-life of its
        // last transition.
        let (settled, _) = **history
            .iter()
            .rfind(|(_, e)| matches!(e, Event::Transition(_)))
            .unwrap();
        sim.run_for(half_life * 2);
        let reused = sim.events.iter().find_map(|(t, e)| match e {
            Event::Reused { target, penalty } if *target == id => Some((*t, *penalty)),
            _ => None,
        });
        let (reused_at, penalty) = reused.unwrap_or_else(|| panic!("seed {seed}: never readmitted"));
        let took = reused_at - settled;
        println!("seed {seed}: suppressed after {suppressed_after} transitions, readmitted {took:?} after settling");
        assert!(took <= half_life + Duration::from_millis(5), "seed {seed}: {took:?}");
        assert!(penalty <= 1500.0);
        assert!(sim.monitor.healthy(pool).any(|(t, _)| t == id));
    }
}

#[test]
fn a_partition_from_a_whole_pool_never_empties_it() {
    for seed in seeds(3) {
        let monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
        let mut sim = Sim::new(monitor, Link::CLEAN, seed);
        let tcp = sim.monitor.add_check(Check::Tcp);
        let pool = sim.monitor.add_pool();
        sim.add_mixed_pool(pool, tcp, 40);
        sim.run_until(at(20.0));
        assert_eq!(sim.monitor.healthy(pool).count(), 40, "seed {seed}");
        // The monitor loses its network: nothing reaches it, nothing it
        // sends arrives.
        sim.link.loss = 1.0;
        let mut smallest = usize::MAX;
        for _ in 0..1200 {
            sim.run_for(Duration::from_millis(100));
            smallest = smallest.min(sim.monitor.healthy(pool).count());
        }
        let summary = sim.monitor.pool(pool).unwrap();
        assert_eq!(summary.down, 40, "seed {seed}: the verdicts still come: {summary:?}");
        // Never empty; and no more than the correlated share (30 %) left
        // before the guard saw a correlated failure and held the rest.
        println!("seed {seed}: partitioned, the pool kept at least {smallest} of 40");
        assert!(smallest > 0, "seed {seed}: the pool emptied");
        assert!(smallest >= 40 - 12, "seed {seed}: the pool shrank to {smallest}");
        let panics: Vec<_> = sim
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Panic { reason, .. } => Some(*reason),
                _ => None,
            })
            .collect();
        assert_eq!(
            panics.first(),
            Some(&PanicReason::Correlated),
            "seed {seed}: {panics:?}"
        );
        // The network comes back: so do the verdicts, and the pool calms.
        sim.link.loss = 0.0;
        sim.run_for(secs(30.0));
        assert_eq!(sim.monitor.pool(pool).unwrap().up, 40, "seed {seed}");
        assert_eq!(sim.monitor.pool(pool).unwrap().panic, None, "seed {seed}");
        assert!(sim
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Calm(p) if *p == pool)));
    }
}

#[test]
fn one_dead_target_in_a_healthy_pool_leaves_it_without_any_panic() {
    let (mut sim, pool) = pool_of(2, 10);
    sim.run_until(at(10.0));
    sim.set(3, Behaviour::Killed);
    sim.run_until(at(20.0));
    assert_eq!(sim.monitor.healthy(pool).count(), 9);
    assert!(!sim.events.iter().any(|(_, e)| matches!(e, Event::Panic { .. })));
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, Event::PoolChanged(p) if *p == pool)));
}
