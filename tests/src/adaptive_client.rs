//! A reconnecting adaptive pulse client on a blocking socket, for tests
//! over real sockets: what an application does with the adaptive interval
//! (keep [`Session::learned`] when a connection ends, wait as [`Backoff`]
//! says, give it to the next session with [`Session::set_learned`]), in a
//! driver small enough to read at a glance, over TCP or UDP alike. The
//! adapters hand the learned value in and out too (pulse-mio's
//! `Ctx::learned`/`set_learned`; pulse-smol's `ReconnectingClient` carries
//! it over TCP by itself, see pulse-smol/tests/in_session.rs); this one
//! records every connection's events for the properties of
//! `adaptive_sockets.rs`, on both transports. It moves bytes and time with
//! `pulse-driver`, as the adapters do, and decides nothing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulse_driver::{clock, flush, read_datagram, read_stream};
use pulse_proto::{Backoff, Closed, Config, Event, Learned, Role, Session, Transport};

/// The longest the loop blocks in one read: how soon it sees `stop`.
const TICK: Duration = Duration::from_millis(20);

/// One connection the client made.
#[derive(Clone, Debug)]
pub struct ClientConnection {
    /// When it began to connect.
    pub opened: Instant,
    /// What its session started from (what the last one learned).
    pub started_from: Option<Learned>,
    /// Every event its session gave, with when it was drained.
    pub events: Vec<(Instant, Event)>,
    /// How it ended, if it did.
    pub closed: Option<(Instant, Closed)>,
    /// What its session had learned at the end (or when the run stopped).
    pub learned: Option<Learned>,
}

/// A client that keeps one connection up to a server (or a relay in front
/// of it), reconnecting whenever it ends.
#[derive(Debug)]
pub struct AdaptiveClient {
    config: Arc<Config>,
    server: SocketAddr,
    backoff: Backoff,
    seed: u64,
    /// What the application keeps for this network, as stored bytes.
    pub stored: Option<Learned>,
    /// Every connection so far, the latest last.
    pub connections: Vec<ClientConnection>,
}

/// A socket of either transport, blocking with a read timeout.
enum Socket {
    Stream(TcpStream),
    Datagram(UdpSocket),
}

impl AdaptiveClient {
    /// A client of `server` with `config` (its `adaptive` set, for
    /// learning); `seed` drives jitter and backoff.
    pub fn new(config: Arc<Config>, server: SocketAddr, seed: u64) -> AdaptiveClient {
        AdaptiveClient {
            config,
            server,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_seed(seed),
            seed,
            stored: None,
            connections: Vec::new(),
        }
    }

    /// Connects, and again whenever a connection ends, until `until` or
    /// until `stop` (shown the live session after each turn) says so.
    pub fn run(&mut self, until: Instant, mut stop: impl FnMut(&Session) -> bool) {
        while Instant::now() < until {
            let stopped = self.connect_once(until, &mut stop);
            if stopped {
                return;
            }
            let delay = self.backoff.next_delay().unwrap_or(TICK);
            std::thread::sleep(delay.min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// One connection, to its end; true if `stop` or `until` ended it.
    fn connect_once(&mut self, until: Instant, stop: &mut impl FnMut(&Session) -> bool) -> bool {
        let seed = self
            .seed
            .wrapping_mul(1 << 20)
            .wrapping_add(self.connections.len() as u64);
        let mut session = Session::new(self.config.clone(), Role::Client, clock::now(), seed).expect("client config");
        if let Some(learned) = self.stored {
            session.set_learned(learned);
        }
        self.connections.push(ClientConnection {
            opened: Instant::now(),
            started_from: self.stored,
            events: Vec::new(),
            closed: None,
            learned: None,
        });
        let Ok(socket) = self.open() else {
            self.end(&session);
            return false;
        };
        let mut stopped = false;
        loop {
            socket.flush(&mut session);
            let connection = self.connections.last_mut().expect("a connection");
            while let Some(event) = session.poll_event() {
                if matches!(event, Event::Connected(_)) {
                    self.backoff.reset();
                }
                connection.events.push((Instant::now(), event));
            }
            if session.is_closed() {
                break;
            }
            if stop(&session) || Instant::now() >= until {
                stopped = true;
                break;
            }
            let deadline = session.poll_timeout().map(clock::to_std);
            let wait = deadline.map_or(TICK, |at| at.saturating_duration_since(Instant::now()));
            socket.read(&mut session, wait.clamp(Duration::from_millis(1), TICK));
            if session.poll_timeout().is_some_and(|at| clock::now() >= at) {
                session.handle_timeout(clock::now());
            }
        }
        self.end(&session);
        stopped
    }

    fn open(&self) -> std::io::Result<Socket> {
        match self.config.transport {
            Transport::Stream => {
                let stream = TcpStream::connect_timeout(&self.server, Duration::from_secs(2))?;
                stream.set_nodelay(true)?;
                Ok(Socket::Stream(stream))
            }
            Transport::Datagram => {
                let socket = UdpSocket::bind("127.0.0.1:0")?;
                socket.connect(self.server)?;
                Ok(Socket::Datagram(socket))
            }
        }
    }

    /// The connection ended (or the run stopped): keep what it learned.
    fn end(&mut self, session: &Session) {
        let learned = session.learned();
        if let Some(learned) = learned {
            self.stored = Some(Learned::from_bytes(learned.to_bytes()));
        }
        let connection = self.connections.last_mut().expect("a connection");
        connection.learned = learned;
        if let Some((at, Event::Closed(closed))) = connection.events.last() {
            connection.closed = Some((*at, closed.clone()));
        }
    }
}

impl Socket {
    fn flush(&self, session: &mut Session) {
        match self {
            Socket::Stream(stream) => {
                let mut stream = stream;
                flush(session, clock::now(), |bytes| stream.write(bytes), false);
            }
            Socket::Datagram(socket) => {
                flush(session, clock::now(), |bytes| socket.send(bytes), true);
            }
        }
    }

    /// Reads what arrives within `wait` (a blocking read with a timeout).
    fn read(&self, session: &mut Session, wait: Duration) {
        match self {
            Socket::Stream(stream) => {
                let _ = stream.set_read_timeout(Some(wait));
                let mut stream = stream;
                read_stream(session, 1, true, |buf| stream.read(buf));
            }
            Socket::Datagram(socket) => {
                let _ = socket.set_read_timeout(Some(wait));
                read_datagram(session, 1, |buf| socket.recv(buf));
            }
        }
    }
}
