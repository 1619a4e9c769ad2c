//! Moving bytes between a transport and a session: the transmit loop and
//! reading into one buffer per thread.

use std::cell::RefCell;
use std::io;

use pulse_proto::{Session, Transport};

use crate::clock;

/// The shared read buffer's size: one per thread, never per connection.
pub const READ_BUFFER: usize = 64 * 1024;

thread_local! {
    /// Reads land here and are handed to the session at once, so an idle
    /// connection holds no read buffer of its own.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUFFER]);
}

/// Runs `f` with this thread's read buffer.
pub fn with_read_buffer<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    READ_BUF.with(|buf| f(&mut buf.borrow_mut()))
}

/// How a [`flush`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushed {
    /// The session has nothing more to send now.
    Done,
    /// The transport takes no more now: wait for it to be writable. What it
    /// did not take stays in the session, where heartbeats can overtake it.
    Blocked,
    /// The stream failed; the session has been told (as an end of stream).
    Failed,
}

/// Writes what the transport takes now: the drive loop's first step, after
/// any call into the session. `write` is the transport's non-blocking
/// write. On datagrams, a datagram the transport refuses is lost, as
/// datagrams may be; with `drop_when_full`, so is one that would block (a
/// socket shared by many peers is never waited on by one of them).
pub fn flush(
    session: &mut Session,
    now: pulse_proto::Instant,
    mut write: impl FnMut(&[u8]) -> io::Result<usize>,
    drop_when_full: bool,
) -> Flushed {
    let datagram = session.transport() == Transport::Datagram;
    while let Some(bytes) = session.poll_transmit(now) {
        let len = bytes.len();
        match write(bytes) {
            Ok(0) if !datagram && len > 0 => {
                session.handle_eof(now);
                return Flushed::Failed;
            }
            Ok(n) => session.advance_transmit(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if datagram && drop_when_full {
                    session.advance_transmit(0);
                } else {
                    return Flushed::Blocked;
                }
            }
            Err(_) if datagram => session.advance_transmit(0),
            Err(_) => {
                session.handle_eof(now);
                return Flushed::Failed;
            }
        }
    }
    Flushed::Done
}

/// How reading ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The transport has nothing more now.
    Drained,
    /// The budget ran out with more to read: read again after others had a
    /// turn.
    More,
    /// The session paused input (its application is behind): read again
    /// after `Session::resume_input`.
    Paused,
    /// The stream ended or failed, or the session closed.
    Closed,
}

/// Reads a stream until it has nothing more, or `budget` reads were made,
/// handing each read to the session at once, with the time it was read.
/// A read shorter than the buffer is taken as "drained" when
/// `short_read_drains` (the reactor reports later data anyway), saving the
/// read that would only say "would block".
pub fn read_stream(
    session: &mut Session,
    budget: usize,
    short_read_drains: bool,
    mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> (Read, usize) {
    let mut total = 0;
    for _ in 0..budget.max(1) {
        if session.is_input_paused() {
            return (Read::Paused, total);
        }
        let result = with_read_buffer(|buf| match read(buf) {
            Ok(0) => {
                session.handle_eof(clock::now());
                Ok(Read::Closed)
            }
            Ok(n) => {
                session.handle_input(clock::now(), &buf[..n]);
                total += n;
                Ok(if short_read_drains && n < buf.len() {
                    Read::Drained
                } else {
                    Read::More
                })
            }
            Err(e) => Err(e),
        });
        match result {
            Ok(Read::More) if !session.is_closed() => {}
            Ok(Read::More) => return (Read::Closed, total),
            Ok(outcome) => return (outcome, total),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Read::Drained, total),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                session.handle_eof(clock::now());
                return (Read::Closed, total);
            }
        }
    }
    (Read::More, total)
}

