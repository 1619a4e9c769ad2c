//! The monitor's API, one behaviour at a time, without the simulator.

use std::time::Duration;

use pulse_monitor::{
    Announcement, Check, CheckResult, Config, Event, Health, HttpCheck, Monitor, Probe, ProbeOutcome, Progress,
    TargetError, TargetSpec,
};
use pulse_proto::{Instant, ServiceState, Status};

fn at(ms: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(ms)
}

fn started(monitor: &mut Monitor) -> Vec<pulse_monitor::ProbeId> {
    let mut ids = Vec::new();
    while let Some(probe) = monitor.poll_probe() {
        if let Probe::Start { id, .. } = probe {
            ids.push(id);
        }
    }
    ids
}

/// Runs every deadline up to `until`, answering nothing.
fn run(monitor: &mut Monitor, until: Instant) {
    while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= until) {
        monitor.handle_timeout(deadline);
    }
}

#[test]
fn a_silent_announcer_is_evicted_after_its_down_transition_when_an_evict_level_is_set() {
    let mut config = Config::lan();
    config.evict_level = Some(20.0);
    let mut monitor = Monitor::new(config, Instant::ZERO, 1).unwrap();
    let pool = monitor.add_pool();
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 9))
        .unwrap();
    let hello = Announcement {
        service: 9,
        incarnation: 1,
        sequence: 1,
        interval: Duration::from_secs(1),
        report: pulse_monitor::Report::Running(Status::default()),
    };
    monitor.handle_announcement(Instant::ZERO, &hello.encode(None)).unwrap();
    run(&mut monitor, at(60_000));
    let events: Vec<_> = std::iter::from_fn(|| monitor.poll_event()).collect();
    let down = events
        .iter()
        .position(|e| matches!(e, Event::Transition(t) if t.to == Health::Down));
    let evicted = events
        .iter()
        .position(|e| matches!(e, Event::Evicted { target, level } if *target == id && *level >= 20.0));
    assert!(down.is_some() && evicted.is_some() && down < evicted, "{events:?}");
    assert_eq!(events.iter().filter(|e| matches!(e, Event::Evicted { .. })).count(), 1);
}

#[test]
fn a_burst_of_arrivals_far_above_the_expected_rate_counts_as_our_own_stall() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 2).unwrap();
    let pool = monitor.add_pool();
    for service in 0..100u64 {
        monitor
            .add_target(Instant::ZERO, TargetSpec::announced(pool, service))
            .unwrap();
    }
    // A hundred services at one a second expect ten arrivals per 100 ms:
    // here all hundred come in the same millisecond, twice.
    for sequence in 1..=2 {
        for service in 0..100u64 {
            let a = Announcement {
                service,
                incarnation: 1,
                sequence,
                interval: Duration::from_secs(1),
                report: pulse_monitor::Report::Running(Status::default()),
            };
            monitor.handle_announcement(at(10), &a.encode(None)).unwrap();
        }
    }
    assert_eq!(monitor.stats().bursts, 1);
    assert_eq!(monitor.local_score(), 1);
    assert!(std::iter::from_fn(|| monitor.poll_event()).any(|e| matches!(e, Event::LocalHealth { score: 1, .. })));
}

#[test]
fn a_removed_target_has_its_probe_aborted_its_id_made_stale_and_its_pool_shrunk() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 3).unwrap();
    let pool = monitor.add_pool();
    let tcp = monitor.add_check(Check::Tcp);
    let a = monitor
        .add_target(Instant::ZERO, TargetSpec::checked(pool, tcp))
        .unwrap();
    let b = monitor
        .add_target(Instant::ZERO, TargetSpec::checked(pool, tcp))
        .unwrap();
    run(&mut monitor, at(1_100));
    for id in started(&mut monitor) {
        monitor.handle_probe_result(at(1_100), id, ProbeOutcome::Connected);
    }
    assert_eq!(monitor.healthy(pool).count(), 2);
    run(&mut monitor, at(2_300));
    let running = started(&mut monitor);
    let probe_of_a = *running.iter().find(|p| p.target() == a).expect("a is being probed");
    assert!(monitor.remove_target(at(2_300), a));
    assert_eq!(monitor.poll_probe(), Some(Probe::Abort(probe_of_a)));
    assert_eq!(monitor.snapshot(a), None);
    assert!(!monitor.remove_target(at(2_300), a));
    assert_eq!(monitor.healthy(pool).map(|(t, _)| t).collect::<Vec<_>>(), vec![b]);
    assert_eq!(monitor.pool(pool).unwrap().members, 1);
    // A late result for the removed target's probe is counted, not taken.
    monitor.handle_probe_result(at(2_400), probe_of_a, ProbeOutcome::Connected);
    assert_eq!(monitor.stats().stale_results, 1);
    // Its slot is reused under a new id.
    let c = monitor.add_target(at(2_500), TargetSpec::checked(pool, tcp)).unwrap();
    assert_eq!(c.index(), a.index());
    assert_ne!(c, a);
    assert_eq!(monitor.snapshot(a), None);
}

