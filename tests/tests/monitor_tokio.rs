//! pulse-tokio's monitor driver (`pulse_tokio::monitor`) over real
//! sockets, against targets in other processes (`pulse-target`,
//! `pulse-peer`): TCP, HTTP and announcing targets that are killed, frozen
//! (SIGSTOP) or answer 503 go down within their bounds and come back after
//! `rise` checks; announcements with a wrong key are rejected and counted;
//! a pulse-tokio connection is a target fed by its own events; the
//! `tokio_balancer` example forwards only to healthy backends. The tests
//! are `pulse_tests::monitor_harness`'s, the same as pulse-smol's
//! (`monitor_smol.rs`), run on a tokio runtime.

use std::any::Any;
use std::net::SocketAddr;

use pulse_driver::monitor::Watcher;
use pulse_monitor::{Monitor, TargetId};
use pulse_tokio::monitor::{watch, WatchConfig};

/// A runtime of two threads of its own, driving one monitor or connection;
/// dropped, it stops them.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The driver on a runtime of its own, spawned from outside it: the
/// handle needs none.
fn start(monitor: Monitor) -> (Watcher, Box<dyn Any>) {
    let (watcher, driver) = watch(WatchConfig::default(), monitor);
    let runtime = runtime();
    runtime.spawn(driver);
    (watcher, Box::new(runtime))
}

/// A pulse-tokio connection to `server`, followed as `target`.
fn follow(watcher: &Watcher, target: TargetId, server: SocketAddr, session: pulse_proto::Config) -> Box<dyn Any> {
    let runtime = runtime();
    let conn = runtime.block_on(pulse_tokio::connect(server, session)).unwrap();
    runtime.spawn(watcher.follow(target, conn));
    Box::new(runtime)
}

pulse_tests::monitor_driver_tests!(start, follow, ("pulse-tokio", "tokio_balancer"));
