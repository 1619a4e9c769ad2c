//! The timer wheel's cost per insert, cancel and expiry as it holds from
//! 1,000 to 1,000,000 timers, beside `std::collections::BinaryHeap` (with
//! lazy cancellation, the usual way to cancel in a heap) in the same run.
//!
//! Run: `cargo bench -p pulse-proto --bench wheel`
//!
//! For each size N: N timers with deadlines spread over 10 s; then, in the
//! steady state of a running loop (memory already touched, the wheel's free
//! entries reused), M more inserted (M = N / 10, at least 1,000), those M
//! cancelled, then time advanced to each next expiration (as a loop sleeps
//! until it) until all N have fired.
//! Each figure is ns per operation, the median of 5 runs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant as Clock};

use pulse_proto::{Instant, TimerKey, TimerWheel};

const SPAN_NS: u64 = 10_000_000_000;
const STEP_NS: u64 = 1_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// ns per insert, cancel and expiry.
type Costs = [f64; 3];

fn per_op(start: Clock, ops: usize) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn wheel(n: usize, seed: u64) -> Costs {
    let mut rng = Rng(seed);
    let mut wheel = TimerWheel::with_capacity(Duration::from_millis(1), n + n / 10 + 1000);
    for i in 0..n {
        wheel.insert(Instant::from_nanos(rng.next() % SPAN_NS), i);
    }
    let m = (n / 10).max(1000);
    // Steady state, as in a running loop: inserts reuse the entries of
    // timers that fired, rather than touching fresh memory.
    for i in 0..m {
        wheel.insert(Instant::ZERO, i);
    }
    while wheel.poll_expired(Instant::ZERO).is_some() {}
    let deadlines: Vec<u64> = (0..m).map(|_| 1 + rng.next() % SPAN_NS).collect();
    let start = Clock::now();
    let keys: Vec<TimerKey> = deadlines
        .iter()
        .map(|&d| wheel.insert(Instant::from_nanos(d), usize::MAX))
        .collect();
    let insert = per_op(start, m);
    let start = Clock::now();
    for key in keys {
        black_box(wheel.cancel(key));
    }
    let cancel = per_op(start, m);
    // Expire as a loop does: sleep until the wheel's next expiration.
    let start = Clock::now();
    let mut fired = 0;
    while fired < n {
        let now = wheel.next_expiration().expect("timers remain");
        while let Some(expired) = wheel.poll_expired(now) {
            black_box(expired);
            fired += 1;
        }
    }
    [insert, cancel, per_op(start, n)]
}

fn heap(n: usize, seed: u64) -> Costs {
    let mut rng = Rng(seed);
    let mut heap = BinaryHeap::with_capacity(n + n / 10 + 1000);
    let mut cancelled = vec![false; n + n / 10 + 1000];
    for i in 0..n {
        heap.push(Reverse((rng.next() % SPAN_NS, i)));
    }
    let m = (n / 10).max(1000);
    // Steady state: the heap's buffer already holds room it has touched.
    for j in 0..m {
        heap.push(Reverse((0, n + j)));
    }
    for _ in 0..m {
        heap.pop();
    }
    let deadlines: Vec<u64> = (0..m).map(|_| 1 + rng.next() % SPAN_NS).collect();
    let start = Clock::now();
    for (j, &d) in deadlines.iter().enumerate() {
        heap.push(Reverse((d, n + j)));
    }
    let insert = per_op(start, m);
    let start = Clock::now();
    for j in 0..m {
        cancelled[black_box(n + j)] = true;
    }
    let cancel = per_op(start, m);
    // Expire as a loop does: sleep until the earliest deadline (in 1 ms
    // ticks, like the wheel's).
    let start = Clock::now();
    let mut fired = 0;
    while fired < n {
        let Some(Reverse((next, _))) = heap.peek() else { break };
        let now = next.div_ceil(STEP_NS) * STEP_NS;
        while heap.peek().is_some_and(|Reverse((d, _))| *d <= now) {
            let Reverse((_, id)) = heap.pop().expect("peeked");
            if !cancelled[id] {
                black_box(id);
                fired += 1;
            }
        }
    }
    [insert, cancel, per_op(start, n)]
}

fn median(mut runs: Vec<Costs>) -> Costs {
    let mut out = [0.0; 3];
    for (i, slot) in out.iter_mut().enumerate() {
        runs.sort_by(|a, b| a[i].total_cmp(&b[i]));
        *slot = runs[runs.len() / 2][i];
    }
    out
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing and
    // expects a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if quick {
        &[1_000]
    } else {
        &[1_000, 10_000, 100_000, 1_000_000]
    };
    println!("ns per operation (median of 5): timer wheel | BinaryHeap with lazy cancel");
    println!(
        "{:>9} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "timers", "insert", "cancel", "expiry", "insert", "cancel", "expiry"
    );
    for &n in sizes {
        let runs = if quick { 1 } else { 5 };
        let w = median((0..runs).map(|s| wheel(n, 0x9E37 + s)).collect());
        let h = median((0..runs).map(|s| heap(n, 0x9E37 + s)).collect());
        println!(
            "{:>9} | {:>7.1} {:>7.1} {:>7.1} | {:>7.1} {:>7.1} {:>7.1}",
            n, w[0], w[1], w[2], h[0], h[1], h[2]
        );
    }
}
