//! pulse-tokio against a peer in another process, frozen with SIGSTOP
//! behind TLS: its kernel still ACKs TCP, so only pulse can tell.
//!
//! Timing bounds keep three times the expected value or more: these run
//! beside other tests on a busy machine.

mod tokio_common;

use std::time::{Duration, Instant};

use pulse_proto::CloseCode;
use pulse_tests::peer::Peer;
use pulse_tests::tls::{from_hex, localhost, tokio_connector};
use pulse_tokio::{Connection, Event};
use tokio_common::{config, message_or_end, verdict_then_close};

const PEER: &str = env!("CARGO_BIN_EXE_pulse-peer");

#[tokio::test]
async fn a_tokio_peer_frozen_behind_tls_is_declared_dead_at_the_timeout() {
    let mut server = Peer::start(PEER, &["tokio-tls-echo-server", "1000", "3000"]);
    let addr = server.addr.unwrap();
    let cert = from_hex(&server.ask("cert"));
    let frozen_at = tokio::time::timeout(Duration::from_secs(60), async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = tokio_connector(&cert).connect(localhost(), tcp).await.unwrap();
        let conn = Connection::client(tls, config(1000, 3000)).await.unwrap();
        conn.send(7, "through TLS").await.unwrap();
        let (tag, payload) = message_or_end(&conn).await.expect("an echo");
        assert_eq!((tag, &payload[..]), (7, &b"through TLS"[..]));
        // Two heartbeats through TLS, then the server process freezes.
        let mut rtts = 0;
        while rtts < 2 {
            rtts += usize::from(matches!(conn.recv().await, Event::Rtt(_)));
        }
        server.freeze();
        let frozen_at = Instant::now();
        let (silence, closed) = verdict_then_close(&conn).await;
        let after = frozen_at.elapsed();
        assert_eq!(closed.code, CloseCode::TIMED_OUT, "{closed:?}");
        let silence = silence.expect("a verdict before the close");
        assert!(
            silence >= Duration::from_secs(3),
            "verdict after {silence:?} of silence"
        );
        assert!(after <= Duration::from_secs(9), "verdict {after:?} after the freeze");
        println!("pulse-tokio behind TLS: verdict {after:?} after SIGSTOP (timeout 3 s)");
        after
    })
    .await;
    server.thaw();
    frozen_at.expect("test timed out");
}
