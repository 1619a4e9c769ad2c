//! Reaching the loop from other threads: a bounded queue of commands, and
//! one wake-up for however many commands arrive before the loop runs them.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mio::Waker;
use pulse_proto::{CloseCode, CloseError};

use crate::handler::ConnId;

pub(crate) enum Command {
    Send(ConnId, u16, Bytes),
    Close(ConnId, CloseCode, String),
    Broadcast(u16, Bytes),
    Shutdown(Duration),
}

pub(crate) struct Shared {
    commands: Mutex<VecDeque<Command>>,
    capacity: usize,
    /// A wake-up is on its way and the loop has not taken the commands
    /// since: the next command need not wake it again.
    woken: AtomicBool,
    waker: Arc<Waker>,
}

impl Shared {
    pub(crate) fn new(waker: Arc<Waker>, capacity: usize) -> Shared {
        Shared {
            commands: Mutex::new(VecDeque::new()),
            capacity,
            woken: AtomicBool::new(false),
            waker,
        }
    }

    /// Whether commands wait (the loop checks this every turn, so a waker
    /// of the user's own serves as well as the loop's).
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    pub(crate) fn take(&self) -> VecDeque<Command> {
        // Cleared before taking: a command pushed after this wakes again.
        self.woken.store(false, Ordering::Release);
        std::mem::take(&mut *self.commands.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Queues `command`; a shutdown is never refused for want of room.
    fn push(&self, command: Command) -> Result<(), HandleError> {
        {
            let mut commands = self.commands.lock().unwrap_or_else(|p| p.into_inner());
            if commands.len() >= self.capacity && !matches!(command, Command::Shutdown(_)) {
                return Err(HandleError::Full {
                    capacity: self.capacity,
                });
            }
            commands.push_back(command);
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.waker.wake().map_err(HandleError::Wake)?;
        }
        Ok(())
    }
}

/// Why a [`Handle`] refused a command.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandleError {
    /// `capacity` commands wait for the loop already
    /// ([`crate::LoopConfig::max_commands`]): the loop is behind, or not
    /// running. Try again later, or shed the work.
    Full {
        /// The queue's bound.
        capacity: usize,
    },
    /// The close code is one only the protocol may send.
    Refused(CloseError),
    /// Waking the loop failed.
    Wake(io::Error),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Full { capacity } => write!(f, "{capacity} commands already wait for the loop"),
            HandleError::Refused(e) => write!(f, "{e}"),
            HandleError::Wake(e) => write!(f, "cannot wake the loop: {e}"),
        }
    }
}

impl std::error::Error for HandleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandleError::Full { .. } => None,
            HandleError::Refused(e) => Some(e),
            HandleError::Wake(e) => Some(e),
        }
    }
}

impl From<HandleError> for io::Error {
    fn from(e: HandleError) -> io::Error {
        match e {
            HandleError::Wake(e) => e,
            HandleError::Full { .. } => io::Error::new(io::ErrorKind::WouldBlock, e),
            HandleError::Refused(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
        }
    }
}

/// Reaches an [`crate::EventLoop`] (or an [`crate::Endpoint`]) from any
/// thread: send, close, broadcast, shut down. Commands run on the loop's
/// thread at its next turn; the queue is bounded
/// ([`crate::LoopConfig::max_commands`]), and however many commands arrive
/// before the loop takes them cost one wake-up.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// # use std::net::SocketAddr;
/// # use bytes::Bytes;
/// # use pulse_mio::{ConnId, Ctx, EventLoop, Handler, LoopConfig};
/// # use pulse_proto::Closed;
/// # struct Quiet;
/// # impl Handler for Quiet {
/// #     type Conn = ();
/// #     fn accepted(&mut self, _: SocketAddr) {}
/// #     fn on_message(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: u16, _: Bytes) {}
/// #     fn on_close(&mut self, _: &mut Ctx<'_, ()>, _: ConnId, _: &Closed, _: ()) {}
/// # }
///
/// let mut event_loop = EventLoop::new(LoopConfig::default(), Quiet)?;
/// let handle = event_loop.handle();
/// let thread = std::thread::spawn(move || event_loop.run());
/// handle.broadcast(1, &b"news"[..])?;
/// handle.shutdown(Duration::from_secs(1))?;
/// thread.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

impl Handle {
    /// Sends a message on `conn` (ignored if it has closed meanwhile, or if
    /// its output queue is full then: a sender that must know uses
    /// [`crate::Ctx::send`] on the loop's thread).
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Handle, HandleError};
    /// fn push(handle: &Handle, conn: ConnId) {
    ///     match handle.send(conn, 1, &b"update"[..]) {
    ///         Ok(()) => {}
    ///         Err(HandleError::Full { .. }) => { /* the loop is behind: drop or retry */ }
    ///         Err(e) => eprintln!("{e}"),
    ///     }
    /// }
    /// ```
    pub fn send(&self, conn: ConnId, tag: u16, payload: impl Into<Bytes>) -> Result<(), HandleError> {
        self.shared.push(Command::Send(conn, tag, payload.into()))
    }

    /// Closes `conn` gracefully. Refuses a code only the protocol may send.
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Handle};
    /// use pulse_proto::CloseCode;
    ///
    /// fn kick(handle: &Handle, conn: ConnId) {
    ///     let _ = handle.close(conn, CloseCode::NORMAL, "kicked");
    /// }
    /// ```
    pub fn close(&self, conn: ConnId, code: CloseCode, reason: &str) -> Result<(), HandleError> {
        if !code.is_sendable() {
            return Err(HandleError::Refused(CloseError { code }));
        }
        self.shared.push(Command::Close(conn, code, reason.to_string()))
    }

    /// Sends a message to every connection.
    ///
    /// ```
    /// # use pulse_mio::Handle;
    /// fn tick(handle: &Handle, seconds: u64) {
    ///     let _ = handle.broadcast(7, seconds.to_be_bytes().to_vec());
    /// }
    /// ```
    pub fn broadcast(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), HandleError> {
        self.shared.push(Command::Broadcast(tag, payload.into()))
    }

    /// Shuts the loop down: stop accepting, CLOSE "going away" to every
    /// peer, flush until `grace` has passed; [`crate::EventLoop::run`] then
    /// returns. Never refused for want of room.
    ///
    /// ```
    /// # use pulse_mio::Handle;
    /// fn on_sigterm(handle: &Handle) {
    ///     let _ = handle.shutdown(std::time::Duration::from_secs(5));
    /// }
    /// ```
    pub fn shutdown(&self, grace: Duration) -> Result<(), HandleError> {
        self.shared.push(Command::Shutdown(grace))
    }
}
