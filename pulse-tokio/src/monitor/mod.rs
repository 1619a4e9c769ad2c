//! [pulse-monitor](pulse_monitor) run by tokio: fleet health for load
//! balancers and consoles. [`watch`] hands back a [`Watcher`] — targets
//! in; transitions ([`Watcher::recv`]), snapshots and each pool's healthy
//! set out — and a [`WatchDriver`], a future you spawn, which opens the
//! probe connections the monitor asks for (TCP connect, HTTP: the request
//! bytes and the response's verdict are the monitor's), reads ANNOUNCE
//! datagrams from UDP sockets, and keeps the monitor's time. pulse
//! connections are targets fed by their own events
//! ([`Watcher::follow`], [`Watcher::handle_peer_event`]): no extra
//! traffic. The driver decides nothing: every verdict is the monitor's.
//! The handle and the driver task are pulse-driver's
//! ([`pulse_driver::monitor`]), the same as pulse-smol's; this module only
//! says how tokio waits.
//!
//! With the `monitor` feature.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use pulse_monitor::{Check, Config, Event, HttpCheck, Monitor, TargetSpec};
//! use pulse_tokio::monitor::{watch, WatchConfig};
//!
//! let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed()).unwrap();
//! let (watcher, driver) = watch(WatchConfig::default(), monitor);
//! tokio::spawn(driver);
//! let pool = watcher.add_pool();
//! let health = watcher.add_check(Check::Http(HttpCheck::get("/health").unwrap()));
//! // Nothing listens here: its checks are refused.
//! let gone = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
//! watcher.add_target(TargetSpec::checked(pool, health), Some(gone)).unwrap();
//! let _announce_to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
//! // A load balancer sends traffic to the healthy set only.
//! assert!(watcher.healthy(pool).is_empty());
//! let transitions = async {
//!     loop {
//!         if let Event::Transition(t) = watcher.recv().await {
//!             println!("{}: {} -> {}", t.target, t.from, t.to);
//!         }
//!     }
//! };
//! let _ = tokio::time::timeout(std::time::Duration::from_millis(50), transitions).await;
//! # Ok(()) }
//! ```

mod driver;

pub use driver::{watch, Tokio, WatchDriver};
pub use pulse_driver::monitor::{WatchConfig, WatchStats, Watcher, MAX_ANNOUNCE_SOCKETS};
