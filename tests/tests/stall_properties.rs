//! Stalls, bunching, overload and clock steps: the promises that hold when
//! our own process, or the path, misbehaves. "No verdict while frames keep
//! arriving, and never because our own process stalled" — and never a
//! close of a well-behaved peer for its ping rate.
//!
//! Each property runs over many seeds, at the default timings (10 s / 30 s),
//! at 1 s / 3 s and at 200 ms / 600 ms, on both transports and with either
//! side stalled. A failure says how many seeds fail and names the first
//! with their scenarios; `PULSE_SIM_SEED=<seed>` replays one exactly,
//! `PULSE_SIM_ALL=1` prints every failure, `PULSE_SOAK=<k>` runs k times
//! more seeds.

use std::fmt;
use std::time::Duration;

use pulse_proto::{Event, Instant, Transport};
use pulse_tests::{config, draw, draw_between, draw_log_between, seeds, LinkSpec, Net, Outage, Pair, Side, TIMINGS};

const MS: Duration = Duration::from_millis(1);

/// What a seed chose: timing, transport, link, and who misbehaves how.
struct Scenario {
    seed: u64,
    interval: Duration,
    dead_timeout: Duration,
    transport: Transport,
    stalled: Side,
    latency: Duration,
    jitter: Duration,
    extra: String,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {:?} {:?}/{:?}, latency {:?} + jitter {:?}, {:?} misbehaves{}",
            self.seed,
            self.transport,
            self.interval,
            self.dead_timeout,
            self.latency,
            self.jitter,
            self.stalled,
            self.extra
        )
    }
}

impl Scenario {
    /// Timing, transport and side cycle with the seed, so every
    /// combination gets its share; the link is drawn.
    fn new(seed: u64) -> Scenario {
        let (interval_ms, dead_ms) = TIMINGS[(seed % 3) as usize];
        let interval = MS * interval_ms as u32;
        let latency = draw_between(seed, 1, Duration::from_micros(200), (interval / 40).min(MS * 50));
        Scenario {
            seed,
            interval,
            dead_timeout: MS * dead_ms as u32,
            transport: [Transport::Stream, Transport::Datagram][(seed / 3 % 2) as usize],
            stalled: [Side::Client, Side::Server][(seed / 6 % 2) as usize],
            latency,
            jitter: draw_between(seed, 2, Duration::ZERO, latency),
            extra: String::new(),
        }
    }

    /// A connected pair on this scenario's link, after a warm-up of one to
    /// three intervals, so heartbeats and RTT estimates are under way.
    fn pair(&self) -> Pair {
        let config = config(
            self.transport,
            self.interval.as_millis() as u64,
            self.dead_timeout.as_millis() as u64,
        );
        let mut pair = Pair::with_config(config, self.latency, self.seed);
        for (i, wire) in [&mut pair.to_server, &mut pair.to_client].into_iter().enumerate() {
            wire.jitter = self.jitter;
            wire.seed(self.seed * 2 + i as u64);
        }
        pair.connect(Duration::from_secs(5));
        let warm_up = draw_between(self.seed, 3, self.interval, self.interval * 3);
        pair.run_for(warm_up);
        pair
    }

    /// The longest the peer can go without a frame from a side that keeps
    /// to the protocol, links and turns aside: its spacing can reach 1.5
    /// intervals (the first) before the answer comes back.
    fn worst_quiet(&self) -> Duration {
        self.interval * 3 / 2 + (self.latency + self.jitter) * 2
    }
}

/// Failures over all seeds, reported together: how many seeds fail says
/// more than the first alone.
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
        if std::env::var_os("PULSE_SIM_ALL").is_some() {
            for (_, message) in &self.0 {
                eprintln!("{message}");
            }
        }
        let shown: Vec<&str> = self.0.iter().take(5).map(|(_, m)| m.as_str()).collect();
        assert!(
            self.0.is_empty(),
            "{} of {of} seeds fail ({seeds:?}); the first failures:\n{}",
            seeds.len(),
            shown.join("\n")
        );
    }
}

