//! What the monitor tells its driver and its users: probes to run,
//! transitions and the other events, and the names they use.

use core::fmt;
use core::time::Duration;

use pulse_proto::{CloseCode, Instant, Status};

use crate::announce::ExitStatus;

/// A target, as [`crate::Monitor::add_target`] returned it. Its
/// [`index`](TargetId::index) is dense (a driver can keep its addresses in
/// a `Vec`); a removed target's id goes stale and never names the target
/// that reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetId {
    pub(crate) index: u32,
    pub(crate) generation: u16,
}

impl TargetId {
    /// The slot this target occupies, from 0 up; reused after removal.
    pub fn index(self) -> usize {
        self.index as usize
    }
}

impl fmt::Display for TargetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "target {}", self.index)
    }
}

/// A pool of targets, as [`crate::Monitor::add_pool`] returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PoolId(pub(crate) u16);

impl PoolId {
    /// The pool's number, from 0 up in the order pools were added.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// A registered check (TCP or HTTP), as [`crate::Monitor::add_check`]
/// returned it; many targets share one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CheckId(pub(crate) u16);

/// One probe: which target, and which of its probes, so a late result of
/// an earlier probe is never taken for the current one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId {
    pub(crate) target: TargetId,
    pub(crate) seq: u16,
}

impl ProbeId {
    /// The target probed.
    pub fn target(self) -> TargetId {
        self.target
    }
}

/// What the driver must do, from [`crate::Monitor::poll_probe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe<'a> {
    /// Open a connection to the target (its address is the driver's), and
    /// for HTTP send `request` once connected. Report what happens with
    /// [`crate::Monitor::handle_probe_result`] and, for HTTP, the bytes
    /// received with [`crate::Monitor::handle_http_response`]. The monitor
    /// itself enforces `timeout`.
    Start {
        /// This probe.
        id: ProbeId,
        /// TCP connect, or HTTP with its request.
        kind: ProbeKind<'a>,
        /// When the monitor will count it as failed (and say `Abort`).
        timeout: Duration,
    },
    /// Drop this probe's connection: its result no longer matters (it
    /// timed out, or its target was removed).
    Abort(ProbeId),
}

/// The kind of a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeKind<'a> {
    /// Passes when the connection is accepted.
    Tcp,
    /// Send `request` on the connection; the response decides.
    Http {
        /// The request bytes.
        request: &'a [u8],
    },
    /// A pulse handshake over TCP: send `hello` once connected, and hand
    /// what comes back to [`crate::Monitor::handle_response`], as for HTTP.
    Pulse {
        /// The stream's magic and a HELLO.
        hello: &'a [u8],
    },
}

impl<'a> ProbeKind<'a> {
    /// The bytes to send once connected, if any: a driver that runs HTTP
    /// probes runs the pulse handshake the same way.
    pub fn request(self) -> Option<&'a [u8]> {
        match self {
            ProbeKind::Tcp => None,
            ProbeKind::Http { request } => Some(request),
            ProbeKind::Pulse { hello } => Some(hello),
        }
    }
}

/// What happened to a probe's connection, as the driver saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeOutcome {
    /// The connection was accepted (a TCP check passes; an HTTP check goes
    /// on to its response).
    Connected,
    /// Connection refused: nothing listens.
    Refused,
    /// The connection was reset.
    Reset,
    /// No route, host unreachable, or any other error before connecting.
    Unreachable,
    /// The peer closed the connection before a complete response.
    Closed,
}

/// Whether an HTTP response needs more bytes, from
/// [`crate::Monitor::handle_http_response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep reading and call again with everything received so far.
    NeedMore,
    /// The check is decided (or was no longer wanted): close the connection.
    Done,
}

/// A target's health, as an operator names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Health {
    /// No verdict yet: not in its pool until its first passing check or
    /// heartbeat.
    Unknown,
    /// Alive.
    Up,
    /// Alive by the last verdict, but checks are failing or heartbeats are
    /// late: still in its pool, and being confirmed.
    Suspect,
    /// Gone: out of its pool (unless the pool panics).
    Down,
}

impl Health {
    /// Whether a load balancer may send it work (its own report and flap
    /// damping aside).
    pub fn is_alive(self) -> bool {
        matches!(self, Health::Up | Health::Suspect)
    }

    pub(crate) fn to_bits(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_bits(bits: u8) -> Health {
        match bits {
            1 => Health::Up,
            2 => Health::Suspect,
            3 => Health::Down,
            _ => Health::Unknown,
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Suspect => "suspect",
            Health::Down => "down",
        })
    }
}

