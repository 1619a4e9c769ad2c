//! A hierarchical timer wheel: one timer per session for a whole event
//! loop, O(1) to insert and cancel, and expiry that never visits timers
//! that are not due. Pure data, so any loop can use it.

use alloc::vec::Vec;
use core::time::Duration;

use crate::time::Instant;

/// Slots per level, and bits of the tick each level consumes.
const SLOTS: usize = 64;
const BITS: u32 = 6;
/// Six levels of 64 slots cover 2^36 ticks: over two years at 1 ms.
const LEVELS: usize = 6;
/// The farthest tick a timer can be placed at, relative to now.
const MAX_TICKS: u64 = (1 << (BITS * LEVELS as u32)) - 1;
/// "No entry" in the intrusive lists.
const NIL: u32 = u32::MAX;

/// Identifies one timer in a [`TimerWheel`]. A key goes stale once its timer
/// fires or is cancelled; a stale key never touches a newer timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// Where a timer sits in the wheel: what cascading moves from slot to slot
/// without touching the timer's entry (which may be far away in memory).
#[derive(Clone, Copy, Debug)]
struct Record {
    tick: u64,
    index: u32,
    generation: u32,
}

#[derive(Debug)]
struct Entry<T> {
    /// `None` when the entry is free.
    value: Option<T>,
    generation: u32,
    /// Free list link.
    next_free: u32,
}

/// Drained slot buffers are kept for the next slot that needs one — at
/// most this many, of at most `KEEP_RECORDS` records each — so a busy
/// wheel does not regrow buffers, yet empty slots hold none.
const SPARE_BUFFERS: usize = 8;
const KEEP_RECORDS: usize = 4096;
/// A drained buffer this small simply stays in its slot: at most 1 KB per
/// slot (384 KB in all), and sparse wheels skip the hand-off.
const SMALL_RECORDS: usize = 64;

/// Timers on a hierarchical wheel, in the manner of the Linux kernel's and
/// tokio's: six levels of 64 slots, each with a `u64` occupancy bitmap, the
/// next occupied slot found with `trailing_zeros`. No `unsafe`.
///
/// Each slot is a vector of small records (deadline, entry index,
/// generation); the timers' values live in a slab of entries. Moving
/// timers down a level moves records only, and an entry is touched once
/// when inserted, once when cancelled (which frees it at once: its stale
/// record is skipped when met) and once when it fires — so each operation
/// costs about the same at a thousand timers as at a million, long past
/// the point where they fit in the caches.
///
/// Time is in ticks of `resolution` from [`Instant::ZERO`]. A timer fires
/// at the first tick at or after its deadline: never early, at most one
/// resolution late.
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use pulse_proto::{Instant, TimerWheel};
///
/// let ms = |n| Instant::ZERO + Duration::from_millis(n);
/// let mut wheel = TimerWheel::new(Duration::from_millis(1));
/// let a = wheel.insert(ms(30), "a");
/// wheel.insert(ms(10), "b");
/// assert_eq!(wheel.next_expiration(), Some(ms(10)));
/// assert_eq!(wheel.cancel(a), Some("a"));
/// assert_eq!(wheel.poll_expired(ms(9)), None);
/// assert_eq!(wheel.poll_expired(ms(10)).map(|(_, v)| v), Some("b"));
/// assert!(wheel.is_empty());
/// ```
#[derive(Debug)]
pub struct TimerWheel<T> {
    resolution: u64,
    /// Every tick before this one has been processed.
    elapsed: u64,
    occupied: [u64; LEVELS],
    slots: Vec<Vec<Record>>,
    /// Records of fired timers not yet handed out by `poll_expired`.
    expired: Vec<Record>,
    /// Drained slot buffers, for reuse.
    spare: Vec<Vec<Record>>,
    entries: Vec<Entry<T>>,
    free: u32,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// An empty wheel with ticks of `resolution` (at least 1 ns).
    pub fn new(resolution: Duration) -> Self {
        Self::with_capacity(resolution, 0)
    }

    /// An empty wheel with room for `capacity` timers before it grows.
    pub fn with_capacity(resolution: Duration, capacity: usize) -> Self {
        TimerWheel {
            resolution: u64::try_from(resolution.as_nanos()).unwrap_or(u64::MAX).max(1),
            elapsed: 0,
            occupied: [0; LEVELS],
            slots: (0..LEVELS * SLOTS).map(|_| Vec::new()).collect(),
            expired: Vec::new(),
            spare: Vec::new(),
            entries: Vec::with_capacity(capacity),
            free: NIL,
            len: 0,
        }
    }

