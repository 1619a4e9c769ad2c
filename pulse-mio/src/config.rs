//! The loop's limits, with their defaults.

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::{Config, Transport};

/// How an [`crate::EventLoop`] (or an [`crate::Endpoint`]) runs.
/// Per-connection protocol limits (frame size, output queue, heartbeat
/// policy) are in [`LoopConfig::session`].
///
/// | field | default | why |
/// |---|---|---|
/// | `max_connections` | 100,000 | beyond it a new connection is refused with CLOSE "refused", logged, and the loop keeps serving |
/// | `timer_resolution` | 1 ms | the timer wheel's tick: verdicts come at most this late |
/// | `events_per_poll` | 1,024 | readiness events taken per `epoll_wait` |
/// | `reads_per_event` | 16 | reads of one TCP connection per turn before others get theirs |
/// | `datagrams_per_turn` | 64 | datagrams read from one UDP socket per turn: a flood on it cannot starve the TCP connections |
/// | `accepts_per_turn` | 64 | connections accepted from one listener per turn: a burst of connects cannot starve the open ones |
/// | `accept_retry` | 100 ms | out of file descriptors, accepting pauses this long (or until a connection of the loop closes) and is then retried |
/// | `max_commands` | 65,536 | commands from [`crate::Handle`]s waiting for the loop; one more is refused with [`crate::HandleError::Full`] |
///
/// Reads land in one buffer per thread (64 KiB, `pulse_driver::READ_BUFFER`).
///
/// The output queue of each connection is bounded by the session's
/// [`Config::max_queued_bytes`]: a send beyond it is refused with
/// `SendError::QueueFull` and [`crate::Handler::on_writable`] follows once
/// there is room. A peer that takes nothing for the dead-peer timeout is
/// closed by the session as a slow reader.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// The protocol configuration of every session. Its transport does not
    /// matter: TCP connections use it as a stream config, UDP listeners as a
    /// datagram config (`Config::with_transport`).
    pub session: Arc<Config>,
    /// Most connections held at once.
    pub max_connections: usize,
    /// Tick of the timer wheel.
    pub timer_resolution: Duration,
    /// Readiness events taken per poll.
    pub events_per_poll: usize,
    /// Reads of one TCP connection per turn.
    pub reads_per_event: usize,
    /// Datagrams read from one UDP socket per turn.
    pub datagrams_per_turn: usize,
    /// Connections accepted from one listener per turn.
    pub accepts_per_turn: usize,
    /// How long accepting pauses when the process is out of descriptors.
    pub accept_retry: Duration,
    /// Commands from handles that may wait for the loop.
    pub max_commands: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            session: Arc::new(Config::default()),
            max_connections: 100_000,
            timer_resolution: Duration::from_millis(1),
            events_per_poll: 1024,
            reads_per_event: 16,
            datagrams_per_turn: 64,
            accepts_per_turn: 64,
            accept_retry: Duration::from_millis(100),
            max_commands: 65_536,
        }
    }
}

impl LoopConfig {
    /// Defaults with this session configuration.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pulse_mio::LoopConfig;
    /// use pulse_proto::Config;
    ///
    /// let session = Config::default().with_timing(Duration::from_secs(5), Duration::from_secs(15));
    /// let config = LoopConfig::new(session);
    /// assert_eq!(config.max_connections, 100_000);
    /// ```
    pub fn new(session: impl Into<Arc<Config>>) -> Self {
        LoopConfig {
            session: session.into(),
            ..LoopConfig::default()
        }
    }

    /// The session config of TCP connections: [`LoopConfig::session`] on
    /// a stream transport.
    pub(crate) fn stream(&self) -> Arc<Config> {
        with_transport(&self.session, Transport::Stream)
    }
}

/// `config` on `transport`, shared as it is when it already is.
pub(crate) fn with_transport(config: &Arc<Config>, transport: Transport) -> Arc<Config> {
    if config.transport == transport {
        config.clone()
    } else {
        Arc::new((**config).clone().with_transport(transport))
    }
}
