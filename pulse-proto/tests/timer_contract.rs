//! The driver's timer contract, for every configuration `Config::validate`
//! accepts: once established, input from the peer never moves
//! `poll_timeout` earlier, so a driver keeps one timer per session and
//! never touches it on receive. Checked on pairs of sessions of random
//! timings (10 ms intervals included), both roles, both transports, with
//! random latency, late timers and application traffic.

use std::collections::VecDeque;
use std::time::Duration;

use proptest::prelude::*;
use pulse_proto::{CloseCode, Config, Event, Instant, Role, Session, State, Transport};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

prop_compose! {
    fn arb_config()(
        interval in prop_oneof![10u64..100, 100u64..2_000, 2_000u64..60_000],
        timeout_factor in 2u64..6,
        extra in 0u64..1_000,
        probe_floor in 1u64..2_000,
        stall in 1u64..3_000,
        jitter in 0u8..=50,
        spacing_share in 1u64..=100,
        datagram in any::<bool>(),
        adaptive in any::<bool>(),
    ) -> Config {
        let transport = if datagram { Transport::Datagram } else { Transport::Stream };
        let interval = ms(interval);
        let config = Config::new(transport)
            .with_timing(interval, interval * timeout_factor as u32 + ms(extra))
            .with_probe_floor(ms(probe_floor))
            .with_stall_threshold(ms(stall))
            .with_jitter_percent(jitter);
        // Any spacing the validation allows: up to half the minimum interval.
        let max_spacing = config.min_interval / 2;
        let spacing = (max_spacing * spacing_share as u32 / 100).max(ms(1));
        let adaptive = adaptive.then(|| {
            let mut a = pulse_proto::AdaptiveConfig::default();
            a.start = interval;
            a.active = interval;
            a.max = interval * 20;
            a.successes_per_step = 1;
            a
        });
        config.with_min_ping_spacing(spacing).with_adaptive(adaptive)
    }
}

/// One side of the pair, driven as a real loop would: one armed timer,
/// re-armed only when the deadline moves earlier or fired.
struct End {
    session: Session,
    armed: Option<Instant>,
    lateness: Duration,
}

impl End {
    fn fire_at(&self) -> Option<Instant> {
        self.armed.map(|at| at + self.lateness)
    }
}

/// Everything the session will write now, onto the wire to its peer.
fn flush(session: &mut Session, now: Instant, latency: Duration, wire: &mut VecDeque<(Instant, Vec<u8>)>) {
    while let Some(bytes) = session.poll_transmit(now) {
        let bytes = bytes.to_vec();
        session.advance_transmit(bytes.len());
        wire.push_back((now + latency, bytes));
    }
}

/// What became of the messages: delivered to the peer, handed back by the
/// sender (`Session::poll_unsent`), never both.
#[derive(Default)]
struct Fates {
    delivered: std::collections::BTreeSet<Vec<u8>>,
    handed_back: std::collections::BTreeSet<Vec<u8>>,
}

