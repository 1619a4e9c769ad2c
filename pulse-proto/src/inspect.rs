//! What a driver or application can ask a session, without changing it.

use core::time::Duration;

use crate::config::{Config, Transport};
use crate::frame::data_overhead;
use crate::negotiated::Negotiated;
use crate::rtt::RttEstimator;
use crate::session::{Role, Session, State};
use crate::stats::Stats;

impl Session {
    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the session is over. It becomes true exactly when
    /// [`crate::Event::Closed`] is queued: then write what `poll_transmit`
    /// still yields that the transport takes at once, and drop the
    /// transport. A graceful close is over only once its CLOSE, and the
    /// DATA queued before it, were taken by the transport.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The kind of transport the session runs over.
    pub fn transport(&self) -> Transport {
        self.config.transport
    }

    /// The configuration the session was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The agreed values, once connected.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    /// Smoothed network RTT, once measured.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.has_sample().then(|| self.rtt.smoothed())
    }

    /// The RTT estimator, for variance and the peer's hold.
    pub fn rtt_estimator(&self) -> &RttEstimator {
        &self.rtt
    }

    /// Whether the peer is suspect now.
    pub fn is_suspect(&self) -> bool {
        self.state == State::Established && self.liveness.is_suspect()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes of DATA frames (headers included) queued and not yet staged
    /// for the wire: what [`crate::Config::max_queued_bytes`] limits.
    pub fn queued_bytes(&self) -> usize {
        self.output.queued()
    }

    /// Heap bytes the session holds now for input, output and undrained
    /// events. Zero on an idle session whose events were drained.
    pub fn buffered_bytes(&self) -> usize {
        self.decoder.capacity() + self.output.heap_bytes() + self.events.heap_bytes()
    }

    /// The largest payload `send` accepts now.
    pub fn max_payload(&self) -> usize {
        let frame = self
            .negotiated
            .map_or(0, |n| n.peer_max_frame_len as usize)
            .saturating_sub(2);
        match self.config.transport {
            Transport::Stream => frame,
            Transport::Datagram => {
                let room = self
                    .config
                    .max_datagram_size
                    .saturating_sub(data_overhead(self.config.max_datagram_size));
                frame.min(room)
            }
        }
    }
}
