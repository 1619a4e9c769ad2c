//! The pulse handshake as a check: connect, send a HELLO, and pass on the
//! server's first frame. It is what confirms a pulse peer's lost session
//! (a TCP connect cannot: a frozen process's kernel still accepts
//! connections into its backlog, but only the live process answers a
//! HELLO).

use alloc::vec::Vec;

use pulse_proto::frame::Frame;
use pulse_proto::{Config, Instant, Role, Session, StreamDecoder, Transport};

use crate::event::CheckResult;

/// The most bytes of a server's first frame read: WELCOME and CLOSE are
/// far smaller, and a CLOSE's reason is bounded too.
const MAX_FIRST_FRAME: u32 = 1024;

/// A check that opens a pulse session over TCP and passes when the server
/// answers its HELLO with WELCOME. A CLOSE fails it (the process lives,
/// but takes no session: full, or going away — nothing a load balancer
/// can use), and so does anything else, or nothing within the timeout.
///
/// The probe's connection is dropped after the answer, so the server sees
/// a session that ended without CLOSE; it costs the server one short
/// session per probe. The monitor sends these only to confirm a lost
/// session of a pulse peer (or a suspicion of any target it is attached
/// to), not as a steady check.
///
/// # Examples
///
/// ```
/// use pulse_monitor::{Check, Config, Monitor, PulseCheck, TargetSpec};
/// use pulse_proto::{frame::MAGIC, Instant};
///
/// let check = PulseCheck::new();
/// assert!(check.request().starts_with(&MAGIC));
/// let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 1).unwrap();
/// let pool = monitor.add_pool();
/// let handshake = monitor.add_check(Check::Pulse(check));
/// monitor.add_target(Instant::ZERO, TargetSpec::peer(pool).confirm_with(handshake)).unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PulseCheck {
    hello: Vec<u8>,
}

impl Default for PulseCheck {
    fn default() -> Self {
        PulseCheck::new()
    }
}

impl PulseCheck {
    /// A check sending the HELLO of a stream client with pulse-proto's
    /// default configuration.
    pub fn new() -> PulseCheck {
        let mut hello = Vec::new();
        // A default configuration is valid by construction.
        if let Ok(mut session) = Session::new(Config::new(Transport::Stream), Role::Client, Instant::ZERO, 0) {
            // The magic and the HELLO: a few pieces at most.
            for _ in 0..8 {
                let Some(bytes) = session.poll_transmit(Instant::ZERO) else {
                    break;
                };
                let n = bytes.len();
                hello.extend_from_slice(bytes);
                session.advance_transmit(n);
            }
        }
        PulseCheck { hello }
    }

    /// The bytes sent once connected: the stream's magic and a HELLO.
    pub fn request(&self) -> &[u8] {
        &self.hello
    }

    /// The check's result from the response so far (all of it, from the
    /// first byte), or `None` while the first frame is incomplete.
    pub(crate) fn judge(&self, response: &[u8]) -> Option<CheckResult> {
        let mut decoder = StreamDecoder::new(MAX_FIRST_FRAME);
        let mut input = response;
        match decoder.decode(&mut input) {
            Ok(None) => None,
            Ok(Some(Frame::Welcome(_))) => Some(CheckResult::Passed(None)),
            Ok(Some(Frame::Close { .. })) => Some(CheckResult::Closed),
            Ok(Some(_)) | Err(_) => Some(CheckResult::BadResponse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_proto::CloseCode;

    /// What a pulse server answers `hello` with.
    fn server_answer(hello: &[u8]) -> Vec<u8> {
        let now = Instant::ZERO;
        let mut server = Session::new(Config::new(Transport::Stream), Role::Server, now, 1).unwrap();
        server.handle_input(now, hello);
        let mut answer = Vec::new();
        while let Some(bytes) = server.poll_transmit(now) {
            let n = bytes.len();
            answer.extend_from_slice(bytes);
            server.advance_transmit(n);
        }
        answer
    }

    #[test]
    fn a_servers_welcome_passes_whole_and_not_before() {
        let check = PulseCheck::new();
        let answer = server_answer(check.request());
        assert!(answer.len() > 8);
        for cut in 0..answer.len() {
            assert_eq!(check.judge(&answer[..cut]), None, "{cut} bytes");
        }
        assert_eq!(check.judge(&answer), Some(CheckResult::Passed(None)));
    }

    #[test]
    fn a_servers_close_fails_as_closed_and_anything_else_as_a_bad_response() {
        let check = PulseCheck::new();
        // A server that is full refuses with CLOSE before any WELCOME.
        let mut refused = pulse_proto::frame::MAGIC.to_vec();
        let close = Frame::Close {
            code: CloseCode::REFUSED,
            reason: "full".into(),
        };
        close.encode(&mut refused);
        assert_eq!(check.judge(&refused), Some(CheckResult::Closed));
        assert_eq!(check.judge(b"HTTP/1.1 200 OK\r\n\r\n"), Some(CheckResult::BadResponse));
        // Our own HELLO echoed back is no server's answer.
        assert_eq!(check.judge(check.request()), Some(CheckResult::BadResponse));
    }
}
