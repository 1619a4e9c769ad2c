//! `/metrics`: the board in Prometheus's text exposition format (0.0.4).

use std::fmt::Write;

use super::board::State;

/// The content type Prometheus asks for.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(state: &State) -> String {
    let mut out = String::new();
    let target_labels = |t: &super::board::TargetView| {
        format!(
            "target=\"{}\",pool=\"{}\",kind=\"{}\"",
            escape(&t.name),
            escape(&t.pool),
            t.kind
        )
    };
    family(
        &mut out,
        "pulse_target_up",
        "gauge",
        "1 if the monitor judges the target alive (up or suspect), else 0.",
    );
    for t in &state.targets {
        let up = u8::from(t.state == "up" || t.state == "suspect");
        let _ = writeln!(out, "pulse_target_up{{{}}} {up}", target_labels(t));
    }
    family(
        &mut out,
        "pulse_target_state",
        "gauge",
        "1 for the state the target is in (unknown, up, suspect, down).",
    );
    for t in &state.targets {
        for s in ["unknown", "up", "suspect", "down"] {
            let _ = writeln!(
                out,
                "pulse_target_state{{{},state=\"{s}\"}} {}",
                target_labels(t),
                u8::from(t.state == s)
            );
        }
    }
    family(
        &mut out,
        "pulse_target_rtt_seconds",
        "gauge",
        "The latest round trip: a check's connect or response time, or a pulse peer's RTT.",
    );
    for t in &state.targets {
        if let Some(rtt) = t.rtt_ms {
            let _ = writeln!(out, "pulse_target_rtt_seconds{{{}}} {}", target_labels(t), rtt / 1000.0);
        }
    }
    family(
        &mut out,
        "pulse_target_suspicion",
        "gauge",
        "The suspicion level (phi) of a target that announces; 0 for others.",
    );
    for t in &state.targets {
        let _ = writeln!(
            out,
            "pulse_target_suspicion{{{}}} {}",
            target_labels(t),
            number(t.suspicion)
        );
    }
    family(
        &mut out,
        "pulse_target_flap_penalty",
        "gauge",
        "The flap-damping penalty.",
    );
    for t in &state.targets {
        let _ = writeln!(
            out,
            "pulse_target_flap_penalty{{{}}} {}",
            target_labels(t),
            number(t.penalty)
        );
    }
    family(
        &mut out,
        "pulse_target_exit_status",
        "gauge",
        "For a target whose last announcement said it stopped: its exit status (128 + signal when killed).",
    );
    for t in &state.targets {
        if let Some(status) = t.exit_status {
            let _ = writeln!(out, "pulse_target_exit_status{{{}}} {status}", target_labels(t));
        }
    }
    family(
        &mut out,
        "pulse_target_state_seconds",
        "gauge",
        "Time the target has been in its state.",
    );
    for t in &state.targets {
        let _ = writeln!(
            out,
            "pulse_target_state_seconds{{{}}} {}",
            target_labels(t),
            t.in_state_ms as f64 / 1000.0
        );
    }
    family(
        &mut out,
        "pulse_transitions_total",
        "counter",
        "Transitions by target, reason and the state entered.",
    );
    for ((index, reason, to), count) in &state.counted {
        let t = &state.targets[*index];
        let _ = writeln!(
            out,
            "pulse_transitions_total{{{},reason=\"{reason}\",to=\"{to}\"}} {count}",
            target_labels(t)
        );
    }
    family(&mut out, "pulse_pool_members", "gauge", "Targets in the pool.");
    for p in &state.pools {
        let _ = writeln!(out, "pulse_pool_members{{pool=\"{}\"}} {}", escape(&p.name), p.members);
    }
    family(
        &mut out,
        "pulse_pool_healthy",
        "gauge",
        "Targets a load balancer may use now (the healthy set).",
    );
    for p in &state.pools {
        let _ = writeln!(
            out,
            "pulse_pool_healthy{{pool=\"{}\"}} {}",
            escape(&p.name),
            p.healthy.len()
        );
    }
    family(
        &mut out,
        "pulse_pool_panic",
        "gauge",
        "1 while the pool panics (keeps every member rather than empty).",
    );
    for p in &state.pools {
        let _ = writeln!(
            out,
            "pulse_pool_panic{{pool=\"{}\"}} {}",
            escape(&p.name),
            u8::from(p.panic.is_some())
        );
    }
    let m = &state.monitor;
    family(
        &mut out,
        "pulse_monitor_local_score",
        "gauge",
        "The monitor's own health: 0 keeps time; higher after stalls of its own process.",
    );
    let _ = writeln!(out, "pulse_monitor_local_score {}", m.local_score);
    family(
        &mut out,
        "pulse_monitor_announcements_total",
        "counter",
        "Announcements accepted.",
    );
    let _ = writeln!(out, "pulse_monitor_announcements_total {}", m.announcements);
    family(
        &mut out,
        "pulse_monitor_announcements_refused_total",
        "counter",
        "Datagrams refused, by reason.",
    );
    for (reason, count) in &m.announcements_refused {
        let _ = writeln!(
            out,
            "pulse_monitor_announcements_refused_total{{reason=\"{reason}\"}} {count}"
        );
    }
    family(&mut out, "pulse_monitor_probes_total", "counter", "Probes started.");
    let _ = writeln!(out, "pulse_monitor_probes_total {}", m.probes);
    family(
        &mut out,
        "pulse_monitor_probe_timeouts_total",
        "counter",
        "Probes that timed out.",
    );
    let _ = writeln!(out, "pulse_monitor_probe_timeouts_total {}", m.probe_timeouts);
    family(
        &mut out,
        "pulse_monitor_probes_deferred_total",
        "counter",
        "Probes that waited for a free descriptor.",
    );
    let _ = writeln!(out, "pulse_monitor_probes_deferred_total {}", m.probes_deferred);
    family(
        &mut out,
        "pulse_monitor_stalls_total",
        "counter",
        "Stalls of the monitor's own process it noticed.",
    );
    let _ = writeln!(out, "pulse_monitor_stalls_total {}", m.stalls);
    family(
        &mut out,
        "pulse_monitor_peer_connects_total",
        "counter",
        "Connections opened to pulse peers.",
    );
    let _ = writeln!(out, "pulse_monitor_peer_connects_total {}", m.peer_connects);
    family(
        &mut out,
        "pulse_monitor_uptime_seconds",
        "gauge",
        "Time since the monitor started.",
    );
    let _ = writeln!(
        out,
        "pulse_monitor_uptime_seconds {}",
        state.now_ms.saturating_sub(state.started_ms) as f64 / 1000.0
    );
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Prometheus spells the non-finite values its own way.
fn number(value: f32) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}
