//! The data hold's edges (`docs/PROTOCOL.md` §6.11.1): a message sent just
//! before a graceful close, a close that runs out of time, input between a
//! send and its flush, the rule that input alone never sends a confirming
//! PING, and a server pushing to a client that went active. The first
//! three tests were a review's, failing on the code before their fixes.

mod common;

use bytes::Bytes;
use common::hold_pair::{messages, pair, pass, run, server_config, SECOND};
use common::pair::Pair;
use common::{stream_frames, take};
use core::time::Duration;
use pulse_proto::frame::Frame;
use pulse_proto::{AdaptiveConfig, CloseCode, Config, Event, Instant, Session, State, Transport};

/// A message sent, then a frame from the peer read before the driver
/// flushed (a read loop that delivers events between reads, a task that
/// reads its socket before its command queue): the send still lets the
/// confirming PING go (rule 3), so the message waits one round trip, not
/// for this side's next timer — a whole idle gap, up to the interval the
/// policy settled at, as it did when input cancelled the send's leave.
#[test]
fn a_message_sent_just_before_the_peers_data_is_read_waits_a_round_trip_not_an_interval() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, mut server) = pair(true, transport);
        let now = Instant::ZERO + SECOND * 40;
        client.send(7, "mine").unwrap();
        // The server's message arrives (the server never retimed: it does
        // not hold) before the client's driver flushed.
        server.send(9, "yours").unwrap();
        pass(&mut server, &mut client, now);
        let got = run(&mut client, &mut server, now, now + SECOND * 3600);
        let first = got.iter().find(|(_, tag)| *tag == 7).map(|(at, _)| *at - now);
        assert!(
            first.is_some_and(|waited| waited <= SECOND * 2),
            "{transport:?}: the client's message reached the server after {first:?}"
        );
    }
}

/// A message held over a path not confirmed, then a graceful close (an
/// application that sends its last word and closes): the close holds it as
/// before (rule 2) and confirms the path with a PING; when nothing answers,
/// the close runs out of time and the message comes back from
/// `poll_unsent` (rule 4). Before, Closing held nothing: the message went
/// unconfirmed into a mapping the NAT may have forgotten, and the session
/// ended without a word of it.
#[test]
fn a_message_sent_then_closed_over_a_dead_path_is_handed_back() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, _server) = pair(true, transport);
        let mut now = Instant::ZERO + SECOND * 40;
        client.send(7, "last words").unwrap();
        client.close(now, CloseCode::NORMAL, "bye").unwrap();
        // The path forgot the connection: nothing ever comes back.
        let mut wire = take(&mut client, now);
        for _ in 0..10_000 {
            let Some(deadline) = client.poll_timeout() else { break };
            now = now.max(deadline);
            client.handle_timeout(now);
            wire.extend(take(&mut client, now));
        }
        assert_eq!(client.state(), State::Closed);
        let frames = if transport == Transport::Datagram {
            common::datagram_frames(&wire)
        } else {
            stream_frames(&wire)
        };
        let sent = frames.iter().any(|f| matches!(f, Frame::Data { tag: 7, .. }));
        let unsent: Vec<(u16, Bytes)> = std::iter::from_fn(|| client.poll_unsent()).collect();
        assert!(
            !sent && unsent == vec![(7, Bytes::from("last words"))],
            "{transport:?}: sent unconfirmed: {sent}, handed back: {unsent:?}; wire {frames:?}"
        );
    }
}

/// A client that goes active at once (a foreground app: the usual start)
/// retimes to a shorter interval. Its server pushes a message a second
/// (the client, hearing DATA, never pings). A server guards only while its
/// client asks for an interval longer than the handshake's (rule 2): a
/// shorter one is no probe. Before, any RETIME made the server guard with
/// nothing proven, and it pinged before every message — 60 PINGs a minute
/// where the pair without the RETIME sends 2 or 3 (the backup schedule).
#[test]
fn a_server_pushing_to_a_client_that_went_active_does_not_ping_before_every_message() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let client = Config::new(transport).with_adaptive(Some(AdaptiveConfig::default()));
        let mut pair = Pair::new(client, server_config(transport));
        pair.run_for(SECOND);
        assert_eq!(pair.client.state(), State::Established);
        pair.client.set_active(pair.now, true);
        pair.run_for(SECOND);
        let before = pair.server.stats().pings_sent;
        for tag in 0..60 {
            pair.server.send(tag, "news").unwrap();
            pair.run_for(SECOND);
        }
        let pings = pair.server.stats().pings_sent - before;
        let got = pair
            .client_events
            .iter()
            .filter(|e| matches!(e, Event::Message { .. }))
            .count();
        assert_eq!(got, 60, "{transport:?}");
        assert!(
            pings <= 10,
            "{transport:?}: the server pinged {pings} times in a minute of pushing 60 messages"
        );
    }
}

