//! Pulse peers as targets: their connections run in a pulse-mio
//! `Endpoint` in the watcher's own `Poll`, and every session event goes to
//! the monitor as is. The session decides RTT, suspicion and death;
//! pulse-proto's `Backoff` decides when to connect again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, Handler};
use pulse_monitor::TargetId;
use pulse_proto::{Backoff, Closed, Event};

/// Reconnect delays: fast at first (a restart is usually quick), never
/// more than the cap, so a peer that comes back is seen within it.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
const RECONNECT_CAP: Duration = Duration::from_secs(5);

/// One peer target: where it is and when to connect again.
pub struct Peer {
    pub target: TargetId,
    pub addr: SocketAddr,
    backoff: Backoff,
    /// When to connect next; `None` while a connection is open or opening.
    pub retry_at: Option<Instant>,
}

impl Peer {
    pub fn new(target: TargetId, addr: SocketAddr, seed: u64) -> Peer {
        Peer {
            target,
            addr,
            backoff: Backoff::new(RECONNECT_FIRST, RECONNECT_CAP).with_seed(seed),
            retry_at: Some(Instant::now()),
        }
    }
}

/// Collects the sessions' events for the monitor; the value of each
/// connection is the index of its peer.
#[derive(Default)]
pub struct Collect {
    pub events: Vec<(usize, Event)>,
}

impl Handler for Collect {
    type Conn = usize;

    fn accepted(&mut self, _: SocketAddr) -> usize {
        // The watcher listens for no pulse peers; never called.
        usize::MAX
    }

    fn on_open(&mut self, ctx: &mut Ctx<'_, usize>, conn: ConnId) {
        let peer = ctx.value(conn).copied();
        if let (Some(peer), Some(negotiated)) = (peer, ctx.negotiated(conn)) {
            self.events.push((peer, Event::Connected(negotiated)));
        }
    }

    fn on_message(&mut self, _: &mut Ctx<'_, usize>, _: ConnId, _: u16, _: Bytes) {}

    fn on_event(&mut self, ctx: &mut Ctx<'_, usize>, conn: ConnId, event: &Event) {
        if let Some(&mut peer) = ctx.value(conn) {
            self.events.push((peer, event.clone()));
        }
    }

    fn on_close(&mut self, _: &mut Ctx<'_, usize>, _: ConnId, closed: &Closed, peer: usize) {
        self.events.push((peer, Event::Closed(closed.clone())));
    }
}

/// After a peer's events: a connection that opened resets the backoff, one
/// that closed schedules the next attempt.
pub fn after_event(peer: &mut Peer, event: &Event, now: Instant) {
    match event {
        Event::Connected(_) => peer.backoff.reset(),
        Event::Closed(_) => retry_later(peer, now),
        _ => {}
    }
}

/// A connection that could not even be started (no socket, no route):
/// tried again as the backoff says, like one that closed, so a peer that
/// stays unreachable is not retried every second for ever.
pub fn connect_failed(peer: &mut Peer, now: Instant) {
    retry_later(peer, now);
}

fn retry_later(peer: &mut Peer, now: Instant) {
    let delay = peer.backoff.next_delay().unwrap_or(RECONNECT_CAP);
    peer.retry_at = Some(now + delay);
}

#[cfg(test)]
mod tests {
    use pulse_monitor::{Config, Monitor, TargetSpec};
    use pulse_proto::{CloseCode, Initiator};

    use super::*;

    fn peer() -> Peer {
        let mut monitor = Monitor::new(Config::lan(), pulse_proto::Instant::ZERO, 1).unwrap();
        let pool = monitor.add_pool();
        let target = monitor
            .add_target(pulse_proto::Instant::ZERO, TargetSpec::announced(pool, 1))
            .unwrap();
        Peer::new(target, SocketAddr::from(([127, 0, 0, 1], 9)), 7)
    }

    #[test]
    fn failed_connects_back_off_from_the_first_delay_to_the_cap_like_closes() {
        let mut peer = peer();
        let now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..12 {
            connect_failed(&mut peer, now);
            delays.push(peer.retry_at.unwrap() - now);
        }
        // Backoff's 50 % jitter: each delay is in [base / 2, base].
        assert!(
            delays[0] >= RECONNECT_FIRST / 2 && delays[0] <= RECONNECT_FIRST,
            "{delays:?}"
        );
        assert!(
            delays[11] >= RECONNECT_CAP / 2 && delays[11] <= RECONNECT_CAP,
            "{delays:?}"
        );
        // A close after failed connects waits as long: one backoff.
        let closed = Closed::new(CloseCode::NORMAL, "", Initiator::Peer);
        after_event(&mut peer, &Event::Closed(closed), now);
        assert!(peer.retry_at.unwrap() - now >= RECONNECT_CAP / 2);
    }
}
