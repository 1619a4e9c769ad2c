//! Many sessions on one network and one clock: hosts (processes) holding
//! any number of sessions each, connections between them, and one event
//! queue in virtual time. A host's stall or overload hits all its sessions
//! at once, and its loop serves them the way a real one does: the sockets
//! that are ready (up to a read budget), then the due timers, then the
//! rest of the sockets, then every write.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Config, Instant, Role, Session, Transport};

use super::endpoint::Endpoint;
use super::process::Process;
use super::wire::{Outage, Wire};
use crate::pair::Side;

/// The link every new connection gets.
#[derive(Clone, Debug, Default)]
pub struct LinkSpec {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay per send, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Datagram loss, parts per million, each way.
    pub loss_ppm: u32,
    /// Stream segment loss recovered by retransmission (see
    /// [`Wire::retransmit_ppm`]), parts per million, each way.
    pub retransmit_ppm: u32,
}

/// A process holding sessions.
#[derive(Debug, Default)]
pub struct Host {
    /// When it runs and what its clock reads: shared by all its sessions.
    pub process: Process,
    /// Sockets read per turn before the timers run; the rest are read after
    /// them (a loop that takes at most so many readiness events per turn).
    /// Zero means no limit.
    pub read_budget: usize,
    outages: Vec<Outage>,
    timers: BTreeSet<(Instant, usize, Side)>,
    readable: Vec<(usize, Side)>,
    dirty: Vec<(usize, Side)>,
    wake_at: Option<Instant>,
}

/// One connection: a client session on one host, a server session on
/// another, and the link between them.
#[derive(Debug)]
pub struct Conn {
    /// The connecting end.
    pub client: Endpoint,
    /// The accepting end.
    pub server: Endpoint,
    /// Client to server.
    pub to_server: Wire,
    /// Server to client.
    pub to_client: Wire,
    /// The client's host.
    pub client_host: usize,
    /// The server's host.
    pub server_host: usize,
    transport: Transport,
    landing_scheduled: [Option<Instant>; 2],
    readable: [bool; 2],
}

