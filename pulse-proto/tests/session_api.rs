//! The session's public calls, each as the docs state it, on a pair of
//! sessions joined in memory and moved through virtual time. (The spec's
//! rules are tested at length in the workspace's `tests/`; these keep the
//! core's own suite checking its API, as mutation testing asks.)

mod common;

use core::time::Duration;

use common::pair::Pair;
use common::{closed, hello, stream_frames as frames, take};
use pulse_proto::frame::{Frame, Hello};
use pulse_proto::{
    AdaptiveConfig, CloseCode, Config, Event, Initiator, Instant, Learned, Role, SendError, ServiceState, Session,
    State, Status, Transport,
};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn config() -> Config {
    Config::default()
        .with_timing(SECOND, SECOND * 3)
        .with_max_queued_bytes(4096)
        .with_max_frame_len(1024)
}

fn adaptive() -> Config {
    let mut adaptive = AdaptiveConfig::default();
    adaptive.start = SECOND;
    adaptive.active = MS * 500;
    config()
        .with_min_interval(MS * 100)
        .with_min_ping_spacing(MS * 50)
        .with_adaptive(Some(adaptive))
}

// Closing.

#[test]
fn close_sends_close_and_both_ends_see_its_code() {
    let mut pair = Pair::connected(config());
    pair.client.close(pair.now, CloseCode::NORMAL, "done").unwrap();
    pair.run_for(SECOND);
    for events in [&pair.client_events, &pair.server_events] {
        let closed = closed(events).expect("closed");
        assert_eq!(closed.code, CloseCode::NORMAL);
    }
    assert_eq!(closed(&pair.server_events).unwrap().reason, "done");
    assert!(pair.client.is_closed() && pair.server.is_closed());
}

#[test]
fn a_code_only_the_protocol_may_send_is_refused_by_close_and_abort() {
    let mut pair = Pair::connected(config());
    let now = pair.now;
    assert!(pair.client.close(now, CloseCode::TIMED_OUT, "no").is_err());
    assert!(pair.client.abort(now, CloseCode::PROTOCOL_ERROR, "no").is_err());
    assert_eq!(pair.client.state(), State::Established);
}

#[test]
fn abort_ends_an_established_session_at_once() {
    let mut pair = Pair::connected(config());
    pair.client.abort(pair.now, CloseCode::GOING_AWAY, "bye").unwrap();
    assert!(pair.client.is_closed());
    pair.run_for(MS * 10);
    assert_eq!(closed(&pair.client_events).unwrap().code, CloseCode::GOING_AWAY);
    assert_eq!(closed(&pair.server_events).unwrap().code, CloseCode::GOING_AWAY);
}

#[test]
fn an_end_of_stream_without_close_is_reported_as_lost_at_once() {
    let mut pair = Pair::connected(config());
    pair.client.handle_eof(pair.now);
    let closed = closed(&std::iter::from_fn(|| pair.client.poll_event()).collect::<Vec<_>>()).unwrap();
    assert_eq!((closed.code, closed.initiator), (CloseCode::LOST, Initiator::Peer));
    assert!(pair.client.is_closed());
}

#[test]
fn an_end_of_stream_during_a_graceful_close_completes_it_with_our_code() {
    let mut pair = Pair::connected(config());
    pair.client.close(pair.now, CloseCode::NORMAL, "done").unwrap();
    take(&mut pair.client, pair.now);
    pair.client.handle_eof(pair.now);
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    let closed = closed(&events).expect("the close is over");
    assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Local));
}

// Sending.

#[test]
fn a_message_over_the_peers_frame_limit_is_refused_and_one_at_it_is_queued() {
    let mut pair = Pair::connected(config());
    let max = match pair.client.send(1, vec![0u8; 2048]) {
        Err(SendError::TooLarge { len: 2048, max }) => max,
        other => panic!("{other:?}"),
    };
    assert!(max < 1024);
    assert_eq!(pair.client.send(1, vec![7u8; max]), Ok(()));
    pair.run_for(MS * 10);
    let got = pair.server_events.iter().find_map(|e| match e {
        Event::Message { payload, .. } => Some(payload.len()),
        _ => None,
    });
    assert_eq!(got, Some(max));
}

