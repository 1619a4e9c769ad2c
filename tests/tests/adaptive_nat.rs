//! The adaptive heartbeat interval (`docs/PROTOCOL.md` §6.11) against NATs
//! and firewalls that forget idle connections, in virtual time: a client
//! that reconnects whenever its connection dies learns how long the path
//! keeps an idle connection, settles just under it, and keeps every
//! message sent once it has settled.
//!
//! A seed chooses the path: its idle timeout (from 30 s to 30 min, uniform
//! in its logarithm, both ends included), the transport, whether the
//! server's packets refresh the NAT or only the client's, and the link's
//! delay. A failure names its seeds; `PULSE_SIM_SEED=<seed>` replays one,
//! `PULSE_SOAK=<k>` runs k times more seeds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pulse_proto::{Adaptive, AdaptiveConfig, Config, Instant, Learned, Transport};
use pulse_tests::sim::{Nat, Path, Reconnecting, Refresh};
use pulse_tests::{draw, draw_between, draw_log_between, seeds, Pair, Side};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The longest a client may take to settle. The search from 25 s to
/// 30 min takes 11 steps of 5 clean rounds, about 6 hours; each failed
/// length costs two connections and one long idle round each.
const SETTLE_WITHIN: Duration = Duration::from_secs(3 * 24 * 3600);

/// The most connections a client may lose before it settles: two at the
/// first length too long, then two per halving of the gap between the
/// longest length that worked and the shortest that failed (from 50 %
/// down to 8 % takes three), with room for lengths that fail only some
/// of the time because the spacing is jittered below the target.
const DEATHS_TO_SETTLE: usize = 16;

/// What a seed chose.
#[derive(Clone, Copy)]
struct Scenario {
    seed: u64,
    path: Path,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.path;
        write!(
            f,
            "seed {}: {:?} through a NAT forgetting after {:?} ({:?} refresh), latency {:?} + jitter {:?}",
            self.seed, path.transport, path.nat.idle_timeout, path.nat.refresh, path.latency, path.jitter
        )
    }
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        let timeout = match seed % 8 {
            0 => 30 * SECOND,
            1 => 30 * MINUTE,
            _ => draw_log_between(seed, 1, 30 * SECOND, 30 * MINUTE),
        };
        let latency = draw_between(seed, 2, Duration::from_millis(1), Duration::from_millis(80));
        Scenario::with(seed, timeout, latency)
    }

    /// A path with this timeout; transport and refresh cycle with the seed.
    fn with(seed: u64, timeout: Duration, latency: Duration) -> Scenario {
        let transport = [Transport::Stream, Transport::Datagram][(seed / 2 % 2) as usize];
        let refresh = [Refresh::Both, Refresh::Outbound][(seed / 4 % 2) as usize];
        Scenario {
            seed,
            path: Path {
                nat: Nat::new(timeout, refresh),
                latency,
                jitter: draw_between(seed, 3, Duration::ZERO, latency / 2),
                transport,
            },
        }
    }

    fn timeout(&self) -> Duration {
        self.path.nat.idle_timeout
    }

    /// An adaptive client with the default policy, and a server that
    /// agrees to any interval the policy may ask for.
    fn adaptive(&self) -> Reconnecting {
        let transport = self.path.transport;
        let client = Config::new(transport).with_adaptive(Some(AdaptiveConfig::default()));
        Reconnecting::new(self.path, Arc::new(client), server(transport), self.seed)
    }

    /// A client with a fixed, conservative interval: 25 s, 75 s timeout.
    fn fixed(&self) -> Reconnecting {
        let client = Config::new(self.path.transport).with_timing(25 * SECOND, 75 * SECOND);
        Reconnecting::new(self.path, Arc::new(client), server(self.path.transport), self.seed)
    }
}

fn server(transport: Transport) -> Arc<Config> {
    Arc::new(
        Config::new(transport)
            .with_max_interval(HOUR)
            .with_max_dead_timeout(4 * HOUR),
    )
}

