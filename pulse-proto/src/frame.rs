//! The wire format v1: frames, their layout, encoding and decoding of one
//! frame body. [The protocol](crate::protocol) is the normative description.

use alloc::string::String;
use bytes::{Buf, BufMut, Bytes};

use crate::close::CloseCode;
use crate::error::ProtocolError;
use crate::status::{ServiceState, Status};
use crate::varint;

/// The four bytes each side sends first on a stream, and that start every
/// handshake datagram. The first byte is not ASCII, so text protocols (HTTP,
/// SMTP, SSH) and TLS (0x16) are told apart at the first byte.
pub const MAGIC: [u8; 4] = [0x9C, b'P', b'L', b'S'];
/// The lowest protocol version this implementation speaks.
pub const VERSION_MIN: u8 = 1;
/// The highest protocol version this implementation speaks. Version 2 adds
/// address validation on datagrams (RETRY), STATUS, and the trailing fields
/// of HELLO and WELCOME; a version-2 endpoint speaks version 1 on streams.
pub const VERSION_MAX: u8 = 2;
/// The lowest version a datagram server accepts: it validates addresses.
pub const DATAGRAM_VERSION_MIN: u8 = 2;
/// The longest CLOSE reason, in bytes of UTF-8.
pub const MAX_REASON_LEN: usize = 123;
/// The longest frame header: a type byte and an eight-byte varint.
pub const MAX_HEADER_LEN: usize = 9;

/// Frame type bytes.
pub mod frame_type {
    /// Client's handshake: versions and requested timings.
    pub const HELLO: u8 = 0x01;
    /// Server's handshake answer: agreed timings and ping policy.
    pub const WELCOME: u8 = 0x02;
    /// Heartbeat request.
    pub const PING: u8 = 0x03;
    /// Heartbeat answer.
    pub const PONG: u8 = 0x04;
    /// Application message.
    pub const DATA: u8 = 0x05;
    /// End of session.
    pub const CLOSE: u8 = 0x06;
    /// A datagram server's stateless answer to a HELLO without a cookie.
    pub const RETRY: u8 = 0x07;
    /// A service's report of its own state (version 2).
    pub const STATUS: u8 = 0x08;
    /// Types from here up are extensions: skipped when unknown.
    pub const FIRST_EXTENSION: u8 = 0x80;
    /// A client's request for new timings in-session, and the server's
    /// answer (version 2). An extension type: a peer that does not know it
    /// skips it, and the handshake's values stay.
    pub const RETIME: u8 = 0x80;
}

/// The longest address-validation cookie.
pub const MAX_COOKIE_LEN: usize = 32;

/// A datagram server's address-validation cookie: opaque to the client,
/// which echoes it in its HELLO.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Cookie {
    len: u8,
    bytes: [u8; MAX_COOKIE_LEN],
}

impl Cookie {
    /// A cookie of these bytes; `None` if empty or longer than
    /// [`MAX_COOKIE_LEN`].
    pub fn new(bytes: &[u8]) -> Option<Cookie> {
        if bytes.is_empty() || bytes.len() > MAX_COOKIE_LEN {
            return None;
        }
        let mut cookie = Cookie {
            len: bytes.len() as u8,
            bytes: [0; MAX_COOKIE_LEN],
        };
        cookie.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(cookie)
    }

    /// The cookie's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Cookie({:02x?})", self.as_slice())
    }
}

/// The client's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Lowest version offered.
    pub version_min: u8,
    /// Highest version offered.
    pub version_max: u8,
    /// Requested heartbeat interval, milliseconds.
    pub interval_ms: u32,
    /// Requested dead-peer timeout, milliseconds.
    pub dead_timeout_ms: u32,
    /// Largest frame length the client accepts.
    pub max_frame_len: u32,
    /// Which transmission of HELLO this is: 0 first, one more per
    /// retransmission (saturating); RETRY and WELCOME echo it, so every
    /// answer gives an RTT sample. 0 in a version-1 HELLO.
    pub attempt: u8,
    /// The cookie of a datagram server's RETRY, echoed.
    pub cookie: Option<Cookie>,
}

/// The server's handshake answer: what both sides now use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// The version chosen.
    pub version: u8,
    /// Agreed heartbeat interval, milliseconds.
    pub interval_ms: u32,
    /// Agreed dead-peer timeout, milliseconds.
    pub dead_timeout_ms: u32,
    /// Largest frame length the server accepts.
    pub max_frame_len: u32,
    /// Ping policy: the shortest spacing between PINGs either side sends.
    pub min_ping_spacing_ms: u32,
    /// Ping policy: strikes tolerated before closing with "too many pings".
    pub ping_strikes: u8,
    /// The version-2 fields; `None` in a version-1 WELCOME.
    pub ext: Option<WelcomeExt>,
}

