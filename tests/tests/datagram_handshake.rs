//! The datagram handshake through a server's gate (docs/PROTOCOL.md §9,
//! §9.1), over links that lose datagrams: address validation costs a round
//! trip, yet the default handshake survives heavy loss.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use pulse_proto::{Admission, Config, Event, Gate, Instant, Role, Session, State, Transport};
use pulse_tests::seeds;

/// A lossy, jittered datagram link in each direction, a client session, and
/// a server that is a gate in front of at most one session.
struct Handshake {
    now: Instant,
    client: Session,
    gate: Gate,
    server: Option<Session>,
    to_server: VecDeque<(Instant, Vec<u8>)>,
    to_client: VecDeque<(Instant, Vec<u8>)>,
    rng: u64,
    loss_ppm: u64,
    config: Config,
    /// Bytes sent to the client's address before it had a session, and
    /// bytes the client sent meanwhile: the amplification the gate allows.
    unproven: (usize, usize),
}

const FROM: &str = "127.0.0.2:40000";

impl Handshake {
    fn new(seed: u64, loss_ppm: u64) -> Handshake {
        let config = Config::new(Transport::Datagram);
        Handshake {
            now: Instant::ZERO,
            client: Session::new(config.clone(), Role::Client, Instant::ZERO, seed).unwrap(),
            gate: Gate::new(config.clone(), seed.to_le_bytes().repeat(2).try_into().unwrap()).unwrap(),
            server: None,
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            loss_ppm,
            config,
            unproven: (0, 0),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 20 ms one way, plus up to 10 ms of jitter; lost with the link's odds.
    fn carry(&mut self, to_server: bool, datagram: Vec<u8>) {
        if self.random() % 1_000_000 < self.loss_ppm {
            return;
        }
        let at = self.now + Duration::from_millis(20 + self.random() % 10);
        let queue = if to_server {
            &mut self.to_server
        } else {
            &mut self.to_client
        };
        let position = queue.partition_point(|(t, _)| *t <= at);
        queue.insert(position, (at, datagram));
    }

    fn flush(&mut self) {
        while let Some(d) = self.client.poll_transmit(self.now) {
            let d = d.to_vec();
            self.client.advance_transmit(d.len());
            if self.server.is_none() {
                self.unproven.1 += d.len();
            }
            self.carry(true, d);
        }
        while let Some(d) = self
            .server
            .as_mut()
            .and_then(|s| s.poll_transmit(self.now).map(<[u8]>::to_vec))
        {
            self.server.as_mut().unwrap().advance_transmit(d.len());
            self.carry(false, d);
        }
    }

    fn deliver_to_server(&mut self, datagram: Vec<u8>) {
        let from: SocketAddr = FROM.parse().unwrap();
        if let Some(server) = self.server.as_mut() {
            return server.handle_datagram(self.now, &datagram[..]);
        }
        let mut reply = Vec::new();
        match self.gate.admit(self.now, from, &datagram, &mut reply) {
            Admission::Drop => {}
            Admission::Reply => {
                self.unproven.0 += reply.len();
                self.carry(false, reply);
            }
            Admission::Open => {
                let mut server = Session::new(self.config.clone(), Role::Server, self.now, 7).unwrap();
                server.handle_datagram(self.now, &datagram[..]);
                self.server = Some(server);
            }
        }
    }

    /// Runs until the client is established or closed; returns whether it
    /// connected, and when.
    fn run(&mut self) -> (bool, Instant) {
        for _ in 0..100_000 {
            self.flush();
            while self.client.poll_event().is_some() {}
            match self.client.state() {
                State::Established => return (true, self.now),
                State::Closed => return (false, self.now),
                _ => {}
            }
            let next = [
                self.client.poll_timeout(),
                self.to_server.front().map(|(t, _)| *t),
                self.to_client.front().map(|(t, _)| *t),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("something is always due while handshaking");
            self.now = self.now.max(next);
            while self.to_server.front().is_some_and(|(t, _)| *t <= self.now) {
                let (_, d) = self.to_server.pop_front().unwrap();
                self.deliver_to_server(d);
            }
            while self.to_client.front().is_some_and(|(t, _)| *t <= self.now) {
                let (_, d) = self.to_client.pop_front().unwrap();
                self.client.handle_datagram(self.now, &d[..]);
            }
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
        }
        panic!("the handshake did not settle");
    }
}

#[test]
fn a_clean_datagram_handshake_takes_two_round_trips_and_its_rtt_is_measured() {
    let mut h = Handshake::new(1, 0);
    let (connected, at) = h.run();
    assert!(connected);
    // HELLO, RETRY, HELLO with the cookie, WELCOME: 4 one-way trips.
    assert!(
        at - Instant::ZERO <= Duration::from_millis(4 * 30),
        "connected at {at:?}"
    );
    let rtt = h.client.rtt().expect("the RETRY and WELCOME echo their HELLO");
    assert!(
        rtt >= Duration::from_millis(40) && rtt < Duration::from_millis(60),
        "{rtt:?}"
    );
    // Every answer to the unproven address was within three times its bytes.
    assert!(h.unproven.0 <= 3 * h.unproven.1, "{:?}", h.unproven);
    let server = h.server.as_mut().expect("the cookie opened a session");
    assert!(matches!(server.poll_event(), Some(Event::Connected(_))));
}

#[test]
fn the_default_handshake_survives_a_fifth_lost_each_way_at_least_999_times_in_1000() {
    let attempts = seeds(20_000);
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    for &seed in &attempts {
        let mut h = Handshake::new(seed, 200_000);
        let (connected, at) = h.run();
        if connected {
            slowest = slowest.max(at - Instant::ZERO);
        } else {
            failures.push(seed);
        }
        assert!(h.unproven.0 <= 3 * h.unproven.1, "seed {seed}: {:?}", h.unproven);
    }
    let n = attempts.len() as f64;
    let rate = failures.len() as f64 / n;
    // Wilson's 95 % interval, to say what the sample can tell.
    let z = 1.96f64;
    let centre = (rate + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * ((rate * (1.0 - rate) + z * z / (4.0 * n)) / n).sqrt() / (1.0 + z * z / n);
    println!(
        "datagram handshakes at 20% loss each way: {} of {} failed ({:.5}, 95% CI {:.5}..{:.5}); slowest success {slowest:?}",
        failures.len(),
        attempts.len(),
        rate,
        (centre - half).max(0.0),
        centre + half
    );
    // At the required 1e-3, 20,000 attempts would show 20 failures: the
    // bound can fail.
    assert!(
        failures.len() as f64 <= n / 1000.0,
        "{} failures, seeds {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
}