/// What a run saw of the adaptive policy, step by step.
#[derive(Debug, Default)]
struct Watch {
    timeout: Duration,
    /// When the policy first settled.
    settled_at: Option<Instant>,
    /// The first settled target above the path's timeout.
    above: Option<(Instant, Duration)>,
    /// Connections that died while the policy was settled (not re-probing).
    deaths_while_settled: Vec<Instant>,
    /// The latest settled target.
    settled_target: Option<Duration>,
    was_settled: bool,
}

impl Watch {
    fn new(timeout: Duration) -> Watch {
        Watch {
            timeout,
            ..Watch::default()
        }
    }

    fn see(&mut self, pair: &Pair) {
        let session = &pair.client.session;
        let Some(policy) = session.adaptive() else { return };
        if session.is_closed() {
            if self.was_settled {
                self.deaths_while_settled.push(pair.now);
            }
            self.was_settled = false;
            return;
        }
        self.was_settled = policy.is_settled();
        if self.was_settled {
            let target = policy.target_gap();
            self.settled_at.get_or_insert(pair.now);
            self.settled_target = Some(target);
            if target > self.timeout && self.above.is_none() {
                self.above = Some((pair.now, target));
            }
        }
    }
}

/// Runs an adaptive client over the scenario's path until it settles (or
/// [`SETTLE_WITHIN`] passes), then for `after` more.
fn learn(scenario: &Scenario, after: Duration) -> (Reconnecting, Watch) {
    let mut run = scenario.adaptive();
    let mut watch = Watch::new(scenario.timeout());
    let give_up = Instant::ZERO + SETTLE_WITHIN;
    while watch.settled_at.is_none() && run.now() < give_up {
        let next = run.now() + HOUR;
        run.run_until(next, |pair| watch.see(pair));
    }
    let until = run.now() + after;
    run.run_until(until, |pair| watch.see(pair));
    (run, watch)
}

/// Failures over all seeds (or timeouts), reported together.
#[derive(Default)]
struct Failures(Vec<(u64, String)>);

impl Failures {
    fn check(&mut self, seed: u64, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push((seed, message()));
        }
    }

    fn assert_none(self, of: usize) {
        let mut seeds: Vec<u64> = self.0.iter().map(|(seed, _)| *seed).collect();
        seeds.dedup();
        let shown: Vec<&str> = self.0.iter().take(6).map(|(_, m)| m.as_str()).collect();
        assert!(
            self.0.is_empty(),
            "{} of {of} seeds fail ({seeds:?}); the first failures:\n{}",
            seeds.len(),
            shown.join("\n")
        );
    }
}

#[test]
fn the_learned_interval_settles_within_fifteen_percent_below_the_paths_idle_timeout_and_never_above_it() {
    let (seeds, mut failures) = (seeds(32), Failures::default());
    for &seed in &seeds {
        let scenario = Scenario::new(seed);
        let timeout = scenario.timeout();
        // Half a day settled holds a re-probe of the failed length.
        let (_, watch) = learn(&scenario, 12 * HOUR);
        let Some(settled_at) = watch.settled_at else {
            failures.check(seed, false, || {
                format!("{scenario}: not settled after {SETTLE_WITHIN:?}")
            });
            continue;
        };
        let target = watch.settled_target.expect("a settled target");
        failures.check(seed, target <= timeout && target * 100 >= timeout * 85, || {
            format!("{scenario}: settled at {target:?} (first at {settled_at:?})")
        });
        failures.check(seed, watch.above.is_none(), || {
            format!("{scenario}: settled above the timeout: {:?}", watch.above)
        });
        failures.check(seed, watch.deaths_while_settled.is_empty(), || {
            format!(
                "{scenario}: connections died while settled at {:?}",
                watch.deaths_while_settled
            )
        });
    }
    failures.assert_none(seeds.len());
}

