//! Review of issue 14: after a stall of the monitor's own, a pulse peer's
//! lost session must be confirmed by a probe started after the stall
//! ("A failure counts only if its probe started after the monitor's last
//! stall of its own", crate docs). Failures gathered while the session
//! only suspected the peer, all before our stall, are no fresh round.

use std::time::Duration;

use pulse_monitor::{Check, Config, Event, Health, Monitor, Probe, ProbeId, ProbeOutcome, TargetSpec};
use pulse_proto::Instant;

fn at(s: f64) -> Instant {
    Instant::ZERO + Duration::from_secs_f64(s)
}

fn started(monitor: &mut Monitor) -> Vec<ProbeId> {
    let mut ids = Vec::new();
    while let Some(probe) = monitor.poll_probe() {
        if let Probe::Start { id, .. } = probe {
            ids.push(id);
        }
    }
    ids
}

fn downs(monitor: &mut Monitor) -> usize {
    std::iter::from_fn(|| monitor.poll_event())
        .filter(|e| matches!(e, Event::Transition(t) if t.to == Health::Down))
        .count()
}

#[test]
fn a_lost_session_after_our_stall_is_not_convicted_by_failures_from_before_it() {
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 14).unwrap();
    let pool = monitor.add_pool();
    let tcp = monitor.add_check(Check::Tcp);
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::peer(pool).confirm_with(tcp))
        .unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    monitor.handle_peer_event(at(1.0), id, &pulse_proto::Event::Rtt(rtt));
    // The session suspects the peer: probes start, and `fall` of them fail
    // while the monitor is healthy.
    monitor.handle_peer_event(
        at(2.0),
        id,
        &pulse_proto::Event::Suspect {
            silent_for: Duration::from_millis(1500),
        },
    );
    let mut failed = 0;
    let mut last = at(2.0);
    for _ in 0..100 {
        if failed == Config::lan().fall {
            break;
        }
        let deadline = monitor.poll_timeout().expect("a probe to come");
        monitor.handle_timeout(deadline);
        for probe in started(&mut monitor) {
            monitor.handle_probe_result(deadline, probe, ProbeOutcome::Refused);
            failed += 1;
            last = deadline;
        }
    }
    assert_eq!(failed, Config::lan().fall);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Suspect);
    assert_eq!(downs(&mut monitor), 0);
    // Then the monitor itself stalls for 10 s; when it runs again the
    // session (stalled with it) says the peer is dead.
    let end = last + Duration::from_secs(10);
    monitor.handle_timeout(end);
    assert!(monitor.stats().stalls > 0, "no stall noticed");
    // The probe due during the stall starts now, after it: fresh.
    let fresh = started(&mut monitor);
    assert_eq!(fresh.len(), 1, "the fast probe due during the stall starts at its end");
    monitor.handle_peer_event(
        end,
        id,
        &pulse_proto::Event::PeerDead {
            silent_for: Duration::from_secs(13),
        },
    );
    assert_eq!(
        downs(&mut monitor),
        0,
        "down at the stall's end on failures from before it, with no fresh probe answered"
    );
    // The fresh probe decides: this one passes, so the peer stays up.
    monitor.handle_probe_result(end + Duration::from_millis(2), fresh[0], ProbeOutcome::Connected);
    assert_eq!(downs(&mut monitor), 0);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
}
