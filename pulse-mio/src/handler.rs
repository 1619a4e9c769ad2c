//! What the application plugs into the loop, and what it can do from there.

use std::net::SocketAddr;

use bytes::Bytes;
use pulse_proto::{Closed, Event};

use crate::ctx::Ctx;

/// A connection of the loop. Ids are not reused while the loop runs: an id
/// of a closed connection never reaches a newer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

/// The application's side of the loop. Every method gets a [`Ctx`] to send,
/// close, open connections and reach each connection's own value.
///
/// Callbacks run on the loop's thread and should not block: every
/// connection waits while one runs.
pub trait Handler {
    /// The value the application keeps with each connection.
    type Conn;

    /// A connection was accepted (or opened with [`Ctx::connect`], which
    /// takes its value directly): the value to keep with it. The handshake
    /// has not run yet.
    fn accepted(&mut self, peer: SocketAddr) -> Self::Conn;

    /// The handshake completed.
    fn on_open(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// A message arrived.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, tag: u16, payload: Bytes);

    /// A heartbeat event: RTT measured, peer suspect, recovered, or the
    /// dead-peer verdict (which [`Handler::on_close`] follows).
    fn on_event(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, event: &Event) {
        let _ = (ctx, conn, event);
    }

    /// The connection is over and its socket closed: how it ended, and its
    /// value, handed back.
    fn on_close(&mut self, ctx: &mut Ctx<'_, Self::Conn>, conn: ConnId, closed: &Closed, value: Self::Conn);
}
