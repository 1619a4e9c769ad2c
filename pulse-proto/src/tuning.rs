//! Changing the timings in-session (RETIME), and the adaptive interval
//! that drives it: the bookkeeping, boxed, for sessions that use either.

use alloc::collections::VecDeque;
use bytes::Bytes;
use core::time::Duration;

use crate::adapt::{Adaptive, AdaptiveConfig, Learned};
use crate::config::Transport;
use crate::time::Instant;

/// A PING the adaptive policy learns from (`docs/PROTOCOL.md` §6.11).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IdleRound {
    /// The PING's id.
    pub(crate) id: u32,
    /// Nothing sent or heard for this long before it: what its answer
    /// proves the path keeps.
    pub(crate) quiet: Duration,
    /// Since the older of our last send and the last frame heard: what a
    /// death after it blames (a NAT that only one direction refreshes
    /// forgets by that direction's silence; the quiet may be far shorter).
    pub(crate) exposure: Duration,
    /// When it left.
    pub(crate) sent: Instant,
}

/// A RETIME request as a server sees it (`docs/PROTOCOL.md` §6.10 rule 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Newer than any answered: clamped, answered and agreed.
    New,
    /// The last one answered, again: the same answer, nothing new agreed.
    Repeat(Timing),
    /// Older than the last answered: ignored.
    Stale,
}

/// Whether a PING confirming the path for held DATA may go when output is
/// next staged (`docs/PROTOCOL.md` §6.11.1 rule 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// No local call nor timer since output was last staged: input alone
    /// never sends one.
    #[default]
    No,
    /// A local call or a timer: it may go, and its probe timeout may move
    /// the deadline earlier (the driver re-arms after a local call).
    Now,
    /// A local call or a timer, then input before the output was staged:
    /// it may go, but its probe timeout may not move the deadline earlier
    /// than it stood (the timer contract).
    AfterInput,
}

/// Timings in wire form: interval and dead-peer timeout, milliseconds.
pub(crate) type Timing = (u32, u32);

/// How many times a client sends an unanswered RETIME again, one with each
/// scheduled PING, before it keeps its current timings
/// (`docs/PROTOCOL.md` §6.10).
pub(crate) const RETIME_RESENDS: u8 = 3;

#[derive(Debug, Default)]
pub(crate) struct Tuning {
    pub(crate) adaptive: Option<Adaptive>,
    next_id: u16,
    /// A client's request awaiting its answer: its id and timings.
    pub(crate) asked: Option<(u16, Timing)>,
    /// Times the request was sent again, unanswered.
    resends: u8,
    /// A server's answer to send: the request's id and what was agreed.
    pub(crate) answer: Option<(u16, Timing)>,
    /// The last request a server answered: its id and what was agreed, to
    /// answer a repeat of it the same way and to know a stale one.
    pub(crate) answered: Option<(u16, Timing)>,
    /// A server's interval agreed in the handshake: it guards its DATA
    /// only while its client has retimed to a longer one (§6.11.1).
    pub(crate) handshake_interval_ms: Option<u32>,
    /// A server that agreed to take its client back from a longer interval
    /// to one no longer than the handshake's guards until then: the client
    /// keeps the longer schedule until its next timer, which may be most of
    /// that interval away (§6.11.1).
    pub(crate) guard_until: Option<Instant>,
    /// Timings agreed, to take effect at this side's next timer (taking
    /// effect on input could move a deadline earlier, which drivers do not
    /// watch for).
    pub(crate) agreed: Option<Timing>,
    /// When a server last answered: one answer per minimum ping spacing.
    pub(crate) answered_at: Option<Instant>,
    /// A shorter target the adaptive policy chose on input: the pending
    /// spacing is cut to it once the input is handled, as far as the timer
    /// contract allows.
    pub(crate) cap: Option<Duration>,
    /// A datagram client's last send: its schedule also counts from it, as
    /// NATs that only its own packets refresh would forget a connection it
    /// only receives on.
    pub(crate) last_sent: Option<Instant>,
    /// The latest PING the adaptive policy learns from: its id, the idle
    /// gap before it, and when it left.
    pub(crate) gap: Option<IdleRound>,
    /// When this side last sent anything: with the last frame heard, how
    /// long the path has been idle (`docs/PROTOCOL.md` §6.11).
    pub(crate) sent_at: Instant,
    /// The longest quiet (nothing sent, nothing heard) that ended with a
    /// frame heard: the path is known to keep an idle connection that long.
    pub(crate) proven: Duration,
    /// Messages never begun when the session ended abruptly or its
    /// graceful close ran out of time, for [`crate::Session::poll_unsent`].
    pub(crate) unsent: VecDeque<(u16, Bytes)>,
    /// Whether a PING confirming the path for held DATA may go at the
    /// next staging of output (`docs/PROTOCOL.md` §6.11.1 rule 3).
    pub(crate) confirm: Confirm,
    /// The timings the server agreed to when it clamped an adaptive
    /// client's interval below what it asked: its ceiling.
    pub(crate) clamp: Option<Timing>,
}

