//! One direction of a simulated link: bytes in flight, delayed, and — as
//! the seed and the schedule say — lost, duplicated, reordered, held back
//! behind a retransmission, or held and then delivered together.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use pulse_proto::frame::Frame;
use pulse_proto::{Instant, StreamDecoder, Transport};

use super::nat::NatPort;
use super::rng::Rng;

/// The most consecutive losses of one stream segment: TCP gives up on a
/// connection long before, and the RTO has grown 64-fold by then.
const MAX_RETRANSMISSIONS: u32 = 6;

/// A scheduled fault on a wire, in the shared virtual time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// What would land in `from..until` lands at `until`, all together and
    /// in order: a router queue that stalled, a radio that lost its
    /// link-layer for a while, a path rerouted.
    Hold {
        /// Start of the hold.
        from: Instant,
        /// When everything held lands.
        until: Instant,
    },
    /// What is sent in `from..until` is lost, on either transport: a
    /// partition.
    Partition {
        /// Start of the partition.
        from: Instant,
        /// When the link heals.
        until: Instant,
    },
}

/// One direction of the link.
#[derive(Debug)]
pub struct Wire {
    /// One-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..jitter`, drawn per send. A stream keeps
    /// its order (a later send never arrives first); datagrams reorder.
    pub jitter: Duration,
    /// Chance in parts per million that a datagram is lost.
    pub loss_ppm: u32,
    /// Chance in parts per million that a datagram arrives twice.
    pub duplicate_ppm: u32,
    /// Stream only: chance in parts per million that a segment is lost and
    /// retransmitted after [`Wire::rto`], the RTO doubling at each further
    /// loss of the same segment. Every later segment waits behind it (head
    /// of line blocking) and lands with it, in one burst.
    pub retransmit_ppm: u32,
    /// Stream only: the first retransmission timeout (Linux's minimum is
    /// 200 ms).
    pub rto: Duration,
    /// When true, everything sent is lost (a partition).
    pub cut: bool,
    /// When true, everything sent arrives twice (datagram duplication).
    pub duplicate: bool,
    outages: Vec<Outage>,
    rng: Rng,
    last_arrival: Instant,
    in_flight: VecDeque<(Instant, Bytes)>,
    landed: Option<Instant>,
    observer: Option<StreamDecoder>,
    /// Every frame that crossed this wire, with its send time, when
    /// observing (see [`crate::Pair::observe`]).
    pub frames: Vec<(Instant, Frame)>,
    nat: Option<NatPort>,
    end_taken: bool,
}

impl Wire {
    /// A wire with this one-way delay and no faults.
    pub fn new(latency: Duration) -> Self {
        Wire {
            latency,
            jitter: Duration::ZERO,
            loss_ppm: 0,
            duplicate_ppm: 0,
            retransmit_ppm: 0,
            rto: Duration::from_millis(200),
            cut: false,
            duplicate: false,
            outages: Vec::new(),
            rng: Rng::new(0x9E37_79B9_7F4A_7C15),
            last_arrival: Instant::ZERO,
            in_flight: VecDeque::new(),
            landed: None,
            observer: None,
            frames: Vec::new(),
            nat: None,
            end_taken: false,
        }
    }

    /// Sends everything through a NAT's mapping ([`crate::sim::nat`]): it
    /// may drop what it no longer maps, or reset the stream.
    pub fn through_nat(&mut self, port: NatPort) {
        self.nat = Some(port);
    }

    /// When the transport's end (a middlebox's reset) reaches this wire's
    /// receiver, until [`Wire::take_end`] has taken it.
    pub fn end_arrival(&self) -> Option<Instant> {
        if self.end_taken {
            return None;
        }
        self.nat.as_ref()?.reset_arrival(self.latency)
    }

    /// Whether the transport's end has reached the receiver by `now`; true
    /// once. Bytes still on their way are lost with the connection.
    pub fn take_end(&mut self, now: Instant) -> bool {
        if self.end_arrival().is_none_or(|at| at > now) {
            return false;
        }
        self.end_taken = true;
        self.in_flight.clear();
        true
    }

    /// Seeds this wire's randomness (loss, duplication, jitter,
    /// retransmissions).
    pub fn seed(&mut self, seed: u64) {
        self.rng = Rng::new(seed);
    }

    /// Schedules a fault.
    pub fn schedule(&mut self, outage: Outage) {
        self.outages.push(outage);
    }

