//! pulse-smol over real TCP sockets on 127.0.0.1, client and server in one
//! process. (Tests that freeze a peer process live in the workspace's
//! `tests/` crate.)

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{config, echo_server, next_message, random_messages, round_trip, run, run_within};
use pulse_proto::{CloseCode, Initiator, ProtocolError, Role, Session};
use pulse_smol::{connect, Error, Event, Listener};

#[test]
fn ten_thousand_messages_of_random_sizes_arrive_intact_and_in_order() {
    run(async {
        let addr = echo_server(config(1000, 3000)).await;
        let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
        smol::spawn(driver).detach();
        round_trip(conn, random_messages(10_000, 64 * 1024)).await;
    });
}

#[test]
fn an_http_client_gets_a_closed_connection_and_the_server_keeps_serving() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = smol::spawn(async move {
            use futures_lite::{AsyncReadExt, AsyncWriteExt};
            let mut stream = smol::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: pulse\r\n\r\n")
                .await
                .unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap(); // returns: the server closed
            answer
        });
        let (bad, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        let Event::Closed(closed) = bad.recv().await else {
            panic!("expected a close")
        };
        assert_eq!(closed.code, CloseCode::PROTOCOL_ERROR);
        let error = closed.error.unwrap();
        assert!(matches!(error, ProtocolError::BadMagic { .. }));
        assert!(error.to_string().contains("not a pulse peer"), "{error}");
        let answer = http.await;
        assert!(
            answer.starts_with(&pulse_proto::frame::MAGIC),
            "the HTTP client saw {answer:?}"
        );
        // The listener still serves a real client.
        let client = smol::spawn(async move {
            let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
            smol::spawn(driver).detach();
            conn.send(5, &b"still here"[..]).await.unwrap();
            conn.closed().await
        });
        let (good, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(good.recv().await, Event::Connected(_)));
        assert_eq!(next_message(&good).await, (5, Bytes::from_static(b"still here")));
        drop(good);
        client.await;
    });
}

#[test]
fn a_peer_that_drops_its_socket_without_close_is_reported_at_once() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // A server driven by hand: it completes the handshake, then vanishes
    // without a CLOSE.
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let now = pulse_driver::clock::now;
        let mut session = Session::new(config(10_000, 30_000), Role::Server, now(), 1).unwrap();
        let mut buf = [0u8; 4096];
        while !matches!(session.poll_event(), Some(pulse_proto::Event::Connected(_))) {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client left during the handshake");
            session.handle_input(now(), &buf[..n]);
            while let Some(bytes) = session.poll_transmit(now()) {
                stream.write_all(bytes).unwrap();
                let len = bytes.len();
                session.advance_transmit(len);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    run(async {
        let (conn, driver) = connect(addr, config(10_000, 30_000)).await.unwrap();
        smol::spawn(driver).detach();
        let started = Instant::now();
        let closed = conn.closed().await;
        assert_eq!((closed.code, closed.initiator), (CloseCode::LOST, Initiator::Peer));
        // The dead timeout is 30 s: the end of the stream is seen at once.
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    });
    server.join().unwrap();
}

#[test]
fn a_graceful_close_reaches_the_peer_with_its_code_and_reason() {
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = smol::spawn(async move {
            let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
            let driver = smol::spawn(driver);
            conn.send(1, &b"bye"[..]).await.unwrap();
            let closed = conn.close(CloseCode::GOING_AWAY, "done").await.unwrap();
            driver.await;
            closed
        });
        let (conn, driver, _) = listener.accept().await.unwrap();
        let server_driver = smol::spawn(driver);
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        assert_eq!(next_message(&conn).await.1, Bytes::from_static(b"bye"));
        let Event::Closed(seen) = conn.recv().await else {
            panic!()
        };
        assert_eq!(
            (seen.code, seen.initiator, seen.reason.as_str()),
            (CloseCode::GOING_AWAY, Initiator::Peer, "done")
        );
        let mine = client.await;
        assert_eq!((mine.code, mine.initiator), (CloseCode::GOING_AWAY, Initiator::Local));
        server_driver.await;
    });
}

#[test]
fn heartbeats_run_while_the_application_reads_nothing() {
    run(async {
        let addr = echo_server(config(100, 400)).await;
        let (conn, driver) = connect(addr, config(100, 400)).await.unwrap();
        smol::spawn(driver).detach();
        async_io::Timer::after(Duration::from_millis(3_000)).await; // never calling recv
        assert!(!conn.is_closed());
        // About 30 at a 100 ms interval (±10 % jitter); a third of that
        // still proves they ran.
        assert!(conn.stats().pings_sent >= 10, "{:?}", conn.stats());
        assert!(conn.rtt().is_some());
    });
}

#[test]
fn connect_gives_up_within_the_handshake_timeout_when_the_server_never_accepts() {
    // A listener with a backlog of 0 that never accepts: once its accept
    // queue is full, the kernel drops further SYNs, and a connect without
    // a bound would wait for the SYN retries (over a minute).
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let fillers: Vec<_> = (0..4)
        .filter_map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    assert!(!fillers.is_empty(), "the accept queue took no connection at all");
    let handshake_timeout = Duration::from_secs(1);
    let config = pulse_proto::Config::default().with_handshake_timeout(handshake_timeout);
    let started = Instant::now();
    let outcome = run_within(Duration::from_secs(20), connect(addr, config));
    let took = started.elapsed();
    match outcome {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected to a listener that never accepts"),
    }
    assert!(took >= handshake_timeout, "gave up early: {took:?}");
    assert!(took < 3 * handshake_timeout, "took {took:?}");
    drop(fillers);
}

#[test]
fn a_status_sent_by_the_server_reaches_the_client_and_the_latest_wins() {
    use pulse_proto::{ServiceState, Status};
    run(async {
        let listener = Listener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = smol::spawn(async move {
            let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
            smol::spawn(driver).detach();
            loop {
                match conn.recv().await {
                    Event::PeerStatus(status) if status.state() == ServiceState::Maintenance => break status,
                    Event::Closed(closed) => panic!("{closed}"),
                    _ => {}
                }
            }
        });
        let (conn, driver, _) = listener.accept().await.unwrap();
        smol::spawn(driver).detach();
        assert!(matches!(conn.recv().await, Event::Connected(_)));
        conn.send_status(Status::new(ServiceState::Draining, 0)).unwrap();
        conn.send_status(Status::new(ServiceState::Maintenance, 0)).unwrap();
        assert_eq!(client.await, Status::new(ServiceState::Maintenance, 0));
    });
}
