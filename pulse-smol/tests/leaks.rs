//! After connections close, no driver (task, socket, timer) is left: its
//! own test binary, so no other test's connections are counted.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::future;
use pulse_proto::{CloseCode, Config};
use pulse_smol::{connect, connect_udp, live_drivers, Incoming, Listener, UdpListener};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn config() -> Arc<Config> {
    Arc::new(
        Config::default()
            .with_interval(Duration::from_secs(1))
            .with_dead_timeout(Duration::from_secs(3)),
    )
}

#[test]
fn closed_connections_leave_no_task_socket_or_timer_behind() {
    smol::block_on(future::or(
        async {
            // The reactor opens its own descriptors on first use: not ours.
            drop(async_io::Async::<std::net::UdpSocket>::bind(([127, 0, 0, 1], 0)).unwrap());
            async_io::Timer::after(Duration::from_millis(1)).await;
            let fds_before = open_fds();
            let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), config()).unwrap();
            let addr = listener.local_addr().unwrap();
            let (udp_listener, udp_driver) = UdpListener::bind("127.0.0.1:0".parse().unwrap(), config()).unwrap();
            let udp_addr = udp_listener.local_addr();
            let udp_listener_task = smol::spawn(udp_driver);
            let mut drivers = Vec::new();
            let mut servers = Vec::new();
            for i in 0..50 {
                let connecting = smol::spawn(async move {
                    if i % 5 == 0 {
                        connect_udp(udp_addr, config()).await.unwrap()
                    } else {
                        connect(addr, config()).await.unwrap()
                    }
                });
                let (server, driver, _) = if i % 5 == 0 {
                    udp_listener.accept().await.unwrap()
                } else {
                    listener.accept().await.unwrap()
                };
                drivers.push(smol::spawn(driver));
                let (client, driver) = connecting.await;
                drivers.push(smol::spawn(driver));
                assert!(matches!(server.recv().await, Incoming::Connected(_)));
                servers.push(server);
                client.send(1, &b"x"[..]).await.unwrap();
                if i % 2 == 0 {
                    client.close(CloseCode::NORMAL, "").await.unwrap();
                } else {
                    drop(client); // dropping every handle closes too
                }
            }
            for server in &servers {
                server.closed().await;
            }
            drop(servers);
            for driver in drivers {
                driver.await;
            }
            assert_eq!(live_drivers(), 0, "drivers left running");
            drop(listener);
            drop(udp_listener);
            udp_listener_task.cancel().await;
            assert_eq!(open_fds(), fds_before, "sockets left open");
        },
        async {
            async_io::Timer::after(Duration::from_secs(30)).await;
            panic!("timed out");
        },
    ));
}
