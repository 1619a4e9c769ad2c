//! Review of issue 14: hostile targets over real sockets, against
//! pulse-mio's Watcher. An HTTP target whose headers never end (a huge
//! response), one that trickles its status line a byte at a time
//! (slowloris), and a "pulse" target that answers HELLO with garbage:
//! each is a failed check of the right kind (bad response, timeout), goes
//! down within its bound, and the watcher keeps at most
//! `max_response_bytes` of any of them. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use pulse_driver::clock;
use pulse_mio::monitor::{WatchConfig, Watcher};
use pulse_monitor::{Check, CheckResult, Health, HttpCheck, Monitor, PulseCheck, TargetSpec, Transition};
use pulse_tests::monitor_bounds::{checks, config, down_when_failing_at_once, down_when_timing_out, within, PATIENCE};

/// How a hostile target answers each connection.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// A status line, then header bytes without end.
    EndlessHeaders,
    /// One byte of a status line every 50 ms.
    Slowloris,
    /// 64 bytes that are no pulse frame, then silence.
    Garbage,
}

/// A target in a thread of its own; counts the bytes it wrote.
struct Hostile {
    addr: SocketAddr,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn hostile(how: Misbehaviour) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (w, s) = (written.clone(), stop.clone());
    thread::spawn(move || {
        let started = Instant::now();
        while !s.load(Ordering::Relaxed) && started.elapsed() < PATIENCE * 2 {
            match listener.accept() {
                Ok((conn, _)) => {
                    let (w, s) = (w.clone(), s.clone());
                    thread::spawn(move || serve(conn, how, &w, &s));
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    Hostile { addr, written, stop }
}

fn serve(mut conn: TcpStream, how: Misbehaviour, written: &AtomicU64, stop: &AtomicBool) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut request = [0u8; 512];
    let _ = conn.read(&mut request);
    let mut send = |bytes: &[u8]| -> bool {
        let ok = conn.write_all(bytes).is_ok();
        if ok {
            written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        ok && !stop.load(Ordering::Relaxed)
    };
    match how {
        Misbehaviour::EndlessHeaders => {
            if !send(b"HTTP/1.1 200 OK\r\nX-Endless: ") {
                return;
            }
            // At most 64 MiB, until the watcher hangs up.
            let chunk = [b'a'; 16 * 1024];
            for _ in 0..4096 {
                if !send(&chunk) {
                    return;
                }
            }
        }
        Misbehaviour::Slowloris => {
            for &byte in b"HTTP/1.1 200 OK\r\n".iter().cycle().take(2000) {
                if !send(&[byte]) {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        Misbehaviour::Garbage => {
            if send(&[0xFF; 64]) {
                thread::sleep(Duration::from_secs(2));
            }
        }
    }
}

#[test]
fn hostile_targets_fail_their_checks_of_the_right_kind_and_cost_bounded_memory() {
    let config = config();
    let limit = config.max_response_bytes;
    let poll = Poll::new().unwrap();
    let monitor = Monitor::new(config.clone(), clock::now(), clock::seed()).unwrap();
    let mut watcher = Watcher::new(WatchConfig::default(), monitor, poll.registry(), 0..10_000).unwrap();
    let mut poll = poll;
    let mut events = Events::with_capacity(1024);

    let endless = hostile(Misbehaviour::EndlessHeaders);
    let slow = hostile(Misbehaviour::Slowloris);
    let garbage = hostile(Misbehaviour::Garbage);
    let pool = watcher.monitor_mut().add_pool();
    let http = watcher
        .monitor_mut()
        .add_check(Check::Http(HttpCheck::get("/health").unwrap()));
    let pulse = watcher.monitor_mut().add_check(Check::Pulse(PulseCheck::new()));
    let start = Instant::now();
    let ids = [
        watcher
            .add_target(TargetSpec::checked(pool, http), Some(endless.addr))
            .unwrap(),
        watcher
            .add_target(TargetSpec::checked(pool, http), Some(slow.addr))
            .unwrap(),
        watcher
            .add_target(TargetSpec::checked(pool, pulse), Some(garbage.addr))
            .unwrap(),
    ];
    let mut downs: [Option<Transition>; 3] = [None; 3];
    while downs.iter().any(Option::is_none) {
        assert!(start.elapsed() < PATIENCE, "not all down: {downs:?}");
        watcher
            .turn(&mut poll, &mut events, Some(Duration::from_millis(10)))
            .unwrap();
        while let Some(event) = watcher.poll_event() {
            if let pulse_monitor::Event::Transition(t) = event {
                if let Some(k) = ids.iter().position(|&id| id == t.target) {
                    if t.to == Health::Down && downs[k].is_none() {
                        downs[k] = Some(t);
                    }
                }
            }
        }
    }
    let [endless_down, slow_down, garbage_down] = downs.map(Option::unwrap);
    // Headers without end: cut at the limit, a bad response, at once.
    assert_eq!(checks(&endless_down), (config.fall, CheckResult::BadResponse));
    within(
        &endless_down,
        start,
        down_when_failing_at_once(&config) * 3,
        "endless headers",
    );
    // A byte every 50 ms never completes within the timeout.
    assert_eq!(checks(&slow_down), (config.fall, CheckResult::TimedOut));
    within(&slow_down, start, down_when_timing_out(&config) * 3, "slowloris");
    // Garbage for a WELCOME: a bad response, at once.
    assert_eq!(checks(&garbage_down), (config.fall, CheckResult::BadResponse));
    within(&garbage_down, start, down_when_failing_at_once(&config) * 3, "garbage");
    // The endless target wrote far more than the watcher kept: the rest
    // was never read (the probe hung up at the limit).
    let sent = endless.written.load(Ordering::Relaxed);
    eprintln!(
        "endless headers: {sent} bytes written by the target over {} probes; limit {limit} per probe",
        config.fall
    );
    assert!(watcher.stats().probes >= u64::from(config.fall) * 3);
    drop((slow, garbage));
}
