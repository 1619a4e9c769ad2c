//! Two sessions over an in-memory link, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Config, Instant, Role, Session, State, Transport};

use crate::sim::{Endpoint, Outage, Wire};

/// Which end of a [`Pair`] or of a connection in a [`crate::Net`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// The session that connected.
    Client,
    /// The session that accepted.
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// Two sessions wired through an in-memory link with latency, in virtual
/// time that jumps from one deadline or arrival to the next.
///
/// Each side is its own process ([`Endpoint::process`]): it may be frozen,
/// stalled for a while, overloaded (running only at turns), late with its
/// timers, or have its clock stepped. Whenever a side runs it does what a
/// real driver does: reads everything that landed, then fires its timer if
/// due, then writes.
#[derive(Debug)]
pub struct Pair {
    /// The current virtual time.
    pub now: Instant,
    /// The connecting end.
    pub client: Endpoint,
    /// The accepting end.
    pub server: Endpoint,
    /// Client to server.
    pub to_server: Wire,
    /// Server to client.
    pub to_client: Wire,
    transport: Transport,
    steps: u64,
}

/// Steps a run may take before the harness calls it a hang.
const MAX_STEPS: u64 = 10_000_000;

impl Pair {
    /// A client and a server with the given configs, one-way latency and
    /// jitter seeds derived from `seed`, both starting at time zero.
    pub fn new(client: Arc<Config>, server: Arc<Config>, latency: Duration, seed: u64) -> Pair {
        let now = Instant::ZERO;
        let transport = client.transport;
        let client = Session::new(client, Role::Client, now, seed.wrapping_mul(2)).expect("client config");
        let server = Session::new(server, Role::Server, now, seed.wrapping_mul(2) + 1).expect("server config");
        Pair {
            now,
            client: Endpoint::new(client),
            server: Endpoint::new(server),
            to_server: Wire::new(latency),
            to_client: Wire::new(latency),
            transport,
            steps: 0,
        }
    }

    /// Both ends with the same config.
    pub fn with_config(config: Arc<Config>, latency: Duration, seed: u64) -> Pair {
        Pair::new(config.clone(), config, latency, seed)
    }

    /// Records every frame on both wires from now on.
    pub fn observe(&mut self) {
        self.to_server.observe();
        self.to_client.observe();
    }

    /// The endpoint on `side`.
    pub fn side(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// The endpoint on `side`, to look at.
    pub fn end(&self, side: Side) -> &Endpoint {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    /// The wire towards `side`.
    pub fn wire_to(&mut self, side: Side) -> &mut Wire {
        match side {
            Side::Client => &mut self.to_client,
            Side::Server => &mut self.to_server,
        }
    }

    /// Schedules a fault on both directions of the link.
    pub fn schedule_outage(&mut self, outage: Outage) {
        self.to_server.schedule(outage);
        self.to_client.schedule(outage);
    }

    /// Runs until both sessions are established, or panics after `limit`.
    pub fn connect(&mut self, limit: Duration) {
        let until = self.now + limit;
        self.run_while(until, |p| {
            p.client.session.state() == State::Handshaking || p.server.session.state() == State::Handshaking
        });
        assert_eq!(
            self.client.session.state(),
            State::Established,
            "client did not connect"
        );
        assert_eq!(
            self.server.session.state(),
            State::Established,
            "server did not connect"
        );
    }

    /// Lets `d` of virtual time pass.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_while(until, |_| true);
        self.now = self.now.max(until);
    }

    /// Runs until `until` or until `go_on` says stop, whichever is first.
    /// Returns whether `go_on` stopped it.
    pub fn run_while(&mut self, until: Instant, mut go_on: impl FnMut(&Pair) -> bool) -> bool {
        self.flush();
        loop {
            if !go_on(self) {
                return true;
            }
            let Some(next) = self.next_instant() else { return false };
            if next > until {
                return false;
            }
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "simulation did not settle");
            self.now = self.now.max(next);
            self.step_clocks();
            self.deliver();
            self.fire_timers();
            self.flush();
        }
    }

    /// Sends from `side` now, as the application would.
    pub fn send(&mut self, side: Side, tag: u16, payload: impl Into<Bytes>) -> Result<(), pulse_proto::SendError> {
        let result = self.side(side).session.send(tag, payload);
        self.flush();
        result
    }

    /// Closes from `side` now.
    pub fn close(&mut self, side: Side, code: pulse_proto::CloseCode, reason: &str) {
        let now = self.now;
        let end = self.side(side);
        let local = end.process.local(now);
        end.session
            .close(local, code, reason)
            .expect("a code a local close may send");
        end.rearm();
        self.flush();
    }

    fn next_instant(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for (end, wire) in [(&self.client, &self.to_client), (&self.server, &self.to_server)] {
            // Output the application queued while the process was not
            // running goes out when it next runs.
            let waiting = end.session.queued_bytes() > 0 && !end.process.is_running(self.now);
            let queued = waiting.then_some(self.now);
            let wants = [
                end.fire_at(&end.process),
                wire.next_arrival(),
                wire.end_arrival(),
                queued,
            ]
            .into_iter()
            .flatten()
            .min();
            let runs = wants.and_then(|at| end.process.runs_at(at.max(self.now)));
            for candidate in [runs, end.process.next_clock_step()].into_iter().flatten() {
                next = Some(next.map_or(candidate, |n| n.min(candidate)));
            }
        }
        next
    }

    fn step_clocks(&mut self) {
        let now = self.now;
        for end in [&mut self.client, &mut self.server] {
            end.process.apply_clock_steps(now);
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let transport = self.transport;
        for (end, wire) in [
            (&mut self.client, &mut self.to_client),
            (&mut self.server, &mut self.to_server),
        ] {
            if end.process.is_running(now) {
                let local = end.process.local(now);
                end.read_all(now, local, wire, transport);
                if wire.take_end(now) {
                    end.end_of_stream(now, local);
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for (end, wire) in [(&mut self.client, &self.to_client), (&mut self.server, &self.to_server)] {
            if !end.process.is_running(now) || end.fire_at(&end.process).is_none_or(|at| at > now) {
                continue;
            }
            let local = end.process.local(now);
            end.fire(now, local, wire.last_landing(now));
        }
    }

    /// Moves every byte each running session wants to send onto its wire.
    pub fn flush(&mut self) {
        let now = self.now;
        let transport = self.transport;
        let landings = [self.to_client.last_landing(now), self.to_server.last_landing(now)];
        for ((end, out), landing) in [
            (&mut self.client, &mut self.to_server),
            (&mut self.server, &mut self.to_client),
        ]
        .into_iter()
        .zip(landings)
        {
            if end.process.is_running(now) {
                let local = end.process.local(now);
                end.flush(now, local, out, transport, landing);
            }
        }
    }
}
