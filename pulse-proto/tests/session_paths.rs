//! The session's less travelled paths, each as the spec states it: frames
//! that a datagram path reorders or repeats, a close that answers a HELLO,
//! a HELLO where none belongs, the schedule of a client that only receives,
//! the spread after a suspicion, resuming soon after a PING, and an adaptive
//! client whose server cannot renegotiate.

mod common;

use bytes::Bytes;
use common::pair::Pair;
use common::{
    at, close_code, closed, datagram, datagram_frames, encode, established, events, stream, stream_frames, take, MS,
    SECOND,
};
use pulse_proto::frame::{Frame, Hello, Welcome, MAGIC};
use pulse_proto::{AdaptiveConfig, CloseCode, Config, Event, Initiator, Instant, Role, Session, State};

/// A datagram: the magic, then one frame.
fn datagram_of(frame: Frame) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend(encode(frame));
    bytes
}

fn hello_frame() -> Frame {
    Frame::Hello(Hello {
        version_min: 1,
        version_max: 2,
        interval_ms: 1000,
        dead_timeout_ms: 3000,
        max_frame_len: 1024,
        attempt: 0,
        cookie: None,
    })
}

// The handshake.

#[test]
fn a_close_that_answers_the_hello_ends_the_session_with_the_peers_code() {
    let mut client = Session::new(stream(), Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let mut refusal = MAGIC.to_vec();
    refusal.extend(encode(Frame::Close {
        code: CloseCode::REFUSED,
        reason: "full".into(),
    }));
    client.handle_input(at(5), &refusal[..]);
    let closed = closed(&events(&mut client)).expect("the session ended");
    assert_eq!((closed.code, closed.initiator), (CloseCode::REFUSED, Initiator::Peer));
    assert_eq!(closed.reason, "full");
}

#[test]
fn a_datagram_client_skips_a_ping_that_overtook_the_welcome() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    for d in take(&mut client, at(0)) {
        server.handle_datagram(at(1), &d[..]);
    }
    let welcome = take(&mut server, at(1));
    client.handle_datagram(at(2), &datagram_of(Frame::Ping { id: 1 })[..]);
    assert_eq!(client.state(), State::Handshaking, "the early PING ended the handshake");
    assert_eq!(client.stats().frames_ignored, 1);
    for d in &welcome {
        client.handle_datagram(at(3), &d[..]);
    }
    assert_eq!(client.state(), State::Established);
}

#[test]
fn a_datagram_client_skips_a_repeated_welcome() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    for d in take(&mut client, at(0)) {
        server.handle_datagram(at(1), &d[..]);
    }
    let welcome = take(&mut server, at(1));
    for d in welcome.iter().chain(&welcome) {
        client.handle_datagram(at(2), &d[..]);
    }
    assert_eq!(client.state(), State::Established);
    assert_eq!(client.stats().frames_ignored, 1);
    assert!(closed(&events(&mut client)).is_none());
}

#[test]
fn a_repeated_hello_one_ping_spacing_after_the_welcome_is_answered() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    let hello = take(&mut client, at(0));
    for d in &hello {
        server.handle_datagram(at(1), &d[..]);
    }
    take(&mut server, at(1));
    let spacing = server.negotiated().unwrap().min_ping_spacing();
    let just_before = at(1) + spacing - MS;
    for d in &hello {
        server.handle_datagram(just_before, &d[..]);
    }
    assert!(datagram_frames(&take(&mut server, just_before)).is_empty());
    let exactly = at(1) + spacing;
    for d in &hello {
        server.handle_datagram(exactly, &d[..]);
    }
    let answer = datagram_frames(&take(&mut server, exactly));
    assert!(answer.iter().any(|f| matches!(f, Frame::Welcome(_))), "{answer:?}");
}

#[test]
fn a_hello_on_an_established_stream_is_a_protocol_error() {
    let (_client, mut server) = established(stream(), 1);
    server.handle_input(at(10), &encode(hello_frame())[..]);
    assert_eq!(close_code(&mut server), Some(CloseCode::PROTOCOL_ERROR));
}

