//! The terminal: a table redrawn in place with the transitions log below
//! (on a terminal), plain lines (piped), or JSON lines (`--json`).

use std::fmt::Write as _;
use std::io::Write;

use serde_json::json;

use super::board::{Board, LogLine};
use crate::out::say;

/// Transitions shown under the table.
const LOG_LINES: usize = 12;

pub struct Output {
    json: bool,
    table: bool,
    /// Notes shown above the table, which a redraw would otherwise wipe.
    notes: Vec<String>,
}

impl Output {
    pub fn new(json: bool, table: bool) -> Output {
        Output {
            json,
            table,
            notes: Vec::new(),
        }
    }

    /// A line about the command itself (addresses it listens on).
    pub fn note(&mut self, text: &str) {
        if self.json {
            say!("{}", json!({"event": "note", "text": text}));
        } else if self.table {
            self.notes.push(text.to_string());
        } else {
            say!("{text}");
        }
    }

    pub fn transition(&self, line: &LogLine) {
        if self.json {
            let mut event = json!({"event": "transition", "target": line.target, "pool": line.pool,
                                   "from": line.from, "to": line.to, "reason": line.kind, "why": line.reason,
                                   "at_ms": line.at_ms});
            if let Some(status) = line.exit_status {
                event["exit_status"] = json!(status);
                event["exit_signal"] = json!(line.exit_signal);
            }
            say!("{event}");
        } else if !self.table {
            say!(
                "{} {}: {} -> {} ({})",
                clock(line.at_ms),
                line.target,
                line.from,
                line.to,
                line.reason
            );
        }
    }

    pub fn status(&self, target: &str, from: &str, to: &str) {
        if self.json {
            say!(
                "{}",
                json!({"event": "status", "target": target, "from": from, "to": to})
            );
        } else if !self.table {
            say!("{target}: reports {to} (was {from})");
        }
    }

    /// Redraws the table, on a terminal.
    pub fn table(&self, board: &Board) {
        if !self.table {
            return;
        }
        let state = board.lock().clone();
        let mut out = String::new();
        // Home, then clear to the end: the table is redrawn in place.
        out.push_str("\x1b[H\x1b[J");
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{:<20} {:<12} {:<8} {:<8} {:>10} {:>10} {:>6} {:>6}  STATUS",
            "TARGET", "POOL", "KIND", "STATE", "IN STATE", "RTT", "PHI", "FLAPS"
        );
        for t in &state.targets {
            let rtt = t.rtt_ms.map_or("-".into(), |r| format!("{r:.2}ms"));
            let status = match &t.stopped {
                Some(how) => format!("stopped: {how}"),
                None => format!("{} {}%", t.status, t.weight),
            };
            let _ = writeln!(
                out,
                "{:<20} {:<12} {:<8} {}{:<8}\x1b[0m {:>10} {:>10} {:>6.1} {:>6}  {}",
                cut(&t.name, 20),
                cut(&t.pool, 12),
                t.kind,
                colour(&t.state),
                t.state,
                since(t.in_state_ms),
                rtt,
                t.suspicion,
                t.transitions,
                status
            );
        }
        let _ = writeln!(out, "\ntransitions:");
        let skip = state.transitions.len().saturating_sub(LOG_LINES);
        for line in state.transitions.iter().skip(skip) {
            let _ = writeln!(
                out,
                "  {} {}: {} -> {}{}\x1b[0m ({})",
                clock(line.at_ms),
                line.target,
                line.from,
                colour(&line.to),
                line.to,
                line.reason
            );
        }
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
}

fn colour(state: &str) -> &'static str {
    match state {
        "up" => "\x1b[32m",
        "suspect" => "\x1b[33m",
        "down" => "\x1b[31m",
        _ => "\x1b[90m",
    }
}

fn cut(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// `3s`, `4m12s`, `2h05m`.
pub fn since(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The UTC time of day of a Unix time in milliseconds.
fn clock(unix_ms: u64) -> String {
    let s = unix_ms / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}