/// The fields a version-2 WELCOME adds: the HELLO it answers, and the
/// server's bounds, so a client can tell why its request was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WelcomeExt {
    /// The `attempt` of the HELLO this answers.
    pub attempt: u8,
    /// The shortest interval the server agrees to, milliseconds.
    pub min_interval_ms: u32,
    /// The longest interval the server agrees to, milliseconds.
    pub max_interval_ms: u32,
    /// The longest dead-peer timeout the server agrees to, milliseconds.
    pub max_dead_timeout_ms: u32,
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// Heartbeat request.
    Ping {
        /// Sender's id; the PONG echoes it.
        id: u32,
    },
    /// Heartbeat answer.
    Pong {
        /// The id of the PING answered.
        id: u32,
        /// Microseconds the responder held the PING before answering.
        hold_us: u32,
    },
    /// Application message.
    Data {
        /// Application's message type or route.
        tag: u16,
        /// The message; a slice of the input where the input allowed.
        payload: Bytes,
    },
    /// End of session.
    Close {
        /// Why.
        code: CloseCode,
        /// Human-readable detail, at most [`MAX_REASON_LEN`] bytes.
        reason: String,
    },
    /// A datagram server's answer to a HELLO without a valid cookie: send
    /// HELLO again with this cookie.
    Retry {
        /// The `attempt` of the HELLO this answers.
        attempt: u8,
        /// The cookie to echo.
        cookie: Cookie,
    },
    /// The sender's report of its own state.
    Status(Status),
    /// From a client: the timings it asks for now. From a server: the
    /// timings agreed in answer (clamped as in the handshake, or unchanged
    /// if it refuses).
    Retime {
        /// The request's number; the answer carries the same.
        id: u16,
        /// Heartbeat interval, milliseconds.
        interval_ms: u32,
        /// Dead-peer timeout, milliseconds.
        dead_timeout_ms: u32,
    },
    /// A frame of an extension type this implementation skips.
    Extension {
        /// Its type byte.
        frame_type: u8,
    },
}

const HELLO_LEN: usize = 14;
const WELCOME_LEN: usize = 18;
const WELCOME_EXT_LEN: usize = 13;
const STATUS_LEN: usize = 2;
const RETIME_LEN: usize = 10;
const PING_LEN: usize = 4;
const PONG_LEN: usize = 8;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The frame type byte.
    pub frame_type: u8,
    /// The body length.
    pub body_len: usize,
    /// Bytes the header itself took.
    pub header_len: usize,
}

/// Parses a header from the start of `input`, checking the declared length
/// against `max_len` before anything else. `Ok(None)`: not enough bytes yet.
pub fn parse_header(input: &[u8], max_len: u32) -> Result<Option<Header>, ProtocolError> {
    let Some((&frame_type, rest)) = input.split_first() else {
        return Ok(None);
    };
    check_type(frame_type)?;
    match varint::read(rest) {
        varint::Read::Incomplete(_) => Ok(None),
        varint::Read::Value(len, used) => {
            if len > u64::from(max_len) {
                return Err(ProtocolError::FrameTooLarge { len, max: max_len });
            }
            Ok(Some(Header {
                frame_type,
                body_len: len as usize,
                header_len: 1 + used,
            }))
        }
    }
}

fn check_type(frame_type: u8) -> Result<(), ProtocolError> {
    match frame_type {
        frame_type::HELLO..=frame_type::STATUS => Ok(()),
        t if t >= frame_type::FIRST_EXTENSION && t != MAGIC[0] => Ok(()),
        t => Err(ProtocolError::UnknownFrameType(t)),
    }
}

fn malformed(frame_type: u8, what: &'static str) -> ProtocolError {
    ProtocolError::Malformed { frame_type, what }
}

