//! Pulse peers in the simulation: for each, a real pulse-proto client
//! session in the monitor's process and a server session at the target,
//! over datagrams that cross the simulation's link (its loss and Pareto
//! delays). The client's events go to the monitor as a driver forwards
//! them; a session that ends is replaced by a new one 100 ms later, as a
//! reconnecting driver would.

use std::sync::Arc;
use std::time::Duration;

use pulse_monitor::TargetId;
use pulse_proto::{Config, Event, Instant, Role, Session, Transport};

use super::{Behaviour, Ev, Sim, SimTarget};

/// How long a driver waits before opening a new session.
const RECONNECT: Duration = Duration::from_millis(100);

/// A datagram on its way.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wire {
    peer: usize,
    generation: u32,
    pub(super) to_server: bool,
    bytes: Vec<u8>,
}

/// A session timer, due when the session's deadline still says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    at: Instant,
    peer: usize,
    generation: u32,
    pub(super) server: bool,
}

struct Pair {
    /// The simulated target.
    k: usize,
    generation: u32,
    client: Session,
    server: Session,
    /// The deadline each side's queued timer is for.
    armed: [Option<Instant>; 2],
}

/// Every pulse peer's sessions, and what they did.
#[derive(Default)]
pub struct Peers {
    pairs: Vec<Pair>,
    config: Option<Arc<Config>>,
    /// Sessions that connected, and that ended.
    pub connected: u64,
    pub ended: u64,
    /// The monitor-side sessions' dead-peer verdicts.
    pub dead_verdicts: u64,
}

/// Datagram sessions with a 1 s interval and a 3 s dead timeout.
pub fn config() -> Arc<Config> {
    Arc::new(Config::new(Transport::Datagram).with_timing(Duration::from_secs(1), Duration::from_secs(3)))
}

/// What a live pulse server answers a handshake probe's HELLO with.
pub fn welcome() -> Vec<u8> {
    let now = Instant::ZERO;
    let hello = pulse_monitor::PulseCheck::new();
    let mut server = Session::new(Config::new(Transport::Stream), Role::Server, now, 1).unwrap();
    server.handle_input(now, hello.request());
    let mut answer = Vec::new();
    while let Some(bytes) = server.poll_transmit(now) {
        let n = bytes.len();
        answer.extend_from_slice(bytes);
        server.advance_transmit(n);
    }
    answer
}

/// A `Connected` event, from a real handshake at `now` (any will do for
/// a test that feeds the monitor by hand).
pub fn connected(now: Instant) -> Event {
    let mut client = Session::new(config(), Role::Client, now, 1).unwrap();
    let mut server = Session::new(config(), Role::Server, now, 2).unwrap();
    for _ in 0..4 {
        while let Some(b) = client.poll_transmit(now) {
            let b = b.to_vec();
            client.advance_transmit(b.len());
            server.handle_datagram(now, &b[..]);
        }
        while let Some(b) = server.poll_transmit(now) {
            let b = b.to_vec();
            server.advance_transmit(b.len());
            client.handle_datagram(now, &b[..]);
        }
    }
    std::iter::from_fn(|| client.poll_event())
        .find(|e| matches!(e, Event::Connected(_)))
        .expect("a handshake connects")
}

impl Sim {
    /// Adds a pulse peer (its spec built by the caller): a session to it
    /// opens now.
    pub fn add_peer(&mut self, id: TargetId) -> usize {
        self.map(id);
        let k = self.targets.len();
        self.targets.push(SimTarget {
            id,
            behaviour: Behaviour::Alive,
            announces: None,
        });
        let (client, server) = self.new_sessions();
        let p = self.peers.pairs.len();
        self.peers.pairs.push(Pair {
            k,
            generation: 0,
            client,
            server,
            armed: [None, None],
        });
        self.peer_flush(p);
        k
    }

    /// A client session and the server session it will reach.
    fn new_sessions(&mut self) -> (Session, Session) {
        let config = self.peers.config.get_or_insert_with(config).clone();
        let seed = self.rng.next_u64();
        (
            Session::new(config.clone(), Role::Client, self.now, seed).unwrap(),
            Session::new(config, Role::Server, self.now, seed ^ 1).unwrap(),
        )
    }

