//! A reconnecting client's sends while it has no connection, over real
//! sockets, written once for every adapter: both clients dereference to
//! pulse-driver's [`ClientState`], so each test here runs against either,
//! given how to start and close one ([`Reconnecting`]).
//! `tests/tests/queued_sends_smol.rs` and `queued_sends_tokio.rs`
//! instantiate them with [`queued_sends_tests!`](crate::queued_sends_tests).
//!
//! The server is down at first: its address is reserved (bound, then
//! closed), the client's attempts are refused, and messages sent meanwhile
//! wait in the client. A [`RecordingServer`] started on that address later
//! must receive them, in order, before anything sent after. Every wait is
//! bounded ([`crate::recording::BOUND`]).

use std::net::{SocketAddr, TcpListener};
use std::ops::Deref;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::block_on;
use pulse_driver::{ClientState, Error, Inbox};
use pulse_proto::Backoff;

use crate::recording::RecordingServer;

/// Attempts come every few milliseconds, so a client finds its server
/// soon after it starts.
pub fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(5), Duration::from_millis(50))
}

/// A reconnecting client of one adapter, on that adapter's runtime.
pub trait Reconnecting: Deref<Target = ClientState<Self::Conn>> + Sized {
    /// The adapter's connection.
    type Conn: Inbox;
    /// A client for `server` ([`fast_backoff`]) that keeps at most
    /// `max_queued` messages for its next connection.
    fn start(server: SocketAddr, max_queued: usize) -> Self;
    /// Closes the client; returns once it has ended.
    fn close(&self);
}

/// An address nothing listens on, for a server to start on later.
fn reserve_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address")
}

fn message(tag: u16) -> (u16, Bytes) {
    (tag, Bytes::from(format!("message {tag}")))
}

fn send<C: Reconnecting>(client: &C, tag: u16) -> Result<(), Error> {
    block_on(client.send(tag, message(tag).1))
}

/// The tags the server received, after waiting for `count` of them.
fn tags_received(server: &RecordingServer, count: usize) -> Vec<u16> {
    server.wait_for_messages(count).iter().map(|(_, tag, _)| *tag).collect()
}

/// Messages sent while the server is down reach it once it starts, in
/// order, ahead of one sent after the client connected.
pub fn sent_while_down_arrive_once_the_server_starts<C: Reconnecting>() {
    let addr = reserve_address();
    let client = C::start(addr, 8);
    for tag in 1..=3 {
        send(&client, tag).expect("queued while the server is down");
    }
    assert!(!client.is_connected());
    assert_eq!(client.queued(), 3);
    let server = RecordingServer::start(addr);
    assert_eq!(tags_received(&server, 3), [1, 2, 3]);
    send(&client, 4).expect("sent on the connection");
    let received = server.wait_for_messages(4);
    let tags: Vec<u16> = received.iter().map(|(_, tag, _)| *tag).collect();
    assert_eq!(tags, [1, 2, 3, 4]);
    assert!(
        received.iter().all(|(conn, _, _)| *conn == received[0].0),
        "one connection"
    );
    assert_eq!(received[0].2, message(1).1, "intact");
    assert_eq!(client.queued(), 0);
    client.close();
    assert!(client.take_unsent().is_empty(), "all delivered");
}

/// More than a new connection has room for at once (40 messages of 64 KiB
/// over its 1 MiB send queue) all arrive, in order, with nothing more
/// sent: the client hands the rest over as the connection makes room.
pub fn more_than_a_connection_takes_at_once_all_arrive<C: Reconnecting>() {
    let addr = reserve_address();
    let client = C::start(addr, 64);
    let large = Bytes::from(vec![7u8; 64 * 1024]);
    for tag in 1..=40 {
        block_on(client.send(tag, large.clone())).expect("queued while the server is down");
    }
    let server = RecordingServer::start(addr);
    let expected: Vec<u16> = (1..=40).collect();
    assert_eq!(tags_received(&server, 40), expected);
    assert_eq!(client.queued(), 0);
    client.close();
}

/// Beyond its limit a disconnected client refuses a message with a typed
/// error, and keeps (then delivers) those it had taken.
pub fn beyond_the_limit_sending_fails_with_queue_full<C: Reconnecting>() {
    let addr = reserve_address();
    let client = C::start(addr, 2);
    send(&client, 1).expect("queued");
    send(&client, 2).expect("queued");
    match send(&client, 3) {
        Err(Error::QueueFull { limit: 2 }) => {}
        other => panic!("the third of two: {other:?}"),
    }
    assert_eq!(client.queued(), 2, "the refused one is not kept");
    let server = RecordingServer::start(addr);
    assert_eq!(tags_received(&server, 2), [1, 2]);
    send(&client, 4).expect("sent on the connection");
    assert_eq!(tags_received(&server, 3), [1, 2, 4]);
    client.close();
}

