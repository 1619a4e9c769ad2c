//! Negotiation: what a client asks, what a server agrees to. Pure
//! functions of the config and the frames, so each rule is testable alone.

use core::time::Duration;

use crate::config::{wire_ms, Config, MIN_FRAME_LEN, MIN_INTERVAL};
use crate::error::ProtocolError;
use crate::event::Event;
use crate::event::Negotiated;
use crate::frame::{frame_type, Hello, Welcome, VERSION_MAX, VERSION_MIN};
use crate::jitter::Jitter;
use crate::liveness::Liveness;
use crate::ping_policy::PingGuard;
use crate::session::{Handshake, Role, Session, State};
use crate::stats::bump;
use crate::time::Instant;

/// The client's HELLO for `config`.
pub(crate) fn hello(config: &Config) -> Hello {
    Hello {
        version_min: VERSION_MIN,
        version_max: VERSION_MAX,
        interval_ms: wire_ms(config.interval),
        dead_timeout_ms: wire_ms(config.dead_timeout),
        max_frame_len: config.max_frame_len,
    }
}

/// The server's answer: the highest common version, the interval clamped
/// into the server's range, the dead-peer timeout clamped between twice
/// that interval and the server's maximum, and the server's ping policy.
pub(crate) fn answer(config: &Config, hello: &Hello) -> Result<(Welcome, Agreed), ProtocolError> {
    let version = hello.version_max.min(VERSION_MAX);
    if version < hello.version_min.max(VERSION_MIN) {
        return Err(ProtocolError::UnsupportedVersion {
            min: hello.version_min,
            max: hello.version_max,
        });
    }
    if hello.max_frame_len < MIN_FRAME_LEN {
        return Err(ProtocolError::Malformed {
            frame_type: frame_type::HELLO,
            what: "maximum frame length below 256",
        });
    }
    let interval_ms = hello
        .interval_ms
        .clamp(wire_ms(config.min_interval), wire_ms(config.max_interval));
    let min_dead = interval_ms.saturating_mul(2);
    let dead_timeout_ms = hello
        .dead_timeout_ms
        .clamp(min_dead, wire_ms(config.max_dead_timeout).max(min_dead));
    let welcome = Welcome {
        version,
        interval_ms,
        dead_timeout_ms,
        max_frame_len: config.max_frame_len,
        min_ping_spacing_ms: wire_ms(config.min_ping_spacing),
        ping_strikes: config.ping_strikes,
    };
    Ok((
        welcome,
        Agreed {
            welcome,
            peer_max_frame_len: hello.max_frame_len,
        },
    ))
}

/// The client's check of the server's answer: values no pulse server sends
/// are a protocol error, not something to run with.
pub(crate) fn accept(welcome: &Welcome) -> Result<Agreed, ProtocolError> {
    if !(VERSION_MIN..=VERSION_MAX).contains(&welcome.version) {
        return Err(ProtocolError::UnsupportedVersion {
            min: welcome.version,
            max: welcome.version,
        });
    }
    let agreed = Agreed {
        welcome: *welcome,
        peer_max_frame_len: welcome.max_frame_len,
    };
    let n = agreed.negotiated();
    let bad = |what| Err(ProtocolError::BadNegotiation(what));
    if n.interval < MIN_INTERVAL {
        return bad("interval below 10 ms");
    }
    if n.dead_timeout < n.interval * 2 {
        return bad("dead-peer timeout below twice the interval");
    }
    if n.peer_max_frame_len < MIN_FRAME_LEN {
        return bad("maximum frame length below 256");
    }
    if n.min_ping_spacing > n.interval / 2 {
        return bad("minimum ping spacing above half the interval");
    }
    Ok(agreed)
}

/// The handshake's transitions. Every other transition is in `session.rs`.
impl Session {
    pub(crate) fn accept_hello(&mut self, now: Instant, hello: &Hello) -> Result<(), ProtocolError> {
        let (welcome, agreed) = answer(&self.config, hello)?;
        self.pending.welcome = true;
        if let Some(h) = self.handshake.as_mut() {
            (h.welcome, h.welcomed_at) = (Some(welcome), Some(now));
        }
        self.establish(now, agreed);
        Ok(())
    }