#[test]
fn a_full_queue_refuses_a_message_but_never_the_first() {
    let mut pair = Pair::connected(config().with_max_queued_bytes(1024));
    // The first message is taken whatever its size (up to the frame limit).
    pair.client.send(1, vec![0u8; 1020]).unwrap();
    match pair.client.send(2, vec![0u8; 10]) {
        Err(SendError::QueueFull { queued, max: 1024 }) => assert!(queued > 1020, "{queued}"),
        other => panic!("{other:?}"),
    }
    // Once the transport took it, there is room again.
    pair.run_for(MS * 10);
    pair.client.send(2, vec![0u8; 10]).unwrap();
    // Small messages fill the queue up to its limit, not beyond.
    let mut accepted = 0;
    while pair.client.send(3, vec![0u8; 90]).is_ok() {
        accepted += 1;
        assert!(accepted < 100);
    }
    let data = pulse_proto::frame::data_overhead(90) + 90;
    assert_eq!(accepted, (1024 - (pulse_proto::frame::data_overhead(10) + 10)) / data);
}

#[test]
fn send_before_the_handshake_and_after_the_close_says_which() {
    let mut pair = Pair::new(config(), config());
    assert_eq!(pair.client.send(1, "early"), Err(SendError::NotConnected));
    pair.run_for(MS * 10);
    pair.client.close(pair.now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(pair.client.send(1, "late"), Err(SendError::Closed));
}

#[test]
fn the_bytes_fed_are_counted_across_calls() {
    let mut server = Session::new(config(), Role::Server, Instant::ZERO, 1).unwrap();
    let hello = hello(1, 2, 1024);
    let (first, second) = hello.split_at(7);
    server.handle_input(Instant::ZERO, first);
    server.handle_input(Instant::ZERO, second);
    assert_eq!(server.stats().bytes_received, hello.len() as u64);
    assert_eq!(server.stats().frames_received, 1);
    assert_eq!(server.state(), State::Established);
}

// Status, RETIME, the adaptive interval.

#[test]
fn a_status_reaches_a_version_2_peer_and_is_refused_before_the_handshake() {
    let mut pair = Pair::new(config(), config());
    let draining = Status::new(ServiceState::Draining, 5);
    assert_eq!(pair.server.send_status(draining), Err(SendError::NotConnected));
    pair.run_for(MS * 10);
    pair.server.send_status(draining).unwrap();
    pair.run_for(MS * 10);
    assert!(pair.client_events.contains(&Event::PeerStatus(draining)));
}

#[test]
fn a_version_1_peer_gets_no_status_and_no_retime() {
    let mut server = Session::new(config(), Role::Server, Instant::ZERO, 1).unwrap();
    let hello = hello(1, 1, 1024);
    server.handle_input(Instant::ZERO, &hello[..]);
    assert_eq!(server.state(), State::Established);
    assert_eq!(
        server.send_status(Status::default()),
        Err(SendError::Unsupported { version: 1 })
    );
}

#[test]
fn retime_is_for_an_established_client() {
    let mut pair = Pair::new(config(), config());
    let now = pair.now;
    assert_eq!(
        pair.client.retime(now, SECOND * 2, SECOND * 6),
        Err(SendError::NotConnected)
    );
    pair.run_for(MS * 10);
    let now = pair.now;
    assert!(matches!(
        pair.server.retime(now, SECOND * 2, SECOND * 6),
        Err(SendError::Unsupported { .. })
    ));
    pair.client.retime(now, SECOND * 2, SECOND * 6).unwrap();
    // Each end switches at its next timer; the server's may be a few
    // seconds away while the client's PINGs keep coming.
    pair.run_for(SECOND * 6);
    assert_eq!(pair.client.negotiated().unwrap().interval(), SECOND * 2);
    assert_eq!(pair.server.negotiated().unwrap().interval(), SECOND * 2);
    pair.client.close(pair.now, CloseCode::NORMAL, "").unwrap();
    assert_eq!(pair.client.retime(pair.now, SECOND, SECOND * 3), Err(SendError::Closed));
}

#[test]
fn an_adaptive_client_says_what_it_learned_and_a_plain_one_says_nothing() {
    let pair = Pair::connected(adaptive());
    assert!(pair.client.learned().is_some());
    assert_eq!(pair.server.learned(), None);
    let plain = Pair::connected(config());
    assert_eq!(plain.client.learned(), None);
}

#[test]
fn a_learned_value_given_after_the_handshake_is_asked_for_at_once() {
    let mut pair = Pair::connected(adaptive());
    pair.client.set_learned(Learned {
        good_ms: 2200,
        ..Learned::default()
    });
    let asked = frames(&take(&mut pair.client, pair.now));
    // 2.2 s of idle gap at 10 % jitter: an interval of 2 s.
    assert!(
        asked
            .iter()
            .any(|f| matches!(f, Frame::Retime { interval_ms: 2000, .. })),
        "{asked:?}"
    );
}

// Pausing input.

#[test]
fn paused_input_holds_the_verdict_and_resuming_probes_before_any() {
    let mut pair = Pair::connected(config());
    let now = pair.now;
    pair.client.pause_input(now);
    assert!(pair.client.is_input_paused());
    // The client reads nothing for ten timeouts: no verdict while paused
    // (the server, hearing the client's heartbeats, stays too).
    pair.client_reads = false;
    pair.run_for(SECOND * 30);
    assert!(closed(&pair.client_events).is_none(), "{:?}", pair.client_events);
    // While paused the client still probes, at the minimum spacing
    // (500 ms). Resume just as the spacing allows another PING, before its
    // timer runs: the probe goes out at once.
    let pings = pair.client.stats().pings_sent;
    for _ in 0..100 {
        pair.run_for(MS * 10);
        if pair.client.stats().pings_sent != pings {
            break;
        }
    }
    let last_ping = pair.now;
    pair.run_for(MS * 490);
    let resumed_at = last_ping + MS * 500;
    pair.now = resumed_at;
    pair.client.resume_input(resumed_at);
    assert!(!pair.client.is_input_paused());
    let resumed = frames(&take(&mut pair.client, resumed_at));
    assert!(resumed.iter().any(|f| matches!(f, Frame::Ping { .. })), "{resumed:?}");
    // Still nothing from the server reaches the client.
    let mut verdict_at = None;
    for _ in 0..1000 {
        pair.run_for(MS * 10);
        if closed(&pair.client_events).is_some() {
            verdict_at = Some(pair.now);
            break;
        }
    }
    let after = verdict_at.expect("a verdict once reading resumed") - resumed_at;
    assert!(after >= MS * 500, "convicted {after:?} after resuming");
}

#[test]
fn resuming_input_that_was_never_paused_changes_nothing() {
    let mut pair = Pair::connected(config());
    let before = pair.client.poll_timeout();
    pair.client.resume_input(pair.now);
    assert_eq!(pair.client.poll_timeout(), before);
    assert!(frames(&take(&mut pair.client, pair.now)).is_empty());
}

// Timers.

#[test]
fn a_silent_peer_is_convicted_at_the_timeout_after_its_last_frame() {
    let mut pair = Pair::connected(config());
    pair.run_for(SECOND * 5);
    let last = pair.now;
    pair.server_reads = false;
    pair.client_reads = false;
    pair.run_for(SECOND * 10);
    let silent_for = pair.client_events.iter().find_map(|e| match e {
        Event::PeerDead { silent_for } => Some(*silent_for),
        _ => None,
    });
    let silent_for = silent_for.expect("a verdict");
    assert!(
        silent_for >= SECOND * 3 && silent_for <= SECOND * 3 + SECOND,
        "{silent_for:?}"
    );
    let _ = last;
}

#[test]
fn a_timer_run_long_after_its_deadline_gives_the_peer_a_probe_round_first() {
    let mut pair = Pair::connected(config());
    pair.run_for(SECOND * 2);
    // Our process stalls for ten seconds: nothing runs, nothing is read.
    let deadline = pair.client.poll_timeout().unwrap();
    let late = deadline + SECOND * 10;
    pair.client.handle_timeout(late);
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PeerDead { .. } | Event::Closed(_))),
        "{events:?}"
    );
    assert!(!pair.client.is_closed());
    // And it probes at once: the silence may be ours.
    let probe = frames(&take(&mut pair.client, late));
    assert!(probe.iter().any(|f| matches!(f, Frame::Ping { .. })), "{probe:?}");
    assert_eq!(pair.client.stats().own_stalls, 1);
}

