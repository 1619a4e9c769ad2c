//! What the loop does with its [`crate::Handle`]s' commands, and the endings
//! they and the loop's owner ask for: shutdown, broadcast, and the queue
//! left when the loop is dropped.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use pulse_driver::clock;
use pulse_proto::CloseCode;

use super::Endpoint;
use crate::ctx::Ctx;
use crate::handle::Command;
use crate::handler::Handler;

impl<H: Handler> Endpoint<H> {
    /// Stops accepting, closes every connection with "going away" (queued
    /// data first), and ends those still open after `grace`.
    pub fn shutdown(&mut self, grace: Duration) {
        if self.core.shutdown_at.is_some() {
            return;
        }
        for listener in &mut self.listeners {
            let _ = self.core.registry.deregister(listener);
        }
        self.listeners.clear();
        self.open = false;
        let now = clock::now();
        self.going_away(|session| session.close(now, CloseCode::GOING_AWAY, "shutting down"));
        self.core.shutdown_at = Some(now + grace);
    }

    /// Sends to every connection that takes it now. Best effort: one
    /// that refuses it (not open yet, closing, its queue full) is skipped,
    /// and no callback says so; to know, send to each with
    /// [`Ctx::send`](crate::Ctx::send).
    pub fn broadcast(&mut self, tag: u16, payload: Bytes) {
        let ids: Vec<u32> = self.core.conns.iter().map(|(i, _)| i as u32).collect();
        for index in ids {
            let id = self.core.id(index);
            let _ = self.core.send(id, tag, payload.clone());
        }
    }

    /// Ends every connection with `end` ("going away" is always sendable).
    pub(super) fn going_away(
        &mut self,
        mut end: impl FnMut(&mut pulse_proto::Session) -> Result<(), pulse_proto::CloseError>,
    ) {
        let indices: Vec<usize> = self.core.conns.iter().map(|(i, _)| i).collect();
        for index in indices {
            let _going_away_is_sendable = end(&mut self.core.conns[index].session);
            self.core.mark_dirty(index as u32);
        }
    }

    pub(super) fn run_commands(&mut self) {
        // Run one by one from the endpoint's own queue, never from a batch
        // local to this call: a handler that panics in `on_unsent` (and an
        // application that catches it) leaves the commands behind it for
        // the next turn, or for the drop, not lost with the unwinding.
        self.shared.take_into(&mut self.commands);
        while let Some(command) = self.commands.pop_front() {
            match command {
                Command::Send(conn, tag, payload) => {
                    // A clone of a `Bytes` shares it: the refused message
                    // is handed back, never dropped unseen (`Handle::send`).
                    if let Err(why) = self.core.send(conn, tag, payload.clone()) {
                        let mut ctx = Ctx::new(&mut self.core);
                        self.handler.on_unsent(&mut ctx, conn, tag, payload, why);
                    }
                }
                Command::Close(conn, code, reason) => {
                    let _ = self.core.close(conn, code, &reason);
                }
                Command::Broadcast(tag, payload) => self.broadcast(tag, payload),
                Command::Shutdown(grace) => self.shutdown(grace),
            }
        }
        // Nor does the endpoint keep the room of a burst.
        self.commands = VecDeque::new();
    }
}

impl<H: Handler> Drop for Endpoint<H> {
    /// Later [`crate::Handle::send`]s are refused with the message
    /// ([`crate::HandleError::Stopped`]); those still waiting for the
    /// loop go to [`Handler::on_unsent`], their connections being gone
    /// with it (unless the thread is unwinding from a panic: no handler
    /// code runs then, where a second panic would abort).
    fn drop(&mut self) {
        let waiting = self.shared.stop();
        self.commands.extend(waiting);
        if std::thread::panicking() {
            return;
        }
        while let Some(command) = self.commands.pop_front() {
            if let Command::Send(conn, tag, payload) = command {
                let mut ctx = Ctx::new(&mut self.core);
                let why = pulse_proto::SendError::Closed;
                self.handler.on_unsent(&mut ctx, conn, tag, payload, why);
            }
        }
    }
}
