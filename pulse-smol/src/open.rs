//! Opening a connection, whatever carries it: a config of the transport's
//! kind, the session and its driver, and the client's handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_lite::future;
use pulse_driver::clock;
use pulse_proto::{Config, Role, Session};

use crate::connection::Connection;
use crate::driver::Driver;
use crate::shared::Shared;
use crate::transport::Io;
use pulse_driver::Error;

/// A new connection over `io`, and its driver.
pub(crate) fn pair(
    config: Arc<Config>,
    role: Role,
    io: Io,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
) -> Result<(Connection, Driver), Error> {
    let session = Session::new(config, role, clock::now(), clock::seed())?;
    let shared = Arc::new(Shared::new(session, peer, local));
    let driver = Driver::new(shared.clone(), io);
    Ok((Connection::new(shared), driver))
}

/// Runs the driver until the handshake is over; hands both back if it
/// succeeded.
pub(crate) async fn handshake((conn, mut driver): (Connection, Driver)) -> Result<(Connection, Driver), Error> {
    let outcome = future::or(
        async {
            (&mut driver).await;
            Err(conn.shared().lock().closed_or_pending())
        },
        conn.connected(),
    )
    .await;
    match outcome {
        Ok(_) => Ok((conn, driver)),
        Err(closed) => Err(Error::Closed(closed)),
    }
}