#[test]
fn a_hello_reaching_an_established_datagram_client_is_a_protocol_error() {
    let mut client = Session::new(datagram(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(datagram(), Role::Server, Instant::ZERO, 2).unwrap();
    for d in take(&mut client, at(0)) {
        server.handle_datagram(at(1), &d[..]);
    }
    for d in take(&mut server, at(1)) {
        client.handle_datagram(at(2), &d[..]);
    }
    events(&mut client);
    client.handle_datagram(at(10), &datagram_of(hello_frame())[..]);
    assert_eq!(close_code(&mut client), Some(CloseCode::PROTOCOL_ERROR));
}

// The heartbeat schedule.

#[test]
fn a_datagram_client_that_only_receives_still_pings_about_once_an_interval() {
    // A NAT that only the client's packets refresh forgets a client that
    // only receives, so its schedule counts from its own last send too.
    let mut pair = Pair::connected(datagram());
    let pings_before = pair.client.stats().pings_sent;
    for _ in 0..50 {
        pair.server.send(7, Bytes::from_static(b"news")).unwrap();
        pair.run_for(MS * 200);
    }
    let pings = pair.client.stats().pings_sent - pings_before;
    // 10 s at 1 s ± 5 %: about ten.
    assert!((8..=12).contains(&pings), "{pings} PINGs in 10 s");
}

#[test]
fn an_adaptive_datagram_client_that_only_receives_still_pings_about_once_an_interval() {
    // The same for a client whose interval adapts: its idle gaps are the
    // path's, and a NAT that only its packets refresh counts them from its
    // own last send. (Held at 1 s: a whole probe round is longer than this.)
    let mut adaptive = AdaptiveConfig::default();
    let gap = MS * 1250; // 1 s at the default jitter of ±25 %
    (adaptive.start, adaptive.active, adaptive.max) = (gap, gap, gap);
    let mut pair = Pair::connected(datagram().with_adaptive(Some(adaptive)));
    let pings_before = pair.client.stats().pings_sent;
    for _ in 0..50 {
        pair.server.send(7, Bytes::from_static(b"news")).unwrap();
        pair.run_for(MS * 200);
    }
    let pings = pair.client.stats().pings_sent - pings_before;
    assert!((8..=12).contains(&pings), "{pings} PINGs in 10 s");
}

#[test]
fn after_a_suspicion_clients_draw_their_next_spacing_afresh() {
    // Clients a stalled server answers in one instant must not keep that
    // instant as their common phase.
    let mut next = Vec::new();
    for seed in 1..=64 {
        let (mut client, mut server) = established(stream(), seed * 10);
        let mut now = at(0);
        for _ in 0..100 {
            now = client.poll_timeout().unwrap();
            client.handle_timeout(now);
            take(&mut client, now);
            if events(&mut client).iter().any(|e| matches!(e, Event::Suspect { .. })) {
                break;
            }
        }
        server.send(1, Bytes::from_static(b"back")).unwrap();
        for piece in take(&mut server, now) {
            client.handle_input(now, &piece[..]);
        }
        assert!(events(&mut client).iter().any(|e| matches!(e, Event::Recovered { .. })));
        next.push(client.poll_timeout().unwrap() - now);
    }
    let (min, max) = (next.iter().min().unwrap(), next.iter().max().unwrap());
    assert!(*min < MS * 750 && *max > MS * 1250, "spread {min:?}..{max:?}");
}

#[test]
fn resuming_input_soon_after_a_ping_probes_only_once_the_spacing_allows() {
    let (mut client, _server) = established(stream(), 1);
    let mut now = at(0);
    for _ in 0..10 {
        now = client.poll_timeout().unwrap();
        client.handle_timeout(now);
        if stream_frames(&take(&mut client, now))
            .iter()
            .any(|f| matches!(f, Frame::Ping { .. }))
        {
            break;
        }
    }
    client.pause_input(now);
    client.resume_input(now + MS * 10);
    let out = stream_frames(&take(&mut client, now + MS * 10));
    assert!(out.is_empty(), "a PING within the spacing: {out:?}");
    // The probe comes once the spacing has passed.
    let probe_at = client.poll_timeout().unwrap();
    let spacing = client.negotiated().unwrap().min_ping_spacing();
    assert!(probe_at <= now + spacing.max(MS * 100) + SECOND, "{probe_at:?}");
}

// Renegotiation.

/// An adaptive client starting at 1 s, with 500 ms while active.
fn adaptive() -> Config {
    let mut adaptive = AdaptiveConfig::default();
    adaptive.start = SECOND;
    adaptive.active = MS * 500;
    stream()
        .with_min_interval(MS * 100)
        .with_min_ping_spacing(MS * 50)
        .with_adaptive(Some(adaptive))
}

/// An adaptive client established at 1 ms with a server that speaks
/// version 1 only, so cannot renegotiate.
fn adaptive_client_of_a_version_1_server() -> Session {
    let mut client = Session::new(adaptive(), Role::Client, Instant::ZERO, 1).unwrap();
    take(&mut client, at(0));
    let mut welcome = MAGIC.to_vec();
    welcome.extend(encode(Frame::Welcome(Welcome {
        version: 1,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 1024,
        min_ping_spacing_ms: 50,
        ping_strikes: 2,
        ext: None,
    })));
    client.handle_input(at(1), &welcome[..]);
    assert_eq!(client.state(), State::Established);
    client
}

#[test]
fn an_adaptive_client_of_a_version_1_server_never_asks_to_retime() {
    let mut client = adaptive_client_of_a_version_1_server();
    // Going active wants 500 ms, which only a RETIME could ask for.
    client.set_active(at(2), true);
    let out = stream_frames(&take(&mut client, at(2)));
    assert!(
        !out.iter().any(|f| matches!(f, Frame::Retime { .. })),
        "a RETIME to a version-1 server: {out:?}"
    );
    assert_eq!(client.state(), State::Established);
}

#[test]
fn going_active_pings_at_the_active_interval_even_without_a_retime() {
    // The server keeps the handshake's timings; the client may still ping
    // more often, down to the spacing the server allows.
    let mut client = adaptive_client_of_a_version_1_server();
    let planned = client.poll_timeout().unwrap();
    client.set_active(at(2), true);
    let next = client.poll_timeout().unwrap();
    assert!(next <= at(1) + MS * 500, "next PING at {next:?}, planned {planned:?}");
}