#[test]
fn a_connection_lost_while_probing_is_replaced_and_what_it_learned_survives_the_reconnect() {
    let (seeds, mut failures) = (seeds(32), Failures::default());
    let mut reconnects = 0;
    for &seed in &seeds {
        let scenario = Scenario::new(seed);
        let (run, watch) = learn(&scenario, HOUR);
        let history = run.history();
        for (before, after) in history.iter().zip(&history[1..]) {
            reconnects += 1;
            let (ended, code) = before.ended.expect("a connection that was replaced ended");
            failures.check(seed, after.opened - ended <= MINUTE, || {
                format!(
                    "{scenario}: lost at {ended:?} ({code:?}), replaced only at {:?}",
                    after.opened
                )
            });
            let (stored, (resumed, target)) = (before.learned.unwrap(), after.started_with.unwrap());
            failures.check(
                seed,
                (resumed.good_ms, resumed.bad_ms) == (stored.good_ms, stored.bad_ms),
                || format!("{scenario}: lost at {ended:?} knowing {stored:?}, resumed knowing {resumed:?}"),
            );
            // It resumes where it was, not from the start: at the longest
            // gap that worked, or the margin below it once settled.
            let good = Duration::from_millis(stored.good_ms.into());
            failures.check(seed, target >= good * 94 / 100, || {
                format!("{scenario}: lost at {ended:?} knowing {stored:?}, resumed aiming at {target:?}")
            });
        }
        let settled_at = watch.settled_at.unwrap_or(Instant::ZERO + SETTLE_WITHIN);
        let deaths = history
            .iter()
            .filter(|c| c.ended.is_some_and(|(at, _)| at <= settled_at))
            .count();
        failures.check(seed, watch.settled_at.is_some() && deaths <= DEATHS_TO_SETTLE, || {
            format!(
                "{scenario}: {deaths} connections lost before settling at {:?}; learned {:?}",
                watch.settled_at,
                history.last().and_then(|c| c.learned)
            )
        });
    }
    assert!(reconnects > 0, "no connection was ever lost: the property says nothing");
    failures.assert_none(seeds.len());
}

/// Messages one way or the other at random times from the moment the
/// policy first settled — through its re-probes of the failed length, which
/// the path may not keep — some in bursts, some after an idle stretch as
/// long as two timeouts. A message the session held over a path it could
/// not confirm, and handed back when the connection died
/// (`Session::poll_unsent`), is sent again on the next connection, as an
/// application would: it must arrive.
#[test]
fn no_connection_loses_a_message_sent_after_the_interval_settled() {
    let (seeds, mut failures) = (seeds(32), Failures::default());
    let (mut checked, mut skipped, mut handed_back) = (0, 0, 0);
    for &seed in &seeds {
        let scenario = Scenario::new(seed);
        let timeout = scenario.timeout();
        let (mut run, mut watch) = learn(&scenario, Duration::ZERO);
        if watch.settled_at.is_none() {
            failures.check(seed, false, || format!("{scenario}: never settled"));
            continue;
        }
        let end = run.now() + 8 * HOUR; // past the first re-probe
        let mut must_arrive = Vec::new();
        for tag in 0u16.. {
            let wait = draw_log_between(seed, 100 + u64::from(tag), SECOND, timeout * 2);
            let at = run.now() + wait;
            if at > end {
                break;
            }
            run.run_until(at, |pair| watch.see(pair));
            let from = [Side::Client, Side::Server][draw(seed, 50_000 + u64::from(tag), 2) as usize];
            if run.send(from, tag, vec![tag as u8; 32]).is_ok() {
                must_arrive.push((at, from, tag));
            } else {
                skipped += 1;
            }
        }
        // Long enough for a message held over a dead path to come back
        // (the dead-peer timeout, about three idle timeouts) and go again.
        let until = run.now() + timeout * 4 + 5 * MINUTE;
        run.run_until(until, |pair| watch.see(pair));
        handed_back += run.handed_back();
        let received = run.received();
        checked += must_arrive.len();
        let lost: Vec<_> = must_arrive
            .iter()
            .filter(|(_, from, tag)| !received.iter().any(|(_, to, t)| t == tag && *to == from.peer()))
            .collect();
        failures.check(seed, lost.is_empty(), || {
            let deaths: Vec<_> = run.history().iter().filter_map(|c| c.ended).collect();
            format!(
                "{scenario}: {} of {} messages lost, the first {:?}; {} connections died, the last at {:?}",
                lost.len(),
                must_arrive.len(),
                &lost[..lost.len().min(3)],
                deaths.len(),
                deaths.last()
            )
        });
    }
    println!("{checked} messages checked, {skipped} not sent (not connected), {handed_back} handed back unsent and sent again");
    failures.assert_none(seeds.len());
    assert!(checked > 1000, "only {checked} messages checked ({skipped} skipped)");
    assert!(
        handed_back > 0,
        "no message was ever held over a dead path: the property says little"
    );
}

