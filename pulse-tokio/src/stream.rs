//! Connections over byte streams the application opened: TLS, Unix
//! sockets, sockets it set up itself.

use std::sync::Arc;

use pulse_driver::{config_for, Error};
use pulse_proto::{Config, Role, Transport};

use crate::connection::Connection;
use crate::open::{handshake, open};
use crate::transport::{ByteStream, Io};

impl Connection {
    /// A client connection over a byte stream the application opened
    /// (TLS through tokio-rustls, a Unix socket, a socket it configured
    /// itself); completes the handshake. The config is used as a stream
    /// config. Call it within a tokio runtime: the driver task is spawned
    /// on it.
    ///
    /// Cancel safety: cancelling drops the stream and the attempt.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), pulse_tokio::Error> {
    /// use pulse_proto::Config;
    ///
    /// let unix = tokio::net::UnixStream::connect("/run/pulse.sock").await?;
    /// let conn = pulse_tokio::Connection::client(unix, Config::default()).await?;
    /// conn.send(1, "over a Unix socket").await?;
    /// # Ok(()) }
    /// ```
    pub async fn client(
        stream: impl ByteStream + 'static,
        config: impl Into<Arc<Config>>,
    ) -> Result<Connection, Error> {
        let config = config_for(config, Transport::Stream)?;
        handshake(open(config, Role::Client, Io::Stream(Box::new(stream)), (None, None))?).await
    }

    /// A server connection over a byte stream the application accepted;
    /// the handshake runs in its driver task. A peer that is not a pulse
    /// client ends with [`Event::Closed`](crate::Event::Closed) saying
    /// what it sent. Call it within a tokio runtime.
    ///
    /// pulse's handshake timeout starts here. Whatever the application
    /// does with the stream before (a TLS handshake) is its own to bound:
    /// a client that connects and then stalls in the TLS handshake would
    /// otherwise hold its socket and its task forever, for example
    /// `tokio::time::timeout(config.handshake_timeout, acceptor.accept(tcp))`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), pulse_tokio::Error> {
    /// use pulse_proto::Config;
    ///
    /// let listener = tokio::net::UnixListener::bind("/run/pulse.sock")?;
    /// let (unix, _) = listener.accept().await?;
    /// let conn = pulse_tokio::Connection::server(unix, Config::default())?;
    /// println!("{:?}", conn.recv().await);
    /// # Ok(()) }
    /// ```
    pub fn server(stream: impl ByteStream + 'static, config: impl Into<Arc<Config>>) -> Result<Connection, Error> {
        let config = config_for(config, Transport::Stream)?;
        open(config, Role::Server, Io::Stream(Box::new(stream)), (None, None))
    }
}
