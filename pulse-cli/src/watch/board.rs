//! What `pulse watch` shows, shared between the monitor's thread (which
//! writes it) and the terminal, `/status.json`, `/metrics` and the
//! console (which read it). Only copies of the monitor's snapshots and
//! events: nothing here decides.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use event_listener::Event as Notify;
use pulse_monitor::{CheckResult, Health, PeerSignal, Reason, Snapshot, Transition};
use serde::Serialize;

/// RTT samples kept per target for the console's chart (one per refresh).
pub const HISTORY: usize = 60;
/// Transitions kept for the log.
pub const LOG: usize = 100;

/// The board and a notice for whoever waits on its changes.
pub struct Board {
    state: Mutex<State>,
    /// Notified at every refresh (so about once a second, and at once on
    /// a transition).
    pub changed: Notify,
}

impl Board {
    pub fn new(state: State) -> Board {
        Board {
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the board, counts a new generation and tells the readers.
    pub fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.lock();
        change(&mut state);
        state.generation += 1;
        drop(state);
        self.changed.notify(usize::MAX);
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct State {
    pub generation: u64,
    /// Unix time in milliseconds of this refresh.
    pub now_ms: u64,
    pub started_ms: u64,
    pub pools: Vec<PoolView>,
    pub targets: Vec<TargetView>,
    /// Newest last.
    pub transitions: VecDeque<LogLine>,
    pub monitor: MonitorHealth,
    /// Transitions counted by target, reason and new state.
    #[serde(skip)]
    pub counted: BTreeMap<(usize, &'static str, &'static str), u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolView {
    pub name: String,
    pub members: u32,
    pub up: u32,
    pub down: u32,
    pub panic: Option<String>,
    /// Healthy targets with their weights, as a load balancer reads them.
    pub healthy: Vec<(String, u32)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetView {
    pub name: String,
    pub pool: String,
    pub kind: &'static str,
    pub address: String,
    pub state: String,
    pub in_state_ms: u64,
    pub rtt_ms: Option<f64>,
    pub rtt_history: VecDeque<Option<f64>>,
    pub suspicion: f32,
    pub penalty: f32,
    pub suppressed: bool,
    pub status: String,
    pub weight: u8,
    pub last_result: Option<String>,
    pub silent_ms: u64,
    pub transitions: u64,
    /// Set while its last announcement said it stopped: how it ended.
    pub stopped: Option<String>,
    /// The exit status of a stopped target (as a shell reports it).
    pub exit_status: Option<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub at_ms: u64,
    pub target: String,
    pub pool: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    pub kind: &'static str,
    /// For a target that stopped: its exit status and, if a signal ended
    /// it, the signal.
    pub exit_status: Option<i32>,
    pub exit_signal: Option<u8>,
}

/// The monitor's own health, for `/metrics` and the console's footer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MonitorHealth {
    /// 0 when the monitor's process keeps time; higher after stalls.
    pub local_score: u8,
    pub announcements: u64,
    pub announcements_refused: BTreeMap<&'static str, u64>,
    pub probes: u64,
    pub probe_timeouts: u64,
    pub stalls: u64,
    pub datagrams: u64,
    pub probes_deferred: u64,
    pub peer_connects: u64,
}

impl TargetView {
    pub fn new(name: String, pool: String, kind: &'static str, address: String) -> TargetView {
        TargetView {
            name,
            pool,
            kind,
            address,
            state: Health::Unknown.to_string(),
            in_state_ms: 0,
            rtt_ms: None,
            rtt_history: VecDeque::with_capacity(HISTORY),
            suspicion: 0.0,
            penalty: 0.0,
            suppressed: false,
            status: String::new(),
            weight: 0,
            last_result: None,
            silent_ms: 0,
            transitions: 0,
            stopped: None,
            exit_status: None,
        }
    }

    /// Copies a monitor snapshot; with `sample`, the RTT goes into the
    /// chart's history too.
    pub fn refresh(&mut self, snapshot: &Snapshot, sample: bool) {
        self.state = snapshot.health.to_string();
        self.in_state_ms = millis(snapshot.in_state_for);
        self.rtt_ms = snapshot.rtt.map(|r| r.as_secs_f64() * 1000.0);
        self.suspicion = snapshot.suspicion;
        self.penalty = snapshot.penalty;
        self.suppressed = snapshot.suppressed;
        self.status = snapshot.status.state().to_string();
        self.weight = snapshot.status.weight();
        self.last_result = snapshot.last_result.map(result_text);
        self.silent_ms = millis(snapshot.silent_for);
        if sample {
            if self.rtt_history.len() == HISTORY {
                self.rtt_history.pop_front();
            }
            let alive = snapshot.health.is_alive();
            self.rtt_history.push_back(self.rtt_ms.filter(|_| alive));
        }
    }
}

pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

/// A check's result in words.
pub fn result_text(result: CheckResult) -> String {
    match result {
        CheckResult::Passed(Some(code)) => format!("passed ({code})"),
        CheckResult::Passed(None) => "passed".into(),
        CheckResult::UnexpectedStatus(code) => format!("status {code}"),
        CheckResult::Refused => "refused".into(),
        CheckResult::Reset => "reset".into(),
        CheckResult::Unreachable => "unreachable".into(),
        CheckResult::Closed => "closed early".into(),
        CheckResult::TimedOut => "timed out".into(),
        CheckResult::BadResponse => "bad response".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// A reason's kind: the `reason` label of the transitions counter.
pub fn reason_kind(reason: &Reason) -> &'static str {
    match reason {
        Reason::Checks { .. } => "checks",
        Reason::Announced => "announced",
        Reason::Suspicion { .. } => "suspicion",
        Reason::Confirmed { .. } => "confirmed",
        Reason::Peer(_) => "peer",
        Reason::Stopped(_) => "stopped",
        Reason::NotReconnected => "not_reconnected",
        _ => "other",
    }
}

/// A reason in words, for the log.
pub fn reason_text(reason: &Reason) -> String {
    match reason {
        Reason::Checks { count, last } => format!("{count} checks in a row: {}", result_text(*last)),
        Reason::Announced => "announced itself".into(),
        Reason::Suspicion { level } => format!("silent: suspicion φ {level:.1}"),
        Reason::Confirmed { level, failed, last } => {
            format!(
                "φ {level:.1} confirmed by {failed} failed probes ({})",
                result_text(*last)
            )
        }
        Reason::Peer(signal) => match signal {
            PeerSignal::Connected => "pulse session connected".into(),
            PeerSignal::Alive => "heartbeat answered".into(),
            PeerSignal::Suspect => "heartbeats unanswered, probing".into(),
            PeerSignal::Recovered => "heartbeats answered again".into(),
            PeerSignal::Dead => "pulse dead-peer verdict".into(),
            PeerSignal::Closed(code) => format!("pulse session closed: {code}"),
        },
        Reason::Stopped(exit) => format!("stopped: {exit}"),
        Reason::NotReconnected => "pulse session lost across our own stall, and none came back within the grace".into(),
        other => format!("{other:?}"),
    }
}

impl State {
    pub fn new(targets: Vec<TargetView>) -> State {
        let now = unix_ms();
        State {
            generation: 0,
            now_ms: now,
            started_ms: now,
            pools: Vec::new(),
            targets,
            transitions: VecDeque::with_capacity(LOG),
            monitor: MonitorHealth::default(),
            counted: BTreeMap::new(),
        }
    }

    /// Logs and counts a transition of target number `index`.
    pub fn record(&mut self, index: usize, transition: &Transition) -> LogLine {
        let kind = reason_kind(&transition.reason);
        let target = &mut self.targets[index];
        target.transitions += 1;
        target.state = transition.to.to_string();
        target.in_state_ms = 0;
        let exit = match transition.reason {
            Reason::Stopped(exit) => Some(exit),
            _ => None,
        };
        if let Some(exit) = exit {
            target.stopped = Some(exit.to_string());
            target.exit_status = Some(exit.status);
        } else if transition.to.is_alive() {
            target.stopped = None;
            target.exit_status = None;
        }
        let line = LogLine {
            at_ms: unix_ms(),
            target: target.name.clone(),
            pool: target.pool.clone(),
            from: transition.from.to_string(),
            to: transition.to.to_string(),
            reason: reason_text(&transition.reason),
            kind,
            exit_status: exit.map(|e| e.status),
            exit_signal: exit.map(|e| e.signal).filter(|&s| s != 0),
        };
        *self
            .counted
            .entry((index, kind, health_name(transition.to)))
            .or_default() += 1;
        if self.transitions.len() == LOG {
            self.transitions.pop_front();
        }
        self.transitions.push_back(line.clone());
        line
    }
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Unknown => "unknown",
        Health::Up => "up",
        Health::Suspect => "suspect",
        Health::Down => "down",
    }
}
