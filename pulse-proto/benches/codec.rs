//! Codec and session costs. Run: `cargo bench -p pulse-proto --bench codec`

use bytes::Bytes;
use divan::counter::BytesCount;
use divan::{black_box, Bencher};
use pulse_proto::frame::{Frame, Hello, MAGIC};
use pulse_proto::{Config, Instant, Role, Session, StreamDecoder};

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [16, 1024, 64 * 1024];
/// Frames per iteration, so small frames are not lost in loop overhead.
const BATCH: usize = 64;

#[divan::bench(args = SIZES)]
fn encode_data(bencher: Bencher, size: usize) {
    let frame = Frame::Data {
        tag: 7,
        payload: Bytes::from(vec![0xAB; size]),
    };
    let mut out = Vec::with_capacity(BATCH * frame.encoded_len());
    bencher.counter(BytesCount::new(BATCH * size)).bench_local(|| {
        out.clear();
        for _ in 0..BATCH {
            frame.encode(&mut out);
        }
        black_box(&out);
    });
}

/// The magic and `BATCH` DATA frames of `size` bytes, as a peer sends them.
fn data_wire(size: usize) -> Vec<u8> {
    let mut wire = MAGIC.to_vec();
    let frame = Frame::Data {
        tag: 7,
        payload: Bytes::from(vec![0xAB; size]),
    };
    for _ in 0..BATCH {
        frame.encode(&mut wire);
    }
    wire
}

#[divan::bench(args = SIZES)]
fn decode_data(bencher: Bencher, size: usize) {
    let wire = Bytes::from(data_wire(size));
    bencher.counter(BytesCount::new(BATCH * size)).bench_local(|| {
        let mut decoder = StreamDecoder::new(1 << 20);
        let mut input = wire.clone();
        let mut n = 0;
        while let Some(frame) = decoder.decode(&mut input).unwrap() {
            black_box(frame);
            n += 1;
        }
        assert_eq!(n, BATCH);
    });
}

/// The same input in 1,500-byte reads (a TCP segment each), so frames
/// straddle reads and the decoder must buffer.
#[divan::bench(args = SIZES)]
fn decode_data_in_segments(bencher: Bencher, size: usize) {
    let wire = data_wire(size);
    bencher.counter(BytesCount::new(BATCH * size)).bench_local(|| {
        let mut decoder = StreamDecoder::new(1 << 20);
        let mut n = 0;
        for segment in wire.chunks(1500) {
            let mut input = segment;
            while let Some(frame) = decoder.decode(&mut input).unwrap() {
                black_box(frame);
                n += 1;
            }
        }
        assert_eq!(n, BATCH);
    });
}

fn established_server() -> Session {
    let mut server = Session::new(Config::default(), Role::Server, Instant::ZERO, 1).unwrap();
    let mut hello = MAGIC.to_vec();
    Frame::Hello(Hello {
        version_min: 1,
        version_max: 1,
        interval_ms: 10_000,
        dead_timeout_ms: 30_000,
        max_frame_len: 1 << 16,
        attempt: 0,
        cookie: None,
    })
    .encode(&mut hello);
    server.handle_input(Instant::ZERO, &hello[..]);
    drain(&mut server, Instant::ZERO);
    server
}

fn ping(id: u32) -> [u8; 6] {
    let mut ping = [0u8; 6];
    Frame::Ping { id }.encode(&mut &mut ping[..]);
    ping
}

fn drain(session: &mut Session, now: Instant) {
    while let Some(out) = session.poll_transmit(now) {
        let n = out.len();
        session.advance_transmit(n);
    }
    while session.poll_event().is_some() {}
}

/// An idle session receives a PING and answers it: `handle_input`, then the
/// PONG drained with `poll_transmit` / `advance_transmit`.
#[divan::bench]
fn idle_session_answers_a_ping(bencher: Bencher) {
    let mut server = established_server();
    let mut now = Instant::ZERO;
    let mut id = 0u32;
    bencher.bench_local(|| {
        id += 1;
        now += core::time::Duration::from_secs(10);
        server.handle_input(now, &ping(id)[..]);
        drain(&mut server, now);
    });
}

/// `handle_input` alone for a PING: the receive path's cost.
#[divan::bench]
fn handle_input_ping(bencher: Bencher) {
    let mut server = established_server();
    let mut now = Instant::ZERO;
    let mut id = 0u32;
    bencher.bench_local(|| {
        id += 1;
        now += core::time::Duration::from_secs(10);
        server.handle_input(now, &ping(id)[..]);
    });
}

/// A timer that fires after traffic moved the deadline: found not due.
#[divan::bench]
fn handle_timeout_not_due(bencher: Bencher) {
    let mut server = established_server();
    let now = Instant::ZERO + core::time::Duration::from_secs(1);
    bencher.bench_local(|| server.handle_timeout(black_box(now)));
}

/// A client's timer fires and it pings: `handle_timeout` plus the PING
/// drained, then the PONG received (one full idle round for one side).
#[divan::bench]
fn idle_client_heartbeat_round(bencher: Bencher) {
    let mut client = Session::new(Config::default(), Role::Client, Instant::ZERO, 1).unwrap();
    let mut server = Session::new(Config::default(), Role::Server, Instant::ZERO, 2).unwrap();
    let mut wire = Vec::new();
    let pump = |from: &mut Session, to: &mut Session, now: Instant, wire: &mut Vec<u8>| {
        while let Some(out) = from.poll_transmit(now) {
            wire.clear();
            wire.extend_from_slice(out);
            from.advance_transmit(wire.len());
            to.handle_input(now, &wire[..]);
        }
        while to.poll_event().is_some() {}
    };
    pump(&mut client, &mut server, Instant::ZERO, &mut wire);
    pump(&mut server, &mut client, Instant::ZERO, &mut wire);
    while client.poll_event().is_some() {}
    bencher.bench_local(|| {
        let now = client.poll_timeout().unwrap();
        client.handle_timeout(now);
        pump(&mut client, &mut server, now, &mut wire);
        pump(&mut server, &mut client, now, &mut wire);
    });
}
