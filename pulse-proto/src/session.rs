//! The session: one connection's protocol state, driven by `handle_*` calls
//! and drained by `poll_*` calls. Every state transition lives in this
//! file: `handshake.rs`, `closing.rs`, `liveness.rs` and `ping_policy.rs`
//! decide and return their decisions; `transmit.rs` only serialises.

use alloc::boxed::Box;
use alloc::sync::Arc;
use bytes::{Buf, Bytes};
use core::time::Duration;

use crate::close::{CloseCode, Initiator};
use crate::closing::{self, Ending};
use crate::config::{Config, Transport, HANDSHAKE_FRAME_LEN};
use crate::decoder::{next_datagram_frame, StreamDecoder};
use crate::error::{CloseError, ConfigError, ProtocolError, SendError};
use crate::event::{Closed, Event, EventQueue, RttSample};
use crate::frame::{frame_type, Cookie, Frame, Hello, Welcome, MAGIC};
use crate::handshake::{self, Handshake};
use crate::jitter::Jitter;
use crate::liveness::{Due, Liveness, ProbeTiming};
use crate::negotiated::Negotiated;
use crate::output::Output;
use crate::ping_policy::{PingGuard, PingPolicy, PingVerdict};
use crate::rtt::RttEstimator;
use crate::stats::{bump, Stats};
use crate::status::Status;
use crate::time::Instant;
use crate::tuning::{interval_for_gap, Request, Timing, Tuning};
use crate::{Adaptive, Learned};

/// Which end of the connection this session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Opens the connection, sends HELLO, and is the side that pings on an
    /// idle connection.
    Client,
    /// Accepts the connection, answers with WELCOME, states the ping policy,
    /// and pings only when the client has fallen silent.
    Server,
}

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Waiting for the peer's HELLO or WELCOME.
    Handshaking,
    /// Exchanging DATA; heartbeats run.
    Established,
    /// A graceful close is in progress: queued DATA drains, CLOSE goes out,
    /// and (when we initiated) the peer's CLOSE is awaited.
    Closing,
    /// Over: [`Event::Closed`] has been queued. `poll_transmit` may still
    /// yield a final CLOSE; write it if the transport takes it at once, then
    /// drop the transport.
    Closed,
}

/// Control frames decided but not yet serialised. Flags only, but for the
/// PONG and STATUS they carry: the frames' other contents live where they
/// are decided (handshake, ending, ping ids).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// When the PING we owe a PONG arrived, for the PONG's hold time.
    pub(crate) pong_at: Instant,
    pub(crate) pong_id: u32,
    pub(crate) pong: bool,
    pub(crate) ping: bool,
    pub(crate) magic: bool,
    pub(crate) hello: bool,
    pub(crate) welcome: bool,
    /// The CLOSE described by `Session::ending`.
    pub(crate) close: bool,
    pub(crate) status: Option<Status>,
    /// A RETIME described by `Session::tuning` (a request or an answer).
    pub(crate) retime: bool,
}

impl Pending {
    fn any(&self) -> bool {
        self.pong || self.ping || self.hello || self.welcome || self.close || self.retime || self.status.is_some()
    }
}

/// One pulse connection as a pure state machine. See the crate docs for the
/// drive loop.
#[derive(Debug)]
pub struct Session {
    pub(crate) config: Arc<Config>,
    pub(crate) role: Role,
    pub(crate) state: State,
    pub(crate) now: Instant,
    pub(crate) decoder: StreamDecoder,
    pub(crate) output: Output,
    pub(crate) events: EventQueue,
    pub(crate) pending: Pending,
    pub(crate) handshake: Option<Box<Handshake>>,
    pub(crate) negotiated: Option<Negotiated>,
    pub(crate) liveness: Liveness,
    pub(crate) jitter: Jitter,
    pub(crate) rtt: RttEstimator,
    pub(crate) guard: PingGuard,
    pub(crate) next_ping_id: u32,
    /// The id of the PING awaiting its PONG (0: none; 0 is never sent),
    /// and when it left.
    pub(crate) ping_out_id: u32,
    pub(crate) ping_out_at: Instant,
    pub(crate) ending: Option<Box<Ending>>,
    /// When output last made progress, or last was empty: a peer that
    /// takes nothing for the slow-reader timeout does not read.
    pub(crate) output_since: Instant,
    /// A `send` was refused as the queue was full: `SendReady` is owed.
    pub(crate) send_blocked: bool,
    /// In-session timing changes and the adaptive interval, when used.
    pub(crate) tuning: Option<Box<Tuning>>,
    pub(crate) stats: Stats,
}

/// Upper bound on liveness steps per `handle_timeout`.
const MAX_TIMER_STEPS: usize = 8;

