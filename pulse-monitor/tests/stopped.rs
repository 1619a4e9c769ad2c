//! A service's last announcement (`stopped`, `docs/PROTOCOL.md` §12.4):
//! down at once with its exit status, authenticated like any other, and
//! the end of its incarnation.

use std::time::Duration;

use pulse_monitor::{
    AnnounceError, AnnounceKey, Announcement, Config, Event, ExitStatus, Health, Monitor, Reason, Report, TargetId,
    TargetSpec, Transition,
};
use pulse_proto::{Instant, Status};

const INTERVAL: Duration = Duration::from_secs(1);

struct Fixture {
    monitor: Monitor,
    id: TargetId,
    pool: pulse_monitor::PoolId,
    key: AnnounceKey,
    now: Instant,
}

fn keyed(seed: u64) -> Fixture {
    let key = AnnounceKey::new(b"fleet secret");
    let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, seed).unwrap();
    monitor.add_announce_key(key.clone());
    let pool = monitor.add_pool();
    let id = monitor
        .add_target(Instant::ZERO, TargetSpec::announced(pool, 7))
        .unwrap();
    Fixture {
        monitor,
        id,
        pool,
        key,
        now: Instant::ZERO,
    }
}

fn running(incarnation: u32, sequence: u32) -> Announcement {
    Announcement {
        service: 7,
        incarnation,
        sequence,
        interval: INTERVAL,
        report: Report::Running(Status::default()),
    }
}

fn stopped(incarnation: u32, sequence: u32, exit: ExitStatus) -> Announcement {
    Announcement {
        report: Report::Stopped(exit),
        ..running(incarnation, sequence)
    }
}

impl Fixture {
    fn say(&mut self, a: Announcement) -> Result<TargetId, AnnounceError> {
        self.monitor.handle_announcement(self.now, &a.encode(Some(&self.key)))
    }

    /// Moves time on by `d`, running every deadline on the way.
    fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..10_000 {
            match self.monitor.poll_timeout().filter(|&t| t <= end) {
                Some(t) => {
                    self.now = t;
                    self.monitor.handle_timeout(t);
                }
                None => break,
            }
        }
        self.now = end;
    }

    fn transitions(&mut self) -> Vec<Transition> {
        std::iter::from_fn(|| self.monitor.poll_event())
            .filter_map(|e| match e {
                Event::Transition(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn health(&self) -> Health {
        self.monitor.snapshot(self.id).unwrap().health
    }
}

#[test]
fn a_stopped_announcement_takes_the_service_down_at_once_with_its_exit_status() {
    let mut f = keyed(1);
    for seq in 1..=5 {
        f.say(running(9, seq)).unwrap();
        f.wait(INTERVAL);
    }
    assert_eq!(f.health(), Health::Up);
    assert_eq!(f.monitor.healthy(f.pool).count(), 1);
    f.transitions();

    let at = f.now;
    assert_eq!(f.say(stopped(9, 6, ExitStatus::exited(3))), Ok(f.id));
    let down = f.transitions();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!((down[0].from, down[0].to, down[0].at), (Health::Up, Health::Down, at));
    assert_eq!(down[0].reason, Reason::Stopped(ExitStatus::exited(3)));
    assert_eq!(f.monitor.healthy(f.pool).count(), 0);
    assert!(f.monitor.snapshot(f.id).unwrap().stopped);

    // Its repeats (sent for loss) are accepted and change nothing.
    assert_eq!(f.say(stopped(9, 7, ExitStatus::exited(3))), Ok(f.id));
    assert_eq!(f.say(stopped(9, 8, ExitStatus::exited(3))), Ok(f.id));
    assert!(f.transitions().is_empty());
    // It stays down through the silence, with no second verdict.
    f.wait(INTERVAL * 30);
    assert_eq!(f.health(), Health::Down);
    assert!(f.transitions().is_empty());
}

#[test]
fn a_stopped_incarnation_is_over_and_a_newer_one_brings_the_service_back() {
    let mut f = keyed(2);
    f.say(running(9, 1)).unwrap();
    f.say(stopped(9, 2, ExitStatus::killed(9))).unwrap();
    f.transitions();
    // The ended incarnation cannot come back, even with a newer sequence.
    f.wait(INTERVAL);
    assert_eq!(f.say(running(9, 3)), Err(AnnounceError::Stale));
    assert_eq!(f.monitor.stats().stale, 1);
    assert_eq!(f.health(), Health::Down);
    assert!(f.transitions().is_empty());

    // Started again: a newer incarnation, up at its first announcement.
    f.wait(INTERVAL);
    f.say(running(10, 1)).unwrap();
    let events: Vec<Event> = std::iter::from_fn(|| f.monitor.poll_event()).collect();
    assert!(events.contains(&Event::Restarted {
        target: f.id,
        incarnation: 10
    }));
    let up = events.iter().find_map(|e| match e {
        Event::Transition(t) => Some(*t),
        _ => None,
    });
    let up = up.expect("a transition up");
    assert_eq!(
        (up.from, up.to, up.reason),
        (Health::Down, Health::Up, Reason::Announced)
    );
    assert_eq!(f.monitor.healthy(f.pool).count(), 1);
    assert!(!f.monitor.snapshot(f.id).unwrap().stopped);
    // And the new incarnation is judged by its silence as usual.
    f.wait(INTERVAL * 30);
    assert_eq!(f.health(), Health::Down);
    assert!(matches!(
        f.transitions().last().unwrap().reason,
        Reason::Suspicion { .. }
    ));
}

#[test]
fn a_forged_or_unsigned_stopped_announcement_is_rejected_and_the_service_stays_up() {
    let mut f = keyed(3);
    f.say(running(9, 1)).unwrap();
    f.transitions();
    let forged = stopped(9, 2, ExitStatus::exited(1));
    assert_eq!(
        f.monitor
            .handle_announcement(f.now, &forged.encode(Some(&AnnounceKey::new(b"guess")))),
        Err(AnnounceError::BadTag)
    );
    assert_eq!(
        f.monitor.handle_announcement(f.now, &forged.encode(None)),
        Err(AnnounceError::Unauthenticated)
    );
    // A captured stop of an earlier run, replayed: stale.
    f.say(running(9, 5)).unwrap();
    assert_eq!(f.say(stopped(9, 4, ExitStatus::exited(0))), Err(AnnounceError::Stale));
    assert_eq!(f.health(), Health::Up);
    assert!(f.transitions().is_empty());
    // The real service still announces, and is not held to a stop.
    f.wait(INTERVAL);
    f.say(running(9, 6)).unwrap();
    assert_eq!(f.health(), Health::Up);
}

#[test]
fn a_service_that_never_announced_before_its_stop_is_down_from_unknown() {
    let mut f = keyed(4);
    f.say(stopped(1, 1, ExitStatus::exited(0))).unwrap();
    let t = f.transitions();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].from, t[0].to), (Health::Unknown, Health::Down));
    assert_eq!(t[0].reason, Reason::Stopped(ExitStatus::exited(0)));
}
