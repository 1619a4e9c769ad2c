//! pulse-tokio's reconnecting client queues what it is sent while it has
//! no connection and delivers it on the next, over real sockets: the
//! tests of `pulse_tests::queued_sends`, which pulse-smol's client passes
//! too (`queued_sends_smol.rs`).

pulse_tests::queued_sends_tests!(pulse_tests::queued_sends::TokioClient);