impl Session {
    /// A new session at `now`. `seed` drives interval jitter: give each
    /// session its own (a counter or a random number), and the same seed for
    /// a replay. A client queues its HELLO at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_proto::{Config, Instant, Role, Session};
    ///
    /// let client = Session::new(Config::default(), Role::Client, Instant::ZERO, 1).unwrap();
    /// assert!(client.poll_timeout().is_some()); // the handshake timeout
    /// ```
    pub fn new(config: impl Into<Arc<Config>>, role: Role, now: Instant, seed: u64) -> Result<Session, ConfigError> {
        let config = config.into();
        config.validate()?;
        let is_client = role == Role::Client;
        Ok(Session {
            role,
            state: State::Handshaking,
            now,
            decoder: StreamDecoder::new(HANDSHAKE_FRAME_LEN),
            output: Output::default(),
            events: EventQueue::default(),
            pending: Pending {
                magic: config.transport == Transport::Stream,
                hello: is_client,
                ..Pending::default()
            },
            handshake: Some(Box::new(Handshake::new(now, &config, is_client))),
            negotiated: None,
            liveness: Liveness::new(now, config.interval),
            jitter: Jitter::new(seed),
            rtt: RttEstimator::default(),
            guard: PingGuard::new(now),
            next_ping_id: 1,
            ping_out_id: 0,
            ping_out_at: now,
            ending: None,
            output_since: now,
            send_blocked: false,
            tuning: match (role, config.adaptive, config.transport) {
                (Role::Client, Some(adaptive), transport) => Some(Box::new(Tuning::adaptive(adaptive, now, transport))),
                // A datagram client keeps its last send (one box, few such
                // sessions per process); stream sessions and servers pay nothing.
                (Role::Client, None, Transport::Datagram) => Some(Box::new(Tuning::datagram_client(now))),
                _ => None,
            },
            stats: Stats::default(),
            config,
        })
    }

    /// Feeds bytes read from a stream transport, in pieces of any size.
    /// Pass [`bytes::Bytes`] to get DATA payloads without a copy; `&[u8]`
    /// works too. Once established, this never moves [`Session::poll_timeout`]
    /// earlier. On a datagram session, `input` is taken as one datagram.
    pub fn handle_input(&mut self, now: Instant, mut input: impl Buf) {
        if self.config.transport == Transport::Datagram {
            return self.handle_datagram(now, input);
        }
        let now = self.enter(now);
        if !self.accepts_input() {
            return;
        }
        self.note_input();
        self.stats.bytes_received += input.remaining() as u64;
        let before = self.poll_timeout();
        while self.accepts_input() {
            match self.decoder.decode(&mut input) {
                Ok(Some(frame)) => {
                    self.stats.frames_received += 1;
                    if let Err(error) = self.on_frame(now, frame) {
                        self.fail(error);
                    }
                }
                Ok(None) => break,
                Err(error) => self.fail(error),
            }
        }
        self.keep_deadline(before);
    }

    /// Feeds one datagram. A datagram that does not decode whole is dropped
    /// and counted; it is not proof of life, and closes nothing. Datagrams
    /// may arrive lost, duplicated or reordered.
    pub fn handle_datagram(&mut self, now: Instant, mut datagram: impl Buf) {
        let now = self.enter(now);
        if !self.accepts_input() {
            return;
        }
        self.note_input();
        let mut bytes = datagram.copy_to_bytes(datagram.remaining());
        self.stats.bytes_received += bytes.len() as u64;
        let has_magic = bytes.starts_with(&MAGIC);
        if has_magic {
            bytes.advance(MAGIC.len());
        }
        let max = self.frame_limit();
        let mut check = bytes.clone();
        let whole = loop {
            match next_datagram_frame(&mut check, max) {
                Ok(Some(_)) => {}
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        if !whole || (self.state == State::Handshaking && self.role == Role::Server && !has_magic) {
            bump(&mut self.stats.datagrams_dropped);
            return;
        }
        let before = self.poll_timeout();
        while let Ok(Some(frame)) = next_datagram_frame(&mut bytes, max) {
            if !self.accepts_input() {
                break;
            }
            self.stats.frames_received += 1;
            if let Err(error) = self.on_frame(now, frame) {
                self.fail(error);
            }
        }
        self.keep_deadline(before);
    }

    /// Tells the session the stream ended (a read returned 0 bytes) or the
    /// transport failed. If the peer had not closed properly this reports
    /// [`CloseCode::LOST`] at once, rather than waiting for the dead-peer
    /// timeout; during a graceful close it completes the close.
    pub fn handle_eof(&mut self, now: Instant) {
        let now = self.enter(now);
        // A path that forgot us answers our PING with a reset.
        if self.state == State::Established {
            self.on_idle_death(now);
        }
        self.keep_unsent();
        self.output.discard_all();
        self.pending = Pending::default();
        match self.state {
            State::Closed => {}
            State::Closing => self.finish(),
            _ => self.end(Closed::new(
                CloseCode::LOST,
                "transport closed without CLOSE",
                Initiator::Peer,
            )),
        }
    }

    /// Runs the timers. Call it when [`Session::poll_timeout`] passes, with
    /// the current time (not the deadline). Calling it early is a no-op.
    ///
    /// If it comes later past the deadline than the stall threshold
    /// ([`Config::stall_threshold_for`] the agreed interval), our own
    /// process stalled: frames may be waiting unread in our socket, or not
    /// yet sent again by the network, so the peer is given a full probe
    /// round before any verdict. Drivers should read their sockets before
    /// running timers for the same wake-up.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.enter(now);
        self.note_local_call();
        // Checked at every timer, due or not, rather than with a deadline of
        // its own: output created by input (a PONG) must not pull the
        // deadline earlier. The timer fires at least every few intervals.
        if self.state == State::Established && self.output_stuck_until().is_some_and(|at| now >= at) {
            bump(&mut self.stats.slow_reader_closes);
            return self.hard_close(closing::local(
                CloseCode::SLOW_READER,
                "the peer read nothing for the slow-reader timeout",
            ));
        }
        self.apply_agreed_timing(now);
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Handshaking => self.on_handshake_timeout(now),
            State::Established => {
                if now - deadline > self.config.stall_threshold_for(self.interval()) {
                    self.on_own_stall(now);
                }
                self.run_liveness(now);
            }
            // The graceful close ran out of time: what it never began to
            // send is handed back (`docs/PROTOCOL.md` §6.11.1 rule 4).
            State::Closing => {
                self.keep_unsent();
                self.finish();
            }
            State::Closed => {}
        }
    }

