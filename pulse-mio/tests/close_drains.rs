//! A graceful close loses nothing queued before it, even when the socket
//! is full at the moment of the close (issue: "one closed signal"): the
//! loop keeps the socket until the session is closed, and the session is
//! closed only once its DATA and CLOSE were taken by the transport.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
use pulse_proto::{CloseCode, Closed, Config, Event, Initiator, Instant as ProtoInstant, Role, SendError, Session};

const PATIENCE: Duration = Duration::from_secs(20);

/// Queues `total` messages as fast as the queue takes them, then closes.
struct SendThenClose {
    total: usize,
    size: usize,
    queued: usize,
    close_called: bool,
    closed: Vec<Closed>,
}

impl Handler for SendThenClose {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_open(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        self.on_writable(ctx, conn);
    }
    fn on_writable(&mut self, ctx: &mut Ctx<'_, ()>, conn: ConnId) {
        while self.queued < self.total {
            match ctx.send(conn, 1, Bytes::from(vec![(self.queued % 251) as u8; self.size])) {
                Ok(()) => self.queued += 1,
                Err(SendError::QueueFull { .. }) => return,
                Err(e) => panic!("{e}"),
            }
        }
        if !self.close_called {
            self.close_called = true;
            ctx.close(conn, CloseCode::NORMAL, "all sent").unwrap();
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, _tag: u16, _payload: Bytes) {}
    fn on_close(&mut self, _ctx: &mut Ctx<'_, ()>, _conn: ConnId, closed: &Closed, _value: ()) {
        self.closed.push(closed.clone());
    }
}

/// A client session over a raw socket, read only when the test says so.
struct RawClient {
    session: Session,
    stream: TcpStream,
    epoch: Instant,
    events: Vec<Event>,
}

impl RawClient {
    fn now(&self) -> ProtoInstant {
        ProtoInstant::from_nanos(self.epoch.elapsed().as_nanos() as u64)
    }

    fn write_out(&mut self) {
        let now = self.now();
        while let Some(bytes) = self.session.poll_transmit(now) {
            match self.stream.write(bytes) {
                Ok(n) => self.session.advance_transmit(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Reads what is there; returns whether the stream ended.
    fn read_in(&mut self) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        let ended = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => {
                    let now = self.now();
                    self.session.handle_input(now, &buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                Err(e) => panic!("{e}"),
            }
        };
        // Our answering CLOSE, once written, ends our session too.
        self.write_out();
        self.events.extend(std::iter::from_fn(|| self.session.poll_event()));
        ended
    }
}

#[test]
fn a_close_behind_a_full_socket_delivers_every_queued_message_then_the_close() {
    let config = Arc::new(
        Config::default()
            .with_timing(Duration::from_secs(1), Duration::from_secs(3))
            .with_max_queued_bytes(64 << 20),
    );
    // 32 MiB, all queued at once: more than the loopback socket buffers
    // take.
    let (total, size) = (512, 64 * 1024);
    let handler = SendThenClose {
        total,
        size,
        queued: 0,
        close_called: false,
        closed: Vec::new(),
    };
    let mut server = EventLoop::new(LoopConfig::new(config.clone()), handler).unwrap();
    let addr = server.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nonblocking(true).unwrap();
    let epoch = Instant::now();
    let session = Session::new(config, Role::Client, ProtoInstant::ZERO, 1).unwrap();
    let mut client = RawClient {
        session,
        stream,
        epoch,
        events: Vec::new(),
    };
    client.write_out();
    let started = Instant::now();
    while !client.events.iter().any(|e| matches!(e, Event::Connected(_))) {
        assert!(started.elapsed() < PATIENCE, "no handshake");
        server.turn(Some(Duration::from_millis(5))).unwrap();
        client.read_in();
    }
    // The server queued everything and closed in `on_open`; its socket
    // fills while the client reads nothing, and the close must wait.
    assert!(server.handler().close_called);
    for _ in 0..20 {
        server.turn(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(server.connections(), 1, "the socket went with data still queued");
    assert!(server.handler().closed.is_empty(), "{:?}", server.handler().closed);
    // Now the client reads again until the stream ends.
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < PATIENCE, "the close never completed");
        server.turn(Some(Duration::from_millis(1))).unwrap();
        if client.read_in() {
            break;
        }
    }
    let messages: Vec<&Bytes> = client
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message { payload, .. } => Some(payload),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), total, "messages queued before the close were lost");
    for (i, payload) in messages.iter().enumerate() {
        assert_eq!((payload.len(), payload[0]), (size, (i % 251) as u8), "message {i}");
    }
    let closed = client.events.iter().find_map(|e| match e {
        Event::Closed(c) => Some(c.clone()),
        _ => None,
    });
    let closed = closed.expect("the server's CLOSE never arrived");
    assert_eq!((closed.code, closed.initiator), (CloseCode::NORMAL, Initiator::Peer));
    assert_eq!(closed.reason, "all sent");
    let server_closed = &server.handler().closed;
    assert!(
        matches!(&server_closed[..], [c] if c.code == CloseCode::NORMAL && c.initiator == Initiator::Local),
        "{server_closed:?}"
    );
}
