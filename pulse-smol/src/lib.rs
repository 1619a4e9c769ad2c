//! # pulse-smol
//!
//! [pulse](pulse_proto) heartbeats for smol and async-io applications:
//! long-lived connections that stay alive by themselves and tell, fast and
//! without false alarms, when the peer is gone or hung.
//!
//! - [`connect`] and [`Listener`] over TCP; [`connect_udp`] and
//!   [`UdpListener`] over UDP (one connection per peer address);
//! - [`Connection`]: `send` with backpressure, `recv` of messages and events
//!   (RTT, suspect, recovered, the dead-peer verdict, closed), `rtt`,
//!   graceful `close`, and `split` into halves for different tasks;
//! - [`ReconnectingClient`]: reconnects after a dead peer or a dropped
//!   connection, as a [`pulse_proto::Backoff`] says, reporting each step.
//!
//! Every protocol decision is made by `pulse-proto`'s `Session`; this crate
//! only moves bytes and time.
//!
//! ## Drivers, and executors
//!
//! Each connection runs in a [`Driver`]: a future that owns the socket and
//! one timer and runs the heartbeats, whether or not the application calls
//! `recv`. The functions here need no spawner: they hand back the driver
//! (as hyper's `conn` API does) for you to spawn on any executor —
//! `smol::spawn(driver).detach()`, or poll it with your own futures under
//! `async_io::block_on`. [`UdpListener`] and [`ReconnectingClient`] likewise
//! return a future to spawn. Dropping every handle of a connection closes it.
//!
//! ```no_run
//! # smol::block_on(async {
//! use pulse_proto::Config;
//! use pulse_smol::{Incoming, Listener};
//!
//! let listener = Listener::bind("127.0.0.1:7000".parse()?, Config::default())?;
//! loop {
//!     let (conn, driver, peer) = listener.accept().await?;
//!     smol::spawn(driver).detach();
//!     smol::spawn(async move {
//!         loop {
//!             match conn.recv().await {
//!                 Incoming::Message { tag, payload } => { let _ = conn.send(tag, payload).await; }
//!                 Incoming::Closed(closed) => break eprintln!("{peer}: {}", closed.code),
//!                 _ => {}
//!             }
//!         }
//!     })
//!     .detach();
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(()) });
//! ```
//!
//! ## Backpressure
//!
//! `send` waits while the session's output queue is full
//! ([`pulse_proto::Config::max_queued_bytes`]): a slow reader slows the
//! writer, and nothing grows without bound. Unread messages wait up to
//! [`Connection::set_recv_buffer`] bytes; beyond that the driver stops
//! reading (TCP then slows the peer) and, since the silence would be of our
//! own making, gives no verdict until the application reads again.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod connection;
mod driver;
mod error;
mod incoming;
mod reconnect;
mod shared;
mod tcp;
mod udp;

pub use connection::{Connection, RecvHalf, SendHalf};
pub use driver::{live_drivers, Driver};
pub use error::Error;
pub use incoming::Incoming;
pub use reconnect::{ClientEvent, ReconnectingClient, Supervisor};
pub use shared::DEFAULT_RECV_BUFFER;
pub use tcp::{connect, Listener};
pub use udp::{connect_udp, UdpListener, UdpListenerDriver};
