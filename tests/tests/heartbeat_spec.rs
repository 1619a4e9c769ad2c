//! The heartbeat rules of docs/PROTOCOL.md, each checked on two sessions
//! over an in-memory link in virtual time.

use std::time::Duration;

use pulse_proto::{CloseCode, Event, Initiator, Instant, State, Transport};
use pulse_tests::{config, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

fn connected(interval_ms: u64, dead_ms: u64, latency: Duration, seed: u64) -> Pair {
    let mut pair = Pair::with_config(config(Transport::Stream, interval_ms, dead_ms), latency, seed);
    pair.connect(SECOND * 5);
    pair
}

fn is_dead(e: &Event) -> bool {
    matches!(e, Event::PeerDead { .. })
}

fn is_closed(e: &Event) -> bool {
    matches!(e, Event::Closed(_))
}

#[test]
fn an_idle_link_costs_at_most_one_ping_per_interval_for_the_pair() {
    for seed in 0..20 {
        let mut pair = connected(10_000, 30_000, Duration::from_millis(5), seed);
        pair.run_for(HOUR);
        let pings = pair.client.session.stats().pings_sent + pair.server.session.stats().pings_sent;
        assert!(pings <= 3600 / 10 + 1, "seed {seed}: {pings} PINGs in an hour");
        assert!(
            pings >= 3600 / 11 - 1,
            "seed {seed}: only {pings} PINGs: heartbeats stopped"
        );
        assert_eq!(
            pair.server.session.stats().pings_sent,
            0,
            "seed {seed}: the server pinged although the client did"
        );
        for end in [&pair.client, &pair.server] {
            assert!(
                end.events_where(|e| is_dead(e) || is_closed(e)).is_empty(),
                "seed {seed}: false verdict"
            );
            assert_eq!(
                end.contract_breaks, 0,
                "seed {seed}: a deadline moved earlier on receive"
            );
        }
    }
}

#[test]
fn data_flowing_both_ways_means_no_pings_at_all() {
    let mut pair = connected(10_000, 30_000, Duration::from_millis(5), 1);
    for _ in 0..3600 {
        pair.send(Side::Client, 1, &b"tick"[..]).unwrap();
        pair.send(Side::Server, 2, &b"tock"[..]).unwrap();
        pair.run_for(SECOND);
    }
    assert_eq!(
        pair.client.session.stats().pings_sent + pair.server.session.stats().pings_sent,
        0
    );
    assert_eq!(pair.server.session.stats().data_received, 3600);
}

#[test]
fn the_receiving_side_of_one_way_traffic_is_the_one_that_pings() {
    let mut pair = connected(10_000, 30_000, Duration::from_millis(5), 2);
    for _ in 0..600 {
        pair.send(Side::Server, 2, &b"push"[..]).unwrap();
        pair.run_for(SECOND);
    }
    // The client hears the server constantly; the server hears nothing and
    // must ping to learn the client is alive: every 2.25 intervals (halfway
    // from 1.5 intervals, the latest a client's PING can come, to the
    // 3-interval timeout), 26 times in 600 s.
    assert_eq!(pair.client.session.stats().pings_sent, 0);
    let server_pings = pair.server.session.stats().pings_sent;
    assert!((25..=27).contains(&server_pings), "{server_pings}");
    assert!(pair.server.events_where(is_dead).is_empty());
}

#[test]
fn a_silent_peer_is_declared_dead_exactly_at_the_timeout() {
    for seed in 0..20 {
        let mut pair = connected(1_000, 3_000, Duration::from_millis(10), seed);
        pair.run_for(Duration::from_millis(5_000 + 137 * seed));
        pair.server.process.frozen = true;
        pair.run_for(SECOND * 10);
        let dead = pair.client.events_where(is_dead);
        assert_eq!(dead.len(), 1, "seed {seed}");
        let last_heard = pair.client.last_input_at.unwrap();
        let after = dead[0].0 - last_heard;
        assert!(
            after >= Duration::from_secs(3) && after <= Duration::from_millis(3_001),
            "seed {seed}: verdict {after:?} after the last frame"
        );
        let closed = pair.client.events_where(is_closed);
        let Event::Closed(closed) = &closed[0].1 else {
            unreachable!()
        };
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::TIMED_OUT, Initiator::Local)
        );
        assert!(pair.client.session.is_closed());
        // It was suspected first, and probed meanwhile.
        assert!(!pair
            .client
            .events_where(|e| matches!(e, Event::Suspect { .. }))
            .is_empty());
    }
}

#[test]
fn a_partition_is_detected_by_both_sides_within_the_bound() {
    let mut pair = connected(1_000, 3_000, Duration::from_millis(10), 3);
    pair.run_for(SECOND * 7);
    pair.to_server.cut = true;
    pair.to_client.cut = true;
    pair.run_for(SECOND * 10);
    for end in [&pair.client, &pair.server] {
        let dead = end.events_where(is_dead);
        assert_eq!(dead.len(), 1);
        let after = dead[0].0 - end.last_input_at.unwrap();
        assert!(
            after >= Duration::from_secs(3) && after <= Duration::from_millis(3_001),
            "{after:?}"
        );
    }
}

