//! The loop's limits, with their defaults.

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::Config;

/// How an [`crate::EventLoop`] runs. Per-connection protocol limits (frame
/// size, output queue, heartbeat policy) are in [`LoopConfig::session`].
///
/// | field | default | why |
/// |---|---|---|
/// | `max_connections` | 100,000 | beyond it a new connection is refused with CLOSE "refused", logged, and the loop keeps serving |
/// | `read_buffer` | 64 KiB | one buffer for the whole loop; reads land there and go straight to the session |
/// | `timer_resolution` | 1 ms | the timer wheel's tick: verdicts come at most this late |
/// | `events_per_poll` | 1,024 | readiness events taken per `epoll_wait` |
/// | `reads_per_event` | 16 | reads of one connection before others get a turn |
///
/// The output limit per connection is the session's
/// [`Config::max_queued_bytes`]: a send that would exceed it closes that
/// connection with "slow reader" rather than buffer without bound.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// The protocol configuration of every session.
    pub session: Arc<Config>,
    /// Most connections held at once.
    pub max_connections: usize,
    /// Bytes of the loop's one read buffer.
    pub read_buffer: usize,
    /// Tick of the timer wheel.
    pub timer_resolution: Duration,
    /// Readiness events taken per poll.
    pub events_per_poll: usize,
    /// Reads of one connection per turn.
    pub reads_per_event: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            session: Arc::new(Config::default()),
            max_connections: 100_000,
            read_buffer: 64 * 1024,
            timer_resolution: Duration::from_millis(1),
            events_per_poll: 1024,
            reads_per_event: 16,
        }
    }
}

impl LoopConfig {
    /// Defaults with this session configuration.
    pub fn new(session: impl Into<Arc<Config>>) -> Self {
        LoopConfig {
            session: session.into(),
            ..LoopConfig::default()
        }
    }
}
