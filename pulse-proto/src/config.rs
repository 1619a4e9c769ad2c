//! Session configuration: every limit and timing, with documented defaults.

use core::time::Duration;

use crate::error::ConfigError;

/// Which kind of transport carries the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// A reliable, ordered byte stream (TCP, a Unix socket, TLS). Frames are
    /// delimited by their length; DATA is reliable and ordered.
    #[default]
    Stream,
    /// Datagrams (UDP). Each datagram holds whole frames; datagrams may be
    /// lost, duplicated or reordered, and so may DATA: it is unreliable.
    Datagram,
}

/// Everything a session needs to know before it starts.
///
/// A client uses `interval` and `dead_timeout` as its request; a server uses
/// `min_interval`, `max_interval`, `max_dead_timeout` and the ping policy
/// (`min_ping_spacing`, `ping_strikes`) to decide what is agreed. Both use the
/// rest. [`Config::validate`] says what fits together; `Session::new` calls it.
///
/// The struct is `#[non_exhaustive]`: build it from [`Config::default`] (or
/// [`Config::new`]) and the `with_*` setters, so fields can be added without
/// breaking you. Its fields stay public to read.
///
/// ```
/// use core::time::Duration;
/// use pulse_proto::{Config, Transport};
///
/// let config = Config::new(Transport::Datagram)
///     .with_timing(Duration::from_secs(1), Duration::from_secs(3))
///     .with_max_frame_len(64 * 1024);
/// assert_eq!(config.validate(), Ok(()));
/// ```
///
/// The defaults, and why (see "Defaults, and why" in [the
/// protocol](crate::protocol) for the comparison with gRPC keepalive, MQTT
/// and QUIC):
///
/// | field | default | why |
/// |---|---|---|
/// | `interval` | 10 s | keeps NAT and load-balancer mappings (often 30–60 s idle) alive with margin; 360 round trips of 16 bytes an hour |
/// | `dead_timeout` | 30 s | three intervals: one lost PING never convicts |
/// | `min_interval` / `max_interval` | 1 s / 300 s | a server bounds what clients may ask; a request outside is clamped, and [`crate::Negotiated::adjustments`] says so |
/// | `max_dead_timeout` | 600 s | a server bounds how long it holds a silent peer |
/// | `jitter_percent` | 10 | spreads PINGs of connections opened together |
/// | `probe_floor` | 250 ms | smallest probe timeout, above loopback and LAN scheduling noise; never more than a quarter of the agreed interval |
/// | `min_ping_spacing` / `ping_strikes` | 500 ms / 2 | no honest peer pings faster; two strikes as in gRPC |
/// | `max_frame_len` | 256 KiB | bounds per-connection memory against any peer |
/// | `max_queued_bytes` | 1 MiB | bounds output the application may queue |
/// | `max_datagram_size` | 1200 | fits any path's MTU (QUIC's choice) |
/// | `handshake_timeout` | 10 s | a peer that does not finish its handshake holds nothing for long |
/// | `close_timeout` | 5 s | a graceful close, drain included, ends in bounded time |
/// | `stall_threshold` | 1 s | a timer this late means our own process stalled; never more than a quarter of the agreed interval |
/// | `slow_reader_timeout` | the dead-peer timeout | output the transport takes nothing of for this long means the peer does not read |
/// | `cookie_lifetime` | 20 s | how long a datagram server's address-validation cookie stays valid |
/// | `adaptive` | off | a client may learn the path's idle timeout and ping just under it ([`crate::AdaptiveConfig`]) |
/// | `allow_retime` | on | a server agrees to new timings in-session (clamped into its range); off, it keeps the handshake's |
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Stream or datagram transport.
    pub transport: Transport,
    /// Heartbeat interval a client asks for.
    pub interval: Duration,
    /// Dead-peer timeout a client asks for: silence this long is death.
    pub dead_timeout: Duration,
    /// Shortest interval a server agrees to.
    pub min_interval: Duration,
    /// Longest interval a server agrees to.
    pub max_interval: Duration,
    /// Longest dead-peer timeout a server agrees to (never below twice the
    /// agreed interval).
    pub max_dead_timeout: Duration,
    /// Each interval is drawn within ± this percentage (0–50).
    pub jitter_percent: u8,
    /// Smallest probe timeout: how long a PING may go unanswered before the
    /// peer is suspect, whatever the measured RTT. A quarter of the agreed
    /// interval is used when that is smaller.
    pub probe_floor: Duration,
    /// Ping policy a server states: the shortest spacing between PINGs
    /// either side sends (`docs/PROTOCOL.md` §6.8).
    pub min_ping_spacing: Duration,
    /// Ping policy a server states: PINGs tolerated beyond the policy's
    /// burst allowance; one more closes the session with "too many pings".
    pub ping_strikes: u8,
    /// Largest frame body this side accepts (the length field), in bytes.
    pub max_frame_len: u32,
    /// Most bytes of DATA frames (headers included, so even empty messages
    /// count) the application may have queued for sending; a `send` beyond
    /// it is refused with [`crate::SendError::QueueFull`].
    pub max_queued_bytes: usize,
    /// Largest datagram this side sends (datagram transport only).
    pub max_datagram_size: usize,
    /// Time allowed for the handshake to complete.
    pub handshake_timeout: Duration,
    /// Time allowed for a graceful close: the drain of queued data and the
    /// peer's answering CLOSE.
    pub close_timeout: Duration,
    /// A `handle_timeout` later than this past the deadline means our own
    /// process stalled: the peer gets a full probe round before any verdict.
    /// A quarter of the agreed interval is used when that is smaller.
    pub stall_threshold: Duration,
    /// How long output may wait with not one byte taken by the transport
    /// before the peer is closed as a slow reader. `None`: the agreed
    /// dead-peer timeout (a peer that reads nothing for that long cannot
    /// have seen our PONGs either).
    pub slow_reader_timeout: Option<Duration>,
    /// How long a datagram server's address-validation cookie stays valid
    /// ([`crate::Gate`]).
    pub cookie_lifetime: Duration,
    /// A client's adaptive heartbeat interval: when set, `interval` and
    /// `dead_timeout` are only the fallback, and the client learns the
    /// longest idle gap the path tolerates, renegotiating as it learns
    /// (`docs/PROTOCOL.md` §6.10, §6.11). Ignored by a server.
    pub adaptive: Option<crate::AdaptiveConfig>,
    /// Whether a server agrees to new timings in-session (RETIME), clamped
    /// into its range; when off it answers with the handshake's values.
    pub allow_retime: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            transport: Transport::Stream,
            interval: Duration::from_secs(10),
            dead_timeout: Duration::from_secs(30),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(300),
            max_dead_timeout: Duration::from_secs(600),
            jitter_percent: 10,
            probe_floor: Duration::from_millis(250),
            min_ping_spacing: Duration::from_millis(500),
            ping_strikes: 2,
            max_frame_len: 256 * 1024,
            max_queued_bytes: 1024 * 1024,
            max_datagram_size: 1200,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            stall_threshold: Duration::from_secs(1),
            slow_reader_timeout: None,
            cookie_lifetime: Duration::from_secs(20),
            adaptive: None,
            allow_retime: true,
        }
    }
}

