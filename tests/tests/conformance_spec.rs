//! The rules an independent implementation found undecided in the spec,
//! each now a sentence of docs/PROTOCOL.md and a test that reads like it.

use std::time::Duration;

use bytes::Bytes;
use pulse_proto::frame::{Frame, Hello, Welcome, MAGIC};
use pulse_proto::{
    Admission, CloseCode, Config, Event, Gate, Initiator, Instant, ProtocolError, Role, SendError, Session, State,
    StreamDecoder, Transport,
};
use pulse_tests::{config, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);

fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn closed(events: &[Event]) -> Option<pulse_proto::Closed> {
    events.iter().find_map(|e| match e {
        Event::Closed(c) => Some(c.clone()),
        _ => None,
    })
}

/// Everything a session sends now, as frames (magic stripped).
fn sent(session: &mut Session, now: Instant) -> Vec<Frame> {
    let mut wire = Vec::new();
    while let Some(bytes) = session.poll_transmit(now) {
        wire.extend_from_slice(bytes);
        let n = bytes.len();
        session.advance_transmit(n);
    }
    let mut decoder = StreamDecoder::new(1 << 20);
    if !wire.starts_with(&MAGIC) {
        let _ = decoder.decode(&mut &MAGIC[..]);
    }
    let mut input = Bytes::from(wire);
    std::iter::from_fn(|| decoder.decode(&mut input).ok().flatten()).collect()
}

fn hello_bytes(version_max: u8, max_frame_len: u32) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 1,
        version_max,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut bytes);
    bytes
}

fn frame(frame: Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame.encode(&mut bytes);
    bytes
}

/// A stream server that accepted a raw HELLO at time zero.
fn accepted(config: Config) -> Session {
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    server.handle_input(Instant::ZERO, &hello_bytes(2, 1 << 16)[..]);
    sent(&mut server, Instant::ZERO);
    assert!(matches!(events(&mut server)[..], [Event::Connected(_)]));
    server
}

// §6.2

#[test]
fn the_server_pings_halfway_from_one_and_a_half_intervals_to_the_timeout_from_its_first_ping() {
    // Defaults: I = 10 s, T = 30 s: S = 15 + (30 − 15) / 2 = 22.5 s.
    let mut pair = Pair::with_config(std::sync::Arc::new(Config::default()), Duration::from_millis(1), 1);
    pair.observe();
    pair.connect(SECOND);
    let established = pair.server.last_input_at.unwrap();
    // The client goes quiet: traffic flows only from server to client.
    pair.to_server.cut = true;
    pair.run_for(SECOND * 24);
    let first = pair
        .to_client
        .frames
        .iter()
        .find(|(_, f)| matches!(f, Frame::Ping { .. }))
        .map(|(t, _)| *t - established)
        .expect("the server pinged");
    assert_eq!(first, Duration::from_millis(22_500));
}

// §6.3

#[test]
fn ping_ids_start_at_one_and_a_ping_with_id_zero_is_a_protocol_error_on_a_stream() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(1), 2);
    pair.observe();
    pair.connect(SECOND);
    pair.run_for(SECOND * 3);
    let first_id = pair.to_server.frames.iter().find_map(|(_, f)| match f {
        Frame::Ping { id } => Some(*id),
        _ => None,
    });
    assert_eq!(first_id, Some(1));

    let mut server = accepted(config(Transport::Stream, 1_000, 3_000).as_ref().clone());
    server.handle_input(at(600), &frame(Frame::Ping { id: 0 })[..]);
    let c = closed(&events(&mut server)).expect("closed");
    assert_eq!(c.code, CloseCode::PROTOCOL_ERROR);
    assert!(matches!(c.error, Some(ProtocolError::Malformed { .. })), "{c:?}");
}

#[test]
fn a_stale_ping_on_datagrams_is_ignored_and_ids_wrap_past_the_largest() {
    let config = Config::new(Transport::Datagram);
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    server.handle_datagram(Instant::ZERO, &hello_bytes(2, 4096)[..]);
    sent(&mut server, Instant::ZERO);
    events(&mut server);
    let mut pongs = Vec::new();
    // Each id within half the id space of the last: newer, across the wrap.
    let ids = [1, 0x7FFF_FFFF, u32::MAX - 1, u32::MAX, 1, 2, 1, 0];
    for (i, id) in ids.into_iter().enumerate() {
        let now = at(1_000 * (i as u64 + 1));
        server.handle_datagram(now, &frame(Frame::Ping { id })[..]);
        pongs.extend(sent(&mut server, now).into_iter().filter_map(|f| match f {
            Frame::Pong { id, .. } => Some(id),
            _ => None,
        }));
    }
    assert_eq!(pongs, [1, 0x7FFF_FFFF, u32::MAX - 1, u32::MAX, 1, 2]);
    assert_eq!(server.state(), State::Established);
}