fn ping_rate_closes(pair: &Pair) -> Vec<(Side, Option<(Instant, pulse_proto::CloseCode)>)> {
    [Side::Client, Side::Server]
        .into_iter()
        .filter(|side| pair.end(*side).closed_for_ping_rate())
        .map(|side| (side, pair.end(side).ended()))
        .collect()
}

/// The first oracle, for every property: no verdict while bytes had landed
/// within the dead timeout.
fn check_no_unfounded_verdict(failures: &mut Failures, pair: &Pair, scenario: &Scenario) {
    let seed = scenario.seed;
    for side in [Side::Client, Side::Server] {
        let unfounded = &pair.end(side).unfounded_verdicts;
        failures.check(seed, unfounded.is_empty(), || {
            format!(
                "{scenario}: {side:?} gave a verdict at {:?} though bytes landed at {:?}",
                unfounded[0].0, unfounded[0].1
            )
        });
    }
}

#[test]
fn a_stall_of_any_length_on_either_side_never_closes_a_well_behaved_peer_for_its_ping_rate() {
    let (seeds, mut failures) = (seeds(240), Failures::default());
    for &seed in &seeds {
        let mut scenario = Scenario::new(seed);
        let (interval, timeout) = (scenario.interval, scenario.dead_timeout);
        let variant = seed / 12 % 4;
        let mut pair = scenario.pair();
        match variant {
            // Bunching: the path holds what goes towards the stalled side's
            // peer too (a stream behind doubling retransmissions, datagrams
            // in a stuck queue).
            1 => {
                let towards = scenario.stalled.peer();
                let wire = pair.wire_to(towards);
                match scenario.transport {
                    Transport::Stream => wire.retransmit_ppm = 30_000,
                    Transport::Datagram => {
                        let from = pair.now + draw_between(seed, 10, Duration::ZERO, timeout);
                        let until = from + draw_between(seed, 11, MS, timeout);
                        pair.wire_to(towards).schedule(Outage::Hold { from, until });
                    }
                }
                scenario.extra = format!(", bunching towards the {towards:?}");
            }
            // Overload: one side's loop gets to its sessions only at turns.
            2 => {
                let busy = [scenario.stalled, scenario.stalled.peer()][draw(seed, 12, 2) as usize];
                let turn = draw_between(seed, 13, interval / 50, interval / 2);
                let late = draw_between(seed, 14, Duration::ZERO, interval / 4);
                let process = &mut pair.side(busy).process;
                process.turn = turn;
                process.timer_lateness = late;
                scenario.extra = format!(", the {busy:?} overloaded: turns of {turn:?}, timers {late:?} late");
            }
            _ => {}
        }
        let mut stalls = Vec::new();
        let mut at = pair.now + draw_between(seed, 15, Duration::ZERO, interval);
        for i in 0..if variant == 3 { 2 } else { 1 } {
            let length = draw_log_between(seed, 16 + i, interval / 100, timeout * 3);
            pair.side(scenario.stalled).process.stall(at, length);
            stalls.push((at, length));
            at += length + draw_between(seed, 18 + i, Duration::ZERO, timeout * 2);
        }
        scenario.extra += &format!(", stalls (from, length) {stalls:?}");
        pair.run_for(at - pair.now + timeout * 2);
        let closes = ping_rate_closes(&pair);
        failures.check(seed, closes.is_empty(), || {
            format!("{scenario}: closed for its ping rate: {closes:?}")
        });
        check_no_unfounded_verdict(&mut failures, &pair, &scenario);
    }
    failures.assert_none(seeds.len());
}

