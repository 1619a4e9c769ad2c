//! The errors of a pulse connection, the same from every adapter.

use std::fmt;
use std::io;

use pulse_proto::{CloseError, Closed, ConfigError};

/// What went wrong.
///
/// # Examples
///
/// ```
/// use pulse_driver::Error;
///
/// # fn report(result: Result<(), Error>) {
/// match result {
///     Ok(()) => println!("connected"),
///     Err(Error::Closed(closed)) => println!("the server refused: {closed}"),
///     Err(Error::Io(e)) => println!("TCP failed: {e}"),
///     Err(e) => println!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed.
    Io(io::Error),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The connection is closed (or the handshake failed): how it ended.
    Closed(Closed),
    /// A close with a code only the protocol may send.
    Close(CloseError),
    /// The message is larger than the peer accepts in one frame.
    TooLarge {
        /// The payload length.
        len: usize,
        /// The largest payload the peer accepts.
        max: usize,
    },
    /// A reconnecting client between connections already keeps as many
    /// messages for the next as it may ([`crate::ClientOptions::max_queued`]):
    /// this one was not queued.
    QueueFull {
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Config(e) => e.fmt(f),
            Error::Close(e) => e.fmt(f),
            Error::Closed(c) => {
                write!(f, "connection closed: {} ({:?} initiated)", c.code, c.initiator)?;
                if !c.reason.is_empty() {
                    write!(f, ": {}", c.reason)?;
                }
                Ok(())
            }
            Error::TooLarge { len, max } => write!(f, "message of {len} bytes exceeds the peer's maximum of {max}"),
            Error::QueueFull { limit } => write!(f, "{limit} messages already wait for the next connection"),
        }
    }
}

impl Error {
    /// Whether trying again cannot help: an invalid configuration, or an
    /// address that is malformed (not one that failed to resolve). The
    /// reconnecting client ends on these, and retries everything else.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pulse_proto::Config;
    ///
    /// let bad = Config::default().with_interval(Duration::ZERO).validate().unwrap_err();
    /// assert!(pulse_driver::Error::Config(bad).is_permanent());
    /// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// assert!(!pulse_driver::Error::Io(refused).is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Config(_) => true,
            Error::Io(e) => e.kind() == io::ErrorKind::InvalidInput,
            _ => false,
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Config(e) => Some(e),
            Error::Close(e) => Some(e),
            Error::Closed(c) => Some(c),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<CloseError> for Error {
    fn from(e: CloseError) -> Self {
        Error::Close(e)
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
