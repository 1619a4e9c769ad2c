//! `pulse announce -- COMMAND` seen by `pulse watch`: up while the command
//! runs, and down the moment it exits, with its exit status — from the
//! last (`stopped`) announcement, not from the silence after it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{get, run, scratch, write, Pulse};

const VERDICT: Duration = Duration::from_secs(10);
/// Announcements this far apart: a down from silence comes at least this
/// long after the last one, well after a `stopped` announcement's.
const SLOW: &str = "5s";

/// A `pulse watch --json --http` listening for the service `job`: the
/// address it listens on, and its console's.
fn watch_job(name: &str) -> (Pulse, String, SocketAddr, std::path::PathBuf) {
    let dir = scratch(name);
    let targets = dir.join("targets.toml");
    write(
        &targets,
        "announce = \"127.0.0.1:0\"\n[[target]]\nname = \"nightly\"\nannounce = \"backup-job\"\n",
    );
    let mut watch = Pulse::start(&["watch", "--json", "--http", "127.0.0.1:0", targets.to_str().unwrap()]);
    let (mut collector, mut console) = (None, None);
    while collector.is_none() || console.is_none() {
        let note = watch.wait_json(VERDICT, "the addresses", |v| v["event"] == "note");
        let text = note["text"].as_str().unwrap().to_string();
        if let Some(addr) = text.strip_prefix("announcements on udp ") {
            collector = Some(addr.to_string());
        } else if let Some(addr) = text.strip_prefix("console on http://") {
            console = Some(addr.trim_end_matches('/').parse().unwrap());
        }
    }
    (watch, collector.unwrap(), console.unwrap(), dir)
}

fn announce(collector: &str, command: &[&str]) -> Pulse {
    let mut args = vec!["announce", collector, "--id", "backup-job", "--interval", SLOW, "--"];
    args.extend_from_slice(command);
    Pulse::start(&args)
}

fn is_down(v: &serde_json::Value) -> bool {
    v["event"] == "transition" && v["target"] == "nightly" && v["to"] == "down"
}

