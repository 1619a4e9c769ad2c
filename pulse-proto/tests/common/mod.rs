//! What the session tests share: reading what a session sends, a raw
//! HELLO, and how a session ended.
#![allow(dead_code)] // each test binary uses its own part

pub mod hold_pair;
pub mod pair;

use bytes::Bytes;
use pulse_proto::frame::{Frame, Hello, MAGIC};
use pulse_proto::{CloseCode, Event, Instant, Session, StreamDecoder};

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
