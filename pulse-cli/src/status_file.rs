//! The status an operator sets for `pulse serve`: read from a file of one
//! line, changed by signals, shown to peers (in-band STATUS frames) and to
//! HAProxy (agent-check lines).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_lite::future;

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
                // Echoed where the operator looks: a control character
                // in the file must not drive their terminal.
                return Err(format!(
                    "unknown state `{}` (serving, draining, degraded, maintenance or down)",
                    other.escape_debug()
                ));
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
                .ok_or_else(|| format!("`{}` is not a weight from 0 to 100", w.escape_debug()))?,
        };
        Ok(Reported::Service(Status::new(state, weight)))
    }

    /// The state as the operator wrote it: `serving`, `draining`,
    /// `degraded`, `maintenance` or `down` (which peers see as degraded).
    pub fn state_name(&self) -> String {
        match self {
            Reported::Service(status) => status.state().to_string(),
            Reported::Down(_) => "down".into(),
        }
    }

    /// Why the service is down, if it is and the file says why.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Reported::Down(reason) if !reason.is_empty() => Some(reason),
            _ => None,
        }
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

/// The most of the file that is read: a status file is one short line.
const READ_AT_MOST: u64 = 4096;

/// The status the file says; a missing file means serving. Blocks (a
/// FIFO, a hung network file system): call it through [`Reader`].
fn read(path: &Path) -> Result<Reported, String> {
    let mut bytes = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(READ_AT_MOST).read_to_end(&mut bytes));
    match read {
        Ok(_) => Reported::parse(&String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Reported::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// What one look at the file found.
pub enum Look {
    /// The file is as it was last time: nothing to do.
    Unchanged,
    /// The file changed (or a re-read was asked for): what it says.
    Read(Result<Reported, String>),
    /// The file system gave no answer in time; the look goes on in the
    /// background, and no other starts until it ends.
    TimedOut,
    /// The look given up earlier has not ended yet.
    Busy,
}

/// What a look off the executor brings back: the file's version, and
/// what it says when it was read.
type Found = (Option<(SystemTime, u64)>, Option<Result<Reported, String>>);

/// Looks at the status file off the executor thread: the thread that
/// drives every heartbeat must never wait for a file system. At most one
/// look is in flight, however long the file system takes.
pub struct Reader {
    path: PathBuf,
    timeout: Duration,
    seen: Option<(SystemTime, u64)>,
    in_flight: Option<smol::Task<Found>>,
}

impl Reader {
    /// A reader of `path` that gives each look `timeout`.
    pub fn new(path: PathBuf, timeout: Duration) -> Reader {
        Reader {
            path,
            timeout,
            seen: None,
            in_flight: None,
        }
    }

    /// Looks at the file: reads it when its modification time or length
    /// changed since the last look, or always when `force`.
    pub async fn look(&mut self, force: bool) -> Look {
        let task = match self.in_flight.take() {
            Some(task) if !task.is_finished() => {
                self.in_flight = Some(task);
                return Look::Busy;
            }
            // A look given up earlier ended: it tells what the file
            // says now as well as a new one would.
            Some(task) => task,
            None => {
                let (path, seen) = (self.path.clone(), self.seen);
                smol::unblock(move || {
                    let now = version(&path);
                    if !force && now == seen {
                        return (now, None);
                    }
                    (now, Some(read(&path)))
                })
            }
        };
        let mut task = task;
        let done = future::or(async { Some((&mut task).await) }, async {
            async_io::Timer::after(self.timeout).await;
            None
        })
        .await;
        match done {
            None => {
                self.in_flight = Some(task);
                Look::TimedOut
            }
            Some((version, read)) => {
                self.seen = version;
                read.map_or(Look::Unchanged, Look::Read)
            }
        }
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
    fn a_bad_line_is_echoed_with_its_control_characters_escaped() {
        let e = Reported::parse("\u{1b}[2Jasleep").unwrap_err();
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}[2jasleep"), "{e}");
        let e = Reported::parse("serving \u{7}9").unwrap_err();
        assert!(!e.contains('\u{7}'), "{e}");
    }

    #[test]
    fn no_more_than_4096_bytes_of_the_file_are_read() {
        let path = std::env::temp_dir().join(format!("pulse-status-{}", std::process::id()));
        std::fs::write(&path, format!("{}draining\n", " ".repeat(4096))).unwrap();
        let read = read(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(read, Ok(Reported::default()));
    }

    #[test]
    fn down_is_degraded_at_weight_zero_for_pulse_peers() {
        let down = Reported::parse("down").unwrap();
        assert_eq!(down.status(), Status::new(ServiceState::Degraded, 0));
    }
}
