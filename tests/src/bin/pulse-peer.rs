//! One side of a pulse connection in its own process, for tests and
//! measurement harnesses. Commands arrive as lines on stdin; it exits when
//! stdin closes.
//!
//! Modes:
//! - `smol-echo-server <interval_ms> <dead_ms>`: prints `listening <addr>`,
//!   then echoes every message.
//! - `smol-tls-echo-server <interval_ms> <dead_ms>`: the same over TLS,
//!   with a certificate for `localhost` made at start; `cert` answers it
//!   in hex.
//! - `tokio-echo-server <interval_ms> <dead_ms>` and
//!   `tokio-tls-echo-server <interval_ms> <dead_ms>`: the same with
//!   pulse-tokio, on tokio's default multi-threaded runtime (as the tokio
//!   reference runs).
//! - `tokio-heartbeat-server <interval_ms> <dead_ms>`: pulse-tokio holding
//!   connections for their heartbeats alone, as the tokio reference does:
//!   no task of the application's per connection; `stats` from
//!   `pulse_tokio::counters()`.
//! - `smol-hold <addr> <count> <interval_ms> <dead_ms>`: opens `count`
//!   connections, prints `ready` once all are up, then holds them idle.
//! - `smol-udp-crowd <count> <interval_ms> <dead_ms>`: a UDP listener and
//!   `count` clients of it in this process, `ready` once all are up;
//!   `fill` has every server connection send 16 KiB at once, more than the
//!   shared socket takes when its traffic is held back.
//! - `smol-reconnect <host:port>`: a reconnecting client of that name,
//!   `ready` at once; `server` answers the address it is connected to, or
//!   `none`.
//!
//! - `floor-echo`, `floor-hold <addr> <count> <interval_ms> <dead_ms> [batch_us]`: the same
//!   shapes with no protocol at all: bare epoll, 6-byte pings, 10-byte pongs.
//!
//! - `mio-echo-server <interval_ms> <dead_ms> [udp]`, `mio-hold <addr> <count>
//!   <interval_ms> <dead_ms>`: the same with pulse-mio (the clients' source
//!   addresses spread over 127.0.0.2-9); `mio-hold` says `ready` once
//!   every attempt has opened or failed, and counts failures in `stats`.
//!   With `udp` the server also serves UDP on the same port number.
//!   `shutdown` stops the server loop gracefully and answers `closed <n>`.
//!
//! Commands: `rss` (resident bytes), `cpu` (CPU microseconds used),
//! `switches` (context switches),
//! `stats` (`connections <n> verdicts <n> closed <n> round_trips <n>
//! going_away <n> failed <n> too_many_pings <n>`; the last counts the
//! connections this side closed for pinging too fast).

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulse_proto::Config;
use pulse_smol::{Connection, Event, Listener};

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    /// Connect attempts that never opened.
    failed: AtomicU64,
    verdicts: AtomicU64,
    closed: AtomicU64,
    round_trips: AtomicU64,
    going_away: AtomicU64,
    /// Connections this side closed for pinging too fast.
    too_many_pings: AtomicU64,
}

impl Counters {
    fn count_close(&self, closed: &pulse_proto::Closed) {
        self.closed.fetch_add(1, Ordering::Relaxed);
        match (closed.code, closed.initiator) {
            (pulse_proto::CloseCode::GOING_AWAY, _) => self.going_away.fetch_add(1, Ordering::Relaxed),
            (pulse_proto::CloseCode::TOO_MANY_PINGS, pulse_proto::Initiator::Local) => {
                self.too_many_pings.fetch_add(1, Ordering::Relaxed)
            }
            _ => 0,
        };
    }
}

fn config(interval_ms: u64, dead_ms: u64) -> Arc<Config> {
    let config = Config::default().with_handshake_timeout(Duration::from_secs(30));
    Arc::new(config.with_timing(Duration::from_millis(interval_ms), Duration::from_millis(dead_ms)))
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: {what}"))
}

