//! Review of issue 16's data hold (`docs/PROTOCOL.md` §6.11.1): defects
//! found and not fixed, each a test that fails on main as it stands (see
//! each test's comment for what it shows and what would fix it).

mod common;

use bytes::Bytes;
use common::hold_pair::{pair, pass, run, server_config, SECOND};
use common::pair::Pair;
use common::{stream_frames, take};
use pulse_proto::frame::Frame;
use pulse_proto::{AdaptiveConfig, Config, Event, Instant, State, Transport};

/// A message sent, then a frame from the peer read before the driver
/// flushed (a read loop that delivers events between reads, a task that
/// reads its socket before its command queue): the input clears the
/// "local call" that would let a confirming PING go, so the message waits
/// for this side's next timer — a whole idle gap, up to the interval the
/// policy settled at. It should wait one round trip.
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
/// application that sends its last word and closes): in Closing nothing is
/// held (§6.11.1 rule 2: "a graceful close sends what it queued"), so the
/// message goes unconfirmed into the mapping the NAT may have forgotten,
/// and when nothing answers, the session ends without handing it back —
/// lost, with nothing to say so. It should come back from `poll_unsent`
/// (or be confirmed first).
#[test]
fn a_message_sent_then_closed_over_a_dead_path_is_handed_back() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, _server) = pair(true, transport);
        let mut now = Instant::ZERO + SECOND * 40;
        client.send(7, "last words").unwrap();
        client.close(now, pulse_proto::CloseCode::NORMAL, "bye").unwrap();
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
/// retimes, so its server guards its DATA from then on — with nothing yet
/// proven, as the quiets before the RETIME were not counted. A server that
/// pushes a message a second to that client (which, hearing DATA, never
/// pings) then holds every one for a PING round trip and pings once a
/// message: about 60 PINGs a minute where the pair without the RETIME
/// sends 2 or 3 (the backup schedule).
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

/// §5: before the handshake completes, "extension frames are skipped";
/// RETIME is an extension type (0x80, §4.1), yet a stream server that
/// reads one before HELLO closes with a protocol error. No conforming
/// client sends one then; an implementation that skips it, as the spec
/// says, and pulse-proto disagree on what a stray one does.
#[test]
fn a_retime_before_hello_is_skipped_as_an_extension_frame() {
    let mut server = pulse_proto::Session::new(
        Config::new(Transport::Stream),
        pulse_proto::Role::Server,
        Instant::ZERO,
        2,
    )
    .unwrap();
    let hello = common::hello(1, 2, 65_536);
    let (magic, hello_frame) = hello.split_at(pulse_proto::frame::MAGIC.len());
    let mut input = magic.to_vec();
    Frame::Retime {
        id: 1,
        interval_ms: 10_000,
        dead_timeout_ms: 30_000,
    }
    .encode(&mut input);
    input.extend_from_slice(hello_frame);
    server.handle_input(Instant::ZERO, &input[..]);
    assert_eq!(server.state(), State::Established, "{:?}", common::events(&mut server));
}
