//! The promises, as properties over many seeds of the simulated network:
//! no false alarms, no missed deaths, cheap when idle, no thundering herd.
//! A failure names its seed; `PULSE_SIM_SEED=<seed>` replays it exactly,
//! and `PULSE_SOAK=<k>` runs k times more seeds and time.

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::frame::Frame;
use pulse_proto::{Backoff, Config, Event, Instant, Transport};
use pulse_tests::{config, seeds, soak, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);

fn verdicts(pair: &Pair) -> usize {
    [&pair.client, &pair.server]
        .iter()
        .map(|end| end.events_where(|e| matches!(e, Event::PeerDead { .. })).len())
        .sum()
}

/// A little randomness per seed for link parameters.
fn draw(seed: u64, salt: u64, below: u64) -> u64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 29)) % below.max(1)
}

#[test]
fn no_false_alarms_over_tcp_like_links_in_24_simulated_hours() {
    // Default timings: 10 s interval, 30 s timeout. Latency up to 25 % of
    // the interval, counting the jitter; a stream keeps its order.
    for seed in seeds(6) {
        let latency = Duration::from_millis(draw(seed, 1, 2_000));
        let jitter = Duration::from_millis(1 + draw(seed, 2, 500));
        let mut pair = Pair::with_config(Arc::new(Config::default()), latency, seed);
        for (i, wire) in [&mut pair.to_server, &mut pair.to_client].into_iter().enumerate() {
            wire.jitter = jitter;
            wire.seed(seed * 2 + i as u64);
        }
        pair.connect(SECOND * 10);
        pair.run_for(Duration::from_secs(24 * 3600));
        assert_eq!(
            verdicts(&pair),
            0,
            "seed {seed}: latency {latency:?} + jitter {jitter:?}"
        );
        // The next PING is timed from the PONG: a cycle is at most 1.1
        // intervals plus a round trip.
        let cycle = Duration::from_secs(11) + (latency + jitter) * 2;
        let expected = (24 * 3600) / cycle.as_secs().max(1);
        assert!(
            pair.client.session.stats().pings_sent as u64 >= expected,
            "seed {seed}: heartbeats stopped"
        );
    }
}

#[test]
fn false_alarms_over_datagrams_losing_a_fifth_each_way_stay_below_one_in_ten_thousand_intervals() {
    // 20 % independent loss in each direction, default timings.
    let hours = 6 * soak();
    let (mut intervals, mut false_verdicts) = (0u64, 0u64);
    for seed in seeds(20) {
        // A long handshake window: the handshake is not what is measured.
        let config = Config {
            handshake_timeout: SECOND * 120,
            ..Config::new(Transport::Datagram)
        };
        let mut pair = Pair::with_config(Arc::new(config), Duration::from_millis(20), seed);
        for (i, wire) in [&mut pair.to_server, &mut pair.to_client].into_iter().enumerate() {
            wire.loss_ppm = 200_000;
            wire.jitter = Duration::from_millis(5);
            wire.seed(seed * 2 + i as u64 + 1);
        }
        pair.connect(SECOND * 120);
        pair.run_for(Duration::from_secs(hours * 3600));
        intervals += hours * 3600 / 10;
        false_verdicts += verdicts(&pair) as u64;
    }
    println!("datagrams with 20% loss each way: {false_verdicts} false verdicts in {intervals} intervals");
    assert!(
        false_verdicts * 10_000 <= intervals,
        "{false_verdicts} false verdicts in {intervals} intervals"
    );
}

#[test]
fn every_side_declares_a_partitioned_peer_dead_within_the_bound() {
    for seed in seeds(40) {
        let transport = if seed % 2 == 0 {
            Transport::Stream
        } else {
            Transport::Datagram
        };
        let mut pair = Pair::with_config(
            config(transport, 1_000, 3_000),
            Duration::from_millis(1 + draw(seed, 3, 50)),
            seed,
        );
        pair.connect(SECOND * 5);
        pair.run_for(Duration::from_millis(2_000 + draw(seed, 4, 10_000)));
        pair.to_server.cut = true;
        pair.to_client.cut = true;
        pair.run_for(SECOND * 10);
        for (side, end) in [("client", &pair.client), ("server", &pair.server)] {
            let dead = end.events_where(|e| matches!(e, Event::PeerDead { .. }));
            assert_eq!(dead.len(), 1, "seed {seed}: {side} gave no verdict");
            let after = dead[0].0 - end.last_input_at.unwrap();
            assert!(
                after >= Duration::from_secs(3) && after <= Duration::from_millis(3_001),
                "seed {seed}: {side} convicted {after:?} after the last frame"
            );
        }
    }
}

