//! Test support for pulse: drivers that move pulse-proto sessions over
//! simulated links in virtual time, deterministically.
//!
//! [`Pair`] wires two sessions through an in-memory link; it drives each
//! session the way a real event loop does (one armed timer per session,
//! never re-armed on receive) and counts every place where the session's
//! timer contract would have forced a re-arm.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod floor;
pub mod limits;
pub mod pair;
pub mod peer;
pub mod tls;

pub use pair::{Endpoint, Pair, Side, Wire};

use std::sync::Arc;

use pulse_proto::{Config, Transport};

/// A config with the given interval and dead-peer timeout, the client's
/// request and the server's range both allowing them.
pub fn config(transport: Transport, interval_ms: u64, dead_timeout_ms: u64) -> Arc<Config> {
    use core::time::Duration;
    let config = Config::new(transport);
    Arc::new(config.with_timing(
        Duration::from_millis(interval_ms),
        Duration::from_millis(dead_timeout_ms),
    ))
}

/// How many times longer to soak: `PULSE_SOAK=k` (default 1) multiplies
/// the seeds, simulated time and fuzz-corpus work of the long properties.
pub fn soak() -> u64 {
    std::env::var("PULSE_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// The seeds a property runs over: `0..count × soak()`, or only the one in
/// `PULSE_SIM_SEED`, to replay a failure exactly. A failing property names
/// its seed in its message.
pub fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("PULSE_SIM_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => (0..count * soak()).collect(),
    }
}
