//! A monitor stall of any length causes no down verdict — for pulse peers
//! too (stall.rs covers checked and announcing targets). The peers' client
//! sessions live in the monitor's process, so they stall with it; some
//! peers are confirmed with the pulse handshake, some are not. A stall
//! longer than the servers' dead timeout makes every server close its
//! session with TIMED_OUT; the CLOSE reaches the monitor after the stall.
//! (A review's test of issue 14: before the fix, 60 downs over the 10
//! unconfirmed peers, seed 0.)
//!
//! The rule: the monitor finds its own stall by its housekeeping deadline
//! (a monitor of peers alone has no probe of its own to be late for), and
//! a session that crossed the stall cannot convict its peer; a new session
//! has `reconnect_grace` to connect.

mod sim;

use std::time::Duration;

use pulse_monitor::{Check, Config, Event, Health, Monitor, PulseCheck, Reason, TargetSpec};
use pulse_proto::Instant;
use sim::{at, secs, seeds, Behaviour, Link, Rng, Sim};

#[test]
fn a_stall_of_any_length_gives_no_down_verdict_for_pulse_peers() {
    let lengths = [0.3, 0.8, 1.5, 2.5, 3.5, 5.0, 10.0, 30.0, 120.0];
    for seed in seeds(3) {
        let monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
        let mut sim = Sim::new(monitor, Link::CLEAN, seed);
        let handshake = sim.monitor.add_check(Check::Pulse(PulseCheck::new()));
        let pool = sim.monitor.add_pool();
        for k in 0..20 {
            let spec = TargetSpec::peer(pool);
            let spec = if k % 2 == 0 { spec.confirm_with(handshake) } else { spec };
            let id = sim.monitor.add_target(sim.now, spec).unwrap();
            sim.add_peer(id);
        }
        sim.run_until(at(30.0));
        for k in 0..20 {
            let health = sim.monitor.snapshot(sim.targets[k].id).unwrap().health;
            assert_eq!(health, Health::Up, "seed {seed}: peer {k} after the warm-up");
        }
        let mut rng = Rng::new(seed);
        for length in lengths {
            sim.run_for(secs(rng.unit() * 2.0));
            sim.stall(secs(length));
            sim.run_for(secs(length + 15.0));
        }
        let downs: Vec<_> = sim
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Transition(t) if t.to == Health::Down))
            .collect();
        assert!(
            downs.is_empty(),
            "seed {seed}: {} downs: {:?}",
            downs.len(),
            downs.first()
        );
        // The stalls mattered: the servers timed our sessions out, and the
        // unconfirmed peers' losses were excused, not convicted.
        assert!(
            sim.peers.ended >= 10,
            "seed {seed}: no session ended: {}",
            sim.peers.ended
        );
        assert!(sim.monitor.stats().losses_excused >= 10, "{:?}", sim.monitor.stats());
    }
}

/// Ten unconfirmed peers, up after a warm-up of 20 s.
fn peers(seed: u64) -> Sim {
    let monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
    let mut sim = Sim::new(monitor, Link::CLEAN, seed);
    let pool = sim.monitor.add_pool();
    for _ in 0..10 {
        let id = sim.monitor.add_target(sim.now, TargetSpec::peer(pool)).unwrap();
        sim.add_peer(id);
    }
    sim.run_until(at(20.0));
    for k in 0..10 {
        assert_eq!(sim.monitor.snapshot(sim.targets[k].id).unwrap().health, Health::Up);
    }
    sim
}

fn downs(sim: &Sim) -> Vec<(Instant, Event)> {
    sim.events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Transition(t) if t.to == Health::Down))
        .cloned()
        .collect()
}