#[test]
fn a_stall_the_peer_cannot_mistake_for_death_ends_no_session() {
    // Stalled for D, a side is silent for at most D plus its worst quiet
    // spacing: at most T − 1.5 I − margin keeps that under the timeout.
    let (seeds, mut failures) = (seeds(240), Failures::default());
    for &seed in &seeds {
        let mut scenario = Scenario::new(seed);
        let (interval, timeout) = (scenario.interval, scenario.dead_timeout);
        let mut pair = scenario.pair();
        let mut margin = (scenario.latency + scenario.jitter) * 2 + MS;
        if seed / 12 % 2 == 1 {
            // The other side's loop is a little overloaded as well.
            let turn = draw_between(seed, 20, interval / 100, interval / 20);
            pair.side(scenario.stalled.peer()).process.turn = turn;
            margin += turn * 2;
            scenario.extra = format!(", the {:?} runs only every {turn:?}", scenario.stalled.peer());
        }
        let longest = timeout - interval * 3 / 2 - margin;
        let at = pair.now + draw_between(seed, 21, Duration::ZERO, interval);
        let length = draw_between(seed, 22, longest / 2, longest);
        pair.side(scenario.stalled).process.stall(at, length);
        scenario.extra += &format!(", stalled at {at:?} for {length:?}");
        pair.run_for(at - pair.now + length + timeout * 2);
        assert!(
            scenario.worst_quiet() + length < timeout,
            "{scenario}: not a short stall"
        );
        for side in [Side::Client, Side::Server] {
            let end = pair.end(side);
            failures.check(seed, end.verdicts().is_empty(), || {
                format!(
                    "{scenario}: the {side:?} declared its peer dead at {:?}",
                    end.verdicts()
                )
            });
            failures.check(seed, end.ended().is_none(), || {
                format!(
                    "{scenario}: the {side:?} session ended: {:?}",
                    end.events_where(|e| matches!(e, Event::Closed(_)))
                )
            });
        }
        check_no_unfounded_verdict(&mut failures, &pair, &scenario);
    }
    failures.assert_none(seeds.len());
}

/// Whether `side` declared its peer dead while the peer was still there:
/// not ended, or ended too recently for its CLOSE to have crossed the link.
fn verdict_on_a_live_peer(pair: &Pair, side: Side, scenario: &Scenario) -> Option<Instant> {
    let peer_gone = pair
        .end(side.peer())
        .ended()
        .map(|(at, _)| at + scenario.latency + scenario.jitter);
    pair.end(side)
        .verdicts()
        .into_iter()
        .find(|&verdict| peer_gone.is_none_or(|gone| verdict < gone))
}

#[test]
fn our_own_stall_or_clock_step_never_becomes_our_verdict_on_a_live_peer() {
    let (seeds, mut failures) = (seeds(360), Failures::default());
    for &seed in &seeds {
        let mut scenario = Scenario::new(seed);
        let (interval, timeout) = (scenario.interval, scenario.dead_timeout);
        let stalled = scenario.stalled;
        let mut pair = scenario.pair();
        let at = pair.now + draw_between(seed, 30, Duration::ZERO, interval);
        let run_to = match seed / 12 % 3 {
            // The clock jumps; nothing else happens, the peer sees nothing.
            0 => {
                let by = draw_log_between(seed, 31, interval / 100, timeout * 3);
                pair.side(stalled).process.step_clock(at, by);
                scenario.extra = format!(": its clock steps {by:?} forward at {at:?}");
                at + timeout * 3
            }
            // A stall of any length on a clean link.
            1 => {
                let length = draw_log_between(seed, 32, interval / 100, timeout * 5);
                pair.side(stalled).process.stall(at, length);
                scenario.extra = format!(": stalled at {at:?} for {length:?}");
                at + length + timeout * 3
            }
            // The stalled side sends data one way, so its peer hears it
            // and stays quiet; while stalled, what the peer sends is lost
            // (datagrams) or held until just after the stall ends (a
            // stream behind a retransmission). Stalled for about a
            // timeout, it has heard nothing for longer than one — through
            // its own stall — while its peer, hearing data until the
            // stall, is sure of it. It must probe before any verdict.
            _ => {
                let margin = (scenario.latency + scenario.jitter) * 2 + MS;
                let length = draw_between(seed, 33, timeout - interval * 3 / 2, timeout - interval / 2 - margin);
                pair.side(stalled).process.stall(at, length);
                let resumed = at + length;
                let outage = match scenario.transport {
                    Transport::Datagram => Outage::Partition {
                        from: at,
                        until: resumed,
                    },
                    Transport::Stream => Outage::Hold {
                        from: at,
                        until: resumed + draw_between(seed, 34, Duration::from_micros(1), scenario.latency),
                    },
                };
                pair.wire_to(stalled).schedule(outage);
                scenario.extra = format!(
                    ": sends data every {:?}, stalled at {at:?} for {length:?}, and meanwhile {outage:?} towards it",
                    interval / 2
                );
                let end = resumed + timeout * 3;
                while pair.now < end {
                    let _ = pair.send(stalled, 1, &b"one way"[..]);
                    pair.run_for(interval / 2);
                }
                end
            }
        };
        pair.run_for(run_to.saturating_since(pair.now));
        let verdict = verdict_on_a_live_peer(&pair, stalled, &scenario);
        failures.check(seed, verdict.is_none(), || {
            format!(
                "{scenario}: it declared its live peer dead at {verdict:?}: {:?}",
                pair.end(stalled).events_where(|e| !matches!(e, Event::Rtt(_)))
            )
        });
        check_no_unfounded_verdict(&mut failures, &pair, &scenario);
    }
    failures.assert_none(seeds.len());
}

