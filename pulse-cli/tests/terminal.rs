//! `pulse watch` on a terminal: the live table, redrawn in place. The
//! command runs under a pseudo-terminal (util-linux `script`, which every
//! Debian has), and the test reads what a terminal would be sent.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{scratch, write, PULSE};

const VERDICT: Duration = Duration::from_secs(10);
/// What each redraw starts with: cursor home, clear to the end of the
/// screen.
const REDRAW: &str = "\x1b[H\x1b[J";

/// `pulse watch` on a pseudo-terminal; everything it writes to the
/// terminal arrives on a channel. Killed with its process group on drop.
struct OnTerminal {
    child: Child,
    output: Receiver<Vec<u8>>,
    seen: String,
}

impl OnTerminal {
    fn start(targets: &str) -> OnTerminal {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new("script")
            .args(["--quiet", "--flush", "--return", "--command"])
            .arg(format!("{PULSE} watch {targets}"))
            .arg("/dev/null")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("util-linux `script` runs (a pseudo-terminal for the test)");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        OnTerminal {
            child,
            output,
            seen: String::new(),
        }
    }

    /// The complete frames (redraws) received so far: each is what the
    /// screen shows after it.
    fn frames(&self) -> Vec<&str> {
        let mut parts: Vec<&str> = self.seen.split(REDRAW).skip(1).collect();
        // The last one may still be arriving.
        parts.pop();
        parts
    }

    /// Reads until a complete frame satisfies `pick`; returns it.
    fn wait_frame(&mut self, what: &str, pick: impl Fn(&Table) -> bool) -> Table {
        let deadline = Instant::now() + VERDICT;
        loop {
            if let Some(table) = self.frames().iter().map(|f| Table::parse(f)).find(|t| pick(t)) {
                return table;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!(
                    "no frame with {what} within {VERDICT:?}; the terminal was sent:\n{:?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for OnTerminal {
    fn drop(&mut self) {
        // `script` and `pulse` share the process group made at spawn.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// One redraw, as a person reads the screen: rows of words, colours gone.
#[derive(Debug)]
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(frame: &str) -> Table {
        let rows = frame
            .split('\n')
            .map(|line| strip_ansi(line.trim_end_matches('\r')))
            .map(|line| line.split_whitespace().map(str::to_string).collect())
            .collect();
        Table { rows }
    }

    /// The rows of the table for target `name` (one, if drawn in place).
    fn rows_of(&self, name: &str) -> Vec<&Vec<String>> {
        let header = self.rows.iter().position(|r| r.first().is_some_and(|w| w == "TARGET"));
        let Some(header) = header else { return Vec::new() };
        self.rows[header + 1..]
            .iter()
            .take_while(|r| !r.is_empty())
            .filter(|r| r[0] == name)
            .collect()
    }

    /// Target `name`'s state column.
    fn state(&self, name: &str) -> Option<&str> {
        match self.rows_of(name)[..] {
            [row] => row.get(3).map(String::as_str),
            _ => None,
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then a final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_table_shows_every_target_and_a_row_changes_state_in_place() {
    let dir = scratch("terminal");
    let (api, db) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let targets = dir.join("targets.toml");
    write(
        &targets,
        &format!(
            "interval = \"200ms\"\nfast_interval = \"100ms\"\ndown_interval = \"200ms\"\ntimeout = \"150ms\"\n\
             [[target]]\nname = \"api-1\"\npool = \"api\"\ntcp = \"{}\"\n\
             [[target]]\nname = \"db-1\"\npool = \"db\"\ntcp = \"{}\"\n",
            api.local_addr().unwrap(),
            db.local_addr().unwrap()
        ),
    );
    let mut watch = OnTerminal::start(targets.to_str().unwrap());
    let up = watch.wait_frame("both targets up", |t| {
        t.state("api-1") == Some("up") && t.state("db-1") == Some("up")
    });
    let row = up.rows_of("api-1")[0].clone();
    assert_eq!(&row[1..3], ["api", "tcp"], "{up:?}");

    // The database goes away: its row turns down, the other stays up.
    drop(db);
    let down = watch.wait_frame("db-1 down", |t| t.state("db-1") == Some("down"));
    assert_eq!(down.state("api-1"), Some("up"), "{down:?}");
    // Its change is in the log under the table too.
    assert!(
        down.rows
            .iter()
            .any(|r| r.len() >= 5 && r[1] == "db-1:" && r[3] == "->" && r[4] == "down"),
        "{down:?}"
    );

    // Redrawn in place: every frame starts at the top of a cleared screen
    // and holds each target's row once — never a table appended below the
    // last one.
    let frames = watch.frames();
    assert!(frames.len() >= 3, "{} frames", frames.len());
    for frame in &frames {
        let table = Table::parse(frame);
        assert_eq!(table.rows_of("api-1").len(), 1, "{frame:?}");
        assert_eq!(table.rows_of("db-1").len(), 1, "{frame:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
