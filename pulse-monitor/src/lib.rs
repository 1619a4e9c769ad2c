//! # pulse-monitor
//!
//! Which of my 10,000 services is alive? Fleet health checking for load
//! balancers and consoles, as a pure, sans-IO state machine: it says which
//! probe to run next and when, takes results, heartbeats and a pulse
//! peer's session events with their timestamps, and hands back transitions,
//! the healthy set of each pool with weights, and one deadline. It never
//! does I/O, reads a clock or spawns; a driver moves bytes and time and
//! decides nothing.
//!
//! ## What it holds
//!
//! - **Targets** ([`TargetSpec`], [`Source`]), each watched one way:
//!   - *checked*: TCP connect or HTTP ([`Check`], [`HttpCheck`]) with
//!     HAProxy's `rise` and `fall`, and separate intervals for steady,
//!     transitional and down targets, jittered and started at spread phases;
//!   - *announced*: the service pushes ANNOUNCE datagrams
//!     ([`Announcement`], [PROTOCOL.md §12](https://docs.rs/pulse-proto/latest/pulse_proto/protocol/index.html)), optionally authenticated
//!     with HMAC-SHA256 ([`AnnounceKey`]) and protected from replay by
//!     incarnation and sequence; a service's last announcement
//!     ([`Report::Stopped`]) takes it down at once with its exit status;
//!     otherwise an accrual detector turns their silence
//!     into a suspicion level (φ) with suspect, down and evict thresholds;
//!     with a check attached, fast probes confirm a suspicion before a down;
//!   - *pulse peers*: a pulse session's own events ([`pulse_proto::Event`])
//!     feed the verdict; with a check attached (best the pulse handshake,
//!     [`PulseCheck`]), fast probes confirm a lost session before a down
//!     (see [Pulse peers](#pulse-peers-confirming-a-lost-session)).
//! - **Announcing** (the other side): [`Announcer`] is what a service runs
//!   to send its own announcements — incarnation and sequence, jittered
//!   intervals, its status, and the repeated `stopped` ones at its end.
//! - **Deciding**: every transition in one place (`decide.rs`); flap damping
//!   ([`Damping`]); local health — after a stall of its own, no down verdict
//!   without fresh evidence, and stretched intervals (see
//!   [Our own stalls](#our-own-stalls)); the panic threshold and
//!   the correlated-failure guard, so a pool is never emptied by the
//!   monitor's own network trouble.
//! - **Out**: [`Event`]s (transitions with their [`Reason`] and penalty,
//!   status changes, suppression, pool changes, panics, local health), the
//!   healthy set per pool ([`Monitor::healthy`], [`Monitor::pool`]), a
//!   [`Snapshot`] per target and [`Stats`].
//! - **Knobs**: [`Config`] — each with its default, unit and when to change
//!   it; presets [`Config::lan`] and [`Config::wan`]; typed [`ConfigError`]s.
//!
//! ## Pulse peers: confirming a lost session
//!
//! A pulse session's dead verdict rests on one path: at 5 % loss with
//! heavy-tailed delays, a 1 s / 3 s session loses a live peer about once
//! in 20,000 intervals. Added with [`TargetSpec::confirm_with`], a peer is
//! decided in two steps:
//!
//! 1. While its session vouches for it (connected, round trips, recovered)
//!    the session decides; no probe runs. When the session suspects the
//!    peer, the peer is [`Health::Suspect`] (still in its pool) and a
//!    probe starts at once, then one every `fast_interval`.
//! 2. When the session *loses* the peer — its dead verdict, or any close
//!    but the peer's own goodbye (CLOSE with `NORMAL` or `GOING_AWAY`,
//!    down at once) — the probes decide, as a checked target's do: `fall`
//!    failures in a row (already reached, or still to come) take it down
//!    ([`Reason::LostConfirmed`]); a passing probe keeps it up (counted in
//!    [`Stats::sessions_refuted`]) and it is probed every `interval` from
//!    then on; a down one is back after `rise` passes. A new session that
//!    connects ends this: the session decides again and the probes stop.
//!
//! A failure counts only if its probe started after the monitor's last
//! stall of its own (see [Our own stalls](#our-own-stalls)). The probe
//! should be the pulse handshake: a TCP connect passes for a frozen
//! process, whose kernel still accepts connections.
//!
//! So a false down needs the session's false verdict *and* `fall` failed
//! probes in a row: measured, none in 6 × 10^6 heartbeats at 5 % loss,
//! where the sessions lost a live peer 303 times (5 × 10^-5 per
//! heartbeat), while a killed peer is down in 3.0 s and a frozen one in
//! 3.3 s at p99 (`tests/peer_confirm.rs`).
//!
//! ## Our own stalls
//!
//! Never a verdict because our own process stalled (paused, swapped,
//! starved of CPU, its sockets unread): after a stall, a target gets a
//! fresh chance before any down verdict.
//!
//! - **Finding it.** The monitor reads no clock; it finds a stall in the
//!   timestamps it is handed. While it has targets it always keeps a
//!   deadline — its targets', or a housekeeping one `stall_threshold`
//!   after the latest call — so a call that comes more than
//!   `stall_threshold` (stretched by the local score) after a deadline
//!   that was due means our process stopped: [`Event::LocalHealth`],
//!   [`Stats::stalls`]. So does a burst of arrivals far above the expected
//!   rate. A monitor of pulse peers alone, with no probe of its own to be
//!   late for, finds its stalls by the housekeeping deadline.
//! - **Checked targets and confirming probes**: a failure counts only if
//!   its probe started after the stall.
//! - **Announcing targets**: their silence is measured from the stall's
//!   end, and the gap across it is no sample.
//! - **Pulse peers without a confirming check**: their sessions live in our
//!   process and stall with it; a peer may time our stopped session out
//!   and close it (`TIMED_OUT`), or its close may be lost and our session
//!   find it silent after. So a session that crossed our stall cannot
//!   convict: its loss (a dead verdict, or any close but the peer's own
//!   goodbye) makes the peer [`Health::Suspect`], still in its pool, and a
//!   new session has [`Config::reconnect_grace`] from the loss (when the
//!   driver learns it must reconnect) to connect — then it is up; if none does, it is down with
//!   [`Reason::NotReconnected`] (a driver that never reconnects gets its
//!   verdict then). A later stall during the wait renews the grace from
//!   its end, at most [`Config::max_local_score`] times: a monitor that
//!   keeps stalling still reaches the verdict. Counted in
//!   [`Stats::losses_excused`]. A session is fresh again once it vouched
//!   for its peer (a round trip, a message, a recovery) after the stall's
//!   wake — a probe timeout after its end, within which what reaches us
//!   may predate the stall's effects — and the new session is fresh once
//!   it connects, even in the wake (it opened after the stall), unless
//!   another stall came during the wait; from then on its loss is a
//!   verdict at once, as before the stall.
//! - **Pulse peers with a confirming check**: the probes decide, and only
//!   probes started after the stall count.
//!
//! A stall shorter than `stall_threshold` goes unseen. A gap in our calls
//! over twice it is always one that pulse peers' sessions crossed (their
//! losses cannot convict, as above); it is a stall for every other target
//! too (fresh evidence first, stretched intervals) when it is also over
//! the threshold stretched by the local score — so a loop late at every
//! turn still reaches verdicts. Keep pulse sessions' dead timeouts well
//! over twice `stall_threshold`: a shorter stall that still lets a peer
//! time our session out is taken at its word.
//!
//! ## Cost
//!
//! At most 128 bytes of heap per target (a 104-byte record, its place in
//! the schedule, its pool and the service table; [`Monitor::heap_bytes`])
//! in a monitor sized once with [`Monitor::with_capacity`]; one grown by
//! [`Monitor::add_target`] past its capacity keeps the spare room its
//! vectors doubled into (measured: up to 228 bytes per target at 65,537),
//! O(1) work and no allocation per heartbeat: a heartbeat never touches the
//! schedule, because it only moves a verdict later — the earlier deadline
//! fires, finds nothing due, and the target is re-filed.
//!
//! ## The drive loop
//!
//! After any call, drain probes, then events, then read the one deadline:
//!
//! 1. `while let Some(probe) = monitor.poll_probe()`: start it (connect to
//!    the target's address, which the driver keeps by [`TargetId::index`];
//!    for HTTP send the request) or abort it. Report what happens with
//!    [`Monitor::handle_probe_result`] and [`Monitor::handle_http_response`].
//! 2. `while let Some(event) = monitor.poll_event()`: act on it (on
//!    [`Event::PoolChanged`], read [`Monitor::healthy`] again).
//! 3. `monitor.poll_timeout()`: arm one timer. While there are targets
//!    there is always one (at most `stall_threshold` away): keep it, or
//!    the monitor takes your driver's idleness for a stall of its own.
//!
//! Datagrams from the announce socket go to
//! [`Monitor::handle_announcement`]; a pulse peer's session events to
//! [`Monitor::handle_peer_event`]. When the timer fires, read every socket
//! first (results may be waiting), then call [`Monitor::handle_timeout`]
//! with the current time.
//!
//! ```
//! use core::time::Duration;
//! use pulse_monitor::{Announcement, Check, Config, Event, Health, Monitor, Probe, ProbeOutcome, Report, TargetSpec};
//! use pulse_proto::{Instant, Status};
//!
//! let mut now = Instant::ZERO;
//! let mut monitor = Monitor::new(Config::lan(), now, 42).unwrap();
//! let pool = monitor.add_pool();
//! let tcp = monitor.add_check(Check::Tcp);
//! let backend = monitor.add_target(now, TargetSpec::checked(pool, tcp)).unwrap();
//! let worker = monitor.add_target(now, TargetSpec::announced(pool, 7)).unwrap();
//!
//! // The worker announces itself (a driver reads this from a UDP socket).
//! let hello = Announcement { service: 7, incarnation: 1, sequence: 1, interval: Duration::from_secs(1), report: Report::Running(Status::default()) };
//! monitor.handle_announcement(now, &hello.encode(None)).unwrap();
//!
//! // Ten seconds of a driver's loop, in which the backend refuses every
//! // connection and the worker says nothing more.
//! let end = now + Duration::from_secs(10);
//! while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= end) {
//!     now = deadline;
//!     monitor.handle_timeout(now);
//!     while let Some(probe) = monitor.poll_probe() {
//!         if let Probe::Start { id, .. } = probe {
//!             // A real driver connects and reports later; this one is told
//!             // "refused" at once.
//!             monitor.handle_probe_result(now, id, ProbeOutcome::Refused);
//!         }
//!     }
//! }
//! let mut downs = Vec::new();
//! while let Some(event) = monitor.poll_event() {
//!     if let Event::Transition(t) = event {
//!         if t.to == Health::Down {
//!             downs.push(t.target);
//!         }
//!     }
//! }
//! assert_eq!(downs.len(), 2);
//! assert!(downs.contains(&backend) && downs.contains(&worker));
//! // The pool panics rather than empty: a load balancer still has targets.
//! assert_eq!(monitor.healthy(pool).count(), 2);
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(doc)]
extern crate std;

