//! Handshake, abuse protection, output ordering, stalls and close: the
//! rules of docs/PROTOCOL.md that need a misbehaving or raw peer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::frame::{frame_type, Frame, Hello, MAGIC};
use pulse_proto::{
    CloseCode, Config, Event, Initiator, Instant, ProtocolError, Role, SendError, Session, State, StreamDecoder,
    Transport,
};
use pulse_tests::{config, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

/// Everything the session wants to send now, as the frames it holds.
fn sent_frames(session: &mut Session, now: Instant, decoder: &mut StreamDecoder) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(bytes) = session.poll_transmit(now) {
        let mut input = Bytes::copy_from_slice(bytes);
        session.advance_transmit(input.len());
        while let Some(frame) = decoder.decode(&mut input).expect("session sent valid frames") {
            frames.push(frame);
        }
    }
    frames
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn closed_with(events: &[Event]) -> Option<(CloseCode, Initiator, Option<ProtocolError>)> {
    events.iter().find_map(|e| match e {
        Event::Closed(c) => Some((c.code, c.initiator, c.error.clone())),
        _ => None,
    })
}

fn sent_close(frames: &[Frame]) -> Option<CloseCode> {
    frames.iter().find_map(|f| match f {
        Frame::Close { code, .. } => Some(*code),
        _ => None,
    })
}

fn hello(version_min: u8, version_max: u8) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min,
        version_max,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 1 << 16,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut bytes);
    bytes
}

fn server(config: Config) -> Session {
    Session::new(config, Role::Server, Instant::ZERO, 1).unwrap()
}

/// A server that accepted a raw client's HELLO at time zero.
fn accepted_server(config: Config) -> (Session, StreamDecoder) {
    let mut server = server(config);
    server.handle_input(Instant::ZERO, &hello(1, 1)[..]);
    let mut decoder = StreamDecoder::new(1 << 20);
    let frames = sent_frames(&mut server, Instant::ZERO, &mut decoder);
    assert!(matches!(frames[..], [Frame::Welcome(_)]), "{frames:?}");
    assert!(matches!(events(&mut server)[..], [Event::Connected(_)]));
    (server, decoder)
}

fn ping(id: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    Frame::Ping { id }.encode(&mut bytes);
    bytes
}

