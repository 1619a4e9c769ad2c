//! The session at its edges, frame by frame: the datagram handshake's lost
//! and repeated messages, PING ids, the heartbeat schedule, and what an
//! adaptive client asks for. Each test drives sessions by hand and reads
//! the frames they send.

mod common;

use core::time::Duration;

use bytes::Bytes;
use common::{
    at, close_code, datagram, datagram_frames as frames, encode, established, events, hello, stream, take, MS, SECOND,
};
use pulse_proto::frame::{Frame, MAGIC};
use pulse_proto::{AdaptiveConfig, CloseCode, Config, Event, Instant, Learned, Role, Session, State, StreamDecoder};

/// A stream server that accepted a HELLO for 1 s / 3 s at time zero.
fn server_with_hello(config: Config) -> Session {
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 1).unwrap();
    let hello = hello(1, 2, 1024);
    server.handle_input(Instant::ZERO, &hello[..]);
    take(&mut server, Instant::ZERO);
    events(&mut server);
    server
}

// The datagram handshake.

#[test]
fn a_lost_welcome_is_sent_again_when_the_hello_comes_again() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    let hello = take(&mut client, at(0));
    for d in &hello {
        server.handle_datagram(at(1), &d[..]);
    }
    assert_eq!(server.state(), State::Established);
    let lost = take(&mut server, at(1));
    assert!(frames(&lost).iter().any(|f| matches!(f, Frame::Welcome(_))));
    // The WELCOME is lost; the client's retransmission comes when its timer
    // says, and the server answers it with the WELCOME again.
    let again = client.poll_timeout().unwrap();
    assert!(again <= at(1_001), "{again:?}");
    client.handle_timeout(again);
    let hello_again = take(&mut client, again);
    assert!(frames(&hello_again).iter().any(|f| matches!(f, Frame::Hello(_))));
    for d in &hello_again {
        server.handle_datagram(again, &d[..]);
    }
    let welcome_again = take(&mut server, again);
    assert!(
        frames(&welcome_again).iter().any(|f| matches!(f, Frame::Welcome(_))),
        "{:?}",
        frames(&welcome_again)
    );
    for d in &welcome_again {
        client.handle_datagram(again, &d[..]);
    }
    assert_eq!(client.state(), State::Established);
}

#[test]
fn a_repeated_hello_is_answered_no_faster_than_the_ping_spacing() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    let hello = take(&mut client, at(0));
    for d in &hello {
        server.handle_datagram(at(1), &d[..]);
    }
    take(&mut server, at(1));
    // The same HELLO again at once (duplicated by the network): no answer.
    for d in &hello {
        server.handle_datagram(at(2), &d[..]);
    }
    assert!(frames(&take(&mut server, at(2))).is_empty());
    // Once the spacing (500 ms here) has passed, it is answered.
    for d in &hello {
        server.handle_datagram(at(600), &d[..]);
    }
    assert!(frames(&take(&mut server, at(600)))
        .iter()
        .any(|f| matches!(f, Frame::Welcome(_))));
}

#[test]
fn a_datagram_client_answers_a_retry_with_its_cookie_at_once() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let cookie = pulse_proto::frame::Cookie::new(&[7u8; 16]).unwrap();
    let mut retry = MAGIC.to_vec();
    Frame::Retry { attempt: 0, cookie }.encode(&mut retry);
    client.handle_datagram(at(5), &retry[..]);
    let answer = frames(&take(&mut client, at(5)));
    let echoed = answer.iter().find_map(|f| match f {
        Frame::Hello(h) => h.cookie,
        _ => None,
    });
    assert_eq!(echoed, Some(cookie));
    // And its next retransmission is timed afresh from the RTT it measured
    // (5 ms), not from its first send.
    let next = client.poll_timeout().unwrap();
    assert!(next > at(5) && next <= at(5) + SECOND, "{next:?}");
}

