//! Aggregate counters of a driver, for the program's metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use pulse_proto::{CloseCode, Event, Initiator, Session};

/// The close codes counted apart, in order; the rest fall into the last
/// three: `lost`, application codes, and reserved ones.
const NAMED: [CloseCode; 10] = [
    CloseCode::NORMAL,
    CloseCode::GOING_AWAY,
    CloseCode::PROTOCOL_ERROR,
    CloseCode::TOO_MANY_PINGS,
    CloseCode::TIMED_OUT,
    CloseCode::FRAME_TOO_LARGE,
    CloseCode::UNSUPPORTED_VERSION,
    CloseCode::HANDSHAKE_TIMEOUT,
    CloseCode::SLOW_READER,
    CloseCode::REFUSED,
];
const LABELS: [&str; 13] = [
    "normal",
    "going_away",
    "protocol_error",
    "too_many_pings",
    "timed_out",
    "frame_too_large",
    "unsupported_version",
    "handshake_timeout",
    "slow_reader",
    "refused",
    "lost",
    "application",
    "reserved",
];

fn slot(code: CloseCode) -> usize {
    NAMED
        .iter()
        .position(|c| *c == code)
        .unwrap_or(if code == CloseCode::LOST {
            10
        } else if code.is_application() {
            11
        } else {
            12
        })
}

/// Defines an adapter's counters for its whole process: a private static
/// [`Counters`], the public `counters()` that reads it, and the
/// crate-private `count()` its drivers add to. Every adapter with one set
/// of counters per process needs the same three items; `$krate` names the
/// crate in the documentation's example.
#[doc(hidden)]
#[macro_export]
macro_rules! process_counters {
    ($krate:ident) => {
        /// Every connection of this process, counted together.
        static COUNTERS: $crate::Counters = $crate::Counters::new();

        #[doc = concat!("`", stringify!($krate), "`'s aggregate counters for this process:")]
        /// connections open, verdicts, refusals and closes by code and
        /// initiator, bytes in and out.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("let counters = ", stringify!($krate), "::counters();")]
        /// println!("{} open, {} verdicts", counters.open, counters.verdicts);
        /// ```
        pub fn counters() -> $crate::CountersSnapshot {
            COUNTERS.snapshot()
        }

        pub(crate) fn count() -> &'static $crate::Counters {
            &COUNTERS
        }
    };
}

/// Counters of one driver (a listener, a loop, or a whole adapter), safe
/// to read from any thread while it runs. Closes are counted by code and by
/// who began them, so a dashboard can tell "we convicted" (`timed_out`,
/// local) from "we were convicted" (`timed_out`, peer).
#[derive(Debug, Default)]
pub struct Counters {
    open: AtomicU64,
    opened: AtomicU64,
    refused: AtomicU64,
    verdicts: AtomicU64,
    suspicions: AtomicU64,
    own_stalls: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    closed_local: [AtomicU64; 13],
    closed_peer: [AtomicU64; 13],
}

