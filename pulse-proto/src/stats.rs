//! Counters a session keeps, for monitoring and tests.

/// Counters, for monitoring and tests. Byte and frame totals are `u64`;
/// the rarer counters are `u32` and saturate, to keep sessions small.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Bytes taken by the driver with `advance_transmit`.
    pub bytes_sent: u64,
    /// Bytes passed to `handle_input` / `handle_datagram`.
    pub bytes_received: u64,
    /// Frames decoded from the peer.
    pub frames_received: u64,
    /// DATA frames sent (begun, on a stream).
    pub data_sent: u64,
    /// DATA frames received.
    pub data_received: u64,
    /// PINGs sent.
    pub pings_sent: u32,
    /// PONGs sent.
    pub pongs_sent: u32,
    /// PINGs received.
    pub pings_received: u32,
    /// Times the peer became suspect.
    pub suspicions: u32,
    /// Frames skipped: stale PONGs, unknown extensions, datagram strays.
    pub frames_ignored: u32,
    /// Datagrams dropped as malformed.
    pub datagrams_dropped: u32,
    /// Times a timer fired so late that our own process must have stalled
    /// (each granted the peer a probe round).
    pub own_stalls: u32,
    /// Times the peer was closed for reading nothing for the slow-reader
    /// timeout.
    pub slow_reader_closes: u32,
}

/// Adds one to a counter, stopping at its maximum.
pub(crate) fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}