impl Conn {
    /// The endpoint on `side`.
    pub fn end(&self, side: Side) -> &Endpoint {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Wake {
    /// Bytes land at `side` of `conn`.
    Land(usize, Side),
    /// A host may run.
    Host(usize),
    /// A host's clock steps.
    ClockStep(usize),
}

fn index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

/// Events a run may handle before the harness calls it a hang.
const MAX_STEPS: u64 = 200_000_000;

/// Hosts, connections and one virtual clock.
#[derive(Debug, Default)]
pub struct Net {
    /// The current virtual time.
    pub now: Instant,
    /// Every host, by the index [`Net::add_host`] returned.
    pub hosts: Vec<Host>,
    /// Every connection ever opened, by the index [`Net::connect`] returned.
    pub conns: Vec<Conn>,
    /// The link new connections get.
    pub link: LinkSpec,
    queue: BinaryHeap<Reverse<(Instant, Wake)>>,
    steps: u64,
}

impl Net {
    /// An empty network whose connections get `link`.
    pub fn new(link: LinkSpec) -> Net {
        Net { link, ..Net::default() }
    }

    /// Adds a host; returns its index.
    pub fn add_host(&mut self) -> usize {
        self.hosts.push(Host::default());
        self.hosts.len() - 1
    }

    /// Stops `host` at `from` for `length`: all its sessions at once.
    pub fn stall(&mut self, host: usize, from: Instant, length: Duration) {
        self.hosts[host].process.stall(from, length);
    }

    /// Steps `host`'s clock forward by `by` at `at`.
    pub fn step_clock(&mut self, host: usize, at: Instant, by: Duration) {
        self.hosts[host].process.step_clock(at, by);
        self.queue.push(Reverse((at, Wake::ClockStep(host))));
    }

    /// Schedules a fault on every link to or from `host`, present and
    /// future.
    pub fn schedule_outage(&mut self, host: usize, outage: Outage) {
        self.hosts[host].outages.push(outage);
        for conn in self.conns.iter_mut() {
            if conn.client_host == host || conn.server_host == host {
                conn.to_server.schedule(outage);
                conn.to_client.schedule(outage);
            }
        }
    }

    /// Opens a connection now from a client session on `client_host` to a
    /// server session on `server_host`; `seed` drives both sessions'
    /// jitter and the link's randomness. Returns its index.
    pub fn connect(
        &mut self,
        client_host: usize,
        server_host: usize,
        client: Arc<Config>,
        server: Arc<Config>,
        seed: u64,
    ) -> usize {
        let id = self.conns.len();
        let transport = client.transport;
        let local = |host: &Host| host.process.local(self.now);
        let client = Session::new(
            client,
            Role::Client,
            local(&self.hosts[client_host]),
            seed.wrapping_mul(2),
        )
        .expect("client config");
        let server = Session::new(
            server,
            Role::Server,
            local(&self.hosts[server_host]),
            seed.wrapping_mul(2) + 1,
        )
        .expect("server config");
        let mut wires = [Wire::new(self.link.latency), Wire::new(self.link.latency)];
        for (i, wire) in wires.iter_mut().enumerate() {
            wire.jitter = self.link.jitter;
            wire.loss_ppm = self.link.loss_ppm;
            wire.retransmit_ppm = self.link.retransmit_ppm;
            wire.seed(seed.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64 + 1));
            for host in [client_host, server_host] {
                for outage in &self.hosts[host].outages {
                    wire.schedule(*outage);
                }
            }
        }
        let [to_server, to_client] = wires;
        self.conns.push(Conn {
            client: Endpoint::new(client),
            server: Endpoint::new(server),
            to_server,
            to_client,
            client_host,
            server_host,
            transport,
            landing_scheduled: [None, None],
            readable: [false, false],
        });
        for role in [Side::Client, Side::Server] {
            let host = self.host_of(id, role);
            if let Some(armed) = self.endpoint(id, role).armed() {
                self.hosts[host].timers.insert((armed, id, role));
            }
            self.hosts[host].dirty.push((id, role));
            self.schedule_host(host, self.now);
        }
        id
    }

    /// Sends from `side` of `conn` now, as the application would; the
    /// bytes leave when its host next runs.
    pub fn send(
        &mut self,
        conn: usize,
        side: Side,
        tag: u16,
        payload: impl Into<Bytes>,
    ) -> Result<(), pulse_proto::SendError> {
        let role = side;
        let result = self.endpoint_mut(conn, role).session.send(tag, payload);
        let host = self.host_of(conn, role);
        self.hosts[host].dirty.push((conn, role));
        self.schedule_host(host, self.now);
        result
    }

    /// Lets `d` of virtual time pass.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs every event up to and including `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(Reverse((at, wake))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.steps += 1;
            assert!(self.steps < MAX_STEPS, "simulation did not settle");
            self.now = self.now.max(at);
            match wake {
                Wake::Land(conn, role) => self.land(conn, role),
                Wake::Host(host) => self.wake(host, at),
                Wake::ClockStep(host) => {
                    self.hosts[host].process.apply_clock_steps(self.now);
                    self.schedule_next_timer(host);
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn host_of(&self, conn: usize, role: Side) -> usize {
        match role {
            Side::Client => self.conns[conn].client_host,
            Side::Server => self.conns[conn].server_host,
        }
    }

    fn endpoint(&self, conn: usize, role: Side) -> &Endpoint {
        self.conns[conn].end(role)
    }

    fn endpoint_mut(&mut self, conn: usize, role: Side) -> &mut Endpoint {
        let conn = &mut self.conns[conn];
        match role {
            Side::Client => &mut conn.client,
            Side::Server => &mut conn.server,
        }
    }

    /// The wire delivering to `role`'s end, and that end.
    fn incoming(&mut self, conn: usize, role: Side) -> (&mut Endpoint, &mut Wire) {
        let conn = &mut self.conns[conn];
        match role {
            Side::Client => (&mut conn.client, &mut conn.to_client),
            Side::Server => (&mut conn.server, &mut conn.to_server),
        }
    }

    fn schedule_host(&mut self, host: usize, at: Instant) {
        let Some(at) = self.hosts[host].process.runs_at(at.max(self.now)) else {
            return;
        };
        let h = &mut self.hosts[host];
        if h.wake_at.is_none_or(|scheduled| at < scheduled) {
            h.wake_at = Some(at);
            self.queue.push(Reverse((at, Wake::Host(host))));
        }
    }

    fn schedule_next_timer(&mut self, host: usize) {
        let h = &self.hosts[host];
        if let Some(&(armed, _, _)) = h.timers.first() {
            let at = h.process.timer_fires(armed);
            self.schedule_host(host, at);
        }
    }

    fn schedule_landing(&mut self, conn: usize, role: Side, after: Option<Instant>) {
        let c = &mut self.conns[conn];
        let wire = match role {
            Side::Client => &c.to_client,
            Side::Server => &c.to_server,
        };
        let next = match after {
            Some(t) => wire.next_arrival_after(t),
            None => wire.next_arrival(),
        };
        let Some(next) = next else { return };
        let scheduled = &mut c.landing_scheduled[index(role)];
        if scheduled.is_none_or(|s| next < s) {
            *scheduled = Some(next);
            self.queue.push(Reverse((next, Wake::Land(conn, role))));
        }
    }

    fn land(&mut self, conn: usize, role: Side) {
        let now = self.now;
        let c = &mut self.conns[conn];
        if c.landing_scheduled[index(role)].is_some_and(|s| s <= now) {
            c.landing_scheduled[index(role)] = None;
        }
        let wire = match role {
            Side::Client => &c.to_client,
            Side::Server => &c.to_server,
        };
        if wire.next_arrival().is_some_and(|at| at <= now) && !c.readable[index(role)] {
            c.readable[index(role)] = true;
            let host = self.host_of(conn, role);
            self.hosts[host].readable.push((conn, role));
            self.schedule_host(host, now);
        }
        self.schedule_landing(conn, role, Some(now));
    }

    fn wake(&mut self, host: usize, at: Instant) {
        if self.hosts[host].wake_at != Some(at) {
            return; // superseded by an earlier wake-up
        }
        self.hosts[host].wake_at = None;
        let now = self.now;
        if !self.hosts[host].process.is_running(now) {
            self.schedule_host(host, now);
            return;
        }
        let h = &mut self.hosts[host];
        h.process.apply_clock_steps(now);
        let local = h.process.local(now);
        let mut readable = std::mem::take(&mut h.readable);
        let budget = if h.read_budget == 0 {
            readable.len()
        } else {
            h.read_budget.min(readable.len())
        };
        let later = readable.split_off(budget);
        let mut touched = std::mem::take(&mut h.dirty);
        for (conn, role) in readable {
            self.read(conn, role, local);
            touched.push((conn, role));
        }
        loop {
            let h = &mut self.hosts[host];
            let Some(&(armed, conn, role)) = h.timers.first() else {
                break;
            };
            if h.process.timer_fires(armed) > now {
                break;
            }
            h.timers.remove(&(armed, conn, role));
            let (end, wire) = self.incoming(conn, role);
            let landing = wire.last_landing(now);
            end.fire(now, local, landing);
            if let Some(armed) = end.armed() {
                self.hosts[host].timers.insert((armed, conn, role));
            }
            touched.push((conn, role));
        }
        for (conn, role) in later {
            self.read(conn, role, local);
            touched.push((conn, role));
        }
        touched.sort_unstable();
        touched.dedup();
        for (conn, role) in touched {
            self.flush(conn, role, local);
        }
        self.schedule_next_timer(host);
    }

    fn read(&mut self, conn: usize, role: Side, local: Instant) {
        let now = self.now;
        let host = self.host_of(conn, role);
        let c = &mut self.conns[conn];
        c.readable[index(role)] = false;
        let transport = c.transport;
        let (end, wire) = self.incoming(conn, role);
        let before = end.armed();
        end.read_all(now, local, wire, transport);
        let after = end.armed();
        self.retime(host, conn, role, before, after);
    }

    fn flush(&mut self, conn: usize, role: Side, local: Instant) {
        let now = self.now;
        let c = &mut self.conns[conn];
        let transport = c.transport;
        let (end, out, incoming) = match role {
            Side::Client => (&mut c.client, &mut c.to_server, &c.to_client),
            Side::Server => (&mut c.server, &mut c.to_client, &c.to_server),
        };
        let before = end.armed();
        end.flush(now, local, out, transport, incoming.last_landing(now));
        let after = end.armed();
        let host = self.host_of(conn, role);
        self.retime(host, conn, role, before, after);
        self.schedule_landing(conn, role.peer(), None);
    }

    fn retime(&mut self, host: usize, conn: usize, role: Side, before: Option<Instant>, after: Option<Instant>) {
        if before == after {
            return;
        }
        let timers = &mut self.hosts[host].timers;
        if let Some(before) = before {
            timers.remove(&(before, conn, role));
        }
        if let Some(after) = after {
            timers.insert((after, conn, role));
        }
    }
}