#[test]
fn answers_taking_forty_percent_of_the_interval_give_no_false_verdict() {
    for seed in 0..5 {
        // 200 ms each way: each PONG comes 400 ms after its PING.
        let mut pair = connected(1_000, 3_000, Duration::from_millis(200), seed);
        pair.run_for(HOUR);
        for end in [&pair.client, &pair.server] {
            assert!(
                end.events_where(|e| is_dead(e) || is_closed(e)).is_empty(),
                "seed {seed}"
            );
        }
        let rtt = pair.client.session.rtt().unwrap();
        assert!(
            rtt >= Duration::from_millis(399) && rtt <= Duration::from_millis(401),
            "{rtt:?}"
        );
    }
}

#[test]
fn suspicion_ends_with_the_first_frame_and_is_reported() {
    let mut pair = connected(1_000, 3_000, Duration::from_millis(10), 4);
    pair.run_for(SECOND * 5);
    pair.server.process.frozen = true;
    let frozen_at = pair.now;
    pair.run_while(frozen_at + SECOND * 3, |p| {
        p.client.events_where(|e| matches!(e, Event::Suspect { .. })).is_empty()
    });
    pair.server.process.frozen = false;
    pair.run_for(SECOND * 10);
    assert_eq!(
        pair.client.events_where(|e| matches!(e, Event::Recovered { .. })).len(),
        1
    );
    assert!(pair.client.events_where(is_dead).is_empty());
    assert!(!pair.client.session.is_suspect());
}

#[test]
fn a_steady_stream_never_forces_a_timer_re_arm_on_receive() {
    let mut pair = connected(1_000, 3_000, Duration::from_millis(5), 5);
    for _ in 0..6_000 {
        pair.send(Side::Client, 1, &b"x"[..]).unwrap();
        pair.send(Side::Server, 1, &b"y"[..]).unwrap();
        pair.run_for(Duration::from_millis(100));
    }
    for end in [&pair.client, &pair.server] {
        assert_eq!(end.contract_breaks, 0);
        // 6,000 frames received in 600 s, yet the timer fired at most about
        // once per spacing (at least half an interval), finding nothing due.
        assert!(end.wakeups <= 1_300, "{} wake-ups", end.wakeups);
        assert!(
            end.session.stats().frames_received >= 4 * end.wakeups,
            "{} wake-ups",
            end.wakeups
        );
        assert!(
            end.spurious_wakeups + 1 >= end.wakeups,
            "{} of {}",
            end.spurious_wakeups,
            end.wakeups
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_run_bit_for_bit() {
    let run = |seed| {
        let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(7), seed);
        pair.observe();
        pair.connect(SECOND);
        pair.run_for(SECOND * 60);
        pair.server.process.frozen = true;
        pair.run_for(SECOND * 10);
        (pair.to_server.frames, pair.to_client.frames, pair.client.events)
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}

#[test]
fn a_verdict_never_fires_while_frames_keep_arriving_however_late_each_is() {
    // The client hears only DATA, each frame 1 ms inside the timeout after
    // the one before: its PINGs are lost and the server is stopped, so
    // nothing else proves the server alive. When the DATA stops, the
    // verdict follows exactly at the timeout.
    for (interval_ms, dead_ms) in [(1_000, 3_000), (200, 600)] {
        let timeout = Duration::from_millis(dead_ms);
        let mut pair = connected(interval_ms, dead_ms, Duration::from_millis(5), 6);
        pair.to_server.cut = true;
        pair.server.process.frozen = true;
        let mut data = Vec::new();
        pulse_proto::frame::Frame::Data {
            tag: 1,
            payload: bytes::Bytes::from_static(b"late"),
        }
        .encode(&mut data);
        let data = bytes::Bytes::from(data);
        for _ in 0..1_000 {
            pair.to_client.push(pair.now, data.clone(), Transport::Stream);
            pair.run_for(timeout - Duration::from_millis(1));
        }
        assert!(pair.client.events_where(is_dead).is_empty(), "{dead_ms} ms");
        assert_eq!(pair.client.session.state(), State::Established);
        assert_eq!(pair.client.session.stats().data_received, 1_000);
        assert!(pair.client.session.stats().pings_sent >= 1_000, "it probed all along");
        pair.run_for(timeout + Duration::from_millis(1));
        let dead = pair.client.events_where(is_dead);
        assert_eq!(dead.len(), 1, "{dead_ms} ms: no verdict once the frames stopped");
        assert_eq!(dead[0].0 - pair.client.last_input_at.unwrap(), timeout);
    }
}

#[test]
fn an_established_pair_measures_rtt_and_reports_it() {
    let mut pair = connected(1_000, 3_000, Duration::from_millis(25), 7);
    pair.run_for(SECOND * 10);
    let samples = pair.client.events_where(|e| matches!(e, Event::Rtt(_)));
    assert!(samples.len() >= 8, "{}", samples.len());
    for (_, e) in samples {
        let Event::Rtt(sample) = e else { unreachable!() };
        assert_eq!(sample.rtt, Duration::from_millis(50));
        assert_eq!(sample.peer_hold, Duration::ZERO);
    }
    assert_eq!(pair.client.session.rtt(), Some(Duration::from_millis(50)));
    let _ = Instant::ZERO;
}