/// Closing a client that never connected sends nothing: what it kept is
/// handed back, in order, and later sends fail.
pub fn close_while_down_hands_back_what_was_queued<C: Reconnecting>() {
    let addr = reserve_address();
    let client = C::start(addr, 8);
    send(&client, 1).expect("queued");
    send(&client, 2).expect("queued");
    client.close();
    assert_eq!(client.take_unsent(), [message(1), message(2)]);
    assert!(client.take_unsent().is_empty(), "taken once");
    match send(&client, 3) {
        Err(Error::Closed(_)) => {}
        other => panic!("a send after close: {other:?}"),
    }
    assert!(client.take_unsent().is_empty(), "nothing queued after the end");
}

/// A message queued while the server is down that the server then
/// refuses as too large (its frames are at most 16 KiB) is set aside for
/// the application: it holds up neither those queued behind it nor those
/// sent once connected.
pub fn a_queued_message_too_large_for_the_server_holds_nothing_up<C: Reconnecting>() {
    let addr = reserve_address();
    let client = C::start(addr, 8);
    let too_large = Bytes::from(vec![9u8; 64 * 1024]);
    send(&client, 1).expect("queued");
    block_on(client.send(2, too_large.clone())).expect("queued: no peer to say it is too large");
    send(&client, 3).expect("queued");
    let config = pulse_proto::Config::new(pulse_proto::Transport::Stream).with_max_frame_len(16 * 1024);
    let server = RecordingServer::start_with(addr, config);
    assert_eq!(tags_received(&server, 2), [1, 3]);
    send(&client, 4).expect("sent on the connection");
    assert_eq!(tags_received(&server, 3), [1, 3, 4]);
    assert_eq!(
        client.take_unsent(),
        [(2, too_large)],
        "the refused one is the application's"
    );
    client.close();
}

/// Every test above as a `#[test]`, for the [`Reconnecting`] client type
/// given.
#[macro_export]
macro_rules! queued_sends_tests {
    ($client:ty) => {
        #[test]
        fn messages_sent_while_the_server_is_down_arrive_in_order_once_it_starts() {
            $crate::queued_sends::sent_while_down_arrive_once_the_server_starts::<$client>();
        }

        #[test]
        fn more_than_a_new_connection_takes_at_once_all_arrive_in_order_with_nothing_more_sent() {
            $crate::queued_sends::more_than_a_connection_takes_at_once_all_arrive::<$client>();
        }

        #[test]
        fn beyond_its_limit_a_disconnected_client_refuses_a_message_with_queue_full() {
            $crate::queued_sends::beyond_the_limit_sending_fails_with_queue_full::<$client>();
        }

        #[test]
        fn a_queued_message_too_large_for_the_server_is_set_aside_and_holds_nothing_up() {
            $crate::queued_sends::a_queued_message_too_large_for_the_server_holds_nothing_up::<$client>();
        }

        #[test]
        fn closing_a_disconnected_client_hands_back_what_it_queued() {
            $crate::queued_sends::close_while_down_hands_back_what_was_queued::<$client>();
        }
    };
}

/// pulse-smol's client, its supervisor on smol's global executor.
pub struct SmolClient(pulse_smol::ReconnectingClient);

impl Deref for SmolClient {
    type Target = ClientState<pulse_smol::Connection>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Reconnecting for SmolClient {
    type Conn = pulse_smol::Connection;
    fn start(server: SocketAddr, max_queued: usize) -> Self {
        let (client, supervisor) = pulse_smol::ReconnectingClient::builder(server, pulse_proto::Config::default())
            .backoff(fast_backoff())
            .max_queued(max_queued)
            .build();
        smol::spawn(supervisor).detach();
        SmolClient(client)
    }
    fn close(&self) {
        block_on(self.0.close());
    }
}

/// pulse-tokio's client, on a runtime of its own.
pub struct TokioClient {
    client: pulse_tokio::ReconnectingClient,
    // Dropped after the client: its task ends on the runtime.
    _runtime: tokio::runtime::Runtime,
}

impl Deref for TokioClient {
    type Target = ClientState<pulse_tokio::Connection>;
    fn deref(&self) -> &Self::Target {
        &self.client
    }
}

impl Reconnecting for TokioClient {
    type Conn = pulse_tokio::Connection;
    fn start(server: SocketAddr, max_queued: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let client = runtime.block_on(async {
            pulse_tokio::ReconnectingClient::builder(server, pulse_proto::Config::default())
                .backoff(fast_backoff())
                .max_queued(max_queued)
                .build()
        });
        TokioClient {
            client,
            _runtime: runtime,
        }
    }
    fn close(&self) {
        block_on(self.client.close());
    }
}
