//! # pulse-mio
//!
//! A hand-rolled [mio] event loop that holds very many [pulse](pulse_proto)
//! connections for almost nothing: for IoT and push gateways, game servers
//! and proxies. One thread runs one loop; one loop per core shares a port
//! with [`reuseport_listener`] (on Linux: see there for other systems).
//!
//! What a connection costs the loop: its session (about 400 bytes), a slab
//! entry, one entry in the loop's hierarchical [`pulse_proto::TimerWheel`],
//! and nothing else while idle — reads land in one buffer shared by the
//! loop, and a received frame costs no timer operation (the session's
//! deadline only moves later on input; the wheel is touched when it fires).
//!
//! Every protocol decision is made by `pulse-proto`'s `Session`; the loop
//! only moves bytes and time (with `pulse-driver`, as every pulse adapter
//! does), and applies its own limits: connections, reads, datagrams and
//! accepts per turn, commands waiting.
//!
//! - [`EventLoop`]: listen (TCP and UDP), connect, run, shut down;
//! - [`Endpoint`]: the same inside a `mio::Poll` of your own, on a range of
//!   tokens you choose;
//! - [`Handler`]: your callbacks, with a [`Ctx`] to send, close, connect and
//!   reach each connection's own value;
//! - [`Handle`]: `Send + Clone`, to reach the loop from other threads; a
//!   message it sends is never dropped unseen: it goes out on its
//!   connection, or comes back ([`Ctx::take_unsent`] in `on_close`,
//!   [`Handler::on_unsent`], or at once in an [`Unsent`]);
//! - [`LoopConfig`]: limits, with documented defaults;
//! - with the `monitor` feature, [`monitor::Watcher`]: fleet health
//!   checking ([`pulse_monitor`]) on the loop's thread — probes,
//!   announcements, and pulse connections as targets.
//!
//! Each listener gets the session config its socket needs: TCP listeners
//! and outgoing connections a stream config, UDP listeners a datagram
//! config, both made from [`LoopConfig::session`].
//!
//! ## Logs and counters
//!
//! The loop logs through `tracing`, quiet unless the program installs a
//! subscriber, with `pulse_driver::log`'s targets and levels:
//! `pulse::conn` (opened, negotiation changes, verdicts, closes) and
//! `pulse::accept` (refusals, accept errors, and running out of file
//! descriptors, once per episode). [`EventLoop::counters`] gives the
//! aggregate counters (open, verdicts, closes by code and initiator,
//! bytes), readable from any thread; [`EventLoop::stats`] the loop's own.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod accept;
mod config;
mod core;
mod ctx;
mod endpoint;
mod event_loop;
mod handle;
mod handler;
mod linger;
#[cfg(feature = "monitor")]
pub mod monitor;
mod poll;
mod tokens;
mod udp;

pub use crate::core::LoopStats;
pub use config::LoopConfig;
pub use ctx::Ctx;
pub use endpoint::Endpoint;
#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
pub use event_loop::reuseport_listener;
pub use event_loop::EventLoop;
pub use handle::{Handle, HandleError, Unsent};
pub use handler::{ConnId, Handler};
pub use poll::poll_all;
