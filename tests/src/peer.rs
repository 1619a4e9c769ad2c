//! A pulse endpoint in another process, for tests that freeze a peer
//! (SIGSTOP) or measure one side's memory alone. The child is the
//! `pulse-peer` binary; it obeys line commands on stdin and exits when
//! stdin closes, so a failing test never leaves it behind.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A running `pulse-peer` child process.
#[derive(Debug)]
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The address it listens on, for server modes.
    pub addr: Option<SocketAddr>,
}

impl Peer {
    /// Starts `binary` (pass `env!("CARGO_BIN_EXE_pulse-peer")`) with `args`
    /// and waits for its first line: `listening <addr>` or `ready`.
    pub fn start(binary: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start pulse-peer");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut peer = Peer {
            child,
            stdin,
            stdout,
            addr: None,
        };
        let first = peer.line();
        peer.addr = first.strip_prefix("listening ").map(|a| a.parse().expect("address"));
        assert!(peer.addr.is_some() || first == "ready", "pulse-peer said {first:?}");
        peer
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads one line of its output (blocking).
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from pulse-peer");
        assert!(!line.is_empty(), "pulse-peer exited");
        line.trim_end().to_string()
    }

    /// Sends a command and returns its one-line answer.
    pub fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").expect("write to pulse-peer");
        self.stdin.flush().expect("flush");
        self.line()
    }

    /// Freezes the process (SIGSTOP): its kernel still ACKs TCP, but it
    /// reads, writes and runs timers no more.
    pub fn freeze(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn thaw(&self) {
        signal(self.pid(), "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid} failed");
}

impl Drop for Peer {
    fn drop(&mut self) {
        signal(self.pid(), "-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This process's resident anonymous memory, in bytes (Linux `RssAnon`):
/// heap, mmap'd allocations and stacks — what its connections cost in user
/// space. File-backed pages (the binary's code, touched once as code paths
/// first run) are left out.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) this process has used, in microseconds. The
/// kernel scales these tick counts so their sum matches its precise
/// runtime; read over tens of seconds, the 10 ms tick is fine.
pub fn cpu_micros() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // Linux reports clock ticks of 1/100 s on every common configuration.
    ticks * 10_000
}

/// Context switches (voluntary and not) of this process's threads.
pub fn context_switches() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Resident kilobytes by kind of mapping: `heap`, `anon` (mmap'd, e.g.
/// large allocations), `stack`, `file` (binary and libraries).
pub fn rss_by_mapping() -> String {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let (mut heap, mut anon, mut stack, mut file) = (0u64, 0u64, 0u64, 0u64);
    let mut kind = 0;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields
            .first()
            .is_some_and(|f| f.contains('-') && f.chars().next().is_some_and(|c| c.is_ascii_hexdigit()))
        {
            kind = match fields.get(5) {
                Some(&"[heap]") => 0,
                Some(name) if name.starts_with("[stack") => 2,
                Some(name) if name.starts_with('/') => 3,
                _ => 1,
            };
        } else if fields.first() == Some(&"Rss:") {
            let kb: u64 = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
            match kind {
                0 => heap += kb,
                1 => anon += kb,
                2 => stack += kb,
                _ => file += kb,
            }
        }
    }
    format!("heap {heap} anon {anon} stack {stack} file {file}")
}

/// Answers the measuring harness's line commands on stdin until it closes
/// or says `quit`: `rss`, `cpu`, `switches` here, and whatever `more`
/// answers (`None`: an unknown command).
pub fn answer_commands(mut more: impl FnMut(&str) -> Option<String>) {
    use std::io::BufRead;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match line.trim() {
            "rss" => rss_bytes().to_string(),
            "cpu" => cpu_micros().to_string(),
            "switches" => context_switches().to_string(),
            "smaps" => rss_by_mapping(),
            "quit" => break,
            other => more(other).unwrap_or_else(|| format!("unknown command {other:?}")),
        };
        println!("{answer}");
    }
}

/// The counter `name` in a `stats` answer (`name <n> name <n> ...`).
pub fn stat(stats: &str, name: &str) -> u64 {
    stats
        .split_whitespace()
        .skip_while(|w| *w != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {stats:?}"))
}
