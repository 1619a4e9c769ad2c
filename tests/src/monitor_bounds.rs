//! What the monitor drivers' real-socket tests share: the configuration
//! they run at, the bound each verdict must come within (three times the
//! detection time the configuration gives, with jitter at its worst), and
//! the announcing targets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pulse_driver::clock;
use pulse_monitor::{CheckResult, Config, Reason, Transition};

use crate::peer::Peer;

/// The longest any test waits for anything.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Checks every 500 ms, 125 ms while changing, a 250 ms timeout, rise 2,
/// fall 3, ±10 % jitter. No flap damping, and the pool guards at their
/// weakest (a pool panics only when none of it is up): each test watches
/// one target's own transitions.
pub fn config() -> Config {
    let mut config = Config::lan();
    config.interval = Duration::from_millis(500);
    config.fast_interval = Duration::from_millis(125);
    config.down_interval = Duration::from_millis(500);
    config.timeout = Duration::from_millis(250);
    config.rise = 2;
    config.fall = 3;
    config.damping = None;
    config.correlated_share = 100;
    config.panic_threshold = 0;
    config
}

/// `d` at the top of its jitter.
pub fn jittered(config: &Config, d: Duration) -> Duration {
    d * (100 + u32::from(config.jitter_percent)) / 100
}

/// Down after `fall` failed checks, each failing as soon as it runs: the
/// next check comes within an interval, the others a fast interval apart.
pub fn down_when_failing_at_once(config: &Config) -> Duration {
    jittered(config, config.interval) + jittered(config, config.fast_interval) * (u32::from(config.fall) - 1)
}

/// Down after `fall` checks that each wait out the timeout.
pub fn down_when_timing_out(config: &Config) -> Duration {
    down_when_failing_at_once(config) + config.timeout * u32::from(config.fall)
}

/// Up after `rise` passing checks of a target that was down.
pub fn up_after_rise(config: &Config) -> Duration {
    jittered(config, config.down_interval) + jittered(config, config.fast_interval) * (u32::from(config.rise) - 1)
}

/// How long after `since` the transition came.
pub fn after(t: &Transition, since: Instant) -> Duration {
    clock::to_std(t.at).saturating_duration_since(since)
}

/// Asserts that `t` came within `bound` of `since`, and says when it came
/// (`--nocapture` shows it).
pub fn within(t: &Transition, since: Instant, bound: Duration, what: &str) {
    let took = after(t, since);
    eprintln!("{}: {} {took:?} after {what} (bound {bound:?})", t.target, t.to);
    assert!(took <= bound, "{} {took:?} after {what} (bound {bound:?})", t.to);
}

/// The checks that took a target down or up: `(count, last result)`.
pub fn checks(t: &Transition) -> (u8, CheckResult) {
    match t.reason {
        Reason::Checks { count, last } => (count, last),
        other => panic!("not a verdict of checks: {other:?}"),
    }
}

/// Announcements every 200 ms.
pub const ANNOUNCE_MS: u64 = 200;

/// The key the announcing tests' fleet shares.
pub const KEY: &str = "the fleet's secret";

/// With the monitor's defaults (acceptable pause one interval, minimum
/// deviation a quarter, down at φ 8) a silent service is down 3.3
/// intervals after its last announcement (`pulse_monitor::Config`).
pub fn silent_down_bound() -> Duration {
    Duration::from_millis(ANNOUNCE_MS) * 33 / 10 * 3
}

/// A `pulse-target` process (the binary at `target`) announcing `service`
/// to `monitor` every [`ANNOUNCE_MS`], as `incarnation`, with `key`.
pub fn announcer(target: &str, monitor: SocketAddr, service: u64, incarnation: u32, key: &str) -> Peer {
    let (monitor, service, interval, incarnation) = (
        monitor.to_string(),
        service.to_string(),
        ANNOUNCE_MS.to_string(),
        incarnation.to_string(),
    );
    Peer::start(target, &["announce", &monitor, &service, &interval, &incarnation, key])
}
