//! Review of issue 14: a pool whose only live targets are held out by flap
//! damping must not be left empty. Suppression is the monitor's own
//! verdict; "a pool is never emptied by verdicts" (README) and "none up is
//! always a panic" (pool.rs) must count a suppressed target as not up.

mod sim;

use pulse_monitor::{Check, Config, Event, Monitor, PanicReason, TargetSpec};
use pulse_proto::Instant;
use sim::{at, secs, Behaviour, Link, Sim};

/// A pool of `n` TCP-checked targets with `config`; target 0 flaps every
/// 10 s for three minutes until damping suppresses it, and ends up (but
/// suppressed) at `at(190)`.
fn flapped(seed: u64, n: usize, config: Config) -> (Sim, pulse_monitor::PoolId) {
    let monitor = Monitor::new(config, Instant::ZERO, seed).unwrap();
    let mut sim = Sim::new(monitor, Link::CLEAN, seed);
    let tcp = sim.monitor.add_check(Check::Tcp);
    let pool = sim.monitor.add_pool();
    for _ in 0..n {
        let id = sim.monitor.add_target(sim.now, TargetSpec::checked(pool, tcp)).unwrap();
        sim.add_probed(id);
    }
    sim.run_until(at(10.0));
    for cycle in 0..9 {
        sim.set(0, Behaviour::Killed);
        sim.run_until(at(20.0 + 20.0 * cycle as f64));
        sim.restart(0);
        sim.run_until(at(30.0 + 20.0 * cycle as f64));
    }
    let s = sim.monitor.snapshot(sim.targets[0].id).unwrap();
    assert!(
        s.suppressed,
        "seed {seed}: the flapping target was not suppressed: {s:?}"
    );
    (sim, pool)
}

/// Two replicas: one flapped and is now up but suppressed, the other dies.
/// Up 1 of 2 is not below the default threshold (50 %), so no panic — and
/// the healthy set was empty: the only live replica is held out, the other
/// is down.
#[test]
fn a_pool_whose_live_targets_are_all_suppressed_is_not_left_empty() {
    for seed in 0..3 {
        let (mut sim, pool) = flapped(seed, 2, Config::lan());
        assert_eq!(sim.monitor.healthy(pool).count(), 1, "seed {seed}");
        sim.watch = Some((pool, usize::MAX));
        sim.set(1, Behaviour::Killed);
        sim.run_for(secs(5.0));
        let summary = sim.monitor.pool(pool).unwrap();
        assert_eq!(
            summary.down, 1,
            "seed {seed}: the dead replica was not found: {summary:?}"
        );
        let smallest = sim.watch.unwrap().1;
        assert!(
            smallest > 0,
            "seed {seed}: the pool was emptied by the monitor's own verdicts (suppressed + down): {summary:?}"
        );
        assert!(
            sim.events.iter().any(
                |(_, e)| matches!(e, Event::Panic { pool: p, reason: PanicReason::BelowThreshold, .. } if *p == pool)
            ),
            "seed {seed}: no panic said so"
        );
    }
}

/// The same with the weakest guards `Config::validate` accepts, and a
/// pool of one: a lone target that flapped and came back is the only thing
/// the pool has, and damping alone must not take it away.
#[test]
fn a_lone_suppressed_target_keeps_its_pool_at_the_weakest_guards() {
    let mut config = Config::lan();
    config.panic_threshold = 0;
    config.correlated_share = 100;
    for seed in 0..3 {
        let (sim, pool) = flapped(seed, 1, config.clone());
        let s = sim.monitor.snapshot(sim.targets[0].id).unwrap();
        assert_eq!(s.health, pulse_monitor::Health::Up, "seed {seed}");
        assert_eq!(
            sim.monitor.healthy(pool).count(),
            1,
            "seed {seed}: a pool of one live, suppressed target is empty"
        );
    }
}
