//! The freshness gate of local health, for each kind of target: after a
//! stall of the monitor's own, evidence gathered across the stall cannot
//! convict. A probe started before the stall that times out at its end is
//! no failure that counts towards a down; a silence is measured from the
//! stall's end; a pulse peer's lost session needs fresh failed probes.
//! Each test stalls the monitor at the worst moment — one failure short of
//! a verdict — and checks that only fresh evidence gives it.

use std::time::Duration;

use pulse_monitor::{
    Announcement, Check, Config, Event, Health, Monitor, Probe, ProbeId, ProbeOutcome, Reason, Report, TargetId,
    TargetSpec,
};
use pulse_proto::{Instant, Status};

fn at(s: f64) -> Instant {
    Instant::ZERO + Duration::from_secs_f64(s)
}

/// The probes the monitor asks to start now.
fn started(monitor: &mut Monitor) -> Vec<ProbeId> {
    let mut ids = Vec::new();
    while let Some(probe) = monitor.poll_probe() {
        if let Probe::Start { id, .. } = probe {
            ids.push(id);
        }
    }
    ids
}

/// Runs the monitor's timers up to `until`, answering every probe at once
/// with `outcome` (or never, for `None`).
fn run(monitor: &mut Monitor, until: Instant, outcome: Option<ProbeOutcome>) {
    for _ in 0..10_000 {
        let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= until) else {
            return;
        };
        monitor.handle_timeout(deadline);
        for id in started(monitor) {
            if let Some(outcome) = outcome {
                monitor.handle_probe_result(deadline, id, outcome);
            }
        }
    }
    panic!("the monitor's timers did not settle");
}

/// Runs the monitor's timers: its next two probes are refused (leaving
/// `target` in `health`), the third gets no answer, and the monitor stalls
/// for 10 s from its start — no down for that. Returns the stall's end.
fn stall_across_a_third_probe(monitor: &mut Monitor, target: TargetId, health: Health) -> Instant {
    let mut refusals = 0;
    for _ in 0..100 {
        let deadline = monitor.poll_timeout().expect("a probe to come");
        monitor.handle_timeout(deadline);
        for probe in started(monitor) {
            if refusals == 2 {
                assert_eq!(monitor.snapshot(target).unwrap().health, health);
                // The next call comes 10 s late.
                let end = deadline + Duration::from_secs(10);
                monitor.handle_timeout(end);
                assert!(monitor.stats().stalls > 0, "no stall noticed");
                assert_eq!(
                    downs(monitor, target),
                    vec![],
                    "a probe that spanned our stall convicted"
                );
                return end;
            }
            monitor.handle_probe_result(deadline, probe, ProbeOutcome::Refused);
            refusals += 1;
        }
    }
    panic!("no third probe");
}

fn downs(monitor: &mut Monitor, target: TargetId) -> Vec<(Instant, Reason)> {
    std::iter::from_fn(|| monitor.poll_event())
        .filter_map(|e| match e {
            Event::Transition(t) if t.target == target && t.to == Health::Down => Some((t.at, t.reason)),
            _ => None,
        })
        .collect()
}

fn stalled(monitor: &mut Monitor) -> bool {
    monitor.stats().stalls > 0
}

/// A checked target two failures down (suspect), its third probe under
/// way when the monitor stalls for 10 s: the probe times out at the
/// stall's end, started before it — no down. The next probe, fresh, fails
/// too: down.
#[test]
fn a_checked_targets_probe_that_spans_our_stall_does_not_count_towards_its_fall() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 3).unwrap();
    let pool = monitor.add_pool();
    let tcp = monitor.add_check(Check::Tcp);
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::checked(pool, tcp))
        .unwrap();
    run(&mut monitor, at(5.0), Some(ProbeOutcome::Connected));
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
    let end = stall_across_a_third_probe(&mut monitor, id, Health::Suspect);
    // Fresh probes that fail convict.
    run(&mut monitor, end + Duration::from_secs(5), Some(ProbeOutcome::Refused));
    let found = downs(&mut monitor, id);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].0 > end, "{found:?}");
}

fn announcement(service: u64, sequence: u32) -> Vec<u8> {
    Announcement {
        service,
        incarnation: 1,
        sequence,
        interval: Duration::from_secs(1),
        report: Report::Running(Status::default()),
    }
    .encode(None)
    .to_vec()
}

/// An announcing service, every announcement during our 10 s stall lost
/// (the socket overflowed): at the stall's end its silence is counted from
/// the end, so its next announcements keep it up. With a confirming check
/// too (whose probes, started before the stall, time out at its end).
#[test]
fn an_announcers_silence_across_our_stall_is_counted_from_the_stalls_end() {
    for confirm in [false, true] {
        let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 4).unwrap();
        let pool = monitor.add_pool();
        let tcp = monitor.add_check(Check::Tcp);
        let spec = TargetSpec::announced(pool, 9);
        let spec = if confirm { spec.confirm_with(tcp) } else { spec };
        let id = monitor.add_target(Instant::ZERO, spec).unwrap();
        let mut sequence = 0;
        for s in 1..=20 {
            sequence += 1;
            monitor
                .handle_announcement(at(s as f64), &announcement(9, sequence))
                .unwrap();
            run(&mut monitor, at(s as f64 + 0.5), None);
        }
        // Stalled from 20.5 s to 30.5 s; what was sent meanwhile is lost.
        sequence += 10;
        monitor.handle_timeout(at(30.5));
        assert!(stalled(&mut monitor), "confirm {confirm}");
        // Probes started now never answer: only the announcements can
        // keep it up, and they come again from 31 s.
        run(&mut monitor, at(30.9), None);
        for s in 31..=40 {
            sequence += 1;
            monitor
                .handle_announcement(at(s as f64), &announcement(9, sequence))
                .unwrap();
            run(&mut monitor, at(s as f64 + 0.99), None);
        }
        assert_eq!(downs(&mut monitor, id), vec![], "confirm {confirm}");
        assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up, "confirm {confirm}");
    }
}

/// A pulse peer whose session was lost, its confirming probes two failures
/// down, the third under way when we stall: that one does not count; a
/// fresh probe that passes keeps the peer up.
#[test]
fn a_pulse_peers_confirming_probe_that_spans_our_stall_does_not_count() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 6).unwrap();
    let pool = monitor.add_pool();
    let tcp = monitor.add_check(Check::Tcp);
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::peer(pool).confirm_with(tcp))
        .unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    monitor.handle_peer_event(at(1.0), id, &pulse_proto::Event::Rtt(rtt));
    monitor.handle_peer_event(
        at(2.0),
        id,
        &pulse_proto::Event::PeerDead {
            silent_for: Duration::from_secs(3),
        },
    );
    let end = stall_across_a_third_probe(&mut monitor, id, Health::Suspect);
    run(
        &mut monitor,
        end + Duration::from_secs(3),
        Some(ProbeOutcome::Connected),
    );
    assert_eq!(downs(&mut monitor, id), vec![]);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
}