/// The longest duration the wire can carry: `u32::MAX` milliseconds.
pub const MAX_WIRE_DURATION: Duration = Duration::from_millis(u32::MAX as u64);
/// The shortest heartbeat interval anything may use.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The smallest `max_frame_len`: room for every control frame.
pub const MIN_FRAME_LEN: u32 = 256;
/// The largest `max_frame_len`: what a four-byte length holds.
pub const MAX_FRAME_LEN: u32 = (1 << 30) - 1;
/// The largest frame either side accepts before the handshake completes:
/// every handshake frame fits, so an unknown peer cannot make us buffer more.
pub const HANDSHAKE_FRAME_LEN: u32 = MIN_FRAME_LEN;

fn check(ok: bool, field: &'static str, rule: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { field, rule })
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $field:ident: $ty:ty;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$field = value;
                self
            }
        )*
    };
}

impl Config {
    /// A default config for the given transport.
    pub fn new(transport: Transport) -> Self {
        Config {
            transport,
            ..Config::default()
        }
    }

    setters! {
        /// Sets [`Config::transport`].
        with_transport: transport: Transport;
        /// Sets [`Config::interval`] alone; see [`Config::with_timing`] to
        /// set it with the timeout and widen a server's range to match.
        with_interval: interval: Duration;
        /// Sets [`Config::dead_timeout`].
        with_dead_timeout: dead_timeout: Duration;
        /// Sets [`Config::min_interval`].
        with_min_interval: min_interval: Duration;
        /// Sets [`Config::max_interval`].
        with_max_interval: max_interval: Duration;
        /// Sets [`Config::max_dead_timeout`].
        with_max_dead_timeout: max_dead_timeout: Duration;
        /// Sets [`Config::jitter_percent`].
        with_jitter_percent: jitter_percent: u8;
        /// Sets [`Config::probe_floor`].
        with_probe_floor: probe_floor: Duration;
        /// Sets [`Config::min_ping_spacing`].
        with_min_ping_spacing: min_ping_spacing: Duration;
        /// Sets [`Config::ping_strikes`].
        with_ping_strikes: ping_strikes: u8;
        /// Sets [`Config::max_frame_len`].
        with_max_frame_len: max_frame_len: u32;
        /// Sets [`Config::max_queued_bytes`].
        with_max_queued_bytes: max_queued_bytes: usize;
        /// Sets [`Config::max_datagram_size`].
        with_max_datagram_size: max_datagram_size: usize;
        /// Sets [`Config::handshake_timeout`].
        with_handshake_timeout: handshake_timeout: Duration;
        /// Sets [`Config::close_timeout`].
        with_close_timeout: close_timeout: Duration;
        /// Sets [`Config::stall_threshold`].
        with_stall_threshold: stall_threshold: Duration;
        /// Sets [`Config::slow_reader_timeout`].
        with_slow_reader_timeout: slow_reader_timeout: Option<Duration>;
        /// Sets [`Config::cookie_lifetime`].
        with_cookie_lifetime: cookie_lifetime: Duration;
        /// Sets [`Config::adaptive`].
        with_adaptive: adaptive: Option<crate::AdaptiveConfig>;
        /// Sets [`Config::allow_retime`].
        with_allow_retime: allow_retime: bool;
    }

