//! The reconnecting client's state, shared by its handles and its
//! supervisor: pulse-driver's queue of what the application has yet to
//! read, and the wakers around it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use event_listener::EventListener;
use pulse_driver::{ClientEvent, ClientQueue, Inbox};
use pulse_proto::{Event, Learned};

use crate::connection::Connection;

impl Inbox for Connection {
    fn try_recv(&self) -> Option<Event> {
        Connection::try_recv(self)
    }
    fn learned(&self) -> Option<Learned> {
        Connection::learned(self)
    }
    fn set_learned(&self, learned: Learned) {
        Connection::set_learned(self, learned);
    }
    fn set_active(&self, active: bool) {
        Connection::set_active(self, active);
    }
    fn take_unsent(&self) -> Vec<(u16, Bytes)> {
        Connection::take_unsent(self)
    }
    fn send_now(&self, tag: u16, payload: Bytes) -> bool {
        Connection::send_now(self, tag, payload)
    }
}

pub(crate) struct Inner {
    state: Mutex<ClientQueue<Connection>>,
    pub(crate) to_app: event_listener::Event,
    to_supervisor: event_listener::Event,
    /// `close` was called, or every handle dropped.
    stop: AtomicBool,
}

impl Inner {
    pub(crate) fn new(learned: Option<Learned>) -> Inner {
        let mut queue = ClientQueue::default();
        queue.start_from(learned);
        Inner {
            state: Mutex::new(queue),
            to_app: event_listener::Event::new(),
            to_supervisor: event_listener::Event::new(),
            stop: AtomicBool::new(false),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ClientQueue<Connection>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.to_supervisor.notify(usize::MAX);
    }

    /// Waits until the client is told to stop.
    pub(crate) async fn stopped(&self) {
        loop {
            let changed = self.to_supervisor.listen();
            if self.is_stopping() {
                return;
            }
            changed.await;
        }
    }

    /// Changes the queue, then wakes the application.
    pub(crate) fn tell(&self, change: impl FnOnce(&mut ClientQueue<Connection>)) {
        change(&mut self.lock());
        self.to_app.notify(usize::MAX);
    }

    /// The next event, or what to wait on for it: the client's news and,
    /// while the application reads a connection, that connection's.
    pub(crate) fn take_next(&self) -> Result<ClientEvent, Option<EventListener>> {
        let mut state = self.lock();
        // Listen before looking, so news in between is not lost.
        let from_connection = state.reading().map(|conn| conn.shared().to_app.listen());
        state.take_next().ok_or(from_connection)
    }

    /// The connection that is up, if one is.
    pub(crate) fn current(&self) -> Option<Connection> {
        self.lock().current().cloned()
    }
}