/// Drains `session`'s events: a message to `fates`, and no ending the
/// peer's well-behaved traffic could have caused.
fn drain(session: &mut Session, fates: &mut Fates) -> Result<(), TestCaseError> {
    while let Some(event) = session.poll_event() {
        match event {
            Event::Message { payload, .. } => {
                prop_assert!(
                    !fates.handed_back.contains(&payload[..]),
                    "delivered after it was handed back"
                );
                prop_assert!(fates.delivered.insert(payload.to_vec()), "delivered twice");
            }
            Event::Closed(closed) => prop_assert!(
                ![CloseCode::PROTOCOL_ERROR, CloseCode::TOO_MANY_PINGS].contains(&closed.code),
                "{:?} closed a well-behaved pair: {:?}",
                session.role(),
                closed
            ),
            _ => {}
        }
    }
    while let Some((_, payload)) = session.poll_unsent() {
        prop_assert!(
            !fates.delivered.contains(&payload[..]),
            "handed back after it was delivered"
        );
        prop_assert!(fates.handed_back.insert(payload.to_vec()), "handed back twice");
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Step {
    /// Let the next thing happen.
    Run,
    /// The side's next timer fires this much late (our own stall).
    Late(bool, u64),
    /// The application sends; if the second is true, the driver reads what
    /// arrives next before it writes (input between a send and its flush).
    Send(bool, bool),
    /// The client asks for new timings: interval in ms, timeout factor.
    Retime(u64, u32),
    /// The side closes gracefully (DATA it holds waits, the CLOSE behind).
    Close(bool),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => Just(Step::Run),
        1 => (any::<bool>(), 0u64..5_000).prop_map(|(c, l)| Step::Late(c, l)),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(c, r)| Step::Send(c, r)),
        1 => (10u64..5_000, 2u32..5).prop_map(|(i, f)| Step::Retime(i, f)),
        // Rare, so most sessions live long enough to hold and retime first.
        1 => (any::<bool>(), 0u8..20).prop_map(|(c, n)| if n == 0 { Step::Close(c) } else { Step::Run }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
    ))]

    #[test]
    fn input_never_moves_an_established_deadline_earlier(
        config in arb_config(),
        latency in 0u64..300,
        seed in any::<u64>(),
        steps in prop::collection::vec(arb_step(), 50..400),
    ) {
        let mut now = Instant::ZERO;
        let mut ends = [Role::Client, Role::Server].map(|role| {
            let session = Session::new(config.clone(), role, now, seed ^ role as u64).unwrap();
            End { armed: session.poll_timeout(), session, lateness: Duration::ZERO }
        });
        // Bytes in flight to each side, with their arrival times.
        let mut wires: [VecDeque<(Instant, Vec<u8>)>; 2] = Default::default();
        let latency = ms(latency);
        let mut fates = Fates::default();
        let mut sent = 0u32;
        let mut read_first = false;
        for step in steps {
            // Flush both sides onto the wires (unless a send is to meet
            // input before its flush).
            for (i, end) in ends.iter_mut().enumerate().filter(|_| !read_first) {
                flush(&mut end.session, now, latency, &mut wires[1 - i]);
                drain(&mut end.session, &mut fates)?;
                let deadline = end.session.poll_timeout();
                if deadline.is_none() || matches!((deadline, end.armed), (Some(d), Some(a)) if d < a) || end.armed.is_none() {
                    end.armed = deadline;
                }
            }
            match step {
                Step::Late(client, late) => ends[usize::from(!client)].lateness = ms(late),
                Step::Send(client, read) => {
                    read_first |= read;
                    sent += 1;
                    let payload = format!("{client} {sent}").into_bytes();
                    let _ = ends[usize::from(!client)].session.send(1, payload);
                }
                Step::Close(client) => {
                    let _ = ends[usize::from(!client)].session.close(now, CloseCode::NORMAL, "done");
                }
                Step::Retime(interval, factor) => {
                    let _ = ends[0].session.retime(now, ms(interval), ms(interval) * factor);
                }
                Step::Run => {
                    read_first = false;
                    let next = (0..2)
                        .flat_map(|i| [ends[i].fire_at(), wires[i].front().map(|(at, _)| *at)])
                        .flatten()
                        .min();
                    let Some(next) = next else { break };
                    now = now.max(next);
                    for i in 0..2 {
                        let end = &mut ends[i];
                        while wires[i].front().is_some_and(|(at, _)| *at <= now) {
                            let (_, bytes) = wires[i].pop_front().unwrap();
                            let established = end.session.state() != State::Handshaking;
                            let before = end.session.poll_timeout();
                            end.session.handle_input(now, &bytes[..]);
                            // A driver that writes what the input (and any
                            // local call before it) made, and keeps its timer.
                            let (read, write) = wires.split_at_mut(1);
                            let wire = if i == 0 { &mut write[0] } else { &mut read[0] };
                            flush(&mut end.session, now, latency, wire);
                            let after = end.session.poll_timeout();
                            if established {
                                if let (Some(before), Some(after)) = (before, after) {
                                    prop_assert!(
                                        after >= before,
                                        "{:?}: input (and the write after it) moved the deadline from {:?} to {:?} (config {:?})",
                                        end.session.role(), before, after, config
                                    );
                                }
                            } else if after.is_some() {
                                end.armed = after;
                            }
                        }
                        if end.fire_at().is_some_and(|at| at <= now) {
                            end.session.handle_timeout(now);
                            end.armed = end.session.poll_timeout();
                            end.lateness = Duration::ZERO;
                        }
                    }
                }
            }
        }
        for end in &mut ends {
            drain(&mut end.session, &mut fates)?;
        }
    }
}
