//! What a session has to send: bytes committed to the wire, and DATA still
//! queued behind them.
//!
//! Control frames (handshake, PING, PONG, CLOSE) are not queued here: the
//! session writes them into the staging buffer only when the driver asks for
//! bytes, ahead of any DATA not yet staged. Once bytes are staged they are
//! committed: on a stream nothing can overtake a frame already begun.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::{Buf, Bytes};

use crate::frame::{data_overhead, encode_data_header};

/// How much DATA is staged at once on a stream: small enough that a PONG
/// waits behind at most this much (plus the rest of one frame), large
/// enough that bulk data goes out in few writes.
pub(crate) const STREAM_CHUNK: usize = 16 * 1024;
/// Room for all control frames staged at once: the magic, a handshake
/// frame, PING, PONG and the longest CLOSE.
const CONTROL_ROOM: usize = 256;

#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Bytes committed to the wire; boxed and present only while there are
    /// some: an idle session carries one pointer for them.
    staged: Option<Box<Staged>>,
    /// DATA not yet staged; boxed and present only while there is some, so
    /// an idle session carries one pointer for it.
    data: Option<Box<DataQueue>>,
}

#[derive(Debug, Default)]
struct Staged {
    bytes: Vec<u8>,
    sent: usize,
}

#[derive(Debug, Default)]
struct DataQueue {
    /// The part of a DATA payload not yet staged (streams only). While it
    /// is non-empty the stream is in the middle of a frame.
    rest: Bytes,
    queue: VecDeque<(u16, Bytes)>,
    /// Bytes of the DATA frames in `queue` (headers included) plus `rest`.
    queued: usize,
}

impl Output {
    /// Staged bytes not yet taken by the driver.
    pub(crate) fn unsent(&self) -> Option<&[u8]> {
        self.staged
            .as_ref()
            .and_then(|s| (s.sent < s.bytes.len()).then(|| &s.bytes[s.sent..]))
    }

    /// Where control frames are written.
    pub(crate) fn staging(&mut self) -> &mut Vec<u8> {
        let bytes = &mut self.staged.get_or_insert_with(Box::default).bytes;
        // Room for every control frame at once, without doubling the buffer.
        bytes.reserve_exact(CONTROL_ROOM);
        bytes
    }

    pub(crate) fn staged_len(&self) -> usize {
        self.staged.as_ref().map_or(0, |s| s.bytes.len())
    }

    /// Drops the staging box if staging left it empty.
    pub(crate) fn release_empty(&mut self) {
        if self.staged.as_ref().is_some_and(|s| s.bytes.is_empty()) {
            self.staged = None;
        }
    }

    /// Takes back staged bytes the driver has not seen (a lone magic).
    pub(crate) fn unstage_to(&mut self, len: usize) {
        if let Some(staged) = self.staged.as_mut() {
            debug_assert!(staged.sent == 0 && len <= staged.bytes.len());
            staged.bytes.truncate(len);
            if len == 0 {
                self.staged = None;
            }
        }
    }

    pub(crate) fn is_mid_frame(&self) -> bool {
        self.data.as_ref().is_some_and(|d| !d.rest.is_empty())
    }

    pub(crate) fn has_data(&self) -> bool {
        self.data.is_some()
    }