#[test]
fn an_http_response_is_judged_as_it_arrives_and_an_endless_one_fails() {
    let mut config = Config::lan();
    config.max_response_bytes = 256;
    config.fall = 1;
    let mut monitor = Monitor::new(config, Instant::ZERO, 4).unwrap();
    let pool = monitor.add_pool();
    let http = monitor.add_check(Check::Http(HttpCheck::get("/health").unwrap()));
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::checked(pool, http))
        .unwrap();
    run(&mut monitor, at(1_100));
    let probe = started(&mut monitor)[0];
    monitor.handle_probe_result(at(1_101), probe, ProbeOutcome::Connected);
    assert_eq!(
        monitor.handle_http_response(at(1_102), probe, b"HTTP/1.1 200 OK\r\n"),
        Progress::NeedMore
    );
    let whole = b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n";
    assert_eq!(monitor.handle_http_response(at(1_103), probe, whole), Progress::Done);
    assert_eq!(
        monitor.snapshot(id).unwrap().last_result,
        Some(CheckResult::Passed(Some(200)))
    );
    run(&mut monitor, at(2_500));
    let probe = started(&mut monitor)[0];
    let endless = [b"HTTP/1.1 200 OK\r\n".as_slice(), &[b'X'; 300]].concat();
    assert_eq!(monitor.handle_http_response(at(2_501), probe, &endless), Progress::Done);
    let s = monitor.snapshot(id).unwrap();
    assert_eq!(
        (s.health, s.last_result),
        (Health::Down, Some(CheckResult::BadResponse))
    );
}

#[test]
fn interim_http_answers_are_skipped_and_a_server_sending_only_them_fails_within_the_byte_limit() {
    let mut config = Config::lan();
    config.max_response_bytes = 256;
    config.fall = 1;
    let mut monitor = Monitor::new(config, Instant::ZERO, 4).unwrap();
    let pool = monitor.add_pool();
    let http = monitor.add_check(Check::Http(HttpCheck::get("/health").unwrap()));
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::checked(pool, http))
        .unwrap();
    run(&mut monitor, at(1_100));
    let probe = started(&mut monitor)[0];
    monitor.handle_probe_result(at(1_101), probe, ProbeOutcome::Connected);
    // `100 Continue` alone is no verdict; the 503 after it is.
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n".as_slice();
    assert_eq!(
        monitor.handle_http_response(at(1_102), probe, interim),
        Progress::NeedMore
    );
    let then_503 = [interim, b"HTTP/1.1 503 Busy\r\n\r\n"].concat();
    assert_eq!(
        monitor.handle_http_response(at(1_103), probe, &then_503),
        Progress::Done
    );
    let s = monitor.snapshot(id).unwrap();
    assert_eq!(
        (s.health, s.last_result),
        (Health::Down, Some(CheckResult::UnexpectedStatus(503)))
    );
    // Interim answers without end: more of them each time, until the
    // byte limit fails the check.
    run(&mut monitor, at(3_500));
    let probe = started(&mut monitor)[0];
    monitor.handle_probe_result(at(3_501), probe, ProbeOutcome::Connected);
    let mut response = Vec::new();
    let mut progress = Progress::NeedMore;
    for _ in 0..100 {
        response.extend_from_slice(b"HTTP/1.1 103 Early Hints\r\n\r\n");
        progress = monitor.handle_http_response(at(3_502), probe, &response);
        if progress == Progress::Done {
            break;
        }
    }
    assert_eq!(progress, Progress::Done);
    assert!(response.len() >= 256 && response.len() < 256 + 32, "{}", response.len());
    assert_eq!(
        monitor.snapshot(id).unwrap().last_result,
        Some(CheckResult::BadResponse)
    );
}

#[test]
fn a_probe_that_times_out_is_aborted_and_counted_as_failed() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 5).unwrap();
    let pool = monitor.add_pool();
    let tcp = monitor.add_check(Check::Tcp);
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::checked(pool, tcp))
        .unwrap();
    run(&mut monitor, at(1_000));
    let probe = started(&mut monitor)[0];
    run(&mut monitor, at(1_600));
    assert_eq!(monitor.poll_probe(), Some(Probe::Abort(probe)));
    assert_eq!(monitor.snapshot(id).unwrap().last_result, Some(CheckResult::TimedOut));
    assert_eq!(monitor.stats().timeouts, 1);
}

