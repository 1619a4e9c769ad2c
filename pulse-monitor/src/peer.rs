//! Every decision about a pulse peer: its session's events, and — with a
//! confirming check — the probes that confirm a lost session before a
//! down (see the crate documentation, "Pulse peers").

use pulse_proto::{CloseCode, Instant};

use crate::event::{CheckResult, Health, PeerSignal, Reason};
use crate::monitor::Monitor;
use crate::target::{AWAIT_SESSION, IN_FLIGHT, NEVER, NO_CHECK, SESSION_LOST};

impl Monitor {
    /// One of a pulse peer's session events.
    pub(crate) fn on_peer_event(&mut self, index: u32, now: Instant, event: &pulse_proto::Event) {
        use pulse_proto::Event as E;
        if self.records[index as usize].check != NO_CHECK {
            return self.on_confirmed_peer_event(index, now, event);
        }
        let footprint = self.footprint(index);
        let health = self.records[index as usize].health();
        if self.excuse_lost_session(index, now, event) {
            self.settle(index, footprint, now);
            self.reschedule(index, now);
            return;
        }
        let (to, signal) = match event {
            E::Connected(_) => (Health::Up, PeerSignal::Connected),
            E::Rtt(sample) => {
                self.records[index as usize].set_rtt(sample.rtt);
                let to = if health == Health::Down {
                    Health::Down
                } else {
                    Health::Up
                };
                (to, PeerSignal::Alive)
            }
            E::Recovered { .. } if health != Health::Down => (Health::Up, PeerSignal::Recovered),
            E::Suspect { .. } if health == Health::Up => (Health::Suspect, PeerSignal::Suspect),
            E::PeerDead { .. } => (Health::Down, PeerSignal::Dead),
            E::Closed(closed) => (Health::Down, PeerSignal::Closed(closed.code)),
            E::PeerStatus(status) => {
                self.set_status(index, *status);
                (health, PeerSignal::Alive)
            }
            E::Message { .. } => (health, PeerSignal::Alive),
            _ => (health, PeerSignal::Alive),
        };
        if to.is_alive() {
            self.records[index as usize].heard = now;
        }
        // Proof that the session lives after our latest stall: what reached
        // us in the stall's wake may be older than the stall's effects —
        // but not the handshake of a session opened after we learned, past
        // our stall, that the old one was lost: it never crossed the stall.
        let proof = matches!(
            event,
            E::Connected(_) | E::Rtt(_) | E::Recovered { .. } | E::Message { .. } | E::PeerStatus(_)
        );
        // (While it waits, its vouched epoch is the one it began waiting in:
        // a later stall may have caught the new handshake half-way.)
        let r = &self.records[index as usize];
        let reconnected =
            matches!(event, E::Connected(_)) && r.has(AWAIT_SESSION) && r.vouched_epoch() == self.local.epoch;
        if proof && (reconnected || !self.in_stall_wake(now)) {
            let epoch = self.local.epoch;
            self.records[index as usize].set_vouched_epoch(epoch);
        }
        if matches!(to, Health::Up | Health::Down) {
            // A session vouches for it, or the peer said goodbye: the wait
            // for a new session is over.
            let r = &mut self.records[index as usize];
            r.set(AWAIT_SESSION, false);
            r.timer = NEVER;
        }
        // A Closed after PeerDead finds it down already: no second transition.
        self.transition(index, now, to, Reason::Peer(signal));
        self.settle(index, footprint, now);
        self.reschedule(index, now);
    }

