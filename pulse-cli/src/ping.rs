//! `pulse ping`: a pulse connection through pulse-smol, printed like
//! ping(8). Heartbeats, RTT, suspicion and the dead verdict are the
//! session's; this file counts and prints.

use std::time::{Duration, Instant};

use futures_lite::future;
use futures_rustls::rustls::pki_types::ServerName;
use futures_rustls::TlsConnector;
use pulse_proto::{CloseCode, Config, Event};
use serde_json::json;

use crate::cli::PingArgs;
use crate::duration::millis;
use crate::out::{self, say};
use crate::{exit, signals, tls};

/// What ended the run.
enum End {
    /// --count answers arrived, or Ctrl-C: the peer was alive.
    Done,
    /// The peer was judged dead, closed, or never answered in time.
    Dead(String),
}

/// Whether `addr` names a port: `host:7000`, `10.0.0.1:7000`,
/// `[::1]:7000` (a bare IPv6 address has colons but no port).
fn has_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        let bracketed = host.starts_with('[') && host.ends_with(']');
        !host.is_empty() && (bracketed || !host.contains(':')) && port.parse::<u16>().is_ok()
    })
}

/// Round-trip times seen, for the summary.
#[derive(Default)]
struct Rtts {
    samples: Vec<f64>,
}

impl Rtts {
    /// min, avg, max and mean deviation in milliseconds, as ping(8).
    fn summary(&self) -> Option<(f64, f64, f64, f64)> {
        if self.samples.is_empty() {
            return None;
        }
        let n = self.samples.len() as f64;
        let min = self.samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.samples.iter().copied().fold(0.0, f64::max);
        let avg = self.samples.iter().sum::<f64>() / n;
        let mdev = (self.samples.iter().map(|s| (s - avg) * (s - avg)).sum::<f64>() / n).sqrt();
        Some((min, avg, max, mdev))
    }
}

pub fn run(args: PingArgs) -> i32 {
    out::end_when_closed();
    let dead_after = args.dead_after.unwrap_or(args.interval * 3);
    if dead_after <= args.interval {
        eprintln!("pulse ping: --dead-after must be longer than --interval");
        return exit::USAGE;
    }
    let stop = match signals::channel(&signals::STOP) {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("pulse ping: cannot watch signals: {e}");
            return exit::USAGE;
        }
    };
    if !has_port(&args.addr) {
        eprintln!("pulse ping: `{}` is not HOST:PORT", args.addr);
        return exit::USAGE;
    }
    let config = Config::default().with_timing(args.interval, dead_after);
    // Checked before connecting: a setting the protocol cannot carry is
    // the caller's mistake (exit 2), not a dead peer (exit 1).
    if let Err(e) = config.validate() {
        eprintln!("pulse ping: {e} (--interval, --dead-after)");
        return exit::USAGE;
    }
    let tls = match args.tls.then(|| tls_setup(&args)).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("pulse ping: {e}");
            return exit::USAGE;
        }
    };
    smol::block_on(async {
        let started = Instant::now();
        let deadline = args.timeout.map(|t| started + t);
        let expired = async {
            match deadline {
                Some(at) => {
                    async_io::Timer::at(at).await;
                }
                None => future::pending::<()>().await,
            }
        };
        let transport = match (args.udp, &tls) {
            (true, _) => "udp",
            (false, Some(_)) => "tls",
            (false, None) => "tcp",
        };
        let connect = async {
            match &tls {
                Some((connector, name)) => connect_tls(&args.addr, connector, name.clone(), config).await,
                None if args.udp => pulse_smol::connect_udp(args.addr.as_str(), config)
                    .await
                    .map(|(conn, driver)| (conn, driver, None))
                    .map_err(|e| e.to_string()),
                None => pulse_smol::connect(args.addr.as_str(), config)
                    .await
                    .map(|(conn, driver)| (conn, driver, None))
                    .map_err(|e| e.to_string()),
            }
        };
        let connected = future::or(async { Some(connect.await) }, async {
            future::or(expired, async {
                let _ = stop.recv().await;
            })
            .await;
            None
        })
        .await;
        let (conn, driver, certificate) = match connected {
            Some(Ok(connected)) => connected,
            Some(Err(e)) => {
                report_unreachable(&args, &e);
                return exit::DEAD;
            }
            None => {
                report_unreachable(&args, "no answer in time");
                return exit::DEAD;
            }
        };
        let driver = smol::spawn(driver);
        let negotiated = conn.negotiated();
        if args.json {
            say!(
                "{}",
                json!({"event": "connected", "peer": args.addr, "transport": transport,
                       "interval_ms": negotiated.map(|n| n.interval().as_millis() as u64),
                       "dead_after_ms": negotiated.map(|n| n.dead_timeout().as_millis() as u64),
                       "certificate_sha256": certificate})
            );
        } else if let Some(n) = negotiated {
            say!(
                "PULSE {} ({transport}): interval {:?}, dead after {:?}",
                args.addr,
                n.interval(),
                n.dead_timeout()
            );
            if let Some(fingerprint) = &certificate {
                say!("certificate SHA-256 {fingerprint}");
            }
        }

        let mut rtts = Rtts::default();
        let mut answered = 0u64;
        let events = async {
            loop {
                match conn.recv().await {
                    Event::Rtt(sample) => {
                        answered += 1;
                        rtts.samples.push(sample.rtt.as_secs_f64() * 1000.0);
                        if args.json {
                            say!(
                                "{}",
                                json!({"event": "rtt", "seq": answered,
                                       "rtt_ms": sample.rtt.as_secs_f64() * 1000.0,
                                       "hold_ms": sample.peer_hold.as_secs_f64() * 1000.0,
                                       "smoothed_ms": sample.smoothed.as_secs_f64() * 1000.0})
                            );
                        } else {
                            say!(
                                "from {}: seq={answered} rtt={} ms hold={} ms",
                                args.addr,
                                millis(sample.rtt),
                                millis(sample.peer_hold)
                            );
                        }
                        if args.count.is_some_and(|count| answered >= count) {
                            return End::Done;
                        }
                    }
                    Event::Suspect { silent_for } => line(&args, "suspect", silent_for, "no answer, probing"),
                    Event::Recovered { silent_for } => line(&args, "recovered", silent_for, "answering again"),
                    Event::PeerDead { silent_for } => line(&args, "dead", silent_for, "the peer is dead"),
                    Event::PeerStatus(status) => {
                        if args.json {
                            say!(
                                "{}",
                                json!({"event": "status", "state": status.state().to_string(), "weight": status.weight()})
                            );
                        } else {
                            say!("from {}: status {status}", args.addr);
                        }
                    }
                    Event::Closed(closed) => return End::Dead(closed.to_string()),
                    _ => {}
                }
            }
        };
        let end = future::or(events, async {
            future::or(
                async {
                    let _ = stop.recv().await;
                    End::Done
                },
                async {
                    match deadline {
                        Some(at) => {
                            async_io::Timer::at(at).await;
                            End::Dead("no answer in time".into())
                        }
                        None => future::pending().await,
                    }
                },
            )
            .await
        })
        .await;

        let stats = conn.stats();
        if !conn.is_closed() {
            // A frozen peer never answers the CLOSE: wait a moment only.
            let close = conn.close(CloseCode::NORMAL, "ping done");
            future::or(
                async {
                    let _ = close.await;
                },
                async {
                    async_io::Timer::after(Duration::from_secs(1)).await;
                },
            )
            .await;
        }
        drop(driver);
        let sent = u64::from(stats.pings_sent).max(answered);
        let loss = if sent == 0 {
            0.0
        } else {
            100.0 * (sent - answered) as f64 / sent as f64
        };
        let summary = rtts.summary();
        let code = match &end {
            End::Done if answered > 0 => exit::OK,
            End::Done => exit::DEAD,
            End::Dead(_) => exit::DEAD,
        };
        if args.json {
            say!(
                "{}",
                json!({"event": "summary", "peer": args.addr, "sent": sent, "answered": answered,
                       "loss_percent": loss, "alive": code == exit::OK,
                       "ended": match &end { End::Done => "done".to_string(), End::Dead(why) => why.clone() },
                       "min_ms": summary.map(|s| s.0), "avg_ms": summary.map(|s| s.1),
                       "max_ms": summary.map(|s| s.2), "mdev_ms": summary.map(|s| s.3)})
            );
        } else {
            if let End::Dead(why) = &end {
                say!("{}: {why}", args.addr);
            }
            say!("--- {} pulse statistics ---", args.addr);
            say!(
                "{sent} heartbeats sent, {answered} answered, {loss:.1}% loss, time {} ms",
                started.elapsed().as_millis()
            );
            if let Some((min, avg, max, mdev)) = summary {
                say!("rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms");
            }
        }
        code
    })
}

