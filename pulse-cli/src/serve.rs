//! `pulse serve`: a pulse endpoint through pulse-smol (TCP and UDP) that
//! echoes messages and tells its peers, and HAProxy, the status an
//! operator sets. The heartbeats are the sessions'; this file watches a
//! file and signals and prints.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_listener::Event as Notify;
use futures_lite::{future, AsyncWriteExt};
use futures_rustls::TlsAcceptor;
use pulse_proto::Config;
use pulse_smol::{Connection, Event, Listener, UdpListener};
use serde_json::json;
use signal_hook::consts::{SIGHUP, SIGUSR1, SIGUSR2};

use crate::cli::ServeArgs;
use crate::out::say;
use crate::status_file::{self, Look, Reported};
use crate::{exit, signals, tls};

/// The status now, and a notice to every connection when it changes.
struct Current {
    reported: Mutex<Reported>,
    changed: Notify,
    json: bool,
}

impl Current {
    fn get(&self) -> Reported {
        self.reported.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, reported: Reported, why: &str) {
        let mut now = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if *now == reported {
            return;
        }
        *now = reported.clone();
        drop(now);
        if self.json {
            say!(
                "{}",
                json!({"event": "status", "status": reported.to_string(), "state": reported.state_name(),
                       "weight": reported.status().weight(), "reason": reported.reason(), "by": why})
            );
        } else {
            say!("status: {reported} ({why})");
        }
        self.changed.notify(usize::MAX);
    }
}

