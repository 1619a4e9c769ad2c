//! pulse-smol against a peer in another process: freezing it with SIGSTOP
//! (its kernel still ACKs TCP, so TCP keepalive would never notice) and
//! holding many connections for a while.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use pulse_proto::{Backoff, CloseCode, Config};
use pulse_smol::{ClientEvent, Incoming, ReconnectingClient};
use pulse_tests::peer::Peer;

const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");

fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(1));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(limit).await;
        None
    }))
    .expect("test timed out")
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
            if let ClientEvent::Connected(n) = client.recv().await {
                break assert_eq!(n.dead_timeout(), Duration::from_secs(3));
            }
        }
        // Let a few heartbeats pass, then freeze the server process.
        let mut rtts = 0;
        while rtts < 2 {
            if let ClientEvent::Rtt(_) = client.recv().await {
                rtts += 1;
            }
        }
        server.freeze();
        let frozen_at = Instant::now();
        let lost_after = loop {
            if let ClientEvent::Lost {
                closed: Some(closed), ..
            } = client.recv().await
            {
                assert_eq!(closed.code, CloseCode::TIMED_OUT, "{closed:?}");
                break frozen_at.elapsed();
            }
        };
        // Dead within the timeout plus one second of the freeze (the last
        // frame came at or before it).
        assert!(
            lost_after <= Duration::from_secs(4),
            "verdict {lost_after:?} after the freeze"
        );
        // While frozen, attempts fail (the handshake cannot complete).
        loop {
            if let ClientEvent::Lost { .. } = client.recv().await {
                break;
            }
        }
        server.thaw();
        let thawed_at = Instant::now();
        loop {
            match client.recv().await {
                ClientEvent::Connected(_) => break,
                ClientEvent::GaveUp { .. } => panic!("gave up"),
                _ => {}
            }
        }
        let back_after = thawed_at.elapsed();
        // One backoff step at most, plus the handshake of an attempt that
        // may already be waiting on the thawed server.
        assert!(
            back_after <= max_backoff + Duration::from_secs(1),
            "reconnected {back_after:?} after the thaw"
        );
        println!("verdict {lost_after:?} after SIGSTOP (timeout 3 s); reconnected {back_after:?} after SIGCONT");
        client.close().await;
    });
}

#[test]
fn a_thousand_connections_at_a_one_second_interval_see_no_false_verdict_in_thirty_seconds() {
    // 1,000 sockets and the rest come close to the common default of 1,024.
    pulse_tests::fd_limit::require_open_files(2000);
    let mut server = Peer::start(PEER, &["smol-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    let (verdicts, round_trips) = within(Duration::from_secs(120), async {
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
                    let deadline = async_io::Timer::after(Duration::from_secs(30));
                    let watch = async {
                        let (mut verdicts, mut rtts) = (0u64, 0u64);
                        loop {
                            match conn.recv().await {
                                Incoming::PeerDead { .. } | Incoming::Closed(_) => {
                                    verdicts += 1;
                                    break (verdicts, rtts);
                                }
                                Incoming::Rtt(_) => rtts += 1,
                                _ => {}
                            }
                        }
                    };
                    let outcome = future::or(watch, async {
                        deadline.await;
                        (0, conn.stats().pings_sent as u64)
                    })
                    .await;
                    conn.close(CloseCode::NORMAL, "done").await.unwrap();
                    outcome
                })
            })
            .collect();
        let mut totals = (0, 0);
        for w in watchers {
            let (v, r) = w.await;
            totals = (totals.0 + v, totals.1 + r);
        }
        totals
    });
    let stats = server.ask("stats");
    assert_eq!(verdicts, 0, "false verdicts on the client side");
    assert!(stats.contains("verdicts 0 "), "server: {stats}");
    // About 30 round trips per connection: the heartbeats really ran.
    assert!(round_trips >= 1000 * 25, "only {round_trips} PINGs");
}
