//! Counters a session keeps, for monitoring and tests.

/// Counters, for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes taken by the driver with `advance_transmit`.
    pub bytes_sent: u64,
    /// Bytes passed to `handle_input` / `handle_datagram`.
    pub bytes_received: u64,
    /// Frames decoded from the peer.
    pub frames_received: u64,
    /// PINGs sent.
    pub pings_sent: u64,
    /// PONGs sent.
    pub pongs_sent: u64,
    /// PINGs received.
    pub pings_received: u64,
    /// DATA frames sent (begun, on a stream).
    pub data_sent: u64,
    /// DATA frames received.
    pub data_received: u64,
    /// Times the peer became suspect.
    pub suspicions: u64,
    /// Frames skipped: stale PONGs, unknown extensions, datagram strays.
    pub frames_ignored: u64,
    /// Datagrams dropped as malformed.
    pub datagrams_dropped: u64,
}
