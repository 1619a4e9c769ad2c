//! Services that announce themselves every second, in the simulator.

mod sim;

use std::time::Duration;

use pulse_monitor::{AnnounceError, AnnounceKey, Announcement, Config, Event, Health, Monitor, TargetSpec};
use pulse_proto::{Instant, ServiceState, Status};
use sim::{at, quantile, secs, seeds, Behaviour, Link, Rng, Sim};

const INTERVAL: Duration = Duration::from_secs(1);

/// `n` announcing services at 1 s, each in a pool of its own.
fn fleet(seed: u64, n: usize, link: Link) -> Sim {
    let monitor = Monitor::with_capacity(Config::lan(), Instant::ZERO, seed, n).unwrap();
    let mut sim = Sim::new(monitor, link, seed);
    for k in 0..n {
        let pool = sim.monitor.add_pool();
        let service = 1000 + k as u64;
        let id = sim
            .monitor
            .add_target(sim.now, TargetSpec::announced(pool, service))
            .unwrap();
        sim.add_announcer(id, service, INTERVAL);
    }
    sim
}

/// Silences every service once, at a random time after a minute of
/// learning; returns (time from silence to down, time from the last
/// announcement delivered to down) for each.
fn silences(seed: u64, n: usize, link: Link) -> Vec<(Duration, Duration)> {
    let mut sim = fleet(seed, n, link);
    sim.run_until(at(60.0));
    let mut rng = Rng::new(seed ^ 1);
    let mut breaks: Vec<(Instant, usize)> = (0..n).map(|k| (at(60.0 + 10.0 * rng.unit()), k)).collect();
    breaks.sort();
    for &(t, k) in &breaks {
        sim.run_until(t);
        sim.set(k, Behaviour::Killed);
    }
    sim.run_until(at(100.0));
    breaks
        .iter()
        .map(|&(t, k)| {
            let id = sim.targets[k].id;
            let down = sim
                .first_transition(id, Health::Down, t)
                .unwrap_or_else(|| panic!("seed {seed}: service {k} never went down"));
            // Heard before the silence, never after it.
            let detection = down - sim.heard[k];
            (down - t.min(down), detection)
        })
        .collect()
}

#[test]
fn a_silent_service_is_down_within_4_s_at_p99_on_a_clean_network() {
    let mut times = Vec::new();
    for seed in seeds(2) {
        times.extend(silences(seed, 300, Link::CLEAN).into_iter().map(|(t, _)| t));
    }
    let p50 = quantile(&mut times, 0.5);
    let p99 = quantile(&mut times, 0.99);
    println!(
        "silent announcer: p50 {p50:?}, p99 {p99:?}, max {:?}, n {}",
        times.last().unwrap(),
        times.len()
    );
    assert!(p99 <= secs(4.0), "p99 {p99:?}");
}

#[test]
fn at_5_percent_loss_with_pareto_jitter_false_downs_stay_within_twice_the_floor() {
    let loss = 0.05;
    let link = Link::hostile(loss);
    // The detection time on this network: from the last announcement
    // heard to the down verdict.
    let mut detection: Vec<Duration> = silences(99, 200, link).into_iter().map(|(_, d)| d).collect();
    let d50 = quantile(&mut detection, 0.5);
    let d01 = quantile(&mut detection, 0.01);
    // Any detector that convicts D after the last announcement convicts a
    // live service whenever the k announcements due within D are all
    // lost: k = ⌈D / I⌉ − 1, at a rate of (1 − p) p^k per announcement.
    let k = (d01.as_secs_f64() / INTERVAL.as_secs_f64()).ceil() as i32 - 1;
    let floor = (1.0 - loss) * loss.powi(k);
    let (mut downs, mut sent) = (0u64, 0u64);
    for seed in seeds(4) {
        let mut sim = fleet(seed, 100, link);
        sim.run_until(at(10.0 * 60.0 * 0.5));
        let before = sim.announcements_sent;
        let from = sim.now;
        sim.run_until(at(10.0 * 60.0 * 0.5 + 300.0));
        sent += sim.announcements_sent - before;
        let here = sim
            .events
            .iter()
            .filter(|(t, e)| *t >= from && matches!(e, Event::Transition(tr) if tr.to == Health::Down))
            .count() as u64;
        downs += here;
    }
    let rate = downs as f64 / sent as f64;
    let bound = 2.0 * floor;
    println!(
        "5% loss, Pareto jitter: detection time p50 {d50:?} (p1 {d01:?}), k = {k}, floor {floor:.2e}; \
         measured {downs} false downs in {sent} announcements = {rate:.2e}; bound {bound:.2e} \
         (expected at the bound: {:.0})",
        bound * sent as f64
    );
    assert!(
        bound * sent as f64 >= 10.0,
        "too few announcements for the bound to be testable"
    );
    assert!(k >= 2, "a detection time of {d01:?} leaves almost no room for loss");
    assert!(
        rate <= bound,
        "false-down rate {rate:.2e} over twice the floor {floor:.2e}"
    );
}

