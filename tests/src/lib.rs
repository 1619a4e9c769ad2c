//! Test support for pulse: drivers that move pulse-proto sessions over
//! simulated links in virtual time, deterministically.
//!
//! [`Pair`] wires two sessions through an in-memory link; [`Net`] holds
//! many sessions on many hosts sharing one network and clock. Both drive
//! each session the way a real event loop does (one armed timer per
//! session, never re-armed on receive), count every place where the
//! session's timer contract would have forced a re-arm, and make the links
//! and processes as hostile as a seed or a schedule says (see [`sim`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adaptive_client;
pub mod after_close;
pub mod bins;
pub mod buffering;
pub mod fd_limit;
pub mod floor;
pub mod held;
pub mod monitor_bounds;
pub mod monitor_harness;
pub mod nat_proxy;
pub mod pair;
pub mod peer;
pub mod queued_sends;
pub mod recording;
pub mod sim;
pub mod stats;
pub mod tls;
pub mod wire_dump;

pub use pair::{Pair, Side};
pub use sim::{draw, draw_between, draw_log_between, Endpoint, LinkSpec, Net, Outage, Process, Wire};

/// The Rust blocks of the READMEs, run as doc tests (`no_run` ones only
/// compiled), so that the code a reader copies works.
#[cfg(doctest)]
pub mod readmes {
    #[doc = include_str!("../../README.md")]
    pub struct Workspace;
    #[doc = include_str!("../../pulse-proto/README.md")]
    pub struct PulseProto;
    #[doc = include_str!("../../pulse-smol/README.md")]
    pub struct PulseSmol;
    #[doc = include_str!("../../pulse-mio/README.md")]
    pub struct PulseMio;
    #[doc = include_str!("../../pulse-tokio/README.md")]
    pub struct PulseTokio;
    #[doc = include_str!("../../pulse-driver/README.md")]
    pub struct PulseDriver;
    #[doc = include_str!("../../pulse-monitor/README.md")]
    pub struct PulseMonitor;
}

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

/// The timings, as (interval, dead timeout) in milliseconds, that the
/// properties run at: the default, the 1 s / 3 s many deployments pick, and
/// an aggressive 200 ms / 600 ms.
pub const TIMINGS: [(u64, u64); 3] = [(10_000, 30_000), (1_000, 3_000), (200, 600)];

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

/// Sends an HTTP request to `addr` over plain TCP, as a stray client
/// would, and returns all the server answered before it hung up (or
/// before 10 s passed).
pub fn http_get(addr: std::net::SocketAddr) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: pulse\r\n\r\n")
        .expect("request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}
