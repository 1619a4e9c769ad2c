//! What a target costs: at most 128 bytes of heap, and nothing allocated
//! per heartbeat — counted by a global allocator that keeps per-thread
//! tallies (tests run in parallel threads).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use pulse_monitor::{AnnounceKey, Announcement, Check, Config, Monitor, TargetSpec};
use pulse_proto::{Event, Instant, RttSample, Status};

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

/// A monitor sized for `n` targets, half announced and half checked.
fn fleet(n: usize) -> Monitor {
    let mut monitor = Monitor::with_capacity(Config::lan(), Instant::ZERO, 1, n).unwrap();
    let pool = monitor.add_pool();
    let tcp = monitor.add_check(Check::Tcp);
    for k in 0..n as u64 {
        let spec = if k % 2 == 0 {
            TargetSpec::announced(pool, k)
        } else {
            TargetSpec::checked(pool, tcp)
        };
        monitor.add_target(Instant::ZERO, spec).unwrap();
    }
    monitor
}

#[test]
fn each_target_costs_at_most_128_bytes_of_heap() {
    for n in [10_000usize, 12_289, 65_537, 100_000] {
        let before = live();
        let monitor = fleet(n);
        let bytes = live() - before;
        let per_target = bytes as f64 / n as f64;
        println!(
            "{n} targets: {bytes} bytes of heap, {per_target:.1} per target (monitor says {})",
            monitor.heap_bytes()
        );
        assert!(per_target <= 128.0, "{n} targets: {per_target:.1} bytes each");
        // Everything it holds is what it says it holds, plus a fixed part.
        assert!(
            (bytes - monitor.heap_bytes() as i64).abs() < 4096,
            "{bytes} vs {}",
            monitor.heap_bytes()
        );
        drop(monitor);
    }
}

/// Sends one round of announcements (and runs every deadline due),
/// returning the new time.
fn round(monitor: &mut Monitor, mut now: Instant, services: u64, seq: u32, key: &AnnounceKey) -> Instant {
    let step = Duration::from_secs(1) / services as u32;
    for service in (0..services).step_by(2) {
        now += step * 2;
        let a = Announcement {
            service,
            incarnation: 1,
            sequence: seq,
            interval: Duration::from_secs(1),
            report: pulse_monitor::Report::Running(Status::default()),
        };
        monitor.handle_announcement(now, &a.encode(Some(key))).unwrap();
        while let Some(deadline) = monitor.poll_timeout().filter(|&d| d <= now) {
            monitor.handle_timeout(deadline);
        }
        while monitor.poll_event().is_some() {}
        while monitor.poll_probe().is_some() {}
    }
    now
}

#[test]
fn a_heartbeat_allocates_nothing_authenticated_or_not() {
    let n = 10_000u64;
    let key = AnnounceKey::new(b"fleet secret");
    let mut monitor = fleet(n as usize);
    monitor.add_announce_key(key.clone());
    let mut now = Instant::ZERO;
    // Warm up: every queue reaches the size it keeps.
    for seq in 1..=10 {
        now = round(&mut monitor, now, n, seq, &key);
    }
    let taken = monitor.stats().announcements;
    let (allocations_before, live_before) = (allocations(), live());
    for seq in 11..=40 {
        now = round(&mut monitor, now, n, seq, &key);
    }
    let heartbeats = monitor.stats().announcements - taken;
    // Read before printing: the test harness captures output on the heap.
    let (allocated, grown) = (allocations() - allocations_before, live() - live_before);
    println!("{heartbeats} authenticated heartbeats, {allocated} allocations, {grown} bytes more");
    assert_eq!(heartbeats, 30 * n / 2);
    assert_eq!(allocated, 0);
    assert_eq!(grown, 0);
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
