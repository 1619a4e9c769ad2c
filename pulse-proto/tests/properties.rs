//! Properties of the codec and the session that must hold for any input.

use bytes::Bytes;
use proptest::prelude::*;
use pulse_proto::frame::{Frame, Hello, Welcome, MAGIC};
use pulse_proto::{CloseCode, Config, Event, Instant, Role, Session, State, StreamDecoder, Transport};

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u8>(), any::<u8>(), any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c, d, e)| Frame::Hello(
            Hello {
                version_min: a,
                version_max: b,
                interval_ms: c,
                dead_timeout_ms: d,
                max_frame_len: e,
                attempt: 0,
                cookie: None,
            }
        )),
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>()
        )
            .prop_map(
                |(version, interval_ms, dead_timeout_ms, max_frame_len, min_ping_spacing_ms, ping_strikes)| {
                    Frame::Welcome(Welcome {
                        version,
                        interval_ms,
                        dead_timeout_ms,
                        max_frame_len,
                        min_ping_spacing_ms,
                        ping_strikes,
                        ext: None,
                    })
                }
            ),
        any::<u32>().prop_map(|id| Frame::Ping { id }),
        (any::<u32>(), any::<u32>()).prop_map(|(id, hold_us)| Frame::Pong { id, hold_us }),
        (any::<u16>(), prop::collection::vec(any::<u8>(), 0..3000)).prop_map(|(tag, p)| Frame::Data {
            tag,
            payload: Bytes::from(p)
        }),
        (any::<u16>(), "[a-zA-Z0-9 é✓]{0,40}").prop_map(|(c, reason)| Frame::Close {
            code: CloseCode::from_wire(c),
            reason
        }),
    ]
}

fn encode_stream(frames: &[Frame]) -> Vec<u8> {
    let mut wire = MAGIC.to_vec();
    for frame in frames {
        frame.encode(&mut wire);
    }
    wire
}

/// Decodes `wire` delivered in pieces cut at `cuts` (offsets, any order).
fn decode_in_pieces(wire: &[u8], cuts: &[usize], max: u32) -> Result<Vec<Frame>, pulse_proto::ProtocolError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.push(0);
    cuts.push(wire.len());
    cuts.sort_unstable();
    let mut decoder = StreamDecoder::new(max);
    let mut frames = Vec::new();
    for piece in cuts.windows(2) {
        let mut input = Bytes::copy_from_slice(&wire[piece[0]..piece[1]]);
        while let Some(frame) = decoder.decode(&mut input)? {
            frames.push(frame);
        }
        assert!(input.is_empty());
        assert!(
            decoder.capacity() <= max as usize + 16,
            "decoder held {}",
            decoder.capacity()
        );
    }
    Ok(frames)
}

proptest! {
    #[test]
    fn every_frame_round_trips(frames in prop::collection::vec(arb_frame(), 0..20)) {
        let wire = encode_stream(&frames);
        prop_assert_eq!(decode_in_pieces(&wire, &[], 1 << 20).unwrap(), frames);
    }

    #[test]
    fn chunking_never_changes_the_frames(
        frames in prop::collection::vec(arb_frame(), 1..20),
        cuts in prop::collection::vec(any::<usize>(), 0..50),
    ) {
        let wire = encode_stream(&frames);
        let whole = decode_in_pieces(&wire, &[], 1 << 20).unwrap();
        prop_assert_eq!(&decode_in_pieces(&wire, &cuts, 1 << 20).unwrap(), &whole);
        let every_byte: Vec<usize> = (0..wire.len()).collect();
        prop_assert_eq!(&decode_in_pieces(&wire, &every_byte, 1 << 20).unwrap(), &whole);
    }

    #[test]
    fn garbage_never_panics_nor_grows_the_decoder(
        garbage in prop::collection::vec(any::<u8>(), 0..4000),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        with_magic in any::<bool>(),
    ) {
        let mut wire = if with_magic { MAGIC.to_vec() } else { Vec::new() };
        wire.extend_from_slice(&garbage);
        let _ = decode_in_pieces(&wire, &cuts, 1024);
    }

    #[test]
    fn garbage_datagrams_never_panic(datagram in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut input = &datagram[..];
        while let Ok(Some(_)) = pulse_proto::next_datagram_frame(&mut input, 1024) {}
    }
}

