//! Negotiation: what a client asks, what a server agrees to, and when a
//! datagram client sends HELLO again. Pure functions of the config and the
//! frames, so each rule is testable alone; the session makes the moves.

use core::time::Duration;

use crate::config::{wire_ms, Config, Transport, MIN_FRAME_LEN, MIN_INTERVAL};
use crate::error::ProtocolError;
use crate::frame::{frame_type, Cookie, Hello, Welcome, WelcomeExt, DATAGRAM_VERSION_MIN, VERSION_MAX, VERSION_MIN};
use crate::negotiated::Negotiated;
use crate::rtt::RttEstimator;
use crate::time::Instant;

/// The handshake's state; boxed and dropped once no longer needed (a
/// datagram server keeps it to answer a repeated HELLO).
#[derive(Debug)]
pub(crate) struct Handshake {
    pub(crate) deadline: Instant,
    /// The `attempt` of the latest HELLO sent (client), or of the HELLO our
    /// WELCOME answers (server).
    pub(crate) attempt: u8,
    /// When the latest HELLO left; `None` until the first has.
    pub(crate) sent_at: Option<Instant>,
    /// Timeouts in a row since the last answer (for the backoff).
    pub(crate) timeouts: u32,
    pub(crate) retransmit_at: Option<Instant>,
    pub(crate) cookie: Option<Cookie>,
    pub(crate) welcome: Option<Welcome>,
    pub(crate) welcomed_at: Option<Instant>,
}

impl Handshake {
    pub(crate) fn new(now: Instant, config: &Config, is_client: bool) -> Handshake {
        let datagram = config.transport == Transport::Datagram;
        Handshake {
            deadline: now + config.handshake_timeout,
            attempt: 0,
            sent_at: None,
            timeouts: 0,
            retransmit_at: (is_client && datagram).then(|| now + retransmit_delay(&RttEstimator::default(), 0)),
            cookie: None,
            welcome: None,
            welcomed_at: None,
        }
    }

    /// The next HELLO is about to leave at `now`: its attempt number.
    pub(crate) fn next_attempt(&mut self, now: Instant) -> u8 {
        if self.sent_at.is_some() {
            self.attempt = self.attempt.saturating_add(1);
        }
        self.sent_at = Some(now);
        self.attempt
    }

    /// The round trip measured by an answer to `attempt`, if it answers the
    /// latest HELLO (an older one's answer would mislead: Karn's rule, made
    /// exact by the echo). `None` when the answer carries no echo, unless
    /// HELLO was never sent again.
    pub(crate) fn sample(&self, now: Instant, echo: Option<u8>) -> Option<Duration> {
        let sent = self.sent_at?;
        let answers_latest = match echo {
            Some(attempt) => attempt == self.attempt,
            None => self.attempt == 0,
        };
        answers_latest.then(|| now - sent)
    }

    pub(crate) fn poll_timeout(&self) -> Instant {
        self.retransmit_at.map_or(self.deadline, |at| at.min(self.deadline))
    }
}

/// How long a datagram client waits for an answer before sending HELLO
/// again: the probe timeout without its floor (`srtt + 4 rttvar`, about
/// 1 s before any sample, as QUIC's first PTO), doubled per timeout in a
/// row, but never past 1 s (or the base, if longer): a lost handshake is
/// retried often enough to survive heavy loss within the handshake timeout,
/// and a 20-byte HELLO a second is no burden on any network.
pub(crate) fn retransmit_delay(rtt: &RttEstimator, timeouts: u32) -> Duration {
    let base = rtt
        .probe_timeout(Duration::from_millis(1))
        .saturating_sub(rtt.peer_hold());
    let cap = base.max(Duration::from_secs(1));
    base.saturating_mul(1 << timeouts.min(16)).min(cap)
}

