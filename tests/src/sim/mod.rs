//! The deterministic network simulator, in parts: seeded randomness
//! ([`rng`]), one direction of a link with its faults ([`wire`]), when a
//! process gets to run ([`process`]), one session and its driver
//! ([`endpoint`]), and many sessions on one network ([`net`]). [`crate::Pair`]
//! puts two endpoints on one link.
//!
//! The hostile behaviours, each seeded or scheduled, so a failure replays:
//! - **process stalls** ([`Process::stall`]): a side neither reads nor fires
//!   timers for a while, then handles everything that landed at once —
//!   reads first, then timers, as a real driver does;
//! - **bunching and head-of-line blocking** ([`Wire::retransmit_ppm`],
//!   [`Outage::Hold`]): stream segments held behind a retransmission whose
//!   RTO doubles, or held by the path, then delivered together in one read;
//! - **overload** ([`Process::turn`], [`Process::timer_lateness`],
//!   [`Host::read_budget`]): a busy loop that gets to its sockets and
//!   timers only at its turns, and serves only so many sockets before its
//!   timers;
//! - **clock steps** ([`Process::step_clock`]) and **loss**, duplication
//!   and reordering of datagrams, and partitions ([`Outage::Partition`]);
//! - **NATs and firewalls** ([`Nat`], [`Wire::through_nat`]) that forget an
//!   idle connection, then drop its datagrams or reset its stream.
//!
//! Every endpoint checks the first oracle itself: a dead-peer verdict while
//! bytes had landed within the dead timeout is recorded in
//! [`Endpoint::unfounded_verdicts`].

pub mod endpoint;
pub mod nat;
pub mod net;
pub mod process;
pub mod reconnecting;
pub mod rng;
pub mod wire;

pub use endpoint::Endpoint;
pub use nat::{Mapping, Nat, NatPort, Refresh};
pub use net::{Conn, Host, LinkSpec, Net};
pub use process::Process;
pub use reconnecting::{Connection, Path, Reconnecting, Sent};
pub use rng::{draw, draw_between, draw_log_between, Rng};
pub use wire::{Outage, Wire};
