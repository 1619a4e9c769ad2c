//! Finding the target an announcement is for: an open-addressing table
//! from service id to target index, four bytes a slot and at most three
//! quarters full, so a lookup is O(1) and a heartbeat allocates nothing.
//!
//! The hash is keyed from the monitor's seed: which ids collide is not
//! something a sender can plan, and an id that is not registered ends its
//! probe at the first empty slot.

use alloc::vec;
use alloc::vec::Vec;

const EMPTY: u32 = u32::MAX;
const TOMBSTONE: u32 = u32::MAX - 1;

#[derive(Debug)]
pub(crate) struct ServiceIndex {
    slots: Vec<u32>,
    key: u64,
    /// Live entries plus tombstones: what bounds the probe length.
    used: usize,
}

impl ServiceIndex {
    pub(crate) fn new(key: u64, capacity: usize) -> ServiceIndex {
        ServiceIndex {
            slots: vec![EMPTY; table_size(capacity)],
            key,
            used: 0,
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 4
    }

    fn hash(&self, id: u64) -> usize {
        let mut z = id ^ self.key;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as usize & (self.slots.len() - 1)
    }

    /// The target for `id`; `id_of` reads a target's service id.
    pub(crate) fn get(&self, id: u64, id_of: impl Fn(u32) -> u64) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut at = self.hash(id);
        loop {
            match self.slots[at] {
                EMPTY => return None,
                TOMBSTONE => {}
                target if id_of(target) == id => return Some(target),
                _ => {}
            }
            at = (at + 1) & mask;
        }
    }

    /// Files `target` under `id` (the caller has checked `id` is absent).
    pub(crate) fn insert(&mut self, id: u64, target: u32, id_of: impl Fn(u32) -> u64) {
        if (self.used + 1) * 4 > self.slots.len() * 3 {
            self.rebuild(self.slots.len() * 2, &id_of);
        }
        self.place(id, target);
    }

    fn place(&mut self, id: u64, target: u32) {
        let mask = self.slots.len() - 1;
        let mut at = self.hash(id);
        while self.slots[at] != EMPTY && self.slots[at] != TOMBSTONE {
            at = (at + 1) & mask;
        }
        if self.slots[at] == EMPTY {
            self.used += 1;
        }
        self.slots[at] = target;
    }

    pub(crate) fn remove(&mut self, id: u64, id_of: impl Fn(u32) -> u64) {
        let mask = self.slots.len() - 1;
        let mut at = self.hash(id);
        loop {
            match self.slots[at] {
                EMPTY => return,
                TOMBSTONE => {}
                target if id_of(target) == id => {
                    self.slots[at] = TOMBSTONE;
                    return;
                }
                _ => {}
            }
            at = (at + 1) & mask;
        }
    }

    fn rebuild(&mut self, size: usize, id_of: &impl Fn(u32) -> u64) {
        let old = core::mem::replace(&mut self.slots, vec![EMPTY; size]);
        self.used = 0;
        for target in old.into_iter().filter(|&t| t != EMPTY && t != TOMBSTONE) {
            self.place(id_of(target), target);
        }
    }
}

/// The smallest power of two that holds `capacity` entries at most three
/// quarters full.
fn table_size(capacity: usize) -> usize {
    (capacity * 4 / 3 + 1).next_power_of_two().max(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_found_after_growth_and_removal_and_absent_ones_are_not() {
        let ids: Vec<u64> = (0..1000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let id_of = |t: u32| ids[t as usize];
        let mut index = ServiceIndex::new(7, 0);
        for t in 0..1000u32 {
            index.insert(ids[t as usize], t, id_of);
        }
        for t in (0..1000u32).step_by(2) {
            index.remove(ids[t as usize], id_of);
        }
        for t in 0..1000u32 {
            let expected = (t % 2 == 1).then_some(t);
            assert_eq!(index.get(ids[t as usize], id_of), expected);
        }
        assert_eq!(index.get(12345, id_of), None);
    }

    #[test]
    fn a_table_sized_for_its_capacity_never_grows() {
        let mut index = ServiceIndex::new(1, 10_000);
        let before = index.heap_bytes();
        for t in 0..10_000u32 {
            index.insert(u64::from(t), t, u64::from);
        }
        assert_eq!(index.heap_bytes(), before);
        assert!(before <= 10_000 * 4 * 8 / 3, "{before}");
    }
}
