//! DATA over a path not known to keep the connection (`docs/PROTOCOL.md`
//! §6.11.1), frame by frame: an adaptive client idle past the longest gap
//! its path was seen to keep confirms the path with a PING before its
//! DATA, and a session that dies first hands the DATA back.

mod common;

use common::hold_pair::{messages, pass, SECOND};
use common::take;
use pulse_proto::frame::Frame;
use pulse_proto::{Instant, Session, State, Transport};

/// A client (adaptive, knowing `hold_pair::LEARNED`, or not) and a
/// server, established over a stream at time zero.
fn pair(adaptive: bool) -> (Session, Session) {
    common::hold_pair::pair(adaptive, Transport::Stream)
}

#[test]
fn after_an_idle_gap_longer_than_the_path_was_seen_to_keep_a_ping_goes_before_the_data() {
    let (mut client, mut server) = pair(true);
    // 40 s of silence (the client's timer was late, or its PINGs were the
    // path's only traffic and it slept): past the 30 s known to work.
    let now = Instant::ZERO + SECOND * 40;
    client.send(7, "hello").unwrap();
    let sent = pass(&mut client, &mut server, now);
    assert!(matches!(sent.as_slice(), [Frame::Ping { .. }]), "{sent:?}");
    assert_eq!(messages(&mut server), Vec::<u16>::new());
    // The answer confirms the path: the message goes.
    let answer = pass(&mut server, &mut client, now);
    assert!(matches!(answer.as_slice(), [Frame::Pong { .. }]), "{answer:?}");
    let sent = pass(&mut client, &mut server, now);
    assert!(matches!(sent.as_slice(), [Frame::Data { tag: 7, .. }]), "{sent:?}");
    assert_eq!(messages(&mut server), vec![7]);
}

#[test]
fn within_the_gap_the_path_was_seen_to_keep_the_data_goes_at_once() {
    let (mut client, mut server) = pair(true);
    let now = Instant::ZERO + SECOND * 20;
    client.send(7, "hello").unwrap();
    let sent = pass(&mut client, &mut server, now);
    assert!(matches!(sent.as_slice(), [Frame::Data { tag: 7, .. }]), "{sent:?}");
}

#[test]
fn a_client_that_is_not_adaptive_sends_at_once_whatever_the_silence() {
    let (mut client, mut server) = pair(false);
    let now = Instant::ZERO + SECOND * 40;
    client.send(7, "hello").unwrap();
    let sent = pass(&mut client, &mut server, now);
    assert!(matches!(sent.as_slice(), [Frame::Data { tag: 7, .. }]), "{sent:?}");
}

#[test]
fn data_held_over_a_path_that_never_answers_is_handed_back_when_the_session_dies() {
    let (mut client, _server) = pair(true);
    let mut now = Instant::ZERO + SECOND * 40;
    client.send(7, "one").unwrap();
    client.send(8, "two").unwrap();
    take(&mut client, now);
    assert_eq!(client.poll_unsent(), None, "not before the session ends");
    // Nothing comes back: the session probes, then gives its verdict.
    for _ in 0..10_000 {
        let Some(deadline) = client.poll_timeout() else { break };
        now = now.max(deadline);
        client.handle_timeout(now);
        take(&mut client, now);
    }
    assert_eq!(client.state(), State::Closed);
    let unsent: Vec<(u16, bytes::Bytes)> = std::iter::from_fn(|| client.poll_unsent()).collect();
    assert_eq!(
        unsent,
        vec![(7, bytes::Bytes::from("one")), (8, bytes::Bytes::from("two"))]
    );
}

#[test]
fn a_server_whose_client_retimed_confirms_a_path_idle_longer_than_it_saw_it_keep() {
    let (mut client, mut server) = pair(false);
    client.retime(Instant::ZERO, SECOND * 20, SECOND * 60).unwrap();
    pass(&mut client, &mut server, Instant::ZERO);
    let answer = pass(&mut server, &mut client, Instant::ZERO);
    assert!(matches!(answer.as_slice(), [Frame::Retime { .. }]), "{answer:?}");
    // 40 s later (the client's timer not run: it sent nothing), the
    // server's message waits for a PING's answer.
    let now = Instant::ZERO + SECOND * 40;
    server.send(9, "news").unwrap();
    let sent = pass(&mut server, &mut client, now);
    assert!(matches!(sent.as_slice(), [Frame::Ping { .. }]), "{sent:?}");
    pass(&mut client, &mut server, now);
    let sent = pass(&mut server, &mut client, now);
    assert!(matches!(sent.as_slice(), [Frame::Data { tag: 9, .. }]), "{sent:?}");
    assert_eq!(messages(&mut client), vec![9]);
}

#[test]
fn a_server_whose_client_never_retimed_sends_at_once_whatever_the_silence() {
    let (mut client, mut server) = pair(false);
    let now = Instant::ZERO + SECOND * 40;
    server.send(9, "news").unwrap();
    let sent = pass(&mut server, &mut client, now);
    assert!(matches!(sent.as_slice(), [Frame::Data { tag: 9, .. }]), "{sent:?}");
}