// §6.5

#[test]
fn the_first_probe_goes_out_the_larger_of_the_probe_timeout_and_the_ping_spacing_after_the_unanswered_ping() {
    // I = 1 s: the probe floor is 250 ms; the loopback RTT adds little. The
    // spacing is 500 ms, the larger: probes go 500 ms apart.
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(1), 3);
    pair.observe();
    pair.connect(SECOND);
    pair.run_for(SECOND * 3);
    pair.server.process.frozen = true;
    pair.run_for(SECOND * 4);
    let pings: Vec<Instant> = pair
        .to_server
        .frames
        .iter()
        .filter(|(_, f)| matches!(f, Frame::Ping { .. }))
        .map(|(t, _)| *t)
        .collect();
    let suspected = pair.client.events_where(|e| matches!(e, Event::Suspect { .. }))[0].0;
    let unanswered = *pings.iter().filter(|t| **t < suspected).max().unwrap();
    assert_eq!(suspected - unanswered, Duration::from_millis(250));
    let probes: Vec<Duration> = pings
        .iter()
        .filter(|t| **t > unanswered)
        .map(|t| *t - unanswered)
        .collect();
    assert_eq!(probes[..3], [500, 1000, 1500].map(Duration::from_millis));
}

// §4 against §9

#[test]
fn a_datagram_that_does_not_decode_is_dropped_but_a_welcome_the_client_must_refuse_closes_it() {
    let config = Config::new(Transport::Datagram);
    let mut client = Session::new(config, Role::Client, Instant::ZERO, 1).unwrap();
    sent(&mut client, Instant::ZERO);
    // A frame of an unknown reserved type: dropped whole, nothing else.
    client.handle_datagram(at(1), &[0x9C, 0x50, 0x4C, 0x53, 0x42, 0x00][..]);
    assert_eq!(client.stats().datagrams_dropped, 1);
    assert_eq!(client.state(), State::Handshaking);
    // A WELCOME that decodes but that no server may send: a protocol error.
    let mut bad = MAGIC.to_vec();
    Frame::Welcome(Welcome {
        version: 2,
        interval_ms: 1_000,
        dead_timeout_ms: 1_000, // under twice the interval
        max_frame_len: 4096,
        min_ping_spacing_ms: 500,
        ping_strikes: 2,
        ext: None,
    })
    .encode(&mut bad);
    client.handle_datagram(at(2), &bad[..]);
    let c = closed(&events(&mut client)).expect("closed");
    assert_eq!((c.code, c.initiator), (CloseCode::PROTOCOL_ERROR, Initiator::Local));
}

#[test]
fn a_gate_turns_away_a_hello_with_a_maximum_frame_under_256_statelessly() {
    let gate = Gate::new(Config::new(Transport::Datagram), [3; 16]).unwrap();
    let mut reply = Vec::new();
    let hello = hello_bytes(2, 100);
    let admission = gate.admit(Instant::ZERO, "127.0.0.3:9".parse().unwrap(), &hello, &mut reply);
    assert_eq!(admission, Admission::Reply);
    assert!(reply.len() <= 3 * hello.len());
    let mut body = &reply[MAGIC.len()..];
    let Ok(Some(Frame::Close { code, .. })) = pulse_proto::next_datagram_frame(&mut body, 256) else {
        panic!("not a CLOSE")
    };
    assert_eq!(code, CloseCode::PROTOCOL_ERROR);
}

// §5

#[test]
fn a_server_that_gets_close_before_hello_sends_nothing_not_even_its_magic() {
    let mut server = Session::new(Config::default(), Role::Server, Instant::ZERO, 1).unwrap();
    let mut input = MAGIC.to_vec();
    input.extend(frame(Frame::Close {
        code: CloseCode::GOING_AWAY,
        reason: "never mind".into(),
    }));
    server.handle_input(at(1), &input[..]);
    let c = closed(&events(&mut server)).expect("closed");
    assert_eq!((c.code, c.initiator), (CloseCode::GOING_AWAY, Initiator::Peer));
    assert_eq!(server.poll_transmit(at(1)), None);
}

