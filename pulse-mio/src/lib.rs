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
//! only moves bytes and time, and applies two local policies: the
//! connection limit and the per-connection output limit.
//!
//! - [`EventLoop`]: listen (TCP and UDP), connect, run, shut down;
//! - [`Handler`]: your callbacks, with a [`Ctx`] to send, close, connect and
//!   reach each connection's own value;
//! - [`Handle`]: `Send + Clone`, to reach the loop from other threads;
//! - [`LoopConfig`]: limits, with documented defaults.
//!
//! Reports of refused connections and failed accepts go through the `log`
//! facade.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod core;
mod ctx;
mod event_loop;
mod handle;
mod handler;
mod tokens;

pub use crate::core::LoopStats;
pub use config::LoopConfig;
pub use ctx::Ctx;
#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
pub use event_loop::reuseport_listener;
pub use event_loop::EventLoop;
pub use handle::Handle;
pub use handler::{ConnId, Handler};
