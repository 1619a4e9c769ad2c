//! Flap damping, as in BGP route-flap damping (RFC 2439): every time a
//! target moves in or out of service it earns a penalty that halves every
//! half-life; over the suppress limit it is held out of its pool until the
//! penalty has decayed under the reuse limit.

use core::time::Duration;

/// The damping policy.
///
/// The defaults suppress a target that changes state every 10 seconds at
/// its fourth transition and readmit it at most one half-life after it
/// settles (the penalty is capped at twice the reuse limit).
///
/// # Examples
///
/// ```
/// use pulse_monitor::Damping;
///
/// let damping = Damping::default();
/// assert!(damping.penalty < damping.suppress);
/// assert!(damping.reuse < damping.suppress);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct Damping {
    /// Penalty earned by one transition in or out of service. Default 1000.
    ///
    /// The unit is arbitrary; only its ratio to the limits matters. Keep it
    /// at 1000 and move the limits.
    pub penalty: f32,
    /// Over this the target is suppressed. Default 2500 (the third quick
    /// transition in a row, the fourth at 10 s spacing).
    ///
    /// Raise it for targets whose transitions are expected (rolling
    /// deploys restart every backend once or twice); lower it to catch
    /// slow flapping sooner.
    pub suppress: f32,
    /// Under this a suppressed target is readmitted. Default 1500.
    ///
    /// The ceiling of the penalty is `reuse × 2^(max_suppress / half_life)`,
    /// so with the defaults a settled target is back within one half-life.
    pub reuse: f32,
    /// The time the penalty takes to halve. Default 30 s.
    ///
    /// Longer keeps a flapping target out longer and remembers older flaps;
    /// BGP uses 15 minutes, for routes that matter far more than a backend.
    pub half_life: Duration,
    /// The longest a target that has settled stays suppressed. Default 30 s
    /// (one half-life).
    ///
    /// It sets the penalty's ceiling; raise it to punish targets that
    /// flapped for a long time more than those that flapped briefly.
    pub max_suppress: Duration,
}

impl Default for Damping {
    fn default() -> Damping {
        Damping {
            penalty: 1000.0,
            suppress: 2500.0,
            reuse: 1500.0,
            half_life: Duration::from_secs(30),
            max_suppress: Duration::from_secs(30),
        }
    }
}

impl Damping {
    /// The highest the penalty can climb.
    pub(crate) fn ceiling(&self) -> f32 {
        self.reuse * libm::exp2f(self.max_suppress.as_secs_f32() / self.half_life.as_secs_f32())
    }

    /// `penalty`, `elapsed` after it was last updated.
    pub(crate) fn decayed(&self, penalty: f32, elapsed: Duration) -> f32 {
        if penalty <= 0.0 {
            return 0.0;
        }
        let decayed = penalty * libm::exp2f(-elapsed.as_secs_f32() / self.half_life.as_secs_f32());
        // Below one thousandth of a transition it is gone, which also keeps
        // floats out of subnormal range.
        if decayed < self.penalty / 1000.0 {
            0.0
        } else {
            decayed
        }
    }

    /// The penalty after one more transition.
    pub(crate) fn add_transition(&self, penalty: f32) -> f32 {
        (penalty + self.penalty).min(self.ceiling())
    }

    /// How long `penalty` takes to decay to the reuse limit.
    pub(crate) fn time_to_reuse(&self, penalty: f32) -> Duration {
        if penalty <= self.reuse {
            return Duration::ZERO;
        }
        let halvings = libm::log2f(penalty / self.reuse);
        // Rounded up to the next millisecond so that at the deadline the
        // penalty is at or under the limit, not a hair over it.
        Duration::from_millis((halvings * self.half_life.as_secs_f32() * 1000.0) as u64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_penalty_halves_every_half_life_and_is_capped() {
        let d = Damping::default();
        assert!((d.decayed(2000.0, d.half_life) - 1000.0).abs() < 0.5);
        assert!((d.ceiling() - 3000.0).abs() < 0.5);
        let mut p = 0.0;
        for _ in 0..10 {
            p = d.add_transition(p);
        }
        assert!((p - 3000.0).abs() < 0.5);
    }

    #[test]
    fn at_the_reuse_deadline_the_penalty_is_under_the_limit() {
        let d = Damping::default();
        for p in [1600.0f32, 2500.0, 3000.0] {
            let t = d.time_to_reuse(p);
            assert!(d.decayed(p, t) <= d.reuse, "{p}: {}", d.decayed(p, t));
            assert!(d.decayed(p, t - Duration::from_millis(5)) > d.reuse);
            assert!(t <= d.half_life + Duration::from_millis(1));
        }
    }
}
