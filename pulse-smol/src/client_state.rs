//! The reconnecting client's state, shared by its handles and its
//! supervisor: what the application has yet to read, and the connection
//! that is up. The supervisor only ever adds to it, never waits on it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use event_listener::EventListener;
use pulse_proto::{Event, Learned};

use crate::connection::Connection;
use crate::reconnect::ClientEvent;

/// Transitions (`Connecting`, `Lost`) kept for an application that does
/// not read them; older ones are dropped beyond this, and counted. The
/// supervisor never waits for the application.
pub const MAX_UNREAD_TRANSITIONS: usize = 64;
/// Ended connections whose unread events are kept; the oldest is dropped
/// (and counted) beyond this. Each holds at most its receive buffer.
pub const MAX_UNREAD_CONNECTIONS: usize = 4;

enum Entry {
    Transition(ClientEvent),
    /// The application reads this connection's events, up to its Closed.
    Connection(Connection),
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    /// The connection that is up, once its handshake completed.
    current: Option<Connection>,
    /// Entries dropped for an application that did not read them.
    dropped: u64,
    /// The ending, once the supervisor is done: every later `recv` sees it.
    ended: Option<ClientEvent>,
    /// What the connections learned of the path, for the next one.
    learned: Option<Learned>,
    /// Whether the application said it is active.
    active: bool,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    pub(crate) to_app: event_listener::Event,
    to_supervisor: event_listener::Event,
    /// `close` was called, or every handle dropped.
    stop: AtomicBool,
}

/// What `recv` finds.
pub(crate) enum Next {
    /// The next event.
    Event(ClientEvent),
    /// Nothing yet: wait for the client's news, and the connection's.
    Wait(Option<EventListener>),
}

impl Inner {
    pub(crate) fn new(learned: Option<Learned>) -> Inner {
        Inner {
            state: Mutex::new(State {
                learned,
                ..State::default()
            }),
            to_app: event_listener::Event::new(),
            to_supervisor: event_listener::Event::new(),
            stop: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
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

    /// Queues a transition, never waiting: beyond the limit the oldest
    /// unread one goes.
    pub(crate) fn report(&self, event: ClientEvent) {
        {
            let mut state = self.lock();
            let transitions = state.queue.iter().filter(|e| matches!(e, Entry::Transition(_))).count();
            if transitions >= MAX_UNREAD_TRANSITIONS {
                let oldest = state
                    .queue
                    .iter()
                    .position(|e| matches!(e, Entry::Transition(t) if !t.is_ending()));
                if let Some(i) = oldest {
                    state.queue.remove(i);
                    state.dropped += 1;
                }
            }
            state.queue.push_back(Entry::Transition(event));
        }
        self.to_app.notify(usize::MAX);
    }

    /// A connection is up: the application reads its events next.
    pub(crate) fn attach(&self, conn: &Connection) {
        {
            let mut state = self.lock();
            let connections = state.queue.iter().filter(|e| matches!(e, Entry::Connection(_))).count();
            if connections >= MAX_UNREAD_CONNECTIONS {
                if let Some(i) = state.queue.iter().position(|e| matches!(e, Entry::Connection(_))) {
                    state.queue.remove(i);
                    state.dropped += 1;
                }
            }
            state.queue.push_back(Entry::Connection(conn.clone()));
            state.current = Some(conn.clone());
        }
        self.to_app.notify(usize::MAX);
    }

    /// The connection is over: keep what it learned.
    pub(crate) fn detach(&self, conn: &Connection) {
        let learned = conn.learned();
        let mut state = self.lock();
        state.current = None;
        state.learned = learned.or(state.learned);
    }

    /// Gives a new connection, before its handshake, what the client knows:
    /// the path's learned value and whether the application is active.
    pub(crate) fn prepare(&self, conn: &Connection) {
        let (learned, active) = {
            let state = self.lock();
            (state.learned, state.active)
        };
        if let Some(learned) = learned {
            conn.set_learned(learned);
        }
        if active {
            conn.set_active(true);
        }
    }

    /// What the client knows of the path: the current connection's
    /// learning, or the last one's.
    pub(crate) fn learned(&self) -> Option<Learned> {
        let state = self.lock();
        state.current.as_ref().and_then(Connection::learned).or(state.learned)
    }

    /// Records the application's activity, and tells the connection that
    /// is up.
    pub(crate) fn set_active(&self, active: bool) {
        let current = {
            let mut state = self.lock();
            state.active = active;
            state.current.clone()
        };
        if let Some(conn) = current {
            conn.set_active(active);
        }
    }

    /// Ends with `last`: queued, and returned by every `recv` after.
    pub(crate) fn end(&self, last: ClientEvent) {
        {
            let mut state = self.lock();
            state.queue.push_back(Entry::Transition(last.clone()));
            state.ended = Some(last);
            state.current = None;
        }
        self.to_app.notify(usize::MAX);
    }
}

impl Inner {
    /// The next event for the application: a transition, or the next
    /// event of the connection it is reading (its `Closed` last).
    pub(crate) fn take_next(&self) -> Next {
        let mut state = self.lock();
        match state.queue.front() {
            Some(Entry::Transition(_)) => match state.queue.pop_front() {
                Some(Entry::Transition(event)) => Next::Event(event),
                _ => unreachable!("the front was a transition"),
            },
            Some(Entry::Connection(conn)) => match conn.try_recv() {
                Some(Event::Closed(closed)) => {
                    state.queue.pop_front();
                    Next::Event(ClientEvent::Event(Event::Closed(closed)))
                }
                Some(event) => Next::Event(ClientEvent::Event(event)),
                None => Next::Wait(Some(conn.shared().to_app.listen())),
            },
            None => match &state.ended {
                Some(last) => Next::Event(last.clone()),
                None => Next::Wait(None),
            },
        }
    }

    /// The connection that is up, if one is.
    pub(crate) fn current(&self) -> Option<Connection> {
        self.lock().current.clone()
    }

    /// Entries dropped unread.
    pub(crate) fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Whether the ending was reported.
    pub(crate) fn has_ended(&self) -> bool {
        self.lock().ended.is_some()
    }
}