#[test]
fn after_the_handshake_a_second_hello_or_a_welcome_from_the_client_is_a_protocol_error() {
    let mut server = accepted(Config::default());
    server.handle_input(at(1), &hello_bytes(2, 1 << 16)[MAGIC.len()..]);
    let c = closed(&events(&mut server)).expect("closed");
    assert_eq!(c.error, Some(ProtocolError::Unexpected { frame_type: 0x01 }));

    let mut server = accepted(Config::default());
    let welcome = Frame::Welcome(Welcome {
        version: 2,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 4096,
        min_ping_spacing_ms: 500,
        ping_strikes: 2,
        ext: None,
    });
    server.handle_input(at(1), &frame(welcome)[..]);
    let c = closed(&events(&mut server)).expect("closed");
    assert_eq!(c.error, Some(ProtocolError::Unexpected { frame_type: 0x02 }));
}

#[test]
fn before_its_handshake_a_receiver_refuses_any_frame_over_256_bytes() {
    let mut server = Session::new(Config::default(), Role::Server, Instant::ZERO, 1).unwrap();
    let mut input = MAGIC.to_vec();
    input.extend_from_slice(&[0xA0, 0x41, 0x01]); // an extension frame of 257 bytes
    server.handle_input(at(1), &input[..]);
    let c = closed(&events(&mut server)).expect("closed");
    assert_eq!(c.code, CloseCode::FRAME_TOO_LARGE);
    assert!(server.buffered_bytes() < 64);
}

// §5.1: the server's bounds are stated, so a clamp is never silent.

#[test]
fn a_client_learns_which_value_the_server_changed_and_why() {
    let ask = Config::default().with_timing(Duration::from_millis(500), Duration::from_secs(2));
    let mut pair = Pair::new(ask.into(), Config::default().into(), Duration::from_millis(1), 4);
    pair.connect(SECOND);
    let negotiated = pair.client.session.negotiated().unwrap();
    assert_eq!(negotiated.interval(), SECOND);
    assert_eq!(
        negotiated.server_bounds(),
        Some((SECOND, Duration::from_secs(300), Duration::from_secs(600)))
    );
    let changes: Vec<String> = negotiated.adjustments().map(|a| a.to_string()).collect();
    assert_eq!(changes, ["interval: asked 500ms, agreed 1s (the server's minimum)"]);
}

// §8.2: DATA and the peer's CLOSE in the same read.

#[test]
fn data_before_a_close_in_the_same_read_is_delivered_and_what_follows_the_close_is_ignored() {
    let mut server = accepted(Config::default());
    let mut input = frame(Frame::Data {
        tag: 1,
        payload: Bytes::from_static(b"before"),
    });
    input.extend(frame(Frame::Close {
        code: CloseCode::NORMAL,
        reason: String::new(),
    }));
    input.extend(frame(Frame::Data {
        tag: 2,
        payload: Bytes::from_static(b"after"),
    }));
    server.handle_input(at(5), &input[..]);
    let seen = events(&mut server);
    let messages: Vec<u16> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Message { tag, .. } => Some(*tag),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [1]);
    // The application's answer to that message is refused: the peer is done.
    assert_eq!(server.send(1, &b"reply"[..]), Err(SendError::Closed));
    assert!(matches!(sent(&mut server, at(5))[..], [Frame::Close { .. }]));
    assert!(closed(&events(&mut server)).is_some());
}

// §8.2 and the drive loop: one signal, and nothing lost to a full socket.