    /// Whether `event` loses a peer (without a confirming check) whose
    /// session crossed a stall of ours — then it is no verdict: the peer
    /// is suspect, stays in its pool, and a new session has
    /// `reconnect_grace` to connect (see the crate documentation, "Our own
    /// stalls"). A session that crossed our stall cannot convict: the
    /// peer may have timed it out because we were stopped, and its close,
    /// or its silence after, is about us. Only a session that vouched for
    /// the peer after the stall's wake (a round trip, a recovery) is fresh
    /// again. While the peer waits for a new session, losses (of the old
    /// session, of failed attempts) are ignored.
    fn excuse_lost_session(&mut self, index: u32, now: Instant, event: &pulse_proto::Event) -> bool {
        use pulse_proto::Event as E;
        let signal = match event {
            E::PeerDead { .. } => PeerSignal::Dead,
            // Its goodbye is its own decision, never about our stall.
            E::Closed(c) if !is_goodbye(c) => PeerSignal::Closed(c.code),
            _ => return false,
        };
        let i = index as usize;
        let r = &self.records[i];
        if r.has(AWAIT_SESSION) {
            return true;
        }
        if r.health() == Health::Down || r.vouched_epoch() == self.local.epoch {
            return false;
        }
        self.stats.losses_excused += 1;
        let grace = self.config.reconnect_grace;
        let r = &mut self.records[i];
        r.set(AWAIT_SESSION, true);
        r.set_grace_renewals(0);
        // The epoch it began waiting in (older than ours still means the
        // session crossed a stall: see `on_peer_event`).
        r.set_vouched_epoch(self.local.epoch);
        r.timer = now + grace;
        if r.health() == Health::Up {
            self.transition(index, now, Health::Suspect, Reason::Peer(signal));
        }
        true
    }

    /// The wait of a peer whose lost session crossed our stall ended with
    /// no new session: down — unless another stall of ours came since, which
    /// gives it the whole grace again (the driver may have been stopped
    /// mid-reconnect), at most `max_local_score` times: a monitor that
    /// stalls again and again, each time within a grace, still convicts a
    /// peer that never reconnects.
    pub(crate) fn await_session_ended(&mut self, index: u32, now: Instant) {
        let due = self.local.fresh_after + self.config.reconnect_grace;
        let most = u32::from(self.config.max_local_score);
        let r = &mut self.records[index as usize];
        if due > now && r.grace_renewals() < most {
            r.set_grace_renewals(r.grace_renewals() + 1);
            r.timer = due;
            return;
        }
        r.set(AWAIT_SESSION, false);
        r.timer = NEVER;
        self.transition(index, now, Health::Down, Reason::NotReconnected);
    }

    /// One of the session events of a pulse peer with a confirming check:
    /// a suspicion starts fast probes, and a lost session is down only
    /// when they fail `fall` times in a row (see `peer_result`).
    fn on_confirmed_peer_event(&mut self, index: u32, now: Instant, event: &pulse_proto::Event) {
        use pulse_proto::Event as E;
        let i = index as usize;
        let footprint = self.footprint(index);
        let health = self.records[i].health();
        let lost = self.records[i].has(SESSION_LOST);
        let (to, signal) = match event {
            E::Connected(_) => {
                // A session again: it decides, the probes stop. A lost
                // session that never became a down ends here too.
                // (Up: a probe refuted it already, and counted it.)
                if lost && health == Health::Suspect {
                    self.stats.sessions_refuted += 1;
                }
                self.end_episode(index);
                self.records[i].set(SESSION_LOST, false);
                (Health::Up, PeerSignal::Connected)
            }
            E::Rtt(sample) => {
                self.records[i].set_rtt(sample.rtt);
                let to = if health == Health::Down || lost {
                    health
                } else {
                    Health::Up
                };
                (to, PeerSignal::Alive)
            }
            E::Recovered { .. } if health != Health::Down && !lost => {
                self.end_episode(index);
                (Health::Up, PeerSignal::Recovered)
            }
            E::Suspect { .. } if health == Health::Up && !lost => {
                self.start_episode(index, now);
                (Health::Suspect, PeerSignal::Suspect)
            }
            E::Closed(c) if is_goodbye(c) => {
                // It said goodbye: down at once, and no probes; a new
                // session brings it back. (Any other close — its verdict on
                // us, an error — comes from a live peer, or from the path:
                // the probes decide.)
                self.end_episode(index);
                self.records[i].set(SESSION_LOST, false);
                (Health::Down, PeerSignal::Closed(c.code))
            }
            E::PeerDead { .. } | E::Closed(_) if lost => (health, PeerSignal::Alive),
            E::PeerDead { .. } | E::Closed(_) => {
                let signal = match event {
                    E::Closed(c) => PeerSignal::Closed(c.code),
                    _ => PeerSignal::Dead,
                };
                if health != Health::Suspect {
                    self.start_episode(index, now);
                }
                self.records[i].set(SESSION_LOST, true);
                // Failures from before a stall of ours, gathered while the
                // session only suspected the peer, are no fresh round: the
                // deciding failure must come from a probe started after it
                // (as a checked target's must), so one more is needed.
                if self.local.fresh_after > self.records[i].since {
                    let fall = self.config.fall;
                    let r = &mut self.records[i];
                    r.fails = r.fails.min(fall - 1);
                }
                let r = &self.records[i];
                if r.fails >= self.config.fall {
                    let reason = Reason::LostConfirmed {
                        failed: r.fails,
                        last: r.last_result().unwrap_or(CheckResult::TimedOut),
                    };
                    self.transition(index, now, Health::Down, reason);
                }
                // In its pool while the probes confirm.
                let to = match self.records[i].health() {
                    Health::Up => Health::Suspect,
                    h => h,
                };
                (to, signal)
            }
            E::PeerStatus(status) => {
                self.set_status(index, *status);
                (health, PeerSignal::Alive)
            }
            _ => (health, PeerSignal::Alive),
        };
        if to.is_alive() && !self.records[i].has(SESSION_LOST) {
            self.records[i].heard = now;
        }
        self.transition(index, now, to, Reason::Peer(signal));
        self.settle(index, footprint, now);
        self.reschedule(index, now);
    }

