//! What the session tests share: reading what a session sends, a raw
//! HELLO, and how a session ended.
#![allow(dead_code)] // each test binary uses its own part

pub mod hold_pair;
pub mod pair;

use bytes::Bytes;
use pulse_proto::frame::{Frame, Hello, MAGIC};
use pulse_proto::{CloseCode, Config, Event, Instant, Role, Session, StreamDecoder, Transport};

/// What a session sends now, one piece per `poll_transmit` (a datagram
/// each over UDP), all taken by the transport.
pub fn take(session: &mut Session, now: Instant) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    while let Some(bytes) = session.poll_transmit(now) {
        pieces.push(bytes.to_vec());
        let n = bytes.len();
        session.advance_transmit(n);
    }
    pieces
}

/// The frames of a stream's pieces, in order (the magic skipped).
pub fn stream_frames(pieces: &[Vec<u8>]) -> Vec<Frame> {
    decode(pieces.concat())
}

/// The frames of each datagram, in order (the magic skipped).
pub fn datagram_frames(pieces: &[Vec<u8>]) -> Vec<Frame> {
    pieces.iter().flat_map(|piece| decode(piece.clone())).collect()
}

fn decode(mut wire: Vec<u8>) -> Vec<Frame> {
    if !wire.starts_with(&MAGIC) {
        let mut with_magic = MAGIC.to_vec();
        with_magic.extend_from_slice(&wire);
        wire = with_magic;
    }
    let mut decoder = StreamDecoder::new(1 << 20);
    let mut input = Bytes::from(wire);
    std::iter::from_fn(|| decoder.decode(&mut input).ok().flatten()).collect()
}

/// Every event the session has for us now.
pub fn events(session: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

/// How the session ended, if these events say.
pub fn closed(events: &[Event]) -> Option<pulse_proto::Closed> {
    events.iter().find_map(|e| match e {
        Event::Closed(c) => Some(c.clone()),
        _ => None,
    })
}

/// The close code among the session's pending events.
pub fn close_code(session: &mut Session) -> Option<CloseCode> {
    closed(&events(session)).map(|c| c.code)
}

/// One frame's bytes.
pub fn encode(frame: Frame) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame.encode(&mut bytes);
    bytes
}

/// A client's first bytes: the magic and a HELLO for 1 s / 3 s.
pub fn hello(version_min: u8, version_max: u8, max_frame_len: u32) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min,
        version_max,
        interval_ms: 1000,
        dead_timeout_ms: 3000,
        max_frame_len,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut bytes);
    bytes
}

/// One millisecond and one second, the tests' units.
pub const MS: core::time::Duration = core::time::Duration::from_millis(1);
pub const SECOND: core::time::Duration = core::time::Duration::from_secs(1);

/// The instant `ms` milliseconds after zero.
pub fn at(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

/// A datagram config at 1 s / 3 s.
pub fn datagram() -> Config {
    Config::new(Transport::Datagram).with_timing(SECOND, SECOND * 3)
}

/// A stream config at 1 s / 3 s.
pub fn stream() -> Config {
    Config::default().with_timing(SECOND, SECOND * 3)
}

/// A stream client and server, both on `config`, established at time
/// zero with their handshake's events taken; the seed draws the client's
/// jitter (the server's is the next one).
pub fn established(config: Config, seed: u64) -> (Session, Session) {
    let mut client = Session::new(config.clone(), Role::Client, Instant::ZERO, seed).unwrap();
    let mut server = Session::new(config, Role::Server, Instant::ZERO, seed + 1).unwrap();
    for piece in take(&mut client, at(0)) {
        server.handle_input(at(0), &piece[..]);
    }
    for piece in take(&mut server, at(0)) {
        client.handle_input(at(0), &piece[..]);
    }
    events(&mut client);
    events(&mut server);
    assert_eq!(client.state(), pulse_proto::State::Established);
    (client, server)
}
