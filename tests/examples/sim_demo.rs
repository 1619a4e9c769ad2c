//! The main job of pulse, shown without sockets: two sessions over an
//! in-memory link in virtual time. Prints the handshake, the heartbeats and
//! RTT, then freezes the server and prints the dead-peer verdict with its
//! timing.
//!
//! Run: `cargo run --example sim_demo`

use std::time::Duration;

use pulse_proto::frame::Frame;
use pulse_proto::{Event, Instant, Transport};
use pulse_tests::{config, Pair};

const LATENCY: Duration = Duration::from_millis(20);
const INTERVAL_MS: u64 = 1_000;
const DEAD_MS: u64 = 3_000;

fn secs(t: Instant) -> String {
    format!("{:>8.3} s", t.as_nanos() as f64 / 1e9)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn describe_frame(frame: &Frame) -> String {
    match frame {
        Frame::Hello(h) => format!(
            "HELLO     versions {}..={}, asks interval {} ms, dead-peer timeout {} ms",
            h.version_min, h.version_max, h.interval_ms, h.dead_timeout_ms
        ),
        Frame::Welcome(w) => format!(
            "WELCOME   version {}, agrees interval {} ms, timeout {} ms; ping policy: >= {} ms apart, {} strikes",
            w.version, w.interval_ms, w.dead_timeout_ms, w.min_ping_spacing_ms, w.ping_strikes
        ),
        Frame::Ping { id } => format!("PING #{id}"),
        Frame::Pong { id, hold_us } => format!("PONG #{id} (held {hold_us} µs)"),
        Frame::Data { tag, payload } => format!("DATA tag {tag}, {} bytes", payload.len()),
        Frame::Close { code, reason } => format!("CLOSE {code}: {reason}"),
        Frame::Retry { attempt, .. } => format!("RETRY answering HELLO #{attempt}"),
        Frame::Status(status) => format!("STATUS {status}"),
        Frame::Extension { frame_type } => format!("extension 0x{frame_type:02x}"),
        other => format!("frame 0x{:02x}", other.frame_type()),
    }
}

fn describe_event(event: &Event) -> Option<String> {
    Some(match event {
        Event::Connected(n) => format!(
            "connected: interval {:?}, dead-peer timeout {:?}",
            n.interval(),
            n.dead_timeout()
        ),
        Event::Rtt(s) => format!("RTT {} (smoothed {})", ms(s.rtt), ms(s.smoothed)),
        Event::Suspect { silent_for } => format!("SUSPECT: silent for {}, probing faster", ms(*silent_for)),
        Event::Recovered { silent_for } => format!("recovered after {}", ms(*silent_for)),
        Event::PeerDead { silent_for } => format!("PEER DEAD: nothing heard for {}", ms(*silent_for)),
        Event::Closed(c) => format!("closed: {} ({:?} initiated) {}", c.code, c.initiator, c.reason),
        Event::Message { tag, payload } => format!("message tag {tag}: {:?}", String::from_utf8_lossy(payload)),
        _ => return None,
    })
}

fn main() {
    let mut pair = Pair::with_config(config(Transport::Stream, INTERVAL_MS, DEAD_MS), LATENCY, 7);
    pair.observe();
    println!(
        "pulse demo: a client and a server over an in-memory link, {} each way, in virtual time",
        ms(LATENCY)
    );
    println!("(every line below is computed by pulse-proto; nothing sleeps)\n");

    pair.connect(Duration::from_secs(1));
    pair.send(pulse_tests::Side::Client, 1, &b"hello from the client"[..])
        .unwrap();
    pair.run_for(Duration::from_secs(6));
    let frozen_at = pair.now;
    pair.server.process.frozen = true;
    let until = pair.now + Duration::from_secs(10);
    pair.run_while(until, |p| !p.client.session.is_closed());

    let mut lines: Vec<(Instant, String)> = Vec::new();
    for (who, end) in [("client", &pair.client), ("server", &pair.server)] {
        for (t, event) in &end.events {
            if let Some(text) = describe_event(event) {
                lines.push((*t, format!("{who}:            {text}")));
            }
        }
    }
    for (t, frame) in &pair.to_server.frames {
        lines.push((*t, format!("client -> server  {}", describe_frame(frame))));
    }
    for (t, frame) in &pair.to_client.frames {
        lines.push((*t, format!("server -> client  {}", describe_frame(frame))));
    }
    lines.insert(
        0,
        (
            frozen_at,
            "---- the server's process freezes: it stops reading, writing and running timers ----".into(),
        ),
    );
    lines.sort_by_key(|(t, _)| *t);
    for (t, line) in &lines {
        println!("{}  {line}", secs(*t));
    }

    let dead = pair.client.events_where(|e| matches!(e, Event::PeerDead { .. }));
    let last_heard = pair.client.last_input_at.expect("the client heard the server");
    let (verdict_at, _) = dead.first().expect("the client declared the server dead");
    let idle_pings = pair
        .to_server
        .frames
        .iter()
        .filter(|(t, f)| *t < frozen_at && matches!(f, Frame::Ping { .. }))
        .count();
    println!();
    println!(
        "heartbeats while connected: {idle_pings} PINGs in {:.1} s, 16 bytes of framing per round trip",
        (frozen_at - Instant::ZERO).as_secs_f64()
    );
    println!(
        "verdict: {} after the last frame from the server (dead-peer timeout {} ms; the bound is [timeout, timeout + 1 ms])",
        ms(*verdict_at - last_heard),
        DEAD_MS
    );
}