/// A message sent just before a graceful close over a live path waits for
/// the confirming PING's answer, then goes, and the CLOSE after it: the
/// hold in Closing costs a round trip, and the close completes.
#[test]
fn a_message_sent_then_closed_over_a_live_path_is_confirmed_then_delivered() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, mut server) = pair(true, transport);
        let now = Instant::ZERO + SECOND * 40;
        client.send(7, "last words").unwrap();
        client.close(now, CloseCode::NORMAL, "bye").unwrap();
        let sent = pass(&mut client, &mut server, now);
        assert!(
            matches!(sent.as_slice(), [Frame::Ping { .. }]),
            "{transport:?}: {sent:?}"
        );
        pass(&mut server, &mut client, now);
        let sent = pass(&mut client, &mut server, now);
        assert!(
            matches!(sent.as_slice(), [Frame::Data { tag: 7, .. }, Frame::Close { .. }]),
            "{transport:?}: {sent:?}"
        );
        assert_eq!(messages(&mut server), vec![7]);
        pass(&mut server, &mut client, now);
        assert_eq!(client.state(), State::Closed, "{transport:?}");
        assert_eq!(client.poll_unsent(), None, "{transport:?}: delivered, not handed back");
    }
}

/// A graceful close whose transport takes nothing (the peer stopped
/// reading) runs out of `close_timeout`: the messages it never began to
/// send come back from `poll_unsent`; the one whose bytes were handed to
/// the driver does not (the driver may still write them).
#[test]
fn a_graceful_close_that_runs_out_of_time_hands_back_what_it_never_began() {
    let (mut client, _server) = pair(false, Transport::Stream);
    let now = Instant::ZERO + SECOND;
    let big = Bytes::from(vec![0u8; 20_000]);
    for tag in 1..=3 {
        client.send(tag, big.clone()).unwrap();
    }
    client.close(now, CloseCode::NORMAL, "bye").unwrap();
    // The driver is offered the first message's bytes; the transport takes none.
    assert!(client.poll_transmit(now).is_some());
    client.advance_transmit(0);
    let deadline = client.poll_timeout().expect("the close's deadline");
    client.handle_timeout(deadline);
    assert_eq!(client.state(), State::Closed);
    let closed = common::closed(&common::events(&mut client)).expect("Closed reported");
    assert_eq!(closed.code, CloseCode::NORMAL);
    let unsent: Vec<u16> = std::iter::from_fn(|| client.poll_unsent())
        .map(|(tag, _)| tag)
        .collect();
    assert_eq!(unsent, vec![2, 3]);
}

/// Rule 3's "never on input": a message held, its confirming PING sent and
/// unanswered, the driver's timer late (its process stalled); then a frame
/// from the peer arrives. The path is still not confirmed (idle 35 s since
/// this side last sent, past the 30 s known), and no local call came since
/// the output was last staged: no PING goes for that input — the peer's
/// frames must never make this side ping. The overdue timer confirms.
#[test]
fn input_alone_never_sends_a_ping_for_a_held_message() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, mut server, now) = held_then_heard(transport);
        // The overdue timer: a PING, its answer, then the message.
        client.handle_timeout(now);
        let sent = pass(&mut client, &mut server, now);
        assert!(
            sent.iter().any(|f| matches!(f, Frame::Ping { .. })),
            "{transport:?}: {sent:?}"
        );
        pass(&mut server, &mut client, now);
        pass(&mut client, &mut server, now);
        assert_eq!(messages(&mut server), vec![7], "{transport:?}");
    }
}

/// A close is a local call: after input alone left a message held with no
/// PING out, closing confirms the path at once.
#[test]
fn a_close_after_input_alone_confirms_the_held_message() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, mut server, now) = held_then_heard(transport);
        client.close(now, CloseCode::NORMAL, "bye").unwrap();
        // The server's frame has just crossed the path: once the PING is
        // out, the path is fresh, and the message and the CLOSE follow.
        let sent = pass(&mut client, &mut server, now);
        assert!(
            matches!(
                sent.as_slice(),
                [Frame::Ping { .. }, Frame::Data { tag: 7, .. }, Frame::Close { .. }]
            ),
            "{transport:?}: {sent:?}"
        );
    }
}

