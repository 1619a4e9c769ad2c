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
use std::time::Duration;

use pulse_proto::{AdaptiveConfig, Config, Transport};

use crate::nat_proxy::NatProxy;
use crate::recording::RecordingServer;
pub use crate::recording::{Received, BOUND};
use crate::sim::{Nat, Refresh};

/// How long the relay keeps an idle connection.
pub const FORGETS_AFTER: Duration = Duration::from_secs(1);
/// How long a client stays idle before it sends the message that is held:
/// twice what the relay keeps, so a slow machine only makes it longer. The
/// adaptive client's first scheduled PING is about 20 s away, so nothing
/// refreshes the relay meanwhile.
pub const IDLE: Duration = Duration::from_secs(2);

/// An adaptive client's config over TCP, at the policy's defaults: its
/// connections hold DATA after an idle stretch nothing proved the path
/// keeps.
pub fn adaptive_client_config() -> Config {
    Config::new(Transport::Stream).with_adaptive(Some(AdaptiveConfig::default()))
}

/// A pulse-mio server on its own thread behind a forgetting relay.
pub struct HeldServer {
    // Dropped first: no client reaches the server once it stops.
    relay: NatProxy,
    server: RecordingServer,
}

impl HeldServer {
    /// Starts the server and its relay on loopback.
    pub fn start() -> HeldServer {
        let server = RecordingServer::start("127.0.0.1:0".parse().expect("an address"));
        let relay =
            NatProxy::start(Some(server.addr()), None, Nat::new(FORGETS_AFTER, Refresh::Both)).expect("the relay");
        HeldServer { relay, server }
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
        self.server.messages()
    }

    /// Waits until the server has received `count` messages (at most
    /// [`BOUND`]); returns all it received.
    pub fn wait_for_messages(&self, count: usize) -> Vec<Received> {
        self.server.wait_for_messages(count)
    }
}
