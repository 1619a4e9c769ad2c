//! The pool guards are per pool: a pool whose targets all go down at once
//! (the correlated-failure guard) or that has none up (the panic
//! threshold) keeps its targets in its healthy set and says so, and every
//! other pool's verdicts go on as before. A partition of the monitor from a
//! whole pool never empties it, at every configuration `Monitor::new`
//! accepts.

mod sim;

use std::time::Duration;

use pulse_monitor::{Check, Config, Event, Health, Monitor, PanicReason, PoolId, TargetSpec};
use pulse_proto::Instant;
use sim::{at, quantile, secs, seeds, Behaviour, Link, Rng, Sim};

/// One large pool and two-replica pools, all checked by TCP with
/// `Config::lan()`.
struct Fleet {
    sim: Sim,
    large: (PoolId, Vec<usize>),
    pairs: Vec<(PoolId, [usize; 2])>,
}

fn fleet(seed: u64, large: usize, pairs: usize) -> Fleet {
    let monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
    let mut sim = Sim::new(monitor, Link::CLEAN, seed);
    let tcp = sim.monitor.add_check(Check::Tcp);
    let add = |sim: &mut Sim, pool| {
        let id = sim.monitor.add_target(sim.now, TargetSpec::checked(pool, tcp)).unwrap();
        sim.add_probed(id)
    };
    let pool = sim.monitor.add_pool();
    let large = (pool, (0..large).map(|_| add(&mut sim, pool)).collect());
    let pairs = (0..pairs)
        .map(|_| {
            let pool = sim.monitor.add_pool();
            (pool, [add(&mut sim, pool), add(&mut sim, pool)])
        })
        .collect();
    Fleet { sim, large, pairs }
}

fn panics_of(sim: &Sim, pool: PoolId) -> Vec<PanicReason> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Panic { pool: p, reason, .. } if *p == pool => Some(*reason),
            _ => None,
        })
        .collect()
}

/// In a pool of 1,000, 200 targets killed independently at random times
/// in [10 s, 20 s) (a fifth: under the correlated share, over the ten
/// seconds), while 40 two-replica pools lose both replicas at random
/// times in the same ten seconds — each a correlated failure of its pool.
/// The large pool's kills are found down within the bound active checks
/// have alone (2 s at p99), the pairs' replicas too, and each pair keeps
/// both replicas in its healthy set.
#[test]
fn independent_kills_are_found_within_2_s_at_p99_while_other_pools_panic() {
    let (mut large_took, mut pairs_took) = (Vec::new(), Vec::new());
    for seed in seeds(2) {
        let Fleet {
            mut sim,
            large: (large, members),
            pairs,
        } = fleet(seed, 1000, 40);
        sim.run_until(at(10.0));
        let mut rng = Rng::new(seed ^ 0x9001);
        let groups = members
            .iter()
            .step_by(5)
            .map(|&k| vec![k])
            .chain(pairs.iter().map(|(_, ks)| ks.to_vec()));
        let mut kills: Vec<(Instant, Vec<usize>)> = groups.map(|ks| (at(10.0 + 10.0 * rng.unit()), ks)).collect();
        kills.sort();
        for (t, ks) in &kills {
            sim.run_until(*t);
            for &k in ks {
                sim.set(k, Behaviour::Killed);
            }
        }
        sim.run_until(at(30.0));
        for (t, ks) in &kills {
            for &k in ks {
                let id = sim.targets[k].id;
                let down = sim
                    .first_transition(id, Health::Down, *t)
                    .unwrap_or_else(|| panic!("seed {seed}: target {k} never went down"));
                let took = down - *t;
                if ks.len() == 1 {
                    large_took.push(took);
                } else {
                    pairs_took.push(took);
                }
            }
        }
        let summary = sim.monitor.pool(large).unwrap();
        assert_eq!((summary.down, summary.panic), (200, None), "seed {seed}: {summary:?}");
        for (pool, _) in &pairs {
            let panics = panics_of(&sim, *pool);
            assert_eq!(
                panics.first(),
                Some(&PanicReason::Correlated),
                "seed {seed}: {panics:?}"
            );
            let summary = sim.monitor.pool(*pool).unwrap();
            assert_eq!((summary.down, summary.up), (2, 0), "seed {seed}: {summary:?}");
            assert_eq!(
                sim.monitor.healthy(*pool).count(),
                2,
                "seed {seed}: the pair was emptied"
            );
        }
    }
    let p99 = quantile(&mut large_took, 0.99);
    let pairs_p99 = quantile(&mut pairs_took, 0.99);
    println!(
        "kills in a pool of 1000 beside 40 pair pools in correlated panic: p50 {:?}, p99 {p99:?}, max {:?} (n {}); \
         the pairs' replicas: p99 {pairs_p99:?} (n {})",
        quantile(&mut large_took, 0.5),
        large_took.last().unwrap(),
        large_took.len(),
        pairs_took.len()
    );
    assert!(p99 <= secs(2.0), "large pool p99 {p99:?}");
    assert!(pairs_p99 <= secs(2.0), "pairs p99 {pairs_p99:?}");
}

