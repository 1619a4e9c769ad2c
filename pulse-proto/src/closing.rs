//! How sessions end: the graceful close, the peer's close, and the hard
//! close that verdicts and protocol errors take.

use alloc::boxed::Box;
use alloc::string::{String, ToString};

use crate::close::{CloseCode, Initiator};
use crate::error::ProtocolError;
use crate::event::{Closed, Event};
use crate::frame::truncate_reason;
use crate::session::{Pending, Session, State};
use crate::time::Instant;

/// How the session is ending; boxed, since most sessions are not.
#[derive(Debug)]
pub(crate) struct Ending {
    pub(crate) closed: Closed,
    pub(crate) deadline: Instant,
    pub(crate) reported: bool,
    pub(crate) close_staged: bool,
}

impl Session {
    /// Closes gracefully: DATA already queued goes first, then CLOSE, then
    /// the peer's CLOSE is awaited, all within [`crate::Config::close_timeout`].
    /// During the handshake the close is immediate. No-op once closing.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) {
        let now = self.clock(now);
        let reason = truncate_reason(reason).to_string();
        match self.state {
            State::Handshaking => self.hard_close(code, reason, None),
            State::Established => {
                self.state = State::Closing;
                self.pending.close = true;
                self.begin_ending(now + self.config.close_timeout, code, reason, Initiator::Local, None);
            }
            State::Closing | State::Closed => {}
        }
    }

    /// Closes at once: queued DATA is dropped, CLOSE with `code` goes out
    /// ahead of anything not yet begun (if the stream is between frames),
    /// and the session is closed without waiting for the peer. For a peer
    /// that reads too slowly, or a shutdown whose grace has run out.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_proto::{CloseCode, Config, Event, Instant, Role, Session};
    ///
    /// let mut client = Session::new(Config::default(), Role::Client, Instant::ZERO, 1).unwrap();
    /// client.abort(Instant::ZERO, CloseCode::SLOW_READER, "output limit reached");
    /// assert!(client.is_closed());
    /// assert!(matches!(client.poll_event(), Some(Event::Closed(c)) if c.code == CloseCode::SLOW_READER));
    /// ```
    pub fn abort(&mut self, now: Instant, code: CloseCode, reason: &str) {
        self.clock(now);
        if self.state != State::Closed {
            self.hard_close(code, truncate_reason(reason).to_string(), None);
        }
    }

    pub(crate) fn on_peer_close(&mut self, now: Instant, code: CloseCode, reason: String) {
        match self.state {
            State::Established => {
                self.state = State::Closing;
                self.pending = Pending {
                    close: true,
                    ..Pending::default()
                };
                self.begin_ending(now + self.config.close_timeout, code, reason, Initiator::Peer, None);
                self.report_ending();
            }
            State::Closing => {
                self.state = State::Closed;
                self.finish_ending();
            }
            _ => {}
        }
    }

    pub(crate) fn fail(&mut self, error: ProtocolError) {
        let reason = truncate_reason(&error.to_string()).to_string();
        self.hard_close(error.close_code(), reason, Some(error));
    }

    /// Ends now: queued DATA is dropped and CLOSE goes out ahead of
    /// everything not yet staged, if the stream is between frames.
    pub(crate) fn hard_close(&mut self, code: CloseCode, reason: String, error: Option<ProtocolError>) {
        let can_frame = self.output.discard_data();
        // A graceful CLOSE already on its way says all there is to say.
        let close_sent = self.ending.as_ref().is_some_and(|e| e.close_staged);
        let magic = self.pending.magic;
        self.pending = Pending {
            magic,
            close: can_frame && !close_sent,
            ..Pending::default()
        };
        self.end(code, reason, Initiator::Local, error);
    }

    pub(crate) fn end(&mut self, code: CloseCode, reason: String, initiator: Initiator, error: Option<ProtocolError>) {
        self.state = State::Closed;
        self.begin_ending(self.now, code, reason, initiator, error);
        self.report_ending();
    }

    pub(crate) fn begin_ending(
        &mut self,
        deadline: Instant,
        code: CloseCode,
        reason: String,
        initiator: Initiator,
        error: Option<ProtocolError>,
    ) {
        if self.ending.is_none() {
            let closed = Closed {
                code,
                reason,
                initiator,
                error,
            };
            self.ending = Some(Box::new(Ending {
                closed,
                deadline,
                reported: false,
                close_staged: false,
            }));
        }
    }

    pub(crate) fn finish_ending(&mut self) {
        self.state = State::Closed;
        self.report_ending();
    }

    pub(crate) fn report_ending(&mut self) {
        if let Some(ending) = self.ending.as_mut() {
            if !core::mem::replace(&mut ending.reported, true) {
                self.events.push_back(Event::Closed(ending.closed.clone()));
            }
        }
    }
}
