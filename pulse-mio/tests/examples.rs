//! The examples, run as a user would. `server`: an HTTP probe at it (a
//! connection that never opens) must not break its bookkeeping, a pulse
//! client is served, and a line on stdin shuts it down gracefully.
//! `monitor`: the load balancer sends clients only to the backend that
//! passes its health checks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{CloseCode, Closed, Config};

/// The example's binary, beside this test's, built afresh (a binary left
/// from an earlier build would test old code): `cargo test` builds the
/// examples, but not when asked for one test target, nor those that need a
/// feature it was not given. It is built for this test's target: a cross
/// build's profile directory is in one named for the target, inside the
/// target directory (whose root holds `CACHEDIR.TAG`).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().unwrap().parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "pulse-mio", "--features", "monitor", "--example", name]);
    let above = profile.parent().unwrap();
    if above.parent().is_some_and(|root| root.join("CACHEDIR.TAG").exists()) {
        build.arg("--target").arg(above.file_name().unwrap());
    }
    let status = build.status().expect("run cargo");
    assert!(status.success(), "cannot build the {name} example");
    profile.join("examples").join(name)
}

#[derive(Default)]
struct Seen {
    opened: usize,
    echoes: usize,
    closed: Vec<Closed>,
}

struct Client(Arc<Mutex<Seen>>);

impl Handler for Client {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId) {
        self.0.lock().unwrap().opened += 1;
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {
        self.0.lock().unwrap().echoes += 1;
    }
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.0.lock().unwrap().closed.push(closed.clone());
    }
}

#[test]
fn the_server_example_survives_an_http_probe_serves_pulse_and_shuts_down_on_a_line() {
    let mut server = Command::new(example("server"))
        .arg("127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server example");
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("pulse-mio echo server on ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the server said {line:?}"));
    // Lines it prints later are read (and dropped) so it never blocks.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));

    // An HTTP health check: never a pulse connection, closed by the server.
    let mut probe = TcpStream::connect(addr).unwrap();
    probe.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    probe.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let _ = probe.read_to_end(&mut Vec::new());

    // A pulse client after it is served.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    let mut client = EventLoop::new(LoopConfig::new(config), Client(seen.clone())).unwrap();
    let conn = client.connect(addr, ()).unwrap();
    let started = Instant::now();
    let turn_until = |client: &mut EventLoop<Client>, done: &dyn Fn(&Seen) -> bool| {
        while !done(&seen.lock().unwrap()) {
            assert!(started.elapsed() < Duration::from_secs(30), "waited too long");
            client.turn(Some(Duration::from_millis(50))).unwrap();
        }
    };
    turn_until(&mut client, &|s| s.opened == 1 || !s.closed.is_empty());
    assert_eq!(seen.lock().unwrap().opened, 1, "not served after the probe");
    client.with_ctx(|ctx| ctx.send(conn, 1, &b"hi"[..])).unwrap();
    turn_until(&mut client, &|s| s.echoes == 1);

    // A line on stdin: a graceful shutdown, the client told "going away".
    writeln!(server.stdin.as_mut().unwrap()).unwrap();
    turn_until(&mut client, &|s| !s.closed.is_empty());
    assert_eq!(seen.lock().unwrap().closed[0].code, CloseCode::GOING_AWAY);
    let status = server.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn the_monitor_example_sends_clients_only_to_the_backend_that_passes_its_checks() {
    // A healthy backend answers its health checks; the other one accepts
    // connections (its kernel does) and never answers.
    let healthy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let healthy_addr = healthy.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in healthy.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = stream.read(&mut [0u8; 1024]);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    // Held for the whole test: a port freed here could be the balancer's
    // own, which would answer its checks.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = hung.local_addr().unwrap();
    let mut balancer = Command::new(example("monitor"))
        .args(["127.0.0.1:0", &dead_addr.to_string(), &healthy_addr.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the monitor example");
    let mut stdout = BufReader::new(balancer.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("balancing on ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("the balancer said {line:?}"));
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let ask = || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    // 503 until the healthy backend has passed its first check.
    let started = Instant::now();
    while !ask().starts_with("HTTP/1.1 307") {
        assert!(started.elapsed() < Duration::from_secs(20), "no backend ever healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Then every client goes to it, and none to the hung one.
    for _ in 0..20 {
        let answer = ask();
        assert!(
            answer.contains(&format!("Location: http://{healthy_addr}/")),
            "{answer:?}"
        );
    }
    let _ = balancer.kill();
    let _ = balancer.wait();
    drop(hung);
}
