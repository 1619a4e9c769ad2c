//! The adaptive interval against a server whose maximum interval is below
//! what the path allows (`docs/PROTOCOL.md` §6.11): the server's clamp is
//! a ceiling, and the policy settles there rather than searching on; what
//! it learned still makes sense to the next server, whatever its clamp.
//!
//! A seed chooses the transport, whether the server refreshes the NAT,
//! and the link's jitter; `PULSE_SIM_SEED=<seed>` replays one.

use std::sync::Arc;
use std::time::Duration;

use pulse_proto::{AdaptiveConfig, Config, Learned, Transport};
use pulse_tests::sim::{Nat, Path, Reconnecting, Refresh};
use pulse_tests::{draw_between, seeds};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The path keeps an idle connection for 5 minutes.
const PATH_TIMEOUT: Duration = Duration::from_secs(300);

fn path(seed: u64) -> Path {
    let latency = Duration::from_millis(20);
    Path {
        nat: Nat::new(
            PATH_TIMEOUT,
            [Refresh::Both, Refresh::Outbound][(seed / 2 % 2) as usize],
        ),
        latency,
        jitter: draw_between(seed, 3, Duration::ZERO, latency / 2),
        transport: [Transport::Stream, Transport::Datagram][(seed % 2) as usize],
    }
}

/// A server that agrees to no interval longer than `max_interval`.
fn server(transport: Transport, max_interval: Duration) -> Arc<Config> {
    Arc::new(
        Config::new(transport)
            .with_max_interval(max_interval)
            .with_max_dead_timeout(4 * HOUR),
    )
}

/// The widest idle gap an interval allows with the default jitter (10 %).
fn gap_for(interval: Duration) -> Duration {
    interval * 110 / 100
}

/// Runs until the client's policy settles (or `within` passes); returns
/// the settled gap, if it settled.
fn settle(run: &mut Reconnecting, within: Duration) -> Option<Duration> {
    let give_up = run.now() + within;
    while run.now() < give_up {
        let next = run.now() + 10 * MINUTE;
        run.run_until(next, |_| {});
        let policy = run.pair.client.session.adaptive().expect("adaptive");
        if policy.is_settled() && run.is_connected() {
            return Some(policy.target_gap());
        }
    }
    None
}

fn client(transport: Transport) -> Arc<Config> {
    Arc::new(Config::new(transport).with_adaptive(Some(AdaptiveConfig::default())))
}

#[test]
fn against_a_server_whose_maximum_interval_is_below_the_paths_timeout_the_policy_settles_at_the_clamp() {
    let clamp = 60 * SECOND;
    for seed in seeds(8) {
        let path = path(seed);
        let mut run = Reconnecting::new(path, client(path.transport), server(path.transport, clamp), seed);
        let settled = settle(&mut run, 24 * HOUR);
        let learned = run.pair.client.session.learned();
        assert_eq!(
            settled,
            Some(gap_for(clamp)),
            "seed {seed} ({:?}): under a {clamp:?} clamp on a {PATH_TIMEOUT:?} path; learned {learned:?}",
            path.transport
        );
        assert_eq!(
            run.connections.len(),
            1,
            "seed {seed}: nothing past the clamp was tried, so nothing died: {:?}",
            run.history()
        );
        let server = run.pair.server.session.negotiated().expect("established");
        assert_eq!(
            server.interval(),
            clamp,
            "seed {seed}: the server's interval is its clamp"
        );
        // Settled, it stays: no renegotiation, no death, for a day.
        let frames_before = run.pair.server.session.stats().frames_received;
        let until = run.now() + 24 * HOUR;
        run.run_until(until, |_| {});
        assert_eq!(run.connections.len(), 1, "seed {seed}: {:?}", run.history());
        let policy = run.pair.client.session.adaptive().expect("adaptive");
        assert!(policy.is_settled(), "seed {seed}: {policy:?}");
        assert_eq!(policy.target_gap(), gap_for(clamp), "seed {seed}");
        assert!(
            run.pair.server.session.stats().frames_received > frames_before,
            "seed {seed}: the client kept pinging"
        );
    }
}

/// What a client settled at a 60 s clamp stores, given to clients of
/// other servers on the same network.
fn stored_under_a_clamp(seed: u64) -> Learned {
    let path = path(seed);
    let mut run = Reconnecting::new(path, client(path.transport), server(path.transport, 60 * SECOND), seed);
    settle(&mut run, 24 * HOUR).expect("settled at the clamp");
    let learned = run.pair.client.session.learned().expect("adaptive");
    Learned::from_bytes(learned.to_bytes())
}

#[test]
fn what_was_learned_under_one_servers_clamp_resumes_sensibly_under_another_clamp() {
    for seed in seeds(4) {
        let stored = stored_under_a_clamp(seed);
        let path = path(seed);
        // A server allowing anything: the search goes on from where the
        // clamp stopped it, and settles just under the path's timeout.
        let mut free =
            Reconnecting::new(path, client(path.transport), server(path.transport, HOUR), seed + 100).knowing(stored);
        let started = free.connections[0].started_with.expect("adaptive").1;
        assert!(
            started > gap_for(60 * SECOND),
            "seed {seed}: resumed at {started:?}, not past the old clamp; stored {stored:?}"
        );
        let gap = settle(&mut free, 3 * 24 * HOUR).expect("settled without a clamp");
        assert!(
            gap < PATH_TIMEOUT && gap * 100 >= PATH_TIMEOUT * 85,
            "seed {seed}: settled at {gap:?} on a {PATH_TIMEOUT:?} path"
        );
        // A server with a lower clamp: settled at that one.
        let clamp = 30 * SECOND;
        let mut lower =
            Reconnecting::new(path, client(path.transport), server(path.transport, clamp), seed + 200).knowing(stored);
        let gap = settle(&mut lower, 24 * HOUR).expect("settled at the lower clamp");
        assert_eq!(gap, gap_for(clamp), "seed {seed}");
        assert_eq!(lower.connections.len(), 1, "seed {seed}: {:?}", lower.history());
    }
}
