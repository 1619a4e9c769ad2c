//! A small deterministic simulation for the monitor's properties: targets
//! that announce or answer probes, a link that loses and delays, and a
//! driver that follows the monitor's contract — in virtual time, from one
//! seed. Every property names its seed when it fails; `PULSE_SIM_SEED=n`
//! replays one, `PULSE_SOAK=k` runs k times as many.

#![allow(dead_code)]

pub mod peers;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::time::Duration;

use pulse_monitor::{
    AnnounceKey, Announcement, Event, Monitor, Probe, ProbeId, ProbeKind, ProbeOutcome, Progress, TargetId,
};
use pulse_proto::{Instant, ServiceState, Status};

/// `PULSE_SOAK=k` (default 1) multiplies the work of the long properties.
pub fn soak() -> u64 {
    std::env::var("PULSE_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// `0..count × soak()`, or only `PULSE_SIM_SEED`.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("PULSE_SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..count * soak()).collect(),
    }
}

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

pub fn at(s: f64) -> Instant {
    Instant::ZERO + secs(s)
}

/// SplitMix64, for the simulation's own draws (never shared with the
/// monitor's).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005E_ED0F_5EED)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// One direction of a path: independent loss, a base delay, and an
/// optional heavy-tailed (Pareto) extra delay.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    pub loss: f64,
    pub base: Duration,
    /// Pareto scale and shape of the extra delay.
    pub pareto: Option<(Duration, f64)>,
}

impl Link {
    pub const CLEAN: Link = Link {
        loss: 0.0,
        base: Duration::from_millis(1),
        pareto: None,
    };

    /// 5 % loss, and delays of 1 ms plus a Pareto tail (scale 2 ms, shape
    /// 1.5: infinite variance; one datagram in 2,000 is 300 ms late).
    pub fn hostile(loss: f64) -> Link {
        Link {
            loss,
            base: Duration::from_millis(1),
            pareto: Some((Duration::from_millis(2), 1.5)),
        }
    }

    /// The delay of one datagram, or `None` if it is lost.
    pub fn transit(&self, rng: &mut Rng) -> Option<Duration> {
        if rng.chance(self.loss) {
            return None;
        }
        let extra = match self.pareto {
            Some((scale, shape)) => {
                let u = 1.0 - rng.unit();
                // Capped at a minute so virtual time stays finite.
                (scale.as_secs_f64() * u.powf(-1.0 / shape)).min(60.0)
            }
            None => 0.0,
        };
        Some(self.base + secs(extra))
    }
}

/// What a simulated target does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers probes (and announces, if it is an announcer).
    Alive,
    /// Its process is gone: connections are refused, no announcements.
    Killed,
    /// Its process is stopped: nothing answers, no announcements.
    Frozen,
    /// Answers HTTP probes with 503; still announces.
    Unhealthy,
}

#[derive(Debug)]
pub struct SimTarget {
    pub id: TargetId,
    pub behaviour: Behaviour,
    /// For announcers: the service id, its schedule and its counters.
    pub announces: Option<Announcer>,
}

#[derive(Clone, Copy, Debug)]
pub struct Announcer {
    pub service: u64,
    pub interval: Duration,
    pub incarnation: u32,
    pub sequence: u32,
    pub status: Status,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    /// Target `k` sends its next announcement.
    Announce(usize),
    /// An announcement reaches the monitor's socket (encoded there, so the
    /// queue holds no allocation per datagram).
    Deliver(AnnouncementOrd),
    /// A probe's connection has an outcome.
    Outcome(ProbeId, ProbeOutcomeOrd),
    /// An HTTP probe's response arrives.
    Response(ProbeId, u16),
    /// A pulse handshake probe's answer arrives.
    Welcome(ProbeId),
    /// A pulse peer's datagram lands (see `peers`).
    PeerWire(peers::Wire),
    /// A pulse peer's session timer.
    PeerTimer(peers::Timer),
    /// A pulse peer's driver opens a new session.
    PeerReconnect(usize),
}

