//! `pulse watch` seeing what a person would do to its targets, and its
//! HTTP endpoints read as Prometheus and scripts read them.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{get, scratch, write, Pulse};

/// Fast checks, so a test sees transitions within a second or two.
const FAST: &str = "interval = \"200ms\"\nfast_interval = \"100ms\"\ndown_interval = \"200ms\"\ntimeout = \"150ms\"\n";
const VERDICT: Duration = Duration::from_secs(10);

/// A tiny HTTP server answering every request with the status code held
/// in the returned cell.
fn http_backend() -> (SocketAddr, Arc<AtomicU16>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let code = Arc::new(AtomicU16::new(200));
    let answer = code.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let code = answer.load(Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, code)
}

#[test]
fn an_http_target_answering_503_goes_down_and_comes_back() {
    let (backend, code) = http_backend();
    let dir = scratch("http503");
    let targets = dir.join("targets.toml");
    write(
        &targets,
        &format!("{FAST}[[target]]\nname = \"web\"\npool = \"front\"\nhttp = \"{backend}\"\npath = \"/health\"\n"),
    );
    let mut watch = Pulse::start(&["watch", "--json", targets.to_str().unwrap()]);
    watch.wait_json(VERDICT, "web up", |v| {
        v["event"] == "transition" && v["target"] == "web" && v["to"] == "up"
    });
    code.store(503, Ordering::SeqCst);
    let down = watch.wait_json(VERDICT, "web down", |v| {
        v["event"] == "transition" && v["target"] == "web" && v["to"] == "down"
    });
    assert_eq!(down["reason"], "checks", "{down}");
    assert!(down["why"].as_str().unwrap().contains("503"), "{down}");
    assert_eq!(down["pool"], "front");
    code.store(200, Ordering::SeqCst);
    watch.wait_json(VERDICT, "web up again", |v| {
        v["event"] == "transition" && v["target"] == "web" && v["to"] == "up"
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn metrics_status_and_healthz_are_served() {
    let (backend, _code) = http_backend();
    let dir = scratch("metrics");
    let targets = dir.join("targets.toml");
    write(
        &targets,
        &format!(
            "{FAST}[[target]]\nname = \"web \\\"a\\\"\"\nhttp = \"{backend}\"\n\
             [[target]]\nname = \"gone\"\npool = \"db\"\ntcp = \"127.0.0.1:1\"\n"
        ),
    );
    let mut watch = Pulse::start(&["watch", "--json", "--http", "127.0.0.1:0", targets.to_str().unwrap()]);
    let console = watch.wait_json(VERDICT, "the console address", |v| {
        v["event"] == "note" && v["text"].as_str().unwrap().starts_with("console on")
    });
    let console: SocketAddr = console["text"].as_str().unwrap()["console on http://".len()..]
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // Either order: both verdicts come from the first checks.
    let mut seen = (false, false);
    while seen != (true, true) {
        let t = watch.wait_json(VERDICT, "web up and gone down", |v| v["event"] == "transition");
        seen.0 |= t["to"] == "up" && t["target"] == "web \"a\"";
        seen.1 |= t["to"] == "down" && t["target"] == "gone";
    }
    // The board is refreshed at least every second.
    let metrics = common::eventually(Duration::from_secs(3), "metrics with both verdicts", || {
        let (status, body) = get(console, "/metrics");
        assert_eq!(status, 200);
        // Label values are checked by the parser below.
        let both = body.contains(",kind=\"http\"} 1") && body.contains(",kind=\"tcp\"} 0");
        both.then_some(body)
    });
    let samples = prometheus::parse(&metrics).unwrap_or_else(|e| panic!("{e}\n{metrics}"));
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
            })
            .map(|s| s.value)
    };
    assert_eq!(
        value("pulse_target_up", &[("target", "web \"a\""), ("kind", "http")]),
        Some(1.0)
    );
    assert_eq!(
        value("pulse_target_state", &[("target", "gone"), ("state", "down")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            "pulse_transitions_total",
            &[("target", "gone"), ("reason", "checks"), ("to", "down")]
        ),
        Some(1.0)
    );
    assert_eq!(value("pulse_pool_members", &[("pool", "db")]), Some(1.0));
    assert!(value("pulse_monitor_probes_total", &[]) > Some(0.0));
    assert_eq!(value("pulse_monitor_local_score", &[]), Some(0.0));

    let (status, json) = get(console, "/status.json");
    assert_eq!(status, 200);
    let board: serde_json::Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = board["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web \"a\"", "gone"]);
    assert_eq!(get(console, "/healthz").0, 200);
    assert_eq!(get(console, "/nothing").0, 404);
    let (status, page) = get(console, "/");
    assert_eq!(status, 200);
    assert!(page.contains("EventSource(\"/events\")"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_frozen_pulse_peer_goes_down_and_comes_back_when_thawed() {
    let mut serve = Pulse::start(&["serve", "127.0.0.1:0", "--tcp-only"]);
    let peer = serve.wait_addr("listening (tcp) on");
    let dir = scratch("peer");
    let targets = dir.join("targets.toml");
    write(
        &targets,
        &format!("{FAST}peer_interval = \"200ms\"\n[[target]]\nname = \"api\"\npulse = \"{peer}\"\n"),
    );
    let mut watch = Pulse::start(&["watch", "--json", targets.to_str().unwrap()]);
    let is = |to: &'static str| move |v: &serde_json::Value| v["event"] == "transition" && v["to"] == to;
    watch.wait_json(VERDICT, "api up", is("up"));
    assert!(common::signal(serve.pid(), "STOP"));
    watch.wait_json(VERDICT, "api suspect", is("suspect"));
    let down = watch.wait_json(VERDICT, "api down", is("down"));
    assert_eq!(down["reason"], "peer", "{down}");
    assert!(common::signal(serve.pid(), "CONT"));
    // The session died; the watcher connects again and the peer is up.
    watch.wait_json(VERDICT, "api up again", is("up"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn signed_announcements_count_and_forged_ones_are_refused() {
    let dir = scratch("keys");
    let (key, other) = (dir.join("key"), dir.join("other"));
    write(&key, "a shared secret\n");
    write(&other, "not the secret\n");
    let targets = dir.join("targets.toml");
    write(
        &targets,
        &format!(
            "{FAST}announce = \"127.0.0.1:0\"\nkeys = [\"{}\"]\n[[target]]\nname = \"signed\"\nannounce = \"7\"\n\
             [[target]]\nname = \"forged\"\nannounce = \"8\"\n",
            key.display()
        ),
    );
    let mut watch = Pulse::start(&["watch", "--json", "--http", "127.0.0.1:0", targets.to_str().unwrap()]);
    let mut collector = None;
    let mut console = None;
    while collector.is_none() || console.is_none() {
        let note = watch.wait_json(VERDICT, "the addresses", |v| v["event"] == "note");
        let text = note["text"].as_str().unwrap().to_string();
        if let Some(addr) = text.strip_prefix("announcements on udp ") {
            collector = Some(addr.to_string());
        } else if let Some(addr) = text.strip_prefix("console on http://") {
            console = Some(addr.trim_end_matches('/').parse::<SocketAddr>().unwrap());
        }
    }
    let (collector, console) = (collector.unwrap(), console.unwrap());
    let announce = |id: &str, key: &std::path::Path| {
        Pulse::start(&[
            "announce",
            &collector,
            "--id",
            id,
            "--interval",
            "100ms",
            "--key",
            key.to_str().unwrap(),
        ])
    };
    let _signed = announce("7", &key);
    let _forged = announce("8", &other);
    watch.wait_json(VERDICT, "signed up", |v| {
        v["event"] == "transition" && v["target"] == "signed" && v["to"] == "up"
    });
    // The forged ones are counted as such, and never bring their target up.
    common::eventually(VERDICT, "bad tags counted", || {
        let (_, metrics) = get(console, "/metrics");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("pulse_monitor_announcements_refused_total{reason=\"bad_tag\"} "))
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n >= 3)
    });
    let (_, json) = get(console, "/status.json");
    let board: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(board["targets"][1]["name"], "forged");
    // Never heard from: the monitor judges it by its silence.
    assert_ne!(board["targets"][1]["state"], "up", "{json}");
    let ups = board["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["target"] == "forged" && t["to"] == "up");
    assert_eq!(ups.count(), 0, "{json}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_targets_file_is_a_usage_error() {
    let dir = scratch("badfile");
    let targets = dir.join("targets.toml");
    write(
        &targets,
        "[[target]]\nname = \"x\"\ntcp = \"127.0.0.1:1\"\nhttp = \"127.0.0.1:2\"\n",
    );
    let (code, _) = common::run(&["watch", targets.to_str().unwrap()], VERDICT);
    assert_eq!(code, 2);
    let (code, _) = common::run(&["watch", dir.join("missing.toml").to_str().unwrap()], VERDICT);
    assert_eq!(code, 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// The Prometheus text exposition format (0.0.4), checked by its
/// documented grammar: comments, `# HELP`/`# TYPE` once per family and
/// before its samples, metric and label names, escaped label values,
/// float values.
mod prometheus {
    use std::collections::HashSet;

    pub struct Sample {
        pub name: String,
        pub labels: Vec<(String, String)>,
        pub value: f64,
    }

    fn is_name(name: &str, colon: bool) -> bool {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }

    fn value(text: &str) -> Result<f64, String> {
        match text {
            "NaN" => Ok(f64::NAN),
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ => text.parse().map_err(|_| format!("`{text}` is not a value")),
        }
    }

    pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
        let mut typed = HashSet::new();
        let mut helped = HashSet::new();
        let mut samples = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line}", n + 1);
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.trim_start().splitn(3, ' ');
                match (words.next(), words.next(), words.next()) {
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        if !is_name(name, true)
                            || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind)
                        {
                            return Err(at("a bad TYPE".into()));
                        }
                        if samples.iter().any(|s: &Sample| s.name == name) || !typed.insert(name.to_string()) {
                            return Err(at("TYPE after samples, or twice".into()));
                        }
                    }
                    (Some("HELP"), Some(name), _) if !is_name(name, true) || !helped.insert(name.to_string()) => {
                        return Err(at("a bad or repeated HELP".into()));
                    }
                    _ => {}
                }
                continue;
            }
            let (name, rest) = match line.find(['{', ' ']) {
                Some(i) => line.split_at(i),
                None => return Err(at("no value".into())),
            };
            if !is_name(name, true) {
                return Err(at(format!("`{name}` is not a metric name")));
            }
            let mut labels = Vec::new();
            let mut rest = rest;
            if let Some(inner) = rest.strip_prefix('{') {
                let mut chars = inner.char_indices().peekable();
                loop {
                    let start = match chars.peek() {
                        Some(&(_, '}')) => {
                            chars.next();
                            break;
                        }
                        Some(&(i, _)) => i,
                        None => return Err(at("unclosed labels".into())),
                    };
                    let eq = inner[start..].find('=').ok_or_else(|| at("a label without =".into()))? + start;
                    let label = &inner[start..eq];
                    if !is_name(label, false) {
                        return Err(at(format!("`{label}` is not a label name")));
                    }
                    while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                        chars.next();
                    }
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err(at("a label value without quotes".into()));
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '\\')) => match chars.next() {
                                Some((_, '\\')) => value.push('\\'),
                                Some((_, '"')) => value.push('"'),
                                Some((_, 'n')) => value.push('\n'),
                                _ => return Err(at("a bad escape".into())),
                            },
                            Some((_, '"')) => break,
                            Some((_, '\n')) | None => return Err(at("an unterminated label value".into())),
                            Some((_, c)) => value.push(c),
                        }
                    }
                    labels.push((label.to_string(), value));
                    match chars.peek() {
                        Some(&(_, ',')) => {
                            chars.next();
                        }
                        Some(&(_, '}')) => {}
                        _ => return Err(at("labels not separated by commas".into())),
                    }
                }
                let end = chars.peek().map_or(inner.len(), |&(i, _)| i);
                rest = &inner[end..];
            }
            let mut fields = rest.split_whitespace();
            let value = value(fields.next().ok_or_else(|| at("no value".into()))?).map_err(at)?;
            if let Some(timestamp) = fields.next() {
                timestamp.parse::<i64>().map_err(|_| at("a bad timestamp".into()))?;
            }
            if fields.next().is_some() || !rest.starts_with(' ') {
                return Err(at("junk after the value".into()));
            }
            if !typed.contains(name) {
                return Err(at(format!("{name} has no TYPE before its samples")));
            }
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        Ok(samples)
    }

    #[test]
    fn the_checker_refuses_what_the_format_forbids() {
        assert!(parse("# TYPE a gauge\na 1\n").is_ok());
        assert!(parse("# TYPE a gauge\na{b=\"c\\\"d\"} 1 1700000000\n").is_ok());
        assert!(parse("a 1\n").is_err(), "no TYPE");
        assert!(parse("# TYPE a gauge\na{b=c} 1\n").is_err(), "unquoted");
        assert!(parse("# TYPE a gauge\na{b=\"c\"} one\n").is_err(), "not a number");
        assert!(parse("# TYPE a gauge\n# TYPE a gauge\na 1\n").is_err(), "twice");
        assert!(parse("# TYPE 1a gauge\n1a 1\n").is_err(), "a bad name");
        assert!(parse("# TYPE a gauge\na{b=\"c\\x\"} 1\n").is_err(), "a bad escape");
    }
}
