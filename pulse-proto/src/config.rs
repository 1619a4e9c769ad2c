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
/// The defaults, and why (see "Defaults, and why" in [the
/// protocol](crate::protocol) for the comparison with gRPC keepalive, MQTT
/// and QUIC):
///
/// | field | default | why |
/// |---|---|---|
/// | `interval` | 10 s | keeps NAT and load-balancer mappings (often 30–60 s idle) alive with margin; 360 round trips of 16 bytes an hour |
/// | `dead_timeout` | 30 s | three intervals: one lost PING never convicts |
/// | `min_interval` / `max_interval` | 1 s / 300 s | a server bounds what clients may ask |
/// | `max_dead_timeout` | 600 s | a server bounds how long it holds a silent peer |
/// | `jitter_percent` | 10 | spreads PINGs of connections opened together |
/// | `probe_floor` | 250 ms | smallest probe timeout, above loopback and LAN scheduling noise |
/// | `min_ping_spacing` / `ping_strikes` | 500 ms / 2 | no honest peer pings faster; two strikes as in gRPC |
/// | `max_frame_len` | 256 KiB | bounds per-connection memory against any peer |
/// | `max_queued_bytes` | 1 MiB | bounds output the application may queue |
/// | `max_datagram_size` | 1200 | fits any path's MTU (QUIC's choice) |
/// | `handshake_timeout` | 10 s | a peer that does not finish its handshake holds nothing for long |
/// | `close_timeout` | 5 s | a graceful close, drain included, ends in bounded time |
/// | `stall_threshold` | 1 s | a timer this late means our own process stalled |
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// peer is suspect, whatever the measured RTT.
    pub probe_floor: Duration,
    /// Ping policy a server states: the shortest spacing between PINGs. A
    /// PING that arrives sooner than half of it after the previous is a strike.
    pub min_ping_spacing: Duration,
    /// Ping policy a server states: strikes tolerated; one more closes the
    /// session with "too many pings".
    pub ping_strikes: u8,
    /// Largest frame body this side accepts (the length field), in bytes.
    pub max_frame_len: u32,
    /// Most bytes of DATA frames (headers included, so even empty messages
    /// count) the application may have queued for sending.
    pub max_queued_bytes: usize,
    /// Largest datagram this side sends (datagram transport only).
    pub max_datagram_size: usize,
    /// Time allowed for the handshake to complete.
    pub handshake_timeout: Duration,
    /// Time allowed for a graceful close: the drain of queued data and the
    /// peer's answering CLOSE.
    pub close_timeout: Duration,
    /// A `handle_timeout` later than this past the deadline means our own
    /// process stalled: the peer gets one probe round before any verdict.
    pub stall_threshold: Duration,
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

fn check(ok: bool, field: &'static str, rule: &'static str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange { field, rule })
    }
}

impl Config {
    /// A default config for the given transport.
    pub fn new(transport: Transport) -> Self {
        Config {
            transport,
            ..Config::default()
        }
    }

    /// This config asking for `interval` and `dead_timeout`, with the
    /// server's range and ping policy widened where needed to accept them
    /// (`min_interval` lowered to `interval`, `min_ping_spacing` to half of
    /// it), so both ends can use the same config.
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
    pub fn with_timing(self, interval: Duration, dead_timeout: Duration) -> Self {
        let min_interval = self.min_interval.min(interval);
        Config {
            interval,
            dead_timeout,
            min_interval,
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
    /// let mut config = Config::default();
    /// config.dead_timeout = Duration::from_secs(12); // less than 2 × 10 s
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
        Ok(())
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
        let config = Config {
            min_ping_spacing: Duration::from_secs(1),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::OutOfRange {
                field: "min_ping_spacing",
                ..
            })
        ));
    }
}