pub fn run(args: ServeArgs) -> i32 {
    let mut reader = args
        .status_file
        .clone()
        .map(|path| status_file::Reader::new(path, args.status_timeout));
    let initial = match reader.as_mut().map(|r| smol::block_on(r.look(true))) {
        None | Some(Look::Unchanged) => Reported::default(),
        Some(Look::Read(Ok(reported))) => reported,
        Some(Look::Read(Err(e))) => {
            eprintln!("pulse serve: {e}");
            return exit::USAGE;
        }
        Some(Look::TimedOut | Look::Busy) => {
            eprintln!(
                "pulse serve: the status file gave no answer within {:?} (--status-timeout)",
                args.status_timeout
            );
            return exit::USAGE;
        }
    };
    let current = Arc::new(Current {
        reported: Mutex::new(initial),
        changed: Notify::new(),
        json: args.json,
    });
    let (stop, status_signals) = match (signals::channel(&signals::STOP), signals::channel(&signals::STATUS)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("pulse serve: cannot watch signals: {e}");
            return exit::USAGE;
        }
    };
    // A server agrees to what clients ask within its bounds: these let a
    // client ask for fast heartbeats (a probe, a test), down to
    // --min-interval.
    let mut config = Config::default().with_timing(Duration::from_secs(1), Duration::from_secs(3));
    config.min_interval = args.min_interval;
    config.min_ping_spacing = config.min_ping_spacing.min(args.min_interval / 2);
    let config = Arc::new(config);
    let tls = match args
        .tls
        .then(|| tls::server(args.cert.as_deref(), args.key.as_deref(), args.addr))
        .transpose()
    {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("pulse serve: {e}");
            return exit::USAGE;
        }
    };

    smol::block_on(async {
        let mut tasks = Vec::new();
        let mut port = args.addr.port();
        if let Some(tls) = tls {
            let listener = match async_net::TcpListener::bind(args.addr).await {
                Ok(l) => l,
                Err(e) => return bind_failed("tls", args.addr, &e),
            };
            let local = listener.local_addr().unwrap_or(args.addr);
            if let Some((names, fingerprint)) = &tls.generated {
                if args.json {
                    say!(
                        "{}",
                        json!({"event": "certificate", "self_signed": true, "names": names, "sha256": fingerprint})
                    );
                } else {
                    say!(
                        "tls: self-signed certificate for {}, SHA-256 fingerprint {fingerprint}",
                        names.join(", ")
                    );
                }
            }
            announce_bound(&args, "tls", local);
            let acceptor = TlsAcceptor::from(tls.config);
            let (config, current) = (config.clone(), current.clone());
            tasks.push(smol::spawn(async move {
                loop {
                    let Ok((tcp, peer)) = listener.accept().await else {
                        // Out of descriptors: try again in a moment.
                        async_io::Timer::after(Duration::from_millis(100)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, config, current) = (acceptor.clone(), config.clone(), current.clone());
                    smol::spawn(async move {
                        let Some(stream) = tls_handshake(&acceptor, tcp, peer, current.json).await else {
                            return;
                        };
                        match Connection::server(stream, config) {
                            Ok((conn, driver)) => {
                                smol::spawn(driver).detach();
                                serve_peer(conn, peer, current).await;
                            }
                            Err(e) => eprintln!("pulse serve: {peer}: {e}"),
                        }
                    })
                    .detach();
                }
            }));
        } else if !args.udp_only {
            let listener = match Listener::bind(args.addr, config.clone()).await {
                Ok(l) => l,
                Err(e) => return bind_failed("tcp", args.addr, &e),
            };
            let local = listener.local_addr().unwrap_or(args.addr);
            port = local.port();
            announce_bound(&args, "tcp", local);
            let current = current.clone();
            tasks.push(smol::spawn(async move {
                while let Ok((conn, driver, peer)) = listener.accept().await {
                    smol::spawn(driver).detach();
                    smol::spawn(serve_peer(conn, peer, current.clone())).detach();
                }
            }));
        }
        if !args.tcp_only && !args.tls {
            // The same port as TCP, so one address serves both.
            let addr = SocketAddr::new(args.addr.ip(), port);
            let (listener, router) = match UdpListener::bind(addr, config.clone()).await {
                Ok(pair) => pair,
                Err(e) => return bind_failed("udp", addr, &e),
            };
            announce_bound(&args, "udp", listener.local_addr());
            smol::spawn(router).detach();
            let current = current.clone();
            tasks.push(smol::spawn(async move {
                while let Ok((conn, driver, peer)) = listener.accept().await {
                    smol::spawn(driver).detach();
                    smol::spawn(serve_peer(conn, peer, current.clone())).detach();
                }
            }));
        }
        if let Some(agent) = args.haproxy_agent {
            let listener = match async_net::TcpListener::bind(agent).await {
                Ok(l) => l,
                Err(e) => return bind_failed("haproxy agent", agent, &e),
            };
            announce_bound(&args, "haproxy-agent", listener.local_addr().unwrap_or(agent));
            let current = current.clone();
            tasks.push(smol::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        // Out of descriptors: try again in a moment.
                        async_io::Timer::after(Duration::from_millis(100)).await;
                        continue;
                    };
                    let line = current.get().agent_line();
                    // HAProxy reads one line and closes; a client that does
                    // not read gets no more than a second of our time.
                    smol::spawn(async move {
                        future::or(
                            async {
                                let _ = stream.write_all(line.as_bytes()).await;
                                let _ = stream.close().await;
                            },
                            async {
                                async_io::Timer::after(Duration::from_secs(1)).await;
                            },
                        )
                        .await;
                    })
                    .detach();
                }
            }));
        }
        if let Some(mut reader) = reader {
            let current = current.clone();
            let every = args.status_poll.max(Duration::from_millis(10));
            let timeout = args.status_timeout;
            tasks.push(smol::spawn(async move {
                loop {
                    // A signal HUP re-reads at once; otherwise the file's
                    // mtime and length are looked at every poll.
                    let reread = future::or(
                        async {
                            async_io::Timer::after(every).await;
                            false
                        },
                        async {
                            loop {
                                match status_signals.recv().await {
                                    Ok(SIGHUP) => return true,
                                    Ok(SIGUSR1) => {
                                        let drain = Reported::Service(pulse_proto::Status::new(
                                            pulse_proto::ServiceState::Draining,
                                            0,
                                        ));
                                        current.set(drain, "signal USR1");
                                    }
                                    Ok(SIGUSR2) => current.set(Reported::default(), "signal USR2"),
                                    Ok(_) => {}
                                    Err(_) => future::pending::<()>().await,
                                }
                            }
                        },
                    )
                    .await;
                    match reader.look(reread).await {
                        Look::Unchanged | Look::Busy => {}
                        Look::Read(Ok(reported)) => current.set(reported, "status file"),
                        Look::Read(Err(e)) => current.refuse(&e),
                        Look::TimedOut => current.unanswered(timeout),
                    }
                }
            }));
        } else {
            let current = current.clone();
            tasks.push(smol::spawn(async move {
                while let Ok(signal) = status_signals.recv().await {
                    match signal {
                        SIGUSR1 => current.set(
                            Reported::Service(pulse_proto::Status::new(pulse_proto::ServiceState::Draining, 0)),
                            "signal USR1",
                        ),
                        SIGUSR2 => current.set(Reported::default(), "signal USR2"),
                        _ => {}
                    }
                }
            }));
        }
        let _ = stop.recv().await;
        drop(tasks);
        exit::OK
    })
}

