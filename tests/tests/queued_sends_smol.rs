//! pulse-smol's reconnecting client queues what it is sent while it has no
//! connection and delivers it on the next, over real sockets: the tests
//! of `pulse_tests::queued_sends`, which pulse-tokio's client passes too
//! (`queued_sends_tokio.rs`).

pulse_tests::queued_sends_tests!(pulse_tests::queued_sends::SmolClient);