/// A pool of two whose replicas both really die: both transitions come
/// (the verdicts are not held, and the monitor takes no stall of its own
/// from it), the pool says it panics, and keeps both —
/// there is nobody else to send to. Restarted, they come back and the pool
/// calms.
#[test]
fn a_two_replica_pool_whose_replicas_both_die_is_reported_down_and_kept() {
    for seed in seeds(3) {
        let Fleet { mut sim, pairs, .. } = fleet(seed, 0, 1);
        let (pool, [a, b]) = pairs[0];
        sim.run_until(at(10.0));
        sim.watch = Some((pool, usize::MAX));
        sim.set(a, Behaviour::Killed);
        sim.run_until(at(10.5));
        sim.set(b, Behaviour::Frozen);
        sim.run_until(at(20.0));
        for k in [a, b] {
            let down = sim.first_transition(sim.targets[k].id, Health::Down, at(10.0));
            assert!(down.is_some_and(|t| t <= at(14.5)), "seed {seed}: target {k}: {down:?}");
        }
        assert_eq!(
            panics_of(&sim, pool).first(),
            Some(&PanicReason::Correlated),
            "seed {seed}"
        );
        // Not taken for a stall of the monitor's own: nothing else waits.
        assert_eq!(sim.monitor.stats().stalls, 0, "seed {seed}");
        assert_eq!(sim.monitor.local_score(), 0, "seed {seed}");
        // One replica down of two is a real removal; both down, both stay.
        assert!(sim.watch.unwrap().1 > 0, "seed {seed}: the pool emptied");
        assert_eq!(sim.monitor.healthy(pool).count(), 2, "seed {seed}");
        sim.restart(a);
        sim.restart(b);
        sim.run_until(at(40.0));
        assert_eq!(sim.monitor.pool(pool).unwrap().up, 2, "seed {seed}");
        assert_eq!(sim.monitor.pool(pool).unwrap().panic, None, "seed {seed}");
    }
}

/// The boundary configurations: guards at their weakest (panic threshold
/// 0, a correlated share of 100 that never trips, the shortest window) and
/// strongest, and pools of one, two and forty targets.
fn boundary_configs() -> Vec<(&'static str, Config)> {
    let with = |name, panic_threshold, correlated_share, window_ms| {
        let mut config = Config::lan();
        config.panic_threshold = panic_threshold;
        config.correlated_share = correlated_share;
        config.correlated_window = Duration::from_millis(window_ms);
        (name, config)
    };
    let mut undamped = with("no damping, weakest guards", 0, 100, 1);
    undamped.1.damping = None;
    vec![
        with("weakest guards", 0, 100, 1),
        with("panic 0, correlated 0 %", 0, 0, 1),
        with("panic 100, correlated 100", 100, 100, 1),
        with("defaults", 50, 30, 10_000),
        with("panic 1, long window", 1, 100, 3_600_000),
        undamped,
    ]
}

#[test]
fn a_partition_from_a_whole_pool_never_empties_it_at_any_boundary_configuration() {
    for (name, config) in boundary_configs() {
        for size in [1usize, 2, 40] {
            for seed in seeds(2) {
                let monitor = Monitor::new(config.clone(), Instant::ZERO, seed).unwrap();
                let mut sim = Sim::new(monitor, Link::CLEAN, seed);
                let tcp = sim.monitor.add_check(Check::Tcp);
                let pool = sim.monitor.add_pool();
                sim.add_mixed_pool(pool, tcp, size as u64);
                sim.run_until(at(20.0));
                assert_eq!(sim.monitor.healthy(pool).count(), size, "{name}, seed {seed}");
                sim.watch = Some((pool, usize::MAX));
                sim.link.loss = 1.0;
                sim.run_for(secs(120.0));
                let summary = sim.monitor.pool(pool).unwrap();
                let what = format!("{name}, pool of {size}, seed {seed}");
                assert_eq!(summary.down as usize, size, "{what}: the verdicts still come");
                let smallest = sim.watch.unwrap().1;
                assert!(smallest > 0, "{what}: the pool emptied");
                assert_eq!(sim.monitor.healthy(pool).count(), size, "{what}");
                assert!(summary.panic.is_some(), "{what}: {summary:?}");
            }
        }
    }
}
