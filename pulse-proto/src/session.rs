//! The session: one connection's protocol state, driven by `handle_*` calls
//! and drained by `poll_*` calls. Every state transition lives in this file;
//! `transmit.rs` only serialises what is decided here.

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::sync::Arc;
use bytes::{Buf, Bytes};
use core::time::Duration;

use crate::close::{CloseCode, Initiator};
use crate::closing::Ending;
use crate::config::{Config, Transport};
use crate::decoder::{next_datagram_frame, StreamDecoder};
use crate::error::{ConfigError, ProtocolError, SendError};
use crate::event::{Event, EventQueue, RttSample};
use crate::frame::{Frame, Welcome, MAGIC};
use crate::handshake::Agreed;
use crate::jitter::Jitter;
use crate::liveness::{Due, Liveness, ProbeTiming};
use crate::output::Output;
use crate::ping_policy::{PingGuard, PingVerdict};
use crate::rtt::RttEstimator;
use crate::stats::{bump, Stats};
use crate::time::Instant;

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
    /// Over. `poll_transmit` may still yield a final CLOSE; write it if the
    /// transport takes it now, then drop the transport.
    Closed,
}

/// Control frames decided but not yet serialised. Flags only: the frames'
/// contents live where they are decided (handshake, ending, ping ids).
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
}

/// The handshake's state; boxed and dropped once it is no longer needed
/// (a datagram server keeps it to answer a repeated HELLO).
#[derive(Debug)]
pub(crate) struct Handshake {
    pub(crate) deadline: Instant,
    pub(crate) hello_sent_at: Option<Instant>,
    pub(crate) retransmit_at: Option<Instant>,
    pub(crate) retransmits: u32,
    pub(crate) welcome: Option<Welcome>,
    pub(crate) welcomed_at: Option<Instant>,
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
    pub(crate) agreed: Option<Agreed>,
    pub(crate) liveness: Liveness,
    pub(crate) jitter: Jitter,
    pub(crate) rtt: RttEstimator,
    pub(crate) guard: PingGuard,
    pub(crate) next_ping_id: u32,
    pub(crate) ping_out: Option<(u32, Instant)>,
    pub(crate) ending: Option<Box<Ending>>,
    pub(crate) stats: Stats,
}

