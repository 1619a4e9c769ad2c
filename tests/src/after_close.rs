//! A peer that sends after its CLOSE, driven by hand: for the tests that
//! an adapter answering a graceful close reads the peer to its end before
//! it drops its socket. Otherwise the socket closes with bytes unread,
//! the kernel answers with a reset and throws away what it had not yet
//! sent: the answer's last messages and its CLOSE.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pulse_driver::clock;
use pulse_proto::frame::Frame;
use pulse_proto::{CloseCode, Config, Event, Role, Session};

/// Both ends: a close timeout that leaves room for the slow read.
pub fn config() -> Arc<Config> {
    Arc::new(
        Config::default()
            .with_timing(Duration::from_millis(500), Duration::from_secs(5))
            .with_close_timeout(Duration::from_secs(10)),
    )
}

/// A listener whose accepted sockets inherit a send buffer of `bytes`:
/// small, and a server's backlog waits in its session; large, and it
/// waits in the kernel, the session done.
pub fn listener_with_send_buffer(bytes: usize) -> TcpListener {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    listener.set_send_buffer_size(bytes).unwrap();
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    listener.listen(16).unwrap();
    listener.into()
}

/// What the raw client saw: the server's messages, and whether its CLOSE
/// came (or the stream ended or was reset first).
#[derive(Debug)]
pub struct Seen {
    /// Messages from the server.
    pub messages: u32,
    /// The server's CLOSE, as the session reported it.
    pub closed: Option<String>,
    /// How reading failed, if it did (a reset).
    pub read_error: Option<String>,
}

fn write_out(session: &mut Session, stream: &mut TcpStream) {
    while let Some(bytes) = session.poll_transmit(clock::now()) {
        let n = bytes.len();
        stream.write_all(bytes).unwrap();
        session.advance_transmit(n);
    }
}

/// A client driven by hand (blocking; run it on a thread): handshake,
/// then once the server's messages come one message and its CLOSE in one
/// write, then (while the server drains its backlog) a frame after the
/// CLOSE, then it reads everything, slowly.
pub fn client(server: SocketAddr) -> Seen {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut session = Session::new(config(), Role::Client, clock::now(), 1).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Seen {
        messages: 0,
        closed: None,
        read_error: None,
    };
    write_out(&mut session, &mut stream);
    while session.negotiated().is_none() {
        let n = stream.read(&mut buf).unwrap();
        session.handle_input(clock::now(), &buf[..n]);
        write_out(&mut session, &mut stream);
    }
    // Once the server's backlog is coming, say goodbye.
    let mut events = Vec::new();
    while !events.iter().any(|e| matches!(e, Event::Message { .. })) {
        let n = stream.read(&mut buf).unwrap();
        session.handle_input(clock::now(), &buf[..n]);
        events.extend(std::iter::from_fn(|| session.poll_event()));
    }
    seen.messages = events.iter().filter(|e| matches!(e, Event::Message { .. })).count() as u32;
    session.send(1, Bytes::from_static(b"bye soon")).unwrap();
    session.close(clock::now(), CloseCode::NORMAL, "done").unwrap();
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
    // Bounded by the read timeout and the server's finite backlog.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => session.handle_input(clock::now(), &buf[..n]),
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