    /// A suspicion of a peer with a confirming check: probe now, count
    /// afresh.
    fn start_episode(&mut self, index: u32, now: Instant) {
        let r = &mut self.records[index as usize];
        r.fails = 0;
        r.passes = 0;
        self.probe_soon(index, now);
    }

    /// Its session vouches for it again: no more probes (one under way
    /// only counts).
    fn end_episode(&mut self, index: u32) {
        let r = &mut self.records[index as usize];
        r.fails = 0;
        r.passes = 0;
        if !r.has(IN_FLIGHT) {
            r.timer = NEVER;
        }
    }

    /// A confirming probe's result for a pulse peer. While its session is
    /// alive the session decides and the probes only count; once it lost
    /// the peer, the probes decide as a checked target's do: a pass keeps
    /// (or brings back) the peer, `fall` fresh failures take it down.
    pub(crate) fn peer_result(&mut self, index: u32, now: Instant, result: CheckResult) {
        let i = index as usize;
        let r = &self.records[i];
        let (passes, fails, health) = (r.passes, r.fails, r.health());
        let lost = r.has(SESSION_LOST);
        if lost {
            let to = match health {
                _ if result.passed() && health != Health::Down => Health::Up,
                Health::Down if passes >= self.config.rise => Health::Up,
                Health::Down => Health::Down,
                _ if fails >= self.config.fall => Health::Down,
                Health::Unknown => Health::Unknown,
                _ => Health::Suspect,
            };
            if health == Health::Suspect && to == Health::Up {
                self.stats.sessions_refuted += 1;
            }
            let reason = match to {
                Health::Down => Reason::LostConfirmed {
                    failed: fails,
                    last: result,
                },
                _ => Reason::Checks {
                    count: if result.passed() { passes } else { fails },
                    last: result,
                },
            };
            self.transition(index, now, to, reason);
        }
        let r = &self.records[i];
        let nominal = match (lost, r.health()) {
            (true, Health::Up) if r.fails == 0 => Some(self.config.interval),
            (true, Health::Down) if r.passes == 0 => Some(self.config.down_interval),
            (true, _) | (false, Health::Suspect) => Some(self.config.fast_interval),
            (false, _) => None,
        };
        self.records[i].timer = match nominal {
            Some(d) => now + self.rng.jittered(self.stretch(d), self.config.jitter_percent),
            None => NEVER,
        };
    }
}

/// The peer's own goodbye: a CLOSE it sent with `NORMAL` or `GOING_AWAY`.
fn is_goodbye(closed: &pulse_proto::Closed) -> bool {
    closed.initiator == pulse_proto::Initiator::Peer && matches!(closed.code, CloseCode::NORMAL | CloseCode::GOING_AWAY)
}
