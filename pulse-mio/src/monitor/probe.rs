//! One probe's connection: a non-blocking TCP connect, and for HTTP the
//! request written and the response read. What happens is reported as the
//! monitor's own words (`ProbeOutcome`, the response bytes); whether that
//! passes the check is the monitor's to say.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use mio::net::TcpStream;
use pulse_monitor::{ProbeId, ProbeOutcome};

/// A probe the monitor asked for: which, and for HTTP the request bytes
/// (shared by every probe of one check).
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub(crate) id: ProbeId,
    pub(crate) request: Option<Arc<[u8]>>,
}

/// A probe whose connection is open.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) order: Order,
    pub(crate) stream: TcpStream,
    /// The connect completed (and was reported).
    pub(crate) connected: bool,
    /// Request bytes written so far.
    written: usize,
    /// The response so far, at most the monitor's `max_response_bytes`.
    pub(crate) response: Vec<u8>,
}

/// Where a connect stands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Still connecting (a spurious wake-up).
    Connecting,
    /// The connect completed now: report `Connected`.
    Connected,
    /// The connection failed or ended: report this, then drop it.
    Failed(ProbeOutcome),
    /// Connected before.
    Idle,
}

impl Conn {
    /// Starts a non-blocking connect to `addr`.
    pub(crate) fn connect(order: Order, addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        Ok(Conn {
            order,
            stream,
            connected: false,
            written: 0,
            response: Vec::new(),
        })
    }

    /// Whether the connect has completed, failed, or is still under way
    /// (mio's rule: the pending error first, then the peer's address).
    pub(crate) fn finish_connect(&mut self) -> Step {
        if self.connected {
            return Step::Idle;
        }
        match self.stream.take_error() {
            Ok(Some(e)) | Err(e) => return Step::Failed(connect_failure(&e)),
            Ok(None) => {}
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connected = true;
                Step::Connected
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Step::Connecting,
            Err(e) => Step::Failed(connect_failure(&e)),
        }
    }

    /// Writes what is left of the HTTP request, as far as the socket takes
    /// it now.
    pub(crate) fn write_request(&mut self) -> Step {
        let Some(request) = &self.order.request else {
            return Step::Idle;
        };
        while self.written < request.len() {
            match self.stream.write(&request[self.written..]) {
                Ok(0) => return Step::Failed(ProbeOutcome::Closed),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Step::Failed(stream_failure(&e)),
            }
        }
        Step::Idle
    }

    /// Reads what the socket holds into the response, up to `limit` bytes
    /// in all (the monitor judges no more than that). Returns whether new
    /// bytes came, and how the connection ended if it did.
    pub(crate) fn read_response(&mut self, limit: usize) -> (bool, Option<ProbeOutcome>) {
        let mut got = false;
        while self.response.len() < limit {
            let read = pulse_driver::with_read_buffer(|buf| {
                self.stream.read(buf).inspect(|&n| {
                    let room = limit - self.response.len();
                    self.response.extend_from_slice(&buf[..n.min(room)]);
                })
            });
            match read {
                Ok(0) => return (got, Some(ProbeOutcome::Closed)),
                Ok(_) => got = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (got, Some(stream_failure(&e))),
            }
        }
        (got, None)
    }

    /// Whether this probe is an HTTP check.
    pub(crate) fn is_http(&self) -> bool {
        self.order.request.is_some()
    }

    /// Closes with a reset rather than a FIN: the monitor's side keeps no
    /// TIME_WAIT for each of its thousands of probes a minute, and the
    /// target frees the connection at once.
    pub(crate) fn reset(self) {
        let _ = socket2::SockRef::from(&self.stream).set_linger(Some(std::time::Duration::ZERO));
    }
}

/// A connect that failed, in the monitor's words.
pub(crate) fn connect_failure(e: &io::Error) -> ProbeOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => ProbeOutcome::Reset,
        _ => ProbeOutcome::Unreachable,
    }
}

/// A connection that failed after connecting.
fn stream_failure(e: &io::Error) -> ProbeOutcome {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            ProbeOutcome::Reset
        }
        _ => ProbeOutcome::Closed,
    }
}

/// Errors that say this process (or machine) has no room for another
/// connection now — no descriptor, no buffer, no local port: the target
/// is not to blame, so the probe waits and is tried again.
pub(crate) fn is_local_shortage(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        crate::accept::is_out_of_descriptors(e) || e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
    }
    #[cfg(not(unix))]
    {
        crate::accept::is_out_of_descriptors(e) || e.kind() == io::ErrorKind::AddrNotAvailable
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_refused_or_reset_connect_is_told_apart_from_one_that_found_no_way() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(connect_failure(&refused), ProbeOutcome::Refused);
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(connect_failure(&reset), ProbeOutcome::Reset);
        for errno in [libc::EHOSTUNREACH, libc::ENETUNREACH, libc::ETIMEDOUT] {
            assert_eq!(
                connect_failure(&io::Error::from_raw_os_error(errno)),
                ProbeOutcome::Unreachable
            );
        }
    }

    #[test]
    fn only_our_own_shortages_keep_a_probe_waiting() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::EADDRNOTAVAIL] {
            assert!(is_local_shortage(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ENETUNREACH] {
            assert!(!is_local_shortage(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }
}