#[test]
fn a_peer_that_reads_nothing_is_closed_as_a_slow_reader_and_one_that_reads_is_not() {
    let config = config().with_slow_reader_timeout(Some(SECOND * 4));
    let mut pair = Pair::connected(config.clone());
    // The client's transport takes nothing from the server any more (its
    // driver paused reading, so it gives no verdict), while the client keeps
    // talking: not dead, only not reading.
    pair.client.pause_input(pair.now);
    pair.client_reads = false;
    pair.server.send(1, vec![0u8; 100]).unwrap();
    pair.run_for(SECOND * 3);
    assert!(closed(&pair.server_events).is_none(), "closed before the timeout");
    pair.run_for(SECOND * 3);
    let slow = closed(&pair.server_events).expect("a slow reader is closed");
    assert_eq!(slow.code, CloseCode::SLOW_READER);

    let mut reading = Pair::connected(config);
    for _ in 0..20 {
        reading.server.send(1, vec![0u8; 100]).unwrap();
        reading.run_for(SECOND);
    }
    assert!(closed(&reading.server_events).is_none());
}

// Datagrams.

#[test]
fn over_datagrams_an_established_pair_exchanges_heartbeats_and_messages() {
    let config = Config::new(Transport::Datagram).with_timing(SECOND, SECOND * 3);
    let mut pair = Pair::connected(config);
    pair.client.send(4, "over udp").unwrap();
    pair.run_for(SECOND * 5);
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, Event::Message { tag: 4, .. })));
    assert!(pair.client_events.iter().any(|e| matches!(e, Event::Rtt(_))));
    assert!(pair.server.stats().frames_received >= 2, "{:?}", pair.server.stats());
    assert!(closed(&pair.client_events).is_none() && closed(&pair.server_events).is_none());
}

