//! # pulse-smol
//!
//! [pulse](pulse_proto) heartbeats for smol and async-io applications:
//! long-lived connections that stay alive by themselves and tell, fast and
//! without false alarms, when the peer is gone or hung. Both ends speak
//! pulse.
//!
//! - [`connect`] and [`Listener`] over TCP; [`connect_udp`] and
//!   [`UdpListener`] over UDP (one connection per peer address);
//!   [`Connection::client`] and [`Connection::server`] over any futures-io
//!   byte stream: TLS (futures-rustls), Unix sockets, a socket you set up;
//! - [`Connection`]: `send` with backpressure, `recv` of messages and the
//!   core's [`Event`]s (RTT, suspect, recovered, the dead-peer verdict,
//!   closed), `rtt`, graceful `close`, and `split` into halves, the
//!   receiving one a `Stream`;
//! - [`ReconnectingClient`]: reconnects after a dead peer, a dropped
//!   connection or a failed attempt, as a [`pulse_proto::Backoff`] says,
//!   reporting each step;
//! - [`counters`] for metrics, and `tracing` events (targets `pulse::conn`
//!   and `pulse::accept`, see [`pulse_driver::log`]).
//! - with the `monitor` feature, `monitor`: fleet health checks
//!   (pulse-monitor) driven by a future — TCP and HTTP probes, UDP
//!   announcements, pulse connections as targets — and each pool's healthy
//!   set for a load balancer (example `balancer`).
//!
//! Every protocol decision is made by `pulse-proto`'s `Session`; the steps
//! every driver takes (writing, reading, the timer rule, UDP demultiplexing)
//! are `pulse-driver`'s; this crate only waits, with async-io.
//!
//! ## Drivers, and executors
//!
//! Each connection runs in a [`Driver`]: a future that owns the transport
//! and runs the heartbeats, whether or not the application calls `recv`.
//! The functions here need no spawner: they hand back the driver (as
//! hyper's `conn` API does) for you to spawn on any executor —
//! `smol::spawn(driver).detach()`, or poll it with your own futures under
//! `async_io::block_on`. [`UdpListener`] and [`ReconnectingClient`]
//! likewise return a future to spawn. Dropping every handle of a
//! connection closes it.
//!
//! The connections of a thread share one timer in async-io's reactor: a
//! heartbeat deadline costs no syscall, and deadlines fire within
//! [`timer_resolution`] (1 ms). On a busy thread the reactor's timer stays
//! [`timer_slack`] (10 ms) behind, so it is set at most 100 times a second;
//! when traffic stops, the first deadline may be that late.
//!
//! ```no_run
//! # smol::block_on(async {
//! use pulse_proto::Config;
//! use pulse_smol::{Event, Listener};
//!
//! let listener = Listener::bind("127.0.0.1:7000", Config::default()).await?;
//! while let Ok((conn, driver, peer)) = listener.accept().await {
//!     smol::spawn(driver).detach();
//!     smol::spawn(async move {
//!         loop {
//!             match conn.recv().await {
//!                 Event::Message { tag, payload } => { let _ = conn.send(tag, payload).await; }
//!                 Event::Closed(closed) => break eprintln!("{peer}: {closed}"),
//!                 _ => {}
//!             }
//!         }
//!     })
//!     .detach();
//! }
//! # Ok::<(), pulse_smol::Error>(()) });
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

mod client_state;
mod connection;
mod driver;
mod halves;
mod in_session;
#[cfg(feature = "monitor")]
pub mod monitor;
mod open;
mod reconnect;
mod router;
mod shared;
mod stream;
mod supervisor;
mod tcp;
mod timers;
mod transport;
mod udp;

pub use connection::Connection;
pub use driver::{live_drivers, Driver};
pub use halves::{RecvHalf, SendHalf};
pub use pulse_driver::{
    default_backoff, ClientEvent, ClientState, Error, DEFAULT_ACCEPT_RETRY, DEFAULT_MAX_QUEUED, DEFAULT_RECV_BUFFER,
    DEFAULT_STABLE_AFTER, MAX_LOSSY_EVENTS, MAX_UNREAD_CONNECTIONS, MAX_UNREAD_TRANSITIONS,
};
pub use pulse_proto::Event;
pub use reconnect::{Builder, ReconnectingClient, Supervisor};
pub use router::UdpListenerDriver;
pub use shared::counters;
pub use tcp::{connect, Listener};
pub use timers::{
    set_timer_resolution, set_timer_slack, timer_resolution, timer_slack, DEFAULT_TIMER_RESOLUTION, DEFAULT_TIMER_SLACK,
};
pub use transport::ByteStream;
pub use udp::{connect_udp, UdpListener, DEFAULT_UDP_BACKLOG};
