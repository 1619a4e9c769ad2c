//! Pools: the healthy set a load balancer sends to, with weights, and the
//! two guards that keep a pool from being emptied by the monitor's own
//! trouble — the panic threshold (Envoy's) and the correlated-failure
//! guard.

use alloc::vec::Vec;
use pulse_proto::{Instant, ServiceState};

use crate::event::{Event, PanicReason, PoolId, TargetId};
use crate::monitor::Monitor;
use crate::target::{Kind, NEVER, SUPPRESSED};

#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) members: Vec<u32>,
    up: u32,
    down: u32,
    /// Of `up`, those held out by flap damping: up by their verdict, in
    /// no healthy set.
    held: u32,
    panic: Option<PanicReason>,
    window_start: Instant,
    window_downs: u32,
    correlated_until: Instant,
    generation: u64,
    pub(crate) change_pending: bool,
}

impl Pool {
    pub(crate) fn new(now: Instant) -> Pool {
        Pool {
            members: Vec::new(),
            up: 0,
            down: 0,
            held: 0,
            panic: None,
            window_start: now,
            window_downs: 0,
            correlated_until: Instant::ZERO,
            generation: 0,
            change_pending: false,
        }
    }
}

/// A pool at a glance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSummary {
    /// Its targets.
    pub members: u32,
    /// Of which up or suspect (by their verdict, not their own report).
    pub up: u32,
    /// Of which down.
    pub down: u32,
    /// Why it panics, if it does.
    pub panic: Option<PanicReason>,
    /// Grows each time its healthy set or a weight changes: a load balancer
    /// rebuilds its table only when this moved.
    pub generation: u64,
}

/// How one target counts in its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footprint {
    /// Counted as up (`Some(true)`), down (`Some(false)`) or not at all
    /// (no verdict yet, or in maintenance by its own report).
    class: Option<bool>,
    /// Counted as up, but held out by flap damping.
    held: bool,
    /// Its weight in the healthy set (0: not in it).
    healthy: u32,
    /// Its weight while the pool panics.
    panic: u32,
}

impl Monitor {
    pub(crate) fn footprint(&self, index: u32) -> Footprint {
        let r = &self.records[index as usize];
        if r.kind() == Kind::Vacant {
            return Footprint {
                class: None,
                held: false,
                healthy: 0,
                panic: 0,
            };
        }
        let health = r.health();
        let class = match health {
            crate::Health::Unknown => None,
            _ if r.status.state() == ServiceState::Maintenance => None,
            h => Some(h.is_alive()),
        };
        // A service that said it ended takes no work, not even in a panic:
        // there is no process left to send it to.
        let takes_work = r.status.state().takes_work() && !r.has(crate::target::STOPPED);
        // Rounded up, so a small positive weight never becomes none.
        let weight = (u32::from(r.weight) * u32::from(r.status.weight())).div_ceil(100);
        let weight = if takes_work { weight } else { 0 };
        Footprint {
            class,
            held: class == Some(true) && r.has(SUPPRESSED),
            healthy: if health.is_alive() && !r.has(SUPPRESSED) {
                weight
            } else {
                0
            },
            panic: weight,
        }
    }

    /// Brings target `index`'s pool up to date after the target changed
    /// from `before`. Every change to a target that can matter to its pool
    /// goes through here.
    pub(crate) fn settle(&mut self, index: u32, before: Footprint, now: Instant) {
        let after = self.footprint(index);
        if before == after {
            return;
        }
        let p = usize::from(self.records[index as usize].pool);
        let pool = &mut self.pools[p];
        match before.class {
            Some(true) => pool.up -= 1,
            Some(false) => pool.down -= 1,
            None => {}
        }
        match after.class {
            Some(true) => pool.up += 1,
            Some(false) => pool.down += 1,
            None => {}
        }
        pool.held = pool.held - u32::from(before.held) + u32::from(after.held);
        let changed = if pool.panic.is_some() {
            before.panic != after.panic
        } else {
            before.healthy != after.healthy
        };
        let newly_down = before.class == Some(true) && after.class == Some(false);
        self.evaluate_pool(p, now, newly_down);
        if changed {
            self.mark_changed(p);
        }
    }

