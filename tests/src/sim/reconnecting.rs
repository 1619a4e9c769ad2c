//! An adaptive client that keeps one connection up over a path with a NAT,
//! the way an application would: when its session ends it stores what the
//! session learned of the network, waits as [`Backoff`] says, connects
//! again, and gives the new session what was stored.
//!
//! The server side is a fresh session for each connection, as a server
//! sees a reconnect; each connection gets a new NAT mapping.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Backoff, CloseCode, Config, Event, Instant, Learned, Role, SendError, Session, Transport};

use super::endpoint::Endpoint;
use super::nat::{Mapping, Nat};
use super::wire::Wire;
use crate::pair::{Pair, Side};

/// The path every connection takes.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    /// The NAT between client and server.
    pub nat: Nat,
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay per send, uniform in `0..jitter`.
    pub jitter: Duration,
    /// Stream or datagrams.
    pub transport: Transport,
}

/// One connection the client made, once it is over (or the current one).
#[derive(Clone, Debug)]
pub struct Connection {
    /// When the client began to connect.
    pub opened: Instant,
    /// How the client's session ended, if it did: when, and the code.
    pub ended: Option<(Instant, CloseCode)>,
    /// When the NAT forgot the connection's mapping, if it did.
    pub forgotten_at: Option<Instant>,
    /// What the client's session had learned when it ended (or now).
    pub learned: Option<Learned>,
    /// What the client's session started from: what it learned once given
    /// the stored value, and the idle gap it aimed for.
    pub started_with: Option<(Learned, Duration)>,
}

/// A message an application sent, and where it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// When it was handed to the session.
    pub at: Instant,
    /// Who sent it.
    pub from: Side,
    /// Its tag, unique per message in the tests.
    pub tag: u16,
}

/// A reconnecting adaptive client and its server over one [`Path`].
#[derive(Debug)]
pub struct Reconnecting {
    /// The current connection; its `now` is the shared virtual time.
    pub pair: Pair,
    /// The path.
    pub path: Path,
    /// What the application keeps for this network: the last session's
    /// [`Session::learned`], read back from the bytes it was stored as.
    pub stored: Option<Learned>,
    /// Every connection so far, the current one last.
    pub connections: Vec<Connection>,
    client: Arc<Config>,
    server: Arc<Config>,
    backoff: Backoff,
    seed: u64,
    mapping: Mapping,
    reconnect_at: Option<Instant>,
    /// PINGs of finished connections: (time, side).
    pings: Vec<(Instant, Side)>,
    /// Messages received on finished connections: (time, receiver, tag).
    received: Vec<(Instant, Side, u16)>,
    sent: Vec<Sent>,
    /// Messages a finished connection handed back unsent
    /// ([`Session::poll_unsent`]), to send again once connected.
    unsent: Vec<(Side, u16, Bytes)>,
    /// How many messages were handed back unsent, in all.
    handed_back: usize,
}

/// The most connections a run may open before the harness calls it a hang.
const MAX_CONNECTIONS: usize = 100_000;

