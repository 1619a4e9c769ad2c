//! A NAT or stateful firewall on a simulated link: it keeps a mapping for
//! the connection while packets refresh it, and forgets it once the
//! connection has been idle longer than its idle timeout. After that,
//! datagrams are dropped (a new mapping would have a new outside port, which
//! the server does not know), and a stream's next segment is answered with
//! a reset that reaches both ends, as middleboxes that time connections out
//! do.
//!
//! The NAT sits at the client's edge (a home gateway, a carrier's NAT near
//! the handset): what the client sends passes it at once, what the server
//! sends passes it one link delay later, just before the client gets it.
//!
//! ```
//! use std::time::Duration;
//! use pulse_tests::sim::{Nat, Refresh};
//!
//! let nat = Nat::new(Duration::from_secs(30), Refresh::Both);
//! assert_eq!(nat.idle_timeout, Duration::from_secs(30));
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use pulse_proto::{Instant, Transport};

/// Which packets keep a mapping alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Packets in either direction (RFC 4787's recommendation for UDP).
    Both,
    /// Only packets from the client, as many NATs do for UDP. On a stream
    /// the client's kernel acknowledges every segment it receives at once,
    /// and that acknowledgement refreshes the mapping: the difference shows
    /// on datagrams only.
    Outbound,
}

/// A path's NAT: how long it keeps an idle mapping, and what refreshes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nat {
    /// A mapping idle for longer than this is forgotten.
    pub idle_timeout: Duration,
    /// What counts as activity.
    pub refresh: Refresh,
}

impl Nat {
    /// A NAT forgetting mappings idle longer than `idle_timeout`.
    pub fn new(idle_timeout: Duration, refresh: Refresh) -> Nat {
        Nat { idle_timeout, refresh }
    }

    /// A new mapping through this NAT for one connection opened at `now`,
    /// with one port per direction: give [`Mapping::outbound`] to the
    /// client's wire and [`Mapping::inbound`] to the server's.
    pub fn open(&self, now: Instant) -> Mapping {
        Mapping {
            state: Rc::new(RefCell::new(State {
                nat: *self,
                last_refresh: now,
                forgotten_at: None,
                reset_at: None,
            })),
        }
    }
}

#[derive(Debug)]
struct State {
    nat: Nat,
    last_refresh: Instant,
    forgotten_at: Option<Instant>,
    reset_at: Option<Instant>,
}

impl State {
    /// Whether the mapping still exists at `at`; forgets it if idle too long.
    fn alive(&mut self, at: Instant) -> bool {
        if self.forgotten_at.is_none() && at.saturating_since(self.last_refresh) > self.nat.idle_timeout {
            self.forgotten_at = Some(self.last_refresh + self.nat.idle_timeout);
        }
        self.forgotten_at.is_none()
    }
}

/// One connection's mapping, shared by the wires of both directions.
#[derive(Clone, Debug)]
pub struct Mapping {
    state: Rc<RefCell<State>>,
}

impl Mapping {
    /// The port on the client-to-server wire.
    pub fn outbound(&self) -> NatPort {
        NatPort {
            state: self.state.clone(),
            outbound: true,
        }
    }

    /// The port on the server-to-client wire.
    pub fn inbound(&self) -> NatPort {
        NatPort {
            state: self.state.clone(),
            outbound: false,
        }
    }

    /// When the NAT forgot the mapping, if it has (found out by the first
    /// packet after the idle timeout).
    pub fn forgotten_at(&self) -> Option<Instant> {
        self.state.borrow().forgotten_at
    }

    /// When the NAT reset the connection (a stream only).
    pub fn reset_at(&self) -> Option<Instant> {
        self.state.borrow().reset_at
    }
}

/// One direction's side of a [`Mapping`]: what a [`crate::Wire`] asks
/// before it carries a packet.
#[derive(Clone, Debug)]
pub struct NatPort {
    state: Rc<RefCell<State>>,
    outbound: bool,
}

impl NatPort {
    /// Whether bytes sent at `now` over a wire with one-way `latency` get
    /// through. A packet that finds the mapping forgotten is dropped; on a
    /// stream, the first such packet makes the NAT reset the connection.
    pub fn pass(&self, now: Instant, latency: Duration, transport: Transport) -> bool {
        let mut state = self.state.borrow_mut();
        let at = if self.outbound { now } else { now + latency };
        if !state.alive(at) {
            if transport == Transport::Stream && state.reset_at.is_none() {
                state.reset_at = Some(at);
            }
            return false;
        }
        let refreshes = self.outbound || state.nat.refresh == Refresh::Both || transport == Transport::Stream;
        if refreshes {
            state.last_refresh = state.last_refresh.max(at);
        }
        true
    }

