//! The reconnecting client's state, shared by its handles and its
//! supervisor: pulse-driver's queue of what the application has yet to
//! read, and the wakers around it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::MutexGuard;

use event_listener::EventListener;
use pulse_driver::{ClientEvent, ClientOptions, ClientQueue, ClientState};

use crate::connection::Connection;

// The reconnecting client's view of a connection: its own methods.
pulse_driver::delegate_inbox!(Connection);

pub(crate) struct Inner {
    /// What the application's calls reach ([`ReconnectingClient`](crate::ReconnectingClient)
    /// dereferences to it).
    pub(crate) state: ClientState<Connection>,
    pub(crate) to_app: event_listener::Event,
    to_supervisor: event_listener::Event,
    /// `close` was called, or every handle dropped.
    stop: AtomicBool,
}

impl Inner {
    pub(crate) fn new(options: &ClientOptions) -> Inner {
        Inner {
            state: ClientState::new(ClientQueue::new(options)),
            to_app: event_listener::Event::new(),
            to_supervisor: event_listener::Event::new(),
            stop: AtomicBool::new(false),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ClientQueue<Connection>> {
        ClientState::queue(&self.state)
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
}
