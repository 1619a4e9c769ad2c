//! [pulse-monitor](pulse_monitor) run by smol: fleet health for load
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
//! ([`pulse_driver::monitor`]), the same for every async runtime; this
//! module only says how async-io waits.
//!
//! With the `monitor` feature.
//!
//! ```
//! # smol::block_on(async {
//! use pulse_monitor::{Config, Event, HttpCheck, Check, Monitor, TargetSpec};
//! use pulse_smol::monitor::{watch, WatchConfig};
//!
//! let monitor = Monitor::new(Config::lan(), pulse_driver::clock::now(), pulse_driver::clock::seed()).unwrap();
//! let (watcher, driver) = watch(WatchConfig::default(), monitor);
//! smol::spawn(driver).detach();
//! let pool = watcher.add_pool();
//! let health = watcher.add_check(Check::Http(HttpCheck::get("/health").unwrap()));
//! // Nothing listens here: its checks are refused.
//! let gone = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
//! watcher.add_target(TargetSpec::checked(pool, health), Some(gone)).unwrap();
//! let _announce_to = watcher.listen_announcements("127.0.0.1:0".parse().unwrap())?;
//! // A load balancer sends traffic to the healthy set only.
//! assert!(watcher.healthy(pool).is_empty());
//! let _ = futures_lite::future::or(
//!     async {
//!         loop {
//!             if let Event::Transition(t) = watcher.recv().await {
//!                 println!("{}: {} -> {}", t.target, t.from, t.to);
//!             }
//!         }
//!     },
//!     async {
//!         async_io::Timer::after(std::time::Duration::from_millis(50)).await;
//!     },
//! )
//! .await;
//! # Ok::<(), std::io::Error>(()) });
//! ```

mod driver;

pub use driver::{watch, AsyncIo, WatchDriver};
pub use pulse_driver::monitor::{WatchConfig, WatchStats, Watcher, MAX_ANNOUNCE_SOCKETS};
