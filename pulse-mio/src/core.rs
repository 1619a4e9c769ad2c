//! The loop's state apart from the handler: connections, the timer wheel,
//! and the moves between sockets and sessions. No protocol decision is made
//! here; every one is the session's, and the moves themselves are
//! `pulse_driver`'s (flush, read, clock, re-arm rule).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry};
use pulse_driver::{clock, Arm, Counters, Demux, Flushed, TimerSlot};
use pulse_proto::{CloseCode, CloseError, Config, Instant, Role, SendError, Session, TimerKey, TimerWheel};
use slab::Slab;

use crate::config::LoopConfig;
use crate::handler::ConnId;
use crate::tokens::Tokens;

/// The transport under one session.
pub(crate) enum Io {
    Tcp(TcpStream),
    /// A peer of one of the loop's UDP sockets; its address is kept in
    /// `Core::udp_peers` so TCP connections do not pay for it.
    Udp {
        socket: u32,
        peer: u32,
    },
}

/// A generation never given before in this process: ids of the slot's
/// earlier holders no longer find it, nor do ids of other loops'
/// connections (several loops run in one process, one per core). 64 bits
/// never come round.
pub(crate) fn new_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    next_generation(&NEXT)
}

fn next_generation(next: &AtomicU64) -> u64 {
    // Only uniqueness matters, not order with other memory.
    next.fetch_add(1, Ordering::Relaxed)
}

/// One connection: 450-odd bytes inline, most of them the session's.
pub(crate) struct Conn<T> {
    pub(crate) session: Session,
    pub(crate) io: Io,
    /// The wheel entry, and the re-arm rule's record of its deadline.
    pub(crate) timer: Option<TimerKey>,
    pub(crate) slot: TimerSlot,
    pub(crate) generation: u64,
    /// WRITABLE interest is registered (only while output is pending).
    pub(crate) writable: bool,
    /// Queued for `service` this turn.
    pub(crate) dirty: bool,
    /// A client whose TCP connect has not completed.
    pub(crate) connecting: bool,
    /// The read budget ran out with bytes left in the socket: its timer
    /// waits until they are read (a verdict must never come with frames
    /// waiting).
    pub(crate) unread: bool,
    /// Turns in a row its due timer waited for unread bytes. Bounded: a
    /// peer that keeps its socket full must not keep its timer from ever
    /// running (a slow reader's close, a close's timeout).
    pub(crate) timer_waits: u32,
    /// The session is over; the socket waits for the peer to end its
    /// side (`linger.rs`).
    pub(crate) lingering: bool,
    pub(crate) value: Option<T>,
}

/// Counters of the loop's own work; the protocol's (opened, verdicts,
/// closes by code, bytes) are in [`pulse_driver::Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// Connections accepted (TCP) or opened by a peer's handshake (UDP).
    pub accepted: u64,
    /// Connections refused at the connection limit.
    pub refused: u64,
    /// Connections opened with `connect`.
    pub connected: u64,
    /// Connections closed and removed.
    pub closed: u64,
    /// Accepts that failed (the failed connection is skipped; the rest of
    /// the backlog is accepted).
    pub accept_errors: u64,
    /// Times accepting paused because the process was out of descriptors.
    pub accept_pauses: u64,
    /// Timer wheel expiries (including those finding nothing due).
    pub timer_fires: u64,
}

/// A UDP socket of the loop and the peers behind it.
pub(crate) struct UdpListener {
    pub(crate) socket: UdpSocket,
    pub(crate) demux: Demux<u32>,
    /// Datagrams it may still read this turn (`datagrams_per_turn` at the
    /// start of each): its readiness events and the reads carried over
    /// from the last turn share it.
    pub(crate) budget: usize,
}

pub(crate) struct Core<T> {
    pub(crate) registry: Registry,
    pub(crate) tokens: Tokens,
    pub(crate) conns: Slab<Conn<T>>,
    pub(crate) wheel: TimerWheel<u32>,
    pub(crate) dirty: Vec<u32>,
    pub(crate) config: LoopConfig,
    /// The session config of TCP connections.
    pub(crate) stream: Arc<Config>,
    pub(crate) udp: Vec<UdpListener>,
    pub(crate) udp_peers: Slab<SocketAddr>,
    pub(crate) stats: LoopStats,
    pub(crate) counters: Arc<Counters>,
    pub(crate) shutdown_at: Option<Instant>,
    /// A connection was removed since this was last cleared: a descriptor
    /// may be free for an accept.
    pub(crate) freed: bool,
    /// Connections over whose sockets linger: held, not counted as open.
    pub(crate) lingering: usize,
}