impl Ev {
    /// Whether it happens outside the monitor's process (so it goes on
    /// while the monitor is stalled).
    fn is_world(&self) -> bool {
        match self {
            Ev::Announce(_) => true,
            Ev::PeerWire(w) => w.to_server,
            Ev::PeerTimer(t) => t.server,
            _ => false,
        }
    }
}

/// `Announcement` with an order, for the queue (never compared: the
/// queue's keys are unique).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnouncementOrd(pub Announcement);

impl PartialOrd for AnnouncementOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AnnouncementOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0.service, self.0.incarnation, self.0.sequence).cmp(&(
            other.0.service,
            other.0.incarnation,
            other.0.sequence,
        ))
    }
}

/// `ProbeOutcome` with an order, for the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeOutcomeOrd {
    Connected,
    Refused,
}

/// The simulation: a monitor, its targets, the network, a queue of what
/// happens next, and every event the monitor emitted.
pub struct Sim {
    pub now: Instant,
    pub monitor: Monitor,
    pub targets: Vec<SimTarget>,
    pub link: Link,
    pub rng: Rng,
    pub key: Option<AnnounceKey>,
    queue: BinaryHeap<Reverse<(Instant, u64, Ev)>>,
    order: u64,
    aborted: HashSet<ProbeId>,
    /// The monitor is stalled until then: nothing reaches it.
    stalled_until: Instant,
    /// What reached the monitor's sockets while it was stalled.
    held: Vec<Ev>,
    /// Whether datagrams that arrive during a stall are lost (the socket's
    /// buffer overflowed) rather than read at its end.
    pub drop_during_stall: bool,
    pub events: Vec<(Instant, Event)>,
    pub announcements_sent: u64,
    pub keep_events: bool,
    /// When the monitor last took an announcement from each target.
    pub heard: Vec<Instant>,
    /// Simulated target by monitor index.
    by_index: Vec<Option<usize>>,
    /// The pulse sessions of the targets that are pulse peers.
    pub peers: peers::Peers,
    /// A pool whose healthy set is counted after every call into the
    /// monitor, and the smallest count seen since it was set.
    pub watch: Option<(pulse_monitor::PoolId, usize)>,
}

