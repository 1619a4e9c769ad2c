//! Review of issue 14: "a monitor stall of any length causes no down
//! verdict", for pulse peers too (stall.rs covers checked and announcing
//! targets). The peers' client sessions live in the monitor's process, so
//! they stall with it; some peers are confirmed with the pulse handshake,
//! some are not. A stall longer than the servers' dead timeout makes every
//! server close its session with TIMED_OUT; the CLOSE reaches the monitor
//! after the stall, and every unconfirmed peer is taken down for it.
//!
//! FAILS on main (60 downs over the 10 unconfirmed peers, seed 0): an open
//! defect, not fixed here. Treating a peer-initiated TIMED_OUT as "suspect"
//! passes this test but is wrong without a stall (one-way loss: the peer
//! really cannot hear us) and leaves a peer followed without reconnection
//! suspect for ever; the monitor cannot tell our stall here, as a monitor
//! of peers alone has no deadline of its own to find it late.

mod sim;

use pulse_monitor::{Check, Config, Event, Health, Monitor, PulseCheck, TargetSpec};
use pulse_proto::Instant;
use sim::{at, secs, seeds, Link, Rng, Sim};

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
        // The stalls mattered: the servers timed our sessions out (a
        // monitor of peers alone has no timer of its own to find a stall
        // by; the sessions' own grace covers their verdicts).
        assert!(
            sim.peers.ended >= 10,
            "seed {seed}: no session ended: {}",
            sim.peers.ended
        );
    }
}
