//! What a connection hands its application.

use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{Closed, Negotiated, RttSample};

/// The next thing that happened on a connection, from
/// [`crate::Connection::recv`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// The handshake completed (first item on an accepted connection).
    Connected(Negotiated),
    /// An application message.
    Message {
        /// The application's message type or route.
        tag: u16,
        /// The message.
        payload: Bytes,
    },
    /// A heartbeat round trip was measured.
    Rtt(RttSample),
    /// The peer has not answered a PING in time; not a verdict.
    Suspect {
        /// Time since the last frame from the peer.
        silent_for: Duration,
    },
    /// The peer answered again.
    Recovered {
        /// How long it had been silent.
        silent_for: Duration,
    },
    /// The dead-peer verdict; [`Incoming::Closed`] follows.
    PeerDead {
        /// Time since the last frame from the peer.
        silent_for: Duration,
    },
    /// The connection is over. Returned again by every later `recv`.
    Closed(Closed),
}

impl Incoming {
    /// Whether the item is one that may be dropped when the application
    /// falls behind (its information is also available from accessors).
    pub(crate) fn is_lossy(&self) -> bool {
        matches!(
            self,
            Incoming::Rtt(_) | Incoming::Suspect { .. } | Incoming::Recovered { .. }
        )
    }
}
