//! A datagram server's front door: what to do with a datagram from an
//! address that has no session yet, without keeping any state for it.
//!
//! Anyone can put any source address on a UDP datagram. So a server does
//! not open a session for a HELLO until the address has proven it receives
//! what is sent to it: the first HELLO gets a stateless RETRY carrying a
//! cookie (a MAC of the address and the time, under a secret key), and only
//! a HELLO echoing a valid cookie opens a session — the manner of QUIC's
//! Retry and DTLS's HelloVerifyRequest. An unproven address is never sent
//! more than three times the bytes it sent (`docs/PROTOCOL.md` §9.1).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};

use siphasher::sip::SipHasher24;

use crate::close::CloseCode;
use crate::config::{Config, HANDSHAKE_FRAME_LEN};
use crate::decoder::next_datagram_frame;
use crate::error::{ConfigError, ProtocolError};
use crate::frame::{truncate_reason, Cookie, Frame, MAGIC};
use crate::handshake;
use crate::time::Instant;

/// Bytes of a cookie: when it was made (4) and its MAC (8).
const COOKIE_LEN: usize = 12;
/// The most an unproven address is sent, as a multiple of what it sent.
pub const AMPLIFICATION_LIMIT: usize = 3;

/// What a datagram server does with a datagram from an address that has
/// no session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Nothing: not a pulse handshake, or no answer fits the limit.
    Drop,
    /// Send the reply written into the caller's buffer (a RETRY, or a CLOSE
    /// refusing the peer), and keep nothing.
    Reply,
    /// The address is proven: open a server session now and hand it this
    /// datagram with `Session::handle_datagram`.
    Open,
}

/// The stateless front of a datagram server: one per listening socket.
///
/// # Examples
///
/// ```
/// use pulse_proto::{Admission, Config, Gate, Instant, Role, Session, Transport};
///
/// let config = Config::new(Transport::Datagram);
/// let gate = Gate::new(config.clone(), [7; 16]).unwrap();
/// let mut client = Session::new(config.clone(), Role::Client, Instant::ZERO, 1).unwrap();
/// let from = "127.0.0.2:5000".parse().unwrap();
/// let mut reply = Vec::new();
///
/// // The first HELLO gets a RETRY; nothing is kept for the address.
/// let hello = client.poll_transmit(Instant::ZERO).unwrap().to_vec();
/// client.advance_transmit(hello.len());
/// assert_eq!(gate.admit(Instant::ZERO, from, &hello, &mut reply), Admission::Reply);
/// client.handle_datagram(Instant::ZERO, &reply[..]);
///
/// // The HELLO that echoes the cookie opens a session.
/// let hello = client.poll_transmit(Instant::ZERO).unwrap().to_vec();
/// assert_eq!(gate.admit(Instant::ZERO, from, &hello, &mut reply), Admission::Open);
/// let mut server = Session::new(config, Role::Server, Instant::ZERO, 2).unwrap();
/// server.handle_datagram(Instant::ZERO, &hello[..]);
/// assert!(server.negotiated().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct Gate {
    config: Arc<Config>,
    key: (u64, u64),
}

impl Gate {
    /// A gate answering for sessions of `config`, keyed by `secret`: 16
    /// random bytes, kept private (whoever knows them can forge cookies).
    pub fn new(config: impl Into<Arc<Config>>, secret: [u8; 16]) -> Result<Gate, ConfigError> {
        let config = config.into();
        config.validate()?;
        let (a, b) = secret.split_at(8);
        let word = |half: &[u8]| u64::from_le_bytes(half.try_into().expect("eight bytes"));
        Ok(Gate {
            key: (word(a), word(b)),
            config,
        })
    }

