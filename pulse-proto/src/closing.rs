//! How a session ends: what the ending is, and when a graceful one is
//! complete. Decisions only; the session makes the transitions.

use alloc::string::String;

use crate::close::{CloseCode, Initiator};
use crate::error::ProtocolError;
use crate::event::Closed;
use crate::frame::Frame;
use crate::time::Instant;

/// How the session is ending; boxed, since most sessions are not.
#[derive(Debug)]
pub(crate) struct Ending {
    pub(crate) closed: Closed,
    /// A graceful close gives up at this instant.
    pub(crate) deadline: Instant,
    /// Our CLOSE is in the bytes handed to the driver.
    pub(crate) close_staged: bool,
    /// Our CLOSE has been taken by the transport, all of it.
    pub(crate) close_sent: bool,
    /// The peer's CLOSE has arrived (or its stream ended).
    pub(crate) peer_done: bool,
}

impl Ending {
    pub(crate) fn new(closed: Closed, deadline: Instant) -> Ending {
        Ending {
            peer_done: closed.initiator == Initiator::Peer,
            closed,
            deadline,
            close_staged: false,
            close_sent: false,
        }
    }

    /// Whether a graceful close has done all it waits for: our CLOSE (after
    /// the DATA queued before it) is out, and the peer has closed too.
    pub(crate) fn is_complete(&self) -> bool {
        self.close_sent && self.peer_done
    }

    /// The CLOSE this session sends: its own code and reason, or,
    /// answering the peer's CLOSE, the peer's code with no reason.
    pub(crate) fn close_frame(&self) -> Frame {
        let reason = match self.closed.initiator {
            Initiator::Peer => String::new(),
            Initiator::Local => self.closed.reason.clone(),
        };
        Frame::Close {
            code: self.closed.code,
            reason,
        }
    }
}

/// The ending a protocol error calls for: its close code, and a reason
/// that says what the peer did.
pub(crate) fn for_error(error: ProtocolError) -> Closed {
    use alloc::string::ToString;
    let mut closed = Closed::new(
        error.close_code(),
        crate::frame::truncate_reason(&error.to_string()),
        Initiator::Local,
    );
    closed.error = Some(error);
    closed
}

/// A local ending with `code` and `reason`.
pub(crate) fn local(code: CloseCode, reason: &str) -> Closed {
    Closed::new(code, crate::frame::truncate_reason(reason), Initiator::Local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_graceful_close_is_complete_only_with_our_close_out_and_the_peers_in() {
        let mut ours = Ending::new(local(CloseCode::NORMAL, "bye"), Instant::ZERO);
        assert!(!ours.is_complete());
        ours.close_sent = true;
        assert!(!ours.is_complete(), "we began it: the peer's CLOSE is awaited");
        ours.peer_done = true;
        assert!(ours.is_complete());

        let mut theirs = Ending::new(Closed::new(CloseCode::NORMAL, "", Initiator::Peer), Instant::ZERO);
        assert!(!theirs.is_complete(), "our answer is not out yet");
        theirs.close_sent = true;
        assert!(theirs.is_complete());
    }

    #[test]
    fn an_answer_echoes_the_code_without_a_reason() {
        let theirs = Ending::new(
            Closed::new(CloseCode::GOING_AWAY, "restart", Initiator::Peer),
            Instant::ZERO,
        );
        assert_eq!(
            theirs.close_frame(),
            Frame::Close {
                code: CloseCode::GOING_AWAY,
                reason: String::new()
            }
        );
        let ours = Ending::new(local(CloseCode::NORMAL, "done"), Instant::ZERO);
        assert_eq!(
            ours.close_frame(),
            Frame::Close {
                code: CloseCode::NORMAL,
                reason: "done".into()
            }
        );
    }
}
