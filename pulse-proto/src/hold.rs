//! DATA held over a path not known to be alive (`docs/PROTOCOL.md` §6.11):
//! a side that has been idle for longer than the path is known to keep an
//! idle connection confirms the path with a PING before it begins any
//! DATA, so a message is never sent into a NAT mapping that may be gone;
//! and a session that ends hands back the messages it never began.
//!
//! An adaptive client guards its DATA (it is the side that probes idle
//! gaps longer than any that worked), and so does a server once its client
//! retimes (the server cannot see the client's probing, only its effect).

use bytes::Bytes;
use core::time::Duration;

use crate::session::{Role, Session, State};
use crate::time::Instant;
use crate::tuning::IdleRound;

impl Session {
    /// A local call or a timer: a PING confirming the path may go.
    pub(crate) fn allow_confirm(&mut self, allow: bool) {
        if let Some(tuning) = self.tuning.as_mut() {
            tuning.may_confirm = allow;
        }
    }

    /// Whether this session confirms an idle path before sending DATA.
    fn guards_data(&self) -> bool {
        self.state == State::Established
            && match self.role {
                Role::Client => self.adaptive().is_some(),
                Role::Server => self.tuning.is_some(),
            }
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
    pub(crate) fn note_heard(&mut self, now: Instant) {
        if !self.guards_data() {
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
    /// answer — sent after a local call or a timer only, never on input
    /// (the timer contract); after input the schedule's next PING confirms.
    /// Called before control frames are staged, so that PING goes in the
    /// same write.
    pub(crate) fn may_begin_data(&mut self, now: Instant) -> bool {
        if !self.guards_data() || !self.output.has_data() {
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
        let may_confirm = self
            .tuning
            .as_mut()
            .is_some_and(|t| core::mem::take(&mut t.may_confirm));
        if may_confirm && self.liveness.last_ping() <= last_recv && !self.pending.ping {
            // An adaptive client learns from this PING as from its
            // schedule's: its answer, or the death it meets.
            self.note_idle_round(now);
            let probe = self.probe_timing();
            self.queue_probe(now, probe);
        }
        false
    }

    /// The session ends abruptly: keep the messages no byte of which went
    /// out, to hand back.
    pub(crate) fn keep_unsent(&mut self) {
        let unbegun = self.output.take_unbegun();
        if !unbegun.is_empty() {
            self.tuning.get_or_insert_with(Default::default).unsent = unbegun;
        }
    }

    /// Once the session is closed, the messages it was given but never
    /// began to send, in the order they were sent: a session that ended
    /// abruptly (the peer timed out, the transport failed, a protocol
    /// error) had them queued, or held while it confirmed an idle path
    /// (`docs/PROTOCOL.md` §6.11). The peer cannot have seen any of them:
    /// send them again on the next connection. `None` before
    /// [`Event::Closed`](crate::Event::Closed), and once all are taken.
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
