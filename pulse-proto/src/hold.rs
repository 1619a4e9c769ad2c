//! DATA held over a path not known to be alive (`docs/PROTOCOL.md` §6.11):
//! a side that has been idle for longer than the path is known to keep an
//! idle connection confirms the path with a PING before it begins any
//! DATA, so a message is never sent into a NAT mapping that may be gone;
//! and a session that ends before it began a message hands it back.
//!
//! An adaptive client guards its DATA (it is the side that probes idle
//! gaps longer than any that worked), and so does a server while its
//! client has retimed to an interval longer than the handshake's (the
//! server cannot see its client probe, only the longer interval it asks).

use bytes::Bytes;
use core::time::Duration;

use crate::close::Initiator;
use crate::session::{Role, Session, State};
use crate::time::Instant;
use crate::tuning::{Confirm, IdleRound};

impl Session {
    /// A local call or a timer: a PING confirming the path for held DATA
    /// may go when output is next staged.
    pub(crate) fn note_local_call(&mut self) {
        if let Some(tuning) = self.tuning.as_mut() {
            tuning.confirm = Confirm::Now;
        }
    }

    /// Input came before the output a local call asked for was staged: the
    /// confirming PING still goes — the message waits a round trip, not
    /// for the next timer — but it may not pull the deadline earlier.
    pub(crate) fn note_input(&mut self) {
        if let Some(tuning) = self.tuning.as_mut().filter(|t| t.confirm == Confirm::Now) {
            tuning.confirm = Confirm::AfterInput;
        }
    }

    /// Whether this session confirms an idle path before sending DATA.
    fn guards_data(&self, now: Instant) -> bool {
        let open = match self.state {
            State::Established => true,
            // DATA queued before our own close is held as before it: the
            // close is no proof of the path. A close that answers the
            // peer's follows a frame just heard.
            State::Closing => self
                .ending
                .as_ref()
                .is_some_and(|e| e.closed.initiator == Initiator::Local),
            _ => false,
        };
        open && match self.role {
            Role::Client => self.adaptive().is_some(),
            Role::Server => self.client_lengthened_interval(now),
        }
    }

    /// Whether a server's client has retimed to an interval longer than
    /// the handshake's (agreed, or agreed and about to take effect), or
    /// may still be on one (it left it for a shorter one less than the
    /// longer dead-peer timeout ago: it switches at its next timer). An
    /// adaptive client probes only by lengthening its interval; at the
    /// handshake's, or a shorter one (an application gone active), it
    /// idles no longer than the server already accepted unguarded.
    fn client_lengthened_interval(&self, now: Instant) -> bool {
        let Some(tuning) = self.tuning.as_ref() else {
            return false;
        };
        let Some(handshake) = tuning.handshake_interval_ms else {
            return false;
        };
        let current = self.negotiated.map_or(0, |n| n.interval_ms);
        let pending = tuning.agreed.map_or(0, |(interval_ms, _)| interval_ms);
        current.max(pending) > handshake || tuning.guard_until.is_some_and(|until| now < until)
    }

    /// When the path last carried something either way, as far as this
    /// side knows: the later of its last send and the last frame heard.
    pub(crate) fn last_active(&self, now: Instant) -> Instant {
        let last_recv = now - self.liveness.silent_for(now);
        self.tuning.as_ref().map_or(last_recv, |t| t.sent_at.max(last_recv))
    }

    /// How long the path may have been idle at `now`: since the older of
    /// this side's last send and the last frame heard (a NAT that only one
    /// direction refreshes forgets by the other's silence).
    fn idle_exposure(&self, now: Instant) -> Duration {
        let last_recv = now - self.liveness.silent_for(now);
        let since = self.tuning.as_ref().map_or(last_recv, |t| t.sent_at.min(last_recv));
        now - since
    }

    /// The longest idle the path is known to keep: the longest quiet this
    /// session saw end with a frame heard, or for an adaptive client the
    /// longest idle gap its policy saw work, whichever is longer.
    fn proven_idle(&self) -> Duration {
        let seen = self.tuning.as_ref().map_or(Duration::ZERO, |t| t.proven);
        let good = self
            .adaptive()
            .map_or(Duration::ZERO, |a| Duration::from_millis(a.learned().good_ms.into()));
        seen.max(good)
    }

    /// A PING the adaptive policy learns from leaves at `now`.
    pub(crate) fn note_idle_round(&mut self, now: Instant) {
        let round = IdleRound {
            id: self.next_ping_id,
            quiet: now - self.last_active(now),
            exposure: self.idle_exposure(now),
            sent: now,
        };
        if let Some(tuning) = self.tuning.as_mut().filter(|t| t.adaptive.is_some()) {
            tuning.gap = Some(round);
        }
    }

