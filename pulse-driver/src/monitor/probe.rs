//! One probe's connection, whatever waits on it: a non-blocking TCP
//! connect, and for HTTP the request written and the response read. What
//! happens is reported in the monitor's own words (`ProbeOutcome`, the
//! response bytes); whether that passes the check is the monitor's to say.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use pulse_monitor::{ProbeId, ProbeOutcome};
use socket2::SockRef;

/// A probe the monitor asked for: which, and for HTTP the request bytes
/// (shared by every probe of one check).
#[derive(Clone, Debug)]
pub struct Order {
    /// The probe.
    pub id: ProbeId,
    /// The bytes to send once connected (an HTTP request, a pulse HELLO),
    /// or `None` for a TCP connect check.
    pub request: Option<Arc<[u8]>>,
}

/// Where a probe's connect stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Still connecting (a spurious wake-up).
    Connecting,
    /// The connect completed now: report `Connected`.
    Connected,
    /// The connection failed or ended: report this, then drop it.
    Failed(ProbeOutcome),
    /// Connected before, or nothing to do.
    Idle,
}

/// A probe's progress on its connection: the runtime keeps the socket
/// beside it and calls [`crate::monitor::WatchCore::advance`] whenever
/// the socket may be ready.
#[derive(Debug)]
pub struct ProbeConn {
    order: Order,
    /// The connect completed (and was reported).
    connected: bool,
    /// Request bytes written so far.
    written: usize,
    /// The response so far, at most the monitor's `max_response_bytes`.
    response: Vec<u8>,
}

impl ProbeConn {
    /// A probe whose connect was started (with [`connect`]).
    pub fn new(order: Order) -> ProbeConn {
        ProbeConn {
            order,
            connected: false,
            written: 0,
            response: Vec::new(),
        }
    }

    /// The probe.
    pub fn id(&self) -> ProbeId {
        self.order.id
    }

    /// Whether the connect has completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether request bytes wait to be written: wait for writability.
    pub fn wants_write(&self) -> bool {
        self.order.request.as_ref().is_some_and(|r| self.written < r.len())
    }

    /// Whether this probe sends a request and waits for its response (an
    /// HTTP check or a pulse handshake), rather than passing on connect.
    pub fn is_http(&self) -> bool {
        self.order.request.is_some()
    }

    /// Whether the connect has completed, failed, or is still under way:
    /// the pending error first, then the peer's address.
    pub(crate) fn finish_connect(&mut self, socket: SockRef<'_>) -> Step {
        if self.connected {
            return Step::Idle;
        }
        match socket.take_error() {
            Ok(Some(e)) | Err(e) => return Step::Failed(connect_failure(&e)),
            Ok(None) => {}
        }
        match socket.peer_addr() {
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
    pub(crate) fn write_request(&mut self, mut stream: impl Write) -> Step {
        let Some(request) = &self.order.request else {
            return Step::Idle;
        };
        while self.written < request.len() {
            match stream.write(&request[self.written..]) {
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
    pub(crate) fn read_response(&mut self, mut stream: impl Read, limit: usize) -> (bool, Option<ProbeOutcome>) {
        let mut got = false;
        while self.response.len() < limit {
            let read = crate::with_read_buffer(|buf| {
                stream.read(buf).inspect(|&n| {
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

    pub(crate) fn response(&self) -> &[u8] {
        &self.response
    }
}

/// Starts a non-blocking TCP connect to `addr`: the stream is returned at
/// once, its connect under way. Wait for it to be writable, then hand it
/// to [`crate::monitor::WatchCore::advance`].
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// Closes with a reset rather than a FIN, once the socket is dropped: the
/// monitor's side keeps no TIME_WAIT for each of its thousands of probes
/// a minute, and the target frees the connection at once.
pub fn reset_on_close(socket: SockRef<'_>) {
    let _ = socket.set_linger(Some(std::time::Duration::ZERO));
}

/// A connect that failed, in the monitor's words.
pub fn connect_failure(e: &io::Error) -> ProbeOutcome {
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
pub fn is_local_shortage(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EADDRNOTAVAIL)
        )
    }
    #[cfg(not(unix))]
    {
        matches!(e.kind(), io::ErrorKind::AddrNotAvailable | io::ErrorKind::OutOfMemory)
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

    #[test]
    fn a_connect_to_a_closed_port_fails_as_refused_and_to_a_listener_completes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            gone.local_addr().unwrap()
        };
        for (addr, expected) in [(open, Step::Connected), (closed, Step::Failed(ProbeOutcome::Refused))] {
            let stream = connect(addr).unwrap();
            let order = Order {
                id: probe_id(),
                request: None,
            };
            let mut conn = ProbeConn::new(order);
            let started = std::time::Instant::now();
            let step = loop {
                match conn.finish_connect(SockRef::from(&stream)) {
                    Step::Connecting => {
                        assert!(started.elapsed() < std::time::Duration::from_secs(10));
                        std::thread::yield_now();
                    }
                    step => break step,
                }
            };
            assert_eq!(step, expected, "{addr}");
        }
    }

    /// A real probe id, from a monitor that asks for one.
    fn probe_id() -> ProbeId {
        use pulse_monitor::{Check, Config, Monitor, Probe, TargetSpec};
        let now = pulse_proto::Instant::ZERO;
        let mut monitor = Monitor::new(Config::lan(), now, 1).unwrap();
        let pool = monitor.add_pool();
        let tcp = monitor.add_check(Check::Tcp);
        monitor.add_target(now, TargetSpec::checked(pool, tcp)).unwrap();
        // The first deadlines may be the monitor's housekeeping: run them
        // until the probe's comes.
        for _ in 0..100 {
            let deadline = monitor.poll_timeout().unwrap();
            monitor.handle_timeout(deadline);
            if let Some(probe) = monitor.poll_probe() {
                match probe {
                    Probe::Start { id, .. } => return id,
                    other => panic!("{other:?}"),
                }
            }
        }
        panic!("no probe started");
    }
}