#[test]
fn a_graceful_close_is_not_over_until_its_data_and_close_were_taken_by_the_transport() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(1), 5);
    pair.connect(SECOND);
    let now = pair.now;
    let server = &mut pair.server.session;
    server.send(1, vec![7u8; 100_000]).unwrap();
    // The peer's CLOSE arrives while our socket takes only a little at a time.
    server.handle_input(
        now,
        &frame(Frame::Close {
            code: CloseCode::GOING_AWAY,
            reason: String::new(),
        })[..],
    );
    let mut wire = Vec::new();
    let mut closed_after = None;
    for step in 0..1_000 {
        let Some(bytes) = server.poll_transmit(now) else { break };
        let n = bytes.len().min(1000);
        wire.extend_from_slice(&bytes[..n]);
        server.advance_transmit(n);
        let seen = events(server);
        if closed(&seen).is_some() {
            assert!(server.is_closed(), "Closed before is_closed");
            closed_after = Some(step);
        } else {
            assert!(!server.is_closed(), "is_closed without Closed");
        }
    }
    assert!(closed_after.is_some(), "never closed");
    let mut input = Bytes::from(wire);
    let mut decoder = StreamDecoder::new(1 << 20);
    let _ = decoder.decode(&mut &MAGIC[..]);
    let frames: Vec<Frame> = std::iter::from_fn(|| decoder.decode(&mut input).ok().flatten()).collect();
    assert!(
        matches!(&frames[..], [Frame::Data { payload, .. }, Frame::Close { .. }] if payload.len() == 100_000),
        "{} frames",
        frames.len()
    );
}

// §8.5: push back first, and close only a peer that reads nothing.

#[test]
fn a_full_queue_pushes_back_and_says_when_there_is_room_again() {
    let small = Config::default()
        .with_timing(SECOND, SECOND * 3)
        .with_max_queued_bytes(10_000);
    let mut pair = Pair::with_config(small.into(), Duration::from_millis(1), 6);
    pair.connect(SECOND);
    let now = pair.now;
    let server = &mut pair.server.session;
    let mut refused = None;
    for _ in 0..100 {
        if let Err(e) = server.send(1, vec![0u8; 1_000]) {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(SendError::QueueFull { .. })), "{refused:?}");
    assert_eq!(server.state(), State::Established, "the peer is not blamed");
    while let Some(bytes) = server.poll_transmit(now) {
        let n = bytes.len();
        server.advance_transmit(n);
    }
    assert!(events(server).contains(&Event::SendReady));
}

#[test]
fn a_peer_that_reads_nothing_for_the_dead_timeout_is_closed_as_a_slow_reader() {
    let mut server = accepted(config(Transport::Stream, 1_000, 3_000).as_ref().clone());
    server.send(1, vec![0u8; 50_000]).unwrap();
    // The transport takes nothing; the peer keeps pinging us all along.
    let _ = server.poll_transmit(at(1));
    for (id, t) in (500..10_000u64).step_by(500).enumerate() {
        let id = id as u32 + 1;
        server.handle_input(at(t), &frame(Frame::Ping { id })[..]);
        let _ = server.poll_transmit(at(t));
        if server.poll_timeout().is_some_and(|d| d <= at(t)) {
            server.handle_timeout(at(t));
        }
        server.handle_timeout(at(t)); // the timer fires at least this often
        if let Some(c) = closed(&events(&mut server)) {
            assert_eq!(c.code, CloseCode::SLOW_READER);
            assert!(t >= 3_000, "closed after {t} ms, before the dead-peer timeout");
            assert!(t <= 4_000, "closed only after {t} ms");
            return;
        }
    }
    panic!("a peer that reads nothing was never closed");
}

// §9: the receive side of datagram sizes.

#[test]
fn a_datagram_receiver_accepts_datagrams_larger_than_its_own_send_limit() {
    let mut pair = Pair::new(
        Config::new(Transport::Datagram)
            .with_timing(SECOND, SECOND * 3)
            .with_max_datagram_size(8_000)
            .into(),
        Config::new(Transport::Datagram).with_timing(SECOND, SECOND * 3).into(),
        Duration::from_millis(1),
        7,
    );
    pair.connect(SECOND);
    pair.send(Side::Client, 9, vec![1u8; 6_000]).unwrap();
    pair.run_for(SECOND);
    assert_eq!(
        pair.server
            .events_where(|e| matches!(e, Event::Message { tag: 9, .. }))
            .len(),
        1
    );
}

// §6.7 for a driver that stops reading: the silence is ours.