#[test]
fn an_http_client_gets_a_clear_error_and_a_close_not_a_hang() {
    let mut server = server(Config::default());
    server.handle_input(Instant::ZERO, &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let (code, initiator, error) = closed_with(&events(&mut server)).expect("closed");
    assert_eq!((code, initiator), (CloseCode::PROTOCOL_ERROR, Initiator::Local));
    let error = error.unwrap();
    assert!(matches!(error, ProtocolError::BadMagic { .. }));
    assert!(error.to_string().contains("not a pulse peer"), "{error}");
    let frames = sent_frames(&mut server, Instant::ZERO, &mut StreamDecoder::new(1 << 20));
    assert_eq!(sent_close(&frames), Some(CloseCode::PROTOCOL_ERROR));
    assert!(server.is_closed());
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn an_unsupported_version_is_refused_with_its_code() {
    let mut server = server(Config::default());
    server.handle_input(Instant::ZERO, &hello(3, 9)[..]);
    let (code, _, error) = closed_with(&events(&mut server)).unwrap();
    assert_eq!(code, CloseCode::UNSUPPORTED_VERSION);
    assert_eq!(error, Some(ProtocolError::UnsupportedVersion { min: 3, max: 9 }));
    let frames = sent_frames(&mut server, Instant::ZERO, &mut StreamDecoder::new(1 << 20));
    assert_eq!(sent_close(&frames), Some(CloseCode::UNSUPPORTED_VERSION));
}

#[test]
fn a_client_told_no_by_the_server_reports_the_servers_code() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 1);
    // Rewrite the client's HELLO on the wire into one offering version 9 only.
    let mut server = server(Config::default());
    server.handle_input(Instant::ZERO, &hello(9, 9)[..]);
    let mut answer = Vec::new();
    while let Some(bytes) = server.poll_transmit(Instant::ZERO) {
        answer.extend_from_slice(bytes);
        let n = bytes.len();
        server.advance_transmit(n);
    }
    pair.client.session.handle_input(Instant::ZERO, &answer[..]);
    let (code, initiator, _) = closed_with(&events(&mut pair.client.session)).unwrap();
    assert_eq!((code, initiator), (CloseCode::UNSUPPORTED_VERSION, Initiator::Peer));
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_with_frame_too_large() {
    let (mut server, mut decoder) = accepted_server(Config::default().with_max_frame_len(4096));
    let mut big = vec![frame_type::DATA, 0x80, 0x10, 0x00, 0x00]; // length 1 MiB
    big.extend_from_slice(&[0; 64]);
    server.handle_input(at(1), &big[..]);
    let (code, _, error) = closed_with(&events(&mut server)).unwrap();
    assert_eq!(code, CloseCode::FRAME_TOO_LARGE);
    assert_eq!(
        error,
        Some(ProtocolError::FrameTooLarge {
            len: 1 << 20,
            max: 4096
        })
    );
    assert_eq!(
        sent_close(&sent_frames(&mut server, at(1), &mut decoder)),
        Some(CloseCode::FRAME_TOO_LARGE)
    );
    assert!(server.buffered_bytes() < 64, "held {} bytes", server.buffered_bytes());
}

#[test]
fn an_unknown_reserved_frame_type_is_a_protocol_error_but_an_extension_is_skipped() {
    let (mut server, _) = accepted_server(Config::default());
    server.handle_input(at(1), &[0xA7, 0x02, 0xAB, 0xCD][..]);
    assert_eq!(server.state(), State::Established);
    assert_eq!(server.stats().frames_ignored, 1);
    server.handle_input(at(2), &[0x42, 0x00][..]);
    let (code, _, error) = closed_with(&events(&mut server)).unwrap();
    assert_eq!(
        (code, error),
        (CloseCode::PROTOCOL_ERROR, Some(ProtocolError::UnknownFrameType(0x42)))
    );
}

#[test]
fn a_ping_flooder_is_closed_with_too_many_pings() {
    let (mut server, mut decoder) = accepted_server(Config::default());
    let mut closed = None;
    for i in 0..100u32 {
        server.handle_input(at(10 * u64::from(i) + 1), &ping(i + 1)[..]);
        if let Some(c) = closed_with(&events(&mut server)) {
            closed = Some((i, c));
            break;
        }
        sent_frames(&mut server, at(10 * u64::from(i) + 1), &mut decoder);
    }
    let (i, (code, _, error)) = closed.expect("flooder was never closed");
    // PINGs 10 ms apart against a 500 ms spacing: each runs 490 ms ahead of
    // the policy. The allowance (2 T + 2 m = 7 s, T = 3 s) and the first
    // PING's own 500 ms make 15 conform; two strikes more are tolerated.
    assert_eq!(i, 17, "the allowance and two strikes are tolerated");
    assert_eq!(code, CloseCode::TOO_MANY_PINGS);
    assert_eq!(error, Some(ProtocolError::TooManyPings { strikes: 3 }));
    assert_eq!(
        sent_close(&sent_frames(&mut server, at(100), &mut decoder)),
        Some(CloseCode::TOO_MANY_PINGS)
    );
}

#[test]
fn a_client_that_keeps_to_the_stated_policy_never_earns_a_strike_even_while_probing() {
    // The client probes as fast as it may: the server is unreachable one way.
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 60_000), Duration::from_millis(1), 3);
    pair.connect(SECOND);
    pair.to_client.cut = true;
    pair.run_for(SECOND * 50);
    assert!(pair.client.session.stats().pings_sent >= 50);
    assert_eq!(
        pair.server.session.state(),
        State::Established,
        "{:?}",
        pair.server.events
    );
}

#[test]
fn a_pong_goes_out_before_a_mebibyte_of_data_queued_earlier() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 2);
    pair.connect(SECOND);
    let client = &mut pair.client.session;
    for _ in 0..16 {
        client.send(1, vec![0xEE; 64 * 1024 - 7]).unwrap(); // 64 KiB frames
    }
    assert_eq!(client.queued_bytes(), 1 << 20);
    client.handle_input(pair.now, &ping(77)[..]);
    let first = client.poll_transmit(pair.now).unwrap();
    let mut decoder = StreamDecoder::new(1 << 20);
    let mut with_magic = Bytes::from([&MAGIC[..], first].concat());
    let frame = decoder.decode(&mut with_magic).unwrap().unwrap();
    assert!(matches!(frame, Frame::Pong { id: 77, .. }), "{frame:?}");
}