#[test]
fn a_stream_client_refuses_a_retry() {
    let mut client = Session::new(stream(), Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let cookie = pulse_proto::frame::Cookie::new(&[7u8; 16]).unwrap();
    let mut retry = MAGIC.to_vec();
    Frame::Retry { attempt: 0, cookie }.encode(&mut retry);
    client.handle_input(at(5), &retry[..]);
    assert!(client.is_closed());
    assert_eq!(close_code(&mut client), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn an_extension_frame_during_the_handshake_is_skipped() {
    let mut client = Session::new(stream(), Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let mut input = MAGIC.to_vec();
    input.extend_from_slice(&[0x81, 0x02, 0xAB, 0xCD]); // an unknown extension
    client.handle_input(at(5), &input[..]);
    assert_eq!(client.state(), State::Handshaking);
    assert!(!client.is_closed());
}

#[test]
fn the_handshake_gives_up_at_its_timeout_and_not_before() {
    let config = stream().with_handshake_timeout(SECOND * 2);
    let mut client = Session::new(config, Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let mut now = at(0);
    for _ in 0..100 {
        let Some(next) = client.poll_timeout() else { break };
        now = next;
        client.handle_timeout(now);
        take(&mut client, now);
        if client.is_closed() {
            break;
        }
    }
    assert!(client.is_closed());
    assert_eq!(now, at(2_000));
    assert_eq!(close_code(&mut client), Some(CloseCode::HANDSHAKE_TIMEOUT));
}

#[test]
fn a_version_range_the_server_cannot_meet_is_refused() {
    let mut server = Session::new(stream(), Role::Server, Instant::ZERO, 1).unwrap();
    let hello = hello(3, 4, 1024);
    server.handle_input(at(0), &hello[..]);
    assert!(server.is_closed());
    // The refusal is readable by the client: the magic, then CLOSE.
    let refusal: Vec<u8> = take(&mut server, at(0)).concat();
    assert!(refusal.starts_with(&MAGIC), "{refusal:?}");
    assert_eq!(close_code(&mut server), Some(CloseCode::UNSUPPORTED_VERSION));
}

// PING ids and PONGs.

#[test]
fn a_ping_is_answered_with_a_pong_of_its_id() {
    let mut server = server_with_hello(stream());
    server.handle_input(at(100), &encode(Frame::Ping { id: 1 })[..]);
    let sent = frames(&take(&mut server, at(100)));
    assert!(sent.iter().any(|f| matches!(f, Frame::Pong { id: 1, .. })), "{sent:?}");
}

#[test]
fn a_stale_ping_closes_a_stream_but_is_ignored_on_datagrams() {
    let mut server = server_with_hello(stream());
    server.handle_input(at(100), &encode(Frame::Ping { id: 5 })[..]);
    server.handle_input(at(700), &encode(Frame::Ping { id: 5 })[..]);
    assert!(server.is_closed());

    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    for d in take(&mut client, at(0)) {
        server.handle_datagram(at(1), &d[..]);
    }
    take(&mut server, at(1));
    server.handle_datagram(at(100), &encode(Frame::Ping { id: 5 })[..]);
    server.handle_datagram(at(700), &encode(Frame::Ping { id: 5 })[..]);
    assert!(!server.is_closed());
    assert_eq!(server.state(), State::Established);
    // The stale one got no PONG.
    let pongs = frames(&take(&mut server, at(700)))
        .into_iter()
        .filter(|f| matches!(f, Frame::Pong { .. }))
        .count();
    assert_eq!(pongs, 1);
}

#[test]
fn only_the_pong_of_the_ping_in_flight_gives_an_rtt() {
    let (mut client, _server) = established(stream(), 1);
    // Run the client to its first PING.
    let first = client.poll_timeout().unwrap();
    client.handle_timeout(first);
    let ping = frames(&take(&mut client, first));
    let id = ping
        .iter()
        .find_map(|f| match f {
            Frame::Ping { id } => Some(*id),
            _ => None,
        })
        .expect("a PING");
    // A PONG for some other id: no sample.
    client.handle_input(first + MS * 5, &encode(Frame::Pong { id: id + 7, hold_us: 0 })[..]);
    assert!(!events(&mut client).iter().any(|e| matches!(e, Event::Rtt(_))));
    client.handle_input(first + MS * 10, &encode(Frame::Pong { id, hold_us: 0 })[..]);
    let rtt = events(&mut client).into_iter().find_map(|e| match e {
        Event::Rtt(s) => Some(s.rtt),
        _ => None,
    });
    assert_eq!(rtt, Some(MS * 10));
}

// The heartbeat schedule.

#[test]
fn an_idle_client_pings_about_once_an_interval() {
    let mut client = Session::new(stream(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(stream(), Role::Server, Instant::ZERO, 2).unwrap();
    let mut now = at(0);
    let mut pings = 0;
    for _ in 0..10_000 {
        for d in take(&mut client, now) {
            pings += frames(std::slice::from_ref(&d))
                .iter()
                .filter(|f| matches!(f, Frame::Ping { .. }))
                .count();
            server.handle_input(now, &d[..]);
        }
        for d in take(&mut server, now) {
            client.handle_input(now, &d[..]);
        }
        let next = [client.poll_timeout(), server.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        if next > at(60_000) {
            break;
        }
        now = now.max(next);
        for end in [&mut client, &mut server] {
            if end.poll_timeout().is_some_and(|t| t <= now) {
                end.handle_timeout(now);
            }
        }
    }
    // 60 s at 1 s, jittered by up to 10 % either way.
    assert!((54..=67).contains(&pings), "{pings} PINGs in 60 s");
}

// What an adaptive client asks for.

#[test]
fn an_adaptive_client_asks_for_the_timeout_factor_times_its_interval() {
    let mut adaptive = AdaptiveConfig::default();
    adaptive.start = SECOND * 11;
    let config = stream().with_adaptive(Some(adaptive));
    let mut client = Session::new(config, Role::Client, Instant::ZERO, 1).unwrap();
    client.set_learned(Learned {
        good_ms: 2_200,
        ..Learned::default()
    });
    let hello = frames(&take(&mut client, at(0)));
    let asked = hello.iter().find_map(|f| match f {
        Frame::Hello(h) => Some((h.interval_ms, h.dead_timeout_ms)),
        _ => None,
    });
    // A 2.2 s gap at 10 % jitter: 2 s, and three times that to die.
    assert_eq!(asked, Some((2_000, 6_000)));
}

#[test]
fn a_server_refuses_a_hello_whose_frames_would_be_too_small() {
    let mut server = Session::new(stream(), Role::Server, Instant::ZERO, 1).unwrap();
    let hello = hello(1, 2, 100);
    server.handle_input(at(0), &hello[..]);
    assert!(server.is_closed());
    assert_eq!(close_code(&mut server), Some(CloseCode::PROTOCOL_ERROR));
}

// Closing.

#[test]
fn closes_that_cross_complete_once_both_closes_are_out() {
    let (mut client, mut server) = established(stream(), 1);
    client.close(at(10), CloseCode::NORMAL, "a").unwrap();
    server.close(at(10), CloseCode::NORMAL, "b").unwrap();
    // The server's CLOSE reaches the client before the client's own has
    // left: the client is done the moment its CLOSE is taken.
    for d in take(&mut server, at(10)) {
        client.handle_input(at(11), &d[..]);
    }
    assert!(!client.is_closed());
    let out = take(&mut client, at(12));
    assert!(frames(&out).iter().any(|f| matches!(f, Frame::Close { .. })));
    assert!(client.is_closed(), "still waiting after both closes were out");
}

#[test]
fn a_hard_close_mid_frame_never_writes_a_close_inside_the_frame() {
    let (mut client, _server) = established(stream(), 1);
    client.send(3, Bytes::from(vec![9u8; 100_000])).unwrap();
    // The transport takes only part of the frame.
    let mut wire = MAGIC.to_vec();
    let first = client.poll_transmit(at(20)).unwrap().to_vec();
    let part = first.len() / 2;
    wire.extend_from_slice(&first[..part]);
    client.advance_transmit(part);
    client.abort(at(21), CloseCode::GOING_AWAY, "stop").unwrap();
    for piece in take(&mut client, at(21)) {
        wire.extend_from_slice(&piece);
    }
    // Whatever follows is still a well-formed stream up to where it ends.
    let mut decoder = StreamDecoder::new(1 << 20);
    let mut input = Bytes::from(wire);
    loop {
        match decoder.decode(&mut input) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("the stream was corrupted: {e}"),
        }
    }
}

#[test]
fn a_retime_answer_no_server_may_send_is_a_protocol_error() {
    let (mut client, _server) = established(stream(), 1);
    client.retime(at(10), SECOND * 2, SECOND * 6).unwrap();
    take(&mut client, at(10));
    // An interval shorter than the ping spacing (500 ms here): no server
    // may agree to it.
    let answer = encode(Frame::Retime {
        id: 1,
        interval_ms: 100,
        dead_timeout_ms: 300,
    });
    client.handle_input(at(20), &answer[..]);
    assert!(client.is_closed());
    assert_eq!(close_code(&mut client), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn a_server_answers_one_retime_per_ping_spacing() {
    let (_client, mut server) = established(stream(), 1);
    let request = |id| {
        encode(Frame::Retime {
            id,
            interval_ms: 2_000,
            dead_timeout_ms: 6_000,
        })
    };
    let answers = |server: &mut Session, now| {
        frames(&take(server, now))
            .iter()
            .filter(|f| matches!(f, Frame::Retime { .. }))
            .count()
    };
    server.handle_input(at(100), &request(1)[..]);
    assert_eq!(answers(&mut server, at(100)), 1);
    server.handle_input(at(200), &request(2)[..]);
    assert_eq!(answers(&mut server, at(200)), 0, "answered within the spacing");
    server.handle_input(at(700), &request(2)[..]);
    assert_eq!(answers(&mut server, at(700)), 1);
}

// More edges the mutants found unchecked.

#[test]
fn a_hello_accepting_frames_of_exactly_256_bytes_is_accepted() {
    let mut server = Session::new(stream(), Role::Server, Instant::ZERO, 1).unwrap();
    server.handle_input(at(0), &hello(1, 2, 256)[..]);
    assert_eq!(server.state(), State::Established);
}

#[test]
fn a_client_that_speaks_only_version_2_is_accepted() {
    let mut server = Session::new(stream(), Role::Server, Instant::ZERO, 1).unwrap();
    server.handle_input(at(0), &hello(2, 2, 1024)[..]);
    assert_eq!(server.state(), State::Established);
    assert_eq!(server.negotiated().unwrap().version(), 2);
}

#[test]
fn an_end_of_stream_after_the_close_reports_nothing_more() {
    let (mut client, _server) = established(stream(), 1);
    client.abort(at(10), CloseCode::GOING_AWAY, "bye").unwrap();
    assert!(events(&mut client).iter().any(|e| matches!(e, Event::Closed(_))));
    client.handle_eof(at(11));
    assert!(events(&mut client).is_empty());
}

#[test]
fn a_client_of_a_version_1_server_cannot_retime() {
    let mut client = Session::new(stream(), Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let mut welcome = MAGIC.to_vec();
    Frame::Welcome(pulse_proto::frame::Welcome {
        version: 1,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 1024,
        min_ping_spacing_ms: 500,
        ping_strikes: 2,
        ext: None,
    })
    .encode(&mut welcome);
    client.handle_input(at(1), &welcome[..]);
    assert_eq!(client.state(), State::Established);
    assert_eq!(
        client.retime(at(2), SECOND * 2, SECOND * 6),
        Err(pulse_proto::SendError::Unsupported { version: 1 })
    );
}

#[test]
fn an_unanswered_hello_is_sent_again_less_and_less_often() {
    let mut client = Session::new(
        datagram().with_handshake_timeout(SECOND * 10),
        Role::Client,
        Instant::ZERO,
        1,
    )
    .unwrap();
    let mut sends = vec![at(0)];
    take(&mut client, at(0));
    for _ in 0..100 {
        let Some(next) = client.poll_timeout() else { break };
        client.handle_timeout(next);
        if frames(&take(&mut client, next))
            .iter()
            .any(|f| matches!(f, Frame::Hello(_)))
        {
            sends.push(next);
        }
        if client.is_closed() {
            break;
        }
    }
    let gaps: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 3, "{gaps:?}");
    assert!(gaps[1] > gaps[0], "no backoff: {gaps:?}");
    assert!(gaps.iter().all(|&g| g <= SECOND), "over the 1 s cap: {gaps:?}");
}

#[test]
fn a_retime_before_the_hello_is_skipped_as_any_extension_frame() {
    // RETIME's type, 0x80, is in the extension range (§4.1), and extension
    // frames are skipped before the handshake completes (§5).
    let mut server = Session::new(stream(), Role::Server, Instant::ZERO, 2).unwrap();
    let hello = hello(1, 2, 65_536);
    let (magic, hello_frame) = hello.split_at(MAGIC.len());
    let mut input = magic.to_vec();
    input.extend(encode(Frame::Retime {
        id: 1,
        interval_ms: 10_000,
        dead_timeout_ms: 30_000,
    }));
    input.extend_from_slice(hello_frame);
    server.handle_input(Instant::ZERO, &input[..]);
    assert_eq!(server.state(), State::Established, "{:?}", events(&mut server));
}