/// Initial HELLO retransmission timeout on datagrams: QUIC's initial PTO.
const HELLO_RETRANSMIT: Duration = Duration::from_secs(1);
/// Upper bound on frames decoded and events queued per `handle_timeout`.
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
        let stream = config.transport == Transport::Stream;
        Ok(Session {
            role,
            state: State::Handshaking,
            now,
            decoder: StreamDecoder::new(config.max_frame_len),
            output: Output::default(),
            events: EventQueue::default(),
            pending: Pending {
                magic: stream,
                hello: is_client,
                ..Pending::default()
            },
            handshake: Some(Box::new(Handshake {
                deadline: now + config.handshake_timeout,
                hello_sent_at: None,
                retransmit_at: (is_client && !stream).then(|| now + HELLO_RETRANSMIT),
                retransmits: 0,
                welcome: None,
                welcomed_at: None,
            })),
            agreed: None,
            liveness: Liveness::new(now, config.interval, config.dead_timeout),
            jitter: Jitter::new(seed),
            rtt: RttEstimator::default(),
            guard: PingGuard::default(),
            next_ping_id: 1,
            ping_out: None,
            ending: None,
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
        let now = self.clock(now);
        if !self.accepts_input() {
            return;
        }
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
    /// and counted; it is not proof of life. Datagrams may arrive lost,
    /// duplicated or reordered.
    pub fn handle_datagram(&mut self, now: Instant, mut datagram: impl Buf) {
        let now = self.clock(now);
        if !self.accepts_input() {
            return;
        }
        let mut bytes = datagram.copy_to_bytes(datagram.remaining());
        self.stats.bytes_received += bytes.len() as u64;
        let has_magic = bytes.starts_with(&MAGIC);
        if has_magic {
            bytes.advance(MAGIC.len());
        }
        let max = self.config.max_frame_len;
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

    /// Tells the session the stream ended (a read returned 0 bytes). If the
    /// peer had not closed properly this reports [`CloseCode::LOST`] at once,
    /// rather than waiting for the dead-peer timeout.
    pub fn handle_eof(&mut self, now: Instant) {
        self.clock(now);
        self.output.discard_all();
        self.pending = Pending::default();
        match self.state {
            State::Closed => {}
            State::Closing => self.finish_ending(),
            _ => self.end(
                CloseCode::LOST,
                "transport closed without CLOSE".to_string(),
                Initiator::Peer,
                None,
            ),
        }
    }

    /// Runs the timers. Call it when [`Session::poll_timeout`] passes, with
    /// the current time (not the deadline). Calling it early is a no-op.
    ///
    /// If it comes more than [`Config::stall_threshold`] past the deadline,
    /// our own process stalled: frames may be waiting unread in our socket,
    /// so the peer is probed once more before any verdict. Drivers should
    /// read their sockets before running timers for the same wake-up.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock(now);
        let Some(deadline) = self.poll_timeout() else {
            return;
        };
        if now < deadline {
            return;
        }
        let stalled = now - deadline > self.config.stall_threshold;
        match self.state {
            State::Handshaking if self.handshake.as_ref().is_none_or(|h| now >= h.deadline) => {
                self.hard_close(
                    CloseCode::HANDSHAKE_TIMEOUT,
                    "handshake not complete in time".to_string(),
                    None,
                );
            }
            State::Handshaking => {
                if let Some(h) = self.handshake.as_mut() {
                    h.retransmits += 1;
                    h.retransmit_at = Some(now + HELLO_RETRANSMIT * (1 << h.retransmits.min(6)));
                    self.pending.hello = true;
                }
            }
            State::Established => self.run_liveness(now, stalled),
            State::Closing => {
                self.state = State::Closed;
                self.finish_ending();
            }
            State::Closed => {}
        }
    }

    /// Queues an application message. Messages go out in order, behind any
    /// heartbeat. On a datagram transport DATA is unreliable: it may be
    /// lost, duplicated or reordered, and must fit one datagram.
    pub fn send(&mut self, tag: u16, payload: impl Into<Bytes>) -> Result<(), SendError> {
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
            return Err(SendError::QueueFull {
                queued,
                max: self.config.max_queued_bytes,
            });
        }
        self.output.push(tag, payload);
        Ok(())
    }

    /// The next event, oldest first. Drain it after every `handle_*` call.
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
    /// handshake completing, and local calls (`close`), may move it earlier.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Handshaking => self.handshake.as_ref().map(|h| match h.retransmit_at {
                Some(at) => at.min(h.deadline),
                None => h.deadline,
            }),
            State::Established => Some(self.liveness.deadline(self.probe_timing())),
            State::Closing => self.ending.as_ref().map(|e| e.deadline),
            State::Closed => None,
        }
    }

    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    fn accepts_input(&self) -> bool {
        match self.state {
            State::Closed => false,
            State::Closing => self
                .ending
                .as_ref()
                .is_some_and(|e| e.closed.initiator == Initiator::Local),
            _ => true,
        }
    }

    /// A close begun by input must not end before the deadline armed
    /// before that input: the driver will not re-arm.
    fn keep_deadline(&mut self, before: Option<Instant>) {
        if let (State::Closing, Some(ending), Some(before)) = (self.state, self.ending.as_mut(), before) {
            ending.deadline = ending.deadline.max(before);
        }
    }

    pub(crate) fn probe_timing(&self) -> ProbeTiming {
        let timeout = self.rtt.probe_timeout(self.config.probe_floor);
        let spacing = timeout.max(self.guard_spacing());
        ProbeTiming { timeout, spacing }
    }

    pub(crate) fn guard_spacing(&self) -> Duration {
        self.agreed
            .map_or(self.config.min_ping_spacing, |a| a.min_ping_spacing())
    }

    fn on_frame(&mut self, now: Instant, frame: Frame) -> Result<(), ProtocolError> {
        if self.state == State::Handshaking {
            return self.on_handshake_frame(now, frame);
        }
        if let Some(silent_for) = self.liveness.on_receive(now) {
            self.events.push_back(Event::Recovered { silent_for });
        }
        let datagram = self.config.transport == Transport::Datagram;
        match frame {
            Frame::Ping { id } => {
                bump(&mut self.stats.pings_received);
                let strikes = self.agreed.map_or(self.config.ping_strikes, |a| a.welcome.ping_strikes);
                match self.guard.on_ping(now, id, self.guard_spacing(), strikes) {
                    PingVerdict::Fresh if self.state == State::Established => {
                        (self.pending.pong, self.pending.pong_id, self.pending.pong_at) = (true, id, now);
                    }
                    PingVerdict::TooMany { strikes } => return Err(ProtocolError::TooManyPings { strikes }),
                    _ => {}
                }
            }
            Frame::Pong { id, hold_us } => self.on_pong(now, id, hold_us),
            Frame::Data { tag, payload } => {
                self.stats.data_received += 1;
                self.events.push_back(Event::Message { tag, payload });
            }
            Frame::Close { code, reason } => self.on_peer_close(now, code, reason),
            Frame::Hello(_) if datagram && self.role == Role::Server => self.rewelcome(now),
            Frame::Welcome(_) if datagram => bump(&mut self.stats.frames_ignored),
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
        match (self.role, frame) {
            (Role::Server, Frame::Hello(hello)) => self.accept_hello(now, &hello),
            (Role::Client, Frame::Welcome(welcome)) => self.accept_welcome(now, &welcome),
            (_, Frame::Close { code, reason }) => {
                self.end(code, reason, Initiator::Peer, None);
                Ok(())
            }
            (_, Frame::Extension { .. }) => Ok(()),
            // Datagrams overtake each other: a PING may beat the WELCOME.
            _ if self.config.transport == Transport::Datagram => {
                bump(&mut self.stats.frames_ignored);
                Ok(())
            }
            (_, other) => Err(ProtocolError::Unexpected {
                frame_type: other.frame_type(),
            }),
        }
    }

    fn on_pong(&mut self, now: Instant, id: u32, hold_us: u32) {
        match self.ping_out {
            Some((out, sent)) if out == id => {
                self.ping_out = None;
                let peer_hold = Duration::from_micros(hold_us.into());
                let rtt = (now - sent).saturating_sub(peer_hold);
                self.rtt.update(rtt, peer_hold);
                self.events.push_back(Event::Rtt(RttSample {
                    rtt,
                    peer_hold,
                    smoothed: self.rtt.smoothed(),
                }));
            }
            _ => bump(&mut self.stats.frames_ignored),
        }
    }

    fn run_liveness(&mut self, now: Instant, mut stalled: bool) {
        for _ in 0..MAX_TIMER_STEPS {
            let probe = self.probe_timing();
            match self.liveness.due(now, probe, stalled) {
                Due::Nothing => break,
                Due::Ping => self.queue_ping(now, !self.liveness.is_suspect()),
                Due::Suspect => {
                    self.liveness.set_suspect();
                    bump(&mut self.stats.suspicions);
                    self.events.push_back(Event::Suspect {
                        silent_for: self.liveness.silent_for(now),
                    });
                }
                Due::Grace => {
                    if !self.liveness.is_suspect() {
                        bump(&mut self.stats.suspicions);
                        self.events.push_back(Event::Suspect {
                            silent_for: self.liveness.silent_for(now),
                        });
                    }
                    self.liveness.grant_grace(now + probe.spacing);
                    if self.liveness.last_ping() + self.guard_spacing() <= now {
                        self.queue_ping(now, false);
                    }
                    stalled = false;
                }
                Due::Dead => {
                    self.events.push_back(Event::PeerDead {
                        silent_for: self.liveness.silent_for(now),
                    });
                    self.hard_close(
                        CloseCode::TIMED_OUT,
                        "no frame from the peer within the dead-peer timeout".to_string(),
                        None,
                    );
                    break;
                }
            }
        }
    }

    /// Decides a PING now; it is serialised, ahead of DATA, when the driver
    /// next asks for bytes. A scheduled PING draws the next spacing.
    fn queue_ping(&mut self, now: Instant, scheduled: bool) {
        let next = scheduled.then(|| self.draw_spacing());
        self.pending.ping = true;
        self.liveness.on_ping(now, next);
    }

    fn draw_spacing(&mut self) -> Duration {
        let interval = self.agreed.map_or(self.config.interval, |a| a.interval());
        let dead_timeout = self
            .agreed
            .map_or(self.config.dead_timeout, |a| a.negotiated().dead_timeout);
        let percent = self.config.jitter_percent;
        match self.role {
            Role::Client => self.jitter.next(interval, percent),
            // The server is the backup: it pings only if the client's PING is
            // overdue, so an idle pair costs one round trip per interval.
            Role::Server => Jitter::backup(Jitter::max_spacing(interval, percent), dead_timeout),
        }
    }
}
