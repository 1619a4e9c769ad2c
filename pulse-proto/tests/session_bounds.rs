//! The session's bounds and counts, at their edges: what the stats count,
//! the frame limit before the handshake, the send queue's limit, the stall
//! threshold and the grace after a stall, input after the peer's CLOSE, a
//! WELCOME where none belongs, a reset that ends an adaptive client's idle
//! gap, and renegotiation's spacing, strays and outcome.

mod common;

use core::time::Duration;

use bytes::Bytes;
use common::pair::Pair;
use common::{at, close_code, closed, encode, established, events, hello, stream, take, MS, SECOND};
use pulse_proto::frame::{data_overhead, Frame, Welcome, MAGIC};
use pulse_proto::{AdaptiveConfig, CloseCode, Config, Event, Instant, Role, SendError, Session, State, Transport};

// Counts.

#[test]
fn a_datagram_sessions_bytes_received_count_every_datagram() {
    let config = Config::new(Transport::Datagram).with_timing(SECOND, SECOND * 3);
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    let hello = hello(1, 2, 1024);
    server.handle_datagram(at(1), &hello[..]);
    server.handle_datagram(at(2), &hello[..]);
    assert_eq!(server.stats().bytes_received, 2 * hello.len() as u64);
}

#[test]
fn each_message_received_is_counted() {
    let mut pair = Pair::connected(stream());
    for n in 0..3u8 {
        pair.client.send(1, Bytes::from(vec![n; 10])).unwrap();
    }
    pair.run_for(MS * 10);
    assert_eq!(pair.server.stats().data_received, 3);
}

// Limits.

#[test]
fn before_the_handshake_a_frame_larger_than_a_handshake_needs_is_refused_unread() {
    // The config allows 64 KiB frames, but only once the handshake is done.
    let config = stream().with_max_frame_len(64 * 1024);
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    let mut input = MAGIC.to_vec();
    let data = encode(Frame::Data {
        tag: 1,
        payload: Bytes::from(vec![0u8; 1000]),
    });
    input.extend(&data[..8]); // the header, and no more of the body
    server.handle_input(at(1), &input[..]);
    assert_eq!(close_code(&mut server), Some(CloseCode::FRAME_TOO_LARGE));
}

#[test]
fn a_message_that_fills_the_queue_exactly_is_queued_and_one_byte_more_is_not() {
    let config = stream().with_max_queued_bytes(4096);
    let first = Bytes::from(vec![1u8; 1000]);
    let queued = data_overhead(first.len()) + first.len();
    // The largest payload whose frame still fits beside the first.
    let mut fits = 4096 - queued;
    while data_overhead(fits) + fits > 4096 - queued {
        fits -= 1;
    }
    for (payload, accepted) in [(fits, true), (fits + 1, false)] {
        let (mut client, _server) = established(config.clone(), 1);
        client.send(1, first.clone()).unwrap();
        let result = client.send(1, Bytes::from(vec![2u8; payload]));
        assert_eq!(result.is_ok(), accepted, "{payload} bytes: {result:?}");
        if !accepted {
            assert!(matches!(result, Err(SendError::QueueFull { .. })), "{result:?}");
        }
    }
}

// Our own stall.

#[test]
fn a_timer_late_by_exactly_the_stall_threshold_is_not_a_stall_and_later_is() {
    let threshold = stream().stall_threshold_for(SECOND);
    for (late, stalls) in [(Duration::ZERO, 0), (MS, 1)] {
        let (mut client, _server) = established(stream(), 1);
        let deadline = client.poll_timeout().unwrap();
        client.handle_timeout(deadline + threshold + late);
        assert_eq!(client.stats().own_stalls, stalls, "late by the threshold + {late:?}");
    }
}

// Input after the end.

#[test]
fn frames_after_the_peers_close_are_not_read() {
    let (mut client, mut server) = established(stream(), 1);
    // The server has output waiting, so it stays Closing after the
    // client's CLOSE: our answer goes last.
    server.send(1, Bytes::from_static(b"still queued")).unwrap();
    client.close(at(10), CloseCode::NORMAL, "bye").unwrap();
    let close = take(&mut client, at(10));
    for piece in &close {
        server.handle_input(at(11), &piece[..]);
    }
    assert_eq!(server.state(), State::Closing);
    events(&mut server);
    let after = encode(Frame::Data {
        tag: 1,
        payload: Bytes::from_static(b"after the close"),
    });
    server.handle_input(at(12), &after[..]);
    let got = events(&mut server);
    assert!(!got.iter().any(|e| matches!(e, Event::Message { .. })), "{got:?}");
}

#[test]
fn a_welcome_on_an_established_stream_is_a_protocol_error() {
    let (mut client, _server) = established(stream(), 1);
    let welcome = encode(Frame::Welcome(Welcome {
        version: 2,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 1024,
        min_ping_spacing_ms: 500,
        ping_strikes: 2,
        ext: None,
    }));
    client.handle_input(at(10), &welcome[..]);
    assert_eq!(close_code(&mut client), Some(CloseCode::PROTOCOL_ERROR));
}

// The adaptive client.

