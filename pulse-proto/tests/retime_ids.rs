//! RETIME's ids (`docs/PROTOCOL.md` §6.10 rules 2 and 4): what a server does
//! with a request it answered before, and with one older than that (a
//! datagram overtaken); what a client does with an answer that is not for
//! its latest request, and with one whose timings no server may send.

mod common;

use common::{at, close_code, encode, established, events, stream, stream_frames, take};
use pulse_proto::frame::Frame;
use pulse_proto::{CloseCode, Event, Instant, Session, State};

/// A request (or an answer) for `interval_ms`, with three times that as
/// the dead-peer timeout.
fn retime(id: u16, interval_ms: u32) -> Vec<u8> {
    encode(Frame::Retime {
        id,
        interval_ms,
        dead_timeout_ms: interval_ms * 3,
    })
}

/// The RETIMEs `session` sends at `now`: (id, interval in ms).
fn retimes_sent(session: &mut Session, now: Instant) -> Vec<(u16, u32)> {
    stream_frames(&take(session, now))
        .into_iter()
        .filter_map(|f| match f {
            Frame::Retime { id, interval_ms, .. } => Some((id, interval_ms)),
            _ => None,
        })
        .collect()
}

/// Runs `session`'s timer at `now` (where agreed timings take effect);
/// the intervals it switched to, in ms.
fn switches(session: &mut Session, now: Instant) -> Vec<u128> {
    session.handle_timeout(now);
    events(session)
        .into_iter()
        .filter_map(|e| match e {
            Event::Retimed(n) => Some(n.interval().as_millis()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_answered_before_is_answered_again_with_what_was_agreed_then() {
    let (_client, mut server) = established(stream(), 1);
    server.handle_input(at(100), &retime(1, 2_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(100)), vec![(1, 2_000)]);
    assert_eq!(switches(&mut server, at(100)), vec![2_000]);
    // The answer was lost; the client sends its request again — here,
    // brokenly, with other timings: the id names the request, and the
    // server does not read it twice.
    server.handle_input(at(700), &retime(1, 4_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(700)), vec![(1, 2_000)]);
    assert_eq!(switches(&mut server, at(700)), Vec::<u128>::new(), "nothing new agreed");
    assert_eq!(server.negotiated().unwrap().interval().as_millis(), 2_000);
}

#[test]
fn a_request_older_than_the_last_answered_is_ignored() {
    let (_client, mut server) = established(stream(), 1);
    server.handle_input(at(100), &retime(2, 4_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(100)), vec![(2, 4_000)]);
    switches(&mut server, at(100));
    // Request 1, overtaken on a datagram path, arrives after request 2:
    // its timings must not undo what the client now has.
    let ignored = server.stats().frames_ignored;
    server.handle_input(at(700), &retime(1, 2_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(700)), vec![]);
    assert_eq!(server.stats().frames_ignored, ignored + 1);
    assert_eq!(switches(&mut server, at(700)), Vec::<u128>::new());
    assert_eq!(server.negotiated().unwrap().interval().as_millis(), 4_000);
}

#[test]
fn request_ids_are_ordered_modulo_two_to_the_sixteen() {
    let (_client, mut server) = established(stream(), 1);
    server.handle_input(at(100), &retime(65_535, 2_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(100)), vec![(65_535, 2_000)]);
    // The client's next id after 65535 is 0: newer.
    server.handle_input(at(700), &retime(0, 4_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(700)), vec![(0, 4_000)]);
    // 65534 is now older.
    server.handle_input(at(1_300), &retime(65_534, 3_000)[..]);
    assert_eq!(retimes_sent(&mut server, at(1_300)), vec![]);
}

#[test]
fn an_answer_not_for_the_latest_request_is_ignored() {
    let (mut client, _server) = established(stream(), 1);
    client.retime(at(10), common::SECOND * 2, common::SECOND * 6).unwrap();
    client.retime(at(10), common::SECOND * 4, common::SECOND * 12).unwrap();
    assert_eq!(retimes_sent(&mut client, at(10)), vec![(2, 4_000)]);
    client.handle_input(at(20), &retime(1, 2_000)[..]);
    assert_eq!(client.state(), State::Established);
    assert_eq!(client.stats().frames_ignored, 1);
    // The answer to request 2, then the same again (a datagram twice).
    client.handle_input(at(30), &retime(2, 4_000)[..]);
    client.handle_input(at(40), &retime(2, 4_000)[..]);
    assert_eq!(
        client.stats().frames_ignored,
        2,
        "a repeated answer is not the latest request's"
    );
    assert_eq!(switches(&mut client, at(40)), vec![4_000]);
}

#[test]
fn timings_no_server_may_send_are_a_protocol_error_whatever_the_id() {
    let (mut client, _server) = established(stream(), 1);
    client.retime(at(10), common::SECOND * 2, common::SECOND * 6).unwrap();
    client.retime(at(10), common::SECOND * 4, common::SECOND * 12).unwrap();
    take(&mut client, at(10));
    // For request 1, which request 2 replaced: 100 ms is under the
    // minimum ping spacing (500 ms), which no server may agree to. The
    // timings are checked before the id: the peer is broken either way.
    client.handle_input(at(20), &retime(1, 100)[..]);
    assert!(client.is_closed());
    assert_eq!(close_code(&mut client), Some(CloseCode::PROTOCOL_ERROR));
}