#[test]
fn a_pong_waits_only_for_the_frame_already_begun() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 2);
    pair.connect(SECOND);
    let now = pair.now;
    let client = &mut pair.client.session;
    client.send(1, vec![1; 100_000]).unwrap();
    client.send(1, vec![2; 100_000]).unwrap();
    let mut wire = MAGIC.to_vec();
    let first = client.poll_transmit(now).unwrap();
    wire.extend_from_slice(first);
    let n = first.len();
    client.advance_transmit(n); // the stream is now inside the first frame
    client.handle_input(now, &ping(5)[..]);
    while let Some(bytes) = client.poll_transmit(now) {
        wire.extend_from_slice(bytes);
        let n = bytes.len();
        client.advance_transmit(n);
    }
    let mut input = Bytes::from(wire);
    let mut decoder = StreamDecoder::new(1 << 20);
    let mut order = Vec::new();
    while let Some(frame) = decoder.decode(&mut input).unwrap() {
        order.push(match frame {
            Frame::Data { payload, .. } => payload[0],
            Frame::Pong { .. } => 0,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(order, [1, 0, 2]);
}

#[test]
fn a_late_timer_with_the_peers_frame_right_after_gives_no_verdict() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 4);
    pair.connect(SECOND);
    pair.run_for(SECOND * 5);
    let now = pair.now;
    let client = &mut pair.client.session;
    let deadline = client.poll_timeout().unwrap();
    // Our process was stopped for a minute; the peer's PING waits in our socket.
    let late = deadline + Duration::from_secs(60);
    client.handle_timeout(late);
    client.handle_input(late, &ping(1_000)[..]);
    let events = events(client);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::PeerDead { .. } | Event::Closed(_))),
        "{events:?}"
    );
    assert_eq!(client.state(), State::Established);
    let _ = now;
}

#[test]
fn a_late_timer_still_convicts_a_peer_that_stays_silent_after_one_probe_round() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 4);
    pair.connect(SECOND);
    pair.run_for(SECOND * 5);
    pair.server.process.frozen = true;
    let client = &mut pair.client.session;
    let late = client.poll_timeout().unwrap() + Duration::from_secs(60);
    client.handle_timeout(late);
    let mut decoder = StreamDecoder::new(1 << 20);
    let _ = decoder.decode(&mut &MAGIC[..]);
    let probe = sent_frames(client, late, &mut decoder);
    assert!(
        matches!(probe[..], [Frame::Ping { .. }]),
        "a probe goes out first: {probe:?}"
    );
    assert!(!events(client).iter().any(|e| matches!(e, Event::PeerDead { .. })));
    // The probe goes unanswered: suspicion, then the verdict, one probe
    // round (the larger of the probe timeout and the ping spacing) later.
    let mut seen = Vec::new();
    for _ in 0..10 {
        let Some(next) = client.poll_timeout() else { break };
        assert!(next > late, "a deadline before the probe left");
        client.handle_timeout(next);
        seen.extend(events(client).into_iter().map(|e| (next - late, e)));
    }
    let dead_after = seen
        .iter()
        .find_map(|(after, e)| matches!(e, Event::PeerDead { .. }).then_some(*after))
        .expect("no verdict after the probe round");
    assert!(dead_after <= SECOND * 2, "verdict {dead_after:?} after the late timer");
    let suspect = seen.iter().position(|(_, e)| matches!(e, Event::Suspect { .. }));
    let dead = seen.iter().position(|(_, e)| matches!(e, Event::PeerDead { .. }));
    assert!(suspect < dead, "{seen:?}");
}

