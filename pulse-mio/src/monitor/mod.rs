//! [pulse-monitor](pulse_monitor) run by mio: fleet health on the loop's
//! thread. A [`Watcher`] holds a [`pulse_monitor::Monitor`] and the sockets
//! it needs — probe connections (TCP connect, HTTP) and UDP sockets for
//! ANNOUNCE datagrams — in a `mio::Poll`, on a range of tokens, beside an
//! [`crate::Endpoint`] or alone. It moves bytes and time and decides
//! nothing: every verdict is the monitor's.
//!
//! With the `monitor` feature.

mod announce;
mod watcher;

pub use pulse_driver::monitor::{WatchConfig, WatchStats};
pub use watcher::Watcher;
