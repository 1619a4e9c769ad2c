//! Datagram (UDP) mode: whole frames per datagram, loss, duplication and
//! a handshake that survives a lost HELLO.

use std::time::Duration;

use pulse_proto::frame::{Frame, MAGIC};
use pulse_proto::{Config, Event, Instant, Role, Session, State, Transport};
use pulse_tests::{config, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);

fn pair(seed: u64) -> Pair {
    Pair::with_config(
        config(Transport::Datagram, 1_000, 3_000),
        Duration::from_millis(10),
        seed,
    )
}

#[test]
fn a_datagram_pair_connects_exchanges_messages_and_heartbeats() {
    let mut pair = pair(1);
    pair.connect(SECOND);
    pair.send(Side::Client, 3, &b"over udp"[..]).unwrap();
    pair.run_for(SECOND * 60);
    assert_eq!(
        pair.server
            .events_where(|e| matches!(e, Event::Message { tag: 3, .. }))
            .len(),
        1
    );
    assert!(pair.client.session.stats().pings_sent >= 50);
    assert!(pair
        .client
        .events_where(|e| matches!(e, Event::PeerDead { .. } | Event::Closed(_)))
        .is_empty());
}

#[test]
fn a_lost_hello_is_sent_again() {
    let mut pair = pair(2);
    pair.to_server.cut = true;
    pair.run_for(Duration::from_millis(500));
    pair.to_server.cut = false;
    pair.connect(SECOND * 2);
    assert!(pair.now >= Instant::ZERO + SECOND, "connected at {:?}", pair.now);
    assert!(
        pair.now <= Instant::ZERO + Duration::from_millis(1_030),
        "connected at {:?}",
        pair.now
    );
    // The WELCOME echoes which HELLO it answers, so even the answer to a
    // retransmission is an exact RTT sample (Karn's ambiguity, removed).
    assert_eq!(pair.client.session.rtt(), Some(Duration::from_millis(20)));
}

#[test]
fn a_lost_welcome_is_answered_again_and_the_pair_settles() {
    let mut pair = pair(3);
    pair.to_client.cut = true;
    pair.run_for(Duration::from_millis(500));
    assert_eq!(pair.server.session.state(), State::Established);
    pair.to_client.cut = false;
    pair.connect(SECOND * 2);
    pair.run_for(SECOND * 30);
    assert!(pair.client.events_where(|e| matches!(e, Event::Closed(_))).is_empty());
    assert!(pair.server.events_where(|e| matches!(e, Event::Closed(_))).is_empty());
}

#[test]
fn duplicated_datagrams_are_harmless() {
    let mut pair = pair(4);
    pair.to_server.duplicate = true;
    pair.to_client.duplicate = true;
    pair.connect(SECOND);
    pair.run_for(SECOND * 120);
    for end in [&pair.client, &pair.server] {
        assert_eq!(end.session.state(), State::Established, "{:?}", end.events);
    }
    // Each duplicate PING is recognised and not answered twice.
    assert!(pair.server.session.stats().pongs_sent <= pair.client.session.stats().pings_sent);
}

#[test]
fn a_silent_datagram_peer_is_declared_dead_within_the_bound() {
    let mut pair = pair(5);
    pair.connect(SECOND);
    pair.run_for(SECOND * 5);
    pair.server.process.frozen = true;
    pair.run_for(SECOND * 10);
    let dead = pair.client.events_where(|e| matches!(e, Event::PeerDead { .. }));
    assert_eq!(dead.len(), 1);
    let after = dead[0].0 - pair.client.last_input_at.unwrap();
    assert!(
        after >= Duration::from_secs(3) && after <= Duration::from_millis(3_001),
        "{after:?}"
    );
}

#[test]
fn a_malformed_datagram_is_dropped_and_is_no_proof_of_life() {
    let mut pair = pair(6);
    pair.connect(SECOND);
    let now = pair.now;
    let client = &mut pair.client.session;
    let deadline = client.poll_timeout();
    client.handle_datagram(now + SECOND, &[0x03, 0x04, 0, 0][..]); // PING cut short
    assert_eq!(client.stats().datagrams_dropped, 1);
    assert_eq!(client.poll_timeout(), deadline);
    assert_eq!(client.state(), State::Established);
}

#[test]
fn datagrams_never_exceed_the_configured_size_and_messages_must_fit_one() {
    let mut pair = pair(7);
    pair.connect(SECOND);
    let max = pair.client.session.max_payload();
    assert!(max < 1200);
    assert!(pair.client.session.send(1, vec![0; max + 1]).is_err());
    for _ in 0..10 {
        pair.client.session.send(1, vec![0; max]).unwrap();
    }
    let now = pair.now;
    let mut datagrams = 0;
    while let Some(datagram) = pair.client.session.poll_transmit(now) {
        assert!(datagram.len() <= 1200);
        datagrams += 1;
        pair.client.session.advance_transmit(0); // a datagram is taken whole
    }
    assert_eq!(datagrams, 10);
}

#[test]
fn a_server_drops_stray_datagrams_before_a_handshake() {
    let mut server = Session::new(Config::new(Transport::Datagram), Role::Server, Instant::ZERO, 1).unwrap();
    let mut stray = Vec::new();
    Frame::Ping { id: 1 }.encode(&mut stray);
    server.handle_datagram(Instant::ZERO, &stray[..]);
    server.handle_datagram(Instant::ZERO, &b"GET / HTTP/1.1\r\n\r\n"[..]);
    assert_eq!(server.stats().datagrams_dropped, 2);
    assert_eq!(server.state(), State::Handshaking);
    let _ = MAGIC;
}
