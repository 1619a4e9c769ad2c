//! Review of pulse-tokio (issue 13): a `Listener` whose process runs out
//! of descriptors pauses accepting and resumes once some are free, so an
//! `accept` loop keeps serving. Its own binary: it lowers this process's
//! soft limit on open files while it runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use pulse_proto::{Config, Instant as ProtoInstant, Role, Session};
use pulse_tokio::Listener;
use rustix::process::{getrlimit, setrlimit, Resource};

/// Clients, all connected before the limit is lowered.
const CLIENTS: usize = 40;
/// Descriptors left free under the lowered limit.
const HEADROOM: u64 = 3;

/// The descriptor the next open would get: a limit above it by `n`
/// leaves room for `n` more (descriptors open above the limit, inherited
/// ones, stay usable).
fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    let probe = std::fs::File::open("/dev/null").unwrap();
    u64::try_from(probe.as_raw_fd()).unwrap()
}

/// Says HELLO on a connected socket and waits for the server's answer:
/// whether one came (the server accepted and served this client).
fn hello_answered(mut stream: TcpStream, config: Arc<Config>) -> bool {
    let mut session = Session::new(config, Role::Client, ProtoInstant::ZERO, 1).unwrap();
    let hello = session.poll_transmit(ProtoInstant::ZERO).unwrap().to_vec();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if stream.write_all(&hello).is_err() {
        return false;
    }
    let mut answer = [0u8; 64];
    let Ok(n) = stream.read(&mut answer) else { return false };
    // The WELCOME, which a client's session takes.
    session.handle_input(ProtoInstant::ZERO, &answer[..n]);
    session.negotiated().is_some()
}

#[test]
fn accepting_resumes_after_the_process_ran_out_of_descriptors() {
    let config = Arc::new(Config::default().with_timing(Duration::from_millis(500), Duration::from_millis(1500)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(Listener::bind("127.0.0.1:0", config.clone())).unwrap();
    listener.set_accept_retry(Duration::from_millis(20));
    let addr: SocketAddr = listener.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Room for HEADROOM more descriptors: the server's accepts hit
    // EMFILE after a few, and get room again only as its connections end.
    let before = getrlimit(Resource::Nofile);
    let mut lowered = before;
    lowered.current = Some(lowest_free_fd() + HEADROOM);
    setrlimit(Resource::Nofile, lowered).unwrap();
    let answered: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let config = config.clone();
            std::thread::spawn(move || hello_answered(client, config))
        })
        .collect();
    // The application: each connection handshakes, then is dropped
    // (closed), which frees its descriptor.
    let (served, answered) = rt.block_on(async {
        let served = tokio::time::timeout(Duration::from_secs(30), async {
            let mut served = 0;
            while served < CLIENTS {
                let (conn, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let _ = conn.connected().await;
                });
                served += 1;
            }
            served
        })
        .await;
        // The runtime runs on while the clients wait for their answers.
        let answered = tokio::task::spawn_blocking(move || {
            answered
                .into_iter()
                .map(|t| t.join().unwrap_or(false))
                .filter(|&ok| ok)
                .count()
        });
        (served, answered.await.unwrap())
    });
    setrlimit(Resource::Nofile, before).unwrap();
    assert_eq!(
        served,
        Ok(CLIENTS),
        "accepting stalled after running out of descriptors"
    );
    assert_eq!(answered, CLIENTS, "a client accepted was not served");
}
