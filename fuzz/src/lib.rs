//! The fuzz targets' logic, shared by the libFuzzer binaries in
//! `fuzz_targets/` and by the workspace test that replays the checked-in
//! corpus on stable Rust (`tests/tests/fuzz_corpus.rs`). Each target reads
//! its input as a little program of operations and checks invariants after
//! every step; a broken invariant panics, which both runners report.
//!
//! Depends on `pulse-proto` only.

#[path = "pair.rs"]
mod pair;

pub use pair::pair;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::frame::{Frame, Hello, MAGIC};
use pulse_proto::{
    CloseCode, Config, Event, Instant, Role, Session, State, StreamDecoder, TimerKey, TimerWheel, Transport,
};

/// Reads the fuzzer's bytes as operands.
pub(crate) struct Input<'a>(pub(crate) &'a [u8]);

impl<'a> Input<'a> {
    pub(crate) fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

const MAX_FRAME: u32 = 4096;

/// Decoding arbitrary bytes as a stream (in pieces the input chooses) and
/// as datagrams: no panic, the same frames however the stream is cut, and
/// never more held than one frame.
pub fn decode(data: &[u8]) {
    let mut input = Input(data);
    let Some(piece) = input.byte() else { return };
    let with_magic = piece & 1 == 1;
    let piece = usize::from(piece >> 1).max(1);
    let mut wire = if with_magic { MAGIC.to_vec() } else { Vec::new() };
    wire.extend_from_slice(input.0);

    let (frames, error) = decode_stream(&wire, wire.len().max(1));
    let (cut_frames, cut_error) = decode_stream(&wire, piece);
    // Cut differently, the same frames come out before any error, and the
    // same kind of error (a bad magic quotes what its piece held).
    assert_eq!(frames, cut_frames, "pieces of {piece} bytes decode differently");
    let kind = |e: &Option<pulse_proto::ProtocolError>| e.as_ref().map(|e| (std::mem::discriminant(e), e.close_code()));
    assert_eq!(
        kind(&error),
        kind(&cut_error),
        "pieces of {piece} bytes fail differently: {error:?} / {cut_error:?}"
    );

    let mut datagram = input.0;
    while let Ok(Some(_)) = pulse_proto::next_datagram_frame(&mut datagram, MAX_FRAME) {}
}

fn decode_stream(wire: &[u8], piece: usize) -> (Vec<Frame>, Option<pulse_proto::ProtocolError>) {
    let mut decoder = StreamDecoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    for chunk in wire.chunks(piece) {
        let mut chunk = Bytes::copy_from_slice(chunk);
        loop {
            match decoder.decode(&mut chunk) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
            assert!(
                decoder.capacity() <= MAX_FRAME as usize + 16,
                "decoder holds {}",
                decoder.capacity()
            );
        }
        assert!(
            decoder.capacity() <= MAX_FRAME as usize + 16,
            "decoder holds {}",
            decoder.capacity()
        );
    }
    (frames, None)
}

pub(crate) fn config(transport: Transport) -> Config {
    Config::default()
        .with_transport(transport)
        .with_interval(Duration::from_millis(100))
        .with_dead_timeout(Duration::from_millis(300))
        .with_min_interval(Duration::from_millis(100))
        .with_min_ping_spacing(Duration::from_millis(50))
        .with_max_frame_len(MAX_FRAME)
        .with_max_queued_bytes(16 * 1024)
        .with_max_datagram_size(1200)
        .with_handshake_timeout(Duration::from_millis(500))
        .with_close_timeout(Duration::from_millis(200))
}

fn hello() -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 1,
        version_max: 2,
        interval_ms: 100,
        dead_timeout_ms: 300,
        max_frame_len: MAX_FRAME,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut bytes);
    bytes
}

/// What must hold of a session after every step, and what it reported.
#[derive(Default)]
pub(crate) struct Watch {
    closed_seen: bool,
    /// The agreed dead-peer timeout, once connected.
    pub(crate) dead_timeout: Option<Duration>,
    /// When it declared its peer dead.
    pub(crate) verdict_at: Option<Instant>,
    /// The code it closed with.
    pub(crate) close_code: Option<CloseCode>,
}

impl Watch {
    pub(crate) fn check(&mut self, session: &mut Session, now: Instant, after_timeout: bool) {
        while let Some(event) = session.poll_event() {
            assert!(!self.closed_seen, "an event after Closed: {event:?}");
            match &event {
                Event::Closed(closed) => {
                    self.closed_seen = true;
                    self.close_code = Some(closed.code);
                }
                Event::Connected(agreed) | Event::Retimed(agreed) => self.dead_timeout = Some(agreed.dead_timeout()),
                Event::PeerDead { .. } => self.verdict_at = Some(now),
                _ => {}
            }
        }
        // One signal: Closed is reported exactly when the session is closed.
        assert_eq!(
            self.closed_seen,
            session.state() == State::Closed,
            "Closed reported {} in {:?}",
            self.closed_seen,
            session.state()
        );
        if session.state() == State::Closed {
            assert!(self.closed_seen, "closed without a Closed event");
            assert_eq!(session.poll_timeout(), None, "a closed session wants a timer");
        }
        if after_timeout {
            if let Some(deadline) = session.poll_timeout() {
                assert!(
                    deadline > now,
                    "deadline {deadline:?} not after now {now:?} after handle_timeout"
                );
            }
        }
        // One frame of input at most, plus what the application queued and
        // one staged chunk of output.
        let bound = MAX_FRAME as usize + 16 * 1024 + 16 * 1024 + 4096;
        assert!(
            session.buffered_bytes() <= bound,
            "session holds {} bytes",
            session.buffered_bytes()
        );
    }
}

