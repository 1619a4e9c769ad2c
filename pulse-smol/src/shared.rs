//! The state a connection's driver and its handles share.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use atomic_waker::AtomicWaker;
use event_listener::Event;
use pulse_proto::{CloseCode, Closed, Event as ProtoEvent, Initiator, Negotiated, Session};

use crate::incoming::Incoming;

/// Inbound bytes an application may leave unread before the driver stops
/// reading the socket (TCP then slows the peer down).
pub const DEFAULT_RECV_BUFFER: usize = 1024 * 1024;
/// Informational events (RTT, suspect, recovered) kept for an application
/// that does not read them; older ones are dropped beyond this.
const MAX_LOSSY_EVENTS: usize = 64;

pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Handles to the driver (one task): output queued, close asked,
    /// inbound drained. A single waker slot, never allocated.
    pub(crate) driver_waker: AtomicWaker,
    /// Driver to handles: inbound arrived, output drained, closed.
    pub(crate) to_app: Event,
    handles: AtomicUsize,
}

pub(crate) struct Inner {
    pub(crate) session: Session,
    pub(crate) inbound: VecDeque<Incoming>,
    inbound_bytes: usize,
    lossy: usize,
    pub(crate) recv_buffer: usize,
    pub(crate) events_dropped: u64,
    pub(crate) negotiated: Option<Negotiated>,
    pub(crate) closed: Option<Closed>,
    /// The driver has finished: the socket is closed.
    pub(crate) finished: bool,
}

impl Shared {
    pub(crate) fn new(session: Session) -> Shared {
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
            }),
            driver_waker: AtomicWaker::new(),
            to_app: Event::new(),
            handles: AtomicUsize::new(0),
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
            let _normal_is_sendable =
                self.lock()
                    .session
                    .close(crate::clock::now(), CloseCode::NORMAL, "all handles dropped");
            self.driver_waker.wake();
        }
    }
}

impl Inner {
    /// Moves the session's events to the application's queue. Returns
    /// whether the application has anything new.
    pub(crate) fn drain_events(&mut self) -> bool {
        let mut any = false;
        while let Some(event) = self.session.poll_event() {
            let item = match event {
                ProtoEvent::Connected(n) => {
                    self.negotiated = Some(n);
                    Incoming::Connected(n)
                }
                ProtoEvent::Message { tag, payload } => Incoming::Message { tag, payload },
                ProtoEvent::Rtt(sample) => Incoming::Rtt(sample),
                ProtoEvent::Suspect { silent_for } => Incoming::Suspect { silent_for },
                ProtoEvent::Recovered { silent_for } => Incoming::Recovered { silent_for },
                ProtoEvent::PeerDead { silent_for } => Incoming::PeerDead { silent_for },
                ProtoEvent::Closed(closed) => {
                    self.closed = Some(closed.clone());
                    Incoming::Closed(closed)
                }
                _ => continue,
            };
            self.push(item);
            any = true;
        }
        any
    }

    fn push(&mut self, item: Incoming) {
        if item.is_lossy() {
            if self.lossy >= MAX_LOSSY_EVENTS {
                self.events_dropped += 1;
                return;
            }
            self.lossy += 1;
        }
        if let Incoming::Message { payload, .. } = &item {
            self.inbound_bytes += payload.len();
        }
        self.inbound.push_back(item);
    }

    /// The next item for the application. `Closed` stays, so every later
    /// call sees it too.
    pub(crate) fn pop(&mut self) -> Option<Incoming> {
        match self.inbound.front()? {
            Incoming::Closed(_) if self.inbound.len() == 1 => return self.inbound.front().cloned(),
            _ => {}
        }
        let item = self.inbound.pop_front()?;
        if self.inbound.is_empty() {
            // An idle connection keeps no queue memory.
            self.inbound = VecDeque::new();
        }
        if item.is_lossy() {
            self.lossy -= 1;
        }
        if let Incoming::Message { payload, .. } = &item {
            self.inbound_bytes -= payload.len();
        }
        Some(item)
    }

    /// Whether reading must pause: the application is this far behind.
    pub(crate) fn reading_paused(&self) -> bool {
        self.inbound_bytes >= self.recv_buffer
    }

    /// How the connection ended, for errors: the real outcome once known.
    pub(crate) fn closed_or_pending(&self) -> Closed {
        self.closed
            .clone()
            .unwrap_or_else(|| Closed::new(CloseCode::NORMAL, "closing", Initiator::Local))
    }
}
