//! pulse-smol against a peer in another process: freezing it with SIGSTOP
//! (its kernel still ACKs TCP, so TCP keepalive would never notice), over
//! TCP and behind TLS; running it out of descriptors; choking its UDP
//! socket; moving a service behind its name; and holding many connections
//! for a while.
//!
//! Timing bounds keep three times the expected value or more: these run
//! beside other tests on a busy machine.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use pulse_proto::{Backoff, CloseCode, Config};
use pulse_smol::{ClientEvent, Connection, Event, ReconnectingClient};
use pulse_tests::peer::{stat, Peer};

const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");

fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(2));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    }))
    .expect("test timed out")
}

/// Waits for the dead-peer verdict on `conn` after its peer was frozen at
/// `frozen_at`: returns the silence the core saw and the time since the
/// freeze.
async fn verdict(conn: &Connection, frozen_at: Instant) -> (Duration, Duration) {
    let mut silence = None;
    loop {
        match conn.recv().await {
            Event::PeerDead { silent_for } => silence = Some(silent_for),
            Event::Closed(closed) => {
                assert_eq!(closed.code, CloseCode::TIMED_OUT, "{closed:?}");
                return (silence.expect("PeerDead precedes Closed"), frozen_at.elapsed());
            }
            _ => {}
        }
    }
}

async fn round_trips(conn: &Connection, n: usize) {
    let mut seen = 0;
    while seen < n {
        match conn.recv().await {
            Event::Rtt(_) => seen += 1,
            Event::Closed(closed) => panic!("{closed:?}"),
            _ => {}
        }
    }
}

#[test]
fn a_frozen_peer_is_declared_dead_in_time_and_the_client_reconnects_after_it_thaws() {
    let server = Peer::start(PEER, &["smol-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    within(Duration::from_secs(60), async {
        let max_backoff = Duration::from_millis(500);
        let backoff = Backoff::new(Duration::from_millis(100), max_backoff).with_seed(9);
        let (client, supervisor) = ReconnectingClient::new(addr, config(1000, 3000), backoff);
        smol::spawn(supervisor).detach();
        loop {
            if let ClientEvent::Event(Event::Connected(n)) = client.recv().await {
                break assert_eq!(n.dead_timeout(), Duration::from_secs(3));
            }
        }
        // Let a few heartbeats pass, then freeze the server process.
        let mut rtts = 0;
        while rtts < 2 {
            if let ClientEvent::Event(Event::Rtt(_)) = client.recv().await {
                rtts += 1;
            }
        }
        server.freeze();
        let frozen_at = Instant::now();
        let (silence, lost_after) = loop {
            match client.recv().await {
                ClientEvent::Event(Event::PeerDead { silent_for }) => break (silent_for, frozen_at.elapsed()),
                ClientEvent::Event(Event::Closed(closed)) => panic!("closed before a verdict: {closed:?}"),
                _ => {}
            }
        };
        // Never before the timeout; and dead within the timeout after the
        // last frame, which came at or before the freeze (3× to spare).
        assert!(
            silence >= Duration::from_secs(3),
            "verdict after {silence:?} of silence"
        );
        assert!(
            lost_after <= Duration::from_secs(9),
            "verdict {lost_after:?} after the freeze"
        );
        // While frozen, attempts fail (the handshake cannot complete).
        loop {
            if let ClientEvent::Lost { error, .. } = client.recv().await {
                if !matches!(&*error, pulse_smol::Error::Closed(c) if c.code == CloseCode::TIMED_OUT) {
                    break;
                }
            }
        }
        server.thaw();
        let thawed_at = Instant::now();
        loop {
            match client.recv().await {
                ClientEvent::Event(Event::Connected(_)) => break,
                ClientEvent::GaveUp { .. } | ClientEvent::Failed { .. } => panic!("it ended"),
                _ => {}
            }
        }
        let back_after = thawed_at.elapsed();
        // One backoff step, plus the handshake of an attempt that may
        // already be waiting on the thawed server: about 1.5 s at most.
        assert!(
            back_after <= 3 * (max_backoff + Duration::from_secs(1)),
            "reconnected {back_after:?} after the thaw"
        );
        println!("verdict {lost_after:?} after SIGSTOP (timeout 3 s); reconnected {back_after:?} after SIGCONT");
        client.close().await;
    });
}