#[test]
fn a_peer_that_died_during_our_stall_is_down_when_no_new_session_connects_within_the_grace() {
    for seed in seeds(3) {
        let mut sim = peers(seed);
        let grace = sim.monitor.config().reconnect_grace;
        sim.set(0, Behaviour::Killed);
        sim.stall(secs(30.0));
        sim.run_for(secs(30.0));
        let resumed = sim.now;
        sim.run_for(secs(30.0));
        let down = downs(&sim);
        assert_eq!(down.len(), 1, "seed {seed}: {down:?}");
        let (when, Event::Transition(t)) = &down[0] else {
            unreachable!()
        };
        assert_eq!(t.target, sim.targets[0].id, "seed {seed}");
        assert_eq!(t.reason, Reason::NotReconnected, "seed {seed}");
        // Not before the grace (no verdict from the stall itself), and not
        // much after it.
        assert!(*when >= resumed + grace, "seed {seed}: {when:?}");
        assert!(*when <= resumed + grace + secs(1.0), "seed {seed}: {when:?}");
        for k in 1..10 {
            assert_eq!(sim.monitor.snapshot(sim.targets[k].id).unwrap().health, Health::Up);
        }
    }
}

#[test]
fn a_session_that_vouched_for_its_peer_after_our_stall_convicts_it_again() {
    for seed in seeds(3) {
        let mut sim = peers(seed);
        sim.stall(secs(30.0));
        sim.run_for(secs(30.0));
        // Long after the stall, every peer's session (new or old) has had
        // round trips: a loss now is news, down at the session's verdict.
        sim.run_for(secs(10.0));
        assert!(
            sim.monitor.stats().losses_excused >= 1,
            "seed {seed}: the stall timed no session out"
        );
        assert_eq!(downs(&sim), vec![], "seed {seed}");
        let killed = sim.now;
        sim.set(0, Behaviour::Killed);
        sim.run_for(secs(10.0));
        let down = downs(&sim);
        assert_eq!(down.len(), 1, "seed {seed}: {down:?}");
        let (when, Event::Transition(t)) = &down[0] else {
            unreachable!()
        };
        assert!(matches!(t.reason, Reason::Peer(_)), "seed {seed}: {:?}", t.reason);
        // The session's dead timeout is 3 s: nothing waited for a grace.
        assert!(*when <= killed + secs(4.5), "seed {seed}: {when:?}");
    }
}

#[test]
fn a_second_stall_while_a_peer_waits_for_a_new_session_gives_it_the_whole_grace_again() {
    let mut sim = peers(5);
    let grace = sim.monitor.config().reconnect_grace;
    sim.set(0, Behaviour::Killed);
    sim.stall(secs(30.0));
    sim.run_for(secs(30.0));
    sim.run_for(grace - secs(1.0));
    sim.stall(secs(10.0));
    sim.run_for(secs(10.0));
    let resumed = sim.now;
    sim.run_for(grace * 2);
    let down = downs(&sim);
    assert_eq!(down.len(), 1, "{down:?}");
    let (when, _) = &down[0];
    assert!(*when >= resumed + grace, "{when:?} vs {resumed:?}");
}

#[test]
fn without_a_stall_of_ours_a_peer_that_times_our_session_out_is_down_at_once() {
    use pulse_proto::{CloseCode, Closed, Initiator};
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 3).unwrap();
    let pool = monitor.add_pool();
    let id = monitor.add_target(Instant::ZERO, TargetSpec::peer(pool)).unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    // A driver that keeps the housekeeping deadline: no gap, no stall.
    let mut now = Instant::ZERO;
    for _ in 0..40 {
        now = monitor.poll_timeout().expect("a housekeeping deadline");
        monitor.handle_timeout(now);
        monitor.handle_peer_event(now, id, &pulse_proto::Event::Rtt(rtt));
    }
    assert_eq!(monitor.stats().stalls, 0);
    let timed_out = Closed::new(CloseCode::TIMED_OUT, "", Initiator::Peer);
    monitor.handle_peer_event(now, id, &pulse_proto::Event::Closed(timed_out));
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Down);
    assert_eq!(monitor.stats().losses_excused, 0);
}