#[test]
fn a_server_frozen_twice_for_less_than_the_timeout_closes_none_of_its_500_clients_for_their_ping_rate() {
    // The scenario of issue 10, on one simulated network: 500 clients at
    // 1 s / 3 s on one host, a server on another, frozen for 2.6 s and later
    // for 2.8 s. Its clients probe while it is frozen; their PINGs reach it
    // together. Its loop takes 128 readiness events per turn, so, as in a
    // server with more clients than one poll returns, most sessions' timers
    // run before their sockets are read when it resumes.
    let mut failures = Failures::default();
    for (seed, transport) in [(0, Transport::Stream), (1, Transport::Datagram)] {
        let mut net = Net::new(LinkSpec {
            latency: Duration::from_micros(50),
            jitter: Duration::from_micros(50),
            ..LinkSpec::default()
        });
        let clients = net.add_host();
        let server = net.add_host();
        net.hosts[server].read_budget = 128;
        let config = config(transport, 1_000, 3_000);
        for i in 0..500 {
            net.run_for(Duration::from_micros(draw(i, 40, 2_000)));
            net.connect(clients, server, config.clone(), config.clone(), i);
        }
        let start = net.now;
        net.stall(server, start + Duration::from_secs(10), MS * 2_600);
        net.stall(server, start + Duration::from_secs(20), MS * 2_800);
        net.run_for(Duration::from_secs(40));
        let mut ended = std::collections::BTreeMap::new();
        for conn in &net.conns {
            if let Some((_, code)) = conn.server.ended() {
                *ended.entry(code.to_string()).or_insert(0) += 1;
            }
        }
        println!("{transport:?}: server sessions ended, by code: {ended:?}");
        let closed: Vec<usize> = (0..net.conns.len())
            .filter(|&i| net.conns[i].client.closed_for_ping_rate() || net.conns[i].server.closed_for_ping_rate())
            .collect();
        failures.check(seed, closed.is_empty(), || {
            format!(
                "{transport:?}: {} of 500 clients closed for their ping rate (connections {:?}…)",
                closed.len(),
                &closed[..closed.len().min(10)]
            )
        });
        // Frozen, the server must not convict a client that kept probing:
        // any verdict it gives comes after that client gave up on it.
        for (i, conn) in net.conns.iter().enumerate() {
            let client_gone = conn.client.ended().map(|(at, _)| at + MS);
            for verdict in conn.server.verdicts() {
                failures.check(seed, client_gone.is_some_and(|gone| verdict >= gone), || {
                    format!("{transport:?}: the server declared live client {i} dead at {verdict:?}")
                });
            }
            for (side, end) in [("server", &conn.server), ("client", &conn.client)] {
                failures.check(seed, end.unfounded_verdicts.is_empty(), || {
                    format!(
                        "{transport:?}: the {side} of connection {i} gave a verdict at {:?} though bytes landed at {:?}",
                        end.unfounded_verdicts[0].0, end.unfounded_verdicts[0].1
                    )
                });
            }
        }
    }
    failures.assert_none(2);
}