#[test]
fn after_a_partition_heals_a_reconnecting_client_is_back_within_its_backoff() {
    for seed in seeds(20) {
        let config = config(Transport::Stream, 1_000, 3_000);
        let latency = Duration::from_millis(5);
        let mut pair = Pair::with_config(config.clone(), latency, seed);
        pair.connect(SECOND * 5);
        pair.to_server.cut = true;
        pair.to_client.cut = true;
        let heal_at = pair.now + Duration::from_millis(5_000 + draw(seed, 5, 20_000));
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_seed(seed);
        // Wait for the verdict, then try as the backoff says: an attempt
        // across the partition fails; the first after healing connects.
        let dead = pair.run_while(pair.now + SECOND * 10, |p| !p.client.session.is_closed());
        assert!(dead, "seed {seed}: no verdict");
        let connected_at = loop {
            let delay = backoff.next_delay().expect("the backoff never gives up here");
            pair.run_for(delay);
            if pair.now >= heal_at {
                break pair.now;
            }
        };
        let mut again = Pair::with_config(config.clone(), latency, seed + 1000);
        again.connect(SECOND);
        let handshake = again.now - Instant::ZERO;
        assert!(
            handshake <= latency * 2 + Duration::from_millis(1),
            "seed {seed}: handshake took {handshake:?}"
        );
        let back_after = connected_at - heal_at + handshake;
        assert!(
            back_after <= Duration::from_secs(2) + latency * 2 + Duration::from_millis(1),
            "seed {seed}: back {back_after:?} after healing"
        );
    }
}

#[test]
fn an_idle_pair_costs_at_most_two_frames_per_interval_and_traffic_costs_none() {
    for seed in seeds(10) {
        let mut pair = Pair::with_config(
            config(Transport::Stream, 1_000, 3_000),
            Duration::from_millis(1 + draw(seed, 6, 100)),
            seed,
        );
        pair.to_server.jitter = Duration::from_millis(draw(seed, 7, 50) + 1);
        pair.to_client.jitter = pair.to_server.jitter;
        pair.observe();
        pair.connect(SECOND);
        let (sent_before, received_before) = (pair.to_server.frames.len(), pair.to_client.frames.len());
        pair.run_for(SECOND * 600);
        let frames = pair.to_server.frames.len() - sent_before + pair.to_client.frames.len() - received_before;
        assert!(frames <= 2 * 600, "seed {seed}: {frames} frames in 600 idle intervals");
        // With DATA both ways more often than the interval: no heartbeat.
        let heartbeats = |p: &Pair| {
            p.to_server
                .frames
                .iter()
                .chain(&p.to_client.frames)
                .filter(|(_, f)| matches!(f, Frame::Ping { .. } | Frame::Pong { .. }))
                .count()
        };
        let mut before = 0;
        for round in 0..600 {
            // A heartbeat already under way when traffic starts may finish.
            if round == 10 {
                before = heartbeats(&pair);
            }
            pair.send(Side::Client, 1, &b"up"[..]).unwrap();
            pair.send(Side::Server, 2, &b"down"[..]).unwrap();
            pair.run_for(Duration::from_millis(500));
        }
        assert_eq!(
            heartbeats(&pair),
            before,
            "seed {seed}: heartbeats while data flowed both ways"
        );
    }
}

#[test]
fn ten_thousand_sessions_started_in_one_millisecond_spread_their_pings_over_the_interval() {
    const SESSIONS: u64 = 10_000;
    const WINDOW: Duration = Duration::from_millis(100);
    let interval = SECOND * 10;
    // Steady state: after every session's first PING, over two intervals.
    let (from, to) = (Instant::ZERO + interval * 3 / 2, Instant::ZERO + interval * 7 / 2);
    let windows = ((to - from).as_millis() / WINDOW.as_millis()) as usize;
    let mut counts = vec![0u32; windows];
    for seed in 0..SESSIONS {
        let mut pair = Pair::with_config(Arc::new(Config::default()), Duration::from_millis(1), seed);
        pair.observe();
        pair.connect(SECOND);
        pair.run_for(to - pair.now);
        for (at, frame) in &pair.to_server.frames {
            if matches!(frame, Frame::Ping { .. }) && *at >= from && *at < to {
                counts[((*at - from).as_millis() / WINDOW.as_millis()) as usize] += 1;
            }
        }
    }
    let total: u32 = counts.iter().sum();
    let average = f64::from(total) / windows as f64;
    let busiest = *counts.iter().max().unwrap();
    println!("{total} PINGs in {windows} windows of 100 ms: average {average:.1}, busiest {busiest}");
    assert!(total as u64 >= SESSIONS * 3 / 2, "only {total} PINGs");
    assert!(
        f64::from(busiest) <= 3.0 * average,
        "a 100 ms window held {busiest} PINGs, average {average:.1}"
    );
}

#[test]
fn a_clock_stepping_forward_gives_one_probe_round_not_a_verdict() {
    for seed in seeds(20) {
        let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), seed);
        pair.connect(SECOND);
        pair.run_for(Duration::from_millis(2_000 + draw(seed, 8, 5_000)));
        // The client's clock jumps a minute ahead (a VM resumed, say).
        pair.client.process.clock_offset = SECOND * 60;
        pair.run_for(SECOND * 30);
        assert_eq!(verdicts(&pair), 0, "seed {seed}");
    }
}