    /// Queues an application message. Messages go out in order, behind any
    /// heartbeat. On a datagram transport DATA is unreliable: it may be
    /// lost, duplicated or reordered, and must fit one datagram.
    pub fn send(&mut self, tag: u16, payload: impl Into<Bytes>) -> Result<(), SendError> {
        self.enter(self.now);
        match self.state {
            State::Handshaking => return Err(SendError::NotConnected),
            State::Closing | State::Closed => return Err(SendError::Closed),
            State::Established => {}
        }
        let payload = payload.into();
        let max = self.max_payload();
        if payload.len() > max {
            return Err(SendError::TooLarge {
                len: payload.len(),
                max,
            });
        }
        let queued = self.output.queued();
        let frame = crate::frame::data_overhead(payload.len()) + payload.len();
        if queued > 0 && queued + frame > self.config.max_queued_bytes {
            self.send_blocked = true;
            return Err(SendError::QueueFull {
                queued,
                max: self.config.max_queued_bytes,
            });
        }
        self.output.push(tag, payload);
        self.note_local_call();
        Ok(())
    }

    /// Tells the peer this service's own state (`docs/PROTOCOL.md` §6.9):
    /// level-triggered, the latest replaces any not yet sent. Needs a
    /// version-2 peer.
    pub fn send_status(&mut self, status: Status) -> Result<(), SendError> {
        match (self.state, self.negotiated) {
            (State::Handshaking, _) => Err(SendError::NotConnected),
            (State::Established, Some(n)) if n.version >= 2 => {
                self.enter(self.now);
                self.pending.status = Some(status);
                Ok(())
            }
            (State::Established, Some(n)) => Err(SendError::Unsupported { version: n.version }),
            _ => Err(SendError::Closed),
        }
    }

    /// Asks the server for new timings in-session (a client, with a
    /// version-2 server; `docs/PROTOCOL.md` §6.10). The server answers with
    /// what it agrees to — clamped into its range as in the handshake, or
    /// the current values if it refuses — and each side switches at its
    /// next timer, with an [`Event::Retimed`]. A server that does not know
    /// the request skips it, and the handshake's values stay.
    pub fn retime(&mut self, now: Instant, interval: Duration, dead_timeout: Duration) -> Result<(), SendError> {
        self.check_retime()?;
        self.enter(now);
        let timing = (crate::config::wire_ms(interval), crate::config::wire_ms(dead_timeout));
        self.tuning.get_or_insert_with(Box::default).ask(timing);
        self.pending.retime = true;
        Ok(())
    }

    fn check_retime(&self) -> Result<(), SendError> {
        match (self.state, self.negotiated, self.role) {
            (State::Handshaking, ..) => Err(SendError::NotConnected),
            (State::Established, Some(n), Role::Client) if n.version >= 2 => Ok(()),
            (State::Established, Some(n), _) => Err(SendError::Unsupported { version: n.version }),
            _ => Err(SendError::Closed),
        }
    }

    /// Tells an adaptive client whether its application is active (in the
    /// foreground, say): while active it uses the adaptive config's
    /// `active` interval, and learns nothing; then back to what it learned.
    /// Renegotiates at once when it can. No-op for a session not adaptive.
    pub fn set_active(&mut self, now: Instant, active: bool) {
        let now = self.enter(now);
        if let Some(adaptive) = self.tuning.as_mut().and_then(|t| t.adaptive.as_mut()) {
            adaptive.set_active(active);
            let target = adaptive.target_gap();
            // A local call may move the deadline earlier: cut at once.
            let last_sent = self.last_sent();
            self.liveness.cap_spacing(target, Instant::ZERO, last_sent);
            self.follow_adaptive(now);
        }
    }

    /// What an adaptive client has learned of its path: keep it per network
    /// and hand it to the next session on that network with
    /// [`Session::set_learned`]. `None` when not adaptive.
    pub fn learned(&self) -> Option<Learned> {
        self.adaptive().map(Adaptive::learned)
    }

    /// Gives an adaptive client what an earlier session learned of this
    /// network, before its handshake (so its HELLO asks for it) or after.
    pub fn set_learned(&mut self, learned: Learned) {
        let now = self.now;
        if let Some(tuning) = self.tuning.as_mut() {
            if let (Some(adaptive), Some(config)) = (tuning.adaptive.as_mut(), self.config.adaptive) {
                *adaptive = Adaptive::new(config, learned, now);
            }
        }
        if self.state == State::Established {
            self.follow_adaptive(now);
        }
    }

    /// The adaptive policy, if this session has one.
    pub fn adaptive(&self) -> Option<&Adaptive> {
        self.tuning.as_ref().and_then(|t| t.adaptive.as_ref())
    }