impl Frame {
    /// Decodes a body of the given type. DATA payloads are slices of `body`.
    pub fn decode_body(frame_type: u8, mut body: Bytes) -> Result<Frame, ProtocolError> {
        let exact = |len: usize| {
            if body.len() == len {
                Ok(())
            } else {
                Err(malformed(frame_type, "wrong body length"))
            }
        };
        // HELLO and WELCOME may grow in later versions: extra bytes are ignored.
        let at_least = |len: usize| {
            if body.len() >= len {
                Ok(())
            } else {
                Err(malformed(frame_type, "body too short"))
            }
        };
        Ok(match frame_type {
            frame_type::HELLO => {
                at_least(HELLO_LEN)?;
                let mut hello = Hello {
                    version_min: body.get_u8(),
                    version_max: body.get_u8(),
                    interval_ms: body.get_u32(),
                    dead_timeout_ms: body.get_u32(),
                    max_frame_len: body.get_u32(),
                    attempt: 0,
                    cookie: None,
                };
                if body.has_remaining() {
                    hello.attempt = body.get_u8();
                }
                if body.has_remaining() {
                    let len = usize::from(body.get_u8());
                    if len > 0 {
                        if body.remaining() < len {
                            return Err(malformed(frame_type, "cookie longer than the body"));
                        }
                        hello.cookie = Some(
                            Cookie::new(&body[..len]).ok_or(malformed(frame_type, "cookie longer than 32 bytes"))?,
                        );
                    }
                }
                Frame::Hello(hello)
            }
            frame_type::WELCOME => {
                at_least(WELCOME_LEN)?;
                let mut welcome = Welcome {
                    version: body.get_u8(),
                    interval_ms: body.get_u32(),
                    dead_timeout_ms: body.get_u32(),
                    max_frame_len: body.get_u32(),
                    min_ping_spacing_ms: body.get_u32(),
                    ping_strikes: body.get_u8(),
                    ext: None,
                };
                if body.remaining() >= WELCOME_EXT_LEN {
                    welcome.ext = Some(WelcomeExt {
                        attempt: body.get_u8(),
                        min_interval_ms: body.get_u32(),
                        max_interval_ms: body.get_u32(),
                        max_dead_timeout_ms: body.get_u32(),
                    });
                }
                Frame::Welcome(welcome)
            }
            frame_type::PING => {
                exact(PING_LEN)?;
                Frame::Ping { id: body.get_u32() }
            }
            frame_type::PONG => {
                exact(PONG_LEN)?;
                Frame::Pong {
                    id: body.get_u32(),
                    hold_us: body.get_u32(),
                }
            }
            frame_type::DATA => {
                at_least(2)?;
                let tag = body.get_u16();
                Frame::Data { tag, payload: body }
            }
            frame_type::CLOSE => {
                at_least(2)?;
                let code = CloseCode::from_wire(body.get_u16());
                if body.len() > MAX_REASON_LEN {
                    return Err(malformed(frame_type, "reason longer than 123 bytes"));
                }
                let reason = core::str::from_utf8(&body).map_err(|_| malformed(frame_type, "reason is not UTF-8"))?;
                Frame::Close {
                    code,
                    reason: String::from(reason),
                }
            }
            frame_type::RETRY => {
                at_least(2)?;
                let attempt = body.get_u8();
                let cookie = Cookie::new(&body).ok_or(malformed(frame_type, "cookie longer than 32 bytes"))?;
                Frame::Retry { attempt, cookie }
            }
            frame_type::STATUS => {
                exact(STATUS_LEN)?;
                let state = ServiceState::from_wire(body.get_u8());
                Frame::Status(Status::new(state, body.get_u8()))
            }
            frame_type::RETIME => {
                exact(RETIME_LEN)?;
                Frame::Retime {
                    id: body.get_u16(),
                    interval_ms: body.get_u32(),
                    dead_timeout_ms: body.get_u32(),
                }
            }
            t => {
                check_type(t)?;
                Frame::Extension { frame_type: t }
            }
        })
    }

    /// The frame's type byte.
    pub fn frame_type(&self) -> u8 {
        match self {
            Frame::Hello(_) => frame_type::HELLO,
            Frame::Welcome(_) => frame_type::WELCOME,
            Frame::Ping { .. } => frame_type::PING,
            Frame::Pong { .. } => frame_type::PONG,
            Frame::Data { .. } => frame_type::DATA,
            Frame::Close { .. } => frame_type::CLOSE,
            Frame::Retry { .. } => frame_type::RETRY,
            Frame::Status(_) => frame_type::STATUS,
            Frame::Retime { .. } => frame_type::RETIME,
            Frame::Extension { frame_type } => *frame_type,
        }
    }

    fn body_len(&self) -> usize {
        match self {
            Frame::Hello(h) => HELLO_LEN + 2 + h.cookie.map_or(0, |c| c.as_slice().len()),
            Frame::Welcome(w) => WELCOME_LEN + w.ext.map_or(0, |_| WELCOME_EXT_LEN),
            Frame::Ping { .. } => PING_LEN,
            Frame::Pong { .. } => PONG_LEN,
            Frame::Data { payload, .. } => 2 + payload.len(),
            // The length of what `encode` writes: the reason cut on a
            // character boundary, not merely at the byte limit.
            Frame::Close { reason, .. } => 2 + truncate_reason(reason).len(),
            Frame::Retry { cookie, .. } => 1 + cookie.as_slice().len(),
            Frame::Status(_) => STATUS_LEN,
            Frame::Retime { .. } => RETIME_LEN,
            Frame::Extension { .. } => 0,
        }
    }

