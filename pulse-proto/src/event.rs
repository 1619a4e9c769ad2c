//! What a session tells its driver.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use bytes::Bytes;
use core::time::Duration;

use crate::close::{CloseCode, Initiator};
use crate::error::ProtocolError;
use crate::negotiated::Negotiated;
use crate::status::Status;

/// Something that happened, from [`crate::Session::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed; these are the values both sides use.
    Connected(Negotiated),
    /// An application message arrived.
    Message {
        /// The application's message type or route.
        tag: u16,
        /// The message.
        payload: Bytes,
    },
    /// A PONG answered our latest PING.
    Rtt(RttSample),
    /// Our PING went unanswered past the probe timeout: the session now
    /// probes faster. Not a verdict.
    Suspect {
        /// Time since the last frame from the peer.
        silent_for: Duration,
    },
    /// A frame arrived while suspect: suspicion is over.
    Recovered {
        /// How long the peer had been silent.
        silent_for: Duration,
    },
    /// Nothing arrived for the dead-peer timeout: the peer is dead. A
    /// [`Event::Closed`] with [`CloseCode::TIMED_OUT`] follows.
    PeerDead {
        /// Time since the last frame from the peer.
        silent_for: Duration,
    },
    /// After a `send` was refused with [`crate::SendError::QueueFull`], the
    /// output queue has room again (it is at most half full).
    SendReady,
    /// The peer reported its own state with a STATUS frame.
    PeerStatus(Status),
    /// New timings took effect in-session (a RETIME was agreed): the
    /// values both sides use from now on.
    Retimed(Negotiated),
    /// The session ended. Always the last event, sent once, and sent exactly
    /// when [`crate::Session::is_closed`] becomes true: then write what
    /// `poll_transmit` still yields that the transport takes at once, and
    /// drop the transport. Messages the session never began to send come
    /// back from [`crate::Session::poll_unsent`].
    Closed(Closed),
}

/// How a session ended.
///
/// # Examples
///
/// ```
/// use pulse_proto::{CloseCode, Closed, Initiator};
///
/// let closed = Closed::new(CloseCode::GOING_AWAY, "restarting", Initiator::Peer);
/// assert_eq!(closed.to_string(), "closed by the peer: going away (0x0001): restarting");
/// let error: &dyn std::error::Error = &closed;
/// assert!(error.source().is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// The close code: the one sent by whoever initiated.
    pub code: CloseCode,
    /// The reason that went with it.
    pub reason: String,
    /// Who initiated.
    pub initiator: Initiator,
    /// When the peer broke the protocol: what it did.
    pub error: Option<ProtocolError>,
}

impl Closed {
    /// How a session ended: `code`, `reason`, who began it; no protocol
    /// error. For adapters that report endings of their own (a connection
    /// that never opened, say).
    pub fn new(code: CloseCode, reason: impl Into<String>, initiator: Initiator) -> Closed {
        Closed {
            code,
            reason: reason.into(),
            initiator,
            error: None,
        }
    }

    /// Whether the session ended by agreement (§8.2): normal, going away,
    /// or an application's code; not an error, a timeout or a lost peer.
    /// After such an ending the peer is alive and ends its side of the
    /// transport once it has our CLOSE, so an adapter may wait for that
    /// (a socket closed with bytes unread answers with a reset, which
    /// throws away our last bytes); after any other ending nothing is
    /// worth the wait.
    ///
    /// ```
    /// use pulse_proto::{CloseCode, Closed, Initiator};
    ///
    /// assert!(Closed::new(CloseCode::NORMAL, "done", Initiator::Peer).is_graceful());
    /// assert!(Closed::new(CloseCode::from_wire(0x1001), "app", Initiator::Local).is_graceful());
    /// assert!(!Closed::new(CloseCode::TIMED_OUT, "silent", Initiator::Local).is_graceful());
    /// ```
    pub fn is_graceful(&self) -> bool {
        self.code.is_application() || self.code == CloseCode::NORMAL || self.code == CloseCode::GOING_AWAY
    }
}

impl core::fmt::Display for Closed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.initiator {
            Initiator::Local => write!(f, "closed here: {}", self.code)?,
            Initiator::Peer => write!(f, "closed by the peer: {}", self.code)?,
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl core::error::Error for Closed {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.error.as_ref().map(|e| e as _)
    }
}

/// One RTT measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RttSample {
    /// This round trip's network time: PONG arrival − PING departure − hold.
    pub rtt: Duration,
    /// How long the peer held the PING before answering. A large hold with a
    /// small `rtt` means the peer's process is slow, not the network.
    pub peer_hold: Duration,
    /// The smoothed RTT after this sample.
    pub smoothed: Duration,
}

impl RttSample {
    /// A measurement, for tests and for drivers that replay events.
    pub fn new(rtt: Duration, peer_hold: Duration, smoothed: Duration) -> RttSample {
        RttSample {
            rtt,
            peer_hold,
            smoothed,
        }
    }
}

/// Events waiting for the driver; boxed and present only while there are
/// some, so an idle session carries one pointer for them.
#[derive(Debug, Default)]
// The box is the point: 8 bytes in every session instead of 32.
#[allow(clippy::box_collection)]
pub(crate) struct EventQueue(Option<Box<VecDeque<Event>>>);

impl EventQueue {
    pub(crate) fn push_back(&mut self, event: Event) {
        self.0.get_or_insert_with(Box::default).push_back(event);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Event> {
        let queue = self.0.as_mut()?;
        let event = queue.pop_front();
        if queue.is_empty() {
            self.0 = None;
        }
        event
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| {
            core::mem::size_of::<VecDeque<Event>>() + q.capacity() * core::mem::size_of::<Event>()
        })
    }
}