impl Sim {
    pub fn new(monitor: Monitor, link: Link, seed: u64) -> Sim {
        Sim {
            now: Instant::ZERO,
            monitor,
            targets: Vec::new(),
            link,
            rng: Rng::new(seed),
            key: None,
            queue: BinaryHeap::new(),
            order: 0,
            aborted: HashSet::new(),
            stalled_until: Instant::ZERO,
            held: Vec::new(),
            drop_during_stall: false,
            events: Vec::new(),
            announcements_sent: 0,
            keep_events: true,
            heard: Vec::new(),
            by_index: Vec::new(),
            peers: peers::Peers::default(),
            watch: None,
        }
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, ev)));
    }

    fn map(&mut self, id: TargetId) {
        if self.by_index.len() <= id.index() {
            self.by_index.resize(id.index() + 1, None);
        }
        self.by_index[id.index()] = Some(self.targets.len());
        self.heard.push(self.now);
    }

    /// Adds a probed target (its spec built by the caller).
    pub fn add_probed(&mut self, id: TargetId) -> usize {
        self.map(id);
        self.targets.push(SimTarget {
            id,
            behaviour: Behaviour::Alive,
            announces: None,
        });
        self.targets.len() - 1
    }

    /// Adds a target that announces every `interval`, starting at a random
    /// phase of it.
    pub fn add_announcer(&mut self, id: TargetId, service: u64, interval: Duration) -> usize {
        let k = self.targets.len();
        self.map(id);
        self.targets.push(SimTarget {
            id,
            behaviour: Behaviour::Alive,
            announces: Some(Announcer {
                service,
                interval,
                incarnation: 1,
                sequence: 0,
                status: Status::new(ServiceState::Serving, 100),
            }),
        });
        let phase = interval.mul_f64(self.rng.unit());
        self.push(self.now + phase, Ev::Announce(k));
        k
    }

    /// `n` targets in `pool`: even ones checked with `check`, odd ones
    /// announcing every second as service `k`.
    pub fn add_mixed_pool(&mut self, pool: pulse_monitor::PoolId, check: pulse_monitor::CheckId, n: u64) {
        for k in 0..n {
            let spec = if k % 2 == 0 {
                pulse_monitor::TargetSpec::checked(pool, check)
            } else {
                pulse_monitor::TargetSpec::announced(pool, k)
            };
            let id = self.monitor.add_target(self.now, spec).unwrap();
            if k % 2 == 0 {
                self.add_probed(id);
            } else {
                self.add_announcer(id, k, Duration::from_secs(1));
            }
        }
    }

    pub fn set(&mut self, k: usize, behaviour: Behaviour) {
        self.targets[k].behaviour = behaviour;
    }

    /// Restarts target `k`: alive again, and an announcer starts a new
    /// incarnation.
    pub fn restart(&mut self, k: usize) {
        self.targets[k].behaviour = Behaviour::Alive;
        if let Some(a) = &mut self.targets[k].announces {
            a.incarnation += 1;
            a.sequence = 0;
        }
    }

    /// The monitor's process stops for `d` from now: timers and sockets
    /// wait, and everything queued meanwhile arrives at once after.
    pub fn stall(&mut self, d: Duration) {
        self.stalled_until = self.now + d;
    }

    /// Runs until `until`, a bounded number of steps.
    pub fn run_until(&mut self, until: Instant) {
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 100_000_000, "simulation did not make progress");
            let next_ev = self.queue.peek().map(|Reverse((t, _, _))| *t);
            // While the monitor is stalled the world goes on: services send,
            // datagrams and connections wait in its sockets.
            if let Some(t) = next_ev.filter(|&t| t < self.stalled_until && t <= until) {
                let Reverse((_, _, ev)) = self.queue.pop().unwrap();
                self.now = self.now.max(t);
                match ev {
                    ev if ev.is_world() => self.handle(ev),
                    Ev::Deliver(_) if self.drop_during_stall => {}
                    ev => self.held.push(ev),
                }
                continue;
            }
            let deadline = self.monitor.poll_timeout();
            let waiting = (!self.held.is_empty()).then_some(self.stalled_until);
            let Some(mut t) = [next_ev, deadline, waiting].into_iter().flatten().min() else {
                self.now = until;
                return;
            };
            t = t.max(self.stalled_until).max(self.now);
            if t > until {
                self.now = until;
                return;
            }
            self.now = t;
            // The driver reads its sockets before its timers.
            for ev in std::mem::take(&mut self.held) {
                self.handle(ev);
            }
            while let Some(Reverse((when, _, _))) = self.queue.peek() {
                if *when > self.now {
                    break;
                }
                let Reverse((_, _, ev)) = self.queue.pop().unwrap();
                self.handle(ev);
            }
            if self.monitor.poll_timeout().is_some_and(|d| d <= self.now) {
                self.monitor.handle_timeout(self.now);
                self.drain();
            }
        }
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Announce(k) => {
                let target = &mut self.targets[k];
                let Some(a) = &mut target.announces else { return };
                let interval = a.interval;
                if matches!(target.behaviour, Behaviour::Alive | Behaviour::Unhealthy) {
                    a.sequence += 1;
                    let announcement = Announcement {
                        service: a.service,
                        incarnation: a.incarnation,
                        sequence: a.sequence,
                        interval: a.interval,
                        report: pulse_monitor::Report::Running(a.status),
                    };
                    self.announcements_sent += 1;
                    if let Some(delay) = self.link.transit(&mut self.rng) {
                        self.push(self.now + delay, Ev::Deliver(AnnouncementOrd(announcement)));
                    }
                }
                self.push(self.now + interval, Ev::Announce(k));
            }
            Ev::Deliver(AnnouncementOrd(announcement)) => {
                let datagram = announcement.encode(self.key.as_ref());
                if let Ok(id) = self.monitor.handle_announcement(self.now, &datagram) {
                    if let Some(Some(k)) = self.by_index.get(id.index()).copied() {
                        self.heard[k] = self.now;
                    }
                }
                self.drain();
            }
            Ev::Outcome(id, outcome) => {
                if self.aborted.remove(&id) {
                    return;
                }
                let outcome = match outcome {
                    ProbeOutcomeOrd::Connected => ProbeOutcome::Connected,
                    ProbeOutcomeOrd::Refused => ProbeOutcome::Refused,
                };
                self.monitor.handle_probe_result(self.now, id, outcome);
                self.drain();
            }
            Ev::Welcome(id) => {
                if self.aborted.remove(&id) {
                    return;
                }
                let answer = peers::welcome();
                let progress = self.monitor.handle_response(self.now, id, &answer);
                assert_eq!(progress, Progress::Done);
                self.drain();
            }
            Ev::PeerWire(wire) => self.peer_wire(wire),
            Ev::PeerTimer(timer) => self.peer_timer(timer),
            Ev::PeerReconnect(p) => self.peer_reconnect(p),
            Ev::Response(id, code) => {
                if self.aborted.remove(&id) {
                    return;
                }
                let response = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                let progress = self.monitor.handle_http_response(self.now, id, response.as_bytes());
                assert_eq!(progress, Progress::Done);
                self.drain();
            }
        }
    }

    /// What a driver does after every call: start and abort probes, take
    /// the events.
    pub(crate) fn drain(&mut self) {
        let mut starts = Vec::new();
        while let Some(probe) = self.monitor.poll_probe() {
            match probe {
                Probe::Start { id, kind, .. } => starts.push((id, Asks::of(kind))),
                Probe::Abort(id) => {
                    self.aborted.insert(id);
                }
            }
        }
        for (id, asks) in starts {
            self.start_probe(id, asks);
        }
        while let Some(event) = self.monitor.poll_event() {
            if self.keep_events {
                self.events.push((self.now, event));
            }
        }
        if let Some((pool, smallest)) = &mut self.watch {
            *smallest = (*smallest).min(self.monitor.healthy(*pool).count());
        }
    }

    /// A connection attempt: the SYN and the answer each cross the link (a
    /// lost one would be retransmitted after 1 s, past any timeout here).
    fn start_probe(&mut self, id: ProbeId, asks: Asks) {
        let Some(Some(k)) = self.by_index.get(id.target().index()).copied() else {
            return;
        };
        let behaviour = self.targets[k].behaviour;
        let there = self.link.transit(&mut self.rng);
        let back = self.link.transit(&mut self.rng);
        let (Some(there), Some(back)) = (there, back) else {
            return;
        };
        let rtt = there + back;
        match behaviour {
            // A stopped process's kernel still completes the handshake;
            // only its HELLO goes unanswered.
            Behaviour::Frozen if asks == Asks::Pulse => {
                self.push(self.now + rtt, Ev::Outcome(id, ProbeOutcomeOrd::Connected));
            }
            Behaviour::Frozen => {}
            Behaviour::Killed => self.push(self.now + rtt, Ev::Outcome(id, ProbeOutcomeOrd::Refused)),
            Behaviour::Alive | Behaviour::Unhealthy => {
                self.push(self.now + rtt, Ev::Outcome(id, ProbeOutcomeOrd::Connected));
                match asks {
                    Asks::Nothing => {}
                    Asks::Http => {
                        let code = if behaviour == Behaviour::Alive { 200 } else { 503 };
                        self.push(self.now + rtt * 2, Ev::Response(id, code));
                    }
                    Asks::Pulse => self.push(self.now + rtt * 2, Ev::Welcome(id)),
                }
            }
        }
    }

    /// The first transition of `target` into `to` at or after `from`.
    pub fn first_transition(&self, target: TargetId, to: pulse_monitor::Health, from: Instant) -> Option<Instant> {
        self.events.iter().find_map(|(t, e)| match e {
            Event::Transition(tr) if tr.target == target && tr.to == to && *t >= from => Some(*t),
            _ => None,
        })
    }
}

/// What a probe sends once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asks {
    Nothing,
    Http,
    Pulse,
}

impl Asks {
    fn of(kind: ProbeKind<'_>) -> Asks {
        match kind {
            ProbeKind::Http { .. } => Asks::Http,
            ProbeKind::Pulse { .. } => Asks::Pulse,
            _ => Asks::Nothing,
        }
    }
}

/// The `q`-quantile of `samples` (sorted in place).
pub fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
    samples[at]
}
