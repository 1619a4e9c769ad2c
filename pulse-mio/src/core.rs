//! The loop's state apart from the handler: connections, the timer wheel,
//! the read buffer, and the moves between sockets and sessions. No protocol
//! decision is made here; every one is the session's.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Poll, Token};
use pulse_proto::{CloseCode, CloseError, Gate, Instant, Role, SendError, Session, TimerKey, TimerWheel, Transport};
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

/// One connection: 440-odd bytes inline, most of them the session's.
pub(crate) struct Conn<T> {
    pub(crate) session: Session,
    pub(crate) io: Io,
    /// The wheel entry and the deadline it was set for.
    pub(crate) timer: Option<TimerKey>,
    pub(crate) armed: Instant,
    pub(crate) generation: u32,
    /// WRITABLE interest is registered (only while output is pending).
    pub(crate) writable: bool,
    /// Queued for `service` this turn.
    pub(crate) dirty: bool,
    /// A client whose TCP connect has not completed.
    pub(crate) connecting: bool,
    pub(crate) value: Option<T>,
}

/// Counters of the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Connections accepted (TCP) or opened by a peer's handshake (UDP).
    pub accepted: u64,
    /// Connections refused at the connection limit.
    pub refused: u64,
    /// Connections opened with `connect`.
    pub connected: u64,
    /// Connections closed and removed.
    pub closed: u64,
    /// Connections closed for reading slower than their output limit.
    pub slow_readers: u64,
    /// Timer wheel expiries (including those finding nothing due).
    pub timer_fires: u64,
}

pub(crate) struct Core<T> {
    pub(crate) poll: Poll,
    pub(crate) conns: Slab<Conn<T>>,
    pub(crate) wheel: TimerWheel<u32>,
    pub(crate) dirty: Vec<u32>,
    pub(crate) read_buf: Vec<u8>,
    pub(crate) config: LoopConfig,
    epoch: std::time::Instant,
    next_generation: u32,
    pub(crate) udp_sockets: Vec<UdpSocket>,
    pub(crate) udp_peers: Slab<SocketAddr>,
    pub(crate) udp_by_addr: HashMap<(u32, SocketAddr), u32>,
    pub(crate) stats: LoopStats,
    pub(crate) shutdown_at: Option<Instant>,
    /// Answers UDP datagrams from addresses with no session.
    pub(crate) gate: Gate,
    pub(crate) reply: Vec<u8>,
}

impl<T> Core<T> {
    pub(crate) fn new(config: LoopConfig) -> io::Result<Core<T>> {
        config
            .session
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let datagram = Arc::new((*config.session).clone().with_transport(Transport::Datagram));
        let gate = Gate::new(datagram, secret()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Core {
            gate,
            reply: Vec::new(),
            poll: Poll::new()?,
            // Reserved, not touched: the pages are only resident once used.
            conns: Slab::with_capacity(config.max_connections.min(1 << 20)),
            wheel: TimerWheel::with_capacity(config.timer_resolution, config.max_connections.min(1 << 20)),
            dirty: Vec::new(),
            read_buf: vec![0; config.read_buffer.max(1024)],
            config,
            epoch: std::time::Instant::now(),
            next_generation: 0,
            udp_sockets: Vec::new(),
            udp_peers: Slab::new(),
            udp_by_addr: HashMap::new(),
            stats: LoopStats::default(),
            shutdown_at: None,
        })
    }

    /// Now, on the session clock: nanoseconds since the loop started.
    pub(crate) fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// Time from now until `at` (zero if past).
    pub(crate) fn until(&self, at: Instant) -> Duration {
        at - self.now()
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
        self.conns.len() >= self.config.max_connections
    }

