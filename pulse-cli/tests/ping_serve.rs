//! `pulse ping` against `pulse serve`, as an exec probe would run it.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{run, scratch, signal, write, Pulse};

const PROBE: Duration = Duration::from_secs(10);

#[test]
fn ping_says_alive_then_dead_once_the_server_is_frozen() {
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0"]);
    let addr = serve.wait_addr("listening (tcp) on").to_string();

    let (code, out) = run(&["ping", "--count", "1", "--timeout", "2s", &addr], PROBE);
    assert_eq!(code, 0, "a live server: {out}");
    assert!(out.contains("seq=1 rtt="), "{out}");
    let (code, out) = run(&["ping", "--udp", "--count", "1", "--timeout", "2s", &addr], PROBE);
    assert_eq!(code, 0, "a live server over UDP: {out}");

    // Frozen, the kernel still accepts the TCP connection: only the
    // missing heartbeats tell.
    assert!(signal(serve.pid(), "STOP"));
    let (code, out) = run(&["ping", "--count", "1", "--timeout", "2s", &addr], PROBE);
    assert_eq!(code, 1, "a frozen server: {out}");
    assert!(out.contains("no answer in time"), "{out}");

    assert!(signal(serve.pid(), "CONT"));
    let (code, out) = run(&["ping", "--count", "1", "--timeout", "2s", &addr], PROBE);
    assert_eq!(code, 0, "the server thawed: {out}");
}

#[test]
fn a_peer_frozen_mid_ping_is_suspected_then_dead() {
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tcp-only"]);
    let addr = serve.wait_addr("listening (tcp) on").to_string();
    let mut ping = Pulse::start(&["ping", "--json", "--interval", "200ms", &addr]);
    ping.wait_json(Duration::from_secs(5), "an RTT", |v| v["event"] == "rtt");
    assert!(signal(serve.pid(), "STOP"));
    ping.wait_json(Duration::from_secs(5), "suspicion", |v| v["event"] == "suspect");
    ping.wait_json(Duration::from_secs(5), "the dead verdict", |v| v["event"] == "dead");
    let summary = ping.wait_json(Duration::from_secs(5), "the summary", |v| v["event"] == "summary");
    assert_eq!(summary["alive"], false, "{summary}");
    assert!(summary["answered"].as_u64().unwrap() >= 1);
    assert_eq!(ping.wait_exit(Duration::from_secs(5)).code(), Some(1));
}

#[test]
fn nothing_listening_is_dead_and_bad_arguments_are_usage_errors() {
    // A port just closed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, out) = run(&["ping", "--count", "1", "--timeout", "2s", &port.to_string()], PROBE);
    assert_eq!(code, 1, "{out}");
    let (code, _) = run(&["ping", "--interval", "soon", "127.0.0.1:1"], PROBE);
    assert_eq!(code, 2);
    let (code, _) = run(&["ping"], PROBE);
    assert_eq!(code, 2);
    let (code, out) = run(&["ping", "--help"], PROBE);
    assert_eq!(code, 0);
    assert!(out.contains("Examples:"), "{out}");
}

#[test]
fn every_subcommand_has_help_with_an_example() {
    for command in [
        &["--help"][..],
        &["ping", "--help"],
        &["serve", "--help"],
        &["announce", "--help"],
        &["watch", "--help"],
    ] {
        let (code, out) = run(command, PROBE);
        assert_eq!(code, 0, "{command:?}");
        assert!(out.contains("Examples:\n  pulse "), "{command:?}: {out}");
    }
}

#[test]
fn ctrl_c_ends_a_ping_with_its_summary_and_exit_0() {
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tcp-only"]);
    let addr = serve.wait_addr("listening (tcp) on").to_string();
    let mut ping = Pulse::start(&["ping", "--interval", "100ms", &addr]);
    ping.wait_for(PROBE, "a second heartbeat", |l| l.contains("seq=2 rtt=").then_some(()));
    // What Ctrl-C sends.
    assert!(signal(ping.pid(), "INT"));
    ping.wait_for(PROBE, "the summary", |l| {
        l.contains("pulse statistics ---").then_some(())
    });
    let counts = ping.wait_for(PROBE, "the counts", |l| {
        l.contains("heartbeats sent").then(|| l.to_string())
    });
    let answered: u64 = counts
        .split(", ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" answered"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no answered count: {counts}"));
    assert!(answered >= 2, "{counts}");
    ping.wait_for(PROBE, "the RTT line", |l| {
        l.starts_with("rtt min/avg/max/mdev = ").then_some(())
    });
    assert_eq!(ping.wait_exit(PROBE).code(), Some(0), "{:?}", ping.seen);
}

/// A server whose log reader went away (a pipe closed, a log shipper
/// restarted) keeps serving heartbeats: its status lines are only a log.
#[test]
fn serve_keeps_answering_after_its_stdout_is_closed() {
    let mut serve = Command::new(common::PULSE)
        .args(["serve", "127.0.0.1:0", "--tcp-only"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = serve.stdout.take().unwrap();
    let mut first = Vec::new();
    let mut byte = [0u8];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let line = String::from_utf8(first).unwrap();
    let addr = line.trim_start_matches("listening (tcp) on ").to_string();
    drop(out);
    // Each probe makes the server print (connected, closed) into the
    // closed pipe; every one after the first finds whether it survived.
    let mut codes = Vec::new();
    for _ in 0..3 {
        let probe = ["ping", "--count", "1", "--interval", "100ms", "--timeout", "3s", &addr];
        codes.push(run(&probe, PROBE).0);
    }
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(codes, [0, 0, 0]);
}

/// `pulse ping HOST | head -2`: once the reader has gone, ping ends as
/// `head` expects of the command before it, with exit 0 and no panic.
#[test]
fn ping_ends_quietly_when_its_reader_goes_away() {
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tcp-only"]);
    let addr = serve.wait_addr("listening (tcp) on").to_string();
    let mut ping = Command::new(common::PULSE)
        .args(["ping", "--interval", "100ms", &addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = ping.stdout.take().unwrap();
    let mut byte = [0u8];
    while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {}
    drop(out);
    let deadline = std::time::Instant::now() + PROBE;
    let status = loop {
        if let Some(status) = ping.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = ping.kill();
            panic!("ping still runs {PROBE:?} after its reader went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    let _ = ping.stderr.take().unwrap().read_to_string(&mut stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Settings that cannot work are usage errors, exit 2: never a panic
/// (101) on an overflow, never "dead" (1) after trying to connect.
#[test]
fn impossible_durations_and_addresses_are_usage_errors() {
    for args in [
        &["ping", "--interval", "10000000000000000000s", "127.0.0.1:1"][..],
        &["ping", "--timeout", "10000000000000000000s", "127.0.0.1:1"],
        &["ping", "--interval", "1ms", "127.0.0.1:1"],
        &["ping", "--count", "1", "127.0.0.1"],
        &[
            "announce",
            "127.0.0.1:1",
            "--id",
            "x",
            "--interval",
            "10000000000000000000s",
        ],
    ] {
        let (code, out) = run(args, PROBE);
        assert_eq!(code, 2, "{args:?}: {out}");
    }
    let dir = scratch("peer-interval");
    let targets = dir.join("t.toml");
    write(&targets, "peer_interval = \"10000000000000000000s\"\n");
    let (code, out) = run(&["watch", targets.to_str().unwrap()], PROBE);
    assert_eq!(code, 2, "{out}");
}