#[test]
fn a_monitor_of_pulse_peers_alone_finds_its_own_stall_by_its_housekeeping_deadline() {
    let config = Config::lan();
    let mut monitor = Monitor::new(config.clone(), Instant::ZERO, 3).unwrap();
    assert_eq!(monitor.poll_timeout(), None, "no target, nothing to keep");
    let pool = monitor.add_pool();
    let id = monitor.add_target(Instant::ZERO, TargetSpec::peer(pool)).unwrap();
    let due = monitor.poll_timeout().expect("a housekeeping deadline");
    assert!(due <= Instant::ZERO + config.stall_threshold, "{due:?}");
    // Called on time: nothing happens.
    monitor.handle_timeout(due);
    assert_eq!(monitor.stats().stalls, 0);
    assert!(monitor.poll_event().is_none());
    // Called 2 s late: our stall, whatever call it is.
    let late = due + config.stall_threshold + Duration::from_secs(2);
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    monitor.handle_peer_event(late, id, &pulse_proto::Event::Rtt(rtt));
    assert_eq!(monitor.stats().stalls, 1);
    let noticed = std::iter::from_fn(|| monitor.poll_event()).any(|e| matches!(e, Event::LocalHealth { score: 1, .. }));
    assert!(noticed);
}

/// The peer's CLOSE can be lost (a datagram session, a full socket): then
/// our session, stalled with us, learns of the end only by its own dead
/// timeout, seconds after the stall's wake. The session still crossed our
/// stall without a round trip since: no verdict; a new session decides.
#[test]
fn a_session_that_crossed_our_stall_cannot_convict_even_seconds_after_it() {
    use pulse_proto::Event as E;
    let config = Config::lan();
    let mut monitor = Monitor::new(config.clone(), Instant::ZERO, 8).unwrap();
    let pool = monitor.add_pool();
    let id = monitor.add_target(Instant::ZERO, TargetSpec::peer(pool)).unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    let mut now = Instant::ZERO;
    for _ in 0..10 {
        now = monitor.poll_timeout().unwrap();
        monitor.handle_timeout(now);
        monitor.handle_peer_event(now, id, &E::Rtt(rtt));
    }
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
    // Stalled for 10 s; then its housekeeping runs on time again, and the
    // session, hearing nothing, gives its dead verdict 3 s later.
    let resumed = now + Duration::from_secs(10);
    monitor.handle_timeout(resumed);
    assert_eq!(monitor.stats().stalls, 1);
    now = resumed;
    while now < resumed + Duration::from_secs(3) {
        now = monitor.poll_timeout().unwrap();
        monitor.handle_timeout(now);
    }
    monitor.handle_peer_event(
        now,
        id,
        &E::PeerDead {
            silent_for: Duration::from_secs(13),
        },
    );
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Suspect);
    assert_eq!(monitor.stats().losses_excused, 1);
    // A new session connects: up.
    monitor.handle_peer_event(now, id, &sim::peers::connected(now));
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
    let downs = std::iter::from_fn(|| monitor.poll_event())
        .filter(|e| matches!(e, Event::Transition(t) if t.to == Health::Down))
        .count();
    assert_eq!(downs, 0);
}

/// A monitor under heavy load that stalls again and again, each time
/// before a grace runs out, still convicts a peer that died: a later stall
/// renews the grace at most `max_local_score` times. (Before: renewed at
/// every stall, the dead peer stayed suspect — and in its pool — for as
/// long as the stalls went on, while a checked target dead alike was down
/// in seconds.)
#[test]
fn stalls_that_keep_coming_cannot_hold_a_dead_peer_suspect_forever() {
    for seed in seeds(3) {
        let mut sim = peers(seed);
        let config = sim.monitor.config().clone();
        sim.set(0, Behaviour::Killed);
        // Stalls long enough to be found even at the highest local score,
        // with less than a grace of running between them.
        let (stall, run) = (secs(3.5), secs(4.0));
        assert!(run < config.reconnect_grace);
        let first = sim.now;
        for _ in 0..30 {
            sim.stall(stall);
            sim.run_for(stall + run);
        }
        assert!(
            sim.monitor.stats().stalls >= 25,
            "seed {seed}: {:?}",
            sim.monitor.stats()
        );
        let down = downs(&sim);
        assert_eq!(down.len(), 1, "seed {seed}: {down:?}");
        let (when, Event::Transition(t)) = &down[0] else {
            unreachable!()
        };
        assert_eq!(t.target, sim.targets[0].id, "seed {seed}");
        assert_eq!(t.reason, Reason::NotReconnected, "seed {seed}");
        // At most max_local_score renewals: the first grace and the renewed
        // ones, each at most one cycle of stall and run, and a last grace.
        let renewals = u32::from(config.max_local_score);
        let bound = first + (stall + run) * (renewals + 2) + config.reconnect_grace;
        assert!(*when <= bound, "seed {seed}: down at {when:?}, bound {bound:?}");
    }
}

