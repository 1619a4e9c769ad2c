//! A UDP listener's peers, told apart by address, behind the gate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use pulse_proto::{Admission, CloseCode, Config, ConfigError, Gate, Instant, Transport};

use crate::{clock, Counters};

/// Where a datagram goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a, K> {
    /// To the session of a known peer.
    Peer(&'a K),
    /// The address proved itself: open a server session (with the listener's
    /// datagram config) and hand it this datagram; then [`Demux::insert`].
    Open,
    /// Send this answer back to the sender and keep nothing (a RETRY, or a
    /// CLOSE turning it away).
    Reply(&'a [u8]),
    /// Nothing to do: a stray, or no answer fits the amplification limit.
    Drop,
}

/// A UDP listener's table of peers by address, and the
/// [`pulse_proto::Gate`] that answers everyone else without keeping state.
/// `K` is whatever the driver finds a peer's session by.
///
/// ```
/// use pulse_driver::{clock, Demux, Route};
/// use pulse_proto::Config;
///
/// let mut demux: Demux<u32> = Demux::new(Config::default().into()).unwrap();
/// let from = "127.0.0.2:5000".parse().unwrap();
/// assert_eq!(demux.route(clock::now(), from, b"not pulse", true, true), Route::Drop);
/// demux.insert(from, 7);
/// assert_eq!(demux.route(clock::now(), from, b"anything", true, true), Route::Peer(&7));
/// ```
#[derive(Debug)]
pub struct Demux<K> {
    gate: Gate,
    config: Arc<Config>,
    peers: HashMap<SocketAddr, K>,
    reply: Vec<u8>,
    refused: u64,
    counters: Option<&'static Counters>,
}

impl<K> Demux<K> {
    /// A table for a listener whose sessions use `config` (made a datagram
    /// config if it is not), keyed by a fresh random secret.
    pub fn new(config: Arc<Config>) -> Result<Demux<K>, ConfigError> {
        let config = if config.transport == Transport::Datagram {
            config
        } else {
            Arc::new((*config).clone().with_transport(Transport::Datagram))
        };
        Ok(Demux {
            gate: Gate::new(config.clone(), clock::secret())?,
            config,
            peers: HashMap::new(),
            reply: Vec::new(),
            refused: 0,
            counters: None,
        })
    }

    /// Counts the peers it turns away for want of room in `counters`
    /// ([`Counters::on_refused`]), as they are.
    pub fn count_into(mut self, counters: &'static Counters) -> Demux<K> {
        self.counters = Some(counters);
        self
    }

    /// The datagram config the listener's sessions use.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Routes `datagram` from `from`. A new peer is opened only when
    /// `accepting`; when it would be but there is no `room` (a connection
    /// limit, a full accept queue), it is turned away with CLOSE "refused".
    pub fn route(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        accepting: bool,
        room: bool,
    ) -> Route<'_, K> {
        if let Some(key) = self.peers.get(&from) {
            return Route::Peer(key);
        }
        if !accepting {
            return Route::Drop;
        }
        let admission = match self.gate.admit(now, from, datagram, &mut self.reply) {
            Admission::Open if !room => {
                self.refused += 1;
                if let Some(counters) = self.counters {
                    counters.on_refused();
                }
                crate::log::refused(from, "at its connection limit");
                self.gate.refuse(
                    datagram,
                    CloseCode::REFUSED,
                    "connection limit reached",
                    &mut self.reply,
                )
            }
            other => other,
        };
        match admission {
            Admission::Drop => Route::Drop,
            Admission::Reply => Route::Reply(&self.reply),
            Admission::Open => Route::Open,
        }
    }

    /// Records the peer opened at `from`.
    pub fn insert(&mut self, from: SocketAddr, key: K) {
        self.peers.insert(from, key);
    }

    /// Forgets the peer at `from` (its session closed).
    pub fn remove(&mut self, from: &SocketAddr) -> Option<K> {
        self.peers.remove(from)
    }

    /// Keeps only the peers `keep` says are alive.
    pub fn retain(&mut self, mut keep: impl FnMut(&SocketAddr, &K) -> bool) {
        self.peers.retain(|addr, key| keep(addr, key));
    }

    /// Peers turned away for want of room so far, for
    /// [`crate::Counters::on_refused`].
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Peers known now.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_proto::{Role, Session};

    #[test]
    fn a_client_is_opened_only_after_it_echoes_the_cookie_and_only_with_room() {
        let config = Arc::new(Config::new(Transport::Datagram));
        let mut demux: Demux<u32> = Demux::new(config.clone()).unwrap();
        let mut client = Session::new(config, Role::Client, clock::now(), 1).unwrap();
        let from: SocketAddr = "127.0.0.5:6000".parse().unwrap();
        let hello = client.poll_transmit(clock::now()).unwrap().to_vec();
        client.advance_transmit(hello.len());
        let Route::Reply(retry) = demux.route(clock::now(), from, &hello, true, true) else {
            panic!("no RETRY")
        };
        client.handle_datagram(clock::now(), retry);
        let hello = client.poll_transmit(clock::now()).unwrap().to_vec();
        assert!(matches!(
            demux.route(clock::now(), from, &hello, true, false),
            Route::Reply(_)
        ));
        assert_eq!(demux.route(clock::now(), from, &hello, false, true), Route::Drop);
        assert_eq!(demux.route(clock::now(), from, &hello, true, true), Route::Open);
        assert!(demux.is_empty(), "nothing kept before the driver opens it");
    }
}
