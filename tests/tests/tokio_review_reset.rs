//! Review of pulse-tokio (issue 13): the answering side of a graceful
//! close drops its socket once its last bytes and CLOSE are in the
//! kernel. If bytes it never read are still waiting in the socket then
//! (anything the peer sent after its CLOSE, which §8.2 says to ignore — a
//! PONG, say — while reading was paused), the kernel answers the close
//! with a reset and throws away what it had not yet sent: the peer loses
//! the last messages and the CLOSE.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::frame::Frame;
use pulse_proto::{CloseCode, Config, Event, Role, Session};
use pulse_tokio::Listener;

const CHUNK: usize = 16 * 1024;
/// What the server queues: more than the small socket buffers hold.
const BACKLOG: u32 = 64;

fn config() -> Arc<Config> {
    Arc::new(
        Config::default()
            .with_timing(Duration::from_millis(500), Duration::from_secs(5))
            .with_close_timeout(Duration::from_secs(10)),
    )
}

/// What the raw client saw: the server's messages, and whether its CLOSE
/// came (or the stream ended or was reset first).
#[derive(Debug)]
struct Seen {
    messages: u32,
    closed: Option<String>,
    read_error: Option<String>,
}

/// A client driven by hand: handshake, one message and its CLOSE in one
/// write, then (while the server drains its backlog) bytes after the
/// CLOSE, then it reads everything, slowly.
fn client(server: SocketAddr) -> Seen {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let clock = pulse_driver::clock::now;
    let mut session = Session::new(config(), Role::Client, clock(), 1).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Seen {
        messages: 0,
        closed: None,
        read_error: None,
    };
    let write_out = |session: &mut Session, stream: &mut TcpStream| {
        while let Some(bytes) = session.poll_transmit(clock()) {
            let n = bytes.len();
            stream.write_all(bytes).unwrap();
            session.advance_transmit(n);
        }
    };
    write_out(&mut session, &mut stream);
    while session.negotiated().is_none() {
        let n = stream.read(&mut buf).unwrap();
        session.handle_input(clock(), &buf[..n]);
        write_out(&mut session, &mut stream);
    }
    // Once the server's backlog is coming, say goodbye.
    let mut events = Vec::new();
    while !events.iter().any(|e| matches!(e, Event::Message { .. })) {
        let n = stream.read(&mut buf).unwrap();
        session.handle_input(clock(), &buf[..n]);
        events.extend(std::iter::from_fn(|| session.poll_event()));
    }
    seen.messages = events.iter().filter(|e| matches!(e, Event::Message { .. })).count() as u32;
    session.send(1, Bytes::from_static(b"bye soon")).unwrap();
    session.close(clock(), CloseCode::NORMAL, "done").unwrap();
    write_out(&mut session, &mut stream);
    // The server now drains its backlog into a full socket. Bytes after
    // our CLOSE, which it must ignore: a DATA frame here.
    std::thread::sleep(Duration::from_millis(200));
    let mut after = Vec::new();
    Frame::Data {
        tag: 2,
        payload: Bytes::from_static(b"after the close"),
    }
    .encode(&mut after);
    stream.write_all(&after).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => session.handle_input(clock(), &buf[..n]),
            Err(e) => {
                seen.read_error = Some(e.to_string());
                break;
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Message { .. } => seen.messages += 1,
                Event::Closed(closed) => seen.closed = Some(closed.to_string()),
                _ => {}
            }
        }
        if seen.closed.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_left_unread_at_the_end_do_not_reset_away_the_answer() {
    // Accepted sockets inherit the listener's small send buffer: the
    // server's backlog waits in its session, not in the kernel.
    let std_listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    std_listener.set_send_buffer_size(4096).unwrap();
    std_listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    std_listener.listen(16).unwrap();
    let listener = Listener::from_std(std_listener.into(), config()).unwrap();
    let addr = listener.local_addr().unwrap();
    let raw = tokio::task::spawn_blocking(move || client(addr));
    let (server, _) = listener.accept().await.unwrap();
    server.connected().await.unwrap();
    while server.try_recv().is_some() {}
    // Reading pauses at the first unread message: the client's CLOSE,
    // in the same read, is seen; what comes after is not read.
    server.set_recv_buffer(1);
    let mut queued = 0;
    for i in 0..BACKLOG {
        if server.send(9, Bytes::from(vec![i as u8; CHUNK])).await.is_err() {
            break;
        }
        queued += 1;
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), raw)
        .await
        .expect("the client hung")
        .unwrap();
    println!("queued {queued}: {seen:?}");
    assert!(seen.closed.is_some(), "no CLOSE from the server: {seen:?}");
    assert_eq!(seen.messages, queued, "{seen:?}");
}