fn one_service(seed: u64) -> (Monitor, pulse_monitor::TargetId, AnnounceKey) {
    let key = AnnounceKey::new(b"fleet secret");
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
    monitor.add_announce_key(key.clone());
    let pool = monitor.add_pool();
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 7))
        .unwrap();
    (monitor, id, key)
}

fn announcement(incarnation: u32, sequence: u32) -> Announcement {
    Announcement {
        service: 7,
        incarnation,
        sequence,
        interval: INTERVAL,
        report: pulse_monitor::Report::Running(Status::default()),
    }
}

#[test]
fn a_spoofed_announcement_is_rejected_counted_and_keeps_nothing_alive() {
    let (mut monitor, id, key) = one_service(1);
    let forger = AnnounceKey::new(b"guess");
    let mut now = Instant::ZERO;
    assert_eq!(
        monitor.handle_announcement(now, &announcement(1, 1).encode(Some(&key))),
        Ok(id)
    );
    // The service dies; a forger keeps sending, with the wrong key or none.
    for seq in 2..30 {
        let next = now + INTERVAL;
        while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= next) {
            monitor.handle_timeout(deadline);
        }
        now = next;
        let forged = announcement(1, seq).encode(Some(&forger));
        assert_eq!(monitor.handle_announcement(now, &forged), Err(AnnounceError::BadTag));
        let bare = announcement(1, seq).encode(None);
        assert_eq!(
            monitor.handle_announcement(now, &bare),
            Err(AnnounceError::Unauthenticated)
        );
    }
    assert_eq!(monitor.stats().bad_tag, 28);
    assert_eq!(monitor.stats().unauthenticated, 28);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Down);
}

#[test]
fn a_replayed_or_reordered_announcement_is_stale_and_a_restart_is_not() {
    let (mut monitor, id, key) = one_service(2);
    let mut now = Instant::ZERO;
    let first = announcement(5, 10).encode(Some(&key));
    assert!(monitor.handle_announcement(now, &first).is_ok());
    now += INTERVAL;
    assert!(monitor
        .handle_announcement(now, &announcement(5, 11).encode(Some(&key)))
        .is_ok());
    assert_eq!(monitor.handle_announcement(now, &first), Err(AnnounceError::Stale));
    assert_eq!(
        monitor.handle_announcement(now, &announcement(5, 11).encode(Some(&key))),
        Err(AnnounceError::Stale)
    );
    // Restarted: a new incarnation starts its sequence again.
    now += INTERVAL;
    assert!(monitor
        .handle_announcement(now, &announcement(6, 1).encode(Some(&key)))
        .is_ok());
    assert_eq!(
        monitor.handle_announcement(now, &announcement(5, 12).encode(Some(&key))),
        Err(AnnounceError::Stale)
    );
    assert_eq!(monitor.stats().stale, 3);
    let mut restarted = false;
    while let Some(event) = monitor.poll_event() {
        restarted |= event
            == Event::Restarted {
                target: id,
                incarnation: 6,
            };
    }
    assert!(restarted);
    assert_eq!(monitor.snapshot(id).unwrap().sequence, Some((6, 1)));
}

