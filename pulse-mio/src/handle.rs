//! Reaching the loop from other threads.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use mio::Waker;
use pulse_proto::CloseCode;

use crate::handler::ConnId;

pub(crate) enum Command {
    Send(ConnId, u16, Bytes),
    Close(ConnId, CloseCode, String),
    Broadcast(u16, Bytes),
    Shutdown(Duration),
}

pub(crate) struct Shared {
    commands: Mutex<Vec<Command>>,
    waker: Waker,
}

impl Shared {
    pub(crate) fn new(waker: Waker) -> Shared {
        Shared {
            commands: Mutex::new(Vec::new()),
            waker,
        }
    }

    pub(crate) fn take(&self) -> Vec<Command> {
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, command: Command) -> io::Result<()> {
        self.commands.lock().unwrap_or_else(|p| p.into_inner()).push(command);
        self.waker.wake()
    }
}

/// Reaches an [`crate::EventLoop`] from any thread: send, close, broadcast,
/// shut down. Commands run on the loop's thread at its next turn (a
/// `mio::Waker` wakes it).
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: std::sync::Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

impl Handle {
    /// Sends a message on `conn` (ignored if it has closed meanwhile).
    pub fn send(&self, conn: ConnId, tag: u16, payload: impl Into<Bytes>) -> io::Result<()> {
        self.shared.push(Command::Send(conn, tag, payload.into()))
    }

    /// Closes `conn` gracefully. Refuses (`InvalidInput`) a code only the
    /// protocol may send.
    pub fn close(&self, conn: ConnId, code: CloseCode, reason: &str) -> io::Result<()> {
        if !code.is_sendable() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                pulse_proto::CloseError { code },
            ));
        }
        self.shared.push(Command::Close(conn, code, reason.to_string()))
    }

    /// Sends a message to every established connection.
    pub fn broadcast(&self, tag: u16, payload: impl Into<Bytes>) -> io::Result<()> {
        self.shared.push(Command::Broadcast(tag, payload.into()))
    }

    /// Shuts the loop down: stop accepting, CLOSE "going away" to every
    /// peer, flush until `grace` has passed; [`crate::EventLoop::run`] then
    /// returns.
    pub fn shutdown(&self, grace: Duration) -> io::Result<()> {
        self.shared.push(Command::Shutdown(grace))
    }
}
