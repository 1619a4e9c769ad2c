//! # pulse-proto
//!
//! The pulse heartbeat protocol as a pure, sans-IO state machine. It keeps
//! long-lived connections alive and tells, fast and without false alarms,
//! when the peer is gone or hung — and it never does I/O, reads a clock,
//! sleeps or spawns. It consumes bytes and timestamps and hands back bytes
//! to send, events, and its next deadline; an adapter (`pulse-smol`,
//! `pulse-mio`, or your own loop) moves them to and from a socket.
//!
//! The wire format and its rules are specified in [`protocol`], the
//! document `PROTOCOL.md` that ships with this crate.
//!
//! ## The drive loop
//!
//! After any `handle_*` call or application call (`send`, `close`), drain
//! output, then events, then read the one deadline:
//!
//! 1. `while let Some(bytes) = session.poll_transmit(now)`: write what the
//!    socket takes now and `advance_transmit(n)`; stop at `WouldBlock` and
//!    ask for writability (what was not taken stays in the session).
//! 2. `while let Some(event) = session.poll_event()`: act on it.
//! 3. `session.poll_timeout()`: arm one timer. Once established, input never
//!    moves it earlier, so a driver need not touch its timer on receive.
//!
//! When the timer fires, read the socket first (frames may be waiting), then
//! call `handle_timeout(now)` with the current time.
//!
//! **When to drop the transport**: one rule, one signal. `Event::Closed`
//! is queued exactly when `is_closed()` becomes true. From then on, write
//! whatever `poll_transmit` still yields that the transport takes at once
//! (a final CLOSE after a verdict or a protocol error; on a hard close the
//! session never waits), then drop the transport. A graceful close
//! (`close()`, or the peer's CLOSE) is over only once the DATA queued
//! before it and our CLOSE were all taken by the transport (and, when we
//! began it, the peer has answered), or `close_timeout` passed: so nothing
//! queued is lost to a socket that was momentarily full.
//!
//! A datagram server puts a [`Gate`] in front of its sessions: it answers
//! datagrams from unknown addresses statelessly, and says when an address
//! has proven itself and a session may open.
//!
//! ```
//! use core::time::Duration;
//! use pulse_proto::{Config, Event, Instant, Role, Session};
//!
//! let config = std::sync::Arc::new(Config::default());
//! let mut now = Instant::ZERO;
//! let mut client = Session::new(config.clone(), Role::Client, now, 1).unwrap();
//! let mut server = Session::new(config, Role::Server, now, 2).unwrap();
//!
//! // A perfect link: whatever one side sends, the other reads at once.
//! fn pump(from: &mut Session, to: &mut Session, now: Instant) {
//!     while let Some(bytes) = from.poll_transmit(now) {
//!         let bytes = bytes.to_vec();
//!         from.advance_transmit(bytes.len());
//!         to.handle_input(now, &bytes[..]);
//!     }
//! }
//! pump(&mut client, &mut server, now); // HELLO
//! pump(&mut server, &mut client, now); // WELCOME
//! assert!(matches!(client.poll_event(), Some(Event::Connected(_))));
//!
//! client.send(7, &b"hello"[..]).unwrap();
//! pump(&mut client, &mut server, now);
//! assert!(matches!(server.poll_event(), Some(Event::Connected(_))));
//! assert!(matches!(server.poll_event(), Some(Event::Message { tag: 7, .. })));
//!
//! // Silence: the client pings when its timer fires, the server answers.
//! now = client.poll_timeout().unwrap();
//! client.handle_timeout(now);
//! pump(&mut client, &mut server, now);
//! pump(&mut server, &mut client, now);
//! assert!(matches!(client.poll_event(), Some(Event::Rtt(_))));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(doc)]
extern crate std;

/// The specification of the wire format and its rules, `PROTOCOL.md` in
/// this package. Documentation only: it holds no items.
//
// One source of truth: the repository's docs/PROTOCOL.md, to which
// pulse-proto/PROTOCOL.md is a symlink (cargo package stores it as a
// regular file). It is written for plain Markdown, not rustdoc: its
// diagrams are unlabelled code blocks, which rustdoc takes for Rust (they
// would fail as doc tests, hence `not(doctest)`, and do not parse; the
// text renders intact, with a few tokens coloured as Rust), and a bare URL
// or a `[word]` would read as a link to rustdoc, hence the allows.
#[cfg(all(doc, not(doctest)))]
#[allow(
    rustdoc::invalid_rust_codeblocks,
    rustdoc::bare_urls,
    rustdoc::broken_intra_doc_links
)]
#[doc = include_str!("../PROTOCOL.md")]
pub mod protocol {}

mod adapt;
mod backoff;
mod close;
mod closing;
mod config;
mod decoder;
mod error;
mod event;
pub mod frame;
mod gate;
mod handshake;
mod hold;
mod inspect;
mod jitter;
mod liveness;
mod negotiated;
mod output;
mod ping_policy;
mod rtt;
mod session;
mod stats;
mod status;
mod time;
mod transmit;
mod tuning;
mod varint;
mod wheel;

pub use adapt::{Adaptive, AdaptiveConfig, Learned};
pub use backoff::Backoff;
pub use close::{CloseCode, Initiator};
pub use config::{Config, Transport};
pub use decoder::{next_datagram_frame, StreamDecoder, GROWTH_SLACK};
pub use error::{CloseError, ConfigError, ProtocolError, SendError};
pub use event::{Closed, Event, RttSample};
pub use gate::{Admission, Gate, AMPLIFICATION_LIMIT};
pub use jitter::SplitMix64;
pub use negotiated::{Adjustment, Negotiated, Reason, Setting};
pub use rtt::RttEstimator;
pub use session::{Role, Session, State};
pub use stats::Stats;
pub use status::{ServiceState, Status};
pub use time::Instant;
pub use wheel::{TimerKey, TimerWheel};