    pub(super) fn peer_reconnect(&mut self, p: usize) {
        let (client, server) = self.new_sessions();
        let pair = &mut self.peers.pairs[p];
        pair.generation += 1;
        pair.client = client;
        pair.server = server;
        pair.armed = [None, None];
        self.peer_flush(p);
    }

    /// Whether the target's process runs (its session answers).
    fn peer_runs(&self, p: usize) -> bool {
        self.targets[self.peers.pairs[p].k].behaviour == Behaviour::Alive
    }

    pub(super) fn peer_wire(&mut self, wire: Wire) {
        let p = wire.peer;
        if self.peers.pairs[p].generation != wire.generation || (wire.to_server && !self.peer_runs(p)) {
            return;
        }
        let now = self.now;
        let pair = &mut self.peers.pairs[p];
        let session = if wire.to_server {
            &mut pair.server
        } else {
            &mut pair.client
        };
        session.handle_datagram(now, &wire.bytes[..]);
        self.peer_flush(p);
    }

    pub(super) fn peer_timer(&mut self, timer: Timer) {
        let p = timer.peer;
        let side = usize::from(timer.server);
        let pair = &mut self.peers.pairs[p];
        if pair.generation != timer.generation || pair.armed[side] != Some(timer.at) {
            return; // superseded by a timer armed since
        }
        pair.armed[side] = None;
        if timer.server && !self.peer_runs(p) {
            return; // its process no longer runs
        }
        let now = self.now;
        let pair = &mut self.peers.pairs[p];
        let session = if timer.server {
            &mut pair.server
        } else {
            &mut pair.client
        };
        session.handle_timeout(now);
        self.peer_flush(p);
    }

    /// After any call into a pair: send what both sides have, hand the
    /// client's events to the monitor, and arm both sides' timers.
    fn peer_flush(&mut self, p: usize) {
        let now = self.now;
        let runs = self.peer_runs(p);
        let generation = self.peers.pairs[p].generation;
        for server in [false, true] {
            if server && !runs {
                continue;
            }
            for _ in 0..64 {
                let pair = &mut self.peers.pairs[p];
                let session = if server { &mut pair.server } else { &mut pair.client };
                let Some(bytes) = session.poll_transmit(now) else { break };
                let bytes = bytes.to_vec();
                session.advance_transmit(bytes.len());
                if let Some(delay) = self.link.transit(&mut self.rng) {
                    let wire = Wire {
                        peer: p,
                        generation,
                        to_server: !server,
                        bytes,
                    };
                    self.push(now + delay, Ev::PeerWire(wire));
                }
            }
        }
        let id = self.targets[self.peers.pairs[p].k].id;
        let mut ended = false;
        while let Some(event) = self.peers.pairs[p].client.poll_event() {
            match &event {
                Event::Connected(_) => self.peers.connected += 1,
                Event::PeerDead { .. } => self.peers.dead_verdicts += 1,
                Event::Closed(_) => ended = true,
                _ => {}
            }
            self.monitor.handle_peer_event(now, id, &event);
            self.drain();
        }
        while self.peers.pairs[p].server.poll_event().is_some() {}
        if ended {
            self.peers.ended += 1;
            self.push(now + RECONNECT, Ev::PeerReconnect(p));
        }
        for server in [false, true] {
            let pair = &mut self.peers.pairs[p];
            let session = if server { &pair.server } else { &pair.client };
            let deadline = session.poll_timeout();
            let side = usize::from(server);
            let Some(deadline) = deadline.filter(|_| runs || !server) else {
                continue;
            };
            if Some(deadline) != pair.armed[side] {
                let at = deadline.max(now);
                pair.armed[side] = Some(at);
                let timer = Timer {
                    at,
                    peer: p,
                    generation,
                    server,
                };
                self.push(at, Ev::PeerTimer(timer));
            }
        }
    }
}