impl Current {
    /// A status file that says nothing we understand leaves the status as
    /// it was, and says so where the operator looks.
    fn refuse(&self, error: &str) {
        if self.json {
            say!("{}", json!({"event": "status_refused", "error": error}));
        } else {
            say!("status: unchanged, the file is not understood: {error}");
        }
    }

    /// A status file that gave no answer in time (a FIFO, a hung file
    /// system) leaves the status as it was too.
    fn unanswered(&self, timeout: Duration) {
        let error = format!("no answer from the file system within {timeout:?} (--status-timeout)");
        if self.json {
            say!("{}", json!({"event": "status_refused", "error": error}));
        } else {
            say!("status: unchanged, {error}");
        }
    }
}

/// How long a client has to finish its TLS handshake: one that connects
/// and says nothing holds a task and a socket no longer.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// The server side of a TLS handshake; a client that fails it (one that
/// does not speak TLS, or distrusts us) is told why in the log, and
/// nothing else is disturbed.
async fn tls_handshake(
    acceptor: &TlsAcceptor,
    tcp: async_net::TcpStream,
    peer: SocketAddr,
    json: bool,
) -> Option<futures_rustls::server::TlsStream<async_net::TcpStream>> {
    let handshake = future::or(async { Some(acceptor.accept(tcp).await) }, async {
        async_io::Timer::after(TLS_HANDSHAKE).await;
        None
    });
    let why = match handshake.await {
        Some(Ok(stream)) => return Some(stream),
        Some(Err(e)) => e.to_string(),
        None => format!("no TLS handshake within {TLS_HANDSHAKE:?}"),
    };
    if json {
        say!(
            "{}",
            json!({"event": "tls_refused", "peer": peer.to_string(), "why": why})
        );
    } else {
        say!("{peer}: TLS refused: {why}");
    }
    None
}

fn bind_failed(what: &str, addr: SocketAddr, e: &dyn std::fmt::Display) -> i32 {
    eprintln!("pulse serve: cannot listen ({what}) on {addr}: {e}");
    exit::USAGE
}

fn announce_bound(args: &ServeArgs, what: &str, addr: SocketAddr) {
    if args.json {
        say!(
            "{}",
            json!({"event": "listening", "transport": what, "addr": addr.to_string()})
        );
    } else {
        say!("listening ({what}) on {addr}");
    }
}

/// One peer: echo its messages and tell it the status, now and whenever it
/// changes.
async fn serve_peer(conn: Connection, peer: SocketAddr, current: Arc<Current>) {
    let json = current.json;
    let mut told = None;
    loop {
        let changed = current.changed.listen();
        let reported = current.get();
        if conn.negotiated().is_some() && told.as_ref() != Some(&reported) {
            // A version-1 peer has no STATUS frame: it is only not told.
            let _ = conn.send_status(reported.status());
            told = Some(reported);
        }
        let event = future::or(async { Some(conn.recv().await) }, async {
            changed.await;
            None
        })
        .await;
        match event {
            None => {}
            Some(Event::Connected(n)) => {
                if json {
                    say!(
                        "{}",
                        json!({"event": "connected", "peer": peer.to_string(), "interval_ms": n.interval().as_millis() as u64})
                    );
                } else {
                    say!("{peer}: connected, interval {:?}", n.interval());
                }
            }
            Some(Event::Message { tag, payload }) if conn.send(tag, payload.clone()).await.is_err() => break,
            Some(Event::Closed(closed)) => {
                if json {
                    say!(
                        "{}",
                        json!({"event": "closed", "peer": peer.to_string(), "why": closed.to_string()})
                    );
                } else {
                    say!("{peer}: {closed}");
                }
                break;
            }
            Some(_) => {}
        }
    }
}
