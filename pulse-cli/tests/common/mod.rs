//! Running the real `pulse` binary: each child's stdout lines arrive on a
//! channel, and every wait has a deadline.

#![allow(dead_code)] // each test file uses its own part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const PULSE: &str = env!("CARGO_BIN_EXE_pulse");

/// A running `pulse`, killed when dropped.
pub struct Pulse {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl Pulse {
    pub fn start(args: &[&str]) -> Pulse {
        let mut child = Command::new(PULSE)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the pulse binary starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Pulse {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line from now on that `pick` accepts, mapped; panics
    /// with everything seen if none comes within `limit`.
    pub fn wait_for<T>(&mut self, limit: Duration, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let picked = pick(&line);
                    self.seen.push(line);
                    if let Some(value) = picked {
                        return value;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("no {what} within {limit:?}; pulse printed:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// The address in the line that starts with `prefix`.
    pub fn wait_addr(&mut self, prefix: &str) -> SocketAddr {
        self.wait_for(Duration::from_secs(10), prefix, |line| {
            let rest = line.strip_prefix(prefix)?;
            rest.trim()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .ok()
        })
    }

    /// The next JSON line with `"event": event` matching `pick`.
    pub fn wait_json(
        &mut self,
        limit: Duration,
        what: &str,
        mut pick: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for(limit, what, |line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            pick(&value).then_some(value)
        })
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "pulse did not exit within {limit:?}");
            // Polling a child's exit: there is no event to wait on without
            // blocking the deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let _ = signal(self.child.id(), "CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `pulse` to its end (bounded) and returns its exit code and output.
pub fn run(args: &[&str], limit: Duration) -> (i32, String) {
    let mut pulse = Pulse::start(args);
    let status = pulse.wait_exit(limit);
    let mut out = String::new();
    // The reader thread holds the pipe; the lines it read are on the channel.
    while let Ok(line) = pulse.lines.recv_timeout(Duration::from_millis(500)) {
        out.push_str(&line);
        out.push('\n');
    }
    (status.code().unwrap_or(-1), out)
}

/// Sends a signal with kill(1): no unsafe in the tests.
pub fn signal(pid: u32, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pulse-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch dir");
    dir
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a file");
}

/// One HTTP/1.1 GET; the status code and body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the console");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

/// The one line a HAProxy agent-check connection gets.
pub fn agent_line(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the agent");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut line = String::new();
    stream.read_to_string(&mut line).expect("the agent's line");
    line
}

/// Polls `probe` until it gives `Some`, at most `limit`: for state that
/// has no event of its own (a file another process re-reads).
pub fn eventually<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} not within {limit:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}
