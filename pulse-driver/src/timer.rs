//! One timer per session, touched only when it must be.

use pulse_proto::Instant;

/// What to do with the runtime's timer after a call into the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arm {
    /// Leave it: it is set for this deadline or an earlier one, and firing
    /// early is a no-op for the session.
    Keep,
    /// Set it for this instant.
    Set(Instant),
    /// Cancel it: the session is closed.
    Cancel,
}

/// The re-arm rule of pulse-proto's timer contract: input never moves a
/// session's deadline earlier, so a driver sets its timer only when the
/// deadline moved earlier (a local call, the handshake) or the timer fired;
/// a received frame costs no timer operation.
///
/// ```
/// use pulse_driver::{Arm, TimerSlot};
/// use pulse_proto::Instant;
///
/// let mut slot = TimerSlot::default();
/// let at = |s: u64| Instant::from_nanos(s * 1_000_000_000);
/// assert_eq!(slot.rearm(Some(at(10))), Arm::Set(at(10)));
/// assert_eq!(slot.rearm(Some(at(12))), Arm::Keep); // later: fire early, no-op
/// assert_eq!(slot.rearm(Some(at(5))), Arm::Set(at(5))); // earlier: must move
/// slot.fired();
/// assert_eq!(slot.rearm(Some(at(12))), Arm::Set(at(12)));
/// assert_eq!(slot.rearm(None), Arm::Cancel);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TimerSlot {
    armed: Option<Instant>,
}

impl TimerSlot {
    /// The timer's action for the session's current `deadline`.
    pub fn rearm(&mut self, deadline: Option<Instant>) -> Arm {
        match (deadline, self.armed) {
            (None, None) => Arm::Keep,
            (None, Some(_)) => {
                self.armed = None;
                Arm::Cancel
            }
            (Some(at), Some(armed)) if armed <= at => Arm::Keep,
            (Some(at), _) => {
                self.armed = Some(at);
                Arm::Set(at)
            }
        }
    }

    /// The timer fired: the next deadline must be set afresh.
    pub fn fired(&mut self) {
        self.armed = None;
    }

    /// When the timer is set for, if it is.
    pub fn armed(&self) -> Option<Instant> {
        self.armed
    }
}