#[test]
fn a_handshake_not_completed_in_time_is_closed() {
    let mut server = server(Config::default().with_handshake_timeout(Duration::from_secs(2)));
    // A client that trickles its HELLO one byte a second.
    let hello = hello(1, 1);
    let mut t = 0;
    for byte in &hello {
        t += 1_000;
        server.handle_timeout(at(t));
        if server.is_closed() {
            break;
        }
        server.handle_input(at(t), &[*byte][..]);
    }
    assert_eq!(server.poll_timeout(), None);
    let (code, initiator, _) = closed_with(&events(&mut server)).unwrap();
    assert_eq!((code, initiator), (CloseCode::HANDSHAKE_TIMEOUT, Initiator::Local));
    assert_eq!(t, 2_000);
}

#[test]
fn a_graceful_close_sends_queued_data_first_and_both_sides_report_it() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 5);
    pair.connect(SECOND);
    pair.client.session.send(9, &b"last words"[..]).unwrap();
    pair.close(Side::Client, CloseCode::GOING_AWAY, "restarting");
    assert_eq!(pair.client.session.send(9, &b"too late"[..]), Err(SendError::Closed));
    pair.run_for(SECOND);
    let server_events: Vec<Event> = pair.server.events.iter().map(|(_, e)| e.clone()).collect();
    let message = server_events
        .iter()
        .position(|e| matches!(e, Event::Message { tag: 9, .. }))
        .expect("data arrived");
    let closed = server_events.iter().position(|e| matches!(e, Event::Closed(c) if c.code == CloseCode::GOING_AWAY && c.initiator == Initiator::Peer && c.reason == "restarting")).expect("server saw the close");
    assert!(message < closed);
    let (code, initiator, _) =
        closed_with(&pair.client.events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>()).unwrap();
    assert_eq!((code, initiator), (CloseCode::GOING_AWAY, Initiator::Local));
    assert!(pair.client.session.is_closed() && pair.server.session.is_closed());
}

#[test]
fn a_peer_that_never_answers_the_close_is_given_up_on_after_the_close_timeout() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 6);
    pair.connect(SECOND);
    pair.server.process.frozen = true;
    let closed_at = pair.now;
    pair.close(Side::Client, CloseCode::NORMAL, "");
    pair.run_for(SECOND * 30);
    let closed = pair.client.events_where(|e| matches!(e, Event::Closed(_)));
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].0 - closed_at, Config::default().close_timeout);
}

#[test]
fn a_transport_that_ends_without_close_is_reported_at_once() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 7);
    pair.connect(SECOND);
    let now = pair.now;
    pair.client.session.handle_eof(now);
    let (code, initiator, _) = closed_with(&events(&mut pair.client.session)).unwrap();
    assert_eq!((code, initiator), (CloseCode::LOST, Initiator::Peer));
    assert!(pair.client.session.is_closed());
    assert_eq!(pair.client.session.poll_transmit(now), None);
}

#[test]
fn send_refuses_what_the_peer_cannot_take_and_what_would_overfill_the_queue() {
    let client_config = Arc::new(Config::default().with_max_queued_bytes(100_000));
    let server_config = Arc::new(Config::default().with_max_frame_len(1_000));
    let mut pair = Pair::new(client_config, server_config, Duration::from_millis(1), 8);
    assert_eq!(pair.client.session.send(1, &b"early"[..]), Err(SendError::NotConnected));
    pair.connect(SECOND);
    let client = &mut pair.client.session;
    assert_eq!(
        client.send(1, vec![0; 999]),
        Err(SendError::TooLarge { len: 999, max: 998 })
    );
    // Each 998-byte message is a 1,003-byte frame: 99 fit in 100,000.
    for _ in 0..99 {
        client.send(1, vec![0; 998]).unwrap();
    }
    assert_eq!(
        client.send(1, vec![0; 998]),
        Err(SendError::QueueFull {
            queued: 99 * 1003,
            max: 100_000
        })
    );
}

#[test]
fn nothing_is_accepted_after_close() {
    let (mut server, _) = accepted_server(Config::default());
    server.handle_eof(at(1));
    let _ = events(&mut server);
    server.handle_input(at(2), &ping(1)[..]);
    server.handle_timeout(at(100_000));
    assert!(events(&mut server).is_empty());
    assert_eq!(server.send(1, &b"x"[..]), Err(SendError::Closed));
}