    fn evaluate_pool(&mut self, p: usize, now: Instant, newly_down: bool) {
        let window = self.config.correlated_window;
        let pool = &mut self.pools[p];
        let members = pool.members.len() as u64;
        let mut correlated = false;
        if newly_down {
            if now >= pool.window_start + window {
                pool.window_start = now;
                pool.window_downs = 0;
            }
            pool.window_downs += 1;
            let downs = u64::from(pool.window_downs);
            if downs >= 2 && downs * 100 > u64::from(self.config.correlated_share) * members {
                correlated = now >= pool.correlated_until;
                pool.correlated_until = now + window;
            }
        }
        let judged = u64::from(pool.up + pool.down);
        // A target held out by flap damping is up by its verdict but in no
        // healthy set: for the threshold it is not up, as Envoy counts an
        // ejected host, or a pool whose live targets all flapped would be
        // left empty by the monitor's own verdicts.
        let serving = pool.up - pool.held;
        // None up is always a panic, whatever the threshold (0 included):
        // a pool that is all down by the monitor's word may be all cut off
        // from the monitor, and an empty pool serves nobody either way.
        let below =
            judged > 0 && (serving == 0 || u64::from(serving) * 100 < u64::from(self.config.panic_threshold) * judged);
        let want = if now < pool.correlated_until {
            Some(PanicReason::Correlated)
        } else if below {
            Some(PanicReason::BelowThreshold)
        } else {
            None
        };
        if want != pool.panic {
            let was = pool.panic;
            pool.panic = want;
            let event = match want {
                Some(reason) => Event::Panic {
                    pool: PoolId(p as u16),
                    reason,
                    down: pool.down,
                    judged: pool.up + pool.down,
                },
                None => Event::Calm(PoolId(p as u16)),
            };
            self.events.push_back(event);
            if was.is_none() || want.is_none() {
                self.mark_changed(p);
            }
        }
        if correlated {
            // So many at once is more likely our network to this pool than
            // the targets: the pool keeps them all for the window. Only this
            // pool: verdicts go on here and everywhere else (a monitor-wide
            // hold would delay every other pool's real failures), so the
            // transitions stay true and only the healthy set is guarded.
            self.pool_deadline = self.pool_deadline.min(self.pools[p].correlated_until);
        }
    }

    /// Ends correlated-failure holds whose window has passed.
    pub(crate) fn calm_pools(&mut self, now: Instant) {
        self.pool_deadline = NEVER;
        for p in 0..self.pools.len() {
            let until = self.pools[p].correlated_until;
            if until > now {
                self.pool_deadline = self.pool_deadline.min(until);
            } else if self.pools[p].panic == Some(PanicReason::Correlated) {
                self.evaluate_pool(p, now, false);
            }
        }
    }

    fn mark_changed(&mut self, p: usize) {
        let pool = &mut self.pools[p];
        pool.generation += 1;
        if !pool.change_pending {
            pool.change_pending = true;
            self.events.push_back(Event::PoolChanged(PoolId(p as u16)));
        }
    }

    /// The targets a load balancer should send to in `pool`, with their
    /// weights: each target's nominal weight scaled by the percentage it
    /// reports for itself. While the pool panics, every target that takes
    /// work by its own report is in it, whatever its checks say.
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_monitor::{Config, Monitor, TargetSpec};
    /// use pulse_proto::Instant;
    ///
    /// let mut monitor = Monitor::new(Config::lan(), Instant::ZERO, 1).unwrap();
    /// let pool = monitor.add_pool();
    /// let peer = monitor.add_target(Instant::ZERO, TargetSpec::peer(pool).weight(30)).unwrap();
    /// assert_eq!(monitor.healthy(pool).count(), 0); // no verdict yet
    /// ```
    pub fn healthy(&self, pool: PoolId) -> impl Iterator<Item = (TargetId, u32)> + '_ {
        let state = self.pools.get(pool.index());
        let panic = state.is_some_and(|p| p.panic.is_some());
        state
            .into_iter()
            .flat_map(|p| p.members.iter())
            .filter_map(move |&index| {
                let footprint = self.footprint(index);
                let weight = if panic { footprint.panic } else { footprint.healthy };
                (weight > 0).then(|| (self.id_of(index), weight))
            })
    }

    /// A pool's counts, panic state and generation.
    pub fn pool(&self, pool: PoolId) -> Option<PoolSummary> {
        let p = self.pools.get(pool.index())?;
        Some(PoolSummary {
            members: p.members.len() as u32,
            up: p.up,
            down: p.down,
            panic: p.panic,
            generation: p.generation,
        })
    }
}
