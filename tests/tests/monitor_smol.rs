//! pulse-smol's monitor driver (`pulse_smol::monitor`) over real sockets,
//! against targets in other processes: the tests of
//! `pulse_tests::monitor_harness`, which pulse-tokio's driver passes too
//! (`monitor_tokio.rs`), run on smol's executor.

use std::any::Any;
use std::net::SocketAddr;

use pulse_driver::monitor::Watcher;
use pulse_monitor::{Monitor, TargetId};
use pulse_smol::monitor::{watch, WatchConfig};

/// The driver on smol's global executor; dropping the task stops it.
fn start(monitor: Monitor) -> (Watcher, Box<dyn Any>) {
    let (watcher, driver) = watch(WatchConfig::default(), monitor);
    (watcher, Box::new(smol::spawn(driver)))
}

/// A pulse-smol connection to `server`, followed as `target`.
fn follow(watcher: &Watcher, target: TargetId, server: SocketAddr, session: pulse_proto::Config) -> Box<dyn Any> {
    let (conn, driver) = smol::block_on(pulse_smol::connect(server, session)).unwrap();
    smol::spawn(driver).detach();
    Box::new(smol::spawn(watcher.follow(target, conn)))
}

pulse_tests::monitor_driver_tests!(start, follow, ("pulse-smol", "balancer"));
