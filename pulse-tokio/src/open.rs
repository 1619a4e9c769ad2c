//! Opening a connection, whatever carries it: the session, its driver
//! task, and the client's handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use pulse_driver::{clock, Error};
use pulse_proto::{Config, Role, Session};

use crate::connection::Connection;
use crate::driver;
use crate::shared::Shared;
use crate::transport::Io;

/// A new connection over `io`, its driver task spawned.
pub(crate) fn open(
    config: Arc<Config>,
    role: Role,
    io: Io,
    addrs: (Option<SocketAddr>, Option<SocketAddr>),
) -> Result<Connection, Error> {
    let (peer, local) = addrs;
    let shared = Arc::new(Shared::new(
        Session::new(config, role, clock::now(), clock::seed())?,
        io,
        peer,
        local,
    ));
    driver::spawn(shared.clone());
    Ok(Connection::new(shared))
}

/// Waits for the client's handshake: the connection if it succeeded.
pub(crate) async fn handshake(conn: Connection) -> Result<Connection, Error> {
    match conn.connected().await {
        Ok(_) => Ok(conn),
        Err(closed) => Err(Error::Closed(closed)),
    }
}