    /// Bytes the whole frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        let body = self.body_len();
        1 + varint::encoded_len(body as u64) + body
    }

    /// Appends the frame. A CLOSE reason longer than [`MAX_REASON_LEN`] is
    /// cut at the last character boundary that fits.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u8(self.frame_type());
        varint::encode(self.body_len() as u64, out);
        match self {
            Frame::Hello(h) => {
                out.put_u8(h.version_min);
                out.put_u8(h.version_max);
                out.put_u32(h.interval_ms);
                out.put_u32(h.dead_timeout_ms);
                out.put_u32(h.max_frame_len);
                out.put_u8(h.attempt);
                let cookie = h.cookie.as_ref().map_or(&[][..], Cookie::as_slice);
                out.put_u8(cookie.len() as u8);
                out.put_slice(cookie);
            }
            Frame::Welcome(w) => {
                out.put_u8(w.version);
                out.put_u32(w.interval_ms);
                out.put_u32(w.dead_timeout_ms);
                out.put_u32(w.max_frame_len);
                out.put_u32(w.min_ping_spacing_ms);
                out.put_u8(w.ping_strikes);
                if let Some(ext) = &w.ext {
                    out.put_u8(ext.attempt);
                    out.put_u32(ext.min_interval_ms);
                    out.put_u32(ext.max_interval_ms);
                    out.put_u32(ext.max_dead_timeout_ms);
                }
            }
            Frame::Ping { id } => out.put_u32(*id),
            Frame::Pong { id, hold_us } => {
                out.put_u32(*id);
                out.put_u32(*hold_us);
            }
            Frame::Data { tag, payload } => {
                out.put_u16(*tag);
                out.put_slice(payload);
            }
            Frame::Close { code, reason } => {
                out.put_u16(code.get());
                out.put_slice(truncate_reason(reason).as_bytes());
            }
            Frame::Retry { attempt, cookie } => {
                out.put_u8(*attempt);
                out.put_slice(cookie.as_slice());
            }
            Frame::Status(status) => {
                out.put_u8(status.state().to_wire());
                out.put_u8(status.weight());
            }
            Frame::Retime {
                id,
                interval_ms,
                dead_timeout_ms,
            } => {
                out.put_u16(*id);
                out.put_u32(*interval_ms);
                out.put_u32(*dead_timeout_ms);
            }
            Frame::Extension { .. } => {}
        }
    }
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes on a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Appends a DATA header (type, length, tag) for a payload of `payload_len`.
pub fn encode_data_header(tag: u16, payload_len: usize, out: &mut impl BufMut) {
    out.put_u8(frame_type::DATA);
    varint::encode(2 + payload_len as u64, out);
    out.put_u16(tag);
}

