//! A name that resolves to several addresses (`localhost` to `::1` and
//! `127.0.0.1`, a service behind several A records): an address that never
//! answers takes only its share of the connect deadline, and the next
//! address is still tried, by every adapter that resolves names.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use pulse_proto::Config;

/// A loopback address that never answers a connect: a listener that
/// never accepts, its queue full, so the kernel drops each SYN as a
/// firewall would.
struct BlackHole {
    _listener: socket2::Socket,
    _queued: Vec<TcpStream>,
    addr: SocketAddr,
}

impl BlackHole {
    fn new() -> BlackHole {
        let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
        listener.listen(0).unwrap();
        let addr = listener.local_addr().unwrap().as_socket().unwrap();
        // Fills the queue: what Linux keeps for a backlog of 0, and one
        // more that may already be dropped.
        let queued = (0..2)
            .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok())
            .collect();
        BlackHole {
            _listener: listener,
            _queued: queued,
            addr,
        }
    }
}

/// 4 s to connect: the first address gets 2 s of it, and the second (a
/// server that answers) the rest.
fn config() -> Config {
    Config::default().with_handshake_timeout(Duration::from_secs(4))
}

#[test]
fn pulse_smol_tries_the_next_address_after_one_that_never_answers() {
    let hole = BlackHole::new();
    smol::block_on(async {
        let listener = pulse_smol::Listener::bind("127.0.0.1:0", config()).await.unwrap();
        let addrs = [hole.addr, listener.local_addr().unwrap()];
        let accepting = smol::spawn(async move {
            let (conn, driver, _) = listener.accept().await.unwrap();
            smol::spawn(driver).detach();
            conn
        });
        let (conn, driver) = pulse_smol::connect(&addrs[..], config())
            .await
            .expect("the second address answers");
        smol::spawn(driver).detach();
        let _server = accepting.await;
        assert_eq!(conn.peer_addr().ok(), Some(addrs[1]));
    });
}

#[test]
fn pulse_tokio_tries_the_next_address_after_one_that_never_answers() {
    let hole = BlackHole::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let listener = pulse_tokio::Listener::bind("127.0.0.1:0", config()).await.unwrap();
        let addrs = [hole.addr, listener.local_addr().unwrap()];
        let accepting = tokio::spawn(async move { listener.accept().await.unwrap().0 });
        let conn = pulse_tokio::connect(&addrs[..], config())
            .await
            .expect("the second address answers");
        let _server = accepting.await.unwrap();
        assert_eq!(conn.peer_addr().ok(), Some(addrs[1]));
    });
}

/// The fixture itself: a plain listener answers, the black hole does not
/// (or the tests above would prove nothing).
#[test]
fn the_black_hole_never_answers() {
    let hole = BlackHole::new();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(TcpStream::connect_timeout(&open.local_addr().unwrap(), Duration::from_secs(2)).is_ok());
    assert!(TcpStream::connect_timeout(&hole.addr, Duration::from_millis(500)).is_err());
}
