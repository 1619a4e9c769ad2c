//! What an operator needs to see, through `tracing`, the same from every
//! adapter. Quiet by default: nothing is printed unless the program
//! installs a subscriber.
//!
//! | target | level | what |
//! |---|---|---|
//! | `pulse::conn` | `debug` | a connection opened (peer, interval, timeout) |
//! | `pulse::conn` | `info` | the server changed what the client asked (each adjustment, and why) |
//! | `pulse::conn` | `info` | a dead-peer verdict (peer, silence) |
//! | `pulse::conn` | `warn` | a reconnecting client's queued message was too large for the new peer: set aside for `take_unsent`, never sent (tag, error) |
//! | `pulse::conn` | `debug` / `info` | a connection closed: `debug` for normal and going away, `info` otherwise (code, who began it, reason) |
//! | `pulse::accept` | `warn` | an accept failed, or a limit was reached (once per episode) |
//! | `pulse::accept` | `info` | a connection was refused (peer, reason) |
//! | `pulse::monitor` | `warn` | a monitor's announcement socket could not be registered with the driver's runtime, and is dropped |

use std::fmt::Display;
use std::time::Duration;

use pulse_proto::{CloseCode, Closed, Negotiated};

/// A connection completed its handshake.
pub fn opened(peer: impl Display, negotiated: &Negotiated) {
    tracing::debug!(
        target: "pulse::conn",
        %peer,
        interval = ?negotiated.interval(),
        dead_timeout = ?negotiated.dead_timeout(),
        "connection opened"
    );
    for change in negotiated.adjustments() {
        tracing::info!(target: "pulse::conn", %peer, "negotiation changed a request: {change}");
    }
}

/// A dead-peer verdict.
pub fn verdict(peer: impl Display, silent_for: Duration) {
    tracing::info!(target: "pulse::conn", %peer, ?silent_for, "peer declared dead");
}

/// A connection ended.
pub fn closed(peer: impl Display, closed: &Closed) {
    if matches!(closed.code, CloseCode::NORMAL | CloseCode::GOING_AWAY) {
        tracing::debug!(target: "pulse::conn", %peer, code = %closed.code, initiator = ?closed.initiator, reason = %closed.reason, "connection closed");
    } else {
        tracing::info!(target: "pulse::conn", %peer, code = %closed.code, initiator = ?closed.initiator, reason = %closed.reason, "connection closed");
    }
}

/// A connection was turned away.
pub fn refused(peer: impl Display, why: &str) {
    tracing::info!(target: "pulse::accept", %peer, "refused: {why}");
}

/// Accepting failed.
pub fn accept_error(error: &std::io::Error) {
    tracing::warn!(target: "pulse::accept", %error, "accept failed");
}

/// Logs the start of an episode once, however often it recurs until it
/// ends: a listener out of descriptors says so once, not per connection.
#[derive(Debug, Default)]
pub struct Episode {
    active: bool,
}

impl Episode {
    /// The condition holds: logs `what` (with `error`) if it is new.
    pub fn begin(&mut self, what: &str, error: &std::io::Error) {
        if !std::mem::replace(&mut self.active, true) {
            tracing::warn!(target: "pulse::accept", %error, "{what}");
        }
    }

    /// The condition is over: logs that, if it was on.
    pub fn end(&mut self, what: &str) {
        if std::mem::take(&mut self.active) {
            tracing::info!(target: "pulse::accept", "{what}");
        }
    }

    /// Whether the condition holds now.
    pub fn is_active(&self) -> bool {
        self.active
    }
}
