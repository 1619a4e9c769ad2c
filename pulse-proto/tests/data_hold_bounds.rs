//! The data hold's bounds (`docs/PROTOCOL.md` §6.11.1): the margin of two
//! probe timeouts below what the path was seen to keep (rule 2), and one
//! confirming PING at a time (rule 3).

mod common;

use common::hold_pair::{messages, pair, pass, SECOND};
use core::time::Duration;
use pulse_proto::frame::Frame;
use pulse_proto::{Instant, Transport};

const MS: Duration = Duration::from_millis(1);

/// The client knows the path keeps 30 s idle; over this instant path its
/// probe timeout is the 250 ms floor. A message 29.4 s into the silence
/// goes at once (29.4 + 2 × 0.25 ≤ 30); one at 29.6 s waits for a PING
/// (29.6 + 0.5 > 30): the packets take time to reach the NAT, and a margin
/// of half a probe timeout, or none, would send it.
#[test]
fn a_message_within_two_probe_timeouts_of_what_the_path_keeps_is_held() {
    for transport in [Transport::Stream, Transport::Datagram] {
        for (at, held) in [(SECOND * 29 + MS * 400, false), (SECOND * 29 + MS * 600, true)] {
            let (mut client, mut server) = pair(true, transport);
            client.send(7, "hello").unwrap();
            let sent = pass(&mut client, &mut server, Instant::ZERO + at);
            if held {
                assert!(
                    matches!(sent.as_slice(), [Frame::Ping { .. }]),
                    "{transport:?} at {at:?}: {sent:?}"
                );
            } else {
                assert!(
                    matches!(sent.as_slice(), [Frame::Data { tag: 7, .. }]),
                    "{transport:?} at {at:?}: {sent:?}"
                );
            }
        }
    }
}

/// A held message's confirming PING is out, unanswered; the application
/// sends again, in the same instant and 100 ms later (each a local call
/// that may let a confirming PING go): no second PING while the first
/// awaits its answer — two in one instant would be wasted, and would
/// count twice against the peer's ping policy. Its answer lets both go.
#[test]
fn one_confirming_ping_at_a_time() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let (mut client, mut server) = pair(true, transport);
        let now = Instant::ZERO + SECOND * 40;
        client.send(7, "one").unwrap();
        let sent = common::take(&mut client, now);
        let frames = match transport {
            Transport::Stream => common::stream_frames(&sent),
            Transport::Datagram => common::datagram_frames(&sent),
        };
        assert!(
            matches!(frames.as_slice(), [Frame::Ping { .. }]),
            "{transport:?}: {frames:?}"
        );
        for later in [Duration::ZERO, MS * 100] {
            client.send(8, "two").unwrap();
            let again = pass(&mut client, &mut server, now + later);
            assert!(again.is_empty(), "{transport:?}, {later:?} later: {again:?}");
        }
        // The PING reaches the server now; its answer releases the messages.
        for piece in &sent {
            match transport {
                Transport::Stream => server.handle_input(now + MS * 100, &piece[..]),
                Transport::Datagram => server.handle_datagram(now + MS * 100, &piece[..]),
            }
        }
        pass(&mut server, &mut client, now + MS * 100);
        pass(&mut client, &mut server, now + MS * 100);
        assert_eq!(messages(&mut server), vec![7, 8, 8], "{transport:?}");
    }
}
