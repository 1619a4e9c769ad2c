//! The console's limits: open event streams (browser tabs, clients that
//! never read) are capped below the connection limit, so Prometheus and
//! the liveness probe always find room.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{scratch, signal, write, Pulse};

const LIMIT: Duration = Duration::from_secs(10);

/// The status code of the response that starts on `stream`, or None when
/// the console closed it without one.
fn status_of(stream: &mut TcpStream) -> Option<u16> {
    stream.set_read_timeout(Some(LIMIT)).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while head.len() < 64 && !head.ends_with(b"\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).split_whitespace().nth(1)?.parse().ok()
}

/// The status code of one request, or None when the console refused it.
fn try_get(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    status_of(&mut stream)
}

/// Starts `pulse watch` with its console and extra `args`; the console's
/// address.
fn start_console(dir: &std::path::Path, args: &[&str]) -> (Pulse, SocketAddr) {
    let targets = dir.join("t.toml");
    write(&targets, "[[target]]\nname = \"x\"\ntcp = \"127.0.0.1:1\"\n");
    let mut argv = vec!["watch", "--json", "--http", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    argv.push(targets.to_str().unwrap());
    let mut watch = Pulse::start(&argv);
    let note = watch.wait_json(LIMIT, "the console", |v| {
        v["event"] == "note" && v["text"].as_str().unwrap().starts_with("console on")
    });
    let console = note["text"].as_str().unwrap()["console on http://".len()..]
        .trim_end_matches('/')
        .parse()
        .unwrap();
    (watch, console)
}

/// Opens `count` event streams on `console`, each with its request sent.
fn open_event_streams(console: SocketAddr, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut s = TcpStream::connect(console).unwrap();
            s.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect()
}

/// How many of `streams` were served (200) and refused (503); panics on
/// a stream closed without an answer.
fn answers(streams: &mut [TcpStream]) -> [usize; 2] {
    let mut answers = [0usize; 2];
    for s in streams {
        match status_of(s) {
            Some(200) => answers[0] += 1,
            Some(503) => answers[1] += 1,
            other => panic!("an event stream answered {other:?}"),
        }
    }
    answers
}

/// 300 open event streams (more than the 256 connections the console
/// serves) must not lock Prometheus and the liveness probe out.
#[test]
fn many_open_event_streams_do_not_lock_out_metrics_and_healthz() {
    let dir = scratch("console-streams");
    let (_watch, console) = start_console(&dir, &[]);
    let mut streams = open_event_streams(console, 300);
    // Every stream has its answer: these are established streams (or
    // refused ones), not requests still waiting to be read.
    let answers = answers(&mut streams);
    assert_eq!(answers, [64, 236], "streams served (the default limit) and refused");
    let healthz = try_get(console, "/healthz");
    let metrics = try_get(console, "/metrics");
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!((healthz, metrics), (Some(200), Some(200)));
}

/// A burst of connections that arrives while the console is stalled (here
/// frozen) is accepted in one go when it resumes: more than the console
/// serves at once. Those beyond the limit wait in the listen queue for a
/// place; none is closed without an answer.
#[test]
fn a_burst_beyond_the_connection_limit_waits_for_room_rather_than_being_closed() {
    let dir = scratch("console-burst");
    let (watch, console) = start_console(
        &dir,
        &["--http-max-connections", "40", "--http-max-event-streams", "10"],
    );
    // 60 fit the listen queue (128) of a frozen process.
    assert!(signal(watch.pid(), "STOP"));
    let mut streams = open_event_streams(console, 60);
    assert!(signal(watch.pid(), "CONT"));
    let answers = answers(&mut streams);
    let healthz = try_get(console, "/healthz");
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(answers, [10, 50], "streams served (the limit) and refused");
    assert_eq!(healthz, Some(200));
}
