//! Review of pulse-tokio (issue 13): a `UdpListener` under HELLOs from
//! many addresses that never proved themselves (spoofed or replayed
//! cookies), and a listener that nothing uses any more.

mod tokio_common;

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use pulse_proto::frame::{Cookie, Frame, Hello, MAGIC};
use pulse_tokio::{connect_udp, UdpListener};
use tokio_common::{bounded, config};

fn hello(cookie: Option<&[u8]>, attempt: u8) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 2,
        version_max: 2,
        interval_ms: 1_000,
        dead_timeout_ms: 3_000,
        max_frame_len: 4096,
        attempt,
        cookie: cookie.and_then(Cookie::new),
    })
    .encode(&mut bytes);
    bytes
}

/// The cookie of a RETRY datagram, if it is one.
fn retry_cookie(datagram: &[u8]) -> Option<Vec<u8>> {
    let mut body = datagram.strip_prefix(&MAGIC[..])?;
    match pulse_proto::next_datagram_frame(&mut body, 256) {
        Ok(Some(Frame::Retry { cookie, .. })) => Some(cookie.as_slice().to_vec()),
        _ => None,
    }
}

/// Every datagram waiting on `socket`, without blocking.
fn drain(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    std::iter::from_fn(|| socket.recv(&mut buf).ok().map(|n| buf[..n].to_vec())).collect()
}

fn socket_on(ip: [u8; 4], server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind(SocketAddr::from((ip, 0))).unwrap();
    socket.connect(server).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unproven_hellos_from_many_addresses_open_nothing_and_are_never_amplified() {
    bounded(async {
        let listener = UdpListener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
        let addr = listener.local_addr();
        // A real address gets a real cookie — then "spoofs" others with it.
        let honest = socket_on([127, 0, 0, 2], addr);
        honest.send(&hello(None, 0)).unwrap();
        let cookie = loop {
            if let Some(cookie) = drain(&honest).iter().find_map(|d| retry_cookie(d)) {
                break cookie;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        // From 64 ports on 8 addresses: HELLOs without a cookie, with
        // made-up cookies, and with the honest address's real one.
        let flooders: Vec<UdpSocket> = (0..64)
            .map(|i| socket_on([127, 0, 0, 3 + (i % 8) as u8], addr))
            .collect();
        let (mut sent, mut answered) = (0usize, 0usize);
        for round in 0..60u32 {
            for (i, socket) in flooders.iter().enumerate() {
                let datagram = match (round as usize + i) % 3 {
                    0 => hello(None, 0),
                    1 => hello(Some(&(round ^ i as u32).to_be_bytes().repeat(3)), 1),
                    _ => hello(Some(&cookie), 1),
                };
                if socket.send(&datagram).is_ok() {
                    sent += datagram.len();
                }
            }
            tokio::task::yield_now().await;
            for socket in &flooders {
                answered += drain(socket).iter().map(Vec::len).sum::<usize>();
            }
        }
        // Then the honest address echoes its cookie: the first peer to be
        // accepted must be it, not one of the flood's.
        // Again until accepted: the flood may have filled the server's
        // receive buffer, and UDP drops what does not fit.
        let (conn, peer) = loop {
            honest.send(&hello(Some(&cookie), 1)).unwrap();
            let wait = tokio::time::timeout(Duration::from_millis(100), listener.accept());
            if let Ok(accepted) = wait.await {
                break accepted.unwrap();
            }
        };
        assert_eq!(peer, honest.local_addr().unwrap(), "an unproven address was accepted");
        // The socket is read in order: every flood datagram that was not
        // dropped was routed before the honest cookie, and opened nothing.
        let mut another = std::pin::pin!(listener.accept());
        let more = std::future::poll_fn(|cx| std::task::Poll::Ready(another.as_mut().poll(cx).is_ready())).await;
        assert!(!more, "an unproven address was accepted");
        drop(conn);
        for socket in &flooders {
            answered += drain(socket).iter().map(Vec::len).sum::<usize>();
        }
        println!("{sent} bytes of unproven HELLOs answered with {answered} bytes");
        assert!(answered > 0, "the flood was never read");
        assert!(answered <= 3 * sent, "{answered} bytes sent for {sent} received");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_listener_nothing_uses_any_more_frees_its_port() {
    bounded(async {
        let listener = UdpListener::bind("127.0.0.1:0", config(200, 1000)).await.unwrap();
        let addr = listener.local_addr();
        let (client, accepted) = tokio::join!(connect_udp(addr, config(200, 1000)), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        // The listener goes first; its one peer keeps the socket in use.
        drop(listener);
        client.send(1, "still served").await.unwrap();
        assert_eq!(
            tokio_common::message_or_end(&server).await,
            Some((1, bytes::Bytes::from_static(b"still served")))
        );
        assert!(UdpSocket::bind(addr).is_err(), "the port was freed under a live peer");
        // Then the peer: nothing uses the socket, and the port is free.
        drop(server);
        client.closed().await;
        let mut tries = 0;
        while UdpSocket::bind(addr).is_err() {
            tries += 1;
            assert!(tries < 2000, "the listener's port was never freed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}