impl Reconnecting {
    /// Connects at time zero over `path`; `seed` drives the sessions'
    /// jitter, the link and the backoff.
    pub fn new(path: Path, client: Arc<Config>, server: Arc<Config>, seed: u64) -> Reconnecting {
        assert_eq!(client.transport, path.transport, "the client's transport is the path's");
        let pair = Pair::new(client.clone(), server.clone(), path.latency, seed);
        let mapping = path.nat.open(pair.now);
        let mut this = Reconnecting {
            pair,
            path,
            stored: None,
            connections: Vec::new(),
            client,
            server,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)).with_seed(seed),
            seed,
            mapping,
            reconnect_at: None,
            pings: Vec::new(),
            received: Vec::new(),
            sent: Vec::new(),
            unsent: Vec::new(),
            handed_back: 0,
        };
        this.open();
        this
    }

    /// The same, but the application had already stored what an earlier
    /// session learned of this network: the first connection starts from it.
    pub fn knowing(mut self, learned: Learned) -> Reconnecting {
        assert_eq!(self.connections.len(), 1, "before the first run");
        self.stored = Some(learned);
        self.connections.clear();
        self.open();
        self
    }

    /// Tells the client's application is active (foreground) or not, now
    /// ([`Session::set_active`]).
    pub fn set_active(&mut self, active: bool) {
        let now = self.pair.now;
        let client = &mut self.pair.client;
        client.session.set_active(client.process.local(now), active);
        client.rearm();
        self.pair.flush();
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.pair.now
    }

    /// Whether the current connection is up (the client is established).
    pub fn is_connected(&self) -> bool {
        self.pair.client.session.state() == pulse_proto::State::Established && self.reconnect_at.is_none()
    }

    /// Runs to `until`, reconnecting whenever the client's session ends.
    /// `watch` sees the pair after every step of the simulation.
    pub fn run_until(&mut self, until: Instant, mut watch: impl FnMut(&Pair)) {
        if self.reconnect_at.is_none() {
            self.send_again(until);
        }
        loop {
            if let Some(at) = self.reconnect_at {
                let to = at.min(until);
                self.pair.run_while(to, |_| true);
                self.pair.now = self.pair.now.max(to);
                if at > until {
                    return;
                }
                self.open();
                self.send_again(until);
                continue;
            }
            let ended = self.pair.run_while(until, |p| {
                watch(p);
                !p.client.session.is_closed()
            });
            if !ended {
                self.pair.now = self.pair.now.max(until);
                return;
            }
            self.retire();
            let delay = self.backoff.next_delay().expect("the backoff never gives up");
            self.reconnect_at = Some(self.pair.now + delay);
        }
    }

    /// Sends a message from `side` now, as the application would, if
    /// connected.
    pub fn send(&mut self, from: Side, tag: u16, payload: impl Into<Bytes>) -> Result<(), SendError> {
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        self.pair.send(from, tag, payload)?;
        // A local call may move the deadline earlier: a driver re-arms.
        self.pair.side(from).rearm();
        self.sent.push(Sent {
            at: self.pair.now,
            from,
            tag,
        });
        Ok(())
    }

    /// How many messages sessions handed back unsent when they ended
    /// (each was sent again on the next connection).
    pub fn handed_back(&self) -> usize {
        self.handed_back
    }

    /// Every message sent so far.
    pub fn sent(&self) -> &[Sent] {
        &self.sent
    }

    /// Every message received so far, on any connection: (time, receiver,
    /// tag).
    pub fn received(&self) -> Vec<(Instant, Side, u16)> {
        let mut all = self.received.clone();
        all.extend(current_messages(&self.pair));
        all
    }

    /// Every PING sent so far, by either side: (time, side).
    pub fn pings(&self) -> Vec<(Instant, Side)> {
        let mut all = self.pings.clone();
        all.extend(current_pings(&self.pair));
        all
    }

    /// The connections so far, with the current one as it is now.
    pub fn history(&self) -> Vec<Connection> {
        let mut all = self.connections.clone();
        if let Some(current) = all.last_mut().filter(|_| self.reconnect_at.is_none()) {
            current.forgotten_at = self.mapping.forgotten_at();
            current.learned = self.pair.client.session.learned();
        }
        all
    }

    /// The connection's session ended: keep what it learned and what it saw.
    fn retire(&mut self) {
        // The server's session may not have given its verdict yet: its
        // application, seeing the client connect again, drops it and takes
        // back what it never sent.
        let now = self.pair.now;
        let server = &mut self.pair.server;
        if !server.session.is_closed() {
            let local = server.process.local(now);
            let _ = server
                .session
                .abort(local, CloseCode::GOING_AWAY, "the client connected again");
        }
        for side in [Side::Client, Side::Server] {
            let session = &mut self.pair.side(side).session;
            while let Some((tag, payload)) = session.poll_unsent() {
                self.unsent.push((side, tag, payload));
                self.handed_back += 1;
            }
        }
        let learned = self.pair.client.session.learned();
        self.stored = learned.map(|l| Learned::from_bytes(l.to_bytes()));
        self.pings.extend(current_pings(&self.pair));
        self.received.extend(current_messages(&self.pair));
        let current = self.connections.last_mut().expect("a connection");
        current.ended = self.pair.client.ended();
        current.forgotten_at = self.mapping.forgotten_at();
        current.learned = learned;
    }

    /// Once the new connection is up (by `until`), sends what the last one
    /// handed back, as the application would.
    fn send_again(&mut self, until: Instant) {
        if self.unsent.is_empty() {
            return;
        }
        self.pair
            .run_while(until, |p| p.client.session.state() == pulse_proto::State::Handshaking);
        if !self.is_connected() {
            return;
        }
        for (side, tag, payload) in std::mem::take(&mut self.unsent) {
            if self.pair.send(side, tag, payload.clone()).is_err() {
                self.unsent.push((side, tag, payload));
            }
            self.pair.side(side).rearm();
        }
    }

    /// A new connection now: fresh sessions, a fresh NAT mapping, and what
    /// the last session learned.
    fn open(&mut self) {
        assert!(self.connections.len() < MAX_CONNECTIONS, "reconnecting without end");
        let now = self.pair.now;
        let n = self.connections.len() as u64;
        let seed = self.seed.wrapping_mul(0x1_0000).wrapping_add(n);
        let mut client = Session::new(self.client.clone(), Role::Client, now, seed * 2).expect("client config");
        if let Some(stored) = self.stored {
            client.set_learned(stored);
        }
        let server = Session::new(self.server.clone(), Role::Server, now, seed * 2 + 1).expect("server config");
        self.pair.client = Endpoint::new(client);
        self.pair.server = Endpoint::new(server);
        self.mapping = self.path.nat.open(now);
        let mut wires = [Wire::new(self.path.latency), Wire::new(self.path.latency)];
        for (i, wire) in wires.iter_mut().enumerate() {
            wire.jitter = self.path.jitter;
            wire.seed(seed.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64 + 1));
        }
        let [mut to_server, mut to_client] = wires;
        to_server.through_nat(self.mapping.outbound());
        to_client.through_nat(self.mapping.inbound());
        (self.pair.to_server, self.pair.to_client) = (to_server, to_client);
        self.reconnect_at = None;
        let started_with = self
            .pair
            .client
            .session
            .adaptive()
            .map(|a| (a.learned(), a.target_gap()));
        self.connections.push(Connection {
            opened: now,
            ended: None,
            forgotten_at: None,
            learned: None,
            started_with,
        });
        // Connected again: the next loss starts the backoff over. Reset
        // now rather than on the handshake, which the NAT never breaks.
        self.backoff.reset();
    }
}

fn current_pings(pair: &Pair) -> impl Iterator<Item = (Instant, Side)> + '_ {
    [Side::Client, Side::Server]
        .into_iter()
        .flat_map(move |side| pair.end(side).ping_times.iter().map(move |t| (*t, side)))
}

fn current_messages(pair: &Pair) -> impl Iterator<Item = (Instant, Side, u16)> + '_ {
    [Side::Client, Side::Server].into_iter().flat_map(move |side| {
        pair.end(side).events.iter().filter_map(move |(at, event)| match event {
            Event::Message { tag, .. } => Some((*at, side, *tag)),
            _ => None,
        })
    })
}
