//! The values a handshake settled, and what the server changed of the
//! client's request, and why.

use core::fmt;
use core::time::Duration;

fn ms(value: u32) -> Duration {
    Duration::from_millis(value.into())
}

/// The values agreed in the handshake, which both sides use from then on.
///
/// Kept in wire form (milliseconds in `u32`), so every session carries it
/// for 40 bytes; read it through the methods.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use pulse_proto::{Config, Event, Instant, Role, Session};
///
/// // The client asks for 500 ms; the server's default range starts at 1 s.
/// let ask = Config::default().with_interval(Duration::from_millis(500)).with_dead_timeout(Duration::from_secs(2));
/// let mut client = Session::new(ask, Role::Client, Instant::ZERO, 1).unwrap();
/// let mut server = Session::new(Config::default(), Role::Server, Instant::ZERO, 2).unwrap();
/// let hello = client.poll_transmit(Instant::ZERO).unwrap().to_vec();
/// server.handle_input(Instant::ZERO, &hello[..]);
/// let welcome = server.poll_transmit(Instant::ZERO).unwrap().to_vec();
/// client.handle_input(Instant::ZERO, &welcome[..]);
/// let Some(Event::Connected(agreed)) = client.poll_event() else { panic!() };
/// assert_eq!(agreed.interval(), Duration::from_secs(1));
/// let change = agreed.adjustments().next().unwrap();
/// assert_eq!(change.to_string(), "interval: asked 500ms, agreed 1s (the server's minimum)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub(crate) version: u8,
    pub(crate) ping_strikes: u8,
    pub(crate) interval_ms: u32,
    pub(crate) dead_timeout_ms: u32,
    pub(crate) min_ping_spacing_ms: u32,
    pub(crate) peer_max_frame_len: u32,
    pub(crate) requested_interval_ms: u32,
    pub(crate) requested_dead_timeout_ms: u32,
    /// The server's range, `[0, 0, 0]` when a version-1 server did not say.
    pub(crate) bounds_ms: [u32; 3],
}

impl Negotiated {
    /// The protocol version both speak.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The heartbeat interval.
    pub fn interval(&self) -> Duration {
        ms(self.interval_ms)
    }

    /// The dead-peer timeout: silence this long is death, both ways.
    pub fn dead_timeout(&self) -> Duration {
        ms(self.dead_timeout_ms)
    }

    /// Ping policy: the shortest spacing between PINGs, both ways.
    pub fn min_ping_spacing(&self) -> Duration {
        ms(self.min_ping_spacing_ms)
    }

    /// Ping policy: PINGs tolerated beyond the burst allowance.
    pub fn ping_strikes(&self) -> u8 {
        self.ping_strikes
    }

    /// The largest frame body the peer accepts.
    pub fn peer_max_frame_len(&self) -> u32 {
        self.peer_max_frame_len
    }

    /// The interval the client asked for.
    pub fn requested_interval(&self) -> Duration {
        ms(self.requested_interval_ms)
    }

    /// The dead-peer timeout the client asked for.
    pub fn requested_dead_timeout(&self) -> Duration {
        ms(self.requested_dead_timeout_ms)
    }

    /// The server's bounds: shortest and longest interval and longest
    /// dead-peer timeout it agrees to. `None` when a version-1 server did
    /// not state them.
    pub fn server_bounds(&self) -> Option<(Duration, Duration, Duration)> {
        let [min, max, dead] = self.bounds_ms;
        (max > 0).then(|| (ms(min), ms(max), ms(dead)))
    }

    /// What the server changed of the client's request, and why: empty when
    /// the client got what it asked for.
    pub fn adjustments(&self) -> impl Iterator<Item = Adjustment> {
        let [min, max, dead_max] = self.bounds_ms;
        let known = max > 0;
        let interval = (self.interval_ms != self.requested_interval_ms).then(|| Adjustment {
            setting: Setting::Interval,
            requested: ms(self.requested_interval_ms),
            agreed: self.interval(),
            reason: if self.requested_interval_ms < self.interval_ms {
                Reason::BelowServerMinimum {
                    minimum: known.then(|| ms(min)),
                }
            } else {
                Reason::AboveServerMaximum {
                    maximum: known.then(|| ms(max)),
                }
            },
        });
        let dead = (self.dead_timeout_ms != self.requested_dead_timeout_ms).then(|| Adjustment {
            setting: Setting::DeadTimeout,
            requested: ms(self.requested_dead_timeout_ms),
            agreed: self.dead_timeout(),
            reason: if self.requested_dead_timeout_ms < self.dead_timeout_ms {
                Reason::BelowTwiceInterval
            } else {
                Reason::AboveServerMaximum {
                    maximum: known.then(|| ms(dead_max)),
                }
            },
        });
        interval.into_iter().chain(dead)
    }
}

/// A setting the handshake agrees on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// The heartbeat interval.
    Interval,
    /// The dead-peer timeout.
    DeadTimeout,
}

/// Why a requested value was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Raised to the server's shortest allowed value (stated when known).
    BelowServerMinimum {
        /// The server's minimum.
        minimum: Option<Duration>,
    },
    /// Lowered to the server's longest allowed value (stated when known).
    AboveServerMaximum {
        /// The server's maximum.
        maximum: Option<Duration>,
    },
    /// The dead-peer timeout was raised to twice the agreed interval, so
    /// one lost PING never convicts.
    BelowTwiceInterval,
}

/// One value the server changed: what was asked, what was agreed, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Adjustment {
    /// Which setting.
    pub setting: Setting,
    /// What the client asked for.
    pub requested: Duration,
    /// What was agreed.
    pub agreed: Duration,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for Adjustment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.setting {
            Setting::Interval => "interval",
            Setting::DeadTimeout => "dead-peer timeout",
        };
        write!(f, "{what}: asked {:?}, agreed {:?} (", self.requested, self.agreed)?;
        match self.reason {
            Reason::BelowServerMinimum { .. } => f.write_str("the server's minimum")?,
            Reason::AboveServerMaximum { .. } => f.write_str("the server's maximum")?,
            Reason::BelowTwiceInterval => f.write_str("at least twice the interval")?,
        }
        f.write_str(")")
    }
}
