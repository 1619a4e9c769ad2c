//! The UDP sockets announcements arrive on: bound with the options a
//! monitor wants, and read within a budget so that a flood of datagrams
//! cannot hold the probes back.

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// A non-blocking UDP socket bound to `addr` for ANNOUNCE datagrams, with
/// `SO_REUSEPORT` where the system has it (several sockets on one port
/// share the datagrams, each with its own receive buffer) and a receive
/// buffer of `recv_buffer` bytes (the system caps it: `net.core.rmem_max`
/// on Linux). Hand it to your runtime (`mio::net::UdpSocket::from_std`,
/// `async_io::Async::new`).
pub fn bind_announce_socket(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    socket.set_reuse_port(true)?;
    // Asked, not required: a smaller buffer only drops more in a burst.
    let _ = socket.set_recv_buffer_size(recv_buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Hands the datagrams `recv` gives to `monitor`, each with the time it
/// was read, until it would block or `budget` is spent (each datagram
/// takes one from it). Returns how many were read, and whether the budget
/// ran out first.
pub(crate) fn read_announcements(
    monitor: &mut pulse_monitor::Monitor,
    budget: &mut usize,
    mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> (u64, bool) {
    let mut read = 0;
    while *budget > 0 {
        *budget -= 1;
        let drained = crate::with_read_buffer(|buf| match recv(buf) {
            Ok(len) => {
                read += 1;
                // Rejections are counted by the monitor (its `Stats`) and
                // disturb nothing.
                let _ = monitor.handle_announcement(crate::clock::now(), &buf[..len]);
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
