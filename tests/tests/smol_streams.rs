//! pulse-smol over byte streams the application opens: TLS (rustls, a
//! certificate made at run time) and Unix domain sockets.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use pulse_proto::{CloseCode, Config, Initiator};
use pulse_smol::{Connection, Event};
use pulse_tests::tls::{connector, localhost, Identity};
use smol::net::unix::{UnixListener, UnixStream};
use smol::net::{TcpListener, TcpStream};

fn config() -> Arc<Config> {
    Arc::new(Config::default().with_timing(Duration::from_millis(200), Duration::from_millis(1000)))
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    smol::block_on(future::or(async { Some(f.await) }, async {
        async_io::Timer::after(Duration::from_secs(30)).await;
        None
    }))
    .expect("test timed out")
}

/// Echoes every message back until the connection closes.
async fn echo(conn: Connection) {
    loop {
        match conn.recv().await {
            Event::Message { tag, payload } => match conn.send(tag, payload).await {
                Ok(()) => {}
                Err(_) => return,
            },
            Event::Closed(_) => return,
            _ => {}
        }
    }
}

/// Messages of sizes from 0 to 200 KB, each a different byte.
fn messages() -> Vec<(u16, Bytes)> {
    (0..200u16)
        .map(|i| (i, Bytes::from(vec![i as u8; (usize::from(i) * 997) % 200_000])))
        .collect()
}

/// Sends the messages through an echo and checks each comes back whole,
/// in order.
async fn echoed_intact(conn: &Connection) {
    let (tx, rx) = conn.clone().split();
    let sent = messages();
    let sender = smol::spawn(async move {
        for (tag, payload) in messages() {
            tx.send(tag, payload).await.unwrap();
        }
    });
    for (tag, payload) in sent {
        loop {
            match rx.recv().await {
                Event::Message {
                    tag: got,
                    payload: back,
                } => {
                    assert_eq!((got, back.len()), (tag, payload.len()));
                    assert_eq!(back, payload, "message {tag}");
                    break;
                }
                Event::Closed(closed) => panic!("{closed:?}"),
                _ => {}
            }
        }
    }
    sender.await;
}

/// A pulse server behind TLS: TCP accepted, TLS accepted, then pulse.
/// Connections that fail TLS are dropped and counted.
async fn tls_server(identity: &Identity) -> (std::net::SocketAddr, async_channel::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = identity.acceptor();
    let (refused_tx, refused_rx) = async_channel::unbounded();
    smol::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, refused) = (acceptor.clone(), refused_tx.clone());
            smol::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(tls) => {
                        let (conn, driver) = Connection::server(tls, config()).unwrap();
                        smol::spawn(driver).detach();
                        echo(conn).await;
                    }
                    Err(e) => {
                        let _ = refused.send(e.to_string()).await;
                    }
                }
            })
            .detach();
        }
    })
    .detach();
    (addr, refused_rx)
}

async fn tls_client(addr: std::net::SocketAddr, identity: &Identity) -> Connection {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector(&identity.cert).connect(localhost(), tcp).await.unwrap();
    let (conn, driver) = Connection::client(tls, config()).await.unwrap();
    smol::spawn(driver).detach();
    conn
}

#[test]
fn messages_cross_tls_intact_and_heartbeats_run_inside_it() {
    run(async {
        let identity = Identity::localhost();
        let (addr, _) = tls_server(&identity).await;
        let conn = tls_client(addr, &identity).await;
        echoed_intact(&conn).await;
        // Heartbeats go through TLS too: RTTs are measured.
        let mut rtts = 0;
        while rtts < 2 {
            if let Event::Rtt(_) = conn.recv().await {
                rtts += 1;
            }
        }
        assert!(conn.peer_addr().is_err(), "a handed-over stream has no socket address");
        let closed = conn.close(CloseCode::NORMAL, "done").await.unwrap();
        assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Local));
    });
}

#[test]
fn a_plain_tcp_or_http_client_at_a_tls_listener_is_refused_and_disturbs_nothing() {
    run(async {
        let identity = Identity::localhost();
        let (addr, refused) = tls_server(&identity).await;
        let good = tls_client(addr, &identity).await;
        // An HTTP request, then a pulse client without TLS.
        let mut http = TcpStream::connect(addr).await.unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: pulse\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let _ = http.read_to_end(&mut answer).await; // the server hangs up
        assert!(!answer.starts_with(b"HTTP"), "{answer:?}");
        let plain = pulse_smol::connect(addr, config()).await;
        assert!(plain.is_err(), "a plain pulse client got through a TLS listener");
        for _ in 0..2 {
            let why = refused.recv().await.unwrap();
            assert!(!why.is_empty());
        }
        // The TLS connection that was up is untouched, and new ones come.
        echoed_intact(&good).await;
        let another = tls_client(addr, &identity).await;
        another.send(1, "still serving").await.unwrap();
        assert!(matches!(another.recv().await, Event::Connected(_)));
        assert!(matches!(another.recv().await, Event::Message { tag: 1, .. }));
        assert!(!good.is_closed());
    });
}

#[test]
fn messages_cross_a_unix_socket_intact_and_a_closed_peer_is_seen() {
    run(async {
        let path = std::env::temp_dir().join(format!("pulse-smol-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = smol::spawn(async move {
            let (unix, _) = listener.accept().await.unwrap();
            let (conn, driver) = Connection::server(unix, config()).unwrap();
            smol::spawn(driver).detach();
            echo(conn.clone()).await;
            conn.closed().await
        });
        let unix = UnixStream::connect(&path).await.unwrap();
        let (conn, driver) = Connection::client(unix, config()).await.unwrap();
        smol::spawn(driver).detach();
        echoed_intact(&conn).await;
        conn.close(CloseCode::GOING_AWAY, "bye").await.unwrap();
        let seen = server.await;
        assert_eq!(
            (seen.code, seen.initiator, seen.reason.as_str()),
            (CloseCode::GOING_AWAY, Initiator::Peer, "bye")
        );
        let _ = std::fs::remove_file(&path);
    });
}