    pub(crate) fn accept_welcome(&mut self, now: Instant, welcome: &Welcome) -> Result<(), ProtocolError> {
        let agreed = accept(welcome)?;
        // Karn's rule: a retransmitted HELLO gives no RTT sample.
        if let Some(Handshake {
            hello_sent_at: Some(sent),
            retransmits: 0,
            ..
        }) = self.handshake.as_deref()
        {
            self.rtt.update(now - *sent, Duration::ZERO);
        }
        self.establish(now, agreed);
        // A client needs nothing of the handshake once established.
        self.handshake = None;
        Ok(())
    }

    fn establish(&mut self, now: Instant, agreed: Agreed) {
        let negotiated = agreed.negotiated();
        self.state = State::Established;
        self.agreed = Some(agreed);
        self.guard = PingGuard::default();
        let first = match self.role {
            Role::Client => self.jitter.first(negotiated.interval),
            // The client's first PING comes within 3/2 of an interval.
            Role::Server => Jitter::backup(negotiated.interval * 3 / 2, negotiated.dead_timeout),
        };
        self.liveness = Liveness::new(now, first, negotiated.dead_timeout);
        self.events.push_back(Event::Connected(negotiated));
    }

    /// Our WELCOME was lost and the client asks again; answer, but no
    /// faster than the ping policy so HELLOs cannot be used to flood.
    pub(crate) fn rewelcome(&mut self, now: Instant) {
        let spacing = self.guard_spacing();
        let Some(h) = self.handshake.as_mut() else { return };
        if h.welcomed_at.is_some_and(|at| now - at < spacing) {
            bump(&mut self.stats.frames_ignored);
            return;
        }
        h.welcomed_at = Some(now);
        self.pending.welcome = true;
    }
}

/// What the handshake settled, in wire form (24 bytes rather than the 56
/// of [`Negotiated`], in every session).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    pub(crate) welcome: Welcome,
    pub(crate) peer_max_frame_len: u32,
}

impl Agreed {
    pub(crate) fn negotiated(&self) -> Negotiated {
        let w = &self.welcome;
        Negotiated {
            version: w.version,
            interval: Duration::from_millis(w.interval_ms.into()),
            dead_timeout: Duration::from_millis(w.dead_timeout_ms.into()),
            peer_max_frame_len: self.peer_max_frame_len,
            min_ping_spacing: Duration::from_millis(w.min_ping_spacing_ms.into()),
            ping_strikes: w.ping_strikes,
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        Duration::from_millis(self.welcome.interval_ms.into())
    }

    pub(crate) fn min_ping_spacing(&self) -> Duration {
        Duration::from_millis(self.welcome.min_ping_spacing_ms.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(interval_ms: u32, dead_timeout_ms: u32) -> Hello {
        Hello {
            interval_ms,
            dead_timeout_ms,
            ..hello(&Config::default())
        }
    }

    #[test]
    fn the_server_clamps_the_interval_into_its_range() {
        let server = Config::default(); // 1 s ..= 300 s
        let (w, _) = answer(&server, &asking(50, 1_000)).unwrap();
        assert_eq!((w.interval_ms, w.dead_timeout_ms), (1_000, 2_000));
        let (w, _) = answer(&server, &asking(3_600_000, 10_000_000)).unwrap();
        assert_eq!((w.interval_ms, w.dead_timeout_ms), (300_000, 600_000));
    }

    #[test]
    fn the_answer_states_the_ping_policy_and_the_client_accepts_it() {
        let (w, n) = answer(&Config::default(), &asking(10_000, 30_000)).unwrap();
        assert_eq!((w.min_ping_spacing_ms, w.ping_strikes), (500, 2));
        assert_eq!(accept(&w).unwrap(), n);
    }

    #[test]
    fn no_common_version_is_refused() {
        let future = Hello {
            version_min: 2,
            version_max: 9,
            ..hello(&Config::default())
        };
        assert_eq!(
            answer(&Config::default(), &future).unwrap_err(),
            ProtocolError::UnsupportedVersion { min: 2, max: 9 }
        );
    }

    #[test]
    fn a_client_refuses_an_answer_no_server_would_send() {
        let (good, _) = answer(&Config::default(), &asking(10_000, 30_000)).unwrap();
        assert!(accept(&Welcome { interval_ms: 1, ..good }).is_err());
        assert!(accept(&Welcome {
            dead_timeout_ms: 15_000,
            ..good
        })
        .is_err());
        assert!(accept(&Welcome {
            min_ping_spacing_ms: 6_000,
            ..good
        })
        .is_err());
        assert!(accept(&Welcome { version: 7, ..good }).is_err());
    }
}
