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
    queue: Mutex<Queue>,
    capacity: usize,
    /// A wake-up is on its way and the loop has not taken the commands
    /// since: the next command need not wake it again. Changed only with
    /// the queue locked; read without it by the loop each turn.
    woken: AtomicBool,
    waker: Arc<Waker>,
}

struct Queue {
    commands: VecDeque<Command>,
    /// The loop is gone: nothing would ever run a command.
    stopped: bool,
}

impl Shared {
    pub(crate) fn new(waker: Arc<Waker>, capacity: usize) -> Shared {
        Shared {
            queue: Mutex::new(Queue {
                commands: VecDeque::new(),
                stopped: false,
            }),
            capacity,
            woken: AtomicBool::new(false),
            waker,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether commands wait (the loop checks this every turn, so a waker
    /// of the user's own serves as well as the loop's).
    pub(crate) fn is_woken(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }

    /// Moves the waiting commands to the back of `into`, in order.
    pub(crate) fn take_into(&self, into: &mut VecDeque<Command>) {
        let mut queue = self.queue();
        // Cleared as the commands are taken: a command pushed after this
        // wakes again.
        self.woken.store(false, Ordering::Release);
        if into.is_empty() {
            // The whole allocation moves: the queue keeps no room a burst
            // of commands once needed.
            *into = std::mem::take(&mut queue.commands);
        } else {
            into.append(&mut queue.commands);
        }
    }

    /// The loop is going away: later commands are refused, and what waits
    /// now is returned for the loop to answer.
    pub(crate) fn stop(&self) -> VecDeque<Command> {
        let mut queue = self.queue();
        queue.stopped = true;
        self.woken.store(false, Ordering::Release);
        std::mem::take(&mut queue.commands)
    }

    /// Queues `command`, or gives it back with why: the loop then never
    /// sees it. A shutdown is never refused for want of room.
    fn push(&self, command: Command) -> Result<(), (HandleError, Command)> {
        let mut queue = self.queue();
        if queue.stopped {
            return Err((HandleError::Stopped, command));
        }
        if queue.commands.len() >= self.capacity && !matches!(command, Command::Shutdown(_)) {
            let capacity = self.capacity;
            return Err((HandleError::Full { capacity }, command));
        }
        queue.commands.push_back(command);
        // Marked before the wake-up, so the turn it starts runs the
        // command; woken with the queue locked, so that a command whose
        // wake-up failed is still the last one, and is taken back: refused
        // and returned, it must not also run.
        if !self.woken.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                self.woken.store(false, Ordering::Release);
                let command = queue.commands.pop_back().expect("pushed above, under the same lock");
                return Err((HandleError::Wake(e), command));
            }
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
    /// Waking the loop failed; the command was not queued.
    Wake(io::Error),
    /// The loop is gone (dropped): nothing runs commands any more.
    Stopped,
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Full { capacity } => write!(f, "{capacity} commands already wait for the loop"),
            HandleError::Refused(e) => write!(f, "{e}"),
            HandleError::Wake(e) => write!(f, "cannot wake the loop: {e}"),
            HandleError::Stopped => f.write_str("the loop is gone"),
        }
    }
}

impl std::error::Error for HandleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandleError::Full { .. } | HandleError::Stopped => None,
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
            HandleError::Stopped => io::Error::new(io::ErrorKind::NotConnected, e),
        }
    }
}

/// A message [`Handle::send`] gives back at once: the loop never took it,
/// so nothing of it was sent, and nothing of it will be.
///
/// ```
/// # use pulse_mio::{ConnId, Handle, HandleError, Unsent};
/// fn push(handle: &Handle, conn: ConnId, backlog: &mut Vec<(u16, bytes::Bytes)>) {
///     if let Err(Unsent { error, tag, payload, .. }) = handle.send(conn, 1, &b"update"[..]) {
///         eprintln!("{conn}: {error}");
///         backlog.push((tag, payload)); // try again later, or elsewhere
///     }
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Unsent {
    /// Why the loop did not take it.
    pub error: HandleError,
    /// The connection it was for.
    pub conn: ConnId,
    /// Its tag, as given.
    pub tag: u16,
    /// Its payload, as given.
    pub payload: Bytes,
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "message for {} not sent: {}", self.conn, self.error)
    }
}

