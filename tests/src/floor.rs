//! The floor: the bare syscalls a heartbeat round trip needs, with no
//! protocol at all, measured the same way as pulse so every figure can be
//! read as a ratio to it. The server waits in epoll, reads a 6-byte ping,
//! writes a 10-byte pong (the sizes of pulse's PING and PONG); the client
//! sends one ping per connection per interval, spread evenly.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// A 4-byte length and `PI`: the 6 bytes of a pulse PING, framed the way
/// `tokio-util`'s length-delimited codec reads, so the same clients can
/// load the floor and the tokio reference.
const PING: [u8; 6] = [0, 0, 0, 2, b'P', b'I'];

/// Waits for readiness; a signal (the harness's SIGSTOP/SIGCONT) that
/// interrupts the wait is not an error.
fn wait(poll: &mut Poll, events: &mut Events) -> io::Result<()> {
    match poll.poll(events, None) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        other => other,
    }
}

/// Serves pongs for pings forever on `listener`, keeping the number of
/// open connections in `open`.
pub fn serve(listener: std::net::TcpListener, open: &std::sync::atomic::AtomicU64) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut connections: HashMap<usize, TcpStream> = HashMap::new();
    let mut next = 0;
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        open.store(connections.len() as u64, std::sync::atomic::Ordering::Relaxed);
        wait(&mut poll, &mut events)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    poll.registry().register(&mut stream, Token(next), Interest::READABLE)?;
                    connections.insert(next, stream);
                    next += 1;
                }
                continue;
            }
            let Some(stream) = connections.get_mut(&event.token().0) else {
                continue;
            };
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        connections.remove(&event.token().0);
                        break;
                    }
                    Ok(n) => {
                        for _ in 0..n / 6 {
                            let _ = stream.write(&[4, 8, 0, 0, 0, 1, 0, 0, 0, 0]);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        connections.remove(&event.token().0);
                        break;
                    }
                }
            }
        }
    }
}

/// Opens `count` connections to `addr`, then calls `ready`, then pings each
/// once per `interval`, evenly spread, counting pongs in `round_trips`.
/// Pings due within one `batch` go out together, as a client loop whose
/// timers tick at that resolution sends them (pulse-mio's wheel: 1 ms); a
/// zero `batch` paces each ping alone (pulse-smol's timers). The server
/// then meets the same pattern of wake-ups as the pulse server it is
/// compared with.
pub fn hold(
    addr: SocketAddr,
    count: usize,
    interval: Duration,
    batch: Duration,
    round_trips: &std::sync::atomic::AtomicU64,
    ready: impl FnOnce(),
) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut readers = Vec::with_capacity(count);
    let mut writers = Vec::with_capacity(count);
    // Connect all at once (non-blocking): one at a time takes 3-5 ms each
    // on this machine's loopback.
    for i in 0..count {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {} // EINPROGRESS
            Err(e) => return Err(e),
        }
        let std_stream: std::net::TcpStream = socket.into();
        writers.push(std_stream.try_clone()?);
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(&mut stream, Token(i), Interest::WRITABLE)?;
        readers.push(stream);
    }
    // Pace pings from the start: a connection open early must not fall
    // silent while thousands of others still wait in the listen backlog.
    // A ping to a connection not yet open fails (EAGAIN) and is skipped.
    pace(writers, interval, batch);
    let mut events = Events::with_capacity(1024);
    let mut open = vec![false; count];
    let mut opened = 0;
    while opened < count {
        poll.poll(&mut events, Some(Duration::from_secs(30)))?;
        if events.is_empty() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connections did not complete"));
        }
        for event in &events {
            let i = event.token().0;
            if !open[i] && event.is_writable() {
                readers[i].peer_addr()?; // an error here is a failed connect
                open[i] = true;
                opened += 1;
                poll.registry()
                    .reregister(&mut readers[i], Token(i), Interest::READABLE)?;
            }
        }
    }
    ready();
    let mut buf = [0u8; 4096];
    loop {
        wait(&mut poll, &mut events)?;
        for event in &events {
            let stream = &mut readers[event.token().0];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    return Ok(());
                }
                round_trips.fetch_add((n / 10) as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Writes one ping per connection per `interval` on a thread of its own,
/// evenly spread, in batches of `batch` (see [`hold`]).
fn pace(writers: Vec<std::net::TcpStream>, interval: Duration, batch: Duration) {
    let count = writers.len();
    let step = interval / count.max(1) as u32;
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        loop {
            let due = (start.elapsed().as_nanos() / step.as_nanos().max(1)) as u64;
            while sent < due {
                // A connection the server dropped fails alone; the others go on.
                let _ = (&writers[(sent % count as u64) as usize]).write_all(&PING);
                sent += 1;
            }
            let next = start + step * ((sent + 1) as u32);
            let wake = if batch.is_zero() {
                next
            } else {
                next.max(Instant::now() + batch)
            };
            sleep_until(wake);
        }
    });
}

/// Sleeps until `at` (not at all if it has passed).
pub fn sleep_until(at: Instant) {
    if let Some(wait) = at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
}