    /// Judges `datagram` from `from`, which has no session; a reply, if
    /// any, is written into `reply` (cleared first).
    pub fn admit(&self, now: Instant, from: SocketAddr, datagram: &[u8], reply: &mut Vec<u8>) -> Admission {
        reply.clear();
        let Some(mut body) = datagram.strip_prefix(&MAGIC[..]) else {
            return Admission::Drop;
        };
        let Ok(Some(Frame::Hello(hello))) = next_datagram_frame(&mut body, HANDSHAKE_FRAME_LEN) else {
            return Admission::Drop;
        };
        if let Err(error) = handshake::answer(&self.config, &hello) {
            return self.refuse_with(datagram.len(), error.close_code(), &refusal_reason(&error), reply);
        }
        if hello
            .cookie
            .is_some_and(|cookie| self.is_valid(now, from, cookie.as_slice()))
        {
            return Admission::Open;
        }
        let cookie = self.cookie(now, from);
        let retry = Frame::Retry {
            attempt: hello.attempt,
            cookie: Cookie::new(&cookie).expect("a cookie fits"),
        };
        self.reply_within_limit(datagram.len(), &retry, reply)
    }

    /// Turns away a proven address's HELLO with `code` (a driver at its
    /// connection limit uses [`CloseCode::REFUSED`]), statelessly and
    /// within the amplification limit.
    pub fn refuse(&self, datagram: &[u8], code: CloseCode, reason: &str, reply: &mut Vec<u8>) -> Admission {
        reply.clear();
        if !datagram.starts_with(&MAGIC) {
            return Admission::Drop;
        }
        self.refuse_with(datagram.len(), code, reason, reply)
    }

    fn refuse_with(&self, received: usize, code: CloseCode, reason: &str, reply: &mut Vec<u8>) -> Admission {
        // The reason is cut to what the limit leaves room for.
        let room = (AMPLIFICATION_LIMIT * received).saturating_sub(MAGIC.len() + 2 + 2);
        let mut end = truncate_reason(reason).len().min(room);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let close = Frame::Close {
            code,
            reason: reason[..end].into(),
        };
        self.reply_within_limit(received, &close, reply)
    }

    fn reply_within_limit(&self, received: usize, frame: &Frame, reply: &mut Vec<u8>) -> Admission {
        if MAGIC.len() + frame.encoded_len() > AMPLIFICATION_LIMIT * received {
            return Admission::Drop;
        }
        reply.extend_from_slice(&MAGIC);
        frame.encode(reply);
        Admission::Reply
    }

    fn cookie(&self, now: Instant, from: SocketAddr) -> [u8; COOKIE_LEN] {
        let issued = seconds(now);
        let mut cookie = [0; COOKIE_LEN];
        cookie[..4].copy_from_slice(&issued.to_be_bytes());
        cookie[4..].copy_from_slice(&self.mac(issued, from).to_be_bytes());
        cookie
    }

    fn is_valid(&self, now: Instant, from: SocketAddr, cookie: &[u8]) -> bool {
        let Ok(cookie) = <[u8; COOKIE_LEN]>::try_from(cookie) else {
            return false;
        };
        let issued = u32::from_be_bytes(cookie[..4].try_into().expect("four bytes"));
        let mac = u64::from_be_bytes(cookie[4..].try_into().expect("eight bytes"));
        let age = u64::from(seconds(now)).checked_sub(u64::from(issued));
        age.is_some_and(|age| age <= self.config.cookie_lifetime.as_secs()) && mac == self.mac(issued, from)
    }

    fn mac(&self, issued: u32, from: SocketAddr) -> u64 {
        let mut mac = SipHasher24::new_with_keys(self.key.0, self.key.1);
        mac.write(&issued.to_be_bytes());
        match from.ip() {
            IpAddr::V4(ip) => mac.write(&ip.octets()),
            IpAddr::V6(ip) => mac.write(&ip.octets()),
        }
        mac.write(&from.port().to_be_bytes());
        mac.finish()
    }
}

fn seconds(now: Instant) -> u32 {
    (now.as_nanos() / 1_000_000_000) as u32
}

