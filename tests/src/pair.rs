//! Two sessions over an in-memory link, in virtual time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::frame::Frame;
use pulse_proto::{Config, Event, Instant, Role, Session, State, StreamDecoder, Transport};

/// Which end of a [`Pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The session that connected.
    Client,
    /// The session that accepted.
    Server,
}

/// One direction of the link: bytes in flight, delayed, and — for
/// datagrams — maybe lost, duplicated or reordered, all from one seed.
#[derive(Debug)]
pub struct Wire {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..jitter`, drawn per send. A stream keeps
    /// its order (a later send never arrives first); datagrams reorder.
    pub jitter: Duration,
    /// Chance in parts per million that a datagram is lost.
    pub loss_ppm: u32,
    /// Chance in parts per million that a datagram arrives twice.
    pub duplicate_ppm: u32,
    rng: u64,
    last_arrival: Instant,
    /// When true, everything sent is lost (a partition).
    pub cut: bool,
    /// When true, everything sent arrives twice (datagram duplication).
    pub duplicate: bool,
    in_flight: VecDeque<(Instant, Bytes)>,
    observer: Option<StreamDecoder>,
    /// Every frame that crossed this wire, with its send time, when
    /// [`Pair::observe`] is on.
    pub frames: Vec<(Instant, Frame)>,
}

impl Wire {
    fn new(latency: Duration) -> Self {
        Wire {
            latency,
            cut: false,
            duplicate: false,
            jitter: Duration::ZERO,
            loss_ppm: 0,
            duplicate_ppm: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            last_arrival: Instant::ZERO,
            in_flight: VecDeque::new(),
            observer: None,
            frames: Vec::new(),
        }
    }

    fn push(&mut self, now: Instant, bytes: Bytes, transport: Transport) {
        if let Some(observer) = self.observer.as_mut() {
            let mut input = bytes.clone();
            if transport == Transport::Datagram && input.starts_with(&pulse_proto::frame::MAGIC) {
                bytes::Buf::advance(&mut input, 4);
            }
            match transport {
                Transport::Stream => {
                    while let Ok(Some(frame)) = observer.decode(&mut input) {
                        self.frames.push((now, frame));
                    }
                }
                Transport::Datagram => {
                    while let Ok(Some(frame)) = pulse_proto::next_datagram_frame(&mut input, u32::MAX >> 2) {
                        self.frames.push((now, frame));
                    }
                }
            }
        }
        if self.cut {
            return;
        }
        let datagram = transport == Transport::Datagram;
        if datagram && self.chance(self.loss_ppm) {
            return;
        }
        let copies = if self.duplicate || (datagram && self.chance(self.duplicate_ppm)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_nanos(self.random() % self.jitter.as_nanos() as u64)
            };
            let mut at = now + self.latency + jitter;
            if !datagram {
                at = at.max(self.last_arrival); // a stream never reorders
            }
            self.last_arrival = self.last_arrival.max(at);
            let position = self.in_flight.partition_point(|(t, _)| *t <= at);
            self.in_flight.insert(position, (at, bytes.clone()));
        }
    }

    /// Seeds this wire's randomness (loss, duplication, jitter).
    pub fn seed(&mut self, seed: u64) {
        self.rng = seed | 1;
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: small, fast, and the same on every machine.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && (self.random() % 1_000_000) < u64::from(ppm)
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(at, _)| *at)
    }
}

/// One session and what its driver saw.
#[derive(Debug)]
pub struct Endpoint {
    /// The session.
    pub session: Session,
    /// Every event, with the time it was drained.
    pub events: Vec<(Instant, Event)>,
    /// A frozen endpoint neither reads, writes nor runs timers (its process
    /// is stopped); input waits for it.
    pub frozen: bool,
    /// How far the driver is from reading: its timer fires this late.
    pub timer_lateness: Duration,
    /// Added to the time this endpoint's driver reads from its clock (a
    /// clock step forward; the session treats time going back as standing
    /// still).
    pub clock_offset: Duration,
    armed: Option<Instant>,
    /// Times the driver's timer fired and `handle_timeout` found nothing due.
    pub spurious_wakeups: u64,
    /// Times the timer fired.
    pub wakeups: u64,
    /// When input was last delivered.
    pub last_input_at: Option<Instant>,
    /// Times input moved the deadline earlier after the handshake: each
    /// would force a real driver to re-arm on receive. The contract says 0.
    pub contract_breaks: u64,
}

impl Endpoint {
    fn new(session: Session) -> Self {
        let armed = session.poll_timeout();
        Endpoint {
            session,
            events: Vec::new(),
            frozen: false,
            timer_lateness: Duration::ZERO,
            clock_offset: Duration::ZERO,
            armed,
            spurious_wakeups: 0,
            wakeups: 0,
            last_input_at: None,
            contract_breaks: 0,
        }
    }

    /// Events matching `f`, with their times.
    pub fn events_where(&self, f: impl Fn(&Event) -> bool) -> Vec<(Instant, Event)> {
        self.events.iter().filter(|(_, e)| f(e)).cloned().collect()
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(event) = self.session.poll_event() {
            self.events.push((now, event));
        }
    }

    fn rearm(&mut self) {
        self.armed = self.session.poll_timeout();
    }

    /// When the timer fires on the shared time base: the deadline was set on
    /// this endpoint's own (possibly stepped) clock.
    fn fire_at(&self) -> Option<Instant> {
        self.armed.map(|at| at - self.clock_offset + self.timer_lateness)
    }
}

/// Two sessions wired through an in-memory link with latency, in virtual
/// time that jumps from one deadline or arrival to the next.
#[derive(Debug)]
pub struct Pair {
    /// The current virtual time.
    pub now: Instant,
    /// The connecting end.
    pub client: Endpoint,
    /// The accepting end.
    pub server: Endpoint,
    /// Client to server.
    pub to_server: Wire,
    /// Server to client.
    pub to_client: Wire,
    transport: Transport,
    steps: u64,
}

/// Steps a run may take before the harness calls it a hang.
const MAX_STEPS: u64 = 10_000_000;

impl Pair {
    /// A client and a server with the given configs, one-way latency and
    /// jitter seeds derived from `seed`, both starting at time zero.
    pub fn new(client: Arc<Config>, server: Arc<Config>, latency: Duration, seed: u64) -> Pair {
        let now = Instant::ZERO;
        let transport = client.transport;
        let client = Session::new(client, Role::Client, now, seed.wrapping_mul(2)).expect("client config");
        let server = Session::new(server, Role::Server, now, seed.wrapping_mul(2) + 1).expect("server config");
        Pair {
            now,
            client: Endpoint::new(client),
            server: Endpoint::new(server),
            to_server: Wire::new(latency),
            to_client: Wire::new(latency),
            transport,
            steps: 0,
        }
    }

    /// Both ends with the same config.
    pub fn with_config(config: Arc<Config>, latency: Duration, seed: u64) -> Pair {
        Pair::new(config.clone(), config, latency, seed)
    }

    /// Records every frame on both wires from now on.
    pub fn observe(&mut self) {
        self.to_server.observer = Some(StreamDecoder::new(u32::MAX >> 2));
        self.to_client.observer = Some(StreamDecoder::new(u32::MAX >> 2));
    }

    /// The endpoint on `side`.
    pub fn side(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Runs until both sessions are established, or panics after `limit`.
    pub fn connect(&mut self, limit: Duration) {
        let until = self.now + limit;
        self.run_while(until, |p| {
            p.client.session.state() == State::Handshaking || p.server.session.state() == State::Handshaking
        });
        assert_eq!(
            self.client.session.state(),
            State::Established,
            "client did not connect"
        );
        assert_eq!(
            self.server.session.state(),
            State::Established,
            "server did not connect"
        );
    }

    /// Lets `d` of virtual time pass.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_while(until, |_| true);
        self.now = self.now.max(until);
    }

    /// Runs until `until` or until `go_on` says stop, whichever is first.
    /// Returns whether `go_on` stopped it.
    pub fn run_while(&mut self, until: Instant, mut go_on: impl FnMut(&Pair) -> bool) -> bool {
        self.flush();
        loop {
            if !go_on(self) {
                return true;
            }
            let Some(next) = self.next_instant() else { return false };
            if next > until {
                return false;
            }
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "simulation did not settle");
            self.now = self.now.max(next);
            self.deliver();
            self.fire_timers();
            self.flush();
        }
    }

    /// Sends from `side` now, as the application would.
    pub fn send(&mut self, side: Side, tag: u16, payload: impl Into<Bytes>) -> Result<(), pulse_proto::SendError> {
        let result = self.side(side).session.send(tag, payload);
        self.flush();
        result
    }

    /// Closes from `side` now.
    pub fn close(&mut self, side: Side, code: pulse_proto::CloseCode, reason: &str) {
        let now = self.now;
        let end = self.side(side);
        end.session
            .close(now, code, reason)
            .expect("a code a local close may send");
        end.rearm();
        self.flush();
    }

    fn next_instant(&self) -> Option<Instant> {
        let mut candidates = Vec::with_capacity(4);
        for (end, wire) in [(&self.client, &self.to_client), (&self.server, &self.to_server)] {
            if !end.frozen {
                candidates.extend(end.fire_at());
                candidates.extend(wire.next_arrival());
            }
        }
        candidates.into_iter().min()
    }

    fn deliver(&mut self) {
        let now = self.now;
        for (end, wire) in [
            (&mut self.client, &mut self.to_client),
            (&mut self.server, &mut self.to_server),
        ] {
            if end.frozen {
                continue;
            }
            while wire.next_arrival().is_some_and(|at| at <= now) {
                let (_, bytes) = wire.in_flight.pop_front().expect("arrival");
                let before = end.session.state();
                let local = now + end.clock_offset;
                end.session.handle_input(local, bytes);
                end.last_input_at = Some(now);
                let after = end.session.poll_timeout();
                if before != State::Handshaking && matches!((after, end.armed), (Some(a), Some(b)) if a < b) {
                    end.contract_breaks += 1;
                }
                // A real driver re-arms only when the deadline moved earlier
                // (after the handshake, never) or disappeared.
                if before == State::Handshaking
                    || after.is_none()
                    || matches!((after, end.armed), (Some(a), Some(b)) if a < b)
                {
                    end.armed = after;
                }
                end.drain_events(now);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for end in [&mut self.client, &mut self.server] {
            if end.frozen || end.fire_at().is_none_or(|at| at > now) {
                continue;
            }
            end.wakeups += 1;
            let before = (end.events.len(), end.session.state());
            end.session.handle_timeout(now + end.clock_offset);
            end.drain_events(now);
            // Nothing to send, nothing to tell: the wake-up was for nothing.
            let output = end.session.poll_transmit(now).is_some();
            if !output && (end.events.len(), end.session.state()) == before {
                end.spurious_wakeups += 1;
            }
            end.rearm();
        }
    }

    /// Moves every byte each unfrozen session wants to send onto its wire.
    pub fn flush(&mut self) {
        let now = self.now;
        let transport = self.transport;
        for (end, wire) in [
            (&mut self.client, &mut self.to_server),
            (&mut self.server, &mut self.to_client),
        ] {
            if end.frozen {
                continue;
            }
            while let Some(bytes) = end.session.poll_transmit(now + end.clock_offset) {
                let bytes = Bytes::copy_from_slice(bytes);
                end.session.advance_transmit(bytes.len());
                wire.push(now, bytes, transport);
            }
            end.drain_events(now);
        }
    }
}