    /// This config asking for `interval` and `dead_timeout`, with the
    /// server's range and ping policy widened where needed to accept them
    /// (`min_interval` lowered to `interval`, `max_dead_timeout` raised to
    /// `dead_timeout`, `min_ping_spacing` lowered to half of `min_interval`),
    /// so both ends can use the same config and get what they asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use pulse_proto::Config;
    ///
    /// let fast = Config::default().with_timing(Duration::from_millis(200), Duration::from_millis(600));
    /// assert_eq!(fast.validate(), Ok(()));
    /// assert_eq!(fast.min_ping_spacing, Duration::from_millis(100));
    /// ```
    #[must_use]
    pub fn with_timing(self, interval: Duration, dead_timeout: Duration) -> Self {
        let min_interval = self.min_interval.min(interval);
        Config {
            interval,
            dead_timeout,
            min_interval,
            max_interval: self.max_interval.max(interval),
            max_dead_timeout: self.max_dead_timeout.max(dead_timeout),
            min_ping_spacing: self.min_ping_spacing.min(min_interval / 2),
            ..self
        }
    }

    /// Checks that the values fit together.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::time::Duration;
    /// use pulse_proto::Config;
    ///
    /// let config = Config::default().with_dead_timeout(Duration::from_secs(12)); // less than 2 × 10 s
    /// assert_eq!(
    ///     config.validate().unwrap_err().to_string(),
    ///     "invalid config: dead_timeout must be at least twice interval",
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let wire = |d: Duration| d >= MIN_INTERVAL && d <= MAX_WIRE_DURATION;
        check(wire(self.interval), "interval", "between 10 ms and u32::MAX ms")?;
        check(wire(self.min_interval), "min_interval", "between 10 ms and u32::MAX ms")?;
        check(wire(self.max_interval), "max_interval", "between 10 ms and u32::MAX ms")?;
        check(
            self.min_interval <= self.max_interval,
            "min_interval",
            "at most max_interval",
        )?;
        check(
            self.dead_timeout <= MAX_WIRE_DURATION,
            "dead_timeout",
            "at most u32::MAX ms",
        )?;
        check(
            self.dead_timeout >= self.interval * 2,
            "dead_timeout",
            "at least twice interval",
        )?;
        check(
            self.max_dead_timeout <= MAX_WIRE_DURATION,
            "max_dead_timeout",
            "at most u32::MAX ms",
        )?;
        check(self.jitter_percent <= 50, "jitter_percent", "at most 50")?;
        check(
            self.probe_floor >= Duration::from_millis(1),
            "probe_floor",
            "at least 1 ms",
        )?;
        check(
            self.min_ping_spacing >= Duration::from_millis(1),
            "min_ping_spacing",
            "at least 1 ms",
        )?;
        check(
            self.min_ping_spacing <= self.min_interval / 2,
            "min_ping_spacing",
            "at most half of min_interval",
        )?;
        check(
            (MIN_FRAME_LEN..=MAX_FRAME_LEN).contains(&self.max_frame_len),
            "max_frame_len",
            "between 256 and 2^30 - 1",
        )?;
        check(self.max_queued_bytes >= 1024, "max_queued_bytes", "at least 1024")?;
        check(
            (256..=65_507).contains(&self.max_datagram_size),
            "max_datagram_size",
            "between 256 and 65507",
        )?;
        check(
            self.handshake_timeout >= Duration::from_millis(1),
            "handshake_timeout",
            "at least 1 ms",
        )?;
        check(
            self.close_timeout >= Duration::from_millis(1),
            "close_timeout",
            "at least 1 ms",
        )?;
        check(
            self.stall_threshold >= Duration::from_millis(1),
            "stall_threshold",
            "at least 1 ms",
        )?;
        check(
            self.slow_reader_timeout.is_none_or(|t| t >= Duration::from_millis(1)),
            "slow_reader_timeout",
            "at least 1 ms",
        )?;
        check(
            self.cookie_lifetime >= Duration::from_secs(1) && self.cookie_lifetime <= Duration::from_secs(3600),
            "cookie_lifetime",
            "between 1 s and 1 hour",
        )?;
        check(
            self.adaptive.is_none_or(|a| a.is_valid()),
            "adaptive",
            "start and active at least 10 ms, max at least start, steps and counts at least 1, margin under 50 %, timeout factor at least 2",
        )?;
        Ok(())
    }

    /// The probe timeout's floor for an agreed `interval`: the configured
    /// floor, but never more than a quarter of the interval, so fast
    /// heartbeats are judged at their own pace.
    pub fn probe_floor_for(&self, interval: Duration) -> Duration {
        self.probe_floor.min(interval / 4).max(Duration::from_millis(1))
    }

    /// How late a timer may fire, for an agreed `interval`, before it counts
    /// as our own stall: the configured threshold, but never more than a
    /// quarter of the interval, so the silence our stall adds can never by
    /// itself reach the dead-peer timeout (at least twice the interval).
    pub fn stall_threshold_for(&self, interval: Duration) -> Duration {
        self.stall_threshold.min(interval / 4).max(Duration::from_millis(1))
    }
}