/// The client's HELLO asking for `timing`.
pub(crate) fn hello(config: &Config, timing: (u32, u32), attempt: u8, cookie: Option<Cookie>) -> Hello {
    Hello {
        version_min: VERSION_MIN,
        version_max: VERSION_MAX,
        interval_ms: timing.0,
        dead_timeout_ms: timing.1,
        max_frame_len: config.max_frame_len,
        attempt,
        cookie,
    }
}

/// The server's answer: the highest common version (at least version 2 on
/// datagrams, which validate addresses), the interval clamped into the
/// server's range, the dead-peer timeout clamped between twice that
/// interval and the server's maximum, the server's ping policy and bounds.
pub(crate) fn answer(config: &Config, hello: &Hello) -> Result<Welcome, ProtocolError> {
    let version = hello.version_max.min(VERSION_MAX);
    let lowest = match config.transport {
        Transport::Stream => VERSION_MIN,
        Transport::Datagram => DATAGRAM_VERSION_MIN,
    };
    if version < hello.version_min.max(lowest) {
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
    let (min_interval, max_interval) = (wire_ms(config.min_interval), wire_ms(config.max_interval));
    let max_dead = wire_ms(config.max_dead_timeout);
    let (interval_ms, dead_timeout_ms) = clamp_timing(config, hello.interval_ms, hello.dead_timeout_ms);
    Ok(Welcome {
        version,
        interval_ms,
        dead_timeout_ms,
        max_frame_len: config.max_frame_len,
        min_ping_spacing_ms: wire_ms(config.min_ping_spacing),
        ping_strikes: config.ping_strikes,
        ext: (version >= 2).then_some(WelcomeExt {
            attempt: hello.attempt,
            min_interval_ms: min_interval,
            max_interval_ms: max_interval,
            max_dead_timeout_ms: max_dead,
        }),
    })
}

/// A client's asked-for timings, as the server agrees to them: the
/// interval into the server's range, the dead-peer timeout between twice
/// that and the server's maximum. The handshake's rule, and RETIME's.
pub(crate) fn clamp_timing(config: &Config, interval_ms: u32, dead_timeout_ms: u32) -> (u32, u32) {
    let interval_ms = interval_ms.clamp(wire_ms(config.min_interval), wire_ms(config.max_interval));
    let min_dead = interval_ms.saturating_mul(2);
    let max_dead = wire_ms(config.max_dead_timeout).max(min_dead);
    (interval_ms, dead_timeout_ms.clamp(min_dead, max_dead))
}

/// Whether timings a server agreed to are ones a server may send: the
/// client's check of WELCOME and of a RETIME answer.
pub(crate) fn check_timing(
    interval_ms: u32,
    dead_timeout_ms: u32,
    min_ping_spacing_ms: u32,
) -> Result<(), ProtocolError> {
    let bad = |what| Err(ProtocolError::BadNegotiation(what));
    if Duration::from_millis(interval_ms.into()) < MIN_INTERVAL {
        return bad("interval below 10 ms");
    }
    if u64::from(dead_timeout_ms) < 2 * u64::from(interval_ms) {
        return bad("dead-peer timeout below twice the interval");
    }
    if min_ping_spacing_ms == 0 || u64::from(min_ping_spacing_ms) * 2 > u64::from(interval_ms) {
        return bad("minimum ping spacing not between 1 ms and half the interval");
    }
    Ok(())
}

/// What the server settled with a client that sent `hello`.
pub(crate) fn server_side(config: &Config, hello: &Hello, welcome: &Welcome) -> Negotiated {
    Negotiated {
        version: welcome.version,
        ping_strikes: welcome.ping_strikes,
        interval_ms: welcome.interval_ms,
        dead_timeout_ms: welcome.dead_timeout_ms,
        min_ping_spacing_ms: welcome.min_ping_spacing_ms,
        peer_max_frame_len: hello.max_frame_len,
        requested_interval_ms: hello.interval_ms,
        requested_dead_timeout_ms: hello.dead_timeout_ms,
        bounds_ms: [
            wire_ms(config.min_interval),
            wire_ms(config.max_interval),
            wire_ms(config.max_dead_timeout),
        ],
    }
}

/// The client's check of the server's answer: values no pulse server sends
/// are a protocol error, not something to run with.
pub(crate) fn accept(requested: (u32, u32), welcome: &Welcome) -> Result<Negotiated, ProtocolError> {
    if !(VERSION_MIN..=VERSION_MAX).contains(&welcome.version) {
        return Err(ProtocolError::UnsupportedVersion {
            min: welcome.version,
            max: welcome.version,
        });
    }
    let bounds_ms = welcome.ext.map_or([0; 3], |e| {
        [e.min_interval_ms, e.max_interval_ms, e.max_dead_timeout_ms]
    });
    let n = Negotiated {
        version: welcome.version,
        ping_strikes: welcome.ping_strikes,
        interval_ms: welcome.interval_ms,
        dead_timeout_ms: welcome.dead_timeout_ms,
        min_ping_spacing_ms: welcome.min_ping_spacing_ms,
        peer_max_frame_len: welcome.max_frame_len,
        requested_interval_ms: requested.0,
        requested_dead_timeout_ms: requested.1,
        bounds_ms,
    };
    check_timing(n.interval_ms, n.dead_timeout_ms, n.min_ping_spacing_ms)?;
    if n.peer_max_frame_len < MIN_FRAME_LEN {
        return Err(ProtocolError::BadNegotiation("maximum frame length below 256"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(interval_ms: u32, dead_timeout_ms: u32) -> Hello {
        Hello {
            interval_ms,
            dead_timeout_ms,
            ..hello(&Config::default(), (10_000, 30_000), 0, None)
        }
    }

    #[test]
    fn the_server_clamps_the_interval_into_its_range() {
        let server = Config::default(); // 1 s ..= 300 s
        let w = answer(&server, &asking(50, 1_000)).unwrap();
        assert_eq!((w.interval_ms, w.dead_timeout_ms), (1_000, 2_000));
        let w = answer(&server, &asking(3_600_000, 10_000_000)).unwrap();
        assert_eq!((w.interval_ms, w.dead_timeout_ms), (300_000, 600_000));
    }

    #[test]
    fn the_answer_states_the_ping_policy_and_bounds_and_the_client_accepts_it() {
        let h = asking(10_000, 30_000);
        let w = answer(&Config::default(), &h).unwrap();
        assert_eq!((w.min_ping_spacing_ms, w.ping_strikes), (500, 2));
        let ext = w.ext.unwrap();
        assert_eq!(
            (ext.min_interval_ms, ext.max_interval_ms, ext.max_dead_timeout_ms),
            (1_000, 300_000, 600_000)
        );
        let client = accept((10_000, 30_000), &w).unwrap();
        assert_eq!(client.interval(), Duration::from_secs(10));
        assert_eq!(client.adjustments().count(), 0);
        assert_eq!(server_side(&Config::default(), &h, &w).interval(), client.interval());
    }

    #[test]
    fn no_common_version_is_refused_and_datagrams_need_version_two() {
        let future = Hello {
            version_min: 3,
            version_max: 9,
            ..hello(&Config::default(), (10_000, 30_000), 0, None)
        };
        assert_eq!(
            answer(&Config::default(), &future).unwrap_err(),
            ProtocolError::UnsupportedVersion { min: 3, max: 9 }
        );
        let old = Hello {
            version_max: 1,
            ..hello(&Config::default(), (10_000, 30_000), 0, None)
        };
        assert_eq!(answer(&Config::default(), &old).unwrap().version, 1);
        assert!(answer(&Config::new(Transport::Datagram), &old).is_err());
    }

    #[test]
    fn a_version_both_offer_exactly_is_agreed() {
        let two_only = Hello {
            version_min: 2,
            version_max: 2,
            ..hello(&Config::default(), (10_000, 30_000), 0, None)
        };
        assert_eq!(answer(&Config::default(), &two_only).unwrap().version, 2);
        assert_eq!(answer(&Config::new(Transport::Datagram), &two_only).unwrap().version, 2);
    }

    #[test]
    fn each_timing_rule_refuses_on_its_own() {
        assert!(check_timing(10, 20, 5).is_ok());
        assert!(check_timing(9, 20, 4).is_err(), "interval under 10 ms");
        assert!(check_timing(10, 19, 5).is_err(), "timeout under twice the interval");
        assert!(check_timing(10, 20, 0).is_err(), "no spacing");
        assert!(check_timing(10, 20, 6).is_err(), "spacing over half the interval");
    }

    #[test]
    fn a_handshake_waits_for_its_deadline_or_a_datagram_retransmission() {
        let stream = Handshake::new(Instant::ZERO, &Config::default(), true);
        assert_eq!(stream.poll_timeout(), Instant::ZERO + Duration::from_secs(10));
        let datagram = Handshake::new(Instant::ZERO, &Config::new(Transport::Datagram), true);
        let at = datagram.poll_timeout() - Instant::ZERO;
        assert!(at > Duration::from_millis(900) && at < Duration::from_secs(1), "{at:?}");
        let server = Handshake::new(Instant::ZERO, &Config::new(Transport::Datagram), false);
        assert_eq!(server.poll_timeout(), Instant::ZERO + Duration::from_secs(10));
    }

    #[test]
    fn a_client_refuses_an_answer_no_server_would_send() {
        let good = answer(&Config::default(), &asking(10_000, 30_000)).unwrap();
        let config = (10_000, 30_000);
        assert!(accept(config, &Welcome { interval_ms: 1, ..good }).is_err());
        assert!(accept(
            config,
            &Welcome {
                dead_timeout_ms: 15_000,
                ..good
            }
        )
        .is_err());
        assert!(accept(
            config,
            &Welcome {
                min_ping_spacing_ms: 6_000,
                ..good
            }
        )
        .is_err());
        assert!(accept(
            config,
            &Welcome {
                min_ping_spacing_ms: 0,
                ..good
            }
        )
        .is_err());
        assert!(accept(config, &Welcome { version: 7, ..good }).is_err());
        assert!(accept(
            config,
            &Welcome {
                max_frame_len: 255,
                ..good
            }
        )
        .is_err());
        assert!(accept(
            config,
            &Welcome {
                max_frame_len: 256,
                ..good
            }
        )
        .is_ok());
    }

    #[test]
    fn hello_is_sent_again_about_every_second_until_an_rtt_is_known() {
        let mut rtt = RttEstimator::default();
        let first: [u32; 6] = core::array::from_fn(|k| retransmit_delay(&rtt, k as u32).as_millis() as u32);
        assert!(first.iter().all(|&d| (990..=1000).contains(&d)), "{first:?}");
        rtt.update(Duration::from_millis(40), Duration::ZERO);
        let known: [u32; 6] = core::array::from_fn(|k| retransmit_delay(&rtt, k as u32).as_millis() as u32);
        assert_eq!(known, [120, 240, 480, 960, 1000, 1000]);
    }

    #[test]
    fn only_an_answer_to_the_latest_hello_is_an_rtt_sample() {
        let mut h = Handshake::new(Instant::ZERO, &Config::new(Transport::Datagram), true);
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        assert_eq!(h.next_attempt(t(0)), 0);
        assert_eq!(h.sample(t(30), Some(0)), Some(Duration::from_millis(30)));
        assert_eq!(h.next_attempt(t(1000)), 1);
        assert_eq!(h.sample(t(1010), Some(0)), None);
        assert_eq!(h.sample(t(1040), Some(1)), Some(Duration::from_millis(40)));
        assert_eq!(h.sample(t(1040), None), None);
    }
}
