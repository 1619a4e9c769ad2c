//! A message held over an idle path, lost with its connection, over real
//! sockets (`docs/PROTOCOL.md` §6.11.1): what the `unsent_*` tests of each
//! adapter share. A pulse-mio server records every message it receives,
//! behind a loopback relay ([`crate::nat_proxy`]) that forgets a
//! connection idle for [`FORGETS_AFTER`] and then resets it. An adaptive
//! client that stays idle for [`IDLE`] is past anything its path was seen
//! to keep: its next message is held while a PING confirms the path, the
//! PING meets the forgotten mapping, the connection is reset, and the
//! message must come back to the application (and, through a
//! reconnecting client, reach the server on the next connection).
//!
//! ```no_run
//! use pulse_tests::held::{adaptive_client_config, HeldServer};
//!
//! let server = HeldServer::start();
//! let _config = adaptive_client_config();
//! // Clients connect to server.addr(), the relay.
//! # let _ = server.addr();
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_mio::{ConnId, Ctx, EventLoop, Handle, Handler, LoopConfig};
use pulse_proto::{AdaptiveConfig, Closed, Config, Transport};

use crate::nat_proxy::NatProxy;
use crate::sim::{Nat, Refresh};

/// How long the relay keeps an idle connection.
pub const FORGETS_AFTER: Duration = Duration::from_secs(1);
/// How long a client stays idle before it sends the message that is held:
/// twice what the relay keeps, so a slow machine only makes it longer. The
/// adaptive client's first scheduled PING is about 20 s away, so nothing
/// refreshes the relay meanwhile.
pub const IDLE: Duration = Duration::from_secs(2);
/// The longest any test waits for one thing (a connection, a close, a
/// message): far beyond the few hundred milliseconds each takes.
pub const BOUND: Duration = Duration::from_secs(30);

/// An adaptive client's config over TCP, at the policy's defaults: its
/// connections hold DATA after an idle stretch nothing proved the path
/// keeps.
pub fn adaptive_client_config() -> Config {
    Config::new(Transport::Stream).with_adaptive(Some(AdaptiveConfig::default()))
}

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

/// A pulse-mio server on its own thread behind a forgetting relay.
pub struct HeldServer {
    relay: NatProxy,
    log: Log,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl HeldServer {
    /// Starts the server and its relay on loopback.
    pub fn start() -> HeldServer {
        let log = Log::default();
        let mut event_loop =
            EventLoop::new(LoopConfig::new(Config::new(Transport::Stream)), log.clone()).expect("a loop");
        let server = event_loop
            .listen("127.0.0.1:0".parse().expect("an address"))
            .expect("listen");
        let handle = event_loop.handle();
        let thread = std::thread::spawn(move || event_loop.run().expect("the server loop"));
        let relay = NatProxy::start(Some(server), None, Nat::new(FORGETS_AFTER, Refresh::Both)).expect("the relay");
        HeldServer {
            relay,
            log,
            handle,
            thread: Some(thread),
        }
    }

    /// Where clients connect: the relay.
    pub fn addr(&self) -> SocketAddr {
        self.relay.tcp_addr()
    }

    /// Streams the relay reset because it had forgotten them.
    pub fn resets(&self) -> u64 {
        self.relay.counts().resets.load(std::sync::atomic::Ordering::Relaxed)
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

impl Drop for HeldServer {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(Duration::ZERO);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