#[test]
fn a_peers_own_status_moves_it_in_and_out_of_its_pool() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 6).unwrap();
    let pool = monitor.add_pool();
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::peer(pool).weight(50))
        .unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(2), Duration::ZERO, Duration::from_millis(2));
    monitor.handle_peer_event(at(5), id, &pulse_proto::Event::Rtt(rtt));
    assert_eq!(monitor.healthy(pool).collect::<Vec<_>>(), vec![(id, 50)]);
    monitor.handle_status(at(6), id, Status::new(ServiceState::Degraded, 10));
    assert_eq!(monitor.healthy(pool).collect::<Vec<_>>(), vec![(id, 5)]);
    monitor.handle_status(at(7), id, Status::new(ServiceState::Maintenance, 100));
    assert_eq!(monitor.healthy(pool).count(), 0);
    // A pulse peer's in-band STATUS reaches the same state through its events.
    let serving = pulse_proto::Event::PeerStatus(Status::new(ServiceState::Serving, 100));
    monitor.handle_peer_event(at(8), id, &serving);
    assert_eq!(monitor.healthy(pool).collect::<Vec<_>>(), vec![(id, 50)]);
    let draining = pulse_proto::Event::PeerStatus(Status::new(ServiceState::Draining, 100));
    monitor.handle_peer_event(at(9), id, &draining);
    assert_eq!(monitor.healthy(pool).count(), 0);
    // Maintenance is the operator's decision, not a failure: no panic.
    assert!(!std::iter::from_fn(|| monitor.poll_event()).any(|e| matches!(e, Event::Panic { .. })));
}

#[test]
fn bad_targets_are_refused_with_a_reason() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 7).unwrap();
    let pool = monitor.add_pool();
    let other = {
        let mut m = Monitor::new(Config::lan(), Instant::ZERO, 7).unwrap();
        m.add_pool();
        m.add_pool()
    };
    let phantom = {
        let mut m = Monitor::new(Config::lan(), Instant::ZERO, 7).unwrap();
        m.add_check(Check::Tcp)
    };
    assert_eq!(
        monitor.add_target(Instant::ZERO, TargetSpec::peer(other)),
        Err(TargetError::UnknownPool)
    );
    assert_eq!(
        monitor.add_target(Instant::ZERO, TargetSpec::checked(pool, phantom)),
        Err(TargetError::UnknownCheck)
    );
    monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 1))
        .unwrap();
    assert_eq!(
        monitor.add_target(Instant::ZERO, TargetSpec::announced(pool, 1)),
        Err(TargetError::DuplicateService(1))
    );
}

#[test]
fn the_same_seed_and_calls_give_the_same_probes_at_the_same_times() {
    let trace = |seed| {
        let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
        let pool = monitor.add_pool();
        let tcp = monitor.add_check(Check::Tcp);
        for _ in 0..50 {
            monitor
                .add_target(Instant::ZERO, TargetSpec::checked(pool, tcp))
                .unwrap();
        }
        let mut trace = Vec::new();
        while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= at(10_000)) {
            monitor.handle_timeout(deadline);
            for id in started(&mut monitor) {
                trace.push((deadline, id));
                monitor.handle_probe_result(deadline, id, ProbeOutcome::Connected);
            }
        }
        trace
    };
    assert_eq!(trace(11), trace(11));
    assert_ne!(trace(11), trace(12));
}

proptest::proptest! {
    /// Whatever arrives on the announce socket, with a key or without,
    /// nothing panics and nothing but a valid announcement changes a target.
    #[test]
    fn arbitrary_datagrams_never_panic_and_never_touch_a_target(
        datagram in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        prefix in proptest::bool::ANY,
        keyed in proptest::bool::ANY,
    ) {
        let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 8).unwrap();
        if keyed {
            monitor.add_announce_key(pulse_monitor::AnnounceKey::new(b"k"));
        }
        let pool = monitor.add_pool();
        let id = monitor.add_target(Instant::ZERO, TargetSpec::announced(pool, 3)).unwrap();
        let mut bytes = datagram;
        if prefix {
            // Past the magic and version, so the rest of the parser is hit.
            bytes.splice(0..bytes.len().min(5), pulse_monitor::wire::MAGIC.iter().copied().chain([1]));
        }
        monitor.handle_timeout(at(1)); // the same clock for both snapshots
        let before = monitor.snapshot(id).unwrap();
        let result = monitor.handle_announcement(at(1), &bytes);
        if result.is_err() {
            proptest::prop_assert_eq!(monitor.snapshot(id).unwrap(), before);
            proptest::prop_assert!(monitor.poll_event().is_none());
        }
    }
}