#[test]
fn a_reset_while_the_schedules_ping_awaits_its_answer_counts_against_that_gap() {
    let mut adaptive = AdaptiveConfig::default();
    adaptive.start = SECOND;
    let config = stream()
        .with_min_interval(MS * 100)
        .with_min_ping_spacing(MS * 50)
        .with_adaptive(Some(adaptive));
    let mut pair = Pair::connected(config);
    pair.run_for(SECOND * 3);
    // The path forgets the connection: the client's next PING leaves, and
    // what comes back is a reset, not the PONG.
    pair.client_reads = false;
    let pings = pair.client.stats().pings_sent;
    for _ in 0..300 {
        pair.run_for(MS * 10);
        if pair.client.stats().pings_sent > pings {
            break;
        }
    }
    assert!(pair.client.stats().pings_sent > pings, "no PING");
    pair.client.handle_eof(pair.now);
    assert_eq!(closed(&events(&mut pair.client)).map(|c| c.code), Some(CloseCode::LOST));
    let learned = pair.client.learned().unwrap();
    assert!(learned.failures >= 1 || learned.bad_ms > 0, "{learned:?}");
}

#[test]
fn before_the_handshake_a_datagrams_frame_larger_than_a_handshake_needs_is_refused() {
    let config = Config::new(Transport::Datagram)
        .with_timing(SECOND, SECOND * 3)
        .with_max_frame_len(64 * 1024);
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    let mut datagram = MAGIC.to_vec();
    datagram.extend(encode(Frame::Data {
        tag: 1,
        payload: Bytes::from(vec![0u8; 1000]),
    }));
    server.handle_datagram(at(1), &datagram[..]);
    // Dropped whole, unread: not a frame received, nor one skipped.
    assert_eq!(server.stats().datagrams_dropped, 1);
    assert_eq!(server.stats().frames_received, 0);
    assert_eq!(server.state(), State::Handshaking);
}

#[test]
fn a_closing_session_answers_no_ping() {
    let (mut client, _server) = established(stream(), 1);
    client.close(at(10), CloseCode::NORMAL, "bye").unwrap();
    take(&mut client, at(10));
    client.handle_input(at(11), &encode(Frame::Ping { id: 1 })[..]);
    let out = take(&mut client, at(11));
    assert!(out.is_empty(), "sent while closing: {out:?}");
    assert_eq!(client.stats().pings_received, 1);
}

#[test]
fn after_our_own_stall_no_verdict_comes_before_the_probe_had_its_spacing() {
    let (mut client, _server) = established(stream(), 1);
    // The peer is silent from the start; our process stalls ten seconds.
    let late = client.poll_timeout().unwrap() + SECOND * 10;
    let spacing = client.negotiated().unwrap().min_ping_spacing();
    let mut now = late;
    let mut verdict = None;
    for _ in 0..100 {
        client.handle_timeout(now);
        take(&mut client, now);
        if events(&mut client).iter().any(|e| matches!(e, Event::PeerDead { .. })) {
            verdict = Some(now);
            break;
        }
        now = client.poll_timeout().unwrap();
    }
    let verdict = verdict.expect("a silent peer is convicted in the end");
    assert!(
        verdict >= late + spacing,
        "convicted {:?} after the stall",
        verdict - late
    );
}

// Renegotiation.

fn retime(id: u16) -> Vec<u8> {
    encode(Frame::Retime {
        id,
        interval_ms: 2_000,
        dead_timeout_ms: 6_000,
    })
}

fn retimes_sent(session: &mut Session, now: Instant) -> usize {
    common::stream_frames(&take(session, now))
        .iter()
        .filter(|f| matches!(f, Frame::Retime { .. }))
        .count()
}

#[test]
fn a_second_retime_one_ping_spacing_after_the_answer_is_answered() {
    let (_client, mut server) = established(stream(), 1);
    let spacing = server.negotiated().unwrap().min_ping_spacing();
    server.handle_input(at(100), &retime(1)[..]);
    assert_eq!(retimes_sent(&mut server, at(100)), 1);
    let exactly = at(100) + spacing;
    server.handle_input(exactly - MS, &retime(2)[..]);
    assert_eq!(retimes_sent(&mut server, exactly - MS), 0);
    server.handle_input(exactly, &retime(2)[..]);
    assert_eq!(retimes_sent(&mut server, exactly), 1);
}

#[test]
fn a_retime_answer_to_no_request_is_skipped_and_counted() {
    let (mut client, _server) = established(stream(), 1);
    client.handle_input(at(100), &retime(7)[..]);
    assert_eq!(client.stats().frames_ignored, 1);
    assert_eq!(client.state(), State::Established);
}

#[test]
fn once_a_retime_is_agreed_the_client_asks_for_it_from_then_on() {
    let mut pair = Pair::connected(stream());
    pair.client.retime(pair.now, SECOND * 2, SECOND * 6).unwrap();
    pair.run_for(SECOND * 3);
    let n = pair.client.negotiated().unwrap();
    assert_eq!((n.interval(), n.dead_timeout()), (SECOND * 2, SECOND * 6));
    assert_eq!(
        (n.requested_interval(), n.requested_dead_timeout()),
        (SECOND * 2, SECOND * 6)
    );
    assert_eq!(pair.client.stats().frames_ignored, 0);
}
