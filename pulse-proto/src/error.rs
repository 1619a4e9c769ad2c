//! Errors, split by blame: what the peer sent ([`ProtocolError`]) and what
//! the local application asked for ([`SendError`]).

use core::fmt;

use crate::close::CloseCode;

/// The peer broke the protocol. It arrives inside [`crate::Closed`], never
/// as an `Err` from `handle_*`: by then the session has already queued the
/// CLOSE with [`ProtocolError::close_code`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The first bytes were not the pulse magic: the peer is not a pulse
    /// endpoint (an HTTP client, a port scanner, the wrong port).
    BadMagic {
        /// The bytes received where the magic was expected.
        received: [u8; 4],
        /// How many of `received` had arrived.
        len: u8,
    },
    /// The peer speaks no version we do.
    UnsupportedVersion {
        /// The lowest version the peer offered.
        min: u8,
        /// The highest version the peer offered.
        max: u8,
    },
    /// A frame declared a body longer than the maximum we announced.
    FrameTooLarge {
        /// The length the frame declared.
        len: u64,
        /// Our maximum.
        max: u32,
    },
    /// A frame type from the reserved range (below `0x80`) that this version
    /// does not define.
    UnknownFrameType(u8),
    /// A frame whose body does not match its type's layout.
    Malformed {
        /// The frame type.
        frame_type: u8,
        /// What was wrong.
        what: &'static str,
    },
    /// A frame that is valid but not allowed at this point (say, DATA
    /// before the handshake, or a second HELLO on a stream).
    Unexpected {
        /// The frame type.
        frame_type: u8,
    },
    /// The handshake answer carried values no pulse server sends.
    BadNegotiation(&'static str),
    /// The peer pinged faster than the policy it was told, past the strikes.
    TooManyPings {
        /// Strikes collected when the session closed.
        strikes: u8,
    },
}

impl ProtocolError {
    /// The close code a session sends for this error.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::UnsupportedVersion { .. } => CloseCode::UNSUPPORTED_VERSION,
            Self::FrameTooLarge { .. } => CloseCode::FRAME_TOO_LARGE,
            Self::TooManyPings { .. } => CloseCode::TOO_MANY_PINGS,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic { received, len } => {
                write!(
                    f,
                    "not a pulse peer: first bytes were {:02x?}",
                    &received[..usize::from(*len)]
                )?;
                if received[..usize::from(*len)]
                    .iter()
                    .all(|b| b.is_ascii_graphic() || *b == b' ')
                {
                    write!(
                        f,
                        " ({:?}, text: an HTTP or other text client?)",
                        core::str::from_utf8(&received[..usize::from(*len)]).unwrap_or("")
                    )?;
                }
                Ok(())
            }
            Self::UnsupportedVersion { min, max } => {
                write!(
                    f,
                    "peer speaks protocol versions {min}..={max}, we speak {}..={}",
                    crate::frame::VERSION_MIN,
                    crate::frame::VERSION_MAX
                )
            }
            Self::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max}")
            }
            Self::UnknownFrameType(t) => write!(f, "unknown frame type 0x{t:02x}"),
            Self::Malformed { frame_type, what } => {
                write!(f, "malformed frame 0x{frame_type:02x}: {what}")
            }
            Self::Unexpected { frame_type } => {
                write!(f, "frame 0x{frame_type:02x} not allowed in this state")
            }
            Self::BadNegotiation(what) => write!(f, "bad handshake answer: {what}"),
            Self::TooManyPings { strikes } => write!(f, "peer pinged faster than its ping policy ({strikes} strikes)"),
        }
    }
}

/// Why [`crate::Session::send`] refused a message. The session is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The handshake has not completed; wait for [`crate::Event::Connected`].
    NotConnected,
    /// The session is closing or closed.
    Closed,
    /// The message is larger than the peer accepts in one frame.
    TooLarge {
        /// The payload length.
        len: usize,
        /// The largest payload the peer accepts.
        max: usize,
    },
    /// Accepting it would put more than `max` bytes in the output queue: the
    /// peer reads slower than the application sends. Nothing was queued; an
    /// [`crate::Event::SendReady`] follows once the queue has room again.
    QueueFull {
        /// Bytes queued now.
        queued: usize,
        /// The configured limit ([`crate::Config::max_queued_bytes`]).
        max: usize,
    },
    /// The peer speaks a protocol version without this frame (a STATUS to a
    /// version-1 peer).
    Unsupported {
        /// The version agreed with the peer.
        version: u8,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnected => f.write_str("handshake not complete"),
            Self::Closed => f.write_str("session is closing or closed"),
            Self::TooLarge { len, max } => write!(f, "payload of {len} bytes exceeds the peer's maximum of {max}"),
            Self::QueueFull { queued, max } => {
                write!(f, "output queue holds {queued} bytes, limit {max}")
            }
            Self::Unsupported { version } => {
                write!(f, "the peer speaks protocol version {version}, without this frame")
            }
        }
    }
}

/// Why [`crate::Session::close`] or [`crate::Session::abort`] refused: the
/// code is the protocol's to send (a verdict or a peer's misbehaviour), or
/// reserved. The session is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseError {
    /// The code that was refused.
    pub code: CloseCode,
}

impl fmt::Display for CloseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a code a local close may send: use normal, going away or an application code",
            self.code
        )
    }
}

/// A configuration that cannot work, found when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value outside its allowed range.
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// What it must satisfy.
        rule: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { field, rule } => write!(f, "invalid config: {field} must be {rule}"),
        }
    }
}

impl core::error::Error for ProtocolError {}
impl core::error::Error for SendError {}
impl core::error::Error for ConfigError {}
impl core::error::Error for CloseError {}