/// A connection of either async adapter, as `watch` follows it.
trait Watched: Send + Sync + 'static {
    fn next_event(&self) -> impl std::future::Future<Output = Event> + Send + '_;
    fn send_back(&self, tag: u16, payload: bytes::Bytes) -> impl std::future::Future<Output = Sent> + Send + '_;
}

/// What sending gave, the same type from both adapters.
type Sent = Result<(), pulse_driver::Error>;

impl Watched for Connection {
    fn next_event(&self) -> impl std::future::Future<Output = Event> + Send + '_ {
        self.recv()
    }

    fn send_back(&self, tag: u16, payload: bytes::Bytes) -> impl std::future::Future<Output = Sent> + Send + '_ {
        self.send(tag, payload)
    }
}

impl Watched for pulse_tokio::Connection {
    fn next_event(&self) -> impl std::future::Future<Output = Event> + Send + '_ {
        self.recv()
    }

    fn send_back(&self, tag: u16, payload: bytes::Bytes) -> impl std::future::Future<Output = Sent> + Send + '_ {
        // pulse-tokio's own future, no async block around it: the task
        // stays within tokio's smaller cell.
        self.send(tag, payload)
    }
}

/// Follows one connection's events into the counters.
async fn watch(conn: impl Watched, counters: Arc<Counters>, echo: bool) {
    loop {
        match conn.next_event().await {
            Event::Message { tag, payload } if echo => drop(conn.send_back(tag, payload).await),
            Event::Rtt(_) => {
                counters.round_trips.fetch_add(1, Ordering::Relaxed);
            }
            Event::PeerDead { .. } => {
                counters.verdicts.fetch_add(1, Ordering::Relaxed);
            }
            Event::Closed(closed) => {
                counters.count_close(&closed);
                counters.connections.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            _ => {}
        }
    }
}

/// The mio side of `watch`: counts into the same counters.
struct Counting {
    counters: Arc<Counters>,
    echo: bool,
}

impl pulse_mio::Handler for Counting {
    /// Whether the connection opened.
    type Conn = bool;
    fn accepted(&mut self, _peer: std::net::SocketAddr) -> bool {
        false
    }
    fn on_open(&mut self, ctx: &mut pulse_mio::Ctx<'_, bool>, conn: pulse_mio::ConnId) {
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(opened) = ctx.value(conn) {
            *opened = true;
        }
    }
    fn on_message(
        &mut self,
        ctx: &mut pulse_mio::Ctx<'_, bool>,
        conn: pulse_mio::ConnId,
        tag: u16,
        payload: bytes::Bytes,
    ) {
        if self.echo {
            let _ = ctx.send(conn, tag, payload);
        }
    }
    fn on_event(&mut self, _ctx: &mut pulse_mio::Ctx<'_, bool>, _conn: pulse_mio::ConnId, event: &pulse_proto::Event) {
        match event {
            pulse_proto::Event::Rtt(_) => self.counters.round_trips.fetch_add(1, Ordering::Relaxed),
            pulse_proto::Event::PeerDead { .. } => self.counters.verdicts.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
    fn on_close(
        &mut self,
        _ctx: &mut pulse_mio::Ctx<'_, bool>,
        _conn: pulse_mio::ConnId,
        closed: &pulse_proto::Closed,
        opened: bool,
    ) {
        if !opened {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.counters.count_close(closed);
        self.counters.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let counters = Arc::new(Counters::default());
    let mut mio_handle: Option<pulse_mio::Handle> = None;
    let mut mio_done: Option<std::sync::mpsc::Receiver<u64>> = None;
    let mut tls_cert: Option<String> = None;
    let mut crowd: Option<async_channel::Sender<()>> = None;
    let mut reconnecting: Option<pulse_smol::ReconnectingClient> = None;
    match args.get(1).map(String::as_str) {
        Some("smol-echo-server") => smol_echo_server(&args, &counters),
        Some("smol-tls-echo-server") => tls_cert = Some(smol_tls_echo_server(&args, &counters)),
        Some("smol-hold") => smol_hold(&args, &counters),
        Some("smol-udp-crowd") => crowd = Some(smol_udp_crowd(&args, &counters)),
        Some("smol-reconnect") => reconnecting = Some(smol_reconnect(&args)),
        Some("tokio-echo-server") => tokio_echo_server(&args, &counters, None),
        Some("tokio-heartbeat-server") => tokio_heartbeat_server(&args),
        Some("tokio-tls-echo-server") => {
            let identity = pulse_tests::tls::Identity::localhost();
            tls_cert = Some(pulse_tests::tls::to_hex(&identity.cert));
            tokio_echo_server(&args, &counters, Some(identity.tokio_acceptor()));
        }
        Some("floor-echo") => {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            println!("listening {}", listener.local_addr().unwrap());
            let counters = counters.clone();
            std::thread::spawn(move || pulse_tests::floor::serve(listener, &counters.connections));
        }
        Some("floor-hold") => {
            let addr: std::net::SocketAddr = arg(&args, 2, "address");
            let count: usize = arg(&args, 3, "count");
            let interval = Duration::from_millis(arg(&args, 4, "interval_ms"));
            let batch = Duration::from_micros(args.get(6).and_then(|a| a.parse().ok()).unwrap_or(0));
            let counters = counters.clone();
            counters.connections.store(count as u64, Ordering::Relaxed);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let ready = move || ready_tx.send(()).unwrap();
                if let Err(e) = pulse_tests::floor::hold(addr, count, interval, batch, &counters.round_trips, ready) {
                    eprintln!("floor-hold failed: {e}");
                    std::process::exit(1);
                }
            });
            ready_rx.recv().expect("connections opened");
            println!("ready");
        }
        Some("mio-echo-server") => {
            let config = pulse_mio::LoopConfig::new(config(arg(&args, 2, "interval_ms"), arg(&args, 3, "dead_ms")));
            let mut event_loop = pulse_mio::EventLoop::new(
                config,
                Counting {
                    counters: counters.clone(),
                    echo: true,
                },
            )
            .expect("loop");
            let addr = event_loop.listen("127.0.0.1:0".parse().unwrap()).expect("listen");
            if args.get(4).map(String::as_str) == Some("udp") {
                event_loop.listen_udp(addr).expect("listen on UDP");
            }
            mio_handle = Some(event_loop.handle());
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            mio_done = Some(done_rx);
            std::thread::spawn(move || {
                event_loop.run().expect("run");
                let _ = done_tx.send(event_loop.stats().closed);
            });
            println!("listening {addr}");
        }
        Some("mio-hold") => {
            let addr: std::net::SocketAddr = arg(&args, 2, "address");
            let count: usize = arg(&args, 3, "count");
            let config = pulse_mio::LoopConfig::new(config(arg(&args, 4, "interval_ms"), arg(&args, 5, "dead_ms")));
            let mut event_loop = pulse_mio::EventLoop::new(
                config,
                Counting {
                    counters: counters.clone(),
                    echo: false,
                },
            )
            .expect("loop");
            for i in 0..count {
                let local = std::net::SocketAddr::from(([127, 0, 0, 2 + (i % 8) as u8], 0));
                event_loop.connect_from(local, addr, false).expect("connect");
            }
            let counters = counters.clone();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut ready = Some(ready_tx);
                loop {
                    event_loop.turn(None).expect("turn");
                    // Every attempt has ended one way or the other: what
                    // failed is reported in `stats`, not waited for.
                    let opened = counters.connections.load(Ordering::Relaxed) + counters.closed.load(Ordering::Relaxed);
                    if (opened + counters.failed.load(Ordering::Relaxed)) as usize >= count {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            });
            ready_rx.recv().expect("connections opened");
            println!("ready");
        }
        other => panic!("unknown mode {other:?}"),
    }
    pulse_tests::peer::answer_commands(|command| match command {
        "stats" if args.get(1).is_some_and(|mode| mode == "tokio-heartbeat-server") => {
            let counters = pulse_tokio::counters();
            let closed: u64 = counters
                .closed_local
                .iter()
                .chain(&counters.closed_peer)
                .map(|(_, n)| n)
                .sum();
            Some(format!(
                "connections {} verdicts {} closed {closed} round_trips 0",
                counters.open, counters.verdicts
            ))
        }
        "stats" => Some(format!(
            "connections {} verdicts {} closed {} round_trips {} going_away {} failed {} too_many_pings {}",
            counters.connections.load(Ordering::Relaxed),
            counters.verdicts.load(Ordering::Relaxed),
            counters.closed.load(Ordering::Relaxed),
            counters.round_trips.load(Ordering::Relaxed),
            counters.going_away.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
            counters.too_many_pings.load(Ordering::Relaxed),
        )),
        "shutdown" => Some(match (&mio_handle, &mio_done) {
            (Some(handle), Some(done)) => {
                handle.shutdown(Duration::from_secs(5)).expect("shutdown");
                format!("closed {}", done.recv().expect("loop ended"))
            }
            _ => "no loop to shut down".to_string(),
        }),
        "cert" => tls_cert.clone(),
        "server" => reconnecting
            .as_ref()
            .map(|client| client.peer_addr().map_or("none".to_string(), |a| a.to_string())),
        "fill" => crowd.as_ref().map(|fill| {
            let _ = fill.send_blocking(());
            "filling".to_string()
        }),
        _ => None,
    });
}

/// Runs a smol server on a thread of its own: one thread runs the reactor
/// and every task, with no cross-thread wake-ups, the way a smol server
/// uses a core. `serve` binds, says where, and spawns its accept loop as a
/// task: the executor's main future is polled on every wake-up, and an
/// accept there would cost a syscall each time.
fn smol_server<F>(serve: impl FnOnce(Rc<smol::LocalExecutor<'static>>) -> F + Send + 'static) -> std::net::SocketAddr
where
    F: std::future::Future<Output = std::net::SocketAddr>,
{
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ex = Rc::new(smol::LocalExecutor::new());
        smol::block_on(ex.run(async {
            addr_tx.send(serve(ex.clone()).await).unwrap();
            futures_lite::future::pending::<()>().await
        }))
    });
    addr_rx.recv().expect("the server listens")
}

fn smol_echo_server(args: &[String], counters: &Arc<Counters>) {
    let config = config(arg(args, 2, "interval_ms"), arg(args, 3, "dead_ms"));
    let counters = counters.clone();
    let addr = smol_server(move |ex| async move {
        let listener = Listener::bind("127.0.0.1:0", config).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        ex.clone()
            .spawn(async move {
                // `accept` returns no error that passes: out of descriptors,
                // it pauses and resumes by itself.
                while let Ok((conn, driver, _)) = listener.accept().await {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    ex.spawn(driver).detach();
                    ex.spawn(watch(conn, counters.clone(), true)).detach();
                }
            })
            .detach();
        addr
    });
    println!("listening {addr}");
}

/// Returns the certificate, in hex.
fn smol_tls_echo_server(args: &[String], counters: &Arc<Counters>) -> String {
    let config = config(arg(args, 2, "interval_ms"), arg(args, 3, "dead_ms"));
    let identity = pulse_tests::tls::Identity::localhost();
    let cert = pulse_tests::tls::to_hex(&identity.cert);
    let acceptor = identity.acceptor();
    let counters = counters.clone();
    let addr = smol_server(move |ex| async move {
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        ex.clone()
            .spawn(async move {
                // TLS first, then pulse over it.
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, counters, config, tasks) =
                        (acceptor.clone(), counters.clone(), config.clone(), ex.clone());
                    ex.spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else { return };
                        let (conn, driver) = pulse_smol::Connection::server(tls, config).expect("config");
                        counters.connections.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(driver).detach();
                        watch(conn, counters, true).await;
                    })
                    .detach();
                }
            })
            .detach();
        addr
    });
    println!("listening {addr}");
    cert
}

