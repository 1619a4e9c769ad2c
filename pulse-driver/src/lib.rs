//! # pulse-driver
//!
//! What every [pulse](pulse_proto) driver does the same way, written once,
//! so that pulse-smol, pulse-tokio and pulse-mio differ only in how they
//! wait: no runtime here, no socket type, no protocol decision — those are
//! the session's.
//!
//! - [`clock`]: the machine's monotonic clock as `pulse_proto::Instant`,
//!   seeds for jitter and keys for the datagram gate;
//! - [`TimerSlot`]: the one timer per session, and the rule for when to
//!   touch it (only when the deadline moved earlier, or it fired);
//! - [`flush`]: the transmit loop over `poll_transmit` / `advance_transmit`,
//!   writing only what the transport takes now;
//! - [`read_stream`] and [`with_read_buffer`]: reading into one buffer per
//!   thread and handing every read to the session at once;
//! - [`Demux`]: a UDP listener's peers by address, behind the
//!   [`pulse_proto::Gate`];
//! - [`Mailbox`]: a connection's session and the events its application
//!   has yet to read, with the driver's steps over any [`Transfer`], for
//!   adapters that run a task per connection;
//! - [`Linger`] and [`discard_input`]: how long a transport outlives its
//!   session, and reading the peer to its end before it goes;
//! - [`ClientQueue`], [`Attempts`] and [`ClientEvent`]: a reconnecting
//!   client's logic, whatever runs it; [`ClientState`], what its
//!   application calls (the adapters' clients dereference to it); [`Error`], a connection's errors;
//! - [`Counters`]: aggregate counters a program can read for its metrics;
//! - [`log`]: the `tracing` events an operator needs, the same from every
//!   adapter.
//! - with the `monitor` feature, `monitor`: what a pulse-monitor driver
//!   does on any runtime (probe connections, announcement sockets, the
//!   bookkeeping around the monitor), used by pulse-mio; and for async
//!   runtimes the whole driver (the `Watcher` handle and the `WatchTask`,
//!   generic over a `WatchRuntime`), used by pulse-smol and pulse-tokio.
//!
//! ## A driver, in full
//!
//! ```
//! use pulse_driver::{clock, flush, read_stream, Flushed, TimerSlot, Arm};
//! use pulse_proto::{Config, Role, Session};
//!
//! # fn drive(socket: &mut std::net::TcpStream) -> std::io::Result<()> {
//! use std::io::{Read, Write};
//! let mut session = Session::new(Config::default(), Role::Client, clock::now(), clock::seed()).unwrap();
//! let mut timer = TimerSlot::default();
//! // After any call into the session:
//! let flushed = flush(&mut session, clock::now(), |bytes| socket.write(bytes), false);
//! if flushed == Flushed::Blocked { /* wait for writability */ }
//! while let Some(_event) = session.poll_event() { /* hand it to the application */ }
//! match timer.rearm(session.poll_timeout()) {
//!     Arm::Set(_at) => { /* set the runtime's timer for `at` (clock::to_std) */ }
//!     Arm::Cancel => { /* cancel it */ }
//!     Arm::Keep => {}
//! }
//! // When the socket is readable:
//! let _read = read_stream(&mut session, 16, true, |buf| socket.read(buf));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
pub mod clock;
mod counters;
mod demux;
mod dial;
mod error;
mod io;
mod linger;
pub mod log;
mod mailbox;
mod reconnect;
mod retry;
mod setup;
mod timer;
mod waiting;

#[doc(hidden)]
pub use client::__macro_support;
pub use client::{ClientState, Inbox};
pub use counters::{Counters, CountersSnapshot};
pub use demux::{Demux, Route};
pub use dial::{attempt_deadline, MIN_ADDRESS_SHARE};
pub use error::Error;
pub use io::{flush, read_datagram, read_stream, with_read_buffer, Flushed, Read, READ_BUFFER};
pub use linger::{discard_input, Discarded, Linger, DISCARDING_READS};
pub use mailbox::{Mailbox, PeerName, Transfer, DEFAULT_RECV_BUFFER, MAX_LOSSY_EVENTS};
pub use reconnect::{
    default_backoff, ClientEvent, ClientOptions, ClientQueue, DEFAULT_MAX_QUEUED, MAX_UNREAD_CONNECTIONS,
    MAX_UNREAD_TRANSITIONS,
};
pub use retry::{AfterLoss, Attempts, Retry, DEFAULT_STABLE_AFTER};
pub use setup::{
    config_for, no_address, no_socket_address, unspecified_for, AcceptError, AcceptErrors, DEFAULT_ACCEPT_RETRY,
};
pub use timer::{Arm, TimerSlot};
#[cfg(feature = "monitor")]
pub mod monitor;
