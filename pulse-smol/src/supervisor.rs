//! The reconnecting client's loop: connect, run the connection, wait as
//! the backoff says, and again. It never waits for the application.

use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use async_net::AsyncToSocketAddrs;
use futures_lite::future;
use pulse_proto::{CloseCode, Config};

use pulse_driver::{AfterLoss, Attempts, ClientEvent, ClientState, Error};

use crate::client_state::Inner;
use crate::connection::Connection;
use crate::driver::Driver;
use crate::tcp::connect_prepared;

/// How one attempt ended.
enum Outcome {
    /// The client was told to stop.
    Stopped,
    /// It failed, or its connection was lost after being up this long.
    Failed(Error, Option<std::time::Duration>),
}

pub(crate) async fn supervise<A: AsyncToSocketAddrs + Send + Sync + 'static>(
    inner: Arc<Inner>,
    target: A,
    config: Arc<Config>,
    mut attempts: Attempts,
) {
    let target = Arc::new(target);
    let ending = loop {
        if inner.is_stopping() {
            break ClientEvent::Stopped;
        }
        inner.tell(|queue| queue.report(attempts.next_attempt()));
        let (error, up) = match run_once(&inner, &target, config.clone(), &mut attempts).await {
            Outcome::Stopped => break ClientEvent::Stopped,
            Outcome::Failed(error, up) => (error, up),
        };
        if inner.is_stopping() {
            break ClientEvent::Stopped;
        }
        let (lost, retry_in) = match attempts.after_loss(error, up) {
            AfterLoss::Retry { lost, delay } => (lost, delay),
            AfterLoss::End(ending) => break ending,
        };
        inner.tell(|queue| queue.report(lost));
        // Sleep, but wake at once if the client is stopped meanwhile.
        future::or(
            async {
                Timer::after(retry_in).await;
            },
            inner.stopped(),
        )
        .await;
    };
    inner.tell(|queue| queue.end(ending));
}

/// One attempt, and the connection it opened until it ends.
async fn run_once<A: AsyncToSocketAddrs + Send + Sync + 'static>(
    inner: &Inner,
    target: &Arc<A>,
    config: Arc<Config>,
    attempts: &mut Attempts,
) -> Outcome {
    let connecting = async {
        let addrs = match resolve(target.clone()).await {
            Ok(addrs) => addrs,
            Err(e) => return Some(Err(e.into())),
        };
        Some(connect_prepared(&addrs[..], config, |conn| inner.lock().prepare(conn)).await)
    };
    let stopped = async {
        inner.stopped().await;
        None
    };
    let (conn, driver) = match future::or(connecting, stopped).await {
        None => return Outcome::Stopped,
        Some(Err(error)) => return Outcome::Failed(error, None),
        Some(Ok(pair)) => pair,
    };
    attempts.connected();
    let up_since = Instant::now();
    inner.tell(|queue| queue.attach(&conn));
    let closed = run(inner, &conn, driver).await;
    inner.lock().detach();
    Outcome::Failed(Error::Closed(closed), Some(up_since.elapsed()))
}

/// Resolves the target afresh, so a service that moved is found. Done on
/// a thread of the `blocking` pool: async-net's resolution of a generic
/// address is not `Send`, and a name's resolution blocks anyway.
async fn resolve<A: AsyncToSocketAddrs + Send + Sync + 'static>(
    target: Arc<A>,
) -> std::io::Result<Vec<std::net::SocketAddr>> {
    blocking::unblock(move || async_io::block_on(async_net::resolve(&*target))).await
}

/// Runs the connection's driver until it ends, delivering what still
/// waits for it as it makes room, and closing gracefully if the client is
/// stopped meanwhile.
async fn run(inner: &Inner, conn: &Connection, mut driver: Driver) -> pulse_proto::Closed {
    let close_when_stopped = async {
        inner.stopped().await;
        let _ = conn.close(CloseCode::NORMAL, "client closed").await;
        future::pending::<()>().await;
    };
    let deliver = async {
        ClientState::deliver(&inner.state, conn).await;
        future::pending::<()>().await;
    };
    future::or(&mut driver, future::or(close_when_stopped, deliver)).await;
    conn.closed().await
}
