//! Accepting TCP connections so that the listener never stalls: the
//! backlog is drained past every error, and when the process is out of
//! descriptors accepting pauses and is retried, logged once per episode.

use std::io::{self, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use pulse_driver::{clock, log, Flushed};
use pulse_proto::{CloseCode, Instant, Role, Session};

use crate::core::{Core, Io};
use crate::handler::Handler;

/// The listeners' shared state.
#[derive(Debug, Default)]
pub(crate) struct Accepting {
    /// Out of descriptors: no accept until then (or until a connection of
    /// the loop closes and frees one).
    pub(crate) paused_until: Option<Instant>,
    /// Listeners whose budget ran out with connections still waiting.
    pub(crate) again: Vec<usize>,
    episode: log::Episode,
}

/// How accepting from one listener ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// The backlog is empty.
    Drained,
    /// The budget ran out: accept again next turn.
    More,
    /// Out of descriptors: paused.
    Paused,
}

impl Accepting {
    /// Accepts from `listener` until its backlog is empty, the budget is
    /// spent, or the process is out of descriptors. Beyond the connection
    /// limit a connection gets CLOSE "refused" and is dropped.
    pub(crate) fn accept<H: Handler>(
        &mut self,
        core: &mut Core<H::Conn>,
        handler: &mut H,
        listener: &TcpListener,
    ) -> Accepted {
        let (mut failed, mut any) = (None, false);
        for _ in 0..core.config.accepts_per_turn.max(1) {
            match listener.accept() {
                Ok((stream, peer)) => {
                    any = true;
                    self.episode.end("descriptors are free again: accepting");
                    if core.is_full() {
                        refuse(core, stream, peer, "at its connection limit");
                        continue;
                    }
                    // Without it heartbeats wait for Nagle; the connection
                    // still works, so it is served all the same.
                    let _ = stream.set_nodelay(true);
                    let config = core.stream.clone();
                    match core.add(Io::Tcp(stream), config, Role::Server, || handler.accepted(peer)) {
                        Ok(_) => core.stats.accepted += 1,
                        Err(e) => log::refused(peer, &format!("cannot register the connection: {e}")),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    return self.pause(core, "out of file descriptors: accepting paused and retried", &e);
                }
                // One connection failed (aborted before it was accepted, a
                // firewall's EPERM, ...): the rest of the backlog waits.
                Err(e) => {
                    core.stats.accept_errors += 1;
                    log::accept_error(&e);
                    failed = Some(e);
                }
            }
        }
        match failed.filter(|_| !any) {
            // The whole budget failed: the listener itself may be broken;
            // retrying at once would only spin.
            Some(e) => self.pause(core, "accept keeps failing: paused and retried", &e),
            None => Accepted::More,
        }
    }

    fn pause<T>(&mut self, core: &mut Core<T>, what: &str, e: &io::Error) -> Accepted {
        core.stats.accept_pauses += 1;
        self.episode.begin(what, e);
        self.paused_until = Some(clock::now() + core.config.accept_retry);
        Accepted::Paused
    }

    /// Whether accepting is paused at `now`; ends a pause that is over.
    pub(crate) fn is_paused(&mut self, now: Instant, freed: bool) -> bool {
        match self.paused_until {
            Some(until) if now < until && !freed => true,
            Some(_) => {
                self.paused_until = None;
                false
            }
            None => false,
        }
    }
}

/// Errors that say the process (or the system) has no room for another
/// socket now: retrying at once would fail the same way.
pub(crate) fn is_out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        )
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::OutOfMemory
    }
}

/// Tells a connection over the limit why it is turned away: the session
/// writes the CLOSE (with the magic before it), the loop drops the socket.
fn refuse<T>(core: &mut Core<T>, mut stream: TcpStream, peer: SocketAddr, why: &str) {
    core.stats.refused += 1;
    core.counters.on_refused();
    log::refused(peer, why);
    let now = clock::now();
    if let Ok(mut session) = Session::new(core.stream.clone(), Role::Server, now, 0) {
        let _refused_is_sendable = session.abort(now, CloseCode::REFUSED, "connection limit reached");
        let _: Flushed = pulse_driver::flush(&mut session, now, |bytes| stream.write(bytes), false);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_resource_errors_pause_accepting() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert!(is_out_of_descriptors(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        for errno in [libc::ECONNABORTED, libc::EPERM, libc::EPROTO, libc::EINVAL] {
            assert!(!is_out_of_descriptors(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
    }
}
