//! What a connection's driver task and the application's handles share:
//! the session, and the events the application has yet to read. An async
//! adapter keeps one behind a lock with its runtime's wakers beside it;
//! everything here is the same whatever the runtime.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::task::Waker;

use bytes::Bytes;
use pulse_proto::{CloseCode, Closed, Event, Initiator, Negotiated, SendError, Session};

use crate::io::{flush, read_datagram, read_stream, Flushed, Read};
use crate::{clock, log, Counters, Error};

/// Inbound bytes an application may leave unread before the driver stops
/// reading the transport (TCP then slows the peer down). Each unread
/// message counts its payload and its slot in the queue
/// (`size_of::<Event>()`), as does every other event that is kept: a
/// flood of empty messages is bounded as a few large ones are.
pub const DEFAULT_RECV_BUFFER: usize = 1024 * 1024;
/// Informational events (RTT, suspect, recovered, send-ready, peer status)
/// kept for an application that does not read them; later ones are
/// dropped beyond this, and counted.
pub const MAX_LOSSY_EVENTS: usize = 64;
/// Reads per step before the session's events go to the application.
const READS_PER_STEP: usize = 4;

/// Whether an event only informs: its news is also in the connection's
/// accessors, so it may be dropped for an application that falls behind.
/// Any other event, including any the core adds later, is kept.
fn is_lossy(event: &Event) -> bool {
    matches!(
        event,
        Event::Rtt(_) | Event::Suspect { .. } | Event::Recovered { .. } | Event::SendReady | Event::PeerStatus(_)
    )
}

/// What an unread event that is kept costs the receive buffer: its slot in
/// the queue and a message's payload. Counting the slot is what bounds a
/// peer that sends empty messages: by payload alone they cost nothing, and
/// the queue would grow with every one the application leaves unread.
fn backlog_cost(event: &Event) -> usize {
    let payload = match event {
        Event::Message { payload, .. } => payload.len(),
        _ => 0,
    };
    std::mem::size_of::<Event>() + payload
}

/// The peer's address, for logs: the socket's, or `stream` for a byte
/// stream the application handed over.
///
/// ```
/// let peer = pulse_driver::PeerName(None);
/// assert_eq!(peer.to_string(), "stream");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerName(pub Option<SocketAddr>);

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("stream"),
        }
    }
}

/// What a transport can do for [`Mailbox::send_step`],
/// [`Mailbox::receive_step`] and [`Mailbox::finish`]: its non-blocking
/// calls, `WouldBlock` for "not now" (having registered for readiness).
///
/// ```
/// use std::io::{self, Read, Write};
///
/// /// A blocking std socket, set non-blocking, as a transport.
/// struct Socket(std::net::TcpStream);
///
/// impl pulse_driver::Transfer for Socket {
///     fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
///         self.0.write(bytes)
///     }
///     fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
///         self.0.read(buf)
///     }
///     fn is_datagram(&self) -> bool {
///         false
///     }
/// }
/// ```
pub trait Transfer {
    /// Writes what it takes now.
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize>;
    /// Pushes out what the transport buffers inside (TLS records).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Reads what it has now.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Whether it carries datagrams.
    fn is_datagram(&self) -> bool;
    /// Whether a datagram that would block is dropped rather than waited
    /// for (a socket shared by many peers is never waited on by one).
    fn drops_when_full(&self) -> bool {
        false
    }
    /// Whether a read shorter than the buffer means it is drained.
    fn short_read_drains(&self) -> bool {
        false
    }
}

/// One connection's session and the application's side of it: the
/// events not yet read (informational ones bounded, messages bounded by
/// the receive buffer, beyond which reading pauses), how it was
/// negotiated and how it ended.
///
/// # Examples
///
/// ```
/// use pulse_driver::{clock, Counters, Mailbox, PeerName};
/// use pulse_proto::{Config, Role, Session};
///
/// let session = Session::new(Config::default(), Role::Client, clock::now(), clock::seed()).unwrap();
/// let mut mailbox = Mailbox::new(session);
/// let counters = Counters::new();
/// assert!(!mailbox.drain_events(PeerName(None), &counters));
/// assert!(mailbox.pop().is_none());
/// assert!(mailbox.try_send(1, "too early".into()).unwrap().is_none(), "handshaking: wait");
/// ```
#[derive(Debug)]
pub struct Mailbox {
    /// The connection's protocol state.
    pub session: Session,
    inbound: VecDeque<Event>,
    inbound_bytes: usize,
    lossy: usize,
    recv_buffer: usize,
    events_dropped: u64,
    /// Boxed: an open connection carries no room for it.
    closed: Option<Box<Closed>>,
    finished: bool,
    news: bool,
    /// A sender waits for room in the output queue.
    sender_waiting: bool,
    /// The driver task's waker, for adapters that keep it here.
    driver: Option<Waker>,
    /// The application's tasks waiting on this connection, for adapters
    /// that keep them here.
    app: Vec<Waker>,
    /// The application's handles, for adapters that count them here.
    handles: usize,
    /// Messages the session was given but never began to send, handed
    /// back when it ended (`docs/PROTOCOL.md` §6.11.1 rule 4).
    unsent: Vec<(u16, Bytes)>,
}