#[test]
fn a_driver_that_stops_reading_gets_no_verdict_until_it_reads_again_and_a_probe_round() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(1), 8);
    pair.connect(SECOND);
    pair.run_for(SECOND * 2);
    let now = pair.now;
    pair.client.session.pause_input(now);
    // The client reads nothing for a minute: its peer's frames are lost to it.
    pair.to_client.cut = true;
    pair.run_for(SECOND * 60);
    assert!(pair
        .client
        .events_where(|e| matches!(e, Event::PeerDead { .. }))
        .is_empty());
    pair.to_client.cut = false;
    let resumed = pair.now;
    pair.client.session.resume_input(resumed);
    pair.run_for(SECOND * 10);
    assert!(pair
        .client
        .events_where(|e| matches!(e, Event::PeerDead { .. }))
        .is_empty());
    assert_eq!(pair.client.session.state(), State::Established);

    // A peer that is really gone is convicted one probe round after resuming.
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(1), 9);
    pair.connect(SECOND);
    let now = pair.now;
    pair.client.session.pause_input(now);
    pair.server.process.frozen = true;
    pair.run_for(SECOND * 30);
    assert!(pair
        .client
        .events_where(|e| matches!(e, Event::PeerDead { .. }))
        .is_empty());
    let resumed = pair.now;
    pair.client.session.resume_input(resumed);
    pair.run_for(SECOND * 5);
    let dead = pair.client.events_where(|e| matches!(e, Event::PeerDead { .. }));
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].0 - resumed <= SECOND,
        "convicted {:?} after resuming",
        dead[0].0 - resumed
    );
}

// §6.7 at fast timings: the stall threshold scales with the interval.

#[test]
fn a_half_second_stall_gives_no_verdict_even_with_a_400_ms_timeout() {
    for seed in 0..20 {
        let mut pair = Pair::with_config(config(Transport::Stream, 200, 400), Duration::from_millis(1), seed);
        pair.connect(SECOND);
        pair.run_for(Duration::from_millis(1_000 + 37 * seed));
        // The client's process (or machine) stops for 500 ms: its clock
        // jumps, nothing of the peer's reached it meanwhile.
        pair.client.process.clock_offset += Duration::from_millis(500);
        pair.run_for(SECOND * 5);
        for end in [&pair.client, &pair.server] {
            assert!(
                end.events_where(|e| matches!(e, Event::PeerDead { .. } | Event::Closed(_)))
                    .is_empty(),
                "seed {seed}: {:?}",
                end.events_where(|e| matches!(e, Event::PeerDead { .. } | Event::Closed(_)))
            );
        }
    }
}

// §6.10: timings change in-session; the server's timeout follows.

#[test]
fn a_retime_is_clamped_by_the_server_and_takes_effect_on_both_sides_at_their_next_timer() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 10);
    pair.connect(SECOND);
    pair.run_for(SECOND * 2);
    let now = pair.now;
    // Longer than the server's maximum timeout allows: clamped to 600 s.
    pair.client
        .session
        .retime(now, Duration::from_secs(5), Duration::from_secs(700))
        .unwrap();
    pair.run_for(SECOND * 10);
    for end in [&pair.client, &pair.server] {
        let retimed = end.events_where(|e| matches!(e, Event::Retimed(_)));
        let Some((_, Event::Retimed(n))) = retimed.first() else {
            panic!("no Retimed event: {:?}", end.events)
        };
        assert_eq!(
            (n.interval(), n.dead_timeout()),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
        assert_eq!(end.session.negotiated().unwrap().interval(), Duration::from_secs(5));
    }
    // The server's dead-peer timeout is the new one: a frozen client is
    // convicted 600 s after its last frame, not 3 s.
    pair.client.process.frozen = true;
    pair.run_for(SECOND * 700);
    let dead = pair.server.events_where(|e| matches!(e, Event::PeerDead { .. }));
    assert_eq!(dead.len(), 1);
    let after = dead[0].0 - pair.server.last_input_at.unwrap();
    assert!(
        after >= Duration::from_secs(600) && after <= Duration::from_millis(600_001),
        "{after:?}"
    );
}

#[test]
fn a_server_that_refuses_answers_with_the_handshakes_values() {
    let server = Config::default()
        .with_timing(SECOND, SECOND * 3)
        .with_allow_retime(false);
    let mut pair = Pair::new(
        config(Transport::Stream, 1_000, 3_000),
        server.into(),
        Duration::from_millis(5),
        11,
    );
    pair.connect(SECOND);
    let now = pair.now;
    pair.client.session.retime(now, SECOND * 5, SECOND * 15).unwrap();
    pair.run_for(SECOND * 10);
    let n = pair.client.session.negotiated().unwrap();
    assert_eq!((n.interval(), n.dead_timeout()), (SECOND, SECOND * 3));
    assert!(pair.client.events_where(|e| matches!(e, Event::Closed(_))).is_empty());
}