/// Whole milliseconds of `d`, as the wire carries them (saturating).
pub(crate) fn wire_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::new(Transport::Datagram).validate(), Ok(()));
    }

    #[test]
    fn a_ping_policy_stricter_than_the_interval_allows_is_refused() {
        let config = Config::default().with_min_ping_spacing(Duration::from_secs(1));
        assert!(matches!(
            config.validate(),
            Err(ConfigError::OutOfRange {
                field: "min_ping_spacing",
                ..
            })
        ));
    }

    #[test]
    fn the_probe_floor_and_stall_threshold_shrink_with_fast_intervals() {
        let config = Config::default();
        assert_eq!(
            config.probe_floor_for(Duration::from_secs(10)),
            Duration::from_millis(250)
        );
        assert_eq!(
            config.stall_threshold_for(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            config.probe_floor_for(Duration::from_millis(200)),
            Duration::from_millis(50)
        );
        assert_eq!(
            config.stall_threshold_for(Duration::from_millis(200)),
            Duration::from_millis(50)
        );
        assert_eq!(
            config.stall_threshold_for(Duration::from_millis(10)),
            Duration::from_micros(2500)
        );
    }

    #[test]
    fn with_timing_makes_a_config_that_accepts_its_own_request() {
        for (i, t) in [(10, 20), (200, 600), (5_000, 15_000), (600_000, 1_800_000)] {
            let c = Config::default().with_timing(Duration::from_millis(i), Duration::from_millis(t));
            assert_eq!(c.validate(), Ok(()), "{i} ms / {t} ms");
            assert!(c.min_interval <= c.interval && c.interval <= c.max_interval);
            assert!(c.dead_timeout <= c.max_dead_timeout);
        }
    }
}
