//! The UDP sockets announcements arrive on, read within a budget per turn
//! so that a flood of datagrams cannot hold the probes back.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use pulse_driver::monitor::{bind_announce_socket, WatchCore};

/// One announcement socket.
#[derive(Debug)]
pub(crate) struct AnnounceSocket {
    pub(crate) socket: UdpSocket,
    /// Datagrams it may still be read this turn.
    pub(crate) budget: usize,
}

impl AnnounceSocket {
    /// A socket bound to `addr` as pulse-driver binds them.
    pub(crate) fn bind(addr: SocketAddr, recv_buffer: usize, budget: usize) -> io::Result<AnnounceSocket> {
        Ok(AnnounceSocket {
            socket: UdpSocket::from_std(bind_announce_socket(addr, recv_buffer)?),
            budget,
        })
    }

    /// Hands the datagrams waiting to the monitor until the socket has
    /// none or the budget is spent; returns whether the budget ran out
    /// first.
    pub(crate) fn read(&mut self, core: &mut WatchCore) -> bool {
        let AnnounceSocket { socket, budget } = self;
        core.read_announcements(budget, |buf| socket.recv(buf))
    }
}
