//! The messages a reconnecting client keeps for its next connection, in
//! the order the application sent them.
//!
//! One rule keeps that order: everything a connection took is older than
//! everything waiting. A connection takes only from the front (a new one
//! first takes all it has room for, the client's delivery the rest as room
//! frees), or directly from the application while nothing waits; so what
//! it hands back when it ends goes in front.

use std::collections::VecDeque;

use bytes::Bytes;
use pulse_proto::{CloseCode, Closed, Initiator};

use crate::{Error, Inbox};

#[derive(Debug)]
pub(crate) struct Waiting {
    /// The front message while [`crate::ClientState::deliver`] waits for
    /// the connection to take it: still first, and nothing may overtake it.
    in_flight: Option<(u16, Bytes)>,
    messages: VecDeque<(u16, Bytes)>,
    /// Messages a connection refused as too large for its peer: set
    /// aside for the application ([`Waiting::take`]), older than all that
    /// waits, so that they hold nothing up. Counted against the limit.
    refused: Vec<(u16, Bytes)>,
    /// How many the application may make wait ([`crate::ClientOptions::max_queued`]).
    limit: usize,
}

impl Waiting {
    pub(crate) fn new(limit: usize) -> Waiting {
        Waiting {
            in_flight: None,
            messages: VecDeque::new(),
            refused: Vec::new(),
            limit,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len() + self.refused.len() + usize::from(self.in_flight.is_some())
    }

    /// A message of the application's: behind the others, if there is
    /// room.
    pub(crate) fn push(&mut self, tag: u16, payload: Bytes) -> Result<(), Error> {
        if self.len() >= self.limit {
            return Err(Error::QueueFull { limit: self.limit });
        }
        self.messages.push_back((tag, payload));
        Ok(())
    }

    /// What an ended connection never began to send: older than all that
    /// waits, so in front. Kept even beyond the limit: the connection had
    /// accepted them, and they are bounded by its own queue.
    pub(crate) fn hand_back(&mut self, unsent: Vec<(u16, Bytes)>) {
        self.undelivered();
        for message in unsent.into_iter().rev() {
            self.messages.push_front(message);
        }
    }

    /// Gives `conn` what waits, in order, until it refuses one (a full
    /// queue, or a message too large for its peer, which the delivery
    /// sets aside: the rest waits behind, as order matters more than
    /// this connection). Whether all went.
    pub(crate) fn offer(&mut self, conn: &impl Inbox) -> bool {
        if self.in_flight.is_some() {
            return false; // the delivery sends them, in order
        }
        while let Some((tag, payload)) = self.messages.pop_front() {
            if !conn.send_now(tag, payload.clone()) {
                self.messages.push_front((tag, payload));
                return false;
            }
        }
        true
    }

    /// The front message, for the delivery to send: it stays first
    /// until [`Waiting::delivered`] or [`Waiting::undelivered`].
    pub(crate) fn start_delivery(&mut self) -> Option<(u16, Bytes)> {
        if self.in_flight.is_none() {
            self.in_flight = self.messages.pop_front();
        }
        self.in_flight.clone()
    }

    /// The connection took the message being delivered.
    pub(crate) fn delivered(&mut self) {
        self.in_flight = None;
    }

    /// The connection refused the message being delivered as too large
    /// for its peer: set aside for the application, as the next
    /// connection, most likely to the same server, would refuse it too.
    pub(crate) fn set_aside(&mut self) {
        if let Some(message) = self.in_flight.take() {
            self.refused.push(message);
        }
    }

    /// The message being delivered was not taken: first again.
    pub(crate) fn undelivered(&mut self) {
        if let Some(message) = self.in_flight.take() {
            self.messages.push_front(message);
        }
    }

    /// What waits, for the application: not the message the delivery is
    /// handing to the connection this moment, as the connection may take
    /// it yet (it would be both sent and handed back). If the connection
    /// ends first, it waits again, first ([`Waiting::undelivered`]).
    pub(crate) fn take(&mut self) -> Vec<(u16, Bytes)> {
        let mut all = std::mem::take(&mut self.refused);
        all.extend(std::mem::take(&mut self.messages));
        all
    }
}

/// What sending on a client that has ended fails with.
pub(crate) fn client_ended() -> Error {
    Error::Closed(Closed::new(CloseCode::LOST, "the client has ended", Initiator::Local))
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use pulse_proto::{Event, Learned};

    use crate::{ClientOptions, ClientQueue, Error, Inbox};

    /// A connection that takes up to `room` messages and, once closed,
    /// hands back those it took. Its `send` fails at once when there is no
    /// room, unless it was made to wait for room ([`Fake::waiting_for_room`]).
    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<FakeState>>);

    /// What it took, its room, whether closed, whether `send` waits for
    /// room, the largest payload its peer takes.
    type FakeState = (Vec<u16>, usize, bool, bool, usize);

