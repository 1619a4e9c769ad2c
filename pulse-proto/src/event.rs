//! What a session tells its driver.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use bytes::Bytes;
use core::time::Duration;

use crate::close::{CloseCode, Initiator};
use crate::error::ProtocolError;

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
    /// The session ended. Always the last event, and always sent once.
    Closed(Closed),
}

/// How a session ended.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The values agreed in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Protocol version.
    pub version: u8,
    /// Heartbeat interval.
    pub interval: Duration,
    /// Dead-peer timeout.
    pub dead_timeout: Duration,
    /// Largest frame body the peer accepts.
    pub peer_max_frame_len: u32,
    /// Ping policy: shortest spacing between PINGs, both ways.
    pub min_ping_spacing: Duration,
    /// Ping policy: strikes tolerated.
    pub ping_strikes: u8,
}

/// One RTT measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttSample {
    /// This round trip's network time: PONG arrival − PING departure − hold.
    pub rtt: Duration,
    /// How long the peer held the PING before answering. A large hold with a
    /// small `rtt` means the peer's process is slow, not the network.
    pub peer_hold: Duration,
    /// The smoothed RTT after this sample.
    pub smoothed: Duration,
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
