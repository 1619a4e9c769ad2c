//! What a driver does with its transport once the session is over: the
//! application is told at once, but the transport stays a little longer,
//! so that the last bytes the session counted as sent really leave.

use std::io;
use std::time::Duration;

use pulse_proto::{Closed, Session};

use crate::io::with_read_buffer;
use crate::mailbox::Mailbox;

/// Reads of what a peer sends after the end, per call of [`discard_input`]:
/// a peer that keeps sending does not hold the driver's thread.
pub const DISCARDING_READS: usize = 16;

/// How long a transport outlives its session, and what it waits for.
///
/// A stream that buffers (TLS) holds bytes the session counted as sent:
/// they need its flush and shutdown. And a TCP socket closed with bytes
/// unread (anything the peer sent after its CLOSE while reading was
/// paused) answers with a reset, which throws away what the kernel had
/// not yet sent: the last messages and the CLOSE. So after a graceful
/// ending the driver also reads and drops what the peer sends until it
/// ends its side. Either way for at most the close timeout.
///
/// # Examples
///
/// ```
/// use pulse_driver::{clock, Linger, Mailbox};
/// use pulse_proto::{CloseCode, Config, Role, Session};
///
/// let session = Session::new(Config::default(), Role::Client, clock::now(), 1).unwrap();
/// let mut mailbox = Mailbox::new(session);
/// let _ = mailbox.session.close(clock::now(), CloseCode::NORMAL, "done");
/// let linger = Linger::after(&mailbox);
/// assert!(linger.until_peer_ends);
/// assert_eq!(linger.timeout, Config::default().close_timeout);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linger {
    /// The longest the transport stays after the session is over: the
    /// session's close timeout.
    pub timeout: Duration,
    /// After the flush and shutdown, read and drop what the peer sends
    /// until it ends its side ([`Closed::is_graceful`]); otherwise the
    /// transport goes once its shutdown is out.
    pub until_peer_ends: bool,
}

impl Linger {
    /// For a session that ended as `closed` says.
    pub fn of(session: &Session, closed: &Closed) -> Linger {
        Linger {
            timeout: session.config().close_timeout,
            until_peer_ends: closed.is_graceful(),
        }
    }

    /// For a mailbox whose session is over.
    pub fn after(mailbox: &Mailbox) -> Linger {
        Linger::of(&mailbox.session, &mailbox.closed_or_pending())
    }
}

/// How [`discard_input`] left the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discarded {
    /// The peer ended its side, or the transport failed: drop it now.
    Ended,
    /// Nothing more now: wait for it to be readable.
    WouldBlock,
    /// [`DISCARDING_READS`] reads and still more: let others run, then
    /// go on.
    Busy,
}

/// Reads and drops what the peer still sends, with `read` the transport's
/// non-blocking read ("would block" when there is nothing), into this
/// thread's read buffer: up to [`DISCARDING_READS`] reads.
pub fn discard_input(mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> Discarded {
    for _ in 0..DISCARDING_READS {
        match with_read_buffer(&mut read) {
            Ok(0) => return Discarded::Ended,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Discarded::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Discarded::Ended,
        }
    }
    Discarded::Busy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discarding_ends_with_the_peer_waits_when_dry_and_is_bounded() {
        let mut left = 3;
        let mut reads = move |_: &mut [u8]| {
            left -= 1;
            Ok(if left > 0 { 10 } else { 0 })
        };
        assert_eq!(discard_input(&mut reads), Discarded::Ended);
        let dry = |_: &mut [u8]| Err(io::ErrorKind::WouldBlock.into());
        assert_eq!(discard_input(dry), Discarded::WouldBlock);
        let reset = |_: &mut [u8]| Err(io::ErrorKind::ConnectionReset.into());
        assert_eq!(discard_input(reset), Discarded::Ended);
        let mut count = 0;
        let endless = |_: &mut [u8]| {
            count += 1;
            Ok(1)
        };
        assert_eq!(discard_input(endless), Discarded::Busy);
        assert_eq!(count, DISCARDING_READS);
    }

    #[test]
    fn only_a_graceful_ending_waits_for_the_peer() {
        use pulse_proto::{CloseCode, Config, Initiator, Role};
        let session = Session::new(Config::default(), Role::Client, crate::clock::now(), 1).unwrap();
        let ended = |code| Linger::of(&session, &Closed::new(code, "", Initiator::Local)).until_peer_ends;
        assert!(ended(CloseCode::NORMAL) && ended(CloseCode::GOING_AWAY) && ended(CloseCode::from_wire(0x1234)));
        assert!(!ended(CloseCode::TIMED_OUT) && !ended(CloseCode::PROTOCOL_ERROR) && !ended(CloseCode::LOST));
    }
}
