//! Close codes and who started a close.

use core::fmt;

/// Why a session ended: the 16-bit code carried by a CLOSE frame.
///
/// Codes `0x0000..=0x0FFF` are the protocol's; `0x1000..=0xFFFF` belong to
/// applications. [`CloseCode::LOST`] is never sent: it reports a transport
/// that ended without a CLOSE.
///
/// An application closes with [`CloseCode::NORMAL`], [`CloseCode::GOING_AWAY`]
/// or a code of its own from [`CloseCode::application`]; the codes that
/// describe a peer's misbehaviour or a verdict are the session's alone to
/// send, and `Session::close` refuses them ([`CloseCode::is_sendable`]).
///
/// # Examples
///
/// ```
/// use pulse_proto::CloseCode;
///
/// assert_eq!(CloseCode::TOO_MANY_PINGS.to_string(), "too many pings (0x0003)");
/// let mine = CloseCode::application(7).unwrap();
/// assert!(mine.is_application());
/// assert_eq!(mine.to_string(), "application code 0x1007");
/// assert!(!CloseCode::TIMED_OUT.is_sendable()); // the session's verdict, not the application's
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// The application is done with the session.
    pub const NORMAL: CloseCode = CloseCode(0x0000);
    /// The endpoint is shutting down or restarting.
    pub const GOING_AWAY: CloseCode = CloseCode(0x0001);
    /// The peer sent bytes that break the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(0x0002);
    /// The peer sent PINGs faster than the ping policy it was told allows.
    pub const TOO_MANY_PINGS: CloseCode = CloseCode(0x0003);
    /// Nothing was heard from the peer for the dead-peer timeout.
    pub const TIMED_OUT: CloseCode = CloseCode(0x0004);
    /// The peer sent a frame longer than the maximum it was told.
    pub const FRAME_TOO_LARGE: CloseCode = CloseCode(0x0005);
    /// No protocol version is spoken by both sides.
    pub const UNSUPPORTED_VERSION: CloseCode = CloseCode(0x0006);
    /// The handshake did not complete in time.
    pub const HANDSHAKE_TIMEOUT: CloseCode = CloseCode(0x0007);
    /// The peer read our output too slowly; the queued output hit its limit.
    pub const SLOW_READER: CloseCode = CloseCode(0x0008);
    /// The endpoint is at its connection limit and refused this one.
    pub const REFUSED: CloseCode = CloseCode(0x0009);
    /// Local only, never on the wire: the transport ended without a CLOSE.
    pub const LOST: CloseCode = CloseCode(0x0FFF);

    /// The first code applications may use.
    pub const APPLICATION_BASE: u16 = 0x1000;

    /// Application code `n`, i.e. `0x1000 + n`; `None` past `0xEFFF`.
    pub fn application(n: u16) -> Option<CloseCode> {
        n.checked_add(Self::APPLICATION_BASE).map(CloseCode)
    }

    /// Whether the code is in the application range.
    pub fn is_application(self) -> bool {
        self.0 >= Self::APPLICATION_BASE
    }

    /// The code as it is carried on the wire (any value, for decoding and
    /// inspecting; [`CloseCode::is_sendable`] says whether a local close
    /// may use it).
    pub const fn from_wire(code: u16) -> CloseCode {
        CloseCode(code)
    }

    /// The 16-bit value on the wire.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// Whether a local close may carry this code: normal, going away, slow
    /// reader and refused (a driver's own policies), and application codes.
    /// The rest report a peer's misbehaviour or a verdict, which only the
    /// session decides, or are reserved.
    pub fn is_sendable(self) -> bool {
        self.is_application()
            || matches!(
                self,
                Self::NORMAL | Self::GOING_AWAY | Self::SLOW_READER | Self::REFUSED
            )
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NORMAL => "normal",
            Self::GOING_AWAY => "going away",
            Self::PROTOCOL_ERROR => "protocol error",
            Self::TOO_MANY_PINGS => "too many pings",
            Self::TIMED_OUT => "timed out",
            Self::FRAME_TOO_LARGE => "frame too large",
            Self::UNSUPPORTED_VERSION => "unsupported version",
            Self::HANDSHAKE_TIMEOUT => "handshake timeout",
            Self::SLOW_READER => "slow reader",
            Self::REFUSED => "refused",
            Self::LOST => "connection lost",
            _ => return None,
        })
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:04x})", self.0),
            None if self.is_application() => write!(f, "application code 0x{:04x}", self.0),
            None => write!(f, "reserved code 0x{:04x}", self.0),
        }
    }
}

/// Which side started the close.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Initiator {
    /// This endpoint: the application closed, or the session gave a verdict.
    Local,
    /// The remote endpoint, by CLOSE or by ending the transport.
    Peer,
}
