//! Cancel safety as `Connection::recv`'s docs state it: a `recv` dropped
//! before it is ready takes nothing — raced against short timers, every
//! message still arrives once and in order.

mod common;

use std::time::Duration;

use common::{config, echo_server, run};
use futures_lite::future;
use pulse_smol::{connect, Event};

#[test]
fn a_recv_cancelled_by_a_timer_loses_and_repeats_nothing() {
    run(async {
        let addr = echo_server(config(1000, 3000)).await;
        let (conn, driver) = connect(addr, config(1000, 3000)).await.unwrap();
        smol::spawn(driver).detach();
        const N: u32 = 2000;
        let sender = conn.clone();
        let sending = smol::spawn(async move {
            for n in 0..N {
                sender.send(1, n.to_be_bytes().to_vec()).await.unwrap();
            }
        });
        let mut next = 0u32;
        let mut cancelled = 0u32;
        for _ in 0..10_000_000u32 {
            if next == N {
                break;
            }
            let attempt = future::or(async { Some(conn.recv().await) }, async {
                async_io::Timer::after(Duration::from_micros(30)).await;
                None
            });
            match attempt.await {
                Some(Event::Message { payload, .. }) => {
                    let got = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    assert_eq!(got, next, "a message lost, repeated or reordered");
                    next += 1;
                }
                Some(Event::Closed(closed)) => panic!("closed: {closed}"),
                Some(_) => {}
                None => cancelled += 1,
            }
        }
        assert_eq!(next, N);
        sending.await;
        println!("recv cancelled {cancelled} times");
        assert!(cancelled > 0, "no recv was ever cancelled: the test proves nothing");
    });
}
