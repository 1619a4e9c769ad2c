//! The adaptive interval on a path that carries traffic
//! (`docs/PROTOCOL.md` §6.11): a PING after a short quiet proves only that
//! short quiet, and clean rounds step the target gap up, never down.

mod common;

use bytes::Bytes;
use common::pair::Pair;
use common::MS;
use core::time::Duration;
use pulse_proto::{Adaptive, AdaptiveConfig, Config, Event, Instant, Learned, Transport};

/// Five clean rounds whose quiets were short (the peer's messages kept
/// arriving) leave the target where it was: "steps L up by half" is from
/// the longest gap that worked only when that is an increase.
#[test]
fn clean_rounds_after_short_quiets_do_not_lower_the_target() {
    let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
    let start = policy.target_gap();
    assert_eq!(start, Duration::from_secs(25));
    let mut now = Instant::ZERO;
    for _ in 0..20 {
        now += start;
        policy.on_idle_round(MS * 160, now);
        assert!(policy.target_gap() >= start, "target fell to {:?}", policy.target_gap());
    }
}

/// The same where the target is already the maximum: the policy settles
/// there (5 % below), not below the short quiets its rounds happened to see.
#[test]
fn clean_rounds_at_the_maximum_after_short_quiets_settle_at_the_maximum() {
    let mut config = AdaptiveConfig::default();
    config.max = config.start;
    let mut policy = Adaptive::new(config, Learned::default(), Instant::ZERO);
    let mut now = Instant::ZERO;
    for _ in 0..5 {
        now += config.start;
        policy.on_idle_round(MS * 160, now);
    }
    assert!(policy.is_settled());
    assert_eq!(policy.target_gap(), config.start * 95 / 100, "5 % below the maximum");
}

/// A datagram client whose server pushes a message every 200 ms: its
/// scheduled PINGs (counted from its own last send, §6.2) follow quiets of
/// under 200 ms. The policy took those as the path's limit, stepped its
/// target down to a quarter of a second, and pinged (with a RETIME each
/// time) faster than the server's ping policy allows: the server closed a
/// well-behaved client with "too many pings" within 2.5 minutes.
#[test]
fn a_datagram_client_fed_messages_keeps_its_interval_and_its_connection() {
    let client = Config::new(Transport::Datagram).with_adaptive(Some(AdaptiveConfig::default()));
    let mut pair = Pair::connected(client);
    for _ in 0..1_000 {
        if pair.server.send(7, Bytes::from_static(b"news")).is_err() {
            break;
        }
        pair.run_for(MS * 200);
    }
    let closed = pair
        .server_events
        .iter()
        .chain(&pair.client_events)
        .find(|e| matches!(e, Event::Closed(_)));
    assert!(closed.is_none(), "{closed:?}");
    // 200 s at about one PING per 22.7 s (25 s less the jitter).
    let pings = pair.client.stats().pings_sent;
    assert!(pings <= 20, "{pings} PINGs in 200 s");
}
