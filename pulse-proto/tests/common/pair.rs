//! Both ends of a connection joined in memory and moved through virtual
//! time, with a timer for each end kept as a driver keeps it.

use core::time::Duration;

use pulse_proto::{Config, Event, Instant, Role, Session, State, Transport};

use super::take;

const MS: Duration = Duration::from_millis(1);

/// Both ends of a connection, in memory. `reading` says whether each end's
/// transport takes what its session sends.
pub struct Pair {
    pub client: Session,
    pub server: Session,
    pub now: Instant,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    pub client_reads: bool,
    pub server_reads: bool,
    /// Each end's timer as a driver keeps it: re-armed only when the
    /// session's deadline moves earlier, or after it fired (ARCHITECTURE's
    /// timer rule), so a deadline that input moved later still fires.
    pub timers: [Option<Instant>; 2],
}

impl Pair {
    pub fn new(client: Config, server: Config) -> Pair {
        Pair {
            client: Session::new(client, Role::Client, Instant::ZERO, 1).unwrap(),
            server: Session::new(server, Role::Server, Instant::ZERO, 2).unwrap(),
            now: Instant::ZERO,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_reads: true,
            server_reads: true,
            timers: [None; 2],
        }
    }

    pub fn rearm(&mut self) {
        for (timer, end) in self.timers.iter_mut().zip([&self.client, &self.server]) {
            let deadline = end.poll_timeout();
            if timer.is_none() || deadline.is_some_and(|d| timer.is_some_and(|t| d < t)) {
                *timer = deadline;
            }
        }
    }

    pub fn connected(config: Config) -> Pair {
        let mut pair = Pair::new(config.clone(), config);
        pair.run_for(MS * 10);
        assert_eq!(pair.client.state(), State::Established);
        assert_eq!(pair.server.state(), State::Established);
        pair
    }

    /// Moves what each end sends to the other, whole, and drains events.
    pub fn exchange(&mut self) {
        let datagram = self.client.config().transport == Transport::Datagram;
        for _ in 0..100 {
            let to_server = if self.server_reads {
                take(&mut self.client, self.now)
            } else {
                Vec::new()
            };
            let to_client = if self.client_reads {
                take(&mut self.server, self.now)
            } else {
                Vec::new()
            };
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            for (bytes, to) in [(to_server, &mut self.server), (to_client, &mut self.client)] {
                for piece in bytes {
                    if datagram {
                        to.handle_datagram(self.now, &piece[..]);
                    } else {
                        to.handle_input(self.now, &piece[..]);
                    }
                }
            }
        }
        self.client_events
            .extend(std::iter::from_fn(|| self.client.poll_event()));
        self.server_events
            .extend(std::iter::from_fn(|| self.server.poll_event()));
        self.rearm();
    }

    /// Runs both ends for `d`, firing each timer when due.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.exchange();
        for _ in 0..100_000 {
            match self.timers.iter().flatten().min() {
                Some(&at) if at <= end => self.now = self.now.max(at),
                _ => break,
            }
            for (timer, end) in self.timers.iter_mut().zip([&mut self.client, &mut self.server]) {
                if timer.is_some_and(|at| at <= self.now) {
                    end.handle_timeout(self.now);
                    *timer = end.poll_timeout();
                }
            }
            self.exchange();
        }
        self.now = end;
        self.exchange();
    }
}