/// An adaptive client holds message 7 at 40 s (idle past the 30 s known)
/// and its confirming PING is lost; its timer stalls; at 75 s the server's
/// message arrives. Checks that the flush after that input sent nothing.
fn held_then_heard(transport: Transport) -> (Session, Session, Instant) {
    let (mut client, mut server) = pair(true, transport);
    let at = Instant::ZERO + SECOND * 40;
    client.send(7, "mine").unwrap();
    let sent = frames(transport, &take(&mut client, at));
    assert!(
        matches!(sent.as_slice(), [Frame::Ping { .. }]),
        "{transport:?}: {sent:?}"
    );
    let now = Instant::ZERO + SECOND * 75;
    server.send(9, "yours").unwrap();
    pass(&mut server, &mut client, now);
    assert_eq!(messages(&mut client), vec![9]);
    let sent = frames(transport, &take(&mut client, now));
    assert!(
        !sent
            .iter()
            .any(|f| matches!(f, Frame::Ping { .. } | Frame::Data { .. })),
        "{transport:?}: input alone sent {sent:?}"
    );
    (client, server, now)
}

fn frames(transport: Transport, pieces: &[Vec<u8>]) -> Vec<Frame> {
    if transport == Transport::Datagram {
        common::datagram_frames(pieces)
    } else {
        stream_frames(pieces)
    }
}

/// The confirming PING that a send allowed goes even when input came
/// before the flush, but it is judged (suspicion, probes) no earlier than
/// the deadline that stood: a driver that re-armed after the send and
/// hears nothing from the session on input keeps a correct timer (the
/// timer contract).
#[test]
fn a_confirming_ping_sent_after_input_never_pulls_the_deadline_earlier() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, mut server) = pair(false, transport);
        // The client asks for a longer interval: its server guards.
        client.retime(Instant::ZERO, SECOND * 60, SECOND * 180).unwrap();
        pass(&mut client, &mut server, Instant::ZERO);
        pass(&mut server, &mut client, Instant::ZERO);
        server.handle_timeout(Instant::ZERO);
        let now = Instant::ZERO + SECOND * 20;
        server.send(9, "news").unwrap();
        let armed = server.poll_timeout().expect("established");
        assert!(armed > now + SECOND, "{transport:?}: armed for {armed:?}");
        // The client's message is read before the server's driver flushes.
        client.send(1, "hi").unwrap();
        pass(&mut client, &mut server, now);
        // The flush comes a moment after the read.
        let now = now + Duration::from_millis(1);
        let sent = pass(&mut server, &mut client, now);
        // (The client's frame has just crossed the path, so once the PING
        // is out the path counts as fresh, and the message follows it.)
        assert!(
            matches!(sent.first(), Some(Frame::Ping { .. })),
            "{transport:?}: {sent:?}"
        );
        assert!(
            server.poll_timeout() >= Some(armed),
            "{transport:?}: the deadline moved from {armed:?} to {:?}",
            server.poll_timeout()
        );
        pass(&mut client, &mut server, now);
        pass(&mut server, &mut client, now);
        assert_eq!(messages(&mut client), vec![9], "{transport:?}");
    }
}

/// A server keeps its books from its client's first RETIME, guarding or
/// not: the quiets it saw end while the client pinged every 8 s (shorter
/// than the handshake's 10 s: no guard) prove the path keeps them, so when
/// the client then asks for 20 s (a probe: the server guards), a message 2
/// s after the server's last word goes at once. A server with no such
/// history confirms the path first.
#[test]
fn what_a_server_saw_before_it_guards_carries_into_the_guard() {
    for history in [true, false] {
        let client = Config::new(Transport::Stream);
        let mut pair = Pair::new(client, server_config(Transport::Stream));
        pair.run_for(SECOND);
        if history {
            pair.client.retime(pair.now, SECOND * 8, SECOND * 24).unwrap();
            pair.run_for(SECOND * 60);
        }
        pair.client.retime(pair.now, SECOND * 20, SECOND * 60).unwrap();
        pair.exchange();
        // Two seconds on, before either side's timer: the server's message.
        pair.now += SECOND * 2;
        let pings = pair.server.stats().pings_sent;
        pair.server.send(9, "news").unwrap();
        pair.exchange();
        let got = pair
            .client_events
            .iter()
            .any(|e| matches!(e, Event::Message { tag: 9, .. }));
        assert!(got, "history {history}: the message arrived");
        assert_eq!(
            pair.server.stats().pings_sent - pings,
            if history { 0 } else { 1 },
            "history {history}: confirming PINGs"
        );
    }
}
