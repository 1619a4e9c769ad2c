//! Polling until every ready socket has been seen: timers run after the
//! reads, and a socket whose readiness is still in the kernel would be
//! judged silent.

use std::io;
use std::time::Duration;

use mio::event::Event;
use mio::{Events, Poll};

/// Polls once, waiting at most `timeout`, then again at once (timeout
/// zero) for as long as a poll fills `events`, handing every event to
/// `handle`. Use it where a loop holds more sockets than `events` has room
/// for, before the step that runs timers ([`crate::Endpoint::process`],
/// [`crate::monitor::Watcher::process`]): one poll returns at most
/// `events.capacity()` events, and the rest wait in the kernel.
///
/// `sockets` is how many sockets the poll may report: each round takes a
/// batch of distinct ones, so the rounds stop after `sockets / capacity + 2`
/// however busy the sockets are. A wait interrupted by a signal is polled
/// again at once.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mio::{Events, Poll};
///
/// let mut poll = Poll::new()?;
/// let mut events = Events::with_capacity(256);
/// let mut seen = 0;
/// pulse_mio::poll_all(&mut poll, &mut events, Some(Duration::ZERO), 10_000, |_event| seen += 1)?;
/// assert_eq!(seen, 0); // nothing registered
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn poll_all(
    poll: &mut Poll,
    events: &mut Events,
    timeout: Option<Duration>,
    sockets: usize,
    mut handle: impl FnMut(&Event),
) -> io::Result<()> {
    let rounds = sockets / events.capacity().max(1) + 2;
    for round in 0..rounds {
        let wait = if round == 0 { timeout } else { Some(Duration::ZERO) };
        match poll.poll(events, wait) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        }
        for event in events.iter() {
            handle(event);
        }
        if events.iter().count() < events.capacity() {
            break;
        }
    }
    Ok(())
}
