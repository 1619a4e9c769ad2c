use alloc::vec::Vec;

use pulse_proto::ServiceState;

use super::*;

const I: Duration = Duration::from_secs(1);

fn announcer(seed: u64) -> Announcer {
    Announcer::new(Instant::ZERO, 7, 100, I, None, seed)
}

/// Everything due up to `end`, as a driver's loop would send it.
fn run_until(a: &mut Announcer, end: Instant) -> Vec<(Instant, Announcement)> {
    let mut sent = Vec::new();
    for _ in 0..100_000 {
        let Some(deadline) = a.poll_timeout().filter(|&d| d <= end) else {
            break;
        };
        while let Some(out) = a.poll_transmit(deadline) {
            sent.push((deadline, out.announcement));
        }
    }
    sent
}

#[test]
fn sequence_starts_at_one_and_grows_by_one_in_the_given_incarnation() {
    let mut a = announcer(1);
    let sent = run_until(&mut a, Instant::ZERO + I * 10);
    assert!(sent.len() >= 9, "{}", sent.len());
    for (n, (_, ann)) in sent.iter().enumerate() {
        assert_eq!((ann.service, ann.incarnation, ann.sequence), (7, 100, n as u32 + 1));
        assert_eq!(ann.interval, I);
    }
}

#[test]
fn a_sequence_that_would_wrap_starts_the_next_incarnation_at_sequence_one() {
    let mut a = announcer(1);
    a.announce_at_once(Instant::ZERO);
    a.sequence = u32::MAX - 1;
    let sent = run_until(&mut a, Instant::ZERO + I * 3);
    let seen: Vec<(u32, u32)> = sent.iter().map(|(_, a)| (a.incarnation, a.sequence)).collect();
    assert_eq!(&seen[..3], [(100, u32::MAX), (101, 1), (101, 2)]);
    assert_eq!(a.incarnation(), 101);
}

#[test]
fn intervals_are_jittered_within_ten_percent_and_cover_the_range() {
    let mut a = announcer(5);
    let sent = run_until(&mut a, Instant::ZERO + I * 2000);
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(gaps.len() > 1500, "{}", gaps.len());
    assert!(gaps.iter().all(|&g| g >= I * 9 / 10 && g <= I * 11 / 10), "{gaps:?}");
    let (low, high) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    assert!(*low < I * 92 / 100 && *high > I * 108 / 100, "{low:?} {high:?}");
}

#[test]
fn first_announcements_are_spread_over_the_first_interval() {
    let mut buckets = [0u32; 10];
    for seed in 0..1000 {
        let first = announcer(seed).poll_timeout().unwrap();
        assert!(first < Instant::ZERO + I, "{first:?}");
        buckets[((first - Instant::ZERO).as_millis() / 100) as usize] += 1;
    }
    assert!(buckets.iter().all(|&n| (50..150).contains(&n)), "{buckets:?}");
}

#[test]
fn announce_at_once_makes_the_first_announcement_due_now() {
    let mut a = announcer(3);
    let now = Instant::ZERO + Duration::from_millis(1);
    a.announce_at_once(now);
    assert_eq!(a.poll_timeout(), Some(now));
    assert_eq!(a.poll_transmit(now).unwrap().announcement.sequence, 1);
}

#[test]
fn nothing_is_sent_before_its_deadline_and_one_per_deadline() {
    let mut a = announcer(2);
    let due = a.poll_timeout().unwrap();
    assert!(due > Instant::ZERO);
    assert!(a.poll_transmit(Instant::ZERO).is_none());
    assert!(a.poll_transmit(due - Duration::from_nanos(1)).is_none());
    // A driver late by many intervals sends one, not a burst.
    let late = due + I * 10;
    assert!(a.poll_transmit(late).is_some());
    assert!(a.poll_transmit(late).is_none());
    assert!(a.poll_timeout().unwrap() >= late + I * 9 / 10);
}

#[test]
fn the_status_set_is_carried_by_the_next_announcement_and_those_after() {
    let mut a = announcer(4);
    let draining = Status::new(ServiceState::Draining, 30);
    let first = a.poll_timeout().unwrap();
    assert_eq!(
        a.poll_transmit(first).unwrap().announcement.report,
        Report::Running(Status::default())
    );
    a.set_status(draining);
    // Level-triggered: not sent early.
    assert!(a.poll_transmit(first).is_none());
    for _ in 0..3 {
        let next = a.poll_timeout().unwrap();
        assert_eq!(
            a.poll_transmit(next).unwrap().announcement.report,
            Report::Running(draining)
        );
    }
}

#[test]
fn stop_sends_the_stopped_announcements_spaced_then_nothing() {
    let mut a = announcer(6);
    let first = a.poll_timeout().unwrap();
    a.poll_transmit(first).unwrap();
    let end = first + Duration::from_millis(5);
    let exit = ExitStatus::killed(9);
    a.stop(end, exit);
    a.stop(end, ExitStatus::exited(0));
    let sent = run_until(&mut a, end + I * 100);
    assert_eq!(sent.len(), 3, "a few, as documented");
    for (n, (at, ann)) in sent.iter().enumerate() {
        assert_eq!(ann.report, Report::Stopped(exit));
        assert_eq!(ann.sequence, n as u32 + 2);
        assert_eq!(*at, end + FINAL_SPACING * n as u32);
    }
    assert_eq!(a.poll_timeout(), None);
    assert!(a.poll_transmit(end + I * 1000).is_none());
}

#[test]
fn keyed_announcements_verify_with_the_key_and_fail_without_it() {
    let key = AnnounceKey::new(b"secret");
    let mut a = Announcer::new(Instant::ZERO, 7, 100, I, Some(key.clone()), 8);
    a.announce_at_once(Instant::ZERO);
    let out = a.poll_transmit(Instant::ZERO).unwrap();
    let decoded = Announcement::decode(&out.datagram, core::slice::from_ref(&key)).unwrap();
    assert_eq!(decoded, out.announcement);
    assert!(Announcement::decode(&out.datagram, &[AnnounceKey::new(b"other")]).is_err());
    a.stop(Instant::ZERO, ExitStatus::exited(3));
    let out = a.poll_transmit(Instant::ZERO).unwrap();
    assert_eq!(
        Announcement::decode(&out.datagram, &[key]).unwrap().report,
        Report::Stopped(ExitStatus::exited(3))
    );
}

#[test]
fn a_zero_interval_is_taken_as_one_millisecond_so_a_driver_never_spins() {
    let mut a = Announcer::new(Instant::ZERO, 7, 100, Duration::ZERO, None, 3);
    let end = Instant::ZERO + Duration::from_millis(100);
    let mut sent = Vec::new();
    // Bounded: a zero interval would make every deadline `now` again.
    for _ in 0..1_000 {
        let Some(deadline) = a.poll_timeout().filter(|&d| d <= end) else {
            break;
        };
        for _ in 0..2 {
            if let Some(out) = a.poll_transmit(deadline) {
                sent.push(out.announcement);
            }
        }
    }
    // About one a millisecond, each on the wire as a valid announcement.
    assert!((80..=120).contains(&sent.len()), "{}", sent.len());
    for ann in &sent {
        assert_eq!(ann.interval, Duration::from_millis(1));
        assert!(Announcement::decode(&ann.encode(None), &[]).is_ok());
    }
}