impl Tuning {
    pub(crate) fn adaptive(config: AdaptiveConfig, now: Instant, transport: Transport) -> Tuning {
        Tuning {
            adaptive: Some(Adaptive::new(config, Learned::default(), now)),
            last_sent: (transport == Transport::Datagram).then_some(now),
            sent_at: now,
            ..Tuning::default()
        }
    }

    pub(crate) fn datagram_client(now: Instant) -> Tuning {
        Tuning {
            last_sent: Some(now),
            sent_at: now,
            ..Tuning::default()
        }
    }

    /// A server's, from the first RETIME it is sent, in a session whose
    /// handshake agreed to `handshake_interval_ms`.
    pub(crate) fn server(now: Instant, handshake_interval_ms: u32) -> Tuning {
        Tuning {
            sent_at: now,
            handshake_interval_ms: Some(handshake_interval_ms),
            ..Tuning::default()
        }
    }

    /// What a server does with request `id` (`docs/PROTOCOL.md` §6.10
    /// rule 2): ids increase (modulo 2^16), so one behind the last answered
    /// is a request the client has since replaced — a datagram overtaken,
    /// whose timings must not undo the newer agreement; the last one again
    /// is a request whose answer was lost, answered as it was before.
    pub(crate) fn classify(&self, id: u16) -> Request {
        match self.answered {
            Some((last, agreed)) if last == id => Request::Repeat(agreed),
            // Serial-number order (RFC 1982): within half the id space.
            Some((last, _)) if (id.wrapping_sub(last) as i16) < 0 => Request::Stale,
            _ => Request::New,
        }
    }

    /// A server agrees at `now` to new request `id`, for `agreed`, while
    /// `current` timings are in force. Leaving an interval longer than the
    /// handshake's for one no longer, it keeps guarding for the longer
    /// dead-peer timeout: its client switches only at its next timer, on
    /// the longer schedule, and the path may idle that long meanwhile; a
    /// client that said nothing for that long would be convicted anyway.
    pub(crate) fn agree(&mut self, now: Instant, id: u16, agreed: Timing, current: Timing) {
        if let Some(handshake) = self.handshake_interval_ms {
            // The longest timings in play: those in force, or agreed and
            // about to take effect.
            let longest = match self.agreed {
                Some(pending) if pending.0 > current.0 => pending,
                _ => current,
            };
            if longest.0 > handshake && agreed.0 <= handshake {
                let until = now + Duration::from_millis(longest.1.into());
                self.guard_until = Some(self.guard_until.map_or(until, |t| t.max(until)));
            }
        }
        self.agreed = Some(agreed);
        self.answered = Some((id, agreed));
    }

    /// A new request for `timing`; its id.
    pub(crate) fn ask(&mut self, timing: Timing) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.asked = Some((self.next_id, timing));
        self.resends = 0;
        self.next_id
    }

    /// Whether the unanswered request goes out again (with a scheduled
    /// PING): a datagram may have lost it, or the server ignored it for
    /// coming within `min_ping_spacing` of its last answer. After
    /// [`RETIME_RESENDS`] the server is taken not to answer, and the
    /// current timings stay.
    pub(crate) fn resend(&mut self) -> bool {
        if self.asked.is_none() {
            return false;
        }
        if self.resends >= RETIME_RESENDS {
            self.asked = None;
            return false;
        }
        self.resends += 1;
        true
    }

    /// The answer to request `id`, if it is the one outstanding.
    pub(crate) fn answered(&mut self, id: u16, timing: Timing) -> bool {
        match self.asked {
            Some((asked, _)) if asked == id => {
                self.asked = None;
                self.agreed = Some(timing);
                true
            }
            _ => false,
        }
    }
}

/// The heartbeat interval whose widest jittered spacing is `gap`: the
/// adaptive policy bounds the idle gap, and spacings reach `+jitter`.
pub(crate) fn interval_for_gap(gap: Duration, jitter_percent: u8) -> Duration {
    gap * 100 / (100 + u32::from(jitter_percent))
}
