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
        // Any UTF-8, up to and well past the 123-byte limit.
        (any::<u16>(), "(?s).{0,160}").prop_map(|(c, reason)| Frame::Close {
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

/// A frame as it arrives: a CLOSE reason longer than 123 bytes cut to the
/// longest prefix of whole characters that fits.
fn as_sent(frame: &Frame) -> Frame {
    match frame {
        Frame::Close { code, reason } => {
            let mut end = reason.len().min(123);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            Frame::Close {
                code: *code,
                reason: reason[..end].into(),
            }
        }
        other => other.clone(),
    }
}

proptest! {
    #[test]
    fn every_frame_round_trips(frames in prop::collection::vec(arb_frame(), 0..20)) {
        let wire = encode_stream(&frames);
        let sent: Vec<Frame> = frames.iter().map(as_sent).collect();
        prop_assert_eq!(decode_in_pieces(&wire, &[], 1 << 20), Ok(sent));
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

// ---------------------------------------------------------------------------
// Both roles, any valid timing: a client and a server driven together in
// virtual time, at intervals from 10 ms up, over a link with latency (and,
// for datagrams, loss), with data, silences and late timers. Whatever a
// real peer sends, input never moves either session's deadline earlier
// once it is established, never leaves a deadline in the past after
// `handle_timeout`, and memory stays within one frame plus queued output.
// (Kept apart from the single-session property above.)

/// What the test does between letting the pair run.
#[derive(Clone, Debug)]
enum PairOp {
    /// Virtual time passes, in thousandths of an interval.
    Run(u16),
    /// A side's application sends this many bytes.
    Send(bool, u16),
    /// A side's timer fires this many thousandths of an interval late (its
    /// process was busy), once.
    LateTimer(bool, u16),
}

fn arb_pair_op() -> impl Strategy<Value = PairOp> {
    prop_oneof![
        4 => (0u16..3_000).prop_map(PairOp::Run),
        1 => (any::<bool>(), 0u16..2_000).prop_map(|(side, n)| PairOp::Send(side, n)),
        1 => (any::<bool>(), 0u16..4_000).prop_map(|(side, late)| PairOp::LateTimer(side, late)),
    ]
}

/// A valid config: the interval from 10 ms (often short: that is where
/// the probe floor and the spacing collide), the timeout 2 to 6 intervals.
fn arb_timing() -> impl Strategy<Value = (u64, u64)> {
    let interval = prop_oneof![10u64..60, 60u64..400, 400u64..5_000];
    (interval, 2u64..=6, 0u64..1000).prop_map(|(i, k, extra)| (i, i * k + extra % i))
}

/// Bytes in flight towards one session, in arrival order.
type Wire = std::collections::VecDeque<(Instant, Vec<u8>)>;

/// A client (index 0) and a server (1) on a link with fixed latency.
struct Driven {
    sessions: [Session; 2],
    wires: [Wire; 2],
    late: [core::time::Duration; 2],
    now: Instant,
    latency: core::time::Duration,
    datagram: bool,
    loss_every: u64,
    sent: u64,
    /// Inputs checked against the contract (once established).
    checked: u64,
}

impl Driven {
    fn new(transport: Transport, interval_ms: u64, dead_ms: u64, latency_us: u64, seed: u64) -> Driven {
        let ms = core::time::Duration::from_millis;
        let config = std::sync::Arc::new(Config::new(transport).with_timing(ms(interval_ms), ms(dead_ms)));
        assert_eq!(config.validate(), Ok(()), "{config:?}");
        let client = Session::new(config.clone(), Role::Client, Instant::ZERO, seed).unwrap();
        let server = Session::new(config, Role::Server, Instant::ZERO, seed + 1).unwrap();
        Driven {
            sessions: [client, server],
            wires: [Default::default(), Default::default()],
            late: [core::time::Duration::ZERO; 2],
            now: Instant::ZERO,
            latency: core::time::Duration::from_micros(latency_us),
            datagram: transport == Transport::Datagram,
            loss_every: 7 + seed % 5,
            sent: 0,
            checked: 0,
        }
    }

    fn flush(&mut self, side: usize) {
        while let Some(out) = self.sessions[side].poll_transmit(self.now) {
            let out = out.to_vec();
            self.sessions[side].advance_transmit(out.len());
            self.sent += 1;
            // Datagrams lose one in a few, deterministically.
            if self.datagram && self.sent % self.loss_every == 0 {
                continue;
            }
            self.wires[1 - side].push_back((self.now + self.latency, out));
        }
    }

    /// Delivers and fires everything due up to `until`, checking the
    /// contract at each step.
    fn run_until(&mut self, until: Instant) -> Result<(), TestCaseError> {
        for _ in 0..100_000 {
            let arrival = (0..2)
                .filter_map(|i| self.wires[i].front().map(|(at, _)| (*at, i)))
                .min();
            let timer = (0..2)
                .filter_map(|i| self.sessions[i].poll_timeout().map(|at| (at + self.late[i], i)))
                .min();
            let next = match (arrival, timer) {
                // Input first when both are due: a driver reads first.
                (Some(a), Some(t)) => {
                    if a.0 <= t.0 {
                        (a, true)
                    } else {
                        (t, false)
                    }
                }
                (Some(a), None) => (a, true),
                (None, Some(t)) => (t, false),
                (None, None) => break,
            };
            let ((at, side), input) = next;
            if at > until {
                break;
            }
            self.now = self.now.max(at);
            if input {
                let (_, bytes) = self.wires[side].pop_front().unwrap();
                let session = &mut self.sessions[side];
                let established = session.state() == State::Established;
                let before = session.poll_timeout();
                if self.datagram {
                    session.handle_datagram(self.now, &bytes[..]);
                } else {
                    session.handle_input(self.now, &bytes[..]);
                }
                let after = session.poll_timeout();
                if let (true, Some(before), Some(after)) = (established, before, after) {
                    self.checked += 1;
                    prop_assert!(
                        after >= before,
                        "{:?}: input at {:?} moved the deadline from {:?} to {:?}",
                        session.role(),
                        self.now,
                        before,
                        after
                    );
                }
            } else {
                self.late[side] = core::time::Duration::ZERO;
                let session = &mut self.sessions[side];
                session.handle_timeout(self.now);
                if let Some(deadline) = session.poll_timeout() {
                    prop_assert!(
                        deadline > self.now,
                        "{:?}: deadline in the past after handle_timeout",
                        session.role()
                    );
                }
            }
            prop_assert!(
                self.sessions[side].buffered_bytes() <= 256 * 1024 + 64 + 1024 * 1024 + 64 * 1024,
                "held {}",
                self.sessions[side].buffered_bytes()
            );
            while self.sessions[side].poll_event().is_some() {}
            self.flush(side);
        }
        self.now = self.now.max(until);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn input_never_moves_either_roles_deadline_earlier_at_any_valid_timing(
        (interval_ms, dead_ms) in arb_timing(),
        datagram in any::<bool>(),
        latency_permille in 0u64..300,
        seed in any::<u64>(),
        ops in prop::collection::vec(arb_pair_op(), 1..60),
    ) {
        let transport = if datagram { Transport::Datagram } else { Transport::Stream };
        let latency_us = interval_ms * latency_permille;
        let mut pair = Driven::new(transport, interval_ms, dead_ms, latency_us, seed);
        let interval = core::time::Duration::from_millis(interval_ms);
        pair.flush(0);
        let mut lateness = core::time::Duration::ZERO;
        for op in ops {
            match op {
                PairOp::Run(thousandths) => {
                    let until = pair.now + interval * u32::from(thousandths) / 1000;
                    pair.run_until(until)?;
                }
                PairOp::Send(side, n) => {
                    let side = usize::from(side);
                    let _ = pair.sessions[side].send(1, vec![7u8; usize::from(n)]);
                    pair.flush(side);
                }
                PairOp::LateTimer(side, late) => {
                    pair.late[usize::from(side)] = interval * u32::from(late) / 1000;
                    lateness += pair.late[usize::from(side)];
                }
            }
        }
        // Not vacuous: a pair given time to connect was checked.
        let connect = pair.latency * 4 + interval * 3 + lateness;
        prop_assert!(pair.checked > 0 || pair.now < Instant::ZERO + connect, "nothing checked by {:?}", pair.now);
    }
}
