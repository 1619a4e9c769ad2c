//! One session and its driver: what a real event loop does with it (one
//! armed timer, never re-armed on receive), and what it saw.

use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{CloseCode, Event, Instant, Session, State, Transport};

use super::process::Process;
use super::wire::Wire;

/// A read takes at most this much of a stream at once, as a driver's read
/// buffer would.
const READ_BUFFER: usize = 64 * 1024;

/// One session and what its driver saw.
#[derive(Debug)]
pub struct Endpoint {
    /// The session.
    pub session: Session,
    /// Every event, with the (shared) time it was drained.
    pub events: Vec<(Instant, Event)>,
    /// When this endpoint's process runs and what its clock reads. In a
    /// [`crate::Net`] the host's process governs instead.
    pub process: Process,
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
    /// When each PING left (the shared time of the write).
    pub ping_times: Vec<Instant>,
    /// Dead-peer verdicts given although bytes had landed at this end
    /// within the agreed dead timeout: `(verdict, last landing)`. The link
    /// was not silent, so the verdict is false whatever the cause.
    pub unfounded_verdicts: Vec<(Instant, Instant)>,
    dead_timeout: Option<Duration>,
    pings_logged: u32,
}

impl Endpoint {
    /// Drives `session`, arming its first timer.
    pub fn new(session: Session) -> Self {
        let armed = session.poll_timeout();
        Endpoint {
            session,
            events: Vec::new(),
            process: Process::default(),
            armed,
            spurious_wakeups: 0,
            wakeups: 0,
            last_input_at: None,
            contract_breaks: 0,
            ping_times: Vec::new(),
            unfounded_verdicts: Vec::new(),
            dead_timeout: None,
            pings_logged: 0,
        }
    }

    /// Events matching `f`, with their times.
    pub fn events_where(&self, f: impl Fn(&Event) -> bool) -> Vec<(Instant, Event)> {
        self.events.iter().filter(|(_, e)| f(e)).cloned().collect()
    }

    /// When this end gave a dead-peer verdict.
    pub fn verdicts(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::PeerDead { .. }))
            .map(|(at, _)| *at)
            .collect()
    }

    /// The session's end, if it ended: when, and with which code.
    pub fn ended(&self) -> Option<(Instant, CloseCode)> {
        self.events.iter().find_map(|(at, e)| match e {
            Event::Closed(closed) => Some((*at, closed.code)),
            _ => None,
        })
    }

    /// Whether the session was closed for "too many pings", by either side.
    pub fn closed_for_ping_rate(&self) -> bool {
        self.ended().is_some_and(|(_, code)| code == CloseCode::TOO_MANY_PINGS)
    }

    /// The armed timer, on this endpoint's own clock.
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }

    /// Reads `bytes` that landed, at shared time `now`, with the process
    /// clock reading `local`. `landing`: when bytes last landed here.
    pub(crate) fn read(
        &mut self,
        now: Instant,
        local: Instant,
        bytes: Bytes,
        transport: Transport,
        landing: Option<Instant>,
    ) {
        let before = self.session.state();
        match transport {
            Transport::Stream => self.session.handle_input(local, bytes),
            Transport::Datagram => self.session.handle_datagram(local, bytes),
        }
        self.last_input_at = Some(now);
        let after = self.session.poll_timeout();
        let earlier = matches!((after, self.armed), (Some(a), Some(b)) if a < b);
        if before != State::Handshaking && earlier {
            self.contract_breaks += 1;
        }
        // A real driver re-arms only when the deadline moved earlier
        // (after the handshake, never) or disappeared.
        if before == State::Handshaking || after.is_none() || earlier {
            self.armed = after;
        }
        self.drain_events(now, landing);
    }

    /// Reads everything that landed on `wire` by `now`: a stream in reads
    /// of up to 64 KiB (bunched segments arrive in one read, as from a real
    /// socket), datagrams one by one.
    pub(crate) fn read_all(&mut self, now: Instant, local: Instant, wire: &mut Wire, transport: Transport) -> bool {
        let mut any = false;
        while let Some(first) = wire.pop_landed(now) {
            any = true;
            let bytes = match transport {
                Transport::Datagram => first,
                Transport::Stream => {
                    let mut read = first.to_vec();
                    while read.len() < READ_BUFFER && wire.next_arrival().is_some_and(|at| at <= now) {
                        read.extend_from_slice(&wire.pop_landed(now).expect("landed"));
                    }
                    Bytes::from(read)
                }
            };
            self.read(now, local, bytes, transport, wire.last_landing(now));
        }
        any
    }

    /// When the armed timer fires on the shared time base, for `process`.
    pub(crate) fn fire_at(&self, process: &Process) -> Option<Instant> {
        self.armed.map(|at| process.timer_fires(at))
    }

    /// The timer fired: runs it with the current time.
    pub(crate) fn fire(&mut self, now: Instant, local: Instant, landing: Option<Instant>) {
        self.wakeups += 1;
        let before = (self.events.len(), self.session.state());
        self.session.handle_timeout(local);
        self.drain_events(now, landing);
        // Nothing to send, nothing to tell: the wake-up was for nothing.
        let output = self.session.poll_transmit(local).is_some();
        if !output && (self.events.len(), self.session.state()) == before {
            self.spurious_wakeups += 1;
        }
        self.rearm();
    }

    /// The transport ended under the session (a reset, the end of the
    /// stream): tells the session, as a driver does on a read of 0 bytes.
    pub(crate) fn end_of_stream(&mut self, now: Instant, local: Instant) {
        self.session.handle_eof(local);
        self.drain_events(now, None);
        self.rearm();
    }

    /// Re-reads the deadline, as after a local call.
    pub(crate) fn rearm(&mut self) {
        self.armed = self.session.poll_timeout();
    }

    /// Moves everything the session wants to send onto `wire`.
    pub(crate) fn flush(
        &mut self,
        now: Instant,
        local: Instant,
        wire: &mut Wire,
        transport: Transport,
        landing: Option<Instant>,
    ) {
        while let Some(bytes) = self.session.poll_transmit(local) {
            let bytes = Bytes::copy_from_slice(bytes);
            self.session.advance_transmit(bytes.len());
            wire.push(now, bytes, transport);
        }
        // Counted when staged, which may be before this write.
        let sent = self.session.stats().pings_sent;
        self.ping_times.extend((self.pings_logged..sent).map(|_| now));
        self.pings_logged = sent;
        self.drain_events(now, landing);
    }

    fn drain_events(&mut self, now: Instant, landing: Option<Instant>) {
        while let Some(event) = self.session.poll_event() {
            match &event {
                Event::Connected(negotiated) | Event::Retimed(negotiated) => {
                    self.dead_timeout = Some(negotiated.dead_timeout())
                }
                Event::PeerDead { .. } => {
                    if let (Some(timeout), Some(landed)) = (self.dead_timeout, landing) {
                        if now - landed < timeout {
                            self.unfounded_verdicts.push((now, landed));
                        }
                    }
                }
                _ => {}
            }
            self.events.push((now, event));
        }
    }
}
