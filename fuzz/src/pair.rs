//! The `pair` target: two sessions over a link the input controls.
//!
//! The setup byte's second bit picks the link. A **hostile** link splits,
//! drops, corrupts, reorders and duplicates what crosses; the sessions must
//! only stay sound (no panic, bounded memory, one `Closed`). A **benign**
//! link may only delay, bunch and stall — nothing is lost or changed — and
//! then the promises themselves are the oracle: neither well-behaved side
//! is ever closed for its ping rate, and no dead-peer verdict comes unless
//! nothing landed at that side for the agreed timeout.

use std::collections::VecDeque;
use std::time::Duration;

use pulse_proto::{CloseCode, Instant, Role, Session, Transport};

use super::{config, transport, Input, Watch};

const MAX_STEPS: usize = 2000;

/// Two sessions over a link the input controls (see the module docs).
pub fn pair(data: &[u8]) {
    let mut input = Input(data);
    let Some(setup) = input.byte() else { return };
    if setup & 2 == 0 {
        hostile(setup, input);
    } else {
        benign(setup, input);
    }
}

fn sessions(transport: Transport) -> [Session; 2] {
    [
        Session::new(config(transport), Role::Client, Instant::ZERO, 1).expect("valid config"),
        Session::new(config(transport), Role::Server, Instant::ZERO, 2).expect("valid config"),
    ]
}

fn flush(session: &mut Session, now: Instant, wire: &mut VecDeque<Vec<u8>>) {
    while let Some(out) = session.poll_transmit(now) {
        let out = out.to_vec();
        session.advance_transmit(out.len());
        wire.push_back(out);
    }
}

/// Bytes in flight towards each side may be split, dropped, corrupted,
/// reordered or duplicated, and delivered at any time.
fn hostile(setup: u8, mut input: Input) {
    let transport = transport(setup);
    let mut now = Instant::ZERO;
    let mut sessions = sessions(transport);
    let mut watches = [Watch::default(), Watch::default()];
    let mut wires: [VecDeque<Vec<u8>>; 2] = Default::default();
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > MAX_STEPS {
            break;
        }
        let side = usize::from(op >> 7);
        let mut after_timeout = false;
        match op % 8 {
            // Everything the side wants to send goes on its wire.
            0 => flush(&mut sessions[side], now, &mut wires[1 - side]),
            // Deliver the oldest piece in flight, maybe only part of it.
            1 => {
                if let Some(piece) = wires[side].pop_front() {
                    let n = usize::from(input.byte().unwrap_or(255)).min(piece.len());
                    match transport {
                        Transport::Stream => {
                            sessions[side].handle_input(now, &piece[..n]);
                            if n < piece.len() {
                                wires[side].push_front(piece[n..].to_vec());
                            }
                        }
                        Transport::Datagram => sessions[side].handle_datagram(now, &piece[..]),
                    }
                }
            }
            // Lose the oldest piece in flight.
            2 => {
                wires[side].pop_front();
            }
            // Corrupt a byte in flight.
            3 => {
                let at = usize::from(input.byte().unwrap_or(0));
                let with = input.byte().unwrap_or(0);
                if let Some(piece) = wires[side].front_mut() {
                    if !piece.is_empty() {
                        let len = piece.len();
                        piece[at % len] ^= with | 1;
                    }
                }
            }
            // Reorder (datagrams) or duplicate.
            4 => {
                if wires[side].len() >= 2 && transport == Transport::Datagram {
                    wires[side].swap(0, 1);
                } else if let (Some(first), Transport::Datagram) = (wires[side].front().cloned(), transport) {
                    wires[side].push_back(first);
                }
            }
            5 => now += Duration::from_micros(u64::from(input.u16().unwrap_or(0)) * 16),
            6 => {
                if let Some(deadline) = sessions[side].poll_timeout() {
                    now = now.max(deadline);
                }
                sessions[side].handle_timeout(now);
                after_timeout = true;
            }
            _ => {
                let n = usize::from(input.byte().unwrap_or(0)) * 8;
                let _ = sessions[side].send(7, vec![side as u8; n]);
            }
        }
        for (session, watch) in sessions.iter_mut().zip(&mut watches) {
            watch.check(session, now, false);
        }
        if after_timeout {
            if let Some(deadline) = sessions[side].poll_timeout() {
                assert!(deadline > now, "deadline not after now after handle_timeout");
            }
        }
        // Nothing in flight grows without bound: a side sends only what
        // its own limits allow.
        let in_flight: usize = wires.iter().flatten().map(Vec::len).sum();
        assert!(in_flight <= 1 << 20, "{in_flight} bytes in flight");
    }
}

