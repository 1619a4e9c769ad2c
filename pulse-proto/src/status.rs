//! What a service says of itself: level-triggered, the full state each
//! time, so a lost or repeated report never leaves a stale view behind.

use core::fmt;

/// The state a service reports for itself, as an operator would name it.
///
/// On the wire it is one byte ([the protocol](crate::protocol) §4.6, §6.9): an unknown value
/// from a later version reads as [`ServiceState::Degraded`], the cautious
/// choice for a load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ServiceState {
    /// Healthy and taking work.
    #[default]
    Serving,
    /// Finishing what it has, taking no new work: shutting down or
    /// restarting soon. Keep existing connections, send nothing new.
    Draining,
    /// Up, but impaired: send it less (its weight says how much).
    Degraded,
    /// Out for maintenance by an operator's decision: send it nothing, and
    /// do not count it as a failure.
    Maintenance,
}

impl ServiceState {
    /// The state's wire byte.
    pub fn to_wire(self) -> u8 {
        match self {
            ServiceState::Serving => 0,
            ServiceState::Draining => 1,
            ServiceState::Degraded => 2,
            ServiceState::Maintenance => 3,
        }
    }

    /// The state a wire byte names; an unknown value is read as
    /// [`ServiceState::Degraded`].
    pub fn from_wire(byte: u8) -> ServiceState {
        match byte {
            0 => ServiceState::Serving,
            1 => ServiceState::Draining,
            3 => ServiceState::Maintenance,
            _ => ServiceState::Degraded,
        }
    }

    /// Whether a load balancer should send new work to it.
    pub fn takes_work(self) -> bool {
        matches!(self, ServiceState::Serving | ServiceState::Degraded)
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceState::Serving => "serving",
            ServiceState::Draining => "draining",
            ServiceState::Degraded => "degraded",
            ServiceState::Maintenance => "maintenance",
        })
    }
}

/// A service's report of itself: its state and the share of its nominal
/// capacity it wants, in percent.
///
/// # Examples
///
/// ```
/// use pulse_proto::{ServiceState, Status};
///
/// let status = Status::new(ServiceState::Degraded, 40);
/// assert_eq!(status.weight(), 40);
/// assert_eq!(status.to_string(), "degraded 40%");
/// assert_eq!(Status::new(ServiceState::Serving, 250).weight(), 100); // capped
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    state: ServiceState,
    weight: u8,
}

impl Status {
    /// The largest weight: the service's full nominal share.
    pub const FULL_WEIGHT: u8 = 100;

    /// A status with `weight` percent of the nominal share (capped at 100).
    pub fn new(state: ServiceState, weight: u8) -> Status {
        Status {
            state,
            weight: weight.min(Self::FULL_WEIGHT),
        }
    }

    /// The state.
    pub fn state(&self) -> ServiceState {
        self.state
    }

    /// Percent of the nominal share, 0–100.
    pub fn weight(&self) -> u8 {
        self.weight
    }
}

impl Default for Status {
    /// Serving, at full weight.
    fn default() -> Status {
        Status::new(ServiceState::Serving, Self::FULL_WEIGHT)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}%", self.state, self.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_its_wire_byte_and_unknown_bytes_read_as_degraded() {
        for state in [
            ServiceState::Serving,
            ServiceState::Draining,
            ServiceState::Degraded,
            ServiceState::Maintenance,
        ] {
            assert_eq!(ServiceState::from_wire(state.to_wire()), state);
        }
        assert_eq!(ServiceState::from_wire(200), ServiceState::Degraded);
    }
}
