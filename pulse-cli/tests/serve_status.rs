//! `pulse serve`'s status: from the file to HAProxy's agent line and to
//! pulse peers in-band.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{agent_line, eventually, run, scratch, signal, write, Pulse};

const CHANGE: Duration = Duration::from_secs(5);

#[test]
fn the_agent_line_follows_the_status_file() {
    let dir = scratch("agent");
    let status = dir.join("status");
    let mut serve = Pulse::start(&[
        "serve",
        "127.0.0.1:0",
        "--status-file",
        status.to_str().unwrap(),
        "--status-poll",
        "50ms",
        "--haproxy-agent",
        "127.0.0.1:0",
    ]);
    let agent = serve.wait_addr("listening (haproxy-agent) on");
    // No file yet: serving at full weight.
    assert_eq!(agent_line(agent), "up ready 100%\n");
    for (text, line) in [
        ("draining\n", "drain\n"),
        ("maintenance\n", "maint\n"),
        ("down disk full\n", "ready down #disk full\n"),
        ("serving 75%\n", "up ready 75%\n"),
    ] {
        write(&status, text);
        eventually(CHANGE, line, || (agent_line(agent) == line).then_some(()));
    }
    // A line that makes no sense changes nothing.
    write(&status, "asleep\n");
    serve.wait_for(CHANGE, "the refusal", |line| {
        line.contains("not understood").then_some(())
    });
    assert_eq!(agent_line(agent), "up ready 75%\n");
    // USR1 drains without the file.
    assert!(signal(serve.pid(), "USR1"));
    eventually(CHANGE, "drain by signal", || {
        (agent_line(agent) == "drain\n").then_some(())
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_peer_is_told_the_status_in_band() {
    let dir = scratch("inband");
    let status = dir.join("status");
    write(&status, "draining\n");
    let mut serve = Pulse::start(&[
        "serve",
        "127.0.0.1:0",
        "--status-file",
        status.to_str().unwrap(),
        "--status-poll",
        "50ms",
    ]);
    let addr = serve.wait_addr("listening (tcp) on").to_string();
    let mut ping = Pulse::start(&["ping", "--json", "--interval", "200ms", &addr]);
    ping.wait_json(CHANGE, "the draining status", |v| {
        v["event"] == "status" && v["state"] == "draining" && v["weight"] == 0
    });
    write(&status, "serving 40%\n");
    ping.wait_json(CHANGE, "the new status", |v| {
        v["event"] == "status" && v["state"] == "serving" && v["weight"] == 40
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn hup_rereads_the_file_and_usr2_serves_again() {
    let dir = scratch("hup");
    let status = dir.join("status");
    // Polled once an hour: only HUP makes the file be read in this test.
    let mut serve = Pulse::start(&[
        "serve",
        "127.0.0.1:0",
        "--tcp-only",
        "--status-file",
        status.to_str().unwrap(),
        "--status-poll",
        "1h",
        "--haproxy-agent",
        "127.0.0.1:0",
    ]);
    let agent = serve.wait_addr("listening (haproxy-agent) on");
    assert_eq!(agent_line(agent), "up ready 100%\n");
    write(&status, "maintenance\n");
    assert!(signal(serve.pid(), "HUP"));
    serve.wait_for(CHANGE, "the file re-read on HUP", |line| {
        line.contains("maintenance").then_some(())
    });
    assert_eq!(agent_line(agent), "maint\n");
    assert!(signal(serve.pid(), "USR2"));
    serve.wait_for(CHANGE, "serving again on USR2", |line| {
        line.contains("(signal USR2)").then_some(())
    });
    assert_eq!(agent_line(agent), "up ready 100%\n");
    let _ = std::fs::remove_dir_all(dir);
}

/// A status file that is a FIFO (or on a hung file system) must not stop
/// the heartbeats: reading it holds up only the status, which stays as it
/// was until the file answers.
#[test]
fn a_status_file_that_blocks_does_not_stop_the_heartbeats() {
    let dir = scratch("fifo");
    let status = dir.join("status");
    write(&status, "serving\n");
    let mut serve = Pulse::start(&[
        "serve",
        "127.0.0.1:0",
        "--tcp-only",
        "--status-file",
        status.to_str().unwrap(),
        "--status-poll",
        "50ms",
        "--status-timeout",
        "200ms",
    ]);
    let addr = serve.wait_addr("listening (tcp) on").to_string();
    std::fs::remove_file(&status).unwrap();
    assert!(Command::new("mkfifo").arg(&status).status().unwrap().success());
    serve.wait_for(CHANGE, "a read given up", |line| {
        line.contains("no answer from the file system").then_some(())
    });
    let probe = ["ping", "--count", "1", "--interval", "100ms", "--timeout", "3s", &addr];
    let (code, out) = run(&probe, CHANGE);
    assert_eq!(code, 0, "{out}");
    // The read given up ends when the FIFO gets a writer, and what it
    // read is the status.
    let fifo = status.clone();
    let writer = std::thread::spawn(move || std::fs::write(fifo, "draining\n"));
    serve.wait_for(CHANGE, "the status from the FIFO", |line| {
        line.starts_with("status: draining").then_some(())
    });
    writer.join().unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// `serve --json` gives scripts the state and the weight as fields of
/// their own, not only as the text an operator reads.
#[test]
fn serve_json_status_events_carry_state_and_weight_apart() {
    let dir = scratch("json-status");
    let status = dir.join("status");
    write(&status, "serving 75%\n");
    let mut serve = Pulse::start(&[
        "serve",
        "127.0.0.1:0",
        "--json",
        "--tcp-only",
        "--status-file",
        status.to_str().unwrap(),
        "--status-poll",
        "50ms",
    ]);
    serve.wait_json(CHANGE, "listening", |v| v["event"] == "listening");
    write(&status, "draining 10%\n");
    let event = serve.wait_json(CHANGE, "the status event", |v| v["event"] == "status");
    assert_eq!(
        (&event["state"], &event["weight"]),
        (&"draining".into(), &10.into()),
        "{event}"
    );
    write(&status, "down disk full\n");
    let event = serve.wait_json(CHANGE, "the down event", |v| v["event"] == "status");
    assert_eq!(
        (&event["state"], &event["weight"], &event["reason"]),
        (&"down".into(), &0.into(), &"disk full".into()),
        "{event}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