    /// Closes gracefully: DATA already queued goes first, then CLOSE, then
    /// the peer's CLOSE is awaited, all within [`Config::close_timeout`].
    /// During the handshake the close is immediate. No-op once closing.
    ///
    /// Refuses a code that only the protocol may send
    /// ([`CloseCode::is_sendable`]).
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), CloseError> {
        if !code.is_sendable() {
            return Err(CloseError { code });
        }
        let now = self.enter(now);
        match self.state {
            State::Handshaking => self.hard_close(closing::local(code, reason)),
            State::Established => {
                self.state = State::Closing;
                self.pending.close = true;
                // A local call: DATA held over an idle path is confirmed now.
                self.note_local_call();
                self.ending = Some(Box::new(Ending::new(
                    closing::local(code, reason),
                    now + self.config.close_timeout,
                )));
            }
            State::Closing | State::Closed => {}
        }
        Ok(())
    }

    /// Closes at once: queued DATA is dropped, CLOSE with `code` goes out
    /// ahead of anything not yet begun (if the stream is between frames),
    /// and the session is closed without waiting for the peer. For a
    /// shutdown whose grace has run out, or a driver's own limit.
    ///
    /// Refuses a code that only the protocol may send.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_proto::{CloseCode, Config, Event, Instant, Role, Session};
    ///
    /// let mut client = Session::new(Config::default(), Role::Client, Instant::ZERO, 1).unwrap();
    /// client.abort(Instant::ZERO, CloseCode::GOING_AWAY, "shutting down").unwrap();
    /// assert!(client.is_closed());
    /// assert!(matches!(client.poll_event(), Some(Event::Closed(c)) if c.code == CloseCode::GOING_AWAY));
    /// assert!(client.abort(Instant::ZERO, CloseCode::TIMED_OUT, "no").is_err());
    /// ```
    pub fn abort(&mut self, now: Instant, code: CloseCode, reason: &str) -> Result<(), CloseError> {
        if !code.is_sendable() {
            return Err(CloseError { code });
        }
        self.enter(now);
        if self.state != State::Closed {
            self.hard_close(closing::local(code, reason));
        }
        Ok(())
    }

    /// Tells the session its driver has stopped reading the transport
    /// (the application is behind and its unread messages hit a limit):
    /// the peer's silence from now on is ours, so no dead-peer verdict is
    /// given until [`Session::resume_input`]. Heartbeats still go out.
    pub fn pause_input(&mut self, now: Instant) {
        self.enter(now);
        self.liveness.hold();
    }

    /// The driver reads again: the peer gets a full probe round before any
    /// verdict, as after our own stall. A no-op unless paused.
    pub fn resume_input(&mut self, now: Instant) {
        let now = self.enter(now);
        if !self.liveness.is_held() {
            return;
        }
        let probe = self.probe_timing();
        let allowed_at = self.liveness.last_ping() + self.ping_policy().spacing;
        self.liveness.end_hold(allowed_at.max(now) + probe.spacing);
        if self.state == State::Established && allowed_at <= now {
            self.queue_probe(now, probe);
        }
    }

    /// Whether input is paused ([`Session::pause_input`]).
    pub fn is_input_paused(&self) -> bool {
        self.liveness.is_held()
    }

    /// The next event, oldest first. Drain it after every call.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        // Drained, the queue is released: an idle session holds none.
        self.events.pop_front()
    }

    /// The one instant at which [`Session::handle_timeout`] is next needed,
    /// or `None` once closed.
    ///
    /// The timer contract: once the session is established, input from the
    /// peer never moves this deadline earlier, so a driver never re-arms its
    /// timer on receive. A deadline that fires after traffic arrived is a
    /// no-op, after which this returns the later deadline. Only the
    /// handshake completing, and local calls (`send`, `close`, ...), may
    /// move it earlier.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshaking => self.handshake.as_ref().map(|h| h.poll_timeout()),
            State::Established => Some(self.liveness.deadline(self.dead_timeout(), self.last_sent())),
            State::Closing => self.ending.as_ref().map(|e| e.deadline),
            State::Closed => None,
        }
    }

    /// Every entry point starts here: time never goes back, and output that
    /// is empty now starts the slow-reader clock afresh.
    fn enter(&mut self, now: Instant) -> Instant {
        let now = self.clock(now);
        if !self.has_output() {
            self.output_since = now;
        }
        now
    }

    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    pub(crate) fn has_output(&self) -> bool {
        self.pending.any() || self.output.unsent().is_some() || self.output.has_data()
    }

    /// When output that made no progress convicts the peer of not reading:
    /// never sooner than the dead-peer timeout (a peer that read nothing for
    /// that long cannot have seen our PONGs either).
    fn output_stuck_until(&self) -> Option<Instant> {
        let n = self.negotiated?;
        let timeout = self
            .config
            .slow_reader_timeout
            .unwrap_or_default()
            .max(n.dead_timeout());
        self.has_output().then(|| self.output_since + timeout)
    }

    fn accepts_input(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Closing => self.ending.as_ref().is_some_and(|e| !e.peer_done),
            _ => true,
        }
    }

    /// A close begun by input must not end before the deadline armed
    /// before that input: the driver will not re-arm. Nor may a shorter
    /// spacing the adaptive policy chose on input pull the next PING
    /// before it.
    fn keep_deadline(&mut self, before: Option<Instant>) {
        if let Some(cap) = self.tuning.as_mut().and_then(|t| t.cap.take()) {
            if self.state == State::Established {
                let last_sent = self.last_sent();
                self.liveness
                    .cap_spacing(cap, before.unwrap_or(Instant::ZERO), last_sent);
            }
        }
        if let (State::Closing, Some(ending), Some(before)) = (self.state, self.ending.as_mut(), before) {
            ending.deadline = ending.deadline.max(before);
        }
    }

    fn frame_limit(&self) -> u32 {
        match self.state {
            State::Handshaking => HANDSHAKE_FRAME_LEN,
            _ => self.config.max_frame_len,
        }
    }

    fn last_sent(&self) -> Option<Instant> {
        self.tuning.as_ref().and_then(|t| t.last_sent)
    }

    pub(crate) fn interval(&self) -> Duration {
        self.negotiated.map_or(self.config.interval, |n| n.interval())
    }

    fn dead_timeout(&self) -> Duration {
        self.negotiated.map_or(self.config.dead_timeout, |n| n.dead_timeout())
    }

    pub(crate) fn ping_policy(&self) -> PingPolicy {
        match self.negotiated {
            Some(n) => PingPolicy {
                spacing: n.min_ping_spacing(),
                strikes: n.ping_strikes,
                dead_timeout: n.dead_timeout(),
            },
            None => PingPolicy {
                spacing: self.config.min_ping_spacing,
                strikes: self.config.ping_strikes,
                dead_timeout: self.config.dead_timeout,
            },
        }
    }

    /// The probe timeout, never longer than the interval: a side that has no
    /// RTT sample yet (a server that never had to ping) would otherwise use
    /// the initial guess of about a second, and with a fast interval its
    /// next PING, which waits for the last to be judged, could come only
    /// after its own verdict.
    pub(crate) fn probe_timing(&self) -> ProbeTiming {
        let interval = self.interval();
        let timeout = self
            .rtt
            .probe_timeout(self.config.probe_floor_for(interval))
            .min(interval);
        let spacing = timeout.max(self.ping_policy().spacing);
        ProbeTiming { timeout, spacing }
    }

    // ----- input -----

    fn on_frame(&mut self, now: Instant, frame: Frame) -> Result<(), ProtocolError> {
        if self.state == State::Handshaking {
            return self.on_handshake_frame(now, frame);
        }
        self.note_heard(now);
        if let Some(silent_for) = self.liveness.on_receive(now) {
            self.events.push_back(Event::Recovered { silent_for });
            self.respread();
        }
        let datagram = self.config.transport == Transport::Datagram;
        match frame {
            Frame::Ping { id } => return self.on_ping(now, id),
            Frame::Pong { id, hold_us } => self.on_pong(now, id, hold_us),
            Frame::Data { tag, payload } => {
                self.stats.data_received += 1;
                self.events.push_back(Event::Message { tag, payload });
            }
            Frame::Close { code, reason } => self.on_peer_close(Closed::new(code, reason, Initiator::Peer)),
            Frame::Status(status) => self.events.push_back(Event::PeerStatus(status)),
            Frame::Retime {
                id,
                interval_ms,
                dead_timeout_ms,
            } => return self.on_retime(now, id, (interval_ms, dead_timeout_ms)),
            Frame::Hello(hello) if datagram && self.role == Role::Server => self.rewelcome(now, &hello),
            Frame::Welcome(_) | Frame::Retry { .. } if datagram => bump(&mut self.stats.frames_ignored),
            Frame::Extension { .. } => bump(&mut self.stats.frames_ignored),
            other => {
                return Err(ProtocolError::Unexpected {
                    frame_type: other.frame_type(),
                })
            }
        }
        Ok(())
    }

    fn on_handshake_frame(&mut self, now: Instant, frame: Frame) -> Result<(), ProtocolError> {
        let datagram = self.config.transport == Transport::Datagram;
        match (self.role, frame) {
            (Role::Server, Frame::Hello(hello)) => self.on_hello(now, &hello),
            (Role::Client, Frame::Welcome(welcome)) => self.on_welcome(now, &welcome),
            (Role::Client, Frame::Retry { attempt, cookie }) if datagram => {
                self.on_retry(now, attempt, cookie);
                Ok(())
            }
            // Unanswered: the peer has gone, and nothing was agreed.
            (_, Frame::Close { code, reason }) => {
                self.end(Closed::new(code, reason, Initiator::Peer));
                Ok(())
            }
            // RETIME is an extension type too: skipped before the handshake,
            // as a peer that does not know it would.
            (_, Frame::Extension { .. } | Frame::Retime { .. }) => Ok(()),
            // Datagrams overtake each other: a PING may beat the WELCOME.
            _ if datagram => {
                bump(&mut self.stats.frames_ignored);
                Ok(())
            }
            (_, other) => Err(ProtocolError::Unexpected {
                frame_type: other.frame_type(),
            }),
        }
    }

    fn on_hello(&mut self, now: Instant, hello: &Hello) -> Result<(), ProtocolError> {
        let welcome = handshake::answer(&self.config, hello)?;
        let negotiated = handshake::server_side(&self.config, hello, &welcome);
        self.pending.welcome = true;
        if let Some(h) = self.handshake.as_mut() {
            (h.welcome, h.welcomed_at, h.attempt) = (Some(welcome), Some(now), hello.attempt);
        }
        self.establish(now, negotiated);
        Ok(())
    }

    fn on_welcome(&mut self, now: Instant, welcome: &Welcome) -> Result<(), ProtocolError> {
        let negotiated = handshake::accept(self.asked_timing(), welcome)?;
        if let Some(rtt) = self
            .handshake
            .as_ref()
            .and_then(|h| h.sample(now, welcome.ext.map(|e| e.attempt)))
        {
            self.rtt.update(rtt, Duration::ZERO);
        }
        self.establish(now, negotiated);
        // A client needs nothing of the handshake once established.
        self.handshake = None;
        Ok(())
    }

    /// A datagram server wants proof of our address: send HELLO again at
    /// once, with its cookie, and time the next retransmission afresh.
    fn on_retry(&mut self, now: Instant, attempt: u8, cookie: Cookie) {
        let Some(h) = self.handshake.as_mut() else { return };
        if let Some(rtt) = h.sample(now, Some(attempt)) {
            self.rtt.update(rtt, Duration::ZERO);
        }
        h.cookie = Some(cookie);
        h.timeouts = 0;
        h.retransmit_at = Some(now + handshake::retransmit_delay(&self.rtt, 0));
        self.pending.hello = true;
    }

    fn on_handshake_timeout(&mut self, now: Instant) {
        let Some(h) = self.handshake.as_mut() else { return };
        if now >= h.deadline {
            return self.hard_close(closing::local(
                CloseCode::HANDSHAKE_TIMEOUT,
                "handshake not complete in time",
            ));
        }
        h.timeouts += 1;
        h.retransmit_at = Some(now + handshake::retransmit_delay(&self.rtt, h.timeouts));
        self.pending.hello = true;
    }

    /// Our WELCOME was lost and the client asks again; answer, but no
    /// faster than the ping policy so HELLOs cannot be used to flood.
    fn rewelcome(&mut self, now: Instant, hello: &Hello) {
        let spacing = self.ping_policy().spacing;
        let Some(h) = self.handshake.as_mut() else { return };
        if h.welcomed_at.is_some_and(|at| now - at < spacing) {
            bump(&mut self.stats.frames_ignored);
            return;
        }
        h.welcomed_at = Some(now);
        if let Some(ext) = h.welcome.as_mut().and_then(|w| w.ext.as_mut()) {
            ext.attempt = hello.attempt;
        }
        self.pending.welcome = true;
    }

    fn establish(&mut self, now: Instant, negotiated: Negotiated) {
        self.state = State::Established;
        self.negotiated = Some(negotiated);
        self.decoder.set_max_len(self.config.max_frame_len);
        self.guard = PingGuard::new(now);
        if self.role == Role::Client {
            let (requested, agreed) = (
                (negotiated.requested_interval_ms, negotiated.requested_dead_timeout_ms),
                (negotiated.interval_ms, negotiated.dead_timeout_ms),
            );
            self.note_clamp(requested, agreed);
        }
        let (interval, dead_timeout) = (negotiated.interval(), negotiated.dead_timeout());
        let first = match self.role {
            // An adaptive client never lets the path idle past its target.
            Role::Client => self
                .jitter
                .first(interval)
                .min(self.adaptive().map_or(Duration::MAX, Adaptive::target_gap)),
            Role::Server => Jitter::backup(interval, dead_timeout),
        };
        self.liveness = Liveness::new(now, first);
        if let Some(last_sent) = self.tuning.as_mut().and_then(|t| t.last_sent.as_mut()) {
            *last_sent = now;
        }
        self.events.push_back(Event::Connected(negotiated));
    }

    fn on_ping(&mut self, now: Instant, id: u32) -> Result<(), ProtocolError> {
        bump(&mut self.stats.pings_received);
        match self.guard.on_ping(now, id, self.ping_policy()) {
            PingVerdict::Fresh if self.state == State::Established => {
                (self.pending.pong, self.pending.pong_id, self.pending.pong_at) = (true, id, now);
            }
            PingVerdict::Fresh => {}
            PingVerdict::Stale if self.config.transport == Transport::Stream => {
                return Err(ProtocolError::Malformed {
                    frame_type: frame_type::PING,
                    what: "PING id not newer than the last (ids start at 1 and increase)",
                });
            }
            PingVerdict::Stale => bump(&mut self.stats.frames_ignored),
            PingVerdict::TooMany { strikes } => return Err(ProtocolError::TooManyPings { strikes }),
        }
        Ok(())
    }

    fn on_pong(&mut self, now: Instant, id: u32, hold_us: u32) {
        match self.ping_out_id {
            out if out == id && out != 0 => {
                self.ping_out_id = 0;
                let peer_hold = Duration::from_micros(hold_us.into());
                let rtt = (now - self.ping_out_at).saturating_sub(peer_hold);
                self.rtt.update(rtt, peer_hold);
                let smoothed = self.rtt.smoothed();
                self.events.push_back(Event::Rtt(RttSample {
                    rtt,
                    peer_hold,
                    smoothed,
                }));
                self.on_idle_round(now, id);
            }
            _ => bump(&mut self.stats.frames_ignored),
        }
    }

    // ----- timers -----

    /// Our timer fired late: our own process (or machine) stalled, and the
    /// silence may be ours. Probe now if the policy allows, and hold any
    /// verdict until that probe has had a full round.
    fn on_own_stall(&mut self, now: Instant) {
        bump(&mut self.stats.own_stalls);
        let probe = self.probe_timing();
        let allowed_at = self.liveness.last_ping() + self.ping_policy().spacing;
        if allowed_at <= now {
            self.queue_probe(now, probe);
        }
        self.liveness.grant_grace(allowed_at.max(now) + probe.spacing);
    }

    fn run_liveness(&mut self, now: Instant) {
        for _ in 0..MAX_TIMER_STEPS {
            let probe = self.probe_timing();
            match self.liveness.due(now, self.dead_timeout(), self.last_sent()) {
                Due::Nothing => break,
                Due::Ping => {
                    let next = self.draw_spacing();
                    self.pending.ping = true;
                    // Only a client asks, so only a client has a request to resend.
                    if self.tuning.as_mut().is_some_and(|t| t.resend()) {
                        self.pending.retime = true;
                    }
                    self.note_idle_round(now);
                    self.liveness.on_scheduled_ping(now, probe, next);
                }
                Due::Suspect => {
                    self.liveness.set_suspect(probe);
                    bump(&mut self.stats.suspicions);
                    self.events.push_back(Event::Suspect {
                        silent_for: self.liveness.silent_for(now),
                    });
                }
                Due::Probe => self.queue_probe(now, probe),
                Due::Dead => {
                    self.on_idle_death(now);
                    self.events.push_back(Event::PeerDead {
                        silent_for: self.liveness.silent_for(now),
                    });
                    self.hard_close(closing::local(
                        CloseCode::TIMED_OUT,
                        "no frame from the peer within the dead-peer timeout",
                    ));
                    break;
                }
            }
        }
    }

    /// Decides a probe now; it is serialised, ahead of DATA, when the
    /// driver next asks for bytes.
    pub(crate) fn queue_probe(&mut self, now: Instant, probe: ProbeTiming) {
        self.pending.ping = true;
        self.liveness.on_probe(now, probe);
    }

    /// After a suspicion ends, a client draws its next spacing as a new
    /// session's first: clients a stalled server answered in one instant
    /// would otherwise keep that one phase for good (the jitter does not
    /// drift), and ping as a herd. Input, but only later: the next PING is
    /// never due before the probe instant it replaces.
    fn respread(&mut self) {
        if self.role == Role::Client {
            let first = self
                .jitter
                .first(self.interval())
                .min(self.adaptive().map_or(Duration::MAX, Adaptive::target_gap));
            self.liveness.respace(first);
        }
    }

    fn draw_spacing(&mut self) -> Duration {
        let (interval, dead_timeout) = (self.interval(), self.dead_timeout());
        match self.role {
            Role::Client => self
                .jitter
                .next(interval, self.config.jitter_percent)
                .min(self.adaptive().map_or(Duration::MAX, Adaptive::target_gap)),
            // The server is the backup: it pings only if the client's PING is
            // overdue, so an idle pair costs one round trip per interval.
            Role::Server => Jitter::backup(interval, dead_timeout),
        }
    }

    // ----- timings in-session -----

    /// The timings a client asks for: its adaptive target, or its config.
    pub(crate) fn asked_timing(&self) -> Timing {
        let clamp = self.tuning.as_ref().and_then(|t| t.clamp);
        match self.adaptive() {
            // At the server's ceiling: exactly what it agreed to, so as
            // not to ask again and again.
            Some(adaptive) if adaptive.at_ceiling() && clamp.is_some() => clamp.unwrap_or_default(),
            Some(adaptive) => {
                let interval = interval_for_gap(adaptive.target_gap(), self.config.jitter_percent);
                let dead = interval * u32::from(adaptive.timeout_factor());
                (crate::config::wire_ms(interval), crate::config::wire_ms(dead))
            }
            None => (
                crate::config::wire_ms(self.config.interval),
                crate::config::wire_ms(self.config.dead_timeout),
            ),
        }
    }

    /// An adaptive client asks for what its policy wants, if the agreed
    /// timings differ and no request is outstanding.
    fn follow_adaptive(&mut self, _now: Instant) {
        if self.adaptive().is_none() || self.check_retime().is_err() {
            return;
        }
        let wanted = self.asked_timing();
        let Some(n) = self.negotiated else { return };
        let Some(tuning) = self.tuning.as_mut() else { return };
        let current = tuning
            .agreed
            .unwrap_or((n.requested_interval_ms, n.requested_dead_timeout_ms));
        if wanted != current && tuning.asked.is_none_or(|(_, asked)| asked != wanted) {
            tuning.ask(wanted);
            self.pending.retime = true;
        }
    }

    /// The PONG for PING `id` arrived: if it was the schedule's, the path
    /// kept the connection through the idle gap before it.
    fn on_idle_round(&mut self, now: Instant, id: u32) {
        let Some(tuning) = self.tuning.as_mut() else { return };
        if let (Some(round), Some(adaptive)) = (tuning.gap, tuning.adaptive.as_mut()) {
            if round.id == id {
                tuning.gap = None;
                adaptive.on_idle_round(round.quiet, now);
                tuning.cap = Some(adaptive.target_gap());
                self.follow_adaptive(now);
            }
        }
    }

    /// The connection died while the schedule's PING awaited its answer:
    /// perhaps the path forgot it after that idle gap.
    fn on_idle_death(&mut self, now: Instant) {
        let last_recv = now - self.liveness.silent_for(now);
        let Some(tuning) = self.tuning.as_mut() else { return };
        if let (Some(round), Some(adaptive)) = (tuning.gap.take(), tuning.adaptive.as_mut()) {
            if last_recv <= round.sent {
                adaptive.on_idle_death(round.exposure, now);
            }
        }
    }

    fn on_retime(&mut self, now: Instant, id: u16, timing: Timing) -> Result<(), ProtocolError> {
        let Some(n) = self.negotiated.filter(|n| n.version >= 2) else {
            bump(&mut self.stats.frames_ignored);
            return Ok(());
        };
        match self.role {
            Role::Server => {
                let tuning = self
                    .tuning
                    .get_or_insert_with(|| Box::new(Tuning::server(now, n.interval_ms)));
                let request = tuning.classify(id);
                // One answer per minimum ping spacing: requests cannot flood.
                let flooding = tuning.answered_at.is_some_and(|at| now - at < n.min_ping_spacing());
                if request == Request::Stale || flooding {
                    bump(&mut self.stats.frames_ignored);
                    return Ok(());
                }
                let agreed = match request {
                    // Its answer was lost: the same answer, nothing new.
                    Request::Repeat(agreed) => agreed,
                    _ if self.config.allow_retime => handshake::clamp_timing(&self.config, timing.0, timing.1),
                    _ => (n.interval_ms, n.dead_timeout_ms),
                };
                if request == Request::New {
                    tuning.agree(now, id, agreed, (n.interval_ms, n.dead_timeout_ms));
                }
                tuning.answered_at = Some(now);
                tuning.answer = Some((id, agreed));
                self.pending.retime = true;
            }
            Role::Client => {
                handshake::check_timing(timing.0, timing.1, n.min_ping_spacing_ms)?;
                let asked = self.tuning.as_ref().and_then(|t| t.asked);
                let answered = self.tuning.as_mut().is_some_and(|t| t.answered(id, timing));
                match asked {
                    Some((_, asked)) if answered => self.note_clamp(asked, timing),
                    _ => bump(&mut self.stats.frames_ignored),
                }
            }
        }
        Ok(())
    }

    /// An adaptive client asked for `asked` and the server agreed to
    /// `agreed`: an interval below what was asked is the server's ceiling
    /// (its clamp); one above the known ceiling lifts it.
    fn note_clamp(&mut self, asked: Timing, agreed: Timing) {
        let jitter = self.config.jitter_percent;
        let Some(tuning) = self.tuning.as_mut() else { return };
        let Some(adaptive) = tuning.adaptive.as_mut() else {
            return;
        };
        if agreed.0 < asked.0 {
            tuning.clamp = Some(agreed);
            let gap = Duration::from_millis(agreed.0.into()) * (100 + u32::from(jitter)) / 100;
            adaptive.set_ceiling(Some(gap));
        } else if tuning.clamp.is_some_and(|clamp| agreed.0 > clamp.0) {
            tuning.clamp = None;
            adaptive.set_ceiling(None);
        }
    }

    /// Timings agreed since the last timer take effect now.
    fn apply_agreed_timing(&mut self, now: Instant) {
        if self.state != State::Established {
            return;
        }
        let Some((interval_ms, dead_timeout_ms)) = self.tuning.as_mut().and_then(|t| t.agreed.take()) else {
            return;
        };
        let Some(n) = self.negotiated.as_mut() else { return };
        if self.role == Role::Client {
            (n.requested_interval_ms, n.requested_dead_timeout_ms) = (interval_ms, dead_timeout_ms);
        }
        (n.interval_ms, n.dead_timeout_ms) = (interval_ms, dead_timeout_ms);
        let negotiated = *n;
        let spacing = self.draw_spacing();
        self.liveness.respace(spacing);
        self.events.push_back(Event::Retimed(negotiated));
        let _ = now;
    }

    // ----- endings -----

    fn on_peer_close(&mut self, closed: Closed) {
        match self.state {
            State::Established => {
                self.state = State::Closing;
                // Queued DATA still goes; no more heartbeats; our answer last.
                self.pending = Pending {
                    close: true,
                    ..Pending::default()
                };
                self.ending = Some(Box::new(Ending::new(closed, self.now + self.config.close_timeout)));
            }
            State::Closing => {
                if let Some(ending) = self.ending.as_mut() {
                    ending.peer_done = true;
                }
                self.finish_if_complete();
            }
            _ => {}
        }
    }

    /// The transport has taken every staged byte, our CLOSE among them.
    pub(crate) fn on_close_sent(&mut self) {
        if let Some(ending) = self.ending.as_mut() {
            ending.close_sent = true;
        }
        if self.state == State::Closing {
            self.finish_if_complete();
        }
    }

    fn finish_if_complete(&mut self) {
        if self.ending.as_ref().is_some_and(|e| e.is_complete()) {
            self.finish();
        }
    }

    pub(crate) fn fail(&mut self, error: ProtocolError) {
        self.hard_close(closing::for_error(error));
    }

    /// Ends now: queued DATA is dropped and CLOSE goes out ahead of
    /// everything not yet staged, if the stream is between frames.
    fn hard_close(&mut self, closed: Closed) {
        self.keep_unsent();
        let can_frame = self.output.discard_data();
        // A graceful CLOSE already on its way says all there is to say.
        let close_staged = self.ending.as_ref().is_some_and(|e| e.close_staged);
        self.pending = Pending {
            magic: self.pending.magic,
            close: can_frame && !close_staged,
            ..Pending::default()
        };
        if !close_staged {
            self.ending = Some(Box::new(Ending::new(closed, self.now)));
        }
        self.finish();
    }

    /// Ends now with `closed`, sending nothing.
    fn end(&mut self, closed: Closed) {
        self.pending = Pending::default();
        self.ending = Some(Box::new(Ending::new(closed, self.now)));
        self.finish();
    }

    /// The one way into [`State::Closed`], and the one place `Closed` is
    /// reported: the driver may drop the transport from here on.
    fn finish(&mut self) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.handshake = None;
        if let Some(ending) = self.ending.as_ref() {
            self.events.push_back(Event::Closed(ending.closed.clone()));
        }
    }
}