/// The transport a target's setup byte chooses (its lowest bit).
pub(crate) fn transport(setup: u8) -> Transport {
    if setup & 1 == 0 {
        Transport::Stream
    } else {
        Transport::Datagram
    }
}

/// One session driven by arbitrary operations: input, datagrams, time,
/// timeouts, sends, closes, end of stream, partial writes.
pub fn session(data: &[u8]) {
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    let transport = transport(setup);
    let role = if setup & 2 == 0 { Role::Server } else { Role::Client };
    let mut now = Instant::ZERO;
    let mut session = Session::new(config(transport), role, now, u64::from(setup)).expect("valid config");
    let mut watch = Watch::default();
    if setup & 4 != 0 && role == Role::Server {
        session.handle_input(now, &hello()[..]);
    }
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 2000 {
            break;
        }
        let mut after_timeout = false;
        match op % 9 {
            0 | 1 => {
                let n = usize::from(input.byte().unwrap_or(0));
                session.handle_input(now, input.take(n));
            }
            2 => {
                let n = usize::from(input.byte().unwrap_or(0));
                session.handle_datagram(now, input.take(n));
            }
            3 => now += Duration::from_micros(u64::from(input.u16().unwrap_or(0)) * 16),
            4 => {
                if let Some(deadline) = session.poll_timeout() {
                    now = now.max(deadline);
                }
                session.handle_timeout(now);
                after_timeout = true;
            }
            5 => {
                let n = usize::from(input.u16().unwrap_or(0)) % 5000;
                let _ = session.send(u16::from(op), vec![op; n]);
            }
            6 => {
                let _ = session.close(now, CloseCode::from_wire(u16::from(input.byte().unwrap_or(0))), "fuzz");
            }
            7 => {
                let budget = usize::from(input.byte().unwrap_or(0));
                if let Some(out) = session.poll_transmit(now) {
                    let n = out.len().min(budget);
                    session.advance_transmit(n);
                }
            }
            _ => {
                if op & 0x80 != 0 {
                    session.handle_eof(now);
                } else {
                    let _ = session.abort(now, CloseCode::SLOW_READER, "fuzz");
                }
            }
        }
        watch.check(&mut session, now, after_timeout);
    }
}

/// The timer wheel against a plain model: insert, cancel, advance; the
/// same timers fire, none early, none twice.
pub fn wheel(data: &[u8]) {
    let mut input = Input(data);
    let resolution = u64::from(input.byte().unwrap_or(1)).max(1);
    let mut wheel = TimerWheel::new(Duration::from_nanos(resolution));
    let mut live: BTreeMap<u64, (u64, TimerKey)> = BTreeMap::new();
    let mut now = 0u64;
    let mut next_id = 0u64;
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 5000 {
            break;
        }
        match op % 4 {
            0 | 1 => {
                let scale = [1u64, 100, 10_000, 1 << 24][usize::from(op >> 6)];
                let after = u64::from(input.u16().unwrap_or(0)) * scale;
                let deadline = now.saturating_add(after);
                let key = wheel.insert(Instant::from_nanos(deadline), next_id);
                live.insert(next_id, (deadline.div_ceil(resolution), key));
                next_id += 1;
            }
            2 => {
                if !live.is_empty() {
                    let nth = usize::from(input.u16().unwrap_or(0)) % live.len();
                    let id = *live.keys().nth(nth).expect("in range");
                    let (_, key) = live.remove(&id).expect("present");
                    assert_eq!(wheel.cancel(key), Some(id));
                    assert_eq!(wheel.cancel(key), None, "a key works once");
                }
            }
            _ => {
                let scale = [1u64, 1000, 100_000, 1 << 26][usize::from(op >> 6)];
                now = now.saturating_add(u64::from(input.u16().unwrap_or(0)) * scale);
                if let Some(next) = wheel.next_expiration() {
                    if let Some(earliest) = live.values().map(|(tick, _)| *tick).min() {
                        assert!(
                            next.as_nanos() <= earliest.saturating_mul(resolution).max(now),
                            "next expiration after a deadline"
                        );
                    }
                }
                let now_tick = now / resolution;
                let mut fired: Vec<u64> =
                    std::iter::from_fn(|| wheel.poll_expired(Instant::from_nanos(now)).map(|(_, id)| id)).collect();
                fired.sort_unstable();
                let due: Vec<u64> = live
                    .iter()
                    .filter(|(_, (tick, _))| *tick <= now_tick)
                    .map(|(id, _)| *id)
                    .collect();
                assert_eq!(fired, due, "at tick {now_tick}");
                for id in due {
                    live.remove(&id);
                }
            }
        }
        assert_eq!(wheel.len(), live.len());
    }
}
