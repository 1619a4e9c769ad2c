//! A real HAProxy follows `pulse serve --haproxy-agent`: its own runtime
//! socket's `show stat` shows the server go to DRAIN, MAINT and DOWN and
//! back as the status file changes. Needs Debian's `haproxy` (`.ci/run`
//! installs it); skipped, saying so, where it is absent.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{eventually, scratch, write, Pulse};

/// HAProxy checks every 200 ms; a change shows within a few checks.
const FOLLOW: Duration = Duration::from_secs(10);

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `status` column of `server` in `show stat`.
fn server_status(socket: &Path, server: &str) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"show stat\n").ok()?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv).ok()?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
    let column = header.iter().position(|h| *h == "status")?;
    let name = header.iter().position(|h| *h == "svname")?;
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|row| row.get(name) == Some(&server))
        .and_then(|row| row.get(column).map(|s| s.to_string()))
}

#[test]
fn haproxy_follows_the_status_file_through_the_agent() {
    if Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("SKIPPED: haproxy is not installed (apt-get install haproxy; .ci/run installs it)");
        return;
    }
    let dir = scratch("haproxy");
    let status = dir.join("status");
    let mut serve = Pulse::start(&[
        "serve",
        "127.0.0.1:0",
        "--tcp-only",
        "--status-file",
        status.to_str().unwrap(),
        "--status-poll",
        "50ms",
        "--haproxy-agent",
        "127.0.0.1:0",
    ]);
    let backend = serve.wait_addr("listening (tcp) on");
    let agent = serve.wait_addr("listening (haproxy-agent) on");
    let socket = dir.join("haproxy.sock");
    let front = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.join("haproxy.cfg");
    write(
        &config,
        &format!(
            "global\n    stats socket {socket} mode 600 level admin\n\
             defaults\n    mode tcp\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             listen app\n    bind {front}\n    \
             server pulse1 {backend} check inter 200ms agent-check agent-addr {ip} agent-port {port} agent-inter 200ms\n",
            socket = socket.display(),
            ip = agent.ip(),
            port = agent.port(),
        ),
    );
    let _haproxy = Haproxy(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts"),
    );
    let wait = |want: &str| {
        eventually(FOLLOW, &format!("HAProxy showing {want}"), || {
            server_status(&socket, "pulse1").filter(|s| s.starts_with(want))
        })
    };
    wait("UP");
    for (text, shown) in [
        ("draining\n", "DRAIN"),
        ("serving\n", "UP"),
        ("maintenance\n", "MAINT"),
        ("serving 50%\n", "UP"),
        ("down disk full\n", "DOWN"),
        ("serving\n", "UP"),
    ] {
        write(&status, text);
        wait(shown);
    }
    let _ = std::fs::remove_dir_all(dir);
}
