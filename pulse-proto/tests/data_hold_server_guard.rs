//! When a server guards its DATA (`docs/PROTOCOL.md` §6.11.1): while its
//! client may idle longer than the handshake's interval — which lasts past
//! the server's own switch to a shorter interval, until the client's.

mod common;

use common::hold_pair::{server_config, SECOND};
use common::pair::Pair;
use common::{datagram_frames, stream_frames, take};
use pulse_proto::frame::Frame;
use pulse_proto::{Config, Event, Transport};

/// The intervals each end switched to (`Event::Retimed`), in seconds.
fn retimed(events: &mut Vec<Event>) -> Vec<u64> {
    events
        .drain(..)
        .filter_map(|e| match e {
            Event::Retimed(n) => Some(n.interval().as_secs()),
            _ => None,
        })
        .collect()
}

/// A client at the handshake's 10 s asks for 30 s (a probe: its server
/// guards, having seen the path keep nothing yet), and once it has switched
/// asks for 10 s again (its application went active). The server answers
/// and switches at its next timer, seconds later; the client switches only
/// at its own, on the 30 s schedule, and until then nothing crosses the
/// path. Twenty seconds into that silence — longer than the path was ever
/// seen idle — the server's message must wait for a confirming PING: the
/// path may have forgotten the connection. A server that stopped guarding
/// when it switched sent it blind.
#[test]
fn a_server_keeps_guarding_until_its_client_can_have_left_the_longer_interval() {
    for transport in [Transport::Stream, Transport::Datagram] {
        let mut pair = Pair::new(Config::new(transport), server_config(transport));
        pair.run_for(SECOND * 60);
        pair.client.retime(pair.now, SECOND * 30, SECOND * 90).unwrap();
        pair.exchange();
        pair.client_events.clear();
        pair.server_events.clear();
        let mut asked_at = None;
        for _ in 0..60 {
            pair.run_for(SECOND);
            if retimed(&mut pair.client_events) == [30] {
                pair.client.retime(pair.now, SECOND * 10, SECOND * 30).unwrap();
                pair.exchange();
                asked_at = Some(pair.now);
                break;
            }
        }
        let asked_at = asked_at.expect("the client switched to 30 s");
        // The server switches first; the client is still on 30 s.
        for _ in 0..10 {
            pair.run_for(SECOND);
            if !retimed(&mut pair.server_events).is_empty() {
                break;
            }
        }
        assert!(retimed(&mut pair.client_events).is_empty(), "{transport:?}");
        let sent = (pair.client.stats().bytes_sent, pair.server.stats().bytes_sent);
        pair.run_for(asked_at + SECOND * 20 - pair.now);
        assert_eq!(
            (pair.client.stats().bytes_sent, pair.server.stats().bytes_sent),
            sent,
            "{transport:?}: the path stayed silent"
        );
        pair.server.send(9, "news").unwrap();
        let pieces = take(&mut pair.server, pair.now);
        let frames = match transport {
            Transport::Stream => stream_frames(&pieces),
            Transport::Datagram => datagram_frames(&pieces),
        };
        assert!(
            matches!(frames.as_slice(), [Frame::Ping { .. }]),
            "{transport:?}: after 20 s of silence the server wrote {frames:?}"
        );
    }
}
