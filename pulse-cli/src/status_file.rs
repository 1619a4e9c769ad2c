//! The status an operator sets for `pulse serve`: read from a file of one
//! line, changed by signals, shown to peers (in-band STATUS frames) and to
//! HAProxy (agent-check lines).

use std::fmt;
use std::path::Path;
use std::time::SystemTime;

use pulse_proto::{ServiceState, Status};

/// What the operator says of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported {
    /// A state a pulse peer understands, with its weight.
    Service(Status),
    /// Failing: out of every pool, with a reason for the load balancer's
    /// logs. pulse's STATUS has no such state; peers are told
    /// `degraded 0%` (up, but send it nothing).
    Down(String),
}

impl Default for Reported {
    fn default() -> Reported {
        Reported::Service(Status::default())
    }
}

impl Reported {
    /// Parses the file's first line: a state word, an optional weight
    /// (`75` or `75%`), and for `down` an optional reason.
    pub fn parse(text: &str) -> Result<Reported, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(word) = words.next() else {
            return Ok(Reported::default());
        };
        let state = match word.to_ascii_lowercase().as_str() {
            "serving" | "up" | "ready" => ServiceState::Serving,
            "draining" | "drain" => ServiceState::Draining,
            "degraded" => ServiceState::Degraded,
            "maintenance" | "maint" => ServiceState::Maintenance,
            "down" => {
                let reason: Vec<&str> = words.collect();
                return Ok(Reported::Down(reason.join(" ")));
            }
            other => {
                return Err(format!(
                    "unknown state `{other}` (serving, draining, degraded, maintenance or down)"
                ))
            }
        };
        let weight = match words.next() {
            None if state.takes_work() => Status::FULL_WEIGHT,
            None => 0,
            Some(w) => w
                .trim_end_matches('%')
                .parse::<u8>()
                .ok()
                .filter(|w| *w <= Status::FULL_WEIGHT)
                .ok_or_else(|| format!("`{w}` is not a weight from 0 to 100"))?,
        };
        Ok(Reported::Service(Status::new(state, weight)))
    }

    /// The STATUS a pulse peer is told.
    pub fn status(&self) -> Status {
        match self {
            Reported::Service(status) => *status,
            Reported::Down(_) => Status::new(ServiceState::Degraded, 0),
        }
    }

    /// HAProxy's agent-check answer (one line). `ready` lifts a drain or
    /// maintenance set earlier by the agent; a weight alone sets the
    /// server's share.
    pub fn agent_line(&self) -> String {
        match self {
            Reported::Service(status) => match status.state() {
                ServiceState::Serving | ServiceState::Degraded => format!("up ready {}%\n", status.weight()),
                ServiceState::Draining => "drain\n".into(),
                ServiceState::Maintenance => "maint\n".into(),
            },
            Reported::Down(reason) if reason.is_empty() => "ready down\n".into(),
            // HAProxy takes a word starting with `#` as the start of the
            // description (the rest of the line); `down#why` is refused as
            // an unknown word. The line ends at the first newline.
            Reported::Down(reason) => format!("ready down #{}\n", reason.replace(['\r', '\n'], " ")),
        }
    }
}

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reported::Service(status) => status.fmt(f),
            Reported::Down(reason) if reason.is_empty() => f.write_str("down"),
            Reported::Down(reason) => write!(f, "down ({reason})"),
        }
    }
}

/// What identifies a version of the file: its modification time and
/// length (`None` while it is missing). Cheap to read every poll.
pub fn version(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The status the file says; a missing file means serving.
pub fn read(path: &Path) -> Result<Reported, String> {
    match std::fs::read(path) {
        // A status file is one short line; more is not ours to read.
        Ok(bytes) => Reported::parse(&String::from_utf8_lossy(&bytes[..bytes.len().min(4096)])),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Reported::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_gives_its_agent_line() {
        let line = |text: &str| Reported::parse(text).unwrap().agent_line();
        assert_eq!(line(""), "up ready 100%\n");
        assert_eq!(line("serving 75%\n"), "up ready 75%\n");
        assert_eq!(line("draining"), "drain\n");
        assert_eq!(line("maintenance"), "maint\n");
        assert_eq!(line("down disk full"), "ready down #disk full\n");
        assert_eq!(line("# a comment\ndegraded 40"), "up ready 40%\n");
    }

    #[test]
    fn bad_lines_are_errors_not_a_status() {
        assert!(Reported::parse("sleeping").is_err());
        assert!(Reported::parse("serving 250%").is_err());
    }

    #[test]
    fn down_is_degraded_at_weight_zero_for_pulse_peers() {
        let down = Reported::parse("down").unwrap();
        assert_eq!(down.status(), Status::new(ServiceState::Degraded, 0));
    }
}