    /// Adds a connection; a client's HELLO goes out when it is serviced.
    pub(crate) fn add(&mut self, io: Io, role: Role, value: T) -> io::Result<ConnId> {
        let now = self.now();
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let seed = u64::from(generation) ^ self.epoch.elapsed().as_nanos() as u64;
        let session = Session::new(self.config.session.clone(), role, now, seed)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connecting = role == Role::Client && matches!(io, Io::Tcp(_));
        let entry = self.conns.vacant_entry();
        let index = u32::try_from(entry.key()).map_err(|_| io::Error::other("too many connections"))?;
        let token = Tokens::NATIVE
            .connection(index)
            .ok_or_else(|| io::Error::other("too many connections"))?;
        let mut conn = Conn {
            session,
            io,
            timer: None,
            armed: Instant::ZERO,
            generation,
            writable: connecting,
            dirty: false,
            connecting,
            value: Some(value),
        };
        if let Io::Tcp(stream) = &mut conn.io {
            // A connecting socket signals completion by writability.
            let interest = if connecting {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            self.poll.registry().register(stream, token, interest)?;
        }
        entry.insert(conn);
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

    /// Queues a message. A peer whose output is already at its limit reads
    /// too slowly: it is closed with "slow reader" instead.
    pub(crate) fn send(&mut self, id: ConnId, tag: u16, payload: Bytes) -> Result<(), SendError> {
        let now = self.now();
        let conn = self.get(id).ok_or(SendError::Closed)?;
        let result = conn.session.send(tag, payload);
        if let Err(SendError::QueueFull { queued, .. }) = result {
            log::warn!("connection {id}: {queued} bytes unread by the peer; closing it as a slow reader");
            let _slow_reader_is_sendable = conn.session.abort(now, CloseCode::SLOW_READER, "output limit reached");
            self.stats.slow_readers += 1;
        }
        self.mark_dirty(id.index);
        result
    }

    pub(crate) fn close(&mut self, id: ConnId, code: CloseCode, reason: &str) -> Result<(), CloseError> {
        let now = self.now();
        if let Some(conn) = self.get(id) {
            conn.session.close(now, code, reason)?;
            self.mark_dirty(id.index);
        }
        Ok(())
    }

    /// Reads until the socket has nothing more (or the budget is spent) and
    /// hands every read to the session at once. Returns whether the budget
    /// ran out first, so the connection must be read again next turn.
    pub(crate) fn read(&mut self, index: u32) -> bool {
        let now = self.now();
        let reads = self.config.reads_per_event;
        let Some(conn) = self.conns.get_mut(index as usize) else {
            return false;
        };
        let Io::Tcp(stream) = &mut conn.io else { return false };
        let mut more = true;
        for _ in 0..reads {
            match stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.session.handle_eof(now);
                    more = false;
                    break;
                }
                Ok(n) => conn.session.handle_input(now, &self.read_buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    conn.session.handle_eof(now);
                    more = false;
                    break;
                }
            }
            if conn.session.is_closed() {
                more = false;
                break;
            }
        }
        self.mark_dirty(index);
        more
    }

    /// Writes what the socket takes now; the rest stays in the session.
    /// Returns whether output is still pending.
    pub(crate) fn flush(&mut self, index: u32) -> bool {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(index as usize) else {
            return false;
        };
        while let Some(bytes) = conn.session.poll_transmit(now) {
            let written = match &mut conn.io {
                Io::Tcp(stream) => stream.write(bytes),
                Io::Udp { socket, peer } => {
                    let addr = self.udp_peers[*peer as usize];
                    match self.udp_sockets[*socket as usize].send_to(bytes, addr) {
                        // A datagram the socket cannot take now is lost, as
                        // datagrams may be.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(bytes.len()),
                        other => other,
                    }
                }
            };
            match written {
                Ok(n) => {
                    conn.connecting = false;
                    conn.session.advance_transmit(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected && conn.connecting => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) if matches!(conn.io, Io::Udp { .. }) => conn.session.advance_transmit(0),
                Err(_) => {
                    conn.session.handle_eof(now);
                    return false;
                }
            }
        }
        false
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
            if let Io::Tcp(stream) = &mut conn.io {
                let interest = if want_write {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                self.poll
                    .registry()
                    .reregister(stream, Token(index as usize), interest)?;
            }
            conn.writable = want_write;
        }
        match (conn.session.poll_timeout(), conn.timer) {
            (None, Some(key)) => {
                self.wheel.cancel(key);
                conn.timer = None;
            }
            (Some(deadline), None) => {
                conn.timer = Some(self.wheel.insert(deadline, index));
                conn.armed = deadline;
            }
            (Some(deadline), Some(key)) if deadline < conn.armed => {
                self.wheel.cancel(key);
                conn.timer = Some(self.wheel.insert(deadline, index));
                conn.armed = deadline;
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes a closed connection out: socket deregistered and closed, timer
    /// cancelled. Returns its value.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let mut conn = self.conns.try_remove(index as usize)?;
        if let Some(key) = conn.timer {
            self.wheel.cancel(key);
        }
        match &mut conn.io {
            Io::Tcp(stream) => {
                let _ = self.poll.registry().deregister(stream);
            }
            Io::Udp { socket, peer } => {
                let addr = self.udp_peers.remove(*peer as usize);
                self.udp_by_addr.remove(&(*socket, addr));
            }
        }
        self.stats.closed += 1;
        conn.value.take()
    }
}

/// Sixteen unpredictable bytes, for the UDP gate's cookie key: the
/// standard library's per-process random hash keys, hashed.
fn secret() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let word = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut secret = [0; 16];
    secret[..8].copy_from_slice(&word().to_le_bytes());
    secret[8..].copy_from_slice(&word().rotate_left(32).to_le_bytes());
    secret
}
