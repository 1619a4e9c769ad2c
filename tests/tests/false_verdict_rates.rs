//! How often loss alone convicts a live peer, over datagrams that lose a
//! share of everything each way: measured in the simulator, printed as a
//! rate per interval with its 95 % confidence interval beside the analytic
//! bound, and asserted against that bound.
//!
//! The bound. A false verdict needs every exchange in one dead-timeout
//! window to fail: the first scheduled PING (sent at most 1.1 intervals
//! after the last frame) and the `m` probes that follow it while the answer
//! can still arrive in time. Each round trip fails with `q = 1 − (1 − loss)²`,
//! so per interval a false verdict comes with a chance of about `q^(m+1)`.
//! `m` is counted the way docs/PROTOCOL.md §6.5 spaces probes — every
//! `max(PTO, min_ping_spacing)`, PTO at least `probe_floor` — taking the
//! first probe one spacing after the PING, the later of the two readings
//! of the spec, so the bound holds for either.
//!
//! Each assertion runs where the bound expects at least ten false verdicts,
//! so a regression that costs a probe fails it. Only intervals while the
//! session was alive count: a convicted session is replaced by a new one.

use std::time::Duration;

use pulse_proto::{CloseCode, Config, Transport};
use pulse_tests::stats::Rate;
use pulse_tests::{config, soak, Pair};

const LATENCY: Duration = Duration::from_millis(20);
const JITTER: Duration = Duration::from_millis(5);

/// What one measurement found.
struct Measured {
    rate: Rate,
    bound: f64,
    probes: u32,
    q: f64,
}

/// The probes after the first missed PING whose answers can still arrive
/// before the verdict (see the module docs).
fn probes_after_first_miss(config: &Config) -> u32 {
    let rtt = (LATENCY + JITTER) * 2;
    let pto = config.probe_floor.max(rtt);
    let spacing = pto.max(config.min_ping_spacing);
    let first = config.interval * 11 / 10;
    let room = config.dead_timeout.saturating_sub(first + rtt);
    (room.as_nanos() / spacing.as_nanos()) as u32
}

/// Runs sessions over datagrams losing `loss_ppm` each way until they have
/// been alive for `intervals` intervals, replacing each convicted one.
fn measure(interval_ms: u64, dead_ms: u64, loss_ppm: u32, intervals: u64, salt: u64) -> Measured {
    let config = config(Transport::Datagram, interval_ms, dead_ms);
    let interval = config.interval;
    let target = interval * (intervals * soak()) as u32;
    let (mut alive, mut verdicts) = (Duration::ZERO, 0u64);
    for session in 0u64.. {
        if alive >= target {
            break;
        }
        assert!(session < 1_000_000, "sessions keep ending at once");
        let seed = salt * 1_000_000 + session;
        let mut pair = Pair::with_config(config.clone(), LATENCY, seed);
        for (i, wire) in [&mut pair.to_server, &mut pair.to_client].into_iter().enumerate() {
            wire.jitter = JITTER;
            wire.seed(seed * 2 + i as u64 + 1);
        }
        // The handshake is not what is measured: it runs on a clean link.
        pair.connect(Duration::from_secs(5));
        pair.to_server.loss_ppm = loss_ppm;
        pair.to_client.loss_ppm = loss_ppm;
        let start = pair.now;
        let until = start + (target - alive).min(interval * 5_000);
        pair.run_while(until, |p| p.client.ended().is_none() && p.server.ended().is_none());
        let ended = [pair.client.ended(), pair.server.ended()].into_iter().flatten().min();
        alive += ended.map_or(until, |(at, _)| at) - start;
        if let Some((_, code)) = ended {
            assert_eq!(
                code,
                CloseCode::TIMED_OUT,
                "seed {seed}: loss alone ended a session with {code}"
            );
            verdicts += 1;
        }
    }
    let loss = f64::from(loss_ppm) / 1e6;
    let q = 1.0 - (1.0 - loss) * (1.0 - loss);
    let probes = probes_after_first_miss(&config);
    Measured {
        rate: Rate {
            events: verdicts,
            trials: alive.as_secs_f64() / interval.as_secs_f64(),
        },
        bound: q.powi(probes as i32 + 1),
        probes,
        q,
    }
}

/// Prints the measurement and asserts it is not above the bound; with
/// `expect_ten`, first checks the run can see a failure at all.
fn report_and_check(name: &str, measured: Measured, expect_ten: bool) {
    let Measured { rate, bound, probes, q } = measured;
    let (low, high) = rate.interval();
    let expected = bound * rate.trials;
    println!(
        "{name}: {} false verdicts in {:.0} alive intervals: {:.2e} per interval (95 % CI {low:.2e} – {high:.2e}); \
         bound q^(m+1) = {bound:.2e} with q = {q:.3}, m = {probes}, expecting {expected:.1} at the bound",
        rate.events,
        rate.trials,
        rate.value()
    );
    if expect_ten {
        assert!(expected >= 10.0, "{name}: too few intervals to see the bound broken");
    }
    let chance = rate.chance_under(bound);
    assert!(
        chance >= 1e-3,
        "{name}: {} false verdicts where the bound expects {expected:.1} (chance {chance:.1e}): {:.2e} per interval, above q^(m+1) = {bound:.2e}",
        rate.events,
        rate.value()
    );
}

#[test]
fn at_200_ms_600_ms_losing_a_tenth_each_way_false_verdicts_stay_within_the_bound() {
    report_and_check("200 ms / 600 ms, 10 % loss", measure(200, 600, 100_000, 5_000, 1), true);
}

#[test]
fn at_1_s_3_s_losing_a_fifth_each_way_false_verdicts_stay_within_the_bound() {
    report_and_check("1 s / 3 s, 20 % loss", measure(1_000, 3_000, 200_000, 5_000, 2), true);
}

#[test]
fn at_the_default_timings_losing_a_fifth_each_way_no_verdict_is_false() {
    // q^(m+1) is about 10⁻¹⁷ here: no run can expect to see one, so any
    // false verdict fails.
    report_and_check(
        "10 s / 30 s, 20 % loss",
        measure(10_000, 30_000, 200_000, 10_000, 3),
        false,
    );
}

#[test]
fn at_the_default_timings_losing_seven_tenths_each_way_false_verdicts_stay_within_the_bound() {
    report_and_check(
        "10 s / 30 s, 70 % loss",
        measure(10_000, 30_000, 700_000, 2_000, 4),
        true,
    );
}
