//! What a [pulse-monitor](pulse_monitor) driver does the same way on any
//! runtime, written once: opening probe connections and moving them on
//! ([`ProbeConn`], [`connect`]), the outcomes in the monitor's words,
//! announcement sockets ([`bind_announce_socket`]), and the bookkeeping
//! around the monitor ([`WatchCore`]: target addresses, probes in flight
//! and waiting for room, timers held while datagrams wait, counters).
//! pulse-mio's `Watcher` is built on it, and waits on sockets and time
//! itself.
//!
//! For async runtimes, the whole driver is here: the application's handle
//! ([`Watcher`], no runtime needed) and the driver task ([`WatchTask`]),
//! generic over a [`WatchRuntime`] — the few calls that register a socket,
//! wait on its readiness and set a timer. pulse-smol and pulse-tokio
//! implement that trait, and nothing else.
//!
//! With the `monitor` feature.

use std::time::Duration;

mod announce;
mod probe;
mod shared;
mod task;
mod watch;
mod watcher;

pub use self::announce::bind_announce_socket;
pub use self::probe::{connect, connect_failure, is_local_shortage, reset_on_close, Order, ProbeConn, Step};
pub use self::task::{watch, WatchRuntime, WatchTask};
pub use self::watch::{Action, WatchCore};
pub use self::watcher::{PeerEvents, WatchLink, Watcher, MAX_ANNOUNCE_SOCKETS};
/// A borrowed socket, as [`reset_on_close`] and [`WatchRuntime::sock`]
/// take it: socket2's, re-exported so that a runtime's adapter needs no
/// socket2 of its own.
pub use socket2::SockRef;

/// How a monitor driver moves bytes; what it decides is the monitor's own
/// [`pulse_monitor::Config`].
///
/// | field | default | why |
/// |---|---|---|
/// | `datagrams_per_turn` | 1,024 | announcements read from one socket per turn: a flood cannot hold the probes back |
/// | `max_timer_delay` | 100 ms | how long the monitor's timers wait for an announcement socket to be read empty |
/// | `max_probes` | 4,096 | probe connections open at once; more wait for room |
/// | `recv_buffer` | 4 MiB | receive buffer asked for each announcement socket |
/// | `retry` | 50 ms | a probe this process had no descriptor or port for is tried again this much later |
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// Datagrams read from one announcement socket per turn. Raise it if
    /// one socket receives far more than a thousand announcements between
    /// two turns; the rest wait in its receive buffer for the next.
    pub datagrams_per_turn: usize,
    /// While an announcement socket still holds datagrams after its
    /// budget, the monitor's timers wait for it to be read empty — a
    /// silence must not be judged with the announcement that ends it
    /// unread — but no longer than this, so that a flood at the socket
    /// cannot stop the probes. Beyond it the monitor's timers run late,
    /// and it counts that as a stall of its own.
    pub max_timer_delay: Duration,
    /// Probe connections open at once. A probe beyond it waits for a
    /// connection to end; one that cannot start before the monitor's
    /// timeout fails as timed out. Keep it over `targets × timeout ÷
    /// interval`, and under the process's descriptor limit.
    pub max_probes: usize,
    /// Receive buffer asked for each announcement socket, in bytes. The
    /// system caps it (`net.core.rmem_max` on Linux): at 100,000
    /// announcements a second, 4 MiB holds about 50 ms of them.
    pub recv_buffer: usize,
    /// A probe that could not start because this process was out of
    /// descriptors or local ports (not the target's fault) is tried again
    /// after this, or as soon as a probe connection closes. One that still
    /// cannot start before the monitor's timeout counts as timed out:
    /// pulse-monitor has no outcome for a probe we could not start.
    pub retry: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            datagrams_per_turn: 1024,
            max_timer_delay: Duration::from_millis(100),
            max_probes: 4096,
            recv_buffer: 4 << 20,
            retry: Duration::from_millis(50),
        }
    }
}

/// Counters of a monitor driver's own work; what the monitor took and
/// rejected is in [`pulse_monitor::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchStats {
    /// Datagrams read from the announcement sockets.
    pub datagrams: u64,
    /// Probe connections opened.
    pub probes: u64,
    /// Probe starts put off: no room under `max_probes`, or this process
    /// out of descriptors or local ports.
    pub deferred: u64,
    /// Probes of targets added without an address, reported unreachable.
    pub no_address: u64,
    /// Turns whose timers waited for an announcement socket to be read.
    pub timers_held: u64,
    /// Turns the driver took ([`WatchCore::run_timers`] counts them): each
    /// follows a wake-up, so a driver woken for nothing shows here.
    pub turns: u64,
}