/// Bytes of framing a DATA frame adds to a payload of `payload_len`.
pub fn data_overhead(payload_len: usize) -> usize {
    1 + varint::encoded_len(2 + payload_len as u64) + 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn round_trip(frame: Frame) {
        let mut buf = Vec::new();
        frame.encode(&mut buf);
        assert_eq!(buf.len(), frame.encoded_len());
        let header = parse_header(&buf, u32::MAX).unwrap().unwrap();
        assert_eq!(header.header_len + header.body_len, buf.len());
        let body = Bytes::copy_from_slice(&buf[header.header_len..]);
        assert_eq!(Frame::decode_body(header.frame_type, body).unwrap(), frame);
    }

    #[test]
    fn every_frame_type_round_trips() {
        let hello = Hello {
            version_min: 1,
            version_max: 3,
            interval_ms: 10_000,
            dead_timeout_ms: 30_000,
            max_frame_len: 1 << 20,
            attempt: 0,
            cookie: None,
        };
        round_trip(Frame::Hello(hello));
        round_trip(Frame::Hello(Hello {
            attempt: 3,
            cookie: Cookie::new(&[7; 12]),
            ..hello
        }));
        let welcome = Welcome {
            version: 1,
            interval_ms: 5_000,
            dead_timeout_ms: 15_000,
            max_frame_len: 4096,
            min_ping_spacing_ms: 500,
            ping_strikes: 2,
            ext: None,
        };
        round_trip(Frame::Welcome(welcome));
        round_trip(Frame::Welcome(Welcome {
            ext: Some(WelcomeExt {
                attempt: 2,
                min_interval_ms: 1_000,
                max_interval_ms: 300_000,
                max_dead_timeout_ms: 600_000,
            }),
            ..welcome
        }));
        round_trip(Frame::Retry {
            attempt: 1,
            cookie: Cookie::new(b"twelve bytes").unwrap(),
        });
        round_trip(Frame::Status(Status::new(ServiceState::Draining, 30)));
        round_trip(Frame::Retime {
            id: 3,
            interval_ms: 240_000,
            dead_timeout_ms: 720_000,
        });
        round_trip(Frame::Ping { id: 0xDEAD_BEEF });
        round_trip(Frame::Pong { id: 7, hold_us: 1234 });
        round_trip(Frame::Data {
            tag: 0xFFFF,
            payload: Bytes::from_static(b"hello"),
        });
        round_trip(Frame::Data {
            tag: 0,
            payload: Bytes::from(alloc::vec![7u8; 70_000]),
        });
        round_trip(Frame::Close {
            code: CloseCode::GOING_AWAY,
            reason: String::from("bye ✓"),
        });
    }

    #[test]
    fn an_idle_round_trip_costs_sixteen_bytes() {
        let ping = Frame::Ping { id: u32::MAX }.encoded_len();
        let pong = Frame::Pong {
            id: u32::MAX,
            hold_us: u32::MAX,
        }
        .encoded_len();
        assert_eq!((ping, pong), (6, 10));
        assert!(ping + pong <= 24);
    }

    #[test]
    fn a_long_reason_is_cut_on_a_character_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let mut buf = Vec::new();
        Frame::Close {
            code: CloseCode::NORMAL,
            reason,
        }
        .encode(&mut buf);
        let header = parse_header(&buf, u32::MAX).unwrap().unwrap();
        let frame = Frame::decode_body(header.frame_type, Bytes::copy_from_slice(&buf[header.header_len..])).unwrap();
        let Frame::Close { reason, .. } = frame else {
            panic!("not a close")
        };
        assert_eq!(reason.len(), 122);
        // The length field says what was written.
        assert_eq!(header.header_len + header.body_len, buf.len());
    }

    #[test]
    fn a_version_one_hello_and_welcome_still_decode() {
        let mut v1 = alloc::vec![frame_type::HELLO, 14, 1, 1];
        v1.extend_from_slice(&[0, 0, 3, 0xE8, 0, 0, 0x0B, 0xB8, 0, 0, 0x10, 0]);
        let header = parse_header(&v1, 256).unwrap().unwrap();
        let Frame::Hello(hello) = Frame::decode_body(header.frame_type, Bytes::copy_from_slice(&v1[2..])).unwrap()
        else {
            panic!()
        };
        assert_eq!((hello.interval_ms, hello.attempt, hello.cookie), (1000, 0, None));
    }

    #[test]
    fn reserved_types_are_errors_and_extensions_are_skipped() {
        assert_eq!(
            parse_header(&[0x00, 0x00], 100),
            Err(ProtocolError::UnknownFrameType(0))
        );
        assert_eq!(
            parse_header(&[0x7F, 0x00], 100),
            Err(ProtocolError::UnknownFrameType(0x7F))
        );
        assert_eq!(
            parse_header(&[MAGIC[0], 0x00], 100),
            Err(ProtocolError::UnknownFrameType(MAGIC[0]))
        );
        assert_eq!(
            Frame::decode_body(0xA0, Bytes::from_static(b"xyz")),
            Ok(Frame::Extension { frame_type: 0xA0 })
        );
    }

    #[test]
    fn an_oversized_length_is_rejected_from_the_header_alone() {
        let mut header = alloc::vec![frame_type::DATA];
        varint::encode(1_000_001, &mut header);
        assert_eq!(
            parse_header(&header, 1_000_000),
            Err(ProtocolError::FrameTooLarge {
                len: 1_000_001,
                max: 1_000_000
            })
        );
    }

    #[test]
    fn bodies_of_the_wrong_length_are_malformed() {
        assert!(matches!(
            Frame::decode_body(frame_type::PING, Bytes::from_static(&[1, 2, 3])),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Frame::decode_body(frame_type::PONG, Bytes::from_static(&[0; 9])),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Frame::decode_body(frame_type::DATA, Bytes::from_static(&[1])),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Frame::decode_body(frame_type::CLOSE, Bytes::from_static(&[0, 0, 0xFF])),
            Err(ProtocolError::Malformed { .. })
        ));
    }
}
