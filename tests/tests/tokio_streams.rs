//! pulse-tokio over byte streams the application opens: TLS (tokio-rustls,
//! a certificate made at run time) and Unix domain sockets.

mod tokio_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::{CloseCode, Config, Initiator};
use pulse_tests::tls::{localhost, tokio_connector, Identity};
use pulse_tokio::{Connection, Event};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_common::{bounded, echo};

fn config() -> Arc<Config> {
    Arc::new(Config::default().with_timing(Duration::from_millis(200), Duration::from_millis(1000)))
}

/// 150 messages up to 200 KB (larger than a TLS record, so they span
/// several), each checked whole and in order after the echo.
async fn intact_through_echo(conn: &Connection) {
    let sizes = (0..150usize).map(|i| i * 1_327 % 200_000);
    let sent: Vec<Bytes> = sizes.enumerate().map(|(i, n)| Bytes::from(vec![i as u8; n])).collect();
    let sender = {
        let (conn, sent) = (conn.clone(), sent.clone());
        tokio::spawn(async move {
            for (i, payload) in sent.into_iter().enumerate() {
                conn.send(i as u16, payload).await.unwrap();
            }
        })
    };
    let mut next = 0;
    while next < sent.len() {
        match conn.recv().await {
            Event::Message { tag, payload } => {
                assert_eq!(usize::from(tag), next);
                assert!(payload == sent[next], "message {next} came back changed");
                next += 1;
            }
            Event::Closed(closed) => panic!("closed after {next}: {closed:?}"),
            _ => {}
        }
    }
    sender.await.unwrap();
}

/// A pulse echo server behind TLS; what TLS refused is reported on the
/// channel.
async fn tls_echo_server(identity: &Identity) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let (refused, refusals) = mpsc::unbounded_channel();
    let (acceptor, listener) = (
        identity.tokio_acceptor(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(tls_then_echo(acceptor.clone(), tcp, refused.clone()));
        }
    });
    (addr, refusals)
}

/// TLS first, then pulse over it.
async fn tls_then_echo(acceptor: tokio_rustls::TlsAcceptor, tcp: TcpStream, refused: mpsc::UnboundedSender<String>) {
    match acceptor.accept(tcp).await {
        Err(why) => drop(refused.send(why.to_string())),
        Ok(tls) => echo(Connection::server(tls, config()).unwrap()).await,
    }
}

async fn tls_connection(addr: SocketAddr, identity: &Identity) -> Connection {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_connector(&identity.cert).connect(localhost(), tcp).await.unwrap();
    Connection::client(tls, config()).await.unwrap()
}

#[tokio::test]
async fn messages_cross_tls_intact_and_heartbeats_run_inside_it() {
    bounded(async {
        let identity = Identity::localhost();
        let conn = tls_connection(tls_echo_server(&identity).await.0, &identity).await;
        intact_through_echo(&conn).await;
        // Heartbeats run inside TLS too: round trips are measured.
        let rtts = std::iter::repeat_with(|| conn.recv());
        let mut measured = 0;
        for next in rtts.take(1000) {
            measured += usize::from(matches!(next.await, Event::Rtt(_)));
            if measured == 2 {
                break;
            }
        }
        assert_eq!(measured, 2);
        assert!(conn.peer_addr().is_err(), "a handed-over stream has no socket address");
        let closed = conn.close(CloseCode::NORMAL, "done").await.unwrap();
        assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Local));
    })
    .await;
}

#[tokio::test]
async fn a_plain_tcp_or_http_client_at_a_tls_listener_is_refused_and_the_listener_serves_on() {
    bounded(async {
        let identity = Identity::localhost();
        let (addr, mut refusals) = tls_echo_server(&identity).await;
        let up = tls_connection(addr, &identity).await;
        // Two strangers: an HTTP request, and a pulse client without TLS.
        let answer = tokio::task::spawn_blocking(move || pulse_tests::http_get(addr))
            .await
            .unwrap();
        assert!(!answer.starts_with(b"HTTP"), "{answer:?}");
        let plain = pulse_tokio::connect(addr, config()).await;
        assert!(plain.is_err(), "a pulse client without TLS got through");
        let why = [refusals.recv().await.unwrap(), refusals.recv().await.unwrap()];
        assert!(why.iter().all(|why| !why.is_empty()), "{why:?}");
        // The connection that was up is untouched, and new ones are served.
        intact_through_echo(&up).await;
        intact_through_echo(&tls_connection(addr, &identity).await).await;
        assert!(!up.is_closed());
    })
    .await;
}

#[tokio::test]
async fn messages_cross_a_unix_socket_intact_and_the_close_reaches_the_peer() {
    let path = std::env::temp_dir().join(format!("pulse-tokio-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    bounded(async {
        let server = tokio::spawn(async move {
            let (unix, _) = listener.accept().await.unwrap();
            let conn = Connection::server(unix, config()).unwrap();
            echo(conn.clone()).await;
            conn.closed().await
        });
        let conn = Connection::client(UnixStream::connect(&path).await.unwrap(), config())
            .await
            .unwrap();
        intact_through_echo(&conn).await;
        conn.close(CloseCode::GOING_AWAY, "bye").await.unwrap();
        let seen = server.await.unwrap();
        assert_eq!(
            (seen.code, seen.initiator, seen.reason.as_str()),
            (CloseCode::GOING_AWAY, Initiator::Peer, "bye")
        );
    })
    .await;
    let _ = std::fs::remove_file(&path);
}
