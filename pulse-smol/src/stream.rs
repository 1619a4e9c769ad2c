//! Connections over byte streams the application opened: TLS, Unix
//! sockets, sockets it set up itself.

use std::sync::Arc;

use pulse_proto::{Config, Role, Transport};

use crate::connection::Connection;
use crate::driver::Driver;
use crate::open::{handshake, pair};
use crate::transport::{ByteStream, Io};
use pulse_driver::config_for;
use pulse_driver::Error;

impl Connection {
    /// A client connection over a byte stream the application opened
    /// (TLS, a Unix socket, a socket it configured itself); completes the
    /// handshake. The config is used as a stream config.
    ///
    /// Cancel safety: cancelling drops the stream and the attempt.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// use pulse_proto::Config;
    ///
    /// let unix = smol::net::unix::UnixStream::connect("/run/pulse.sock").await?;
    /// let (conn, driver) = pulse_smol::Connection::client(unix, Config::default()).await?;
    /// smol::spawn(driver).detach();
    /// conn.send(1, "over a Unix socket").await?;
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub async fn client(
        stream: impl ByteStream + 'static,
        config: impl Into<Arc<Config>>,
    ) -> Result<(Connection, Driver), Error> {
        let config = config_for(config, Transport::Stream)?;
        handshake(pair(config, Role::Client, Io::Stream(Box::new(stream)), None, None)?).await
    }

    /// A server connection over a byte stream the application accepted;
    /// the handshake runs in the returned [`Driver`], which must be
    /// spawned. A peer that is not a pulse client ends with
    /// [`Event::Closed`](crate::Event::Closed) saying what it sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # smol::block_on(async {
    /// use pulse_proto::Config;
    ///
    /// let listener = smol::net::unix::UnixListener::bind("/run/pulse.sock")?;
    /// let (unix, _) = listener.accept().await?;
    /// let (conn, driver) = pulse_smol::Connection::server(unix, Config::default())?;
    /// smol::spawn(driver).detach();
    /// println!("{:?}", conn.recv().await);
    /// # Ok::<(), pulse_smol::Error>(()) });
    /// ```
    pub fn server(
        stream: impl ByteStream + 'static,
        config: impl Into<Arc<Config>>,
    ) -> Result<(Connection, Driver), Error> {
        let config = config_for(config, Transport::Stream)?;
        pair(config, Role::Server, Io::Stream(Box::new(stream)), None, None)
    }
}