/// A server session that has accepted a well-formed HELLO at time zero.
fn established_server(transport: Transport) -> Session {
    let config = Config::new(transport).with_max_frame_len(4096);
    let mut server = Session::new(config, Role::Server, Instant::ZERO, 3).unwrap();
    let mut hello = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 1,
        version_max: 2,
        interval_ms: 1000,
        dead_timeout_ms: 3000,
        max_frame_len: 4096,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut hello);
    server.handle_input(Instant::ZERO, &hello[..]);
    while let Some(out) = server.poll_transmit(Instant::ZERO) {
        let n = out.len();
        server.advance_transmit(n);
    }
    while server.poll_event().is_some() {}
    assert_eq!(server.state(), State::Established);
    server
}

fn arb_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(arb_frame(), 0..5).prop_map(|frames| {
            let mut wire = Vec::new();
            for f in &frames {
                f.encode(&mut wire);
            }
            wire
        }),
    ]
}

proptest! {
    #[test]
    fn input_never_moves_the_deadline_earlier_nor_grows_memory(
        inputs in prop::collection::vec((arb_input(), 0u64..2_000), 1..30),
        datagram in any::<bool>(),
    ) {
        let transport = if datagram { Transport::Datagram } else { Transport::Stream };
        let mut server = established_server(transport);
        let mut now = Instant::ZERO;
        for (input, step_ms) in inputs {
            now += core::time::Duration::from_millis(step_ms);
            let before = server.poll_timeout();
            server.handle_input(now, &input[..]);
            let after = server.poll_timeout();
            if let (Some(before), Some(after)) = (before, after) {
                prop_assert!(after >= before, "deadline moved from {:?} to {:?}", before, after);
            }
            prop_assert!(server.buffered_bytes() <= 4096 + 64 + 16 * 1024, "held {}", server.buffered_bytes());
            while let Some(out) = server.poll_transmit(now) {
                let n = out.len();
                server.advance_transmit(n);
            }
            let mut closed = 0;
            while let Some(event) = server.poll_event() {
                if matches!(event, Event::Closed(_)) {
                    closed += 1;
                }
                prop_assert!(closed <= 1);
            }
            if let Some(deadline) = server.poll_timeout() {
                if deadline <= now {
                    server.handle_timeout(now);
                    prop_assert!(server.poll_timeout().is_none_or(|d| d > now), "deadline in the past after handle_timeout");
                }
            }
        }
    }

    #[test]
    fn a_session_sees_the_same_events_however_its_input_is_split(
        frames in prop::collection::vec(arb_frame(), 1..10),
        cuts in prop::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut wire = Vec::new();
        for frame in &frames {
            frame.encode(&mut wire);
        }
        let run = |cuts: &[usize]| {
            let mut server = established_server(Transport::Stream);
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.extend([0, wire.len()]);
            cuts.sort_unstable();
            let mut events = Vec::new();
            for piece in cuts.windows(2) {
                server.handle_input(Instant::from_nanos(1), &wire[piece[0]..piece[1]]);
                events.extend(std::iter::from_fn(|| server.poll_event()));
            }
            (events, server.state())
        };
        prop_assert_eq!(run(&cuts), run(&[]));
    }
}

/// The budget a gateway holding millions of idle connections pays per
/// session: the inline struct, and no heap buffer at all while idle. (376:
/// 344 before the agreed values kept what was asked and the server's
/// bounds, the slow-reader clock and the stored probe instant came, and a
/// pointer to the in-session timing state, boxed since few sessions use it.)
#[test]
fn an_idle_session_is_small_and_holds_no_buffer() {
    assert!(
        core::mem::size_of::<Session>() <= 376,
        "Session is {} bytes",
        core::mem::size_of::<Session>()
    );
    let mut server = established_server(Transport::Stream);
    let mut ping = Vec::new();
    Frame::Ping { id: 1 }.encode(&mut ping);
    let now = Instant::from_nanos(5_000_000_000);
    server.handle_input(now, &ping[..]);
    while let Some(out) = server.poll_transmit(now) {
        let n = out.len();
        server.advance_transmit(n);
    }
    assert_eq!(server.buffered_bytes(), 0);
}