    /// Records every frame pushed from now on in [`Wire::frames`].
    pub fn observe(&mut self) {
        self.observer = Some(StreamDecoder::new(u32::MAX >> 2));
    }

    /// Whether anything is still on its way.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Puts bytes sent at `now` on the wire.
    pub fn push(&mut self, now: Instant, bytes: Bytes, transport: Transport) {
        self.record(now, &bytes, transport);
        if self.cut || self.partitioned(now) {
            return;
        }
        if self
            .nat
            .as_ref()
            .is_some_and(|nat| !nat.pass(now, self.latency, transport))
        {
            return;
        }
        let datagram = transport == Transport::Datagram;
        if datagram && self.rng.chance(self.loss_ppm) {
            return;
        }
        let copies = if self.duplicate || (datagram && self.rng.chance(self.duplicate_ppm)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let jitter = if self.jitter.is_zero() {
                Duration::ZERO
            } else {
                self.rng.duration_below(self.jitter)
            };
            let mut at = now + self.latency + jitter;
            if !datagram {
                at += self.retransmission_delay();
                at = at.max(self.last_arrival); // a stream never reorders
            }
            at = self.held(at);
            self.last_arrival = self.last_arrival.max(at);
            let position = self.in_flight.partition_point(|(t, _)| *t <= at);
            self.in_flight.insert(position, (at, bytes.clone()));
        }
    }

    /// How long TCP takes to get this segment through: nothing, or the sum
    /// of doubling RTOs over its consecutive losses.
    fn retransmission_delay(&mut self) -> Duration {
        let mut delay = Duration::ZERO;
        let mut rto = self.rto;
        for _ in 0..MAX_RETRANSMISSIONS {
            if !self.rng.chance(self.retransmit_ppm) {
                break;
            }
            delay += rto;
            rto *= 2;
        }
        delay
    }

    fn partitioned(&self, now: Instant) -> bool {
        self.outages
            .iter()
            .any(|o| matches!(*o, Outage::Partition { from, until } if from <= now && now < until))
    }

    fn held(&self, mut at: Instant) -> Instant {
        // Holds may chain: landing at the end of one may fall in another.
        for _ in 0..self.outages.len() {
            let Some(until) = self.outages.iter().find_map(|o| match *o {
                Outage::Hold { from, until } if from <= at && at < until => Some(until),
                _ => None,
            }) else {
                break;
            };
            at = until;
        }
        at
    }

    fn record(&mut self, now: Instant, bytes: &Bytes, transport: Transport) {
        let Some(observer) = self.observer.as_mut() else { return };
        let mut input = bytes.clone();
        if transport == Transport::Datagram && input.starts_with(&pulse_proto::frame::MAGIC) {
            bytes::Buf::advance(&mut input, 4);
        }
        match transport {
            Transport::Stream => {
                while let Ok(Some(frame)) = observer.decode(&mut input) {
                    self.frames.push((now, frame));
                }
            }
            Transport::Datagram => {
                while let Ok(Some(frame)) = pulse_proto::next_datagram_frame(&mut input, u32::MAX >> 2) {
                    self.frames.push((now, frame));
                }
            }
        }
    }

    /// When the next bytes land, if any are on their way.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    /// When the first bytes landing after `t` land.
    pub fn next_arrival_after(&self, t: Instant) -> Option<Instant> {
        let landed = self.in_flight.partition_point(|(at, _)| *at <= t);
        self.in_flight.get(landed).map(|(at, _)| *at)
    }

    /// Takes the oldest bytes that have landed by `now`.
    pub fn pop_landed(&mut self, now: Instant) -> Option<Bytes> {
        if self.next_arrival()? > now {
            return None;
        }
        let (at, bytes) = self.in_flight.pop_front()?;
        self.landed = self.landed.max(Some(at));
        Some(bytes)
    }

    /// When bytes last landed at the far end by `now` — read by then or
    /// still waiting in the receiver's socket. The oracle for verdicts: a
    /// link that delivered anything within the dead timeout was not silent.
    pub fn last_landing(&self, now: Instant) -> Option<Instant> {
        let waiting = self.in_flight.partition_point(|(at, _)| *at <= now);
        let unread = waiting.checked_sub(1).map(|i| self.in_flight[i].0);
        self.landed.max(unread)
    }
}
