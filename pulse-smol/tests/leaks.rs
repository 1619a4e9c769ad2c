//! After connections close, no driver (task, socket, timer) is left, and a
//! UDP listener nobody uses ends by itself: its own test binary, so no
//! other test's connections are counted.

mod common;

use std::time::Duration;

use common::{config, run};
use pulse_proto::CloseCode;
use pulse_smol::{connect, connect_udp, live_drivers, Event, Listener, UdpListener};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn closed_connections_and_unused_listeners_leave_no_task_socket_or_timer_behind() {
    run(async {
        // The reactor opens its own descriptors on first use: not ours.
        drop(async_io::Async::<std::net::UdpSocket>::bind(([127, 0, 0, 1], 0)).unwrap());
        async_io::Timer::after(Duration::from_millis(1)).await;
        let fds_before = open_fds();
        let listener = Listener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (udp_listener, router) = UdpListener::bind("127.0.0.1:0", config(1000, 3000)).await.unwrap();
        let udp_addr = udp_listener.local_addr();
        let router = smol::spawn(router);
        let mut drivers = Vec::new();
        let mut servers = Vec::new();
        for i in 0..50 {
            let connecting = smol::spawn(async move {
                if i % 5 == 0 {
                    connect_udp(udp_addr, config(1000, 3000)).await.unwrap()
                } else {
                    connect(addr, config(1000, 3000)).await.unwrap()
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
            assert!(matches!(server.recv().await, Event::Connected(_)));
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
        // The UDP listener's router ends by itself once nothing uses it,
        // with no datagram needed to wake it, and its port is free.
        drop(udp_listener);
        router.await;
        assert_eq!(open_fds(), fds_before, "sockets left open");
        std::net::UdpSocket::bind(udp_addr).expect("the UDP port is free again");
    });
}
