//! A pulse-mio server on its own thread that records every message it
//! receives, for tests that check what reached a server, in which order
//! and on which connection ([`crate::held`], [`crate::queued_sends`]).
//!
//! ```no_run
//! let server = pulse_tests::recording::RecordingServer::start("127.0.0.1:0".parse().unwrap());
//! // Clients connect to server.addr(); then:
//! let received = server.wait_for_messages(1);
//! # let _ = received;
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handle, Handler, LoopConfig};
use pulse_proto::{Closed, Config, Transport};

/// The longest [`RecordingServer::wait_for_messages`] waits: far beyond
/// the few hundred milliseconds a connection and its messages take.
pub const BOUND: Duration = Duration::from_secs(30);

/// A message the server received, and on which of its connections.
pub type Received = (ConnId, u16, Bytes);

/// What the server saw, shared with its loop's thread.
#[derive(Clone, Default)]
struct Log(Arc<(Mutex<Vec<Received>>, Condvar)>);

impl Handler for Log {
    type Conn = ();
    fn accepted(&mut self, _peer: SocketAddr) {}
    fn on_message(&mut self, _: &mut Ctx<'_, ()>, conn: ConnId, tag: u16, payload: Bytes) {
        let (messages, arrived) = &*self.0;
        messages.lock().expect("log").push((conn, tag, payload));
        arrived.notify_all();
    }
    fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
}

/// A pulse-mio server over TCP on its own thread; it stops when dropped.
pub struct RecordingServer {
    addr: SocketAddr,
    log: Log,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl RecordingServer {
    /// Starts the server listening on `addr` (port 0: any).
    pub fn start(addr: SocketAddr) -> RecordingServer {
        RecordingServer::start_with(addr, Config::new(Transport::Stream))
    }

    /// Starts the server listening on `addr` with `config` (a stream
    /// transport).
    pub fn start_with(addr: SocketAddr, config: Config) -> RecordingServer {
        let log = Log::default();
        let mut event_loop = EventLoop::new(LoopConfig::new(config), log.clone()).expect("a loop");
        let addr = event_loop.listen(addr).expect("listen");
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || event_loop.run().expect("the server loop"));
        RecordingServer {
            addr,
            log,
            handle,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the server has received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.log.0 .0.lock().expect("log").clone()
    }

    /// Waits until the server has received `count` messages (at most
    /// [`BOUND`]); returns all it received.
    pub fn wait_for_messages(&self, count: usize) -> Vec<Received> {
        let (messages, arrived) = &*self.log.0;
        let deadline = Instant::now() + BOUND;
        let mut messages = messages.lock().expect("log");
        while messages.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            messages = arrived.wait_timeout(messages, left).expect("log").0;
        }
        messages.clone()
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(Duration::ZERO);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