#[test]
fn a_service_that_reports_itself_draining_or_degraded_changes_its_pool_at_once() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 3).unwrap();
    let pool = monitor.add_pool();
    let a = monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 1).weight(10))
        .unwrap();
    let b = monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 2).weight(10))
        .unwrap();
    let say = |monitor: &mut Monitor, service, seq, state, weight| {
        let a = Announcement {
            service,
            incarnation: 1,
            sequence: seq,
            interval: INTERVAL,
            report: pulse_monitor::Report::Running(Status::new(state, weight)),
        };
        monitor
            .handle_announcement(Instant::ZERO + INTERVAL * seq, &a.encode(None))
            .unwrap();
    };
    say(&mut monitor, 1, 1, ServiceState::Serving, 100);
    say(&mut monitor, 2, 1, ServiceState::Serving, 100);
    let healthy: Vec<_> = monitor.healthy(pool).collect();
    assert_eq!(healthy, vec![(a, 10), (b, 10)]);
    let generation = monitor.pool(pool).unwrap().generation;
    say(&mut monitor, 1, 2, ServiceState::Degraded, 40);
    say(&mut monitor, 2, 2, ServiceState::Draining, 100);
    assert_eq!(monitor.healthy(pool).collect::<Vec<_>>(), vec![(a, 4)]);
    assert!(monitor.pool(pool).unwrap().generation > generation);
    let mut changes = 0;
    while let Some(event) = monitor.poll_event() {
        if let Event::StatusChanged { target, to, .. } = event {
            changes += 1;
            assert!(
                target == a && to.state() == ServiceState::Degraded
                    || target == b && to.state() == ServiceState::Draining
            );
        }
    }
    assert_eq!(changes, 2);
    // Level-triggered: the same status again is no change.
    say(&mut monitor, 1, 3, ServiceState::Degraded, 40);
    assert!(!std::iter::from_fn(|| monitor.poll_event()).any(|e| matches!(e, Event::StatusChanged { .. })));
}

/// The accrual detector takes no sample from the first announcement after
/// an outage: a service paused for 30 s (its sequence goes on by one) must
/// not teach the monitor that it announces every 4 s (the clamp's top).
#[test]
fn the_first_announcement_after_an_outage_is_no_sample_of_the_interval() {
    let (mut monitor, id, key) = one_service(5);
    let mut now = Instant::ZERO;
    let announce_at = |monitor: &mut Monitor, at: Instant, seq: u32| {
        while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= at) {
            monitor.handle_timeout(deadline);
        }
        assert!(monitor
            .handle_announcement(at, &announcement(1, seq).encode(Some(&key)))
            .is_ok());
    };
    for seq in 1..=60 {
        announce_at(&mut monitor, now, seq);
        now += INTERVAL;
    }
    // Paused for 30 s: down, then back with the next sequence number.
    now += secs(30.0);
    while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= now) {
        monitor.handle_timeout(deadline);
    }
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Down);
    for seq in 61..=70 {
        announce_at(&mut monitor, now, seq);
        now += INTERVAL;
    }
    let s = monitor.snapshot(id).unwrap();
    assert_eq!(s.health, Health::Up);
    let mean = s.mean_interval.unwrap();
    assert!(
        mean >= INTERVAL * 95 / 100 && mean <= INTERVAL * 105 / 100,
        "the outage was taken as a sample: learned mean {mean:?}"
    );
}

/// PROTOCOL §12.2: `interval_ms` 0 is malformed — counted, and nothing
/// else disturbed (the service's replay state included).
#[test]
fn an_announcement_with_a_zero_interval_is_rejected_as_malformed_and_disturbs_nothing() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 12).unwrap();
    let pool = monitor.add_pool();
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 9))
        .unwrap();
    let announcement = |sequence| Announcement {
        service: 9,
        incarnation: 1,
        sequence,
        interval: INTERVAL,
        report: pulse_monitor::Report::Running(Status::default()),
    };
    monitor
        .handle_announcement(at(0.5), &announcement(1).encode(None))
        .unwrap();
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
    let mut zero = announcement(2).encode(None).to_vec();
    zero[24..28].copy_from_slice(&[0; 4]);
    assert_eq!(
        monitor.handle_announcement(at(1.0), &zero),
        Err(AnnounceError::Malformed)
    );
    assert_eq!(monitor.stats().malformed, 1);
    let snapshot = monitor.snapshot(id).unwrap();
    assert_eq!((snapshot.health, snapshot.sequence), (Health::Up, Some((1, 1))));
    assert_eq!(snapshot.mean_interval, Some(INTERVAL));
    // Its sequence was not taken: the real second announcement is.
    assert_eq!(
        monitor.handle_announcement(at(1.5), &announcement(2).encode(None)),
        Ok(id)
    );
}