    /// Live timers held (pending, or fired and not yet polled).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no live timer is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a timer firing at `deadline`. A deadline already past fires at
    /// the next [`TimerWheel::poll_expired`].
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerKey {
        // Round up: a timer never fires before its deadline.
        let tick = deadline.as_nanos().div_ceil(self.resolution);
        let index = self.allocate(value);
        let generation = self.entries[index as usize].generation;
        self.place(Record {
            tick,
            index,
            generation,
        });
        self.len += 1;
        TimerKey { index, generation }
    }

    /// Removes a timer, returning its value; `None` if the key is stale.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        let entry = self.entries.get_mut(key.index as usize)?;
        if entry.generation != key.generation {
            return None;
        }
        let value = entry.value.take()?;
        // Free at once: the record left in its slot no longer matches.
        self.release(key.index);
        self.len -= 1;
        Some(value)
    }

    /// The deadline a live timer fires at (rounded up to the resolution).
    /// Costs a search of the timer's slot: for diagnostics, not hot paths.
    pub fn deadline(&self, key: TimerKey) -> Option<Instant> {
        let entry = self.entries.get(key.index as usize)?;
        if entry.generation != key.generation || entry.value.is_none() {
            return None;
        }
        self.slots
            .iter()
            .chain(core::iter::once(&self.expired))
            .flatten()
            .find(|r| r.index == key.index && r.generation == key.generation)
            .map(|r| self.instant(r.tick))
    }

    /// When [`TimerWheel::poll_expired`] next has work: a timer due, or the
    /// timers of a higher level's slot to move down a level. Never later
    /// than the earliest deadline; use it as the driver's poll timeout.
    /// O(levels): it reads bitmaps, not timers.
    pub fn next_expiration(&self) -> Option<Instant> {
        if !self.expired.is_empty() {
            return Some(self.instant(self.elapsed));
        }
        self.next_slot().map(|(_, _, tick)| self.instant(tick))
    }

    /// One timer due at `now`, with its key, or `None` when none is. Call
    /// until `None`. Only slots that hold due timers are visited; later
    /// timers move down a level at most once per level.
    pub fn poll_expired(&mut self, now: Instant) -> Option<(TimerKey, T)> {
        let now_tick = now.as_nanos() / self.resolution;
        loop {
            while let Some(record) = self.expired.pop() {
                let entry = &mut self.entries[record.index as usize];
                if entry.generation != record.generation {
                    continue; // cancelled since
                }
                let Some(value) = entry.value.take() else { continue };
                self.release(record.index);
                self.len -= 1;
                return Some((
                    TimerKey {
                        index: record.index,
                        generation: record.generation,
                    },
                    value,
                ));
            }
            let Some((level, slot, tick)) = self.next_slot().filter(|&(_, _, tick)| tick <= now_tick) else {
                self.elapsed = self.elapsed.max(now_tick);
                return None;
            };
            // Everything before this slot is done: take it, and send each
            // record to the expired list or down a level.
            self.elapsed = tick;
            self.occupied[level] &= !(1 << slot);
            let mut records = core::mem::take(&mut self.slots[level * SLOTS + slot]);
            for record in records.drain(..) {
                self.place(record);
            }
            if records.capacity() <= SMALL_RECORDS {
                self.slots[level * SLOTS + slot] = records;
            } else if records.capacity() <= KEEP_RECORDS && self.spare.len() < SPARE_BUFFERS {
                self.spare.push(records);
            }
        }
    }

    fn instant(&self, tick: u64) -> Instant {
        Instant::from_nanos(tick.saturating_mul(self.resolution))
    }

    /// The next occupied slot: its level, index and first tick.
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        // A level's timers all come after every timer of the levels below,
        // so the first level with any holds the next expiration.
        (0..LEVELS).find_map(|level| {
            let occupied = self.occupied[level];
            if occupied == 0 {
                return None;
            }
            let shift = BITS * level as u32;
            let slot_ticks = 1u64 << shift;
            let level_ticks = slot_ticks << BITS;
            let current = ((self.elapsed >> shift) % SLOTS as u64) as u32;
            // Above level 0 the current slot only ever holds timers of the
            // next turn (this turn's are on lower levels), so search from
            // the slot after it, and reach it last. (Slot 64 is slot 0:
            // `rotate_right` and the `%` below wrap it.)
            let from = if level == 0 { current } else { current + 1 };
            let slot = (occupied.rotate_right(from).trailing_zeros() + from) % SLOTS as u32;
            let mut tick = (self.elapsed & !(level_ticks - 1)) + u64::from(slot) * slot_ticks;
            // A slot at or before the current one is next turn's. (On level
            // 0 none is: a due timer goes to the expired list instead.)
            if slot <= current {
                tick += level_ticks;
            }
            Some((level, slot as usize, tick.max(self.elapsed)))
        })
    }

    /// Puts a record where its tick belongs relative to `elapsed`.
    fn place(&mut self, record: Record) {
        if record.tick <= self.elapsed {
            return self.expired.push(record);
        }
        let distance = (record.tick ^ self.elapsed).min(MAX_TICKS) | (SLOTS as u64 - 1);
        let level = ((63 - distance.leading_zeros()) / BITS) as usize;
        // Beyond the wheel: park it in the farthest slot; it moves on from
        // there when that slot comes due.
        let clamped = record.tick.min(self.elapsed + MAX_TICKS);
        let slot = ((clamped >> (BITS * level as u32)) % SLOTS as u64) as usize;
        self.occupied[level] |= 1 << slot;
        let records = &mut self.slots[level * SLOTS + slot];
        if records.capacity() == 0 {
            if let Some(buffer) = self.spare.pop() {
                *records = buffer;
            }
        }
        records.push(record);
    }

    fn allocate(&mut self, value: T) -> u32 {
        if self.free != NIL {
            let index = self.free;
            let entry = &mut self.entries[index as usize];
            self.free = entry.next_free;
            entry.value = Some(value);
            return index;
        }
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&i| i != NIL)
            .expect("fewer than 2^32 - 1 timers");
        self.entries.push(Entry {
            value: Some(value),
            generation: 0,
            next_free: NIL,
        });
        index
    }

    /// Frees an entry whose value was taken; its generation moves on, so
    /// every key and record naming the old one is stale.
    fn release(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.next_free = self.free;
        self.free = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn ms(n: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(n)
    }

    fn drain(wheel: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        let mut fired: Vec<u32> = core::iter::from_fn(|| wheel.poll_expired(now).map(|(_, v)| v)).collect();
        fired.sort_unstable();
        fired
    }

    #[test]
    fn timers_fire_at_their_tick_never_early_across_every_level() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        let deadlines = [1, 63, 64, 65, 4095, 4096, 4097, 262_143, 262_144, 16_777_216, 1 << 30];
        for (i, &d) in deadlines.iter().enumerate() {
            wheel.insert(ms(d), i as u32);
        }
        for (i, &d) in deadlines.iter().enumerate() {
            // Waking when the wheel asks: at most one cascade per level,
            // never a timer before its deadline.
            for cascade in 0.. {
                let next = wheel.next_expiration().unwrap();
                assert!(
                    next <= ms(d),
                    "timer {i}: the wheel asked for {next:?}, after its deadline"
                );
                let fired = drain(&mut wheel, next);
                if next == ms(d) {
                    assert_eq!(fired, vec![i as u32], "timer {i} at {d} ms");
                    break;
                }
                assert_eq!(fired, Vec::<u32>::new(), "timer {i} fired early");
                assert!(cascade < LEVELS, "timer {i}: too many cascades");
            }
        }
        assert!(wheel.is_empty());
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_its_stale_key_touches_nothing_else() {
        let mut wheel = TimerWheel::new(Duration::from_millis(1));
        let a = wheel.insert(ms(100), 1);
        assert_eq!(wheel.cancel(a), Some(1));
        let b = wheel.insert(ms(100), 2); // reuses a's entry
        assert_eq!(wheel.cancel(a), None);
        assert_eq!(wheel.deadline(b), Some(ms(100)));
        assert_eq!(drain(&mut wheel, ms(1000)), vec![2]);
    }

    #[test]
    fn past_and_rounded_deadlines_fire_at_the_next_poll_and_never_before() {
        let mut wheel = TimerWheel::new(Duration::from_millis(10));
        assert_eq!(drain(&mut wheel, ms(50)), Vec::<u32>::new());
        wheel.insert(ms(20), 1); // already past
        wheel.insert(ms(51), 2); // rounds up to 60
        assert_eq!(wheel.next_expiration(), Some(ms(50)));
        assert_eq!(drain(&mut wheel, ms(50)), vec![1]);
        assert_eq!(wheel.next_expiration(), Some(ms(60)));
        assert_eq!(drain(&mut wheel, ms(59)), Vec::<u32>::new());
        assert_eq!(drain(&mut wheel, ms(60)), vec![2]);
    }

    #[test]
    fn a_timer_beyond_the_wheel_fires_late_rather_than_never() {
        let mut wheel = TimerWheel::new(Duration::from_nanos(1));
        wheel.insert(Instant::from_nanos(u64::MAX), 7);
        let next = wheel.next_expiration().unwrap();
        assert!(next.as_nanos() <= MAX_TICKS + 1);
        // It keeps moving toward its deadline as time passes.
        assert_eq!(drain(&mut wheel, next), Vec::<u32>::new());
        assert_eq!(wheel.len(), 1);
    }
}
