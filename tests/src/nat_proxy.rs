//! A NAT on loopback, for tests over real sockets: a userspace relay in
//! front of one server that forgets a connection idle longer than its
//! timeout, then drops its datagrams or resets its stream — the
//! simulator's [`crate::sim::Nat`], with sockets.
//!
//! The relay runs on its own thread with one `mio` loop. TCP: each client
//! connection gets its own connection to the server; once forgotten, the
//! next segment either way makes the relay close both with `SO_LINGER` 0,
//! so both ends read a reset. UDP: each client address gets its own
//! socket towards the server (a mapping); once forgotten, every datagram of
//! that mapping is dropped, both ways, for good. As in the simulator, a
//! mapping is found forgotten by the first packet after the timeout: no
//! timer is needed to model a NAT, only the time between packets.
//!
//! ```no_run
//! use std::time::Duration;
//! use pulse_tests::nat_proxy::NatProxy;
//! use pulse_tests::sim::{Nat, Refresh};
//!
//! let server = "127.0.0.1:7000".parse().unwrap();
//! let proxy = NatProxy::start(Some(server), None, Nat::new(Duration::from_secs(3), Refresh::Both)).unwrap();
//! // Clients connect to proxy.tcp_addr() instead of the server.
//! # let _ = proxy.tcp_addr();
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::sim::{Nat, Refresh};

const LISTENER: Token = Token(0);
const UDP: Token = Token(1);
const WAKER: Token = Token(2);
/// Tokens from here on are mappings': two per stream, one per datagram
/// mapping.
const FIRST: usize = 3;

/// What the relay did, counted since it started.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Connections (TCP) and client addresses (UDP) mapped.
    pub mappings: AtomicU64,
    /// Mappings found forgotten.
    pub forgotten: AtomicU64,
    /// Streams reset (both ends) because their mapping was forgotten.
    pub resets: AtomicU64,
    /// Datagrams dropped because their mapping was forgotten.
    pub dropped: AtomicU64,
}

