//! What opening connections takes, whatever the runtime: a config of the
//! transport's kind, what an accept error means, where a UDP client binds.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulse_proto::{Config, Transport};

use crate::{log, Error};

/// Makes a config of the transport's kind (a copy, if it is not), and
/// checks it.
///
/// # Examples
///
/// ```
/// use pulse_proto::{Config, Transport};
///
/// let config = pulse_driver::config_for(Config::default(), Transport::Datagram).unwrap();
/// assert_eq!(config.transport, Transport::Datagram);
/// ```
pub fn config_for(config: impl Into<Arc<Config>>, transport: Transport) -> Result<Arc<Config>, Error> {
    let mut config = config.into();
    if config.transport != transport {
        config = Arc::new((*config).clone().with_transport(transport));
    }
    config.validate()?;
    Ok(config)
}

/// What an accept error means for a listener.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use pulse_driver::AcceptError;
///
/// assert_eq!(AcceptError::of(&ErrorKind::ConnectionReset.into()), AcceptError::Connection);
/// assert_eq!(AcceptError::of(&ErrorKind::OutOfMemory.into()), AcceptError::Resources);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    /// The connection failed before it was taken: take the next one.
    Connection,
    /// The process or the kernel is out of something (descriptors,
    /// memory): wait a little, then go on.
    Resources,
    /// The socket itself is unusable.
    Fatal,
}

impl AcceptError {
    /// What `e`, from accepting, means.
    pub fn of(e: &io::Error) -> AcceptError {
        match e.kind() {
            io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset => AcceptError::Connection,
            io::ErrorKind::InvalidInput => AcceptError::Fatal,
            // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPERM (a firewall): none is
            // the listener's fault, and each passes.
            _ => AcceptError::Resources,
        }
    }
}

/// Where a UDP client talking to `peer` binds: any address of its family,
/// any port.
///
/// ```
/// let local = pulse_driver::unspecified_for("127.0.0.1:7000".parse().unwrap());
/// assert_eq!(local, "0.0.0.0:0".parse().unwrap());
/// ```
pub fn unspecified_for(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    }
}

/// The error for a name that resolved to nothing.
///
/// ```
/// assert_eq!(pulse_driver::no_address().kind(), std::io::ErrorKind::NotFound);
/// ```
pub fn no_address() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
}

/// The error for an address asked of a stream the application handed
/// over, which has none.
///
/// ```
/// assert_eq!(pulse_driver::no_socket_address().kind(), std::io::ErrorKind::Unsupported);
/// ```
pub fn no_socket_address() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a stream handed over by the application has no socket address",
    )
}

/// How long accepting pauses, by default, when the process is out of
/// descriptors or the kernel out of memory, before it tries again.
pub const DEFAULT_ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What a listener does about accept errors: skips a connection that
/// failed, pauses (logging once per episode) when out of resources, and
/// gives up only when the socket is unusable.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use pulse_driver::{AcceptErrors, DEFAULT_ACCEPT_RETRY};
///
/// let errors = AcceptErrors::default();
/// assert_eq!(errors.on_error(ErrorKind::ConnectionReset.into()).unwrap(), None);
/// assert_eq!(errors.on_error(ErrorKind::OutOfMemory.into()).unwrap(), Some(DEFAULT_ACCEPT_RETRY));
/// assert!(errors.on_error(ErrorKind::InvalidInput.into()).is_err());
/// errors.on_accept();
/// ```
#[derive(Debug)]
pub struct AcceptErrors {
    retry_nanos: AtomicU64,
    /// Running out of descriptors is logged once per episode.
    starved: Mutex<log::Episode>,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        AcceptErrors {
            retry_nanos: AtomicU64::new(DEFAULT_ACCEPT_RETRY.as_nanos() as u64),
            starved: Mutex::new(log::Episode::default()),
        }
    }
}

impl AcceptErrors {
    /// Sets the pause when out of resources.
    pub fn set_retry(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.retry_nanos.store(nanos, Ordering::Relaxed);
    }

    /// A connection was accepted: an episode of starvation is over.
    pub fn on_accept(&self) {
        self.starved().end("accepting again");
    }

    /// Accepting failed with `error`: accept again after the pause it
    /// returns (`None`: at once), or give up with the error.
    pub fn on_error(&self, error: io::Error) -> Result<Option<Duration>, io::Error> {
        match AcceptError::of(&error) {
            AcceptError::Connection => Ok(None),
            AcceptError::Fatal => {
                log::accept_error(&error);
                Err(error)
            }
            AcceptError::Resources => {
                self.starved().begin("accepting paused: out of resources", &error);
                Ok(Some(Duration::from_nanos(self.retry_nanos.load(Ordering::Relaxed))))
            }
        }
    }

    fn starved(&self) -> std::sync::MutexGuard<'_, log::Episode> {
        self.starved.lock().unwrap_or_else(|p| p.into_inner())
    }
}