#[test]
fn a_datagram_server_ignores_a_first_datagram_without_the_magic() {
    let config = Config::new(Transport::Datagram);
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    let mut hello = Vec::new();
    Frame::Hello(Hello {
        version_min: 2,
        version_max: 2,
        interval_ms: 10_000,
        dead_timeout_ms: 30_000,
        max_frame_len: 1024,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut hello);
    server.handle_datagram(Instant::ZERO, &hello[..]);
    assert_eq!(server.state(), State::Handshaking);
    assert_eq!(server.stats().datagrams_dropped, 1);
}

#[test]
fn a_peers_close_waits_its_timeout_for_our_queued_data_to_leave() {
    let mut pair = Pair::connected(config().with_close_timeout(SECOND * 5));
    // The client's transport takes nothing from the server any more.
    pair.client.pause_input(pair.now);
    pair.client_reads = false;
    pair.server.send(1, vec![0u8; 1000]).unwrap();
    pair.client.close(pair.now, CloseCode::NORMAL, "bye").unwrap();
    pair.run_for(SECOND * 4);
    assert!(
        !pair.server.is_closed(),
        "gave up on its queued data before its close timeout"
    );
    pair.run_for(SECOND * 2);
    assert!(pair.server.is_closed());
}

#[test]
fn an_adaptive_client_asks_for_longer_gaps_after_clean_idle_rounds() {
    let mut config = adaptive();
    if let Some(policy) = config.adaptive.as_mut() {
        policy.successes_per_step = 1;
    }
    let mut pair = Pair::connected(config);
    let start = pair.client.negotiated().unwrap().interval();
    pair.run_for(SECOND * 10);
    let now = pair.client.negotiated().unwrap().interval();
    assert!(now > start, "still {now:?} after idle rounds at {start:?}");
}

#[test]
fn an_adaptive_client_counts_a_death_after_an_idle_gap_against_that_gap() {
    let mut pair = Pair::connected(adaptive());
    pair.run_for(SECOND * 3);
    // The path forgets the connection: nothing gets through either way.
    pair.client_reads = false;
    pair.server_reads = false;
    pair.run_for(SECOND * 10);
    assert!(closed(&pair.client_events).is_some());
    let learned = pair.client.learned().unwrap();
    assert!(learned.failures >= 1 || learned.bad_ms > 0, "{learned:?}");
}

#[test]
fn asking_for_the_active_interval_twice_sends_one_request() {
    let mut pair = Pair::connected(adaptive());
    pair.client.set_active(pair.now, true);
    let first = frames(&take(&mut pair.client, pair.now));
    assert_eq!(first.iter().filter(|f| matches!(f, Frame::Retime { .. })).count(), 1);
    pair.client.set_active(pair.now, true);
    let again = frames(&take(&mut pair.client, pair.now));
    assert!(!again.iter().any(|f| matches!(f, Frame::Retime { .. })), "{again:?}");
}

#[test]
fn a_graceful_close_waits_its_timeout_for_the_peers_answer() {
    let mut pair = Pair::connected(config().with_close_timeout(SECOND * 5));
    // The server no longer reads: the client's CLOSE gets no answer.
    pair.server.pause_input(pair.now);
    pair.server_reads = false;
    pair.client.close(pair.now, CloseCode::NORMAL, "bye").unwrap();
    pair.run_for(SECOND * 4);
    assert!(!pair.client.is_closed(), "gave up before its close timeout");
    pair.run_for(SECOND * 2);
    assert!(pair.client.is_closed());
}