/// One side's socket on a benign link: what has landed and not been read,
/// and when anything last landed.
#[derive(Default)]
struct Socket {
    landed: VecDeque<Vec<u8>>,
    last_landing: Option<Instant>,
}

impl Socket {
    /// Hands everything that landed to the session: one read for a stream
    /// (bunched, as a real read returns it), one call per datagram.
    fn read_all(&mut self, session: &mut Session, now: Instant, transport: Transport) {
        match transport {
            Transport::Stream => {
                let bunch: Vec<u8> = self.landed.drain(..).flatten().collect();
                if !bunch.is_empty() {
                    session.handle_input(now, &bunch[..]);
                }
            }
            Transport::Datagram => {
                for datagram in self.landed.drain(..) {
                    session.handle_datagram(now, &datagram[..]);
                }
            }
        }
    }
}

/// Bytes in flight are only delayed: they land (in order on a stream; in
/// any order for datagrams) when the input says, sit in the receiver's
/// socket while its process stalls, and are read when it runs — always
/// before its timer, as a real driver does. Time moves as the input says.
fn benign(setup: u8, mut input: Input) {
    let transport = transport(setup);
    let mut now = Instant::ZERO;
    let mut sessions = sessions(transport);
    let mut watches = [Watch::default(), Watch::default()];
    let mut wires: [VecDeque<Vec<u8>>; 2] = Default::default();
    let mut sockets = [Socket::default(), Socket::default()];
    let mut judged = [false, false];
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > MAX_STEPS {
            break;
        }
        let side = usize::from(op >> 7);
        let mut after_timeout = false;
        match op % 8 {
            0 => flush(&mut sessions[side], now, &mut wires[1 - side]),
            // The oldest pieces in flight land together in the socket.
            1 => {
                let n = usize::from(input.byte().unwrap_or(0) % 16) + 1;
                for _ in 0..n {
                    let Some(piece) = wires[side].pop_front() else { break };
                    sockets[side].landed.push_back(piece);
                    sockets[side].last_landing = Some(now);
                }
            }
            // The side reads what landed.
            2 | 3 => sockets[side].read_all(&mut sessions[side], now, transport),
            // A datagram overtakes the one before it.
            4 => {
                if transport == Transport::Datagram && wires[side].len() >= 2 {
                    let at = usize::from(input.byte().unwrap_or(0)) % (wires[side].len() - 1);
                    wires[side].swap(at, at + 1);
                }
            }
            5 => now += Duration::from_micros(u64::from(input.u16().unwrap_or(0)) * 16),
            // The side's timer fires: it reads first, then runs timers.
            6 => {
                if let Some(deadline) = sessions[side].poll_timeout() {
                    now = now.max(deadline);
                }
                sockets[side].read_all(&mut sessions[side], now, transport);
                sessions[side].handle_timeout(now);
                after_timeout = true;
            }
            _ => {
                let n = usize::from(input.byte().unwrap_or(0)) * 8;
                let _ = sessions[side].send(7, vec![side as u8; n]);
            }
        }
        for (session, watch) in sessions.iter_mut().zip(&mut watches) {
            watch.check(session, now, false);
        }
        if after_timeout {
            if let Some(deadline) = sessions[side].poll_timeout() {
                assert!(deadline > now, "deadline not after now after handle_timeout");
            }
        }
        for (i, watch) in watches.iter().enumerate() {
            assert_ne!(
                watch.close_code,
                Some(CloseCode::TOO_MANY_PINGS),
                "side {i} closed for a ping rate no well-behaved peer can exceed, on a link that only delays"
            );
            // Judged when given: what lands later is no excuse.
            if let (Some(verdict), Some(timeout), false) = (watch.verdict_at, watch.dead_timeout, judged[i]) {
                judged[i] = true;
                let silent = sockets[i]
                    .last_landing
                    .map_or(verdict - Instant::ZERO, |at| verdict - at);
                assert!(
                    silent >= timeout,
                    "side {i} declared its peer dead at {verdict:?} though bytes landed {silent:?} before"
                );
            }
        }
        let in_flight: usize = wires.iter().flatten().map(Vec::len).sum();
        assert!(in_flight <= 1 << 20, "{in_flight} bytes in flight");
    }
}
