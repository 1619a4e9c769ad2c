//! Reading a UDP socket shared by many peers, within a budget per turn so
//! that a flood on it cannot starve the loop's other connections.

use std::io;

use pulse_driver::{clock, Route};
use pulse_proto::Role;

use crate::core::{Core, Io};
use crate::handler::Handler;

/// Reads datagrams from UDP socket `n` until it has none or its budget for
/// this turn is spent, routing each to its peer's session through the
/// socket's [`pulse_driver::Demux`]; a proven handshake from a new address
/// opens a session with the datagram config. Returns whether the budget ran
/// out first, so the socket must be read again next turn.
pub(crate) fn read<H: Handler>(core: &mut Core<H::Conn>, handler: &mut H, n: u32, accepting: bool) -> bool {
    while core.udp[n as usize].budget > 0 {
        core.udp[n as usize].budget -= 1;
        let drained = pulse_driver::with_read_buffer(|buf| {
            let (len, from) = match core.udp[n as usize].socket.recv_from(buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                // ICMP errors concern one peer; the socket carries on.
                Err(_) => return false,
            };
            let datagram = &buf[..len];
            core.counters.add_bytes(len, 0);
            let now = clock::now();
            let room = !core.is_full();
            let listener = &mut core.udp[n as usize];
            let index = match listener.demux.route(now, from, datagram, accepting, room) {
                Route::Peer(&index) => index,
                Route::Reply(answer) => {
                    if let Ok(sent) = listener.socket.send_to(answer, from) {
                        core.counters.add_bytes(0, sent);
                    }
                    return false;
                }
                Route::Drop => return false,
                Route::Open => {
                    let config = listener.demux.config().clone();
                    let peer = core.udp_peers.insert(from) as u32;
                    let io = Io::Udp { socket: n, peer };
                    match core.add(io, config, Role::Server, || handler.accepted(from)) {
                        Ok(id) => {
                            core.udp[n as usize].demux.insert(from, id.index);
                            core.stats.accepted += 1;
                            id.index
                        }
                        Err(e) => {
                            core.udp_peers.remove(peer as usize);
                            pulse_driver::log::refused(from, &format!("cannot add the connection: {e}"));
                            return false;
                        }
                    }
                }
            };
            core.conns[index as usize].session.handle_datagram(now, datagram);
            core.mark_dirty(index);
            false
        });
        if drained {
            return false;
        }
    }
    true
}