fn smol_hold(args: &[String], counters: &Arc<Counters>) {
    let addr: std::net::SocketAddr = arg(args, 2, "address");
    let count: usize = arg(args, 3, "count");
    let config = config(arg(args, 4, "interval_ms"), arg(args, 5, "dead_ms"));
    let counters = counters.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            for _ in 0..count {
                let (conn, driver) = pulse_smol::connect(addr, config.clone()).await.expect("connect");
                counters.connections.fetch_add(1, Ordering::Relaxed);
                ex.spawn(driver).detach();
                ex.spawn(watch(conn, counters.clone(), false)).detach();
            }
            ready_tx.send(()).unwrap();
            futures_lite::future::pending::<()>().await;
        }))
    });
    ready_rx.recv().expect("connections opened");
    println!("ready");
}

/// Returns what `fill` sends to.
fn smol_udp_crowd(args: &[String], counters: &Arc<Counters>) -> async_channel::Sender<()> {
    let count: usize = arg(args, 2, "count");
    let config = config(arg(args, 3, "interval_ms"), arg(args, 4, "dead_ms"));
    let counters = counters.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (fill_tx, fill_rx) = async_channel::unbounded::<()>();
    std::thread::spawn(move || {
        let ex = smol::LocalExecutor::new();
        smol::block_on(ex.run(async {
            let (listener, router) = pulse_smol::UdpListener::bind("127.0.0.1:0", config.clone())
                .await
                .expect("bind");
            listener.set_backlog(count);
            ex.spawn(router).detach();
            let addr = listener.local_addr();
            let mut servers = Vec::new();
            let mut clients = Vec::new();
            for _ in 0..count {
                let connecting = ex.spawn(pulse_smol::connect_udp(addr, config.clone()));
                let (server, driver, _) = listener.accept().await.expect("accept");
                ex.spawn(driver).detach();
                let (client, driver) = connecting.await.expect("connect");
                ex.spawn(driver).detach();
                counters.connections.fetch_add(1, Ordering::Relaxed);
                servers.push(server);
                clients.push(client);
            }
            ready_tx.send(()).unwrap();
            while fill_rx.recv().await.is_ok() {
                for server in &servers {
                    for _ in 0..16 {
                        let _ = server.send(1, vec![0u8; 1000]).await;
                    }
                }
            }
            drop(clients);
        }))
    });
    ready_rx.recv().expect("connections opened");
    println!("ready");
    fill_tx
}