/// A new session, opened after the monitor learned (after its stall) that
/// the old one was lost, never crossed the stall: its handshake is proof
/// even in the stall's wake, and its loss convicts as any fresh session's
/// does. (Before: a peer that died right after reconnecting was down only
/// after its session's dead timeout *and* a whole reconnect_grace, about
/// 8 s instead of 3 s.)
#[test]
fn a_session_opened_after_our_stall_convicts_its_peer_without_a_grace() {
    for seed in seeds(3) {
        let mut sim = peers(seed);
        let before = sim.peers.connected;
        sim.stall(secs(30.0));
        sim.run_for(secs(30.0));
        // Every session was timed out by its server; run until each peer
        // has its new session (bounded).
        for _ in 0..1_000 {
            if sim.peers.connected >= before + 10 {
                break;
            }
            sim.run_for(secs(0.01));
        }
        assert!(sim.peers.connected >= before + 10, "seed {seed}: not all reconnected");
        assert_eq!(sim.monitor.stats().losses_excused, 10, "seed {seed}");
        let killed = sim.now;
        for k in 0..10 {
            sim.set(k, Behaviour::Killed);
        }
        sim.run_for(secs(15.0));
        let down = downs(&sim);
        assert_eq!(down.len(), 10, "seed {seed}: {down:?}");
        for (when, event) in &down {
            let Event::Transition(t) = event else { unreachable!() };
            assert!(matches!(t.reason, Reason::Peer(_)), "seed {seed}: {:?}", t.reason);
            // The session's dead timeout is 3 s: nothing waited for a grace.
            assert!(*when <= killed + secs(4.5), "seed {seed}: {when:?} vs {killed:?}");
        }
    }
}

/// But a new session whose handshake a later stall of ours caught half-way
/// did cross that stall: its server may have timed it out while we were
/// stopped, so its loss is excused too.
#[test]
fn a_new_session_caught_by_a_second_stall_cannot_convict() {
    use pulse_proto::{CloseCode, Closed, Event as E, Initiator};
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 9).unwrap();
    let pool = monitor.add_pool();
    let id = monitor.add_target(Instant::ZERO, TargetSpec::peer(pool)).unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    let mut now = Instant::ZERO;
    for _ in 0..10 {
        now = monitor.poll_timeout().unwrap();
        monitor.handle_timeout(now);
        monitor.handle_peer_event(now, id, &E::Rtt(rtt));
    }
    let timed_out = || E::Closed(Closed::new(CloseCode::TIMED_OUT, "", Initiator::Peer));
    // Stalled 10 s: the server timed our session out.
    now += Duration::from_secs(10);
    monitor.handle_peer_event(now, id, &timed_out());
    assert_eq!(monitor.stats().stalls, 1);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Suspect);
    // The driver reconnects; stalled again mid-handshake, 10 s. The server
    // answered, then timed the new session out too.
    now += Duration::from_millis(100);
    monitor.handle_timeout(now);
    now += Duration::from_secs(10);
    monitor.handle_peer_event(now, id, &sim::peers::connected(now));
    assert_eq!(monitor.stats().stalls, 2);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Up);
    monitor.handle_peer_event(now, id, &timed_out());
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Suspect);
    assert_eq!(monitor.stats().losses_excused, 2);
}

