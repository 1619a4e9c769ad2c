//! Which target's deadline comes next: an indexed binary min-heap of
//! target indices, four bytes per target. Each record keeps its deadline
//! and its place in the heap, so moving one deadline is O(log n) with no
//! allocation, and the monitor's one deadline is the top.
//!
//! Heartbeats do not touch it: a heartbeat only moves a target's verdict
//! later, so the heap keeps the earlier deadline, and when that fires the
//! target is looked at and re-filed (the core's rule: a deadline that fires
//! early because input arrived since is a no-op).

use alloc::vec::Vec;

use pulse_proto::Instant;

/// Not in the heap.
pub(crate) const UNSCHEDULED: u32 = u32::MAX;

/// What the heap needs from a record.
pub(crate) trait Slot {
    fn deadline(&self) -> Instant;
    fn set_deadline(&mut self, deadline: Instant);
    fn heap_pos(&self) -> u32;
    fn set_heap_pos(&mut self, pos: u32);
}

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    heap: Vec<u32>,
}

impl Schedule {
    pub(crate) fn with_capacity(capacity: usize) -> Schedule {
        Schedule {
            heap: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.heap.capacity() * core::mem::size_of::<u32>()
    }

    /// The earliest target and its deadline.
    pub(crate) fn peek<S: Slot>(&self, slots: &[S]) -> Option<(u32, Instant)> {
        self.heap.first().map(|&i| (i, slots[i as usize].deadline()))
    }

    /// Files target `index` at `deadline`, wherever it was before.
    pub(crate) fn set<S: Slot>(&mut self, slots: &mut [S], index: u32, deadline: Instant) {
        let old = slots[index as usize].deadline();
        let pos = slots[index as usize].heap_pos();
        slots[index as usize].set_deadline(deadline);
        if pos == UNSCHEDULED {
            self.heap.push(index);
            let last = self.heap.len() - 1;
            slots[index as usize].set_heap_pos(last as u32);
            self.sift_up(slots, last);
        } else if deadline < old {
            self.sift_up(slots, pos as usize);
        } else {
            self.sift_down(slots, pos as usize);
        }
    }

    /// Takes target `index` out of the heap.
    pub(crate) fn remove<S: Slot>(&mut self, slots: &mut [S], index: u32) {
        let pos = slots[index as usize].heap_pos();
        if pos == UNSCHEDULED {
            return;
        }
        let pos = pos as usize;
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        slots[index as usize].set_heap_pos(UNSCHEDULED);
        if pos < self.heap.len() {
            slots[self.heap[pos] as usize].set_heap_pos(pos as u32);
            self.sift_up(slots, pos);
            let pos = slots[self.heap[pos.min(self.heap.len() - 1)] as usize].heap_pos() as usize;
            self.sift_down(slots, pos);
        }
    }

    fn less<S: Slot>(slots: &[S], a: u32, b: u32) -> bool {
        (slots[a as usize].deadline(), a) < (slots[b as usize].deadline(), b)
    }

    fn swap<S: Slot>(&mut self, slots: &mut [S], a: usize, b: usize) {
        self.heap.swap(a, b);
        slots[self.heap[a] as usize].set_heap_pos(a as u32);
        slots[self.heap[b] as usize].set_heap_pos(b as u32);
    }

    fn sift_up<S: Slot>(&mut self, slots: &mut [S], mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !Self::less(slots, self.heap[pos], self.heap[parent]) {
                break;
            }
            self.swap(slots, pos, parent);
            pos = parent;
        }
    }

    fn sift_down<S: Slot>(&mut self, slots: &mut [S], mut pos: usize) {
        loop {
            let (left, right) = (2 * pos + 1, 2 * pos + 2);
            let mut least = pos;
            if left < self.heap.len() && Self::less(slots, self.heap[left], self.heap[least]) {
                least = left;
            }
            if right < self.heap.len() && Self::less(slots, self.heap[right], self.heap[least]) {
                least = right;
            }
            if least == pos {
                break;
            }
            self.swap(slots, pos, least);
            pos = least;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use core::time::Duration;

    #[derive(Clone, Copy)]
    struct Bare(Instant, u32);

    impl Slot for Bare {
        fn deadline(&self) -> Instant {
            self.0
        }
        fn set_deadline(&mut self, deadline: Instant) {
            self.0 = deadline;
        }
        fn heap_pos(&self) -> u32 {
            self.1
        }
        fn set_heap_pos(&mut self, pos: u32) {
            self.1 = pos;
        }
    }

    fn at(ms: u64) -> Instant {
        Instant::ZERO + Duration::from_millis(ms)
    }

    #[test]
    fn the_top_is_always_the_earliest_through_sets_moves_and_removals() {
        let n = 200u32;
        let mut slots = vec![Bare(Instant::ZERO, UNSCHEDULED); n as usize];
        let mut schedule = Schedule::default();
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let mut live = vec![false; n as usize];
        for _ in 0..5000 {
            let i = (next() % u64::from(n)) as u32;
            if next() % 4 == 0 {
                schedule.remove(&mut slots, i);
                live[i as usize] = false;
            } else {
                schedule.set(&mut slots, i, at(next() % 10_000));
                live[i as usize] = true;
            }
            let expected = (0..n)
                .filter(|&i| live[i as usize])
                .map(|i| (slots[i as usize].0, i))
                .min();
            assert_eq!(schedule.peek(&slots).map(|(i, d)| (d, i)), expected);
        }
    }
}
