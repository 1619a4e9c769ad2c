//! When the reconnecting client tries again: pulse-proto's backoff, with a
//! seed of the client's own and a reset only after a stable connection,
//! and the reconnecting loop's counting of attempts around it.
//! Pure, so a fleet of clients can be tested without a socket.

use std::sync::Arc;
use std::time::Duration;

use crate::{clock, ClientEvent, Error};
use pulse_proto::Backoff;

/// How long a connection must have stayed up, by default, for the next
/// loss to start the backoff over. A server that accepts and then drops
/// at once is backed off from like one that refuses.
pub const DEFAULT_STABLE_AFTER: Duration = Duration::from_secs(10);

/// The backoff of one reconnecting client.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_driver::{Retry, DEFAULT_STABLE_AFTER};
///
/// let mut retry = Retry::new(pulse_driver::default_backoff(), DEFAULT_STABLE_AFTER);
/// let first = retry.next_delay(None).unwrap();
/// assert!(first <= Duration::from_millis(100));
/// ```
#[derive(Clone, Debug)]
pub struct Retry {
    backoff: Backoff,
    stable_after: Duration,
}

impl Retry {
    /// A backoff nobody seeded gets a seed of its own: a fleet of clients
    /// that lost the same server comes back spread over each delay's
    /// jitter, not in lockstep.
    pub fn new(backoff: Backoff, stable_after: Duration) -> Retry {
        let backoff = if backoff.is_seeded() {
            backoff
        } else {
            backoff.with_seed(clock::seed())
        };
        Retry { backoff, stable_after }
    }

    /// The delay before the next attempt after one that failed (`up` is
    /// `None`) or a connection that was up for `up`; `None` to give up.
    pub fn next_delay(&mut self, up: Option<Duration>) -> Option<Duration> {
        if up.is_some_and(|up| up >= self.stable_after) {
            self.backoff.reset();
        }
        self.backoff.next_delay()
    }

    /// Attempts since the backoff last started over.
    pub fn attempts(&self) -> u32 {
        self.backoff.attempts()
    }
}

/// What follows a lost connection or a failed attempt.
#[derive(Debug)]
pub enum AfterLoss {
    /// Report `lost` (a [`ClientEvent::Lost`]), sleep `delay` (waking if
    /// stopped), and try again.
    Retry {
        /// The event to report.
        lost: ClientEvent,
        /// How long to wait.
        delay: Duration,
    },
    /// End with this event.
    End(ClientEvent),
}

/// The reconnecting loop's counting: attempts, and the backoff's verdict
/// after each loss. The adapter's loop is: [`Attempts::next_attempt`],
/// connect, [`Attempts::connected`], run until lost,
/// [`Attempts::after_loss`], sleep, again.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_driver::{AfterLoss, Attempts, ClientEvent, Error, DEFAULT_STABLE_AFTER};
///
/// let backoff = pulse_driver::default_backoff().with_max_attempts(1);
/// let mut attempts = Attempts::new(backoff, DEFAULT_STABLE_AFTER);
/// assert!(matches!(attempts.next_attempt(), ClientEvent::Connecting { attempt: 1 }));
/// let refused = Error::Io(std::io::ErrorKind::ConnectionRefused.into());
/// assert!(matches!(attempts.after_loss(refused, None), AfterLoss::Retry { .. }));
/// let refused = Error::Io(std::io::ErrorKind::ConnectionRefused.into());
/// assert!(matches!(attempts.after_loss(refused, None), AfterLoss::End(ClientEvent::GaveUp { .. })));
/// ```
#[derive(Debug)]
pub struct Attempts {
    retry: Retry,
    attempt: u32,
}

impl Attempts {
    /// Attempts with `backoff` (seeded of its own if nobody seeded it),
    /// starting over after a connection stayed up `stable_after`.
    pub fn new(backoff: Backoff, stable_after: Duration) -> Attempts {
        Attempts {
            retry: Retry::new(backoff, stable_after),
            attempt: 0,
        }
    }

    /// The next attempt begins: the event to report.
    pub fn next_attempt(&mut self) -> ClientEvent {
        self.attempt += 1;
        ClientEvent::Connecting { attempt: self.attempt }
    }

    /// An attempt connected: the next one counts from 1 again.
    pub fn connected(&mut self) {
        self.attempt = 0;
    }

    /// The connection was lost after being up `up`, or the attempt failed
    /// (`up` is `None`), with `error`.
    pub fn after_loss(&mut self, error: Error, up: Option<Duration>) -> AfterLoss {
        let error = Arc::new(error);
        if error.is_permanent() {
            return AfterLoss::End(ClientEvent::Failed { error });
        }
        match self.retry.next_delay(up) {
            Some(delay) => AfterLoss::Retry {
                lost: ClientEvent::Lost { error, retry_in: delay },
                delay,
            },
            None => AfterLoss::End(ClientEvent::GaveUp {
                attempts: self.retry.attempts(),
                error,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_fleet_that_lost_its_server_at_once_comes_back_spread_over_each_steps_jitter() {
        // 1,000 clients with the default backoff, as ReconnectingClient
        // builds them; the server vanishes: each loses a long-lived
        // connection, then every attempt fails at once.
        let mut fleet: Vec<Retry> = (0..1000)
            .map(|_| Retry::new(Backoff::new(MS * 100, MS * 10_000), DEFAULT_STABLE_AFTER))
            .collect();
        for step in 0..8u32 {
            let base = (MS * 100 * (1 << step)).min(MS * 10_000);
            let up = (step == 0).then_some(Duration::from_secs(3600));
            let mut tenths = [0usize; 10];
            for retry in &mut fleet {
                let delay = retry.next_delay(up).unwrap();
                // Equal jitter: each delay lies in [base / 2, base].
                assert!(delay >= base / 2 && delay <= base, "step {step}: {delay:?}");
                let tenth = ((delay - base / 2).as_nanos() * 10 / (base / 2).as_nanos()).min(9);
                tenths[tenth as usize] += 1;
            }
            assert!(
                tenths.iter().all(|&n| n > 0 && n <= 3 * 100),
                "step {step}: attempts per tenth of the jitter range {tenths:?}"
            );
        }
    }

    #[test]
    fn a_connection_dropped_before_it_was_stable_does_not_start_the_backoff_over() {
        let backoff = Backoff::new(MS * 100, MS * 10_000).with_jitter_percent(0);
        let mut retry = Retry::new(backoff, Duration::from_secs(10));
        let delays: Vec<Duration> = (0..4)
            .map(|_| retry.next_delay(Some(Duration::from_secs(1))).unwrap())
            .collect();
        assert_eq!(delays, [MS * 100, MS * 200, MS * 400, MS * 800]);
        assert_eq!(retry.next_delay(Some(Duration::from_secs(10))), Some(MS * 100));
    }

    #[test]
    fn a_backoff_the_application_seeded_keeps_its_seed() {
        let seeded = || Retry::new(Backoff::new(MS * 100, MS * 10_000).with_seed(42), DEFAULT_STABLE_AFTER);
        assert_eq!(seeded().next_delay(None), seeded().next_delay(None));
    }
}