impl std::error::Error for Unsent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Unsent> for io::Error {
    fn from(e: Unsent) -> io::Error {
        let kind = match &e.error {
            HandleError::Full { .. } => io::ErrorKind::WouldBlock,
            HandleError::Wake(w) => w.kind(),
            HandleError::Refused(_) => io::ErrorKind::InvalidInput,
            HandleError::Stopped => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

/// Reaches an [`crate::EventLoop`] (or an [`crate::Endpoint`]) from any
/// thread: send, close, broadcast, shut down. Commands run on the loop's
/// thread at its next turn; the queue is bounded
/// ([`crate::LoopConfig::max_commands`]), and however many commands arrive
/// before the loop takes them cost one wake-up. A message sent through a
/// handle goes out or comes back, exactly once, however the send races
/// with the connection's close (see [`Handle::send`]).
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
    /// Sends a message on `conn` from any thread. Nothing sent this way is
    /// dropped unseen while the loop lives: the message goes exactly one
    /// of three ways.
    ///
    /// - Refused here, at once, with the message in the [`Unsent`]: the
    ///   queue is full ([`HandleError::Full`]), the loop is gone
    ///   ([`HandleError::Stopped`]), or waking it failed
    ///   ([`HandleError::Wake`]).
    /// - Taken by `conn`'s session when the loop runs the command: from
    ///   there it goes out on the connection, or, if the connection ends
    ///   before any byte of it went out, it comes back in
    ///   [`crate::Handler::on_close`] through [`crate::Ctx::take_unsent`],
    ///   as a message of [`crate::Ctx::send`] does. What went out is the
    ///   transport's, as with `Ctx::send`: bytes a peer dies before
    ///   reading, or a datagram lost over UDP (where DATA is unreliable),
    ///   come back nowhere.
    /// - Refused by the loop when it runs the command (the connection had
    ///   closed, or was closing, when the loop came to it, had not
    ///   completed its handshake, its output queue was full, or the
    ///   message is too large for the peer): handed to
    ///   [`crate::Handler::on_unsent`] on the loop's thread, with why.
    ///
    /// A close racing with the send therefore never loses the message:
    /// before the close it goes out with the rest; after it, it comes back
    /// to `on_unsent`. An id of a connection that has ended never reaches
    /// another connection, even one that took over its slot.
    ///
    /// Drop the loop only once a shutdown has finished
    /// ([`crate::EventLoop::run`] returned): a loop dropped with
    /// connections still open takes what their sessions hold with them,
    /// and no `on_close` comes (see [`crate::Handler`]); one dropped while
    /// its thread unwinds from a panic also drops the sends still waiting
    /// for it, with no `on_unsent` (no handler code runs then).
    ///
    /// ```
    /// # use pulse_mio::{ConnId, Handle, HandleError, Unsent};
    /// fn push(handle: &Handle, conn: ConnId) {
    ///     match handle.send(conn, 1, &b"update"[..]) {
    ///         Ok(()) => {} // sent, or back in on_close or on_unsent
    ///         Err(Unsent { error: HandleError::Full { .. }, .. }) => { /* the loop is behind: shed or retry */ }
    ///         Err(e) => eprintln!("{e}"),
    ///     }
    /// }
    /// ```
    pub fn send(&self, conn: ConnId, tag: u16, payload: impl Into<Bytes>) -> Result<(), Unsent> {
        self.shared
            .push(Command::Send(conn, tag, payload.into()))
            .map_err(|(error, command)| match command {
                Command::Send(conn, tag, payload) => Unsent {
                    error,
                    conn,
                    tag,
                    payload,
                },
                _ => unreachable!("push gives back the command it was given"),
            })
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
        self.shared
            .push(Command::Close(conn, code, reason.to_string()))
            .map_err(|(e, _)| e)
    }

    /// Sends a message to every connection the loop holds when it runs
    /// the command. Best effort: a connection that refuses it then (not
    /// open yet, closing, its queue full) is skipped, and no callback
    /// says so; to know, [`Handle::send`] to each connection.
    ///
    /// ```
    /// # use pulse_mio::Handle;
    /// fn tick(handle: &Handle, seconds: u64) {
    ///     let _ = handle.broadcast(7, seconds.to_be_bytes().to_vec());
    /// }
    /// ```
    pub fn broadcast(&self, tag: u16, payload: impl Into<Bytes>) -> Result<(), HandleError> {
        self.shared
            .push(Command::Broadcast(tag, payload.into()))
            .map_err(|(e, _)| e)
    }

    /// Shuts the loop down: stop accepting, CLOSE "going away" to every
    /// peer, flush until `grace` has passed; [`crate::EventLoop::run`] then
    /// returns. Never refused for want of room; a loop already gone
    /// needs no shutdown: `Ok`.
    ///
    /// ```
    /// # use pulse_mio::Handle;
    /// fn on_sigterm(handle: &Handle) {
    ///     let _ = handle.shutdown(std::time::Duration::from_secs(5));
    /// }
    /// ```
    pub fn shutdown(&self, grace: Duration) -> Result<(), HandleError> {
        match self.shared.push(Command::Shutdown(grace)) {
            Err((HandleError::Stopped, _)) => Ok(()),
            other => other.map_err(|(e, _)| e),
        }
    }
}