fn smol_reconnect(args: &[String]) -> pulse_smol::ReconnectingClient {
    let target: String = arg(args, 2, "host:port");
    let backoff = pulse_proto::Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
    let (client, supervisor) = pulse_smol::ReconnectingClient::new(target, config(1000, 3000), backoff);
    std::thread::spawn(move || smol::block_on(supervisor));
    println!("ready");
    client
}

/// A pulse-tokio echo server on tokio's default runtime (one worker per
/// core, as the tokio reference), over TLS when given an acceptor.
fn tokio_echo_server(args: &[String], counters: &Arc<Counters>, tls: Option<tokio_rustls::TlsAcceptor>) {
    let config = config(arg(args, 2, "interval_ms"), arg(args, 3, "dead_ms"));
    let counters = counters.clone();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("non-blocking");
    println!("listening {}", socket.local_addr().expect("address"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let Some(acceptor) = tls else {
                let listener = pulse_tokio::Listener::from_std(socket, config).expect("listen");
                while let Ok((conn, _)) = listener.accept().await {
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(watch(conn, counters.clone(), true));
                }
                return;
            };
            // TLS first, then pulse over it.
            let listener = tokio::net::TcpListener::from_std(socket).expect("listen");
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, config, counters) = (acceptor.clone(), config.clone(), counters.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let conn = pulse_tokio::Connection::server(tls, config).expect("config");
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    watch(conn, counters, true).await;
                });
            }
        })
    });
}

/// pulse-tokio holding connections for their heartbeats alone: the
/// application keeps the handles and lets go of those that closed; the
/// driver tasks do the rest.
fn tokio_heartbeat_server(args: &[String]) {
    let config = config(arg(args, 2, "interval_ms"), arg(args, 3, "dead_ms"));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(pulse_tokio::Listener::bind("127.0.0.1:0", config))
        .expect("bind");
    println!("listening {}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        runtime.block_on(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                if held.len() == held.capacity() {
                    held.retain(|conn: &pulse_tokio::Connection| !conn.is_closed());
                }
                held.push(conn);
            }
        })
    });
}
