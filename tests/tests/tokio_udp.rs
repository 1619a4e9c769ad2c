//! pulse-tokio over UDP on 127.0.0.1: peers told apart by address behind
//! the gate, messages, a silent peer, and the listener's end.

mod tokio_common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{CloseCode, Initiator, Role, Session, Transport};
use pulse_tokio::{connect_udp, Event, UdpListener};
use tokio_common::{bounded, config, echo, message_or_end, verdict_then_close};

#[tokio::test]
async fn three_udp_peers_are_told_apart_and_their_messages_come_back_intact() {
    bounded(async {
        let listener = UdpListener::bind("127.0.0.1:0", config(100, 1000)).await.unwrap();
        let addr = listener.local_addr();
        let server = tokio::spawn(async move {
            let mut peers = BTreeSet::new();
            while peers.len() < 3 {
                let (conn, peer) = listener.accept().await.unwrap();
                assert_eq!(conn.peer_addr().unwrap(), peer);
                peers.insert(peer);
                tokio::spawn(echo(conn));
            }
            peers
        });
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(connect_udp(addr, config(100, 1000)).await.unwrap());
        }
        for (i, conn) in clients.iter().enumerate() {
            // Small, one datagram each; loopback loses none of a few.
            for n in 0..10u16 {
                conn.send(n, Bytes::from(vec![i as u8; 300])).await.unwrap();
            }
        }
        for (i, conn) in clients.iter().enumerate() {
            for n in 0..10u16 {
                let back = message_or_end(conn).await.expect("the connection ended");
                assert_eq!(back, (n, Bytes::from(vec![i as u8; 300])), "client {i}");
            }
        }
        let seen = server.await.unwrap();
        let ours: BTreeSet<_> = clients.iter().map(|c| c.local_addr().unwrap().port()).collect();
        assert_eq!(seen.iter().map(|a| a.port()).collect::<BTreeSet<_>>(), ours);
        // Heartbeats run on each.
        for conn in &clients {
            while !matches!(conn.recv().await, Event::Rtt(_)) {}
        }
    })
    .await;
}

/// A UDP client driven by hand: it completes the handshake (through the
/// server's RETRY), then falls silent, its socket still open.
fn silent_udp_client(server: SocketAddr) -> std::net::UdpSocket {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let clock = pulse_driver::clock::now;
    let datagrams = (*config(100, 600)).clone().with_transport(Transport::Datagram);
    let mut session = Session::new(datagrams, Role::Client, clock(), 7).unwrap();
    let mut datagram = [0u8; 2048];
    for _ in 0..50 {
        while let Some(frame) = session.poll_transmit(clock()) {
            socket.send(frame).unwrap();
            let sent = frame.len();
            session.advance_transmit(sent);
        }
        if session.negotiated().is_some() {
            return socket;
        }
        match socket.recv(&mut datagram) {
            Ok(n) => session.handle_datagram(clock(), &datagram[..n]),
            Err(_) => session.handle_timeout(clock()),
        }
    }
    panic!("no handshake with {server}");
}

#[tokio::test]
async fn a_udp_peer_that_falls_silent_is_declared_dead_at_the_timeout() {
    bounded(async {
        let listener = UdpListener::bind("127.0.0.1:0", config(100, 600)).await.unwrap();
        let addr = listener.local_addr();
        let client = tokio::task::spawn_blocking(move || silent_udp_client(addr));
        let (server, _) = listener.accept().await.unwrap();
        let _socket = client.await.unwrap();
        let (verdict, closed) = verdict_then_close(&server).await;
        let silent_for = verdict.expect("a verdict before the close");
        assert_eq!(
            (closed.code, closed.initiator),
            (CloseCode::TIMED_OUT, Initiator::Local)
        );
        assert!(silent_for >= Duration::from_millis(600), "{silent_for:?}");
        assert!(pulse_tokio::counters().verdicts >= 1);
    })
    .await;
}