impl Mailbox {
    /// A mailbox around a new session.
    pub fn new(session: Session) -> Mailbox {
        Mailbox {
            session,
            inbound: VecDeque::new(),
            inbound_bytes: 0,
            lossy: 0,
            recv_buffer: DEFAULT_RECV_BUFFER,
            events_dropped: 0,
            closed: None,
            finished: false,
            news: false,
            sender_waiting: false,
            driver: None,
            app: Vec::new(),
            handles: 0,
            unsent: Vec::new(),
        }
    }

    /// Moves the session's events to the application's queue, counting and
    /// logging them on the way. Every event is delivered as the core gave
    /// it, so none can be lost in translation. Returns whether the
    /// application has anything new.
    pub fn drain_events(&mut self, peer: PeerName, counters: &Counters) -> bool {
        let mut any = false;
        while let Some(event) = self.session.poll_event() {
            counters.on_event(&event);
            match &event {
                Event::Connected(negotiated) => log::opened(peer, negotiated),
                Event::PeerDead { silent_for } => log::verdict(peer, *silent_for),
                Event::Closed(closed) => {
                    log::closed(peer, closed);
                    self.closed = Some(Box::new(closed.clone()));
                    // Kept before anyone can see the close, so an
                    // application told of it finds them.
                    self.unsent.extend(std::iter::from_fn(|| self.session.poll_unsent()));
                }
                _ => {}
            }
            self.push(event);
            any = true;
        }
        any
    }

    fn push(&mut self, event: Event) {
        if is_lossy(&event) {
            if self.lossy >= MAX_LOSSY_EVENTS {
                self.events_dropped += 1;
                return;
            }
            self.lossy += 1;
        } else {
            self.inbound_bytes += backlog_cost(&event);
        }
        self.inbound.push_back(event);
    }

    /// The next item for the application. `Closed` stays, so every later
    /// call sees it too.
    pub fn pop(&mut self) -> Option<Event> {
        if let Some(Event::Closed(_)) = self.inbound.front() {
            if self.inbound.len() == 1 {
                return self.inbound.front().cloned();
            }
        }
        let event = self.inbound.pop_front()?;
        if self.inbound.is_empty() {
            // An idle connection keeps no queue memory.
            self.inbound = VecDeque::new();
        }
        if is_lossy(&event) {
            self.lossy -= 1;
        } else {
            self.inbound_bytes -= backlog_cost(&event);
        }
        Some(event)
    }

    /// [`Mailbox::pop`], and whether the driver must be woken because the
    /// application caught up (reading may resume).
    pub fn pop_for_app(&mut self) -> (Option<Event>, bool) {
        let was_behind = self.is_behind();
        let item = self.pop();
        (item, was_behind && !self.is_behind())
    }

    /// Whether the application is this far behind: reading must pause.
    pub fn is_behind(&self) -> bool {
        self.inbound_bytes >= self.recv_buffer
    }

    /// Sets the receive buffer (at least one byte).
    pub fn set_recv_buffer(&mut self, bytes: usize) {
        self.recv_buffer = bytes.max(1);
    }

    /// Tells the core whether reading is paused by the application's
    /// backlog; the core then judges the peer's silence accordingly.
    pub fn follow_backlog(&mut self) {
        let behind = self.is_behind();
        if behind != self.session.is_input_paused() {
            if behind {
                self.session.pause_input(clock::now());
            } else {
                self.session.resume_input(clock::now());
            }
        }
    }

    /// Queues a message: `Ok(Some(()))` when queued (wake the driver),
    /// `Ok(None)` when the sender must wait for the driver (the queue is
    /// full or the handshake runs), an error when it never will go.
    pub fn try_send(&mut self, tag: u16, payload: Bytes) -> Result<Option<()>, Error> {
        match self.session.send(tag, payload) {
            Ok(()) => Ok(Some(())),
            Err(SendError::TooLarge { len, max }) => Err(Error::TooLarge { len, max }),
            Err(SendError::Closed) => Err(Error::Closed(self.closed_or_pending())),
            Err(_) if self.finished => Err(Error::Closed(self.closed_or_pending())),
            Err(_) => {
                self.sender_waiting = true;
                Ok(None)
            }
        }
    }