/// PINGs per hour (both sides, every kind) in `from..until`.
fn pings_per_hour(run: &Reconnecting, from: Instant, until: Instant) -> f64 {
    let pings = run.pings().iter().filter(|(at, _)| *at >= from && *at < until).count();
    pings as f64 / ((until - from).as_secs_f64() / 3600.0)
}

/// The cost of a heartbeat, against a fixed conservative interval: PINGs
/// per hour once settled, re-probes and the connections they cost
/// included. Prints the table docs/PERF.md shows ("Adaptive interval"); a
/// client that never settles is measured over the half day after
/// [`SETTLE_WITHIN`].
#[test]
fn heartbeats_per_hour_against_a_fixed_25_s_interval_fall_with_the_paths_timeout() {
    const WINDOW: Duration = Duration::from_secs(12 * 3600);
    const VARIANTS: u64 = 4; // both transports, either refresh
    let timeouts = [30, 60, 120, 300, 600, 1200, 1800].map(|s| s * SECOND);
    let latency = Duration::from_millis(20);
    println!("| idle timeout | settled after | lost to learn | gap aimed at | PINGs/h adaptive (TCP / UDP) | PINGs/h fixed 25 s | ratio | lost per day, settled |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Failures::default();
    for timeout in timeouts {
        let mut row = Row::default();
        for seed in 0..VARIANTS {
            let scenario = Scenario::with(seed, timeout, latency);
            let (run, watch) = learn(&scenario, WINDOW);
            let key = timeout.as_secs();
            failures.check(key, watch.settled_at.is_some(), || format!("{scenario}: never settled"));
            let from = watch.settled_at.unwrap_or(Instant::ZERO + SETTLE_WITHIN);
            let until = from + WINDOW;
            let deaths = |range: std::ops::Range<Instant>| {
                let history = run.history();
                history
                    .iter()
                    .filter(|c| c.ended.is_some_and(|(at, _)| range.contains(&at)))
                    .count()
            };
            row.settled += usize::from(watch.settled_at.is_some());
            row.hours_to_settle += (from - Instant::ZERO).as_secs_f64() / 3600.0;
            row.lost_to_learn += deaths(Instant::ZERO..from);
            row.lost_settled += deaths(from..until);
            row.aimed += watch.settled_target.unwrap_or_default();
            let rate = pings_per_hour(&run, from, until);
            row.adaptive += rate;
            row.by_transport[usize::from(scenario.path.transport == Transport::Datagram)] += rate;
            let mut baseline = scenario.fixed();
            baseline.run_until(Instant::ZERO + WINDOW, |_| {});
            row.fixed += pings_per_hour(&baseline, Instant::ZERO, Instant::ZERO + WINDOW);
        }
        let ratio = row.adaptive / row.fixed;
        let n = VARIANTS as f64;
        let settled = match row.settled {
            0 => "never".to_string(),
            k if k < VARIANTS as usize => format!("{k} of {VARIANTS}"),
            _ => format!("{:.1} h", row.hours_to_settle / n),
        };
        println!(
            "| {} | {settled} | {:.1} | {} | {:.1} ({:.1} / {:.1}) | {:.1} | {ratio:.3} | {:.1} |",
            human(timeout),
            row.lost_to_learn as f64 / n,
            human(row.aimed / VARIANTS as u32),
            row.adaptive / n,
            row.by_transport[0] / (n / 2.0),
            row.by_transport[1] / (n / 2.0),
            row.fixed / n,
            row.lost_settled as f64 / n * (24.0 * 3600.0 / WINDOW.as_secs_f64()),
        );
        // Settled within 15 % below the timeout, an interval of at least
        // 0.85 × timeout / 1.1 sets the rate; a quarter more for re-probes,
        // the reconnects they cost, and the probes of a dead mapping.
        let bound = 1.25 * (25.0 * 1.1) / (0.85 * timeout.as_secs_f64());
        failures.check(timeout.as_secs(), ratio <= bound, || {
            format!("{timeout:?}: ratio {ratio:.3} to a fixed 25 s interval, over {bound:.3}")
        });
    }
    failures.assert_none(timeouts.len());
}

/// "30 s", "4.6 min".
fn human(d: Duration) -> String {
    match d.as_secs_f64() {
        s if s < 60.0 => format!("{s:.0} s"),
        s => format!("{:.1} min", s / 60.0),
    }
}

/// One row of the table, summed over the variants.
#[derive(Default)]
struct Row {
    settled: usize,
    hours_to_settle: f64,
    lost_to_learn: usize,
    lost_settled: usize,
    aimed: Duration,
    adaptive: f64,
    /// The adaptive rate summed over stream and over datagram variants.
    by_transport: [f64; 2],
    fixed: f64,
}

/// What the policy alone learns of a path forgetting after `timeout`,
/// one idle round at a time: a settled value to start a session from.
fn learned_by_the_policy_alone(timeout: Duration) -> Learned {
    let mut policy = Adaptive::new(AdaptiveConfig::default(), Learned::default(), Instant::ZERO);
    let mut now = Instant::ZERO;
    for _ in 0..1000 {
        let gap = policy.target_gap();
        now += gap;
        if gap < timeout {
            policy.on_idle_round(gap, now);
        } else {
            policy.on_idle_death(gap, now);
        }
    }
    assert!(policy.is_settled(), "{policy:?}");
    policy.learned()
}

/// The client's PINGs in `from..until`.
fn client_pings(run: &Reconnecting, from: Instant, until: Instant) -> Vec<Instant> {
    let mut pings: Vec<Instant> = run
        .pings()
        .into_iter()
        .filter(|(at, side)| *side == Side::Client && *at >= from && *at < until)
        .map(|(at, _)| at)
        .collect();
    pings.sort();
    pings
}

#[test]
fn an_active_application_gets_the_active_interval_at_once_and_the_learned_one_back_without_a_reconnect() {
    let timeout = 5 * MINUTE;
    let learned = learned_by_the_policy_alone(timeout);
    let active = AdaptiveConfig::default().active;
    for seed in seeds(4) {
        let scenario = Scenario::with(seed, timeout, Duration::from_millis(20));
        let mut run = scenario.adaptive().knowing(learned);
        let mut watch = Watch::new(timeout);
        run.run_until(Instant::ZERO + HOUR, |pair| watch.see(pair));
        let learned_gap = watch.settled_target.expect("settled from what was stored");
        let went_active = run.now();
        run.set_active(true);
        run.run_until(went_active + 10 * MINUTE, |pair| watch.see(pair));
        let back = run.now();
        run.set_active(false);
        run.run_until(back + HOUR, |pair| watch.see(pair));
        let end = run.now();

        let pings = client_pings(&run, went_active, back);
        let gaps: Vec<Duration> = std::iter::once(went_active)
            .chain(pings.iter().copied())
            .zip(&pings)
            .map(|(a, b)| *b - a)
            .collect();
        let longest = gaps.iter().max().copied().unwrap_or(Duration::MAX);
        assert!(
            longest <= active + SECOND,
            "{scenario}: while active the client's PINGs were up to {longest:?} apart: {gaps:?}"
        );
        let server_interval = run
            .pair
            .server
            .events_where(|e| matches!(e, pulse_proto::Event::Retimed(_)));
        let while_active = server_interval
            .iter()
            .filter(|(at, _)| *at > went_active && *at < back)
            .count();
        assert!(
            while_active >= 1,
            "{scenario}: the server never followed to the active interval"
        );
        let later = client_pings(&run, back + 2 * learned_gap, end);
        let back_gaps: Vec<Duration> = later.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            back_gaps.iter().all(|gap| *gap * 100 >= learned_gap * 80),
            "{scenario}: not back to {learned_gap:?}: {back_gaps:?}"
        );
        assert_eq!(run.connections.len(), 1, "{scenario}: reconnected: {:?}", run.history());
        assert_eq!(
            run.pair.client.session.learned(),
            Some(learned),
            "{scenario}: learned while active"
        );
    }
}