/// A running relay; dropping it stops its thread.
#[derive(Debug)]
pub struct NatProxy {
    tcp: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    counts: Arc<ProxyCounts>,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl NatProxy {
    /// Starts a relay on loopback in front of the server's TCP and/or UDP
    /// address, forgetting mappings as `nat` says.
    pub fn start(server_tcp: Option<SocketAddr>, server_udp: Option<SocketAddr>, nat: Nat) -> io::Result<NatProxy> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        let mut listener = server_tcp.map(|_| TcpListener::bind(loopback)).transpose()?;
        let mut udp = server_udp.map(|_| UdpSocket::bind(loopback)).transpose()?;
        if let Some(listener) = listener.as_mut() {
            poll.registry().register(listener, LISTENER, Interest::READABLE)?;
        }
        if let Some(udp) = udp.as_mut() {
            poll.registry().register(udp, UDP, Interest::READABLE)?;
        }
        let tcp_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let udp_addr = udp.as_ref().map(UdpSocket::local_addr).transpose()?;
        let counts = Arc::new(ProxyCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut relay = Relay {
            poll,
            nat,
            server_tcp,
            server_udp,
            listener,
            udp,
            streams: HashMap::new(),
            datagrams: HashMap::new(),
            by_token: HashMap::new(),
            next_token: FIRST,
            counts: counts.clone(),
            buf: vec![0; 64 * 1024],
        };
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nat-proxy".into())
            .spawn(move || relay.run(&stopping))?;
        Ok(NatProxy {
            tcp: tcp_addr,
            udp: udp_addr,
            counts,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// Where TCP clients connect instead of the server.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp.expect("a TCP relay")
    }

    /// Where UDP clients send instead of the server.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp.expect("a UDP relay")
    }

    /// What the relay did so far.
    pub fn counts(&self) -> &ProxyCounts {
        &self.counts
    }
}

impl Drop for NatProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A mapping's idle clock.
#[derive(Debug)]
struct Idle {
    last: Instant,
    forgotten: bool,
}

impl Idle {
    fn new() -> Idle {
        Idle {
            last: Instant::now(),
            forgotten: false,
        }
    }

    /// A packet passes now: false if the mapping is (or now is found)
    /// forgotten; else it refreshes the mapping if `refreshes`.
    fn pass(&mut self, timeout: Duration, refreshes: bool, counts: &ProxyCounts) -> bool {
        let now = Instant::now();
        if !self.forgotten && now.duration_since(self.last) > timeout {
            self.forgotten = true;
            counts.forgotten.fetch_add(1, Ordering::Relaxed);
        }
        if !self.forgotten && refreshes {
            self.last = now;
        }
        !self.forgotten
    }
}

/// One client connection and its connection to the server.
struct Stream {
    /// `[client, server]`, and what waits to be written to each.
    ends: [TcpStream; 2],
    pending: [Vec<u8>; 2],
    idle: Idle,
}

/// One client address and its socket towards the server.
struct Datagrams {
    client: SocketAddr,
    upstream: UdpSocket,
    idle: Idle,
}

#[derive(Clone, Copy)]
enum Owner {
    /// A stream's end: 0 the client's, 1 the server's.
    Stream(usize, usize),
    /// A datagram mapping's upstream socket.
    Upstream(SocketAddr),
}

struct Relay {
    poll: Poll,
    nat: Nat,
    server_tcp: Option<SocketAddr>,
    server_udp: Option<SocketAddr>,
    listener: Option<TcpListener>,
    udp: Option<UdpSocket>,
    streams: HashMap<usize, Stream>,
    datagrams: HashMap<SocketAddr, Datagrams>,
    by_token: HashMap<Token, Owner>,
    next_token: usize,
    counts: Arc<ProxyCounts>,
    buf: Vec<u8>,
}

impl Relay {
    fn run(&mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while !stop.load(Ordering::Relaxed) {
            match self.poll.poll(&mut events, Some(Duration::from_millis(100))) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => result?,
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    UDP => self.relay_outbound(),
                    WAKER => {}
                    token => match self.by_token.get(&token).copied() {
                        Some(Owner::Stream(id, end)) => self.relay_stream(id, end),
                        Some(Owner::Upstream(client)) => self.relay_inbound(client),
                        None => {}
                    },
                }
            }
        }
        Ok(())
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token - 1)
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else { return };
            let client = match listener.accept() {
                Ok((client, _)) => client,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            // Loopback connects at once; a blocking connect keeps this short.
            let Some(server) = self
                .server_tcp
                .and_then(|addr| std::net::TcpStream::connect(addr).ok())
                .and_then(|s| s.set_nonblocking(true).ok().map(|()| TcpStream::from_std(s)))
            else {
                continue; // dropping the client refuses it
            };
            let id = self.next_token;
            let (a, b) = (self.token(), self.token());
            let mut ends = [client, server];
            let both = Interest::READABLE | Interest::WRITABLE;
            if self.poll.registry().register(&mut ends[0], a, both).is_err()
                || self.poll.registry().register(&mut ends[1], b, both).is_err()
            {
                continue;
            }
            for (token, end) in [(a, 0), (b, 1)] {
                self.by_token.insert(token, Owner::Stream(id, end));
            }
            self.counts.mappings.fetch_add(1, Ordering::Relaxed);
            self.streams.insert(
                id,
                Stream {
                    ends,
                    pending: [Vec::new(), Vec::new()],
                    idle: Idle::new(),
                },
            );
        }
    }

    /// Moves what `end` of stream `id` has to say to the other end, and
    /// what waits for `end`.
    fn relay_stream(&mut self, id: usize, end: usize) {
        let timeout = self.nat.idle_timeout;
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let other = 1 - end;
        let mut open = true;
        loop {
            match stream.ends[end].read(&mut self.buf) {
                // On a stream the client's acknowledgements refresh the
                // mapping whichever way data flows.
                Ok(n) if n > 0 => {
                    if !stream.idle.pass(timeout, true, &self.counts) {
                        self.counts.resets.fetch_add(1, Ordering::Relaxed);
                        return self.reset(id);
                    }
                    stream.pending[other].extend_from_slice(&self.buf[..n]);
                }
                Ok(_) => {
                    open = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.reset(id),
            }
        }
        for side in [other, end] {
            let pending = &mut stream.pending[side];
            while !pending.is_empty() {
                match stream.ends[side].write(pending) {
                    Ok(0) => return self.reset(id),
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.reset(id),
                }
            }
        }
        if !open {
            // One end closed: pass the end on once its data went.
            let _ = stream.ends[other].shutdown(std::net::Shutdown::Write);
            if stream.pending[other].is_empty() {
                self.remove(id);
            }
        }
    }

    /// Both ends read a reset: close them with `SO_LINGER` 0.
    fn reset(&mut self, id: usize) {
        if let Some(stream) = self.streams.get(&id) {
            for end in &stream.ends {
                let _ = socket2::SockRef::from(end).set_linger(Some(Duration::ZERO));
            }
        }
        self.remove(id);
    }

    fn remove(&mut self, id: usize) {
        if let Some(mut stream) = self.streams.remove(&id) {
            for end in stream.ends.iter_mut() {
                let _ = self.poll.registry().deregister(end);
            }
            self.by_token
                .retain(|_, owner| !matches!(owner, Owner::Stream(i, _) if *i == id));
        }
    }

    /// Datagrams from clients: each address gets its own mapping.
    fn relay_outbound(&mut self) {
        let timeout = self.nat.idle_timeout;
        loop {
            let Some(udp) = self.udp.as_ref() else { return };
            let (len, from) = match udp.recv_from(&mut self.buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue, // an ICMP report: nothing to relay
            };
            if !self.datagrams.contains_key(&from) && self.map(from).is_err() {
                continue;
            }
            let mapping = self.datagrams.get_mut(&from).expect("mapped");
            if mapping.idle.pass(timeout, true, &self.counts) {
                let _ = mapping.upstream.send(&self.buf[..len]);
            } else {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn map(&mut self, client: SocketAddr) -> io::Result<()> {
        let server = self.server_udp.ok_or(io::ErrorKind::NotConnected)?;
        let mut upstream = UdpSocket::bind("127.0.0.1:0".parse().expect("an address"))?;
        upstream.connect(server)?;
        let token = self.token();
        self.poll
            .registry()
            .register(&mut upstream, token, Interest::READABLE)?;
        self.by_token.insert(token, Owner::Upstream(client));
        self.counts.mappings.fetch_add(1, Ordering::Relaxed);
        self.datagrams.insert(
            client,
            Datagrams {
                client,
                upstream,
                idle: Idle::new(),
            },
        );
        Ok(())
    }

    /// Datagrams from the server towards `client`.
    fn relay_inbound(&mut self, client: SocketAddr) {
        let timeout = self.nat.idle_timeout;
        let refreshes = self.nat.refresh == Refresh::Both;
        let (Some(mapping), Some(udp)) = (self.datagrams.get_mut(&client), self.udp.as_ref()) else {
            return;
        };
        loop {
            let len = match mapping.upstream.recv(&mut self.buf) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => continue,
            };
            if mapping.idle.pass(timeout, refreshes, &self.counts) {
                let _ = udp.send_to(&self.buf[..len], mapping.client);
            } else {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener as StdListener, TcpStream as StdStream, UdpSocket as StdUdp};
    use std::sync::mpsc;

    /// The relay's timeout; activity comes 5 times as often, idleness
    /// lasts 3 times as long.
    const TIMEOUT: Duration = Duration::from_secs(1);
    const WAIT: Duration = Duration::from_secs(5);

    fn nat() -> Nat {
        Nat::new(TIMEOUT, Refresh::Both)
    }

    /// Echoes one connection; says how its reading ended.
    fn tcp_echo() -> (SocketAddr, mpsc::Receiver<io::ErrorKind>) {
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(WAIT * 2)).unwrap();
            let mut buf = [0; 64];
            let end = loop {
                match stream.read(&mut buf) {
                    Ok(0) => break io::ErrorKind::UnexpectedEof,
                    Ok(n) => {
                        let _ = stream.write_all(&buf[..n]);
                    }
                    Err(e) => break e.kind(),
                }
            };
            let _ = tx.send(end);
        });
        (addr, rx)
    }

    fn round_trip(stream: &mut StdStream) -> io::Result<()> {
        stream.write_all(b"ping")?;
        let mut buf = [0; 4];
        stream.read_exact(&mut buf)
    }

    #[test]
    fn a_stream_kept_busy_is_relayed_and_one_idle_past_the_timeout_is_reset_at_both_ends() {
        let (server, server_end) = tcp_echo();
        let proxy = NatProxy::start(Some(server), None, nat()).unwrap();
        let mut client = StdStream::connect(proxy.tcp_addr()).unwrap();
        client.set_read_timeout(Some(WAIT)).unwrap();
        for _ in 0..10 {
            round_trip(&mut client).expect("a busy stream is relayed");
            std::thread::sleep(TIMEOUT / 5);
        }
        std::thread::sleep(TIMEOUT * 3);
        let error = round_trip(&mut client).expect_err("forgotten");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(server_end.recv_timeout(WAIT), Ok(io::ErrorKind::ConnectionReset));
        assert_eq!(proxy.counts().resets.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn datagrams_idle_past_the_timeout_are_dropped_both_ways_for_good() {
        let server = StdUdp::bind("127.0.0.1:0").unwrap();
        let server_addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0; 64];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let _ = server.send_to(&buf[..n], from);
            }
        });
        let proxy = NatProxy::start(None, Some(server_addr), nat()).unwrap();
        let client = StdUdp::bind("127.0.0.1:0").unwrap();
        client.connect(proxy.udp_addr()).unwrap();
        let echo = |client: &StdUdp, wait: Duration| {
            client.set_read_timeout(Some(wait)).unwrap();
            client.send(b"ping").unwrap();
            client.recv(&mut [0; 8]).is_ok()
        };
        for _ in 0..10 {
            assert!(echo(&client, WAIT), "a busy mapping is relayed");
            std::thread::sleep(TIMEOUT / 5);
        }
        std::thread::sleep(TIMEOUT * 3);
        assert!(!echo(&client, TIMEOUT), "forgotten");
        assert!(!echo(&client, TIMEOUT), "forgotten for good");
        assert_eq!(proxy.counts().forgotten.load(Ordering::Relaxed), 1);
        assert!(proxy.counts().dropped.load(Ordering::Relaxed) >= 2);
        let again = StdUdp::bind("127.0.0.1:0").unwrap();
        again.connect(proxy.udp_addr()).unwrap();
        assert!(echo(&again, WAIT), "a new address gets a new mapping");
    }
}