#[test]
fn a_peer_frozen_behind_tls_is_declared_dead_at_the_timeout() {
    let mut server = Peer::start(PEER, &["smol-tls-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    let cert = pulse_tests::tls::from_hex(&server.ask("cert"));
    within(Duration::from_secs(60), async {
        let tcp = smol::net::TcpStream::connect(addr).await.unwrap();
        let tls = pulse_tests::tls::connector(&cert)
            .connect(pulse_tests::tls::localhost(), tcp)
            .await
            .unwrap();
        let (conn, driver) = Connection::client(tls, config(1000, 3000)).await.unwrap();
        smol::spawn(driver).detach();
        conn.send(7, "through TLS").await.unwrap();
        loop {
            match conn.recv().await {
                Event::Message { tag: 7, payload } => break assert_eq!(&payload[..], b"through TLS"),
                Event::Closed(closed) => panic!("{closed:?}"),
                _ => {}
            }
        }
        round_trips(&conn, 2).await;
        server.freeze();
        let (silence, after) = verdict(&conn, Instant::now()).await;
        assert!(
            silence >= Duration::from_secs(3),
            "verdict after {silence:?} of silence"
        );
        assert!(after <= Duration::from_secs(9), "verdict {after:?} after the freeze");
        println!("behind TLS: verdict {after:?} after SIGSTOP (timeout 3 s)");
    });
    server.thaw();
}

#[test]
fn a_server_out_of_descriptors_serves_again_once_they_are_back() {
    // 64 descriptors: a few for the process itself, the rest for sockets.
    let mut server = Peer::start("prlimit", &["--nofile=64:64", PEER, "smol-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    // A flood of plain TCP connections, past the limit; what the server
    // accepts of it waits for a HELLO that never comes.
    let flood: Vec<std::net::TcpStream> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    assert!(flood.len() > 64, "the backlog took {} connections", flood.len());
    let started = Instant::now();
    while stat(&server.ask("stats"), "connections") < 40 && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The flood goes: its connections end, their descriptors come back.
    drop(flood);
    within(Duration::from_secs(60), async {
        for i in 0..5u16 {
            let (conn, driver) = pulse_smol::connect(addr, config(1000, 3000)).await.expect("connect");
            smol::spawn(driver).detach();
            conn.send(i, "served").await.unwrap();
            loop {
                match conn.recv().await {
                    Event::Message { tag, .. } => break assert_eq!(tag, i),
                    Event::Closed(closed) => panic!("{closed:?}"),
                    _ => {}
                }
            }
            conn.close(CloseCode::NORMAL, "").await.unwrap();
        }
    });
}

#[test]
fn a_thousand_udp_peers_behind_a_full_socket_leave_the_process_idle() {
    // A thousand client sockets and their listener in one process.
    pulse_tests::fd_limit::require_open_files(1100);
    // A network namespace of its own, so its loopback can be slowed to a
    // trickle (tbf, not netem) without touching anyone else's.
    let mut crowd = Peer::start(
        "unshare",
        &[
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec \"$0\" \"$@\"",
            PEER,
            "smol-udp-crowd",
            "1000",
            "5000",
            "60000",
        ],
    );
    let tc = Command::new("nsenter")
        .args(["--target", &crowd.pid().to_string(), "--net"])
        .args(["tc", "qdisc", "add", "dev", "lo", "root", "tbf"])
        .args(["rate", "8kbit", "burst", "1600", "limit", "100000000"])
        .status()
        .expect("run tc");
    assert!(tc.success(), "tc failed");
    // Every server connection sends more than the shared socket takes:
    // its send buffer fills, and stays full.
    assert_eq!(crowd.ask("fill"), "filling");
    std::thread::sleep(Duration::from_secs(1));
    let window = Duration::from_secs(3);
    let before: u64 = crowd.ask("cpu").parse().unwrap();
    std::thread::sleep(window);
    let used = Duration::from_micros(crowd.ask("cpu").parse::<u64>().unwrap() - before);
    let share = used.as_secs_f64() / window.as_secs_f64();
    println!(
        "CPU with the shared socket full: {used:?} in {window:?} ({:.1} %)",
        share * 100.0
    );
    // Idle is a few percent (heartbeats of 2,000 sessions every 5 s);
    // peers waking each other to wait on the socket spin a whole core.
    assert!(share < 0.25, "the process used {:.0} % of a core", share * 100.0);
}

#[test]
fn a_service_that_moves_behind_its_name_is_found_again() {
    // The client runs in a mount namespace of its own, where /etc/hosts is
    // a file this test writes: the name points at 127.0.0.2, then 127.0.0.3.
    let hosts = std::env::temp_dir().join(format!("pulse-hosts-{}", std::process::id()));
    std::fs::write(&hosts, "127.0.0.2 pulse-moving-service\n").unwrap();
    within(Duration::from_secs(60), async {
        // A port free on both addresses: another test's socket may hold the
        // one drawn for 127.0.0.2 on 127.0.0.3, so draw again then.
        let mut pair = None;
        for _ in 0..50 {
            let first = pulse_smol::Listener::bind("127.0.0.2:0", config(1000, 3000))
                .await
                .unwrap();
            let port = first.local_addr().unwrap().port();
            match pulse_smol::Listener::bind(SocketAddr::from(([127, 0, 0, 3], port)), config(1000, 3000)).await {
                Ok(second) => {
                    pair = Some((first, second, port));
                    break;
                }
                Err(e) => println!("port {port} is taken on 127.0.0.3 ({e}); another"),
            }
        }
        let (first, second, port) = pair.expect("a port free on 127.0.0.2 and 127.0.0.3");
        let script = format!("mount --bind {} /etc/hosts && exec \"$0\" \"$@\"", hosts.display());
        let target = format!("pulse-moving-service:{port}");
        let mut client = Peer::start(
            "unshare",
            &["--mount", "sh", "-c", &script, PEER, "smol-reconnect", &target],
        );
        let (conn, driver, _) = first.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        // The service moves: the name changes, the old server goes.
        std::fs::write(&hosts, "127.0.0.3 pulse-moving-service\n").unwrap();
        drop(first);
        conn.close(CloseCode::GOING_AWAY, "moving").await.unwrap();
        let (conn, driver, _) = second.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        let mut seen = String::new();
        for _ in 0..100 {
            seen = client.ask("server");
            if seen != "none" {
                break;
            }
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
        assert_eq!(seen, SocketAddr::from(([127, 0, 0, 3], port)).to_string());
    });
    let _ = std::fs::remove_file(&hosts);
}

#[test]
fn a_thousand_connections_at_a_one_second_interval_see_no_false_verdict() {
    // A thousand sockets here, a thousand in the server.
    pulse_tests::fd_limit::require_open_files(2000);
    let mut server = Peer::start(PEER, &["smol-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    let hold = Duration::from_secs(20);
    let (verdicts, pings) = within(Duration::from_secs(120), async {
        let mut connections = Vec::new();
        for _ in 0..1000 {
            let (conn, driver) = pulse_smol::connect(addr, config(1000, 3000)).await.expect("connect");
            smol::spawn(driver).detach();
            connections.push(conn);
        }
        let watchers: Vec<_> = connections
            .into_iter()
            .map(|conn| {
                smol::spawn(async move {
                    let watch = async {
                        loop {
                            match conn.recv().await {
                                Event::PeerDead { .. } | Event::Closed(_) => break 1,
                                _ => {}
                            }
                        }
                    };
                    let verdicts = future::or(watch, async {
                        async_io::Timer::after(hold).await;
                        0
                    })
                    .await;
                    let pings = conn.stats().pings_sent;
                    let _ = conn.close(CloseCode::NORMAL, "done").await;
                    (verdicts, pings)
                })
            })
            .collect();
        let mut totals = (0, 0);
        for w in watchers {
            let (v, p) = w.await;
            totals = (totals.0 + v, totals.1 + p);
        }
        totals
    });
    let stats = server.ask("stats");
    assert_eq!(verdicts, 0, "false verdicts on the client side");
    assert_eq!(stat(&stats, "verdicts"), 0, "server: {stats}");
    // About 20 PINGs per connection: the heartbeats really ran.
    assert!(pings >= 1000 * 20 / 3, "only {pings} PINGs");
}