    impl Fake {
        fn with_room(room: usize) -> Fake {
            Fake(Arc::new(Mutex::new((Vec::new(), room, false, false, usize::MAX))))
        }
        fn waiting_for_room(room: usize) -> Fake {
            Fake(Arc::new(Mutex::new((Vec::new(), room, false, true, usize::MAX))))
        }
        /// A peer that takes payloads of at most `max` bytes.
        fn taking_at_most(max: usize) -> Fake {
            Fake(Arc::new(Mutex::new((Vec::new(), 10, false, true, max))))
        }
        fn took(&self) -> Vec<u16> {
            self.0.lock().unwrap().0.clone()
        }
        fn close(&self) {
            self.0.lock().unwrap().2 = true;
        }
    }

    impl Inbox for Fake {
        fn try_recv(&self) -> Option<Event> {
            None
        }
        fn learned(&self) -> Option<Learned> {
            None
        }
        fn set_learned(&self, _: Learned) {}
        fn set_active(&self, _: bool) {}
        fn take_unsent(&self) -> Vec<(u16, Bytes)> {
            let took = std::mem::take(&mut self.0.lock().unwrap().0);
            took.into_iter().map(|tag| (tag, Bytes::new())).collect()
        }
        fn send_now(&self, tag: u16, payload: Bytes) -> bool {
            let mut state = self.0.lock().unwrap();
            let taken = !state.2 && state.0.len() < state.1 && payload.len() <= state.4;
            if taken {
                state.0.push(tag);
            }
            taken
        }
        fn send(&self, tag: u16, payload: Bytes) -> impl Future<Output = Result<(), Error>> + Send {
            let conn = self.clone();
            std::future::poll_fn(move |_| {
                let (waits, max) = {
                    let state = conn.0.lock().unwrap();
                    (state.3, state.4)
                };
                if payload.len() > max {
                    return std::task::Poll::Ready(Err(Error::TooLarge {
                        len: payload.len(),
                        max,
                    }));
                }
                if conn.send_now(tag, payload.clone()) {
                    std::task::Poll::Ready(Ok(()))
                } else if waits && !conn.is_closed() {
                    std::task::Poll::Pending // for room, polled again by the test
                } else {
                    std::task::Poll::Ready(Err(super::client_ended()))
                }
            })
        }
        fn is_closed(&self) -> bool {
            self.0.lock().unwrap().2
        }
        fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
            Err(std::io::ErrorKind::NotConnected.into())
        }
        fn rtt(&self) -> Option<std::time::Duration> {
            None
        }
    }

    fn route(queue: &mut ClientQueue<Fake>, tag: u16) -> Option<Fake> {
        queue.route(tag, Bytes::new()).expect("routed")
    }

    #[test]
    fn what_a_lost_connection_hands_back_goes_before_what_was_sent_after_it_closed() {
        let mut queue = ClientQueue::new(&ClientOptions::default());
        let first = Fake::with_room(10);
        queue.attach(&first);
        for tag in [1, 2] {
            route(&mut queue, tag)
                .expect("the connection")
                .send_now(tag, Bytes::new());
        }
        first.close();
        assert!(route(&mut queue, 3).is_none(), "closed, not yet detached: queued");
        queue.detach();
        assert!(route(&mut queue, 4).is_none(), "between connections: queued");
        let next = Fake::with_room(10);
        queue.attach(&next);
        assert_eq!(next.took(), [1, 2, 3, 4]);
        assert!(route(&mut queue, 5).is_some(), "nothing waits: straight to it");
    }

    #[test]
    fn a_message_never_overtakes_one_the_connection_refused() {
        let mut queue = ClientQueue::new(&ClientOptions::default().with_max_queued(3));
        for tag in [1, 2, 3] {
            assert!(route(&mut queue, tag).is_none());
        }
        assert!(matches!(
            queue.route(4, Bytes::new()),
            Err(Error::QueueFull { limit: 3 })
        ));
        let full = Fake::with_room(1);
        queue.attach(&full);
        assert_eq!(full.took(), [1]);
        assert!(route(&mut queue, 4).is_none(), "behind 2 and 3, which still wait");
        full.0.lock().unwrap().1 = 10; // room again
        assert!(route(&mut queue, 5).is_some(), "the waiting went first");
        assert_eq!(full.took(), [1, 2, 3, 4]);
    }

    #[test]
    fn after_the_end_nothing_is_queued_and_what_waits_is_handed_back() {
        let mut queue = ClientQueue::<Fake>::new(&ClientOptions::default());
        assert!(route(&mut queue, 1).is_none());
        queue.end(crate::ClientEvent::Stopped);
        assert!(matches!(queue.route(2, Bytes::new()), Err(Error::Closed(_))));
        assert!(matches!(queue.requeue(2, Bytes::new()), Err(Error::Closed(_))));
        let unsent: Vec<u16> = queue.take_unsent().into_iter().map(|(tag, _)| tag).collect();
        assert_eq!(unsent, [1]);
    }

    #[test]
    fn a_message_the_connection_ended_before_taking_waits_for_the_next() {
        let state = crate::ClientState::new(ClientQueue::new(&ClientOptions::default()));
        let ending = Fake::with_room(0); // takes nothing: its send fails as closed
        crate::ClientState::queue(&state).attach(&ending);
        let mut send = std::pin::pin!(state.send(1, "late"));
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            matches!(send.as_mut().poll(cx), std::task::Poll::Ready(Ok(()))),
            "queued, not failed"
        );
        assert_eq!(state.queued(), 1);
        ending.close();
        crate::ClientState::queue(&state).detach();
        let next = Fake::with_room(10);
        crate::ClientState::queue(&state).attach(&next);
        assert_eq!(next.took(), [1]);
    }

    #[test]
    fn the_delivery_sends_what_waits_in_order_and_keeps_what_was_refused_first() {
        let state = crate::ClientState::new(ClientQueue::new(&ClientOptions::default()));
        for tag in [1, 2, 3] {
            assert!(route(&mut crate::ClientState::queue(&state), tag).is_none());
        }
        let conn = Fake::with_room(1);
        crate::ClientState::queue(&state).attach(&conn);
        assert_eq!(conn.took(), [1], "no room for more yet");
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        let mut deliver = std::pin::pin!(crate::ClientState::deliver(&state, &conn));
        assert!(deliver.as_mut().poll(cx).is_ready(), "refused: it stops");
        assert_eq!(state.queued(), 2, "2 and 3 still wait");
        assert!(
            route(&mut crate::ClientState::queue(&state), 4).is_none(),
            "behind them"
        );
        conn.0.lock().unwrap().1 = 10; // room again
        let mut deliver = std::pin::pin!(crate::ClientState::deliver(&state, &conn));
        assert!(deliver.as_mut().poll(cx).is_ready());
        assert_eq!(conn.took(), [1, 2, 3, 4]);
        assert_eq!(state.queued(), 0);
    }

    #[test]
    fn a_message_the_delivery_is_handing_over_is_never_both_sent_and_handed_back() {
        let state = crate::ClientState::new(ClientQueue::new(&ClientOptions::default()));
        for tag in [1, 2, 3] {
            assert!(route(&mut crate::ClientState::queue(&state), tag).is_none());
        }
        let conn = Fake::waiting_for_room(1);
        crate::ClientState::queue(&state).attach(&conn);
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        let mut deliver = std::pin::pin!(crate::ClientState::deliver(&state, &conn));
        assert!(deliver.as_mut().poll(cx).is_pending(), "2 waits for room");
        let handed_back: Vec<u16> = state.take_unsent().into_iter().map(|(tag, _)| tag).collect();
        conn.0.lock().unwrap().1 = 10; // room again
        assert!(deliver.as_mut().poll(cx).is_ready());
        let sent = conn.took();
        assert!(
            handed_back.iter().all(|tag| !sent.contains(tag)),
            "sent {sent:?}, handed back {handed_back:?}"
        );
        let mut all: Vec<u16> = sent.iter().chain(&handed_back).copied().collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3], "none lost");
    }

    #[test]
    fn a_message_being_handed_over_when_the_connection_ends_is_handed_back_once() {
        let state = crate::ClientState::new(ClientQueue::new(&ClientOptions::default()));
        for tag in [1, 2, 3] {
            assert!(route(&mut crate::ClientState::queue(&state), tag).is_none());
        }
        let conn = Fake::waiting_for_room(1);
        crate::ClientState::queue(&state).attach(&conn);
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        {
            let mut deliver = std::pin::pin!(crate::ClientState::deliver(&state, &conn));
            assert!(deliver.as_mut().poll(cx).is_pending(), "2 waits for room");
            assert_eq!(state.take_unsent().len(), 1, "3 only: 2 is being handed over");
            conn.close();
            assert!(deliver.as_mut().poll(cx).is_ready(), "refused: closed");
        }
        crate::ClientState::queue(&state).detach();
        let unsent: Vec<u16> = state.take_unsent().into_iter().map(|(tag, _)| tag).collect();
        assert_eq!(unsent, [1, 2], "what the connection took, then the one it never took");
    }

    #[test]
    fn a_queued_message_too_large_for_the_new_peer_is_set_aside_and_blocks_nothing() {
        let state = crate::ClientState::new(ClientQueue::new(&ClientOptions::default()));
        let mut queue = crate::ClientState::queue(&state);
        assert!(queue.route(1, Bytes::from_static(b"small")).expect("queued").is_none());
        assert!(queue.route(2, Bytes::from(vec![0; 100])).expect("queued").is_none());
        assert!(queue.route(3, Bytes::from_static(b"small")).expect("queued").is_none());
        let conn = Fake::taking_at_most(10);
        queue.attach(&conn);
        drop(queue);
        let cx = &mut std::task::Context::from_waker(std::task::Waker::noop());
        let mut deliver = std::pin::pin!(crate::ClientState::deliver(&state, &conn));
        assert!(deliver.as_mut().poll(cx).is_ready(), "nothing it can take waits");
        let mut send = std::pin::pin!(state.send(4, "small"));
        assert!(send.as_mut().poll(cx).is_ready());
        assert_eq!(conn.took(), [1, 3, 4], "2 refused; the rest not held behind it");
        let unsent: Vec<u16> = state.take_unsent().into_iter().map(|(tag, _)| tag).collect();
        assert_eq!(unsent, [2], "the refused one is the application's");
        assert_eq!(state.queued(), 0);
    }
}
