//! Review of pulse-tokio (issue 13): a UDP client whose socket reported
//! an error (an ICMP "port unreachable" while its server's port was
//! briefly closed) must go on reading at once. tokio returns such an error
//! without registering the task for the next datagram, so a driver that
//! stops reading there hears nothing more until its own timer fires: a
//! heartbeat interval later.
//!
//! The test leaves the client nothing else that could wake it in its
//! window (no timer, no traffic), so a client that stops reading at the
//! report fails it every time, not only when nothing happens to wake it.

mod tokio_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_proto::Config;
use pulse_tokio::{connect_udp, Event, UdpListener};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_common::bounded;

/// A UDP relay on a fixed port between one client and the server; it can
/// be taken down (its port closed: the client's datagrams then draw ICMP
/// "port unreachable") and brought back on the same port.
struct Relay {
    port: u16,
    server: SocketAddr,
    client: Arc<Mutex<Option<SocketAddr>>>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let mut relay = Relay {
            port: 0,
            server,
            client: Arc::new(Mutex::new(None)),
            task: None,
        };
        relay.up().await;
        relay
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn up(&mut self) {
        let socket = UdpSocket::bind(self.addr()).await.unwrap();
        self.port = socket.local_addr().unwrap().port();
        let (server, client) = (self.server, self.client.clone());
        self.task = Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let to = if from == server {
                    *client.lock().unwrap()
                } else {
                    *client.lock().unwrap() = Some(from);
                    Some(server)
                };
                if let Some(to) = to {
                    let _ = socket.send_to(&buf[..n], to).await;
                }
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Timings that leave nothing else to wake the client in the test's
/// window: its first PING is at least half an interval (30 s) after the
/// handshake, the server pings only after minutes of silence, and the
/// handshake's deadline is far. A client that stopped reading at the
/// error report then hears the message only at its PING, always after
/// [`HEARD_WITHIN`]; one that reads on hears it in well under a
/// millisecond. The PING comes no sooner than the whole test's bound
/// (`bounded`, 30 s), so however long a loaded machine makes the waits
/// before the message, it cannot wake a client that stopped reading in
/// time to pass (with a 10 s half-interval, one run in three did, its
/// waits having taken 20 s).
fn quiet_config() -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(60));
    Arc::new(config.with_timing(Duration::from_secs(60), Duration::from_secs(180)))
}

/// How long the message may take: over 3x a slow machine's scheduling
/// delay, far under the 30 s before the client's first PING.
const HEARD_WITHIN: Duration = Duration::from_secs(3);

/// The client's timer stays armed for its first HELLO's retransmission,
/// about 1 s after it connected (a timer that would fire late is never
/// moved, §11): it then wakes the client once, for nothing. Were that in
/// the window, it would read the message for a client that stopped
/// reading, and the test would pass by luck (up to half the runs did).
/// The scenario starts after it, with room for a slow machine.
const STALE_TIMER_PASSED: Duration = Duration::from_secs(2);

/// ICMP "destination unreachable" messages this machine's network stack
/// has received (Linux: `IcmpMsg: InType3` in `/proc/net/snmp`).
fn unreachables_received() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").expect("/proc/net/snmp");
    let mut rows = snmp.lines().filter(|line| line.starts_with("IcmpMsg:"));
    let (names, values) = (rows.next().unwrap_or(""), rows.next().unwrap_or(""));
    let column = names.split_whitespace().position(|name| name == "InType3");
    column
        .and_then(|i| values.split_whitespace().nth(i))
        .map_or(0, |value| value.parse().expect("a count"))
}

/// Waits, polling (neither counter has a waker) for at most 10 s, until
/// `done`.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_client_reads_on_at_once_after_an_icmp_error() {
    bounded(async {
        let listener = UdpListener::bind("127.0.0.1:0", quiet_config()).await.unwrap();
        let mut relay = Relay::start(listener.local_addr()).await;
        let (client, accepted) = tokio::join!(connect_udp(relay.addr(), quiet_config()), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        server.connected().await.unwrap();
        tokio::time::sleep(STALE_TIMER_PASSED).await;
        // The relay's port closes; the client's next datagram draws a
        // "port unreachable" (on loopback, before its send returns), which
        // its socket reports on the next read.
        relay.down().await;
        let (sent_before, reports_before) = (pulse_tokio::counters().bytes_out, unreachables_received());
        client.send(1, "into the void").await.unwrap();
        // The report must have reached the client's socket before the port
        // opens again: a datagram the kernel delivers late (its loopback
        // queue can lag on a busy machine) would reach the new relay,
        // draw no report, and let any client pass.
        until("the client's datagram", || {
            pulse_tokio::counters().bytes_out > sent_before
        })
        .await;
        until("the port unreachable report", || {
            unreachables_received() > reports_before
        })
        .await;
        relay.up().await;
        let sent = Instant::now();
        server.send(2, Bytes::from_static(b"are you there")).await.unwrap();
        let heard = tokio::time::timeout(HEARD_WITHIN, async {
            loop {
                match client.recv().await {
                    Event::Message { tag: 2, .. } => break,
                    Event::Closed(closed) => panic!("{closed}"),
                    _ => {}
                }
            }
        })
        .await;
        let took = sent.elapsed();
        println!("the message took {took:?}");
        // Whether the report was read before the message came or in the
        // same read, a client that stops at it hears nothing until its
        // PING, 30 s or more after the handshake.
        assert!(heard.is_ok(), "the client did not hear the server within {took:?}");
    })
    .await;
}
