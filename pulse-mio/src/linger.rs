//! A connection whose session is over: the handler is told at once, but
//! after a graceful ending the socket stays, its side shut down, until
//! the peer ends its side (what it sends meanwhile is read and dropped),
//! for at most the close timeout ([`pulse_driver::Linger`]). A socket
//! closed while it still sends its tail answers whatever the peer sends
//! then with a reset, and the kernel throws that tail away: the last
//! messages and the CLOSE.

use std::io::Read;
use std::net::Shutdown;

use bytes::Bytes;
use mio::Interest;
use pulse_driver::{clock, discard_input, Discarded, Linger};
use pulse_proto::Closed;

use crate::core::{new_generation, Core, Io};

impl<T> Core<T> {
    /// The session of `index` ended as `closed` says: counted off, and its
    /// value returned for `on_close`, with the messages its session never
    /// began to send (`Session::poll_unsent`). Its socket stays a little,
    /// or goes.
    pub(crate) fn end(&mut self, index: u32, closed: &Closed) -> Option<(T, Vec<(u16, Bytes)>)> {
        let conn = self.conns.get_mut(index as usize)?;
        let value = conn.value.take()?;
        let unsent = std::iter::from_fn(|| conn.session.poll_unsent()).collect();
        self.counters.on_gone(&conn.session);
        self.stats.closed += 1;
        let linger = Linger::of(&conn.session, closed);
        let stays = match &mut conn.io {
            Io::Tcp(stream) => linger.until_peer_ends && stream.shutdown(Shutdown::Write).is_ok(),
            Io::Udp { .. } => false,
        };
        let token = self.tokens.connection(index);
        let (Io::Tcp(stream), Some(token), true) = (&mut conn.io, token, stays) else {
            self.release(index);
            return Some((value, unsent));
        };
        if conn.writable && self.registry.reregister(stream, token, Interest::READABLE).is_err() {
            self.release(index);
            return Some((value, unsent));
        }
        conn.writable = false;
        conn.lingering = true;
        // Ids the handler still holds no longer find it.
        conn.generation = new_generation();
        if let Some(key) = conn.timer.take() {
            self.wheel.cancel(key);
        }
        conn.timer = Some(self.wheel.insert(clock::now() + linger.timeout, index));
        self.lingering += 1;
        // What already waits in the socket is read with the rest: the
        // peer's end of stream is an edge of its own.
        conn.unread = false;
        Some((value, unsent))
    }

    /// Reads and drops what a lingering connection's peer still sends; the
    /// socket goes once the peer ended its side. Returns whether it must
    /// be read again next turn.
    pub(crate) fn discard(&mut self, index: u32) -> bool {
        let Some(conn) = self.conns.get_mut(index as usize) else {
            return false;
        };
        let Io::Tcp(stream) = &mut conn.io else { return false };
        match discard_input(|buf| stream.read(buf)) {
            Discarded::Ended => {
                self.release(index);
                false
            }
            Discarded::WouldBlock => {
                conn.unread = false;
                false
            }
            Discarded::Busy => {
                conn.unread = true;
                true
            }
        }
    }

    /// Takes a connection out: socket deregistered and closed, timer
    /// cancelled, its slot free.
    pub(crate) fn release(&mut self, index: u32) {
        let Some(mut conn) = self.conns.try_remove(index as usize) else {
            return;
        };
        if let Some(key) = conn.timer {
            self.wheel.cancel(key);
        }
        if conn.lingering {
            self.lingering -= 1;
        }
        match &mut conn.io {
            Io::Tcp(stream) => {
                let _ = self.registry.deregister(stream);
            }
            Io::Udp { socket, peer } => {
                let addr = self.udp_peers.remove(*peer as usize);
                self.udp[*socket as usize].demux.remove(&addr);
            }
        }
        self.freed = true;
    }
}