/// The result of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckResult {
    /// Connected (TCP), or an expected status (HTTP, the code with it).
    Passed(Option<u16>),
    /// Connection refused.
    Refused,
    /// Connection reset.
    Reset,
    /// Unreachable, or another error before connecting.
    Unreachable,
    /// Closed before a complete response.
    Closed,
    /// No answer within the timeout.
    TimedOut,
    /// An HTTP status outside the expected codes.
    UnexpectedStatus(u16),
    /// Not an HTTP/1.x response, or headers over the size limit.
    BadResponse,
}

impl CheckResult {
    /// Whether the check passed.
    pub fn passed(self) -> bool {
        matches!(self, CheckResult::Passed(_))
    }
}

/// How a pulse peer's session made its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerSignal {
    /// The session connected.
    Connected,
    /// A round trip completed (or any frame proved the peer alive).
    Alive,
    /// The session is probing a silent peer.
    Suspect,
    /// The silent peer answered.
    Recovered,
    /// The session's dead-peer verdict.
    Dead,
    /// The session closed, with this code.
    Closed(CloseCode),
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reason {
    /// Active checks: `count` consecutive results like `last`.
    Checks {
        /// Consecutive passes (going up) or failures (going down).
        count: u8,
        /// The latest result.
        last: CheckResult,
    },
    /// An announcement arrived.
    Announced,
    /// The suspicion level of an announcing target crossed a threshold.
    Suspicion {
        /// The level (φ).
        level: f32,
    },
    /// A suspicion at the down level, confirmed by `failed` probes.
    Confirmed {
        /// The level (φ).
        level: f32,
        /// Consecutive failed probes.
        failed: u8,
        /// The latest probe's result.
        last: CheckResult,
    },
    /// A pulse peer's session said so.
    Peer(PeerSignal),
    /// A pulse peer's session lost it, and `failed` confirming probes in a
    /// row failed (the peer has a confirming check).
    LostConfirmed {
        /// Consecutive failed probes.
        failed: u8,
        /// The latest probe's result.
        last: CheckResult,
    },
    /// The service's last announcement said it ended, and how.
    Stopped(ExitStatus),
    /// A pulse peer (without a confirming check) whose session was lost
    /// after crossing a stall of ours: no new session connected within
    /// `reconnect_grace` of the loss (renewed from the end of later stalls,
    /// at most `max_local_score` times).
    NotReconnected,
}

/// A change of a target's health.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transition {
    /// The target.
    pub target: TargetId,
    /// Its health before.
    pub from: Health,
    /// Its health now.
    pub to: Health,
    /// Why.
    pub reason: Reason,
    /// Its flap-damping penalty after this transition.
    pub penalty: f32,
    /// When.
    pub at: Instant,
}

/// Why a pool panicked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicReason {
    /// Its healthy share fell under `panic_threshold`, or none of it is up.
    BelowThreshold,
    /// Over `correlated_share` of it went down within `correlated_window`:
    /// more likely our own network than that many targets at once.
    Correlated,
}

/// Something that happened, from [`crate::Monitor::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A target's health changed.
    Transition(Transition),
    /// A target that announces has been silent past the evict level: a
    /// console may forget it ([`crate::Monitor::remove_target`]).
    Evicted {
        /// The target.
        target: TargetId,
        /// Its suspicion level.
        level: f32,
    },
    /// A target reported a different status of itself.
    StatusChanged {
        /// The target.
        target: TargetId,
        /// The status before.
        from: Status,
        /// The status now.
        to: Status,
    },
    /// A target that announces restarted: a newer incarnation.
    Restarted {
        /// The target.
        target: TargetId,
        /// Its new incarnation.
        incarnation: u32,
    },
    /// Flap damping holds a target out of its pool.
    Suppressed {
        /// The target.
        target: TargetId,
        /// Its penalty, over the suppress limit.
        penalty: f32,
    },
    /// A suppressed target's penalty decayed under the reuse limit.
    Reused {
        /// The target.
        target: TargetId,
        /// Its penalty, under the reuse limit.
        penalty: f32,
    },
    /// The healthy set or a weight of this pool changed: read it again
    /// with [`crate::Monitor::healthy`].
    PoolChanged(PoolId),
    /// A pool panics: it keeps every target that takes work by its own
    /// report, whatever the checks say.
    Panic {
        /// The pool.
        pool: PoolId,
        /// Why.
        reason: PanicReason,
        /// Its targets with a down verdict.
        down: u32,
        /// Its targets with any verdict.
        judged: u32,
    },
    /// A pool left panic.
    Calm(PoolId),
    /// The monitor's own health changed: `score` 0 is healthy; above 0 it
    /// was stalled (by `late_by`) and its intervals are stretched by
    /// `1 + score`.
    LocalHealth {
        /// The score now.
        score: u8,
        /// How late it found itself (zero when recovering).
        late_by: Duration,
    },
}