    /// The handshake's outcome, once known: the agreed values, or how it
    /// ended.
    pub fn handshake_outcome(&self) -> Option<Result<Negotiated, Closed>> {
        if let Some(n) = self.session.negotiated() {
            return Some(Ok(n));
        }
        if let Some(closed) = &self.closed {
            return Some(Err(Closed::clone(closed)));
        }
        self.finished.then(|| Err(self.closed_or_pending()))
    }

    /// How the connection ended, once its driver has finished.
    pub fn outcome(&self) -> Option<Closed> {
        self.finished.then(|| self.closed_or_pending())
    }

    /// How the connection ended, for errors: the real outcome once known.
    pub fn closed_or_pending(&self) -> Closed {
        match &self.closed {
            Some(closed) => Closed::clone(closed),
            None => Closed::new(CloseCode::NORMAL, "closing", Initiator::Local),
        }
    }

    /// The values agreed in the handshake, once done.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.session.negotiated()
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Once the connection is closed, the messages it was given but never
    /// began to send, in the order they were sent: the peer cannot have
    /// seen any of them (a session that died while it held DATA over an
    /// idle path, or with DATA queued; `docs/PROTOCOL.md` §6.11.1). Send
    /// them again on the next connection. Empty before the close, and
    /// once taken.
    ///
    /// ```
    /// use pulse_driver::{clock, Mailbox};
    /// use pulse_proto::{Config, Role, Session};
    ///
    /// let session = Session::new(Config::default(), Role::Client, clock::now(), clock::seed()).unwrap();
    /// let mut mailbox = Mailbox::new(session);
    /// assert!(mailbox.take_unsent().is_empty(), "open: nothing handed back");
    /// ```
    pub fn take_unsent(&mut self) -> Vec<(u16, Bytes)> {
        std::mem::take(&mut self.unsent)
    }

    /// Whether the driver has finished: the transport is dropped.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Informational events dropped because the application did not read
    /// them.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// Whether the driver has news for the application since last asked
    /// (told once it lets go of the lock).
    pub fn take_news(&mut self) -> bool {
        std::mem::take(&mut self.news)
    }

