//! `pulse announce`: ANNOUNCE datagrams (pulse-monitor encodes them, and
//! signs them with the key) sent over UDP on a timer, for as long as a
//! command runs or until Ctrl-C; then a last `stopped` one with the
//! command's exit status.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use pulse_driver::clock;
use pulse_monitor::{AnnounceKey, Announcement, Announcer, ExitStatus, Report};

use serde_json::json;

use crate::cli::AnnounceArgs;
use crate::out::say;
use crate::status_file::Reported;
use crate::{exit, service_id, signals};

/// Exit status when the command cannot be started, as env(1) uses.
const NOT_STARTED: i32 = 127;

pub fn run(args: AnnounceArgs) -> i32 {
    let status = match Reported::parse(&format!("{} {}", args.status, args.weight)) {
        Ok(Reported::Service(status)) => status,
        Ok(Reported::Down(_)) => {
            eprintln!("pulse announce: `down` cannot be announced; a service that is down stops announcing");
            return exit::USAGE;
        }
        Err(e) => {
            eprintln!("pulse announce: {e}");
            return exit::USAGE;
        }
    };
    if args.interval < Duration::from_millis(1) {
        eprintln!("pulse announce: --interval must be at least 1ms");
        return exit::USAGE;
    }
    let key = match args.key.as_deref().map(read_key).transpose() {
        Ok(key) => key,
        Err(e) => {
            eprintln!("pulse announce: {e}");
            return exit::USAGE;
        }
    };
    let stop = match signals::channel(&signals::STOP) {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("pulse announce: cannot watch signals: {e}");
            return exit::USAGE;
        }
    };
    smol::block_on(async {
        let collector = match async_net::resolve(args.collector.as_str())
            .await
            .ok()
            .and_then(|a| a.first().copied())
        {
            Some(addr) => addr,
            None => {
                eprintln!("pulse announce: cannot resolve {}", args.collector);
                return exit::USAGE;
            }
        };
        let local = if collector.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = match async_net::UdpSocket::bind(local).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("pulse announce: {e}");
                return exit::USAGE;
            }
        };
        let mut child = None;
        if let Some((program, rest)) = args.command.split_first() {
            match smol::process::Command::new(program).args(rest).spawn() {
                Ok(c) => child = Some(c),
                Err(e) => {
                    eprintln!("pulse announce: cannot run {program}: {e}");
                    return NOT_STARTED;
                }
            }
        }
        // §12.3: a sender that keeps no state uses its start time.
        let incarnation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let now = clock::now();
        let mut announcer = Announcer::new(
            now,
            service_id::of(&args.id),
            incarnation,
            args.interval,
            key,
            clock::seed(),
        );
        announcer.set_status(status);
        // One service, whose command may end within its first interval:
        // seen at once, not at a random phase.
        announcer.announce_at_once(now);
        let ended = async {
            let Some(child) = child.as_mut() else {
                return future::pending().await;
            };
            Some(exit_of(child.status().await))
        };
        let announcing = async {
            // Returns only once stopped, which is not before the stop below.
            send_until_stopped(&mut announcer, &socket, collector, args.json).await;
            future::pending().await
        };
        let command_exit = future::or(
            ended,
            future::or(announcing, async {
                // Ctrl-C or TERM: stop announcing; a command still running is
                // ended below.
                let _ = stop.recv().await;
                None
            }),
        )
        .await;
        // How the service ended: the command's own exit, or (stopped by a
        // signal to us) the end we gave it; without a command, our own
        // decision to stop (§12.2: status 0).
        let (code, last) = match (command_exit, child.as_mut()) {
            (Some(exit), _) => (exit.status, exit),
            (None, Some(child)) => (exit::OK, exit_of(end(child, args.kill_after).await)),
            (None, None) => (exit::OK, ExitStatus::exited(0)),
        };
        announcer.stop(clock::now(), last);
        send_until_stopped(&mut announcer, &socket, collector, args.json).await;
        if !args.command.is_empty() {
            eprintln!("pulse announce: {} {last}; announced it stopped", args.command[0]);
        }
        outlive_the_incarnation(announcer.incarnation()).await;
        code
    })
}

/// Waits, if need be, until the wall clock has passed the second that is
/// this run's incarnation (§12.3): the next run (`while true; do pulse
/// announce … -- job; done`, systemd's `Restart=always`) then starts in a
/// later second, so its incarnation is greater and the monitor sees the
/// restart instead of refusing the new run as stale for its whole life.
/// Costs at most a second, and only to a run shorter than that.
async fn outlive_the_incarnation(incarnation: u32) {
    let next = UNIX_EPOCH + Duration::from_secs(u64::from(incarnation) + 1);
    if let Ok(wait) = next.duration_since(SystemTime::now()) {
        // A clock stepped back far is not ours to wait out.
        async_io::Timer::after(wait.min(Duration::from_secs(1))).await;
    }
}

/// Sends the announcer's announcements when they are due, each as a JSON
/// line too with `json`, until it has none left (after the last `stopped`
/// one); while the service runs, that is never.
async fn send_until_stopped(
    announcer: &mut Announcer,
    socket: &async_net::UdpSocket,
    collector: std::net::SocketAddr,
    json: bool,
) {
    while let Some(deadline) = announcer.poll_timeout() {
        async_io::Timer::at(clock::to_std(deadline)).await;
        while let Some(out) = announcer.poll_transmit(clock::now()) {
            if json {
                say!("{}", as_json(&out.announcement));
            }
            // A monitor that is not there yet, or a full buffer, is not
            // ours to fix: the next announcement tries again.
            let _ = socket.send_to(&out.datagram, collector).await;
        }
    }
}

/// Ends the command the way a supervisor would: TERM, so it can finish
/// what it is doing, then KILL if it has not exited after `grace`.
async fn end(child: &mut smol::process::Child, grace: Duration) -> std::io::Result<std::process::ExitStatus> {
    let term = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM));
    if matches!(term, Some(Ok(()))) {
        let exited = future::or(async { Some(child.status().await) }, async {
            async_io::Timer::after(grace).await;
            None
        })
        .await;
        if let Some(status) = exited {
            return status;
        }
    }
    let _ = child.kill();
    child.status().await
}

/// One announcement as a JSON line of `announce --json`.
fn as_json(a: &Announcement) -> serde_json::Value {
    let mut line = json!({"service": a.service, "incarnation": a.incarnation, "sequence": a.sequence,
                          "interval_ms": a.interval.as_millis() as u64});
    match a.report {
        Report::Running(status) => {
            line["event"] = "announce".into();
            line["state"] = status.state().to_string().into();
            line["weight"] = status.weight().into();
        }
        Report::Stopped(exit) => {
            line["event"] = "stopped".into();
            line["exit_status"] = exit.status.into();
            line["exit_signal"] = exit.signal.into();
        }
    }
    line
}

/// The key file's bytes, surrounding whitespace trimmed (a key written
/// with `echo` has a newline).
pub fn read_key(path: &Path) -> Result<AnnounceKey, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the key {}: {e}", path.display()))?;
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err(format!("the key file {} is empty", path.display()));
    }
    Ok(AnnounceKey::new(text))
}

/// A command's end as an announcement tells it.
fn exit_of(status: std::io::Result<std::process::ExitStatus>) -> ExitStatus {
    let Ok(status) = status else {
        return ExitStatus::exited(exit::DEAD);
    };
    if let Some(code) = status.code() {
        return ExitStatus::exited(code);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return ExitStatus::killed(u8::try_from(signal).unwrap_or(u8::MAX));
        }
    }
    ExitStatus::exited(exit::DEAD)
}
