//! Review of pulse-tokio (issue 13): a UDP client whose socket reported
//! an error (an ICMP "port unreachable" while its server's port was
//! briefly closed) must go on reading at once. tokio returns such an error
//! without registering the task for the next datagram, so a driver that
//! stops reading there hears nothing more until its own timer fires: a
//! heartbeat interval later.

mod tokio_common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulse_tokio::{connect_udp, Event, UdpListener};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_common::{bounded, config};

/// A UDP relay on a fixed port between one client and the server; it can
/// be taken down (its port closed: the client's datagrams then draw ICMP
/// "port unreachable") and brought back on the same port.
struct Relay {
    port: u16,
    server: SocketAddr,
    client: Arc<Mutex<Option<SocketAddr>>>,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(server: SocketAddr) -> Relay {
        let mut relay = Relay {
            port: 0,
            server,
            client: Arc::new(Mutex::new(None)),
            task: None,
        };
        relay.up().await;
        relay
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn up(&mut self) {
        let socket = UdpSocket::bind(self.addr()).await.unwrap();
        self.port = socket.local_addr().unwrap().port();
        let (server, client) = (self.server, self.client.clone());
        self.task = Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let to = if from == server {
                    *client.lock().unwrap()
                } else {
                    *client.lock().unwrap() = Some(from);
                    Some(server)
                };
                if let Some(to) = to {
                    let _ = socket.send_to(&buf[..n], to).await;
                }
            }
        }));
    }

    async fn down(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_client_reads_on_at_once_after_an_icmp_error() {
    bounded(async {
        // A 5 s heartbeat: the client's own timer is far off.
        let listener = UdpListener::bind("127.0.0.1:0", config(5000, 15000)).await.unwrap();
        let mut relay = Relay::start(listener.local_addr()).await;
        let (client, accepted) = tokio::join!(connect_udp(relay.addr(), config(5000, 15000)), listener.accept());
        let (client, (server, _)) = (client.unwrap(), accepted.unwrap());
        server.connected().await.unwrap();
        // The relay's port closes; the client's next datagram draws a
        // "port unreachable", which its socket reports on the next read.
        relay.down().await;
        client.send(1, "into the void").await.unwrap();
        // Time for the report to come back and be read (loopback: well
        // under a millisecond); too little time only lets the test pass.
        tokio::time::sleep(Duration::from_millis(300)).await;
        relay.up().await;
        let sent = Instant::now();
        server.send(2, Bytes::from_static(b"are you there")).await.unwrap();
        loop {
            match client.recv().await {
                Event::Message { tag: 2, .. } => break,
                Event::Closed(closed) => panic!("{closed}"),
                _ => {}
            }
        }
        let took = sent.elapsed();
        println!("the message took {took:?}");
        // Milliseconds when the client reads on; up to its next heartbeat
        // (5 s) when it waits for its timer. 1.5 s is over 3x short of it.
        assert!(took < Duration::from_millis(1500), "the client heard it after {took:?}");
    })
    .await;
}