/// Reads datagrams from a socket connected to the peer until it has none,
/// or `budget` were read. Errors (ICMP reports) say little about the peer:
/// only the protocol convicts, so they convict nobody. A report is
/// consumed by the read that returns it, and the socket is read again at
/// once: runtimes (tokio, async-io) hand back such an error without
/// registering for readiness, so a driver that stopped there would not
/// hear the peer's next datagram until its own timer fired. A second
/// error in a row ends the reading (no spin on a socket that only fails).
pub fn read_datagram(
    session: &mut Session,
    budget: usize,
    mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
) -> (Read, usize) {
    let mut total = 0;
    let mut reads = 0;
    let mut failed_last = false;
    while reads < budget.max(1) {
        if session.is_input_paused() {
            return (Read::Paused, total);
        }
        let result = with_read_buffer(|buf| recv(buf).inspect(|&n| session.handle_datagram(clock::now(), &buf[..n])));
        match result {
            Ok(n) => {
                total += n;
                reads += 1;
                failed_last = false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (Read::Drained, total),
            Err(_) if !failed_last => failed_last = true,
            Err(_) => return (Read::Drained, total),
        }
        if session.is_closed() {
            return (Read::Closed, total);
        }
    }
    (Read::More, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_proto::{Config, Role};

    #[test]
    fn a_full_transport_keeps_the_rest_in_the_session() {
        let mut session = Session::new(Config::default(), Role::Client, clock::now(), 1).unwrap();
        let mut taken = Vec::new();
        let flushed = flush(
            &mut session,
            clock::now(),
            |bytes| {
                if taken.is_empty() {
                    taken.extend_from_slice(&bytes[..3]);
                    Ok(3)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            },
            false,
        );
        assert_eq!(flushed, Flushed::Blocked);
        assert_eq!(taken.len(), 3);
        let rest = session.poll_transmit(clock::now()).unwrap();
        assert_eq!(rest.len(), 22 - 3, "the HELLO's rest waits in the session");
    }

    #[test]
    fn a_stream_that_fails_or_ends_is_an_end_of_stream_to_the_session() {
        let mut session = Session::new(Config::default(), Role::Client, clock::now(), 1).unwrap();
        let flushed = flush(
            &mut session,
            clock::now(),
            |_| Err(io::ErrorKind::ConnectionReset.into()),
            false,
        );
        assert_eq!(flushed, Flushed::Failed);
        assert!(session.is_closed());
        let mut session = Session::new(Config::default(), Role::Server, clock::now(), 1).unwrap();
        assert_eq!(read_stream(&mut session, 16, true, |_| Ok(0)), (Read::Closed, 0));
        assert!(session.is_closed());
    }

    #[test]
    fn an_error_report_is_read_past_and_a_socket_that_only_fails_is_left() {
        let mut session = Session::new(Config::new(Transport::Datagram), Role::Server, clock::now(), 1).unwrap();
        let mut reads = 0;
        let (read, _) = read_datagram(&mut session, 1, |_| {
            reads += 1;
            match reads {
                1 => Err(io::ErrorKind::ConnectionRefused.into()),
                _ => Err(io::ErrorKind::WouldBlock.into()),
            }
        });
        assert_eq!((read, reads), (Read::Drained, 2), "the read after the report registers");
        let mut reads = 0;
        let (read, _) = read_datagram(&mut session, 4, |_| {
            reads += 1;
            Err(io::ErrorKind::ConnectionRefused.into())
        });
        assert_eq!((read, reads), (Read::Drained, 2));
    }

    #[test]
    fn a_short_read_drains_and_bad_input_closes() {
        let mut session = Session::new(Config::default(), Role::Server, clock::now(), 1).unwrap();
        let magic = pulse_proto::frame::MAGIC;
        let (read, total) = read_stream(&mut session, 4, true, |buf| {
            buf[..4].copy_from_slice(&magic);
            Ok(4)
        });
        assert_eq!((read, total), (Read::Drained, 4));
        let (read, _) = read_stream(&mut session, 4, true, |buf| {
            buf.fill(0); // frame type 0 is reserved: a protocol error
            Ok(buf.len())
        });
        assert_eq!(read, Read::Closed);
        assert!(session.is_closed());
    }
}
