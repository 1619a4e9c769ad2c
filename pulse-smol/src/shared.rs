//! The state a connection's driver and its handles share.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use atomic_waker::AtomicWaker;
use pulse_driver::{clock, log, Counters, CountersSnapshot};
use pulse_proto::{CloseCode, Closed, Event, Initiator, Negotiated, Session};

/// Inbound bytes an application may leave unread before the driver stops
/// reading the transport (TCP then slows the peer down).
pub const DEFAULT_RECV_BUFFER: usize = 1024 * 1024;
/// Informational events (RTT, suspect, recovered, send-ready, peer status)
/// kept for an application that does not read them; later ones are
/// dropped beyond this, and counted.
pub const MAX_LOSSY_EVENTS: usize = 64;

/// Every connection of this process, counted together.
static COUNTERS: Counters = Counters::new();

/// pulse-smol's aggregate counters for this process: connections open,
/// verdicts, refusals and closes by code and initiator, bytes in and out.
///
/// # Examples
///
/// ```
/// let counters = pulse_smol::counters();
/// println!("{} open, {} verdicts", counters.open, counters.verdicts);
/// ```
pub fn counters() -> CountersSnapshot {
    COUNTERS.snapshot()
}

pub(crate) fn count() -> &'static Counters {
    &COUNTERS
}

/// Whether an event only informs: its news is also in the connection's
/// accessors, so it may be dropped for an application that falls behind.
/// Any other event, including any the core adds later, is kept.
fn is_lossy(event: &Event) -> bool {
    matches!(
        event,
        Event::Rtt(_) | Event::Suspect { .. } | Event::Recovered { .. } | Event::SendReady | Event::PeerStatus(_)
    )
}

/// The peer's address, for logs: the socket's, or `stream` for a byte
/// stream the application handed over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerName(pub(crate) Option<SocketAddr>);

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("stream"),
        }
    }
}

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Handles to the driver (one task): output queued, close asked,
    /// inbound drained. A single waker slot, never allocated.
    pub(crate) driver_waker: AtomicWaker,
    /// Driver to handles: inbound arrived, output drained, closed.
    pub(crate) to_app: event_listener::Event,
    handles: AtomicUsize,
    pub(crate) peer: PeerName,
    pub(crate) local: Option<SocketAddr>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection").field("peer", &self.peer.0).finish()
    }
}

pub(crate) struct Inner {
    pub(crate) session: Session,
    inbound: VecDeque<Event>,
    inbound_bytes: usize,
    lossy: usize,
    pub(crate) recv_buffer: usize,
    pub(crate) events_dropped: u64,
    pub(crate) negotiated: Option<Negotiated>,
    pub(crate) closed: Option<Closed>,
    /// The driver has finished: the transport is dropped.
    pub(crate) finished: bool,
    /// The driver has news for the application (told once it lets go of
    /// the lock).
    pub(crate) news: bool,
}

/// A driver's timer wakes the driver through its waker slot, whatever task
/// polls it now.
impl std::task::Wake for Shared {
    fn wake(self: std::sync::Arc<Self>) {
        self.driver_waker.wake();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.driver_waker.wake();
    }
}

impl Shared {
    pub(crate) fn new(session: Session, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Shared {
        Shared {
            inner: Mutex::new(Inner {
                session,
                inbound: VecDeque::new(),
                inbound_bytes: 0,
                lossy: 0,
                recv_buffer: DEFAULT_RECV_BUFFER,
                events_dropped: 0,
                negotiated: None,
                closed: None,
                finished: false,
                news: false,
            }),
            driver_waker: AtomicWaker::new(),
            to_app: event_listener::Event::new(),
            handles: AtomicUsize::new(0),
            peer: PeerName(peer),
            local,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take every connection down with it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// The last handle is gone: nobody can use the connection any more, so
    /// close it rather than keep a driver heartbeating for no one.
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _normal_is_sendable = self
                .lock()
                .session
                .close(clock::now(), CloseCode::NORMAL, "all handles dropped");
            self.driver_waker.wake();
        }
    }
}

impl Inner {
    /// Moves the session's events to the application's queue, counting and
    /// logging them on the way. Every event is delivered as the core gave
    /// it, so none can be lost in translation. Returns whether the
    /// application has anything new.
    pub(crate) fn drain_events(&mut self, peer: PeerName) -> bool {
        let mut any = false;
        while let Some(event) = self.session.poll_event() {
            count().on_event(&event);
            match &event {
                Event::Connected(negotiated) => {
                    log::opened(peer, negotiated);
                    self.negotiated = Some(*negotiated);
                }
                Event::PeerDead { silent_for } => log::verdict(peer, *silent_for),
                Event::Closed(closed) => {
                    log::closed(peer, closed);
                    self.closed = Some(closed.clone());
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
        }
        if let Event::Message { payload, .. } = &event {
            self.inbound_bytes += payload.len();
        }
        self.inbound.push_back(event);
    }

    /// The next item for the application. `Closed` stays, so every later
    /// call sees it too.
    pub(crate) fn pop(&mut self) -> Option<Event> {
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
        }
        if let Event::Message { payload, .. } = &event {
            self.inbound_bytes -= payload.len();
        }
        Some(event)
    }

    /// Whether the application is this far behind: reading must pause.
    pub(crate) fn is_behind(&self) -> bool {
        self.inbound_bytes >= self.recv_buffer
    }

    /// Tells the core whether reading is paused by the application's
    /// backlog; the core then judges the peer's silence accordingly.
    pub(crate) fn follow_backlog(&mut self) {
        let behind = self.is_behind();
        if behind != self.session.is_input_paused() {
            if behind {
                self.session.pause_input(clock::now());
            } else {
                self.session.resume_input(clock::now());
            }
        }
    }

    /// How the connection ended, for errors: the real outcome once known.
    pub(crate) fn closed_or_pending(&self) -> Closed {
        self.closed
            .clone()
            .unwrap_or_else(|| Closed::new(CloseCode::NORMAL, "closing", Initiator::Local))
    }
}