impl<T> Core<T> {
    pub(crate) fn new(config: LoopConfig, registry: Registry, tokens: Tokens) -> io::Result<Core<T>> {
        let stream = config.stream();
        stream.validate().map_err(invalid)?;
        let capacity = config.max_connections.min(1 << 20);
        Ok(Core {
            registry,
            tokens,
            // Reserved, not touched: the pages are only resident once used.
            conns: Slab::with_capacity(capacity),
            wheel: TimerWheel::with_capacity(config.timer_resolution, capacity),
            dirty: Vec::new(),
            config,
            stream,
            udp: Vec::new(),
            udp_peers: Slab::new(),
            stats: LoopStats::default(),
            counters: Arc::default(),
            shutdown_at: None,
            freed: false,
            lingering: 0,
        })
    }

    pub(crate) fn id(&self, index: u32) -> ConnId {
        ConnId {
            index,
            generation: self.conns[index as usize].generation,
        }
    }

    pub(crate) fn get(&mut self, id: ConnId) -> Option<&mut Conn<T>> {
        self.conns
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.conns.len() >= self.config.max_connections.min(self.tokens.connections())
    }

    /// Adds a connection with the session config its transport needs; a
    /// client's HELLO goes out when it is serviced. `value` is asked for
    /// only once nothing can fail, so a value the handler made always
    /// reaches `on_close`.
    pub(crate) fn add(
        &mut self,
        mut io: Io,
        config: Arc<Config>,
        role: Role,
        value: impl FnOnce() -> T,
    ) -> io::Result<ConnId> {
        let session = Session::new(config, role, clock::now(), clock::seed()).map_err(invalid)?;
        let connecting = role == Role::Client && matches!(io, Io::Tcp(_));
        let entry = self.conns.vacant_entry();
        let too_many = || io::Error::other("no token left for another connection");
        let index = u32::try_from(entry.key()).map_err(|_| too_many())?;
        let token = self.tokens.connection(index).ok_or_else(too_many)?;
        if let Io::Tcp(stream) = &mut io {
            // A connecting socket signals completion by writability.
            let interest = if connecting {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.registry.register(stream, token, interest)?;
        }
        let generation = new_generation();
        entry.insert(Conn {
            session,
            io,
            timer: None,
            slot: TimerSlot::default(),
            generation,
            writable: connecting,
            dirty: false,
            connecting,
            unread: false,
            timer_waits: 0,
            lingering: false,
            value: Some(value()),
        });
        self.mark_dirty(index);
        Ok(ConnId { index, generation })
    }

    pub(crate) fn mark_dirty(&mut self, index: u32) {
        if let Some(conn) = self.conns.get_mut(index as usize) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(index);
            }
        }
    }

    /// Queues a message. A full queue is the application's to handle
    /// (`QueueFull`, then `on_writable`): the peer is not blamed for it.
    pub(crate) fn send(&mut self, id: ConnId, tag: u16, payload: Bytes) -> Result<(), SendError> {
        let conn = self.get(id).ok_or(SendError::Closed)?;
        let result = conn.session.send(tag, payload);
        self.mark_dirty(id.index);
        result
    }

    pub(crate) fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), CloseError> {
        if let Some(conn) = self.get(id) {
            conn.session.close(clock::now(), code, reason)?;
            self.mark_dirty(id.index);
        }
        Ok(())
    }

    /// Runs a local call on `id`'s session, then services it: a call may
    /// queue a frame or move the deadline earlier.
    pub(crate) fn with_session<R>(&mut self, id: ConnId, call: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let result = call(&mut self.get(id)?.session);
        self.mark_dirty(id.index);
        Some(result)
    }

    /// Reads a TCP connection until its socket has nothing more (or the
    /// budget is spent), handing every read to the session at once.
    /// Returns whether the budget ran out first, so the connection must be
    /// read again next turn (and its timer waits until then).
    pub(crate) fn read(&mut self, index: u32) -> bool {
        let budget = self.config.reads_per_event;
        let Some(conn) = self.conns.get_mut(index as usize) else {
            return false;
        };
        if conn.lingering {
            return self.discard(index);
        }
        let Io::Tcp(stream) = &mut conn.io else { return false };
        // Edge-triggered: read until "would block", never stop at a short
        // read, or an end of stream that came with the last bytes is missed.
        let (outcome, bytes) = pulse_driver::read_stream(&mut conn.session, budget, false, |buf| stream.read(buf));
        conn.unread = outcome == pulse_driver::Read::More;
        let more = conn.unread;
        self.counters.add_bytes(bytes, 0);
        self.mark_dirty(index);
        more
    }

    /// Writes what the socket takes now; the rest stays in the session.
    /// Returns whether output is still pending.
    pub(crate) fn flush(&mut self, index: u32) -> bool {
        let Core {
            conns,
            udp,
            udp_peers,
            counters,
            ..
        } = self;
        let Some(conn) = conns.get_mut(index as usize) else {
            return false;
        };
        let mut written = 0;
        let flushed = match &mut conn.io {
            Io::Tcp(stream) => {
                let connecting = &mut conn.connecting;
                pulse_driver::flush(
                    &mut conn.session,
                    clock::now(),
                    |bytes| match stream.write(bytes) {
                        // Not connected yet: wait for writability.
                        Err(e) if e.kind() == io::ErrorKind::NotConnected && *connecting => {
                            Err(io::ErrorKind::WouldBlock.into())
                        }
                        result => {
                            if result.is_ok() {
                                *connecting = false;
                            }
                            result.inspect(|n| written += n)
                        }
                    },
                    false,
                )
            }
            Io::Udp { socket, peer } => {
                let (socket, addr) = (&udp[*socket as usize].socket, udp_peers[*peer as usize]);
                // The socket is shared by every peer: one that would block
                // loses its datagram, as datagrams may be lost.
                pulse_driver::flush(
                    &mut conn.session,
                    clock::now(),
                    |bytes| socket.send_to(bytes, addr).inspect(|n| written += n),
                    true,
                )
            }
        };
        counters.add_bytes(0, written);
        flushed == Flushed::Blocked
    }

    /// Sets the socket's interest and the connection's one timer after a
    /// service. The timer is touched only if the deadline moved earlier
    /// (or fired): input only ever moves it later.
    pub(crate) fn rearm(&mut self, index: u32, want_write: bool) -> io::Result<()> {
        let Some(conn) = self.conns.get_mut(index as usize) else {
            return Ok(());
        };
        let want_write = want_write || conn.connecting;
        if want_write != conn.writable {
            if let (Io::Tcp(stream), Some(token)) = (&mut conn.io, self.tokens.connection(index)) {
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                self.registry.reregister(stream, token, interest)?;
            }
            conn.writable = want_write;
        }
        match conn.slot.rearm(conn.session.poll_timeout()) {
            Arm::Keep => {}
            Arm::Set(at) => {
                if let Some(key) = conn.timer.take() {
                    self.wheel.cancel(key);
                }
                conn.timer = Some(self.wheel.insert(at, index));
            }
            Arm::Cancel => {
                if let Some(key) = conn.timer.take() {
                    self.wheel.cancel(key);
                }
            }
        }
        Ok(())
    }

    /// The peer's address, for logs (asked of the socket only when a log
    /// is written).
    pub(crate) fn peer(&self, index: u32) -> Peer<'_, T> {
        Peer { core: self, index }
    }
}

/// A connection's peer address, looked up when displayed.
pub(crate) struct Peer<'a, T> {
    core: &'a Core<T>,
    index: u32,
}

impl<T> std::fmt::Display for Peer<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addr = match self.core.conns.get(self.index as usize).map(|c| &c.io) {
            Some(Io::Tcp(stream)) => stream.peer_addr().ok(),
            Some(Io::Udp { peer, .. }) => self.core.udp_peers.get(*peer as usize).copied(),
            None => None,
        };
        match addr {
            Some(addr) => write!(f, "{addr}"),
            None => write!(f, "connection #{}", self.index),
        }
    }
}

pub(crate) fn invalid(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::next_generation;

    #[test]
    fn generations_do_not_come_round_again_after_four_billion_connections() {
        // Where a 32-bit counter wraps to the first connection's
        // generation, and an id held since then would find the slot's
        // newest holder.
        let next = AtomicU64::new(u32::MAX.into());
        let first = 0;
        assert_eq!(next_generation(&next), u32::MAX.into());
        assert_ne!(next_generation(&next), first);
    }
}
