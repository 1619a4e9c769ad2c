//! The UDP sockets announcements arrive on, read within a budget per turn
//! so that a flood of datagrams cannot hold the probes back.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;
use pulse_driver::clock;
use pulse_monitor::Monitor;

/// One announcement socket.
#[derive(Debug)]
pub(crate) struct AnnounceSocket {
    pub(crate) socket: UdpSocket,
    /// Datagrams it may still be read this turn.
    pub(crate) budget: usize,
}

impl AnnounceSocket {
    /// A socket bound to `addr`, with `SO_REUSEPORT` where the system has
    /// it (several sockets on one port share the datagrams, each with its
    /// own receive buffer) and a receive buffer of `recv_buffer` bytes (the
    /// system caps it: `net.core.rmem_max` on Linux).
    pub(crate) fn bind(addr: SocketAddr, recv_buffer: usize, budget: usize) -> io::Result<AnnounceSocket> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
        socket.set_reuse_port(true)?;
        // Asked, not required: a smaller buffer only drops more in a burst.
        let _ = socket.set_recv_buffer_size(recv_buffer);
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(AnnounceSocket {
            socket: UdpSocket::from_std(socket.into()),
            budget,
        })
    }

    /// Hands the datagrams waiting to `monitor`, each with the time it was
    /// read, until the socket has none or the budget is spent. Returns how
    /// many were read, and whether the budget ran out first.
    pub(crate) fn read(&mut self, monitor: &mut Monitor) -> (u64, bool) {
        let mut read = 0;
        while self.budget > 0 {
            self.budget -= 1;
            let drained = pulse_driver::with_read_buffer(|buf| match self.socket.recv(buf) {
                Ok(len) => {
                    read += 1;
                    // Rejections are counted by the monitor (its `Stats`)
                    // and disturb nothing.
                    let _ = monitor.handle_announcement(clock::now(), &buf[..len]);
                    false
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                // ICMP reports of earlier sends, and the like: the socket
                // carries on.
                Err(_) => false,
            });
            if drained {
                return (read, false);
            }
        }
        (read, true)
    }
}
