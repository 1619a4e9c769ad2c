//! The timer wheel against a plain model: under any sequence of inserts,
//! cancels and advances, exactly the timers whose (rounded-up) deadline has
//! come fire, none early, none twice, none lost.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use pulse_proto::{Instant, TimerKey, TimerWheel};

#[derive(Clone, Debug)]
enum Op {
    /// A timer this many nanoseconds from now (any magnitude).
    Insert(u64),
    /// Cancel the n-th live timer (modulo how many there are).
    Cancel(usize),
    /// Let this many nanoseconds pass, then collect what fired.
    Advance(u64),
    /// Wake when the wheel asks, as a driver would.
    WakeWhenAsked,
}

fn op() -> impl Strategy<Value = Op> {
    let span = prop_oneof![0u64..100, 0u64..100_000, 0u64..10_000_000, 0u64..1 << 40];
    prop_oneof![
        4 => span.clone().prop_map(Op::Insert),
        1 => any::<usize>().prop_map(Op::Cancel),
        3 => span.prop_map(Op::Advance),
        2 => Just(Op::WakeWhenAsked),
    ]
}

/// Polls everything due at `now` and checks it is exactly the model's due set.
fn check_fired(
    wheel: &mut TimerWheel<u64>,
    live: &mut BTreeMap<u64, (u64, TimerKey)>,
    now: u64,
    resolution: u64,
) -> Result<(), TestCaseError> {
    let now_tick = now / resolution;
    let mut fired = Vec::new();
    while let Some((key, id)) = wheel.poll_expired(Instant::from_nanos(now)) {
        prop_assert_eq!(wheel.deadline(key), None, "a fired key is stale");
        fired.push(id);
    }
    fired.sort_unstable();
    let due: Vec<u64> = live
        .iter()
        .filter(|(_, (tick, _))| *tick <= now_tick)
        .map(|(id, _)| *id)
        .collect();
    prop_assert_eq!(&fired, &due, "at tick {}", now_tick);
    for id in due {
        live.remove(&id);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)))]
    #[test]
    fn the_wheel_fires_exactly_what_is_due(ops in prop::collection::vec(op(), 1..300), resolution in 1u64..2_000) {
        let mut wheel = TimerWheel::new(Duration::from_nanos(resolution));
        // Model: id -> (deadline tick, key).
        let mut live: BTreeMap<u64, (u64, TimerKey)> = BTreeMap::new();
        let mut now = 0u64;
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Insert(after) => {
                    let deadline = now.saturating_add(after);
                    let key = wheel.insert(Instant::from_nanos(deadline), next_id);
                    live.insert(next_id, (deadline.div_ceil(resolution), key));
                    next_id += 1;
                }
                Op::Cancel(n) if !live.is_empty() => {
                    let id = *live.keys().nth(n % live.len()).unwrap();
                    let (_, key) = live.remove(&id).unwrap();
                    prop_assert_eq!(wheel.cancel(key), Some(id));
                    prop_assert_eq!(wheel.cancel(key), None, "a key works once");
                }
                Op::Cancel(_) => {}
                Op::Advance(step) => {
                    now = now.saturating_add(step);
                    check_fired(&mut wheel, &mut live, now, resolution)?;
                }
                Op::WakeWhenAsked => {
                    let Some(at) = wheel.next_expiration() else {
                        prop_assert!(live.is_empty());
                        continue;
                    };
                    // Never later than anything due.
                    if let Some(earliest) = live.values().map(|(tick, _)| *tick).min() {
                        prop_assert!(at.as_nanos() <= earliest.saturating_mul(resolution).max(now));
                    }
                    now = at.as_nanos().max(now);
                    check_fired(&mut wheel, &mut live, now, resolution)?;
                }
            }
            prop_assert_eq!(wheel.len(), live.len());
        }
    }
}

#[test]
fn each_live_timer_reports_its_own_deadline_and_a_fired_one_none() {
    let ms = Duration::from_millis(1);
    let mut wheel = TimerWheel::new(ms);
    let at = |n: u64| Instant::from_nanos(n * 1_000_000);
    assert!(wheel.is_empty());
    let first = wheel.insert(at(5), 'a');
    assert!(!wheel.is_empty());
    let second = wheel.insert(at(700), 'b');
    let third = wheel.insert(at(90_000), 'c');
    assert_eq!(wheel.deadline(first), Some(at(5)));
    assert_eq!(wheel.deadline(second), Some(at(700)));
    assert_eq!(wheel.deadline(third), Some(at(90_000)));
    assert_eq!(wheel.poll_expired(at(10)).map(|(_, v)| v), Some('a'));
    assert_eq!(wheel.deadline(first), None);
    assert_eq!(wheel.deadline(second), Some(at(700)));
}

#[test]
fn a_cancelled_timers_key_reports_no_deadline_once_its_entry_is_reused() {
    let ms = Duration::from_millis(1);
    let mut wheel = TimerWheel::new(ms);
    let at = |n: u64| Instant::from_nanos(n * 1_000_000);
    let cancelled = wheel.insert(at(40), 'a');
    assert_eq!(wheel.cancel(cancelled), Some('a'));
    // The new timer takes the freed entry; the old record still sits in
    // its slot, and must not answer for the old key.
    let reused = wheel.insert(at(900), 'b');
    assert_eq!(wheel.deadline(cancelled), None);
    assert_eq!(wheel.deadline(reused), Some(at(900)));
}
