//! Review of issue 14: "no allocation per heartbeat" for pulse peers
//! (cost.rs counts authenticated announcements only), by the same
//! counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use pulse_monitor::{Config, Monitor, TargetSpec};
use pulse_proto::{Event, Instant, RttSample};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(allocations: u64, bytes: i64) {
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + allocations));
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(1, new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|a| a.get())
}

fn live() -> i64 {
    LIVE.with(|l| l.get())
}

/// A pulse peer's heartbeat is its session's round trip: 1,000 peers, each
/// sending an RTT sample a second for 30 s, allocate nothing once warm.
#[test]
fn a_pulse_peers_heartbeat_allocates_nothing() {
    let n = 1_000usize;
    let mut monitor = Monitor::with_capacity(Config::lan(), Instant::ZERO, 1, n).unwrap();
    let pool = monitor.add_pool();
    let ids: Vec<_> = (0..n)
        .map(|_| monitor.add_target(Instant::ZERO, TargetSpec::peer(pool)).unwrap())
        .collect();
    let rtt = Event::Rtt(RttSample::new(
        Duration::from_millis(3),
        Duration::ZERO,
        Duration::from_millis(3),
    ));
    let mut now = Instant::ZERO;
    let second = |monitor: &mut Monitor, now: &mut Instant| {
        for &id in &ids {
            *now += Duration::from_millis(1);
            monitor.handle_peer_event(*now, id, &rtt);
            while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= *now) {
                monitor.handle_timeout(deadline);
            }
            while monitor.poll_event().is_some() {}
            while monitor.poll_probe().is_some() {}
        }
    };
    for _ in 0..5 {
        second(&mut monitor, &mut now);
    }
    let (before, live_before) = (allocations(), live());
    for _ in 0..30 {
        second(&mut monitor, &mut now);
    }
    let (allocated, grown) = (allocations() - before, live() - live_before);
    println!(
        "{} peer heartbeats: {allocated} allocations, {grown} bytes more",
        30 * n
    );
    assert_eq!(allocated, 0);
    assert_eq!(grown, 0);
}