mod accrual;
mod announce;
mod announcer;
mod config;
mod damping;
mod decide;
mod event;
mod handshake;
mod http;
mod index;
mod local;
mod monitor;
mod peer;
mod pool;
mod rng;
mod schedule;
mod snapshot;
mod target;

pub use announce::{AnnounceError, AnnounceKey, Announcement, Datagram, ExitStatus, Report};
pub use announcer::{Announcer, Outgoing};
pub use config::{Config, ConfigError};
pub use damping::Damping;
pub use event::{
    CheckId, CheckResult, Event, Health, PanicReason, PeerSignal, PoolId, Probe, ProbeId, ProbeKind, ProbeOutcome,
    Progress, Reason, TargetId, Transition,
};
pub use handshake::PulseCheck;
pub use http::{HttpCheck, HttpCheckError};
pub use monitor::{Check, Monitor};
pub use pool::PoolSummary;
pub use snapshot::{Snapshot, Stats};
pub use target::{Source, TargetError, TargetSpec};

/// The ANNOUNCE datagram's constants ([PROTOCOL.md §12](https://docs.rs/pulse-proto/latest/pulse_proto/protocol/index.html)).
pub mod wire {
    pub use crate::announce::{HEADER_LEN, MAGIC, MAX_LEN, STATE_STOPPED, STOPPED_LEN, TAG_LEN, VERSION};
    pub use crate::announcer::{FINAL_REPEATS, FINAL_SPACING, JITTER_PERCENT};
}
