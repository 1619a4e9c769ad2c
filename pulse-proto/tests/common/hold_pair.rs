//! Issue 16's review: two ends established over either transport, an
//! adaptive client knowing what an earlier session learned, and paths
//! with and without latency, to watch the data hold (`docs/PROTOCOL.md`
//! §6.11.1) frame by frame.

use core::time::Duration;

use pulse_proto::frame::Frame;
use pulse_proto::{AdaptiveConfig, Config, Event, Instant, Learned, Role, Session, State, Transport};

use super::{events, stream_frames, take};

pub const SECOND: Duration = Duration::from_secs(1);

/// What an earlier session learned: 30 s work, 33 s fail, settled.
pub const LEARNED: Learned = Learned {
    good_ms: 30_000,
    bad_ms: 33_000,
    settled: true,
    target_ms: 28_500,
    failures: 0,
    failed_ms: 0,
};

pub fn server_config(transport: Transport) -> Config {
    Config::new(transport).with_max_interval(SECOND * 3600)
}

/// A client (adaptive, knowing [`LEARNED`], or not) and a server,
/// established over `transport` at time zero.
pub fn pair(adaptive: bool, transport: Transport) -> (Session, Session) {
    let config = Config::new(transport).with_adaptive(adaptive.then(AdaptiveConfig::default));
    let mut client = Session::new(config, Role::Client, Instant::ZERO, 1).unwrap();
    client.set_learned(LEARNED);
    let mut server = Session::new(server_config(transport), Role::Server, Instant::ZERO, 2).unwrap();
    for _ in 0..3 {
        pass(&mut client, &mut server, Instant::ZERO);
        pass(&mut server, &mut client, Instant::ZERO);
    }
    assert_eq!(client.state(), State::Established);
    events(&mut client);
    events(&mut server);
    (client, server)
}

/// Everything `from` sends now, delivered to `to` now; the frames.
pub fn pass(from: &mut Session, to: &mut Session, now: Instant) -> Vec<Frame> {
    let pieces = take(from, now);
    let datagram = from.config().transport == Transport::Datagram;
    for piece in &pieces {
        if datagram {
            to.handle_datagram(now, &piece[..]);
        } else {
            to.handle_input(now, &piece[..]);
        }
    }
    if datagram {
        super::datagram_frames(&pieces)
    } else {
        stream_frames(&pieces)
    }
}

pub fn messages(session: &mut Session) -> Vec<u16> {
    events(session)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message { tag, .. } => Some(tag),
            _ => None,
        })
        .collect()
}

/// Runs both ends over a live, instant path from `now` until `until`,
/// firing each timer when due (re-armed as a driver does); the tags `to`
/// received, with when.
pub fn run(a: &mut Session, b: &mut Session, mut now: Instant, until: Instant) -> Vec<(Instant, u16)> {
    let mut got = Vec::new();
    for _ in 0..10_000 {
        for _ in 0..10 {
            let x = pass(a, b, now);
            let y = pass(b, a, now);
            if x.is_empty() && y.is_empty() {
                break;
            }
        }
        got.extend(messages(b).into_iter().map(|t| (now, t)));
        events(a);
        let next = [a.poll_timeout(), b.poll_timeout()].into_iter().flatten().min();
        match next {
            Some(at) if at <= until => {
                now = now.max(at);
                // Only the side whose timer is due: a timer is a local
                // event, and would let a confirming PING go.
                for end in [&mut *a, &mut *b] {
                    if end.poll_timeout().is_some_and(|d| d <= now) {
                        end.handle_timeout(now);
                    }
                }
            }
            _ => break,
        }
    }
    got
}

/// Both ends over a live path with a one-way `latency`, run from `now` to
/// `until`, as drivers run them (timers fired when due, everything flushed
/// after every call); `sends` are (when, from the client, tag). The tags
/// each side received, with when: (client's, server's).
pub fn run_with_latency(
    client: &mut Session,
    server: &mut Session,
    mut now: Instant,
    until: Instant,
    latency: Duration,
    mut sends: Vec<(Instant, bool, u16)>,
) -> [Vec<(Instant, u16)>; 2] {
    use std::collections::VecDeque;
    sends.sort();
    let mut sends: VecDeque<_> = sends.into();
    let mut wires: [VecDeque<(Instant, Vec<u8>)>; 2] = Default::default();
    let mut got: [Vec<(Instant, u16)>; 2] = Default::default();
    let datagram = client.config().transport == Transport::Datagram;
    for _ in 0..100_000 {
        // Flush both, collect what arrived.
        for (i, end) in [&mut *client, &mut *server].into_iter().enumerate() {
            for piece in take(end, now) {
                wires[1 - i].push_back((now + latency, piece));
            }
            for event in events(end) {
                if let Event::Message { tag, .. } = event {
                    got[i].push((now, tag));
                }
            }
        }
        let next = [
            client.poll_timeout(),
            server.poll_timeout(),
            wires[0].front().map(|w| w.0),
            wires[1].front().map(|w| w.0),
            sends.front().map(|s| s.0),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next.filter(|at| *at <= until) else {
            break;
        };
        now = now.max(next);
        for (i, end) in [&mut *client, &mut *server].into_iter().enumerate() {
            while wires[i].front().is_some_and(|w| w.0 <= now) {
                let (_, bytes) = wires[i].pop_front().unwrap();
                if datagram {
                    end.handle_datagram(now, &bytes[..]);
                } else {
                    end.handle_input(now, &bytes[..]);
                }
            }
        }
        for end in [&mut *client, &mut *server] {
            if end.poll_timeout().is_some_and(|d| d <= now) {
                end.handle_timeout(now);
            }
        }
        while sends.front().is_some_and(|s| s.0 <= now) {
            let (_, from_client, tag) = sends.pop_front().unwrap();
            let end = if from_client { &mut *client } else { &mut *server };
            end.send(tag, "m").unwrap();
        }
    }
    got
}
