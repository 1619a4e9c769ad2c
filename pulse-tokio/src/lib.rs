//! # pulse-tokio
//!
//! [pulse](pulse_proto) heartbeats for tokio applications: long-lived
//! connections that stay alive by themselves and tell, fast and without
//! false alarms, when the peer is gone or hung. Both ends speak pulse.
//!
//! - [`connect`] and [`Listener`] over TCP, shaped like
//!   [`tokio::net::TcpStream::connect`] and [`tokio::net::TcpListener`];
//!   [`Connection::client`] and [`Connection::server`] over any tokio
//!   byte stream: TLS (tokio-rustls), Unix sockets, a socket you set up;
//!   [`connect_udp`] and [`UdpListener`] over UDP (one connection per peer
//!   address);
//! - [`Connection`]: `send` with backpressure, `recv` of messages and the
//!   core's [`Event`]s (RTT, suspect, recovered, the dead-peer verdict,
//!   closed), `rtt`, graceful `close`, and `split` into halves, the
//!   receiving one a [`Stream`](futures_core::Stream);
//! - [`ReconnectingClient`]: reconnects after a dead peer, a dropped
//!   connection or a failed attempt, as a [`pulse_proto::Backoff`] says,
//!   reporting each step;
//! - [`counters`] for metrics, and `tracing` events (targets `pulse::conn`
//!   and `pulse::accept`, see [`pulse_driver::log`]).
//!
//! Every protocol decision is made by `pulse-proto`'s `Session`; the steps
//! every driver takes (writing, reading, the timer rule, UDP
//! demultiplexing, the reconnecting client's logic) are `pulse-driver`'s;
//! this crate only waits, with tokio.
//!
//! ## Driver tasks
//!
//! Each connection runs in a driver task, spawned on the current tokio
//! runtime when the connection is made (so call these functions within a
//! runtime, as for `tokio::net`). The task owns the transport and runs the
//! heartbeats with one `tokio::time::Sleep`, whether or not the
//! application calls `recv`: an application that never reads still keeps
//! its connection, and learns of a dead peer when it looks. Dropping every
//! handle of a connection closes it; the task ends once it is closed.
//!
//! ```no_run
//! # async fn run() -> Result<(), pulse_tokio::Error> {
//! use pulse_proto::Config;
//! use pulse_tokio::{Event, Listener};
//!
//! let listener = Listener::bind("127.0.0.1:7000", Config::default()).await?;
//! while let Ok((conn, peer)) = listener.accept().await {
//!     tokio::spawn(async move {
//!         loop {
//!             match conn.recv().await {
//!                 Event::Message { tag, payload } => { let _ = conn.send(tag, payload).await; }
//!                 Event::Closed(closed) => break eprintln!("{peer}: {closed}"),
//!                 _ => {}
//!             }
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! `accept` returns no error that passes: a connection that failed before
//! it was taken is skipped, and when the process is out of descriptors,
//! accepting pauses and resumes by itself. So the loop above keeps serving.
//!
//! ## Backpressure
//!
//! `send` waits while the session's output queue is full
//! ([`pulse_proto::Config::max_queued_bytes`]): a slow reader slows the
//! writer, and nothing grows without bound. Unread messages wait up to
//! [`Connection::set_recv_buffer`] bytes; beyond that the driver stops
//! reading (TCP then slows the peer) and tells the core, which gives no
//! verdict while the silence is of our own making.
//!
//! ## Cancel safety
//!
//! Every async method says what cancelling it does. In short: `recv`,
//! `send`, `accept`, `closed` and `connected` are cancel-safe; `close`
//! goes on if its waiting is cancelled; `connect` abandons the attempt.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod connection;
mod driver;
mod halves;
mod in_session;
#[cfg(feature = "monitor")]
pub mod monitor;
mod open;
mod reconnect;
mod shared;
mod stream;
mod tcp;
mod transport;
mod udp;

pub use connection::Connection;
pub use driver::live_drivers;
pub use halves::{RecvHalf, SendHalf};
pub use pulse_driver::{
    default_backoff, ClientEvent, ClientState, Error, DEFAULT_ACCEPT_RETRY, DEFAULT_MAX_QUEUED, DEFAULT_RECV_BUFFER,
    DEFAULT_STABLE_AFTER, MAX_LOSSY_EVENTS, MAX_UNREAD_CONNECTIONS, MAX_UNREAD_TRANSITIONS,
};
pub use pulse_proto::Event;
pub use reconnect::{Builder, ReconnectingClient};
pub use shared::counters;
pub use tcp::{connect, Listener};
pub use transport::ByteStream;
pub use udp::{connect_udp, UdpListener, DEFAULT_UDP_BACKLOG};