    /// A frame arrived at `now` (before liveness hears of it): the quiet
    /// that it ended is proof the path keeps an idle connection that long,
    /// less the time the frame and our last send took to cross the path.
    /// Counted whenever this session keeps the books, guarding or not: a
    /// server's proof from while its client was active carries into the
    /// longer interval that client asks for next.
    pub(crate) fn note_heard(&mut self, now: Instant) {
        if !matches!(self.state, State::Established | State::Closing) {
            return;
        }
        let quiet = (now - self.last_active(now)).saturating_sub(self.probe_timing().timeout);
        if let Some(tuning) = self.tuning.as_mut() {
            tuning.proven = tuning.proven.max(quiet);
        }
    }

    /// Whether DATA may be begun now. Not while the path has been idle
    /// past what it is known to keep (with a probe timeout's margin for the
    /// time packets take to reach the NAT): then a PING confirms the path
    /// first, unless one sent since the last frame heard still awaits its
    /// answer — sent only if a local call or a timer came since output was
    /// last staged, never for input alone (a peer's frames must not make
    /// us ping); after input alone the schedule's next PING confirms.
    /// Called before control frames are staged, so that PING goes in the
    /// same write.
    pub(crate) fn may_begin_data(&mut self, now: Instant) -> bool {
        // Whatever call allowed a confirming PING is answered by this
        // staging, held or not.
        let confirm = self
            .tuning
            .as_mut()
            .map_or(Confirm::No, |t| core::mem::take(&mut t.confirm));
        if !self.guards_data(now) || !self.output.has_data() {
            return true;
        }
        let idle = self.idle_exposure(now);
        let probe_timeout = self.probe_timing().timeout;
        let margin = probe_timeout * 2;
        // Within the minimum ping spacing, or a probe timeout (the round
        // trip a confirming PING's answer takes: on a path slower than the
        // spacing, the answer leaves the exposure at the round trip), no
        // PING could confirm anything more; but a PING unanswered past the
        // probe timeout says the path may be gone, whatever it kept before.
        let fresh = idle <= self.ping_policy().spacing.max(probe_timeout) || idle + margin <= self.proven_idle();
        if fresh && !self.liveness.is_suspect() {
            return true;
        }
        let last_recv = now - self.liveness.silent_for(now);
        // A PING sent in the instant of the last frame heard, its PONG not
        // yet in, awaits its answer too: no second one in that instant.
        let awaiting =
            self.liveness.last_ping() > last_recv || (self.ping_out_id != 0 && self.liveness.last_ping() == last_recv);
        if confirm != Confirm::No && !awaiting && !self.pending.ping {
            // An adaptive client learns from this PING as from its
            // schedule's: its answer, or the death it meets.
            self.note_idle_round(now);
            let probe = self.probe_timing();
            self.pending.ping = true;
            match (confirm, self.poll_timeout()) {
                // Input came since the call: the driver need not re-arm
                // for it, so the probe is judged no earlier than the
                // deadline armed before.
                (Confirm::AfterInput, Some(armed)) => self.liveness.on_probe_after_input(now, probe, armed),
                _ => self.liveness.on_probe(now, probe),
            }
        }
        false
    }

    /// The session ends abruptly, or its graceful close ran out of time:
    /// keep the messages no byte of which was handed to the driver, to hand
    /// back.
    pub(crate) fn keep_unsent(&mut self) {
        let unbegun = self.output.take_unbegun();
        if !unbegun.is_empty() {
            self.tuning.get_or_insert_with(Default::default).unsent = unbegun;
        }
    }

    /// Once the session is closed, the messages it was given but never
    /// began to send, in the order they were sent: a session that ended
    /// abruptly (the peer timed out, the transport failed, a protocol
    /// error), or whose graceful close ran out of time
    /// ([`Config::close_timeout`](crate::Config::close_timeout)), had them
    /// queued, or held while it confirmed an idle path
    /// (`docs/PROTOCOL.md` §6.11.1). The peer cannot have seen any of them:
    /// send them again on the next connection.
    ///
    /// "Began" means handed to the driver: a message whose first byte
    /// [`Session::poll_transmit`] returned is not handed back, even if the
    /// transport then took none of it (the driver may still write it), and
    /// pulse has no per-message acknowledgement to say it arrived. So a
    /// message handed back certainly never went; one not handed back went
    /// out as far as the driver, and whether it arrived is not known here
    /// (a graceful close that ran out of time is reported like one that
    /// completed).
    ///
    /// `None` before [`Event::Closed`](crate::Event::Closed), and once all
    /// are taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_proto::{Config, Instant, Role, Session};
    ///
    /// let mut client = Session::new(Config::default(), Role::Client, Instant::ZERO, 1).unwrap();
    /// assert_eq!(client.poll_unsent(), None);
    /// ```
    pub fn poll_unsent(&mut self) -> Option<(u16, Bytes)> {
        if self.state != State::Closed {
            return None;
        }
        self.tuning.as_mut()?.unsent.pop_front()
    }
}