#[test]
fn announce_while_a_command_runs_is_seen_up_then_down_at_its_exit() {
    let (mut watch, collector, _, dir) = watch_job("announce");
    let mut announce = announce(&collector, &["sleep", "2"]);
    watch.wait_json(VERDICT, "nightly up", |v| {
        v["event"] == "transition" && v["target"] == "nightly" && v["to"] == "up"
    });
    // The command's exit ends the announcements (exit status passed on).
    assert_eq!(announce.wait_exit(VERDICT).code(), Some(0));
    let exited = Instant::now();
    // Silence alone could not make it down for 3 s more (the last
    // announcement was at the start, 5 s apart); the stopped one does at
    // once. 1 s is a third of that, and a hundred times what it takes.
    let down = watch.wait_json(Duration::from_secs(1), "nightly down at once", is_down);
    assert!(exited.elapsed() < Duration::from_secs(1));
    assert_eq!(down["reason"], "stopped", "{down}");
    assert_eq!(down["exit_status"], 0, "{down}");
    assert_eq!(down["why"], "stopped: exited with status 0", "{down}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_command_s_exit_status_reaches_the_monitor_and_is_pulse_s_own() {
    let (mut watch, collector, console, dir) = watch_job("exit3");
    let mut announce = announce(&collector, &["sh", "-c", "exit 3"]);
    assert_eq!(announce.wait_exit(VERDICT).code(), Some(3));
    let down = watch.wait_json(VERDICT, "nightly down", is_down);
    assert_eq!(down["reason"], "stopped", "{down}");
    assert_eq!(down["exit_status"], 3, "{down}");
    assert_eq!(down["exit_signal"], serde_json::Value::Null, "{down}");
    // Scripts and Prometheus read it too (the board is refreshed on the
    // transition, before the JSON line is printed).
    let (_, json) = get(console, "/status.json");
    let board: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(board["targets"][0]["stopped"], "exited with status 3", "{json}");
    assert_eq!(board["targets"][0]["exit_status"], 3, "{json}");
    let (_, metrics) = get(console, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("pulse_target_exit_status{target=\"nightly\"") && l.ends_with("} 3")),
        "{metrics}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_command_killed_by_a_signal_is_told_as_such() {
    let (mut watch, collector, _, dir) = watch_job("killed");
    let mut announce = announce(&collector, &["sh", "-c", "kill -9 $$"]);
    assert_eq!(announce.wait_exit(VERDICT).code(), Some(137));
    let down = watch.wait_json(VERDICT, "nightly down", is_down);
    assert_eq!(down["exit_status"], 137, "{down}");
    assert_eq!(down["exit_signal"], 9, "{down}");
    assert_eq!(down["why"], "stopped: killed by signal 9 (status 137)", "{down}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn term_to_pulse_ends_the_command_and_announces_that_it_stopped() {
    let (mut watch, collector, _, dir) = watch_job("term");
    let mut announce = announce(&collector, &["sleep", "60"]);
    watch.wait_json(VERDICT, "nightly up", |v| {
        v["event"] == "transition" && v["target"] == "nightly" && v["to"] == "up"
    });
    // What a supervisor sends to stop it.
    assert!(common::signal(announce.pid(), "TERM"));
    assert!(announce.wait_exit(VERDICT).code().is_some(), "pulse exits by itself");
    // Told by the last announcement (a silence would say `suspicion`),
    // and ended by a signal, not by itself.
    let down = watch.wait_json(VERDICT, "nightly down", is_down);
    assert_eq!(down["reason"], "stopped", "{down}");
    assert!(down["exit_signal"].as_u64().is_some_and(|s| s > 0), "{down}");
    let _ = std::fs::remove_dir_all(dir);
}

/// `while true; do pulse announce … -- job; done`: a run started the
/// moment the last one ended (within the second it started in) is a new
/// incarnation too, seen up, not refused as stale.
#[test]
fn a_restart_within_the_same_second_is_seen_up() {
    let dir = scratch("restart");
    let targets = dir.join("t.toml");
    write(
        &targets,
        "announce = \"127.0.0.1:0\"\n[[target]]\nname = \"job\"\nannounce = \"job\"\n",
    );
    let mut watch = Pulse::start(&["watch", "--json", targets.to_str().unwrap()]);
    let note = watch.wait_json(VERDICT, "the collector", |v| {
        v["event"] == "note" && v["text"].as_str().unwrap().starts_with("announcements on udp ")
    });
    let collector = note["text"].as_str().unwrap()["announcements on udp ".len()..].to_string();
    let args = |cmd: &'static str| {
        vec![
            "announce",
            collector.as_str(),
            "--id",
            "job",
            "--interval",
            "100ms",
            "--",
            "sh",
            "-c",
            cmd,
        ]
    };
    let (code, _) = run(&args("exit 0"), VERDICT);
    assert_eq!(code, 0);
    watch.wait_json(VERDICT, "job stopped", |v| {
        v["event"] == "transition" && v["reason"] == "stopped"
    });
    let mut again = Pulse::start(&args("exec sleep 5"));
    watch.wait_json(Duration::from_secs(3), "job up again", |v| {
        v["event"] == "transition" && v["to"] == "up"
    });
    // TERM, passed on to the command: nothing outlives the test.
    assert!(common::signal(again.pid(), "TERM"));
    again.wait_exit(VERDICT);
    let _ = std::fs::remove_dir_all(dir);
}

/// `announce --json`: a line per announcement sent, then the `stopped`
/// ones with the command's exit status, all of one incarnation and in
/// sequence.
#[test]
fn announce_json_prints_each_announcement_and_the_stop() {
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = collector.local_addr().unwrap().to_string();
    let args = [
        "announce",
        &addr,
        "--id",
        "job",
        "--interval",
        "100ms",
        "--json",
        "--",
        "sh",
        "-c",
        "sleep 0.3; exit 3",
    ];
    let (code, out) = run(&args, VERDICT);
    assert_eq!(code, 3, "{out}");
    let lines: Vec<serde_json::Value> = out.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let events: Vec<&str> = lines.iter().map(|v| v["event"].as_str().unwrap()).collect();
    let announced = events.iter().take_while(|e| **e == "announce").count();
    assert!(announced >= 1, "{out}");
    assert_eq!(&events[announced..], ["stopped"; 3], "{out}");
    assert_eq!(lines[0]["state"], "serving", "{out}");
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line["incarnation"], lines[0]["incarnation"], "{out}");
        assert_eq!(line["sequence"], n as u64 + 1, "{out}");
    }
    assert_eq!(lines.last().unwrap()["exit_status"], 3, "{out}");
}

/// `announce --json -- sh -c SCRIPT` to a collector nobody reads, its
/// pid, once the script has said `ready` (its traps are set).
fn announce_ready(collector: &std::net::UdpSocket, extra: &[&str], script: &str) -> Pulse {
    let addr = collector.local_addr().unwrap().to_string();
    let mut args = vec!["announce", &addr, "--id", "job", "--interval", "100ms", "--json"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    let mut announce = Pulse::start(&args);
    announce.wait_for(VERDICT, "the command ready", |l| (l == "ready").then_some(()));
    announce
}

/// Ctrl-C or TERM to `announce` is passed on as TERM: the command can
/// finish its work and exit by itself, and that exit is what is announced.
#[test]
fn term_to_announce_lets_the_command_exit_by_itself() {
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let script = "trap 'kill $!; exit 7' TERM; echo ready; sleep 5 >/dev/null 2>&1 & wait";
    let mut announce = announce_ready(&collector, &[], script);
    assert!(common::signal(announce.pid(), "TERM"));
    let stopped = announce.wait_json(VERDICT, "the stop", |v| v["event"] == "stopped");
    assert_eq!(
        (&stopped["exit_status"], &stopped["exit_signal"]),
        (&7.into(), &0.into()),
        "{stopped}"
    );
}

/// A command that ignores TERM is killed once --kill-after has passed.
#[test]
fn a_command_that_ignores_term_is_killed_after_the_grace() {
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let script = "trap '' TERM; echo ready; exec sleep 30";
    let mut announce = announce_ready(&collector, &["--kill-after", "300ms"], script);
    assert!(common::signal(announce.pid(), "TERM"));
    let stopped = announce.wait_json(VERDICT, "the stop", |v| v["event"] == "stopped");
    assert_eq!(stopped["exit_signal"], 9, "{stopped}");
}
