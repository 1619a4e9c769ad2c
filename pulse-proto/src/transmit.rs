//! Serialising what the session decided: the bytes the driver sends.
//!
//! Order on the wire: the magic, handshake frames, then (once the session is
//! over) only the final CLOSE; otherwise PING and PONG ahead of any DATA not
//! yet staged, and a graceful CLOSE after the last queued DATA.

use crate::config::Transport;
use crate::event::Event;
use crate::frame::{Frame, MAGIC};
use crate::handshake;
use crate::output::STREAM_CHUNK;
use crate::ping_policy::next_id;
use crate::session::{Session, State};
use crate::stats::bump;
use crate::time::Instant;

impl Session {
    /// The bytes to send next, or `None` when nothing is due. Nothing is
    /// consumed until [`Session::advance_transmit`] says how much the
    /// transport took, so unsent bytes stay in the session, where heartbeats
    /// can still overtake DATA not yet begun. Calling again without
    /// advancing returns the same bytes.
    ///
    /// On a datagram transport each call yields one whole datagram.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_proto::{Config, Instant, Role, Session};
    ///
    /// let mut client = Session::new(Config::default(), Role::Client, Instant::ZERO, 1).unwrap();
    /// let hello = client.poll_transmit(Instant::ZERO).expect("HELLO is due").len();
    /// client.advance_transmit(hello); // the socket took it all
    /// assert_eq!(client.poll_transmit(Instant::ZERO), None);
    /// ```
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        let now = self.clock(now);
        if self.output.unsent().is_none() {
            match self.config.transport {
                Transport::Stream => self.stage_stream(now),
                Transport::Datagram => self.stage_datagram(now),
            }
            self.output.release_empty();
            // Room again for an application that was told the queue was full.
            if self.send_blocked
                && self.state == State::Established
                && self.output.queued() <= self.config.max_queued_bytes / 2
            {
                self.send_blocked = false;
                self.events.push_back(Event::SendReady);
            }
        }
        self.output.unsent()
    }

    /// Marks `n` bytes of what [`Session::poll_transmit`] returned as sent.
    /// On a datagram transport the whole datagram counts as sent.
    pub fn advance_transmit(&mut self, n: usize) {
        let whole = self.config.transport == Transport::Datagram;
        let taken = self.output.advance(n, whole);
        self.stats.bytes_sent += taken as u64;
        if taken > 0 {
            self.output_since = self.now;
            if let Some(tuning) = self.tuning.as_mut() {
                tuning.sent_at = self.now;
                if let Some(last_sent) = tuning.last_sent.as_mut() {
                    *last_sent = self.now;
                }
            }
        }
        if self.output.unsent().is_none() && self.ending.as_ref().is_some_and(|e| e.close_staged) {
            self.on_close_sent();
        }
    }

    fn stage_stream(&mut self, now: Instant) {
        if self.output.is_mid_frame() {
            self.output.continue_frame(STREAM_CHUNK);
            if self.output.is_mid_frame() {
                return;
            }
        }
        let magic = core::mem::take(&mut self.pending.magic);
        if magic {
            self.output.staging().extend_from_slice(&MAGIC);
        }
        // Before the control frames: a PING confirming the path goes now.
        let data_may_go = self.may_begin_data(now);
        self.stage_control(now);
        if data_may_go && matches!(self.state, State::Established | State::Closing) {
            self.stats.data_sent += self.output.stage_stream(STREAM_CHUNK);
        }
        self.stage_graceful_close();
        // The magic goes with the first frame, not alone.
        if magic && self.output.staged_len() == MAGIC.len() {
            self.output.unstage_to(0);
            self.pending.magic = true;
        }
    }

    fn stage_datagram(&mut self, now: Instant) {
        // Handshake datagrams, and anything sent before the handshake
        // completes, carry the magic so the receiver can tell pulse traffic.
        let magic = self.pending.hello || self.pending.welcome || self.negotiated.is_none();
        if magic {
            self.output.staging().extend_from_slice(&MAGIC);
        }
        let data_may_go = self.may_begin_data(now);
        self.stage_control(now);
        if data_may_go && matches!(self.state, State::Established | State::Closing) {
            self.stats.data_sent += self.output.stage_datagram(self.config.max_datagram_size);
        }
        self.stage_graceful_close();
        if magic && self.output.staged_len() == MAGIC.len() {
            self.output.unstage_to(0);
        }
    }

    fn stage_control(&mut self, now: Instant) {
        let timing = self.pending.hello.then(|| self.asked_timing());
        let out = self.output.staging();
        let stream = self.config.transport == Transport::Stream;
        if core::mem::take(&mut self.pending.hello) {
            if let (Some(h), Some(timing)) = (self.handshake.as_mut(), timing) {
                let attempt = h.next_attempt(now);
                Frame::Hello(handshake::hello(&self.config, timing, attempt, h.cookie)).encode(out);
            }
        }
        if core::mem::take(&mut self.pending.welcome) {
            if let Some(welcome) = self.handshake.as_ref().and_then(|h| h.welcome) {
                Frame::Welcome(welcome).encode(out);
            }
            // Only a datagram server may have to say it again.
            if stream {
                self.handshake = None;
            }
        }
        if self.state == State::Closed {
            if core::mem::take(&mut self.pending.close) {
                self.stage_close();
            }
            return;
        }
        if core::mem::take(&mut self.pending.ping) {
            let id = self.next_ping_id;
            self.next_ping_id = next_id(id);
            Frame::Ping { id }.encode(out);
            (self.ping_out_id, self.ping_out_at) = (id, now);
            bump(&mut self.stats.pings_sent);
        }
        if core::mem::take(&mut self.pending.pong) {
            let hold_us = u32::try_from((now - self.pending.pong_at).as_micros()).unwrap_or(u32::MAX);
            Frame::Pong {
                id: self.pending.pong_id,
                hold_us,
            }
            .encode(out);
            bump(&mut self.stats.pongs_sent);
        }
        if let Some(status) = self.pending.status.take() {
            Frame::Status(status).encode(self.output.staging());
        }
        if core::mem::take(&mut self.pending.retime) {
            let frame = self.tuning.as_mut().and_then(|t| match self.role {
                crate::Role::Client => t.asked,
                crate::Role::Server => t.answer.take(),
            });
            if let Some((id, (interval_ms, dead_timeout_ms))) = frame {
                Frame::Retime {
                    id,
                    interval_ms,
                    dead_timeout_ms,
                }
                .encode(self.output.staging());
            }
        }
    }

    fn stage_graceful_close(&mut self) {
        if self.state != State::Closing || self.output.has_data() || !core::mem::take(&mut self.pending.close) {
            return;
        }
        self.stage_close();
    }

    /// Stages the CLOSE the ending describes.
    fn stage_close(&mut self) {
        if let Some(ending) = self.ending.as_mut() {
            ending.close_frame().encode(self.output.staging());
            ending.close_staged = true;
        }
    }
}