/// A copy of [`Counters`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CountersSnapshot {
    /// Connections open now (handshake done, not yet closed).
    pub open: u64,
    /// Connections that completed their handshake, ever.
    pub opened: u64,
    /// Connections turned away at a limit (not counted as opened).
    pub refused: u64,
    /// Dead-peer verdicts this side gave.
    pub verdicts: u64,
    /// Times a peer became suspect.
    pub suspicions: u64,
    /// Times our own process was found to have stalled (a late timer).
    pub own_stalls: u64,
    /// Bytes read from transports.
    pub bytes_in: u64,
    /// Bytes written to transports.
    pub bytes_out: u64,
    /// Closes this side began, by code label (`timed_out`, `normal`, ...).
    pub closed_local: Vec<(&'static str, u64)>,
    /// Closes the peer began, by code label.
    pub closed_peer: Vec<(&'static str, u64)>,
}

impl Counters {
    /// All zero; `const`, so a driver can keep its counters in a `static`.
    pub const fn new() -> Counters {
        Counters {
            open: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            verdicts: AtomicU64::new(0),
            suspicions: AtomicU64::new(0),
            own_stalls: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            closed_local: [const { AtomicU64::new(0) }; 13],
            closed_peer: [const { AtomicU64::new(0) }; 13],
        }
    }

    /// Counts what an event of a connection says. Call it for every event.
    pub fn on_event(&self, event: &Event) {
        let add = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::Connected(_) => {
                add(&self.open);
                add(&self.opened);
            }
            Event::PeerDead { .. } => {
                add(&self.verdicts);
            }
            Event::Suspect { .. } => {
                add(&self.suspicions);
            }
            Event::Closed(closed) => {
                let by = match closed.initiator {
                    Initiator::Local => &self.closed_local,
                    Initiator::Peer => &self.closed_peer,
                };
                add(&by[slot(closed.code)]);
            }
            _ => {}
        }
    }

    /// A connection is gone: call it once for every connection when the
    /// driver drops it, with its session (after its `Closed` was counted by
    /// [`Counters::on_event`]). `open` goes down only if the session had
    /// connected — the session says so, not the driver — so a connection
    /// that never opened (refused, a failed handshake) cannot be counted
    /// off.
    pub fn on_gone(&self, session: &Session) {
        if session.negotiated().is_some() {
            // Saturating: a driver calling it twice cannot wrap the gauge.
            let _ = self
                .open
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// A connection was turned away at a limit.
    pub fn on_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Our own stall was detected (a late timer).
    pub fn on_own_stall(&self) {
        self.own_stalls.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes moved.
    pub fn add_bytes(&self, read: usize, written: usize) {
        if read > 0 {
            self.bytes_in.fetch_add(read as u64, Ordering::Relaxed);
        }
        if written > 0 {
            self.bytes_out.fetch_add(written as u64, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let by_code = |counts: &[AtomicU64; 13]| LABELS.iter().copied().zip(counts.iter().map(get)).collect();
        CountersSnapshot {
            open: get(&self.open),
            opened: get(&self.opened),
            refused: get(&self.refused),
            verdicts: get(&self.verdicts),
            suspicions: get(&self.suspicions),
            own_stalls: get(&self.own_stalls),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            closed_local: by_code(&self.closed_local),
            closed_peer: by_code(&self.closed_peer),
        }
    }
}

impl CountersSnapshot {
    /// Closes with this code label, both initiators together.
    pub fn closed(&self, label: &str) -> u64 {
        self.closed_local
            .iter()
            .chain(&self.closed_peer)
            .filter(|(l, _)| *l == label)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_proto::{Closed, Role};

    /// Runs a client and a server session against each other until neither
    /// has anything more to send, counting every event.
    fn exchange(client: &mut Session, server: &mut Session, counters: &Counters) {
        for _ in 0..16 {
            let moved = pass(client, server) | pass(server, client);
            for session in [&mut *client, &mut *server] {
                while let Some(event) = session.poll_event() {
                    counters.on_event(&event);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Hands everything `from` sends to `to`; whether anything moved.
    fn pass(from: &mut Session, to: &mut Session) -> bool {
        let now = pulse_proto::Instant::ZERO;
        let mut moved = false;
        while let Some(bytes) = from.poll_transmit(now) {
            let bytes = bytes.to_vec();
            from.advance_transmit(bytes.len());
            to.handle_input(now, &bytes[..]);
            moved = true;
        }
        moved
    }

    #[test]
    fn only_a_connection_that_opened_is_counted_off_when_it_goes() {
        let counters = Counters::default();
        let now = pulse_proto::Instant::ZERO;
        let config = std::sync::Arc::new(pulse_proto::Config::default());
        // Never opened: its handshake failed.
        let mut refused = Session::new(config.clone(), Role::Client, now, 1).unwrap();
        refused.handle_eof(now);
        while let Some(event) = refused.poll_event() {
            counters.on_event(&event);
        }
        counters.on_gone(&refused);
        assert_eq!(
            counters.snapshot().open,
            0,
            "a connection that never opened was counted off"
        );
        // Opened, then closed.
        let mut client = Session::new(config.clone(), Role::Client, now, 2).unwrap();
        let mut server = Session::new(config, Role::Server, now, 3).unwrap();
        exchange(&mut client, &mut server, &counters);
        assert_eq!(counters.snapshot().open, 2);
        client.close(now, CloseCode::NORMAL, "done").unwrap();
        exchange(&mut client, &mut server, &counters);
        assert!(client.is_closed() && server.is_closed());
        counters.on_gone(&client);
        counters.on_gone(&server);
        assert_eq!(counters.snapshot().open, 0);
        counters.on_gone(&server);
        assert_eq!(
            counters.snapshot().open,
            0,
            "counted off twice, the gauge does not wrap"
        );
    }

    #[test]
    fn closes_are_counted_by_code_and_initiator() {
        let counters = Counters::default();
        counters.on_event(&Event::Closed(Closed::new(CloseCode::TIMED_OUT, "", Initiator::Local)));
        counters.on_event(&Event::Closed(Closed::new(CloseCode::TIMED_OUT, "", Initiator::Peer)));
        counters.on_event(&Event::Closed(Closed::new(
            CloseCode::application(3).unwrap(),
            "",
            Initiator::Peer,
        )));
        let s = counters.snapshot();
        assert_eq!(s.closed("timed_out"), 2);
        assert_eq!(s.closed("application"), 1);
        assert!(s.closed_local.contains(&("timed_out", 1)));
    }
}