/// The TLS client of `--tls`, and the name to verify.
fn tls_setup(args: &PingArgs) -> Result<(TlsConnector, ServerName<'static>), String> {
    let config = tls::client(args.ca.as_deref(), args.insecure)?;
    let name = tls::server_name(args.server_name.as_deref(), &args.addr)?;
    Ok((TlsConnector::from(config), name))
}

/// TCP, then the TLS handshake, then pulse's over the TLS stream; with
/// the fingerprint of the server's certificate, to compare with the one
/// `serve --tls` printed.
async fn connect_tls(
    addr: &str,
    connector: &TlsConnector,
    name: ServerName<'static>,
    config: Config,
) -> Result<(pulse_smol::Connection, pulse_smol::Driver, Option<String>), String> {
    let tcp = async_net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let fingerprint = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(tls::fingerprint);
    let (conn, driver) = pulse_smol::Connection::client(stream, config)
        .await
        .map_err(|e| e.to_string())?;
    Ok((conn, driver, fingerprint))
}

fn line(args: &PingArgs, event: &str, silent_for: Duration, text: &str) {
    if args.json {
        say!(
            "{}",
            json!({"event": event, "silent_ms": silent_for.as_millis() as u64})
        );
    } else {
        say!("from {}: {text} (silent for {} ms)", args.addr, millis(silent_for));
    }
}

fn report_unreachable(args: &PingArgs, why: &str) {
    if args.json {
        say!(
            "{}",
            json!({"event": "summary", "peer": args.addr, "alive": false, "ended": why, "sent": 0, "answered": 0})
        );
    } else {
        say!("{}: unreachable: {why}", args.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::has_port;

    #[test]
    fn an_address_without_a_port_is_told_apart() {
        for addr in ["host:7000", "10.0.0.1:7000", "[::1]:7000"] {
            assert!(has_port(addr), "{addr}");
        }
        for addr in ["host", "10.0.0.1", "::1", ":7000", "host:port", "host:70000"] {
            assert!(!has_port(addr), "{addr}");
        }
    }
}
