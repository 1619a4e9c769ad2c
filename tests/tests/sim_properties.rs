//! The promises, as properties over many seeds of the simulated network:
//! no false alarms, no missed deaths, cheap when idle, no thundering herd.
//! A failure names its seed; `PULSE_SIM_SEED=<seed>` replays it exactly,
//! and `PULSE_SOAK=<k>` runs k times more seeds and time.

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::frame::Frame;
use pulse_proto::{Backoff, CloseCode, Config, Event, Instant, State, Transport};
use pulse_tests::{config, draw, draw_between, seeds, LinkSpec, Net, Outage, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);

fn verdicts(pair: &Pair) -> usize {
    [&pair.client, &pair.server]
        .iter()
        .map(|end| end.events_where(|e| matches!(e, Event::PeerDead { .. })).len())
        .sum()
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

#[test]
fn after_a_partition_heals_a_reconnecting_client_is_back_within_its_backoff() {
    // A client convicts its server across a partition, then reconnects as
    // its backoff says: each attempt across the partition fails (its
    // handshake times out), and once the partition heals it is back within
    // one attempt's handshake timeout plus the longest backoff delay.
    let (initial, longest) = (Duration::from_millis(100), SECOND * 2);
    for seed in seeds(20) {
        let transport = [Transport::Stream, Transport::Datagram][(seed % 2) as usize];
        let latency = Duration::from_millis(5);
        let mut net = Net::new(LinkSpec {
            latency,
            ..LinkSpec::default()
        });
        let (client, server) = (net.add_host(), net.add_host());
        let config = Arc::new(
            (*config(transport, 1_000, 3_000))
                .clone()
                .with_handshake_timeout(SECOND * 2),
        );
        let first = net.connect(client, server, config.clone(), config.clone(), seed);
        net.run_for(SECOND * 2);
        assert_eq!(net.conns[first].client.session.state(), State::Established);
        let cut_at = net.now + draw_between(seed, 1, Duration::ZERO, SECOND);
        let heal_at = cut_at + draw_between(seed, 2, SECOND * 5, SECOND * 25);
        net.schedule_outage(
            server,
            Outage::Partition {
                from: cut_at,
                until: heal_at,
            },
        );
        let mut backoff = Backoff::new(initial, longest).with_seed(seed);
        let mut current = first;
        let mut attempts = Vec::new();
        let back_at = loop {
            assert!(attempts.len() < 100, "seed {seed}: never back");
            // Wait for this connection to end, or to connect.
            let deadline = net.now + SECOND * 30;
            while net.now < deadline
                && net.conns[current].client.ended().is_none()
                && !(current != first && net.conns[current].client.session.state() == State::Established)
            {
                net.run_for(Duration::from_millis(1));
            }
            let conn = &net.conns[current];
            if current != first && conn.client.session.state() == State::Established {
                backoff.reset();
                break net.now;
            }
            let (ended_at, code) = conn.client.ended().expect("the attempt ended");
            let expected = if current == first {
                CloseCode::TIMED_OUT
            } else {
                CloseCode::HANDSHAKE_TIMEOUT
            };
            assert_eq!(
                code, expected,
                "seed {seed}: connection {current} ended at {ended_at:?}"
            );
            let delay = backoff.next_delay().expect("the backoff never gives up here");
            net.run_for(delay);
            current = net.connect(
                client,
                server,
                config.clone(),
                config.clone(),
                seed * 1000 + attempts.len() as u64,
            );
            attempts.push(net.now);
        };
        assert!(
            net.conns[first].server.verdicts().len() == 1,
            "seed {seed}: the server kept the partitioned client"
        );
        // Every attempt but the last failed; none that began after the
        // partition healed may have.
        let failed = &attempts[..attempts.len() - 1];
        assert!(
            !failed.is_empty(),
            "seed {seed}: no attempt was made across the partition"
        );
        assert!(
            failed.iter().all(|&at| at < heal_at),
            "seed {seed}: an attempt after the partition healed ({heal_at:?}) failed: {attempts:?}"
        );
        let bound = config.handshake_timeout + longest + latency * 2 + Duration::from_millis(2);
        assert!(
            back_at - heal_at <= bound,
            "seed {seed}: back {:?} after the partition healed (bound {bound:?}); attempts at {attempts:?}",
            back_at - heal_at
        );
    }
}

/// PINGs the clients of `net` sent in `from..to`, counted per window.
fn pings_per_window(net: &Net, from: Instant, to: Instant, window: Duration) -> Vec<u32> {
    let mut counts = vec![0u32; ((to - from).as_nanos() / window.as_nanos()) as usize];
    for conn in &net.conns {
        for &at in &conn.client.ping_times {
            if at >= from && at < to {
                counts[((at - from).as_nanos() / window.as_nanos()) as usize] += 1;
            }
        }
    }
    counts
}

/// Asserts the busiest window holds at most three times the average.
fn assert_spread(counts: &[u32], sessions: u64, what: &str) {
    let total: u32 = counts.iter().sum();
    let average = f64::from(total) / counts.len() as f64;
    let busiest = *counts.iter().max().unwrap();
    println!(
        "{what}: {total} PINGs in {} windows of 100 ms: average {average:.1}, busiest {busiest}",
        counts.len()
    );
    assert!(u64::from(total) >= sessions * 3 / 2, "{what}: only {total} PINGs");
    assert!(
        f64::from(busiest) <= 3.0 * average,
        "{what}: a 100 ms window held {busiest} PINGs, average {average:.1}"
    );
}

/// `sessions` clients on one host connecting to a server on another within
/// one millisecond, over one network with a little jitter.
fn fleet(sessions: u64) -> (Net, usize) {
    let mut net = Net::new(LinkSpec {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(1),
        ..LinkSpec::default()
    });
    let (clients, server) = (net.add_host(), net.add_host());
    let config = Arc::new(Config::default());
    for seed in 0..sessions {
        if seed % (sessions / 10).max(1) == 0 {
            net.run_for(Duration::from_micros(100));
        }
        net.connect(clients, server, config.clone(), config.clone(), seed);
    }
    (net, server)
}

#[test]
fn ten_thousand_sessions_started_in_one_millisecond_on_one_network_spread_their_pings_over_the_interval() {
    const SESSIONS: u64 = 10_000;
    let interval = SECOND * 10;
    let (mut net, _) = fleet(SESSIONS);
    // Steady state: after every session's first PING, over two intervals.
    let (from, to) = (Instant::ZERO + interval * 3 / 2, Instant::ZERO + interval * 7 / 2);
    net.run_until(to);
    assert_spread(
        &pings_per_window(&net, from, to, Duration::from_millis(100)),
        SESSIONS,
        "started together",
    );
}

#[test]
fn a_fleet_whose_server_stalled_spreads_its_pings_again() {
    // Sessions opened together, spread by their first spacing; then the
    // server stalls for 5 s. The clients whose PINGs fell into the stall
    // all hear back in the same instant when it resumes: if that instant
    // became their common phase, the fleet would ping in step from then
    // on, a herd made by one hiccup.
    const SESSIONS: u64 = 5_000;
    let interval = SECOND * 10;
    let (mut net, server) = fleet(SESSIONS);
    let stall_at = Instant::ZERO + interval * 4 + draw_between(7, 1, Duration::ZERO, interval);
    net.stall(server, stall_at, SECOND * 5);
    let resumed = stall_at + SECOND * 5;
    let (from, to) = (resumed + interval * 3 / 2, resumed + interval * 7 / 2);
    net.run_until(to);
    let mut ended = std::collections::BTreeMap::new();
    for conn in &net.conns {
        if let Some((_, code)) = conn.client.ended() {
            *ended.entry(code.to_string()).or_insert(0) += 1;
        }
    }
    assert!(
        ended.is_empty(),
        "a 5 s stall at 10 s / 30 s ended sessions, by code: {ended:?}"
    );
    assert_spread(
        &pings_per_window(&net, from, to, Duration::from_millis(100)),
        SESSIONS,
        "after a 5 s server stall",
    );
}