#[test]
fn a_retime_request_lost_on_the_way_goes_again_with_the_next_heartbeat() {
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 13);
    pair.connect(SECOND);
    let now = pair.now;
    pair.client.session.retime(now, SECOND * 2, SECOND * 6).unwrap();
    // The request is lost; the link is back before the next PING.
    pair.to_server.cut = true;
    pair.run_for(Duration::from_millis(50));
    pair.to_server.cut = false;
    pair.run_for(SECOND * 5);
    let retimed = pair.client.events_where(|e| matches!(e, Event::Retimed(_)));
    assert_eq!(retimed.len(), 1, "{:?}", pair.client.events);
    // Sent again with the next PING (at most an interval and its jitter
    // later), applied at the client's next timer after the answer.
    assert!(retimed[0].0 - now <= SECOND * 3, "{:?}", retimed[0].0 - now);
    assert_eq!(pair.client.session.negotiated().unwrap().interval(), SECOND * 2);
}

#[test]
fn a_second_retime_soon_after_the_first_is_answered_too() {
    // The server answers one request per min_ping_spacing and ignores a
    // second that comes sooner; the client sends it again with its next
    // PING, and both ends end on the second request's timings.
    let mut pair = Pair::with_config(config(Transport::Stream, 1_000, 3_000), Duration::from_millis(5), 14);
    pair.connect(SECOND);
    let now = pair.now;
    pair.client.session.retime(now, SECOND * 2, SECOND * 6).unwrap();
    pair.run_for(Duration::from_millis(20));
    let now = pair.now;
    pair.client.session.retime(now, SECOND * 4, SECOND * 12).unwrap();
    pair.run_for(SECOND * 10);
    for end in [&pair.client, &pair.server] {
        let n = end.session.negotiated().unwrap();
        assert_eq!((n.interval(), n.dead_timeout()), (SECOND * 4, SECOND * 12));
    }
}

#[test]
fn a_peer_that_never_answers_a_retime_keeps_the_handshakes_timings() {
    // RETIME is an extension frame: a peer that does not know it skips it.
    let mut server = accepted(config(Transport::Stream, 1_000, 3_000).as_ref().clone());
    server.handle_input(at(500), &[0x80, 0x0A, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0x3A, 0x98][..]);
    // A server that knows it answers with what it agreed; here, its range
    // allows 5 s / 15 s.
    let answer = sent(&mut server, at(500));
    assert!(
        matches!(
            answer[..],
            [Frame::Retime {
                id: 1,
                interval_ms: 5_000,
                dead_timeout_ms: 15_000
            }]
        ),
        "{answer:?}"
    );
    // A client whose request is never answered sends it again with its
    // next three scheduled PINGs, then keeps its values and lives on.
    let mut client = Session::new(config(Transport::Stream, 1_000, 3_000), Role::Client, Instant::ZERO, 12).unwrap();
    sent(&mut client, Instant::ZERO);
    let mut welcome = MAGIC.to_vec();
    Frame::Welcome(Welcome {
        version: 2,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 1 << 16,
        min_ping_spacing_ms: 100,
        ping_strikes: 2,
        ext: None,
    })
    .encode(&mut welcome);
    client.handle_input(at(1), &welcome[..]);
    client.retime(at(1), SECOND * 5, SECOND * 15).unwrap();
    let mut retimes = 0;
    for ms in (1..20_000).step_by(10) {
        let now = at(ms);
        if client.poll_timeout().is_some_and(|t| t <= now) {
            client.handle_timeout(now);
        }
        for frame in sent(&mut client, now) {
            match frame {
                // A peer that answers PINGs and skips the extension.
                Frame::Ping { id } => client.handle_input(now, &self::frame(Frame::Pong { id, hold_us: 0 })[..]),
                Frame::Retime { .. } => retimes += 1,
                _ => {}
            }
        }
    }
    assert_eq!(retimes, 4, "the request and three resends");
    assert_eq!(client.negotiated().unwrap().interval(), SECOND);
    assert_eq!(closed(&events(&mut client)), None);
}