    /// When the NAT's reset reaches this wire's receiver, if it reset the
    /// connection: the client at once, the server one link delay later.
    pub fn reset_arrival(&self, latency: Duration) -> Option<Instant> {
        let reset = self.state.borrow().reset_at?;
        Some(if self.outbound { reset + latency } else { reset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config, Pair, Side};
    use pulse_proto::{CloseCode, State};

    const S: Duration = Duration::from_secs(1);
    const LATENCY: Duration = Duration::from_millis(20);

    fn at(secs: u64) -> Instant {
        Instant::ZERO + S * secs as u32
    }

    #[test]
    fn a_mapping_refreshed_within_its_timeout_lives_on() {
        let mapping = Nat::new(S * 30, Refresh::Both).open(at(0));
        for t in (29..300).step_by(29) {
            assert!(mapping.outbound().pass(at(t), LATENCY, Transport::Datagram), "at {t} s");
        }
        assert_eq!(mapping.forgotten_at(), None);
    }

    #[test]
    fn an_idle_mapping_is_forgotten_and_stays_forgotten() {
        let mapping = Nat::new(S * 30, Refresh::Both).open(at(0));
        assert!(!mapping.outbound().pass(at(31), LATENCY, Transport::Datagram));
        assert_eq!(mapping.forgotten_at(), Some(at(30)));
        assert!(!mapping.inbound().pass(at(32), LATENCY, Transport::Datagram));
        assert!(!mapping.outbound().pass(at(33), LATENCY, Transport::Datagram));
        assert_eq!(mapping.reset_at(), None, "datagrams are dropped, not reset");
    }

    #[test]
    fn an_outbound_only_nat_is_not_kept_alive_by_the_server_on_datagrams() {
        let mapping = Nat::new(S * 30, Refresh::Outbound).open(at(0));
        assert!(mapping.inbound().pass(at(20), LATENCY, Transport::Datagram));
        assert!(!mapping.inbound().pass(at(40), LATENCY, Transport::Datagram));
        let both = Nat::new(S * 30, Refresh::Both).open(at(0));
        assert!(both.inbound().pass(at(20), LATENCY, Transport::Datagram));
        assert!(both.inbound().pass(at(40), LATENCY, Transport::Datagram));
    }

    #[test]
    fn on_a_stream_the_acknowledgements_refresh_an_outbound_only_nat() {
        let mapping = Nat::new(S * 30, Refresh::Outbound).open(at(0));
        assert!(mapping.inbound().pass(at(20), LATENCY, Transport::Stream));
        assert!(mapping.inbound().pass(at(40), LATENCY, Transport::Stream));
    }

    #[test]
    fn a_segment_on_a_forgotten_stream_mapping_resets_both_ends() {
        let mapping = Nat::new(S * 30, Refresh::Both).open(at(0));
        assert!(!mapping.outbound().pass(at(45), LATENCY, Transport::Stream));
        assert_eq!(mapping.reset_at(), Some(at(45)));
        assert_eq!(mapping.inbound().reset_arrival(LATENCY), Some(at(45)), "the client");
        assert_eq!(
            mapping.outbound().reset_arrival(LATENCY),
            Some(at(45) + LATENCY),
            "the server"
        );
        assert!(!mapping.inbound().pass(at(46), LATENCY, Transport::Stream));
        assert_eq!(mapping.reset_at(), Some(at(45)), "one reset");
    }

    /// A pair with a 10 s interval through a NAT forgetting after `timeout`.
    fn pair_through(timeout: Duration, transport: Transport) -> (Pair, Mapping) {
        let mut pair = Pair::with_config(config(transport, 10_000, 30_000), LATENCY, 7);
        let mapping = Nat::new(timeout, Refresh::Both).open(pair.now);
        pair.to_server.through_nat(mapping.outbound());
        pair.to_client.through_nat(mapping.inbound());
        pair.connect(S);
        (pair, mapping)
    }

    #[test]
    fn a_pair_that_pings_within_the_nats_timeout_keeps_its_connection() {
        for transport in [Transport::Stream, Transport::Datagram] {
            let (mut pair, mapping) = pair_through(S * 20, transport);
            pair.run_for(S * 600);
            assert_eq!(mapping.forgotten_at(), None, "{transport:?}");
            assert_eq!(pair.client.session.state(), State::Established, "{transport:?}");
            assert_eq!(pair.server.session.state(), State::Established, "{transport:?}");
        }
    }

    #[test]
    fn a_stream_idle_longer_than_the_nats_timeout_ends_at_both_ends_with_its_next_ping() {
        let (mut pair, mapping) = pair_through(S * 4, Transport::Stream);
        pair.run_for(S * 60);
        let reset = mapping.reset_at().expect("the client's PING found the mapping gone");
        assert_eq!(pair.client.ended(), Some((reset, CloseCode::LOST)));
        assert_eq!(pair.server.ended(), Some((reset + LATENCY, CloseCode::LOST)));
        assert_eq!(
            pair.client.ping_times.first(),
            Some(&reset),
            "{:?}",
            pair.client.ping_times
        );
    }

    #[test]
    fn datagrams_idle_longer_than_the_nats_timeout_are_lost_until_both_ends_time_out() {
        let (mut pair, mapping) = pair_through(S * 4, Transport::Datagram);
        pair.run_for(S * 120);
        let forgotten = mapping.forgotten_at().expect("forgotten");
        assert_eq!(mapping.reset_at(), None);
        for side in [Side::Client, Side::Server] {
            let (at, code) = pair.end(side).ended().expect("ended");
            assert_eq!(code, CloseCode::TIMED_OUT, "{side:?}");
            assert!(at > forgotten, "{side:?}");
        }
        assert!(pair.client.session.stats().pings_sent > 1, "the client probed in vain");
    }
}