    /// Keeps the driver task's waker (a clone only if it changed), for
    /// [`Mailbox::driver_waker`].
    pub fn register_driver(&mut self, waker: &Waker) {
        if !self.driver.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.driver = Some(waker.clone());
        }
    }

    /// The driver task's waker, to wake it once the lock is let go; the
    /// driver registers again when it runs.
    pub fn driver_waker(&mut self) -> Option<Waker> {
        self.driver.take()
    }

    /// Keeps the waker of an application task that waits for this
    /// connection (once per task), for [`Mailbox::app_wakers`].
    pub fn register_app(&mut self, waker: &Waker) {
        if !self.app.iter().any(|w| w.will_wake(waker)) {
            // Room for one: a connection is usually waited on by one task.
            self.app.reserve_exact(1);
            self.app.push(waker.clone());
        }
    }

    /// The application's waiting tasks, to wake once the lock is let go:
    /// each registers again if it still waits.
    pub fn app_wakers(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.app)
    }

    /// The waiting application tasks to wake for the driver's news since
    /// last asked (none if there is none).
    pub fn wakers_for_news(&mut self) -> Vec<Waker> {
        if self.take_news() {
            self.app_wakers()
        } else {
            Vec::new()
        }
    }

    /// One more handle of the application.
    pub fn add_handle(&mut self) {
        self.handles += 1;
    }

    /// One handle fewer: whether it was the last, in which case the
    /// connection is closed ([`Mailbox::abandon`]); wake the driver.
    pub fn drop_handle(&mut self) -> bool {
        self.handles = self.handles.saturating_sub(1);
        let last = self.handles == 0;
        if last {
            self.abandon();
        }
        last
    }

    /// The drive loop's first step: write what the transport takes, hand
    /// the events to the application, and follow its backlog.
    pub fn send_step(&mut self, peer: PeerName, counters: &Counters, io: &mut impl Transfer) -> Flushed {
        let queued_before = self.session.queued_bytes();
        let now = clock::now();
        let mut written = 0;
        let drop_when_full = io.drops_when_full();
        let mut flushed = flush(
            &mut self.session,
            now,
            |bytes| {
                let n = io.write(bytes)?;
                written += n;
                Ok(n)
            },
            drop_when_full,
        );
        if flushed == Flushed::Done {
            if let Err(e) = io.flush() {
                if e.kind() == io::ErrorKind::WouldBlock {
                    flushed = Flushed::Blocked;
                } else {
                    self.session.handle_eof(now);
                    flushed = Flushed::Failed;
                }
            }
        }
        counters.add_bytes(0, written);
        self.follow_backlog();
        // Wake the application only for news: events, or room for a
        // sender that waits for it (a PONG leaving is no news).
        let room = self.sender_waiting && self.session.queued_bytes() < queued_before;
        if self.drain_events(peer, counters) || room {
            self.sender_waiting &= !room;
            self.news = true;
        }
        flushed
    }

    /// Reads what the transport has (within a budget), handing it to the
    /// session and its events to the application. Returns whether anything
    /// was read, and whether more may be waiting.
    pub fn receive_step(&mut self, peer: PeerName, counters: &Counters, io: &mut impl Transfer) -> (bool, bool) {
        let datagram = io.is_datagram();
        let short_read_drains = io.short_read_drains();
        let mut total = 0;
        let mut any = false;
        let mut more = false;
        for _ in 0..READS_PER_STEP {
            let (outcome, n) = if datagram {
                read_datagram(&mut self.session, 1, |buf| io.read(buf))
            } else {
                read_stream(&mut self.session, 1, short_read_drains, |buf| io.read(buf))
            };
            total += n;
            any |= n > 0 || outcome == Read::Closed;
            if self.drain_events(peer, counters) {
                self.news = true;
            }
            self.follow_backlog();
            more = outcome == Read::More;
            if !more || self.session.is_input_paused() {
                break;
            }
        }
        counters.add_bytes(total, 0);
        (any, more)
    }

    /// A datagram a UDP listener's router read for this peer. While the
    /// application is behind, datagrams are dropped, as UDP may. Returns
    /// whether it was taken (wake the driver).
    pub fn deliver_datagram(&mut self, counters: &Counters, datagram: &[u8]) -> bool {
        if self.finished || self.session.is_input_paused() {
            return false;
        }
        self.session.handle_datagram(clock::now(), datagram);
        counters.add_bytes(datagram.len(), 0);
        true
    }

    /// The driver is done, or dropped while the session runs: closes at
    /// once ("going away"), giving the CLOSE to the transport if it takes
    /// it now, and counts the connection off. Tell the application after.
    pub fn finish(&mut self, peer: PeerName, counters: &Counters, io: &mut impl Transfer) {
        if !self.session.is_closed() {
            let _going_away_is_sendable = self
                .session
                .abort(clock::now(), CloseCode::GOING_AWAY, "driver dropped");
            let drop_when_full = io.drops_when_full();
            flush(&mut self.session, clock::now(), |b| io.write(b), drop_when_full);
        }
        self.drain_events(peer, counters);
        self.finished = true;
        counters.on_gone(&self.session);
    }

    /// The last handle of the application is gone: nobody can use the
    /// connection any more, so it closes rather than keep a driver
    /// heartbeating for no one. Wake the driver after.
    pub fn abandon(&mut self) {
        let _normal_is_sendable = self
            .session
            .close(clock::now(), CloseCode::NORMAL, "all handles dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_proto::{Config, Role};

    #[test]
    fn unread_informational_events_are_bounded_and_closed_stays() {
        let session = Session::new(Config::default(), Role::Client, clock::now(), 1).unwrap();
        let mut mailbox = Mailbox::new(session);
        for _ in 0..MAX_LOSSY_EVENTS + 10 {
            mailbox.push(Event::SendReady);
        }
        assert_eq!(mailbox.events_dropped(), 10);
        mailbox.push(Event::Closed(Closed::new(CloseCode::NORMAL, "", Initiator::Peer)));
        for _ in 0..MAX_LOSSY_EVENTS {
            assert_eq!(mailbox.pop(), Some(Event::SendReady));
        }
        for _ in 0..3 {
            assert!(matches!(mailbox.pop(), Some(Event::Closed(_))));
        }
    }

    #[test]
    fn empty_messages_fill_the_receive_buffer_by_their_slots() {
        let session = Session::new(Config::default(), Role::Client, clock::now(), 1).unwrap();
        let mut mailbox = Mailbox::new(session);
        let slots = 100;
        mailbox.set_recv_buffer(slots * std::mem::size_of::<Event>());
        let empty = || Event::Message {
            tag: 1,
            payload: Bytes::new(),
        };
        for _ in 0..slots - 1 {
            mailbox.push(empty());
        }
        assert!(!mailbox.is_behind());
        mailbox.push(empty());
        assert!(mailbox.is_behind(), "unread empty messages cost nothing");
        assert_eq!(mailbox.pop_for_app(), (Some(empty()), true), "one read: caught up");
        while mailbox.pop().is_some() {}
        assert_eq!(mailbox.inbound_bytes, 0);
    }
}