fn refusal_reason(error: &ProtocolError) -> alloc::string::String {
    match error {
        ProtocolError::UnsupportedVersion { max, .. } if *max < crate::frame::DATAGRAM_VERSION_MIN => {
            "datagram servers need version 2 (address validation)".into()
        }
        other => alloc::string::ToString::to_string(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;
    use crate::frame::Hello;
    use core::time::Duration;

    fn gate() -> Gate {
        Gate::new(Config::new(Transport::Datagram), [1; 16]).unwrap()
    }

    fn hello_datagram(version_max: u8, cookie: Option<&[u8]>) -> Vec<u8> {
        let mut d = MAGIC.to_vec();
        Frame::Hello(Hello {
            version_min: 1,
            version_max,
            interval_ms: 10_000,
            dead_timeout_ms: 30_000,
            max_frame_len: 4096,
            attempt: 0,
            cookie: cookie.and_then(Cookie::new),
        })
        .encode(&mut d);
        d
    }

    fn retry_cookie(reply: &[u8]) -> Vec<u8> {
        let mut body = &reply[MAGIC.len()..];
        match next_datagram_frame(&mut body, 256) {
            Ok(Some(Frame::Retry { cookie, .. })) => cookie.as_slice().to_vec(),
            other => panic!("not a RETRY: {other:?}"),
        }
    }

    const FROM: &str = "127.0.0.9:4000";

    #[test]
    fn a_cookie_opens_only_for_its_address_and_only_while_fresh() {
        let gate = gate();
        let from: SocketAddr = FROM.parse().unwrap();
        let mut reply = Vec::new();
        let now = Instant::ZERO + Duration::from_secs(100);
        assert_eq!(
            gate.admit(now, from, &hello_datagram(2, None), &mut reply),
            Admission::Reply
        );
        let cookie = retry_cookie(&reply);
        let echo = hello_datagram(2, Some(&cookie));
        assert_eq!(gate.admit(now, from, &echo, &mut reply), Admission::Open);
        let elsewhere: SocketAddr = "127.0.0.9:4001".parse().unwrap();
        assert_eq!(gate.admit(now, elsewhere, &echo, &mut reply), Admission::Reply);
        let late = now + Duration::from_secs(21);
        assert_eq!(gate.admit(late, from, &echo, &mut reply), Admission::Reply);
        let other_key = Gate::new(Config::new(Transport::Datagram), [2; 16]).unwrap();
        assert_eq!(other_key.admit(now, from, &echo, &mut reply), Admission::Reply);
    }

    #[test]
    fn an_unproven_address_is_never_sent_more_than_three_times_what_it_sent() {
        let gate = gate();
        let from: SocketAddr = FROM.parse().unwrap();
        let mut reply = Vec::new();
        for hello in [
            hello_datagram(2, None),
            hello_datagram(1, None),
            hello_datagram(2, Some(&[9; 12])),
        ] {
            let admission = gate.admit(Instant::ZERO, from, &hello, &mut reply);
            assert_eq!(admission, Admission::Reply);
            assert!(
                reply.len() <= 3 * hello.len(),
                "{} bytes for {}",
                reply.len(),
                hello.len()
            );
        }
        assert_eq!(
            gate.admit(Instant::ZERO, from, b"GET / HTTP/1.1\r\n", &mut reply),
            Admission::Drop
        );
        assert_eq!(gate.admit(Instant::ZERO, from, &MAGIC, &mut reply), Admission::Drop);
        assert!(reply.is_empty());
    }

    #[test]
    fn an_old_client_gets_a_version_error_it_can_read() {
        let gate = gate();
        let mut reply = Vec::new();
        let admission = gate.admit(
            Instant::ZERO,
            FROM.parse().unwrap(),
            &hello_datagram(1, None),
            &mut reply,
        );
        assert_eq!(admission, Admission::Reply);
        let mut body = &reply[MAGIC.len()..];
        let Ok(Some(Frame::Close { code, reason })) = next_datagram_frame(&mut body, 256) else {
            panic!("not a CLOSE")
        };
        assert_eq!(code, CloseCode::UNSUPPORTED_VERSION);
        assert!(reason.contains("version 2"), "{reason}");
    }
}
