//! TCP: connecting out and accepting in.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

use async_io::Async;
use futures_lite::future;
use pulse_proto::{Config, Role, Session, Transport};

use crate::clock;
use crate::connection::{pair, Connection};
use crate::driver::{Driver, Io};
use crate::error::Error;

/// Connects to a pulse server over TCP and completes the handshake.
///
/// Returns the connection and its [`Driver`], which must be spawned (or
/// otherwise polled) for the connection to run. Fails with
/// [`Error::Closed`] if the server refuses or the handshake times out.
///
/// # Examples
///
/// ```no_run
/// # smol::block_on(async {
/// use pulse_proto::Config;
///
/// let (conn, driver) = pulse_smol::connect("127.0.0.1:7000".parse()?, Config::default()).await?;
/// smol::spawn(driver).detach();
/// conn.send(1, &b"hello"[..]).await?;
/// println!("{:?}", conn.recv().await);
/// # Ok::<(), Box<dyn std::error::Error>>(()) });
/// ```
pub async fn connect(addr: SocketAddr, config: impl Into<Arc<Config>>) -> Result<(Connection, Driver), Error> {
    let config = stream_config(config.into());
    config.validate()?;
    let stream = Async::<TcpStream>::connect(addr).await?;
    stream.get_ref().set_nodelay(true)?;
    let session = Session::new(config, Role::Client, clock::now(), clock::seed())?;
    handshake(pair(session, Io::Tcp(stream))).await
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

fn stream_config(mut config: Arc<Config>) -> Arc<Config> {
    if config.transport != Transport::Stream {
        Arc::make_mut(&mut config).transport = Transport::Stream;
    }
    config
}

/// Accepts pulse connections over TCP.
#[derive(Debug)]
pub struct Listener {
    listener: Async<TcpListener>,
    config: Arc<Config>,
}

impl Listener {
    /// Listens on `addr` with `config` for every accepted session.
    pub fn bind(addr: SocketAddr, config: impl Into<Arc<Config>>) -> Result<Listener, Error> {
        let config = stream_config(config.into());
        config.validate()?;
        Ok(Listener {
            listener: Async::<TcpListener>::bind(addr)?,
            config,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.get_ref().local_addr()
    }

    /// The next connection, as soon as TCP accepted it: the handshake runs
    /// in its [`Driver`], which must be spawned. A peer that is not a pulse
    /// client (an HTTP request, a scanner) ends with an [`crate::Incoming::Closed`]
    /// whose `error` says what it sent, and troubles no other connection.
    pub async fn accept(&self) -> Result<(Connection, Driver, SocketAddr), Error> {
        let (stream, peer) = self.listener.accept().await?;
        stream.get_ref().set_nodelay(true)?;
        let session = Session::new(self.config.clone(), Role::Server, clock::now(), clock::seed())?;
        let (conn, driver) = pair(session, Io::Tcp(stream));
        Ok((conn, driver, peer))
    }
}