    pub(crate) fn queued(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.queued)
    }

    /// Bytes of heap this output holds now.
    pub(crate) fn heap_bytes(&self) -> usize {
        let data = self.data.as_ref().map_or(0, |d| {
            core::mem::size_of::<DataQueue>() + d.queue.capacity() * core::mem::size_of::<(u16, Bytes)>()
        });
        self.staged
            .as_ref()
            .map_or(0, |s| core::mem::size_of::<Staged>() + s.bytes.capacity())
            + data
    }

    pub(crate) fn push(&mut self, tag: u16, payload: Bytes) {
        let data = self.data.get_or_insert_with(Box::default);
        // Frame bytes, header included: empty messages are not free.
        data.queued += data_overhead(payload.len()) + payload.len();
        data.queue.push_back((tag, payload));
    }

    /// Marks `n` staged bytes as written (all of them for a datagram) and
    /// returns how many were. A drained staging buffer is released: an idle
    /// session holds none.
    pub(crate) fn advance(&mut self, n: usize, whole: bool) -> usize {
        let Some(staged) = self.staged.as_mut() else { return 0 };
        let unsent = staged.bytes.len() - staged.sent;
        let taken = if whole { unsent } else { n.min(unsent) };
        staged.sent += taken;
        if staged.sent == staged.bytes.len() {
            self.staged = None;
        }
        taken
    }

    /// Drops queued DATA. A frame already begun on the stream cannot be
    /// cut short, so it is dropped too and `false` says the stream can carry
    /// no further frame.
    pub(crate) fn discard_data(&mut self) -> bool {
        self.data.take().is_none_or(|d| d.rest.is_empty())
    }

    /// Drops everything, staged bytes included (the transport is gone).
    pub(crate) fn discard_all(&mut self) {
        self.data = None;
        self.staged = None;
    }

    /// Takes the queued DATA no byte of which reached the staging buffer:
    /// the messages the peer cannot have seen, to hand back. A frame
    /// already begun stays (and is dropped with the rest).
    pub(crate) fn take_unbegun(&mut self) -> VecDeque<(u16, Bytes)> {
        self.data
            .as_mut()
            .map(|d| {
                d.queued = d.rest.len();
                core::mem::take(&mut d.queue)
            })
            .unwrap_or_default()
    }

    /// Stages more of the frame in progress, up to `limit` staged bytes,
    /// and stops at its end so that control frames may go next.
    pub(crate) fn continue_frame(&mut self, limit: usize) {
        if let Some(data) = self.data.as_mut() {
            let staged = self.staged.as_ref().map_or(0, |s| s.bytes.len());
            let n = limit.saturating_sub(staged).min(data.rest.len());
            if n > 0 {
                let bytes = &mut self.staged.get_or_insert_with(Box::default).bytes;
                // Exactly what is staged: doubling would let a chunk hold
                // twice its size.
                bytes.reserve_exact(n);
                bytes.extend_from_slice(&data.rest[..n]);
                data.rest.advance(n);
                data.queued -= n;
            }
        }
        self.release_if_empty();
    }

    /// Stages DATA until `limit` bytes are staged; the last frame begun may
    /// be left in progress. Returns how many frames were begun.
    pub(crate) fn stage_stream(&mut self, limit: usize) -> u64 {
        let mut begun = 0;
        while let Some(data) = self.data.as_mut() {
            if !data.rest.is_empty() || self.staged.as_ref().is_some_and(|s| s.bytes.len() >= limit) {
                break;
            }
            let Some((tag, payload)) = data.queue.pop_front() else {
                break;
            };
            let header = data_overhead(payload.len());
            data.queued -= header;
            let bytes = &mut self.staged.get_or_insert_with(Box::default).bytes;
            // Room for the header and this chunk of the payload, and no more.
            bytes.reserve_exact(header + payload.len().min(limit.saturating_sub(bytes.len())));
            encode_data_header(tag, payload.len(), bytes);
            data.rest = payload;
            begun += 1;
            self.continue_frame(limit);
        }
        begun
    }

    /// Stages whole DATA frames while they fit in a datagram of `max` bytes.
    /// Returns how many were staged.
    pub(crate) fn stage_datagram(&mut self, max: usize) -> u64 {
        let mut count = 0;
        while let Some(data) = self.data.as_mut() {
            let Some((_, payload)) = data.queue.front() else { break };
            let staged = self.staged.get_or_insert_with(Box::default);
            if staged.bytes.len() + data_overhead(payload.len()) + payload.len() > max {
                break;
            }
            let (tag, payload) = data.queue.pop_front().expect("front exists");
            encode_data_header(tag, payload.len(), &mut staged.bytes);
            staged.bytes.extend_from_slice(&payload);
            data.queued -= data_overhead(payload.len()) + payload.len();
            count += 1;
            self.release_if_empty();
        }
        count
    }

    fn release_if_empty(&mut self) {
        if self
            .data
            .as_ref()
            .is_some_and(|d| d.rest.is_empty() && d.queue.is_empty())
        {
            self.data = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_is_staged_in_chunks_and_the_buffer_is_released_when_drained() {
        let mut out = Output::default();
        out.push(1, Bytes::from(alloc::vec![0u8; 40_000]));
        assert_eq!(out.stage_stream(STREAM_CHUNK), 1);
        assert_eq!(out.staged_len(), STREAM_CHUNK);
        assert!(out.is_mid_frame());
        out.advance(STREAM_CHUNK, false);
        assert!(out.heap_bytes() < 1024, "the staging buffer was not released");
        let mut total = STREAM_CHUNK;
        while out.has_data() {
            out.continue_frame(STREAM_CHUNK);
            total += out.advance(usize::MAX, false);
        }
        assert_eq!(total, 40_000 + data_overhead(40_000));
        assert_eq!(out.queued(), 0);
        assert_eq!(out.heap_bytes(), 0);
    }

    #[test]
    fn datagrams_hold_only_whole_frames() {
        let mut out = Output::default();
        for _ in 0..3 {
            out.push(1, Bytes::from(alloc::vec![0u8; 500]));
        }
        assert_eq!(out.stage_datagram(1200), 2);
        assert_eq!(out.advance(0, true), 2 * (500 + data_overhead(500)));
        assert_eq!(out.stage_datagram(1200), 1);
    }
}