/// The grace runs from the loss, which may come seconds after the stall's
/// end (our own session's dead timeout): the driver starts reconnecting
/// only then.
#[test]
fn the_grace_runs_from_the_loss_not_from_the_stalls_end() {
    use pulse_proto::Event as E;
    let config = Config::lan();
    let grace = config.reconnect_grace;
    let mut monitor = Monitor::new(config, Instant::ZERO, 10).unwrap();
    let pool = monitor.add_pool();
    let id = monitor.add_target(Instant::ZERO, TargetSpec::peer(pool)).unwrap();
    let rtt = pulse_proto::RttSample::new(Duration::from_millis(3), Duration::ZERO, Duration::from_millis(3));
    let mut now = Instant::ZERO;
    for _ in 0..10 {
        now = monitor.poll_timeout().unwrap();
        monitor.handle_timeout(now);
        monitor.handle_peer_event(now, id, &E::Rtt(rtt));
    }
    let resumed = now + Duration::from_secs(10);
    monitor.handle_timeout(resumed);
    assert_eq!(monitor.stats().stalls, 1);
    // The driver keeps the deadlines until `until`, bounded.
    let run = |monitor: &mut Monitor, until: Instant| {
        for _ in 0..10_000 {
            let due = monitor.poll_timeout().unwrap();
            if due > until {
                break;
            }
            monitor.handle_timeout(due);
        }
    };
    let lost = resumed + Duration::from_secs(3);
    run(&mut monitor, lost);
    let dead = E::PeerDead {
        silent_for: Duration::from_secs(13),
    };
    monitor.handle_peer_event(lost, id, &dead);
    assert_eq!(monitor.snapshot(id).unwrap().health, Health::Suspect);
    run(&mut monitor, lost + grace - Duration::from_millis(100));
    assert_eq!(
        monitor.snapshot(id).unwrap().health,
        Health::Suspect,
        "down before its grace"
    );
    run(&mut monitor, lost + grace + Duration::from_millis(600));
    let s = monitor.snapshot(id).unwrap();
    assert_eq!(s.health, Health::Down);
    assert_eq!(monitor.stats().stalls, 1);
}

/// While the local score is up the stall threshold stretches (a loop late
/// at every turn is not found stalled at every call), so a stall of 2.9 s
/// right after a few long ones is no stall by the stretched threshold
/// (3 s at the top score) — yet it is longer than the servers' dead
/// timeout, and they time our sessions out. Any gap over twice the
/// (unstretched) threshold is one those sessions crossed: their losses
/// cannot convict. (Before: 8 to 10 of the 10 peers down at once, seeds
/// 0 to 2.)
#[test]
fn a_stall_under_the_stretched_threshold_still_cannot_convict_a_peer() {
    let mut unseen = 0;
    for seed in seeds(3) {
        let mut sim = peers(seed);
        // Four long stalls, 4 s apart: the local score is at its top.
        for _ in 0..4 {
            sim.stall(secs(10.0));
            sim.run_for(secs(14.0));
        }
        assert_eq!(sim.monitor.stats().stalls, 4, "seed {seed}");
        assert_eq!(downs(&sim), vec![], "seed {seed}");
        let excused = sim.monitor.stats().losses_excused;
        sim.stall(secs(2.9));
        sim.run_for(secs(20.0));
        // Mostly not a stall by the stretched threshold, but the servers
        // timed our sessions out: excused, and every peer reconnected.
        let down = downs(&sim);
        assert!(down.is_empty(), "seed {seed}: {} downs: {:?}", down.len(), down.first());
        assert!(
            sim.monitor.stats().losses_excused > excused,
            "seed {seed}: no session lost"
        );
        unseen += u32::from(sim.monitor.stats().stalls == 4);
        for k in 0..10 {
            assert_eq!(
                sim.monitor.snapshot(sim.targets[k].id).unwrap().health,
                Health::Up,
                "seed {seed}"
            );
        }
    }
    // The case at hand: for most seeds the short stall was no stall.
    assert!(unseen >= 2, "{unseen}");
}
