//! Every knob of the monitor, with its default, its unit and when to
//! change it — in the manner of HAProxy's configuration manual.

use core::fmt;
use core::time::Duration;

use crate::accrual::{self, Tuning};
use crate::damping::Damping;

/// How the monitor decides. Start from [`Config::default`], a preset
/// ([`Config::lan`], [`Config::wan`]), and change fields; [`crate::Monitor::new`]
/// checks the whole and says what is wrong with a typed [`ConfigError`].
///
/// # Examples
///
/// ```
/// use core::time::Duration;
/// use pulse_monitor::{Config, ConfigError, Monitor};
/// use pulse_proto::Instant;
///
/// let mut config = Config::lan();
/// config.fall = 0;
/// assert_eq!(Monitor::new(config, Instant::ZERO, 1).err(), Some(ConfigError::ZeroFall));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    // --- Active checks (TCP, HTTP, and probes confirming a suspicion) ---
    /// Time between checks of a target that is up and passing. Default 2 s.
    ///
    /// The main trade between detection time and probe load: a killed
    /// target is down about `interval + (fall − 1) × fast_interval` after it
    /// dies. Lower it for backends whose loss hurts at once; raise it when
    /// thousands of targets are checked from one monitor (the load is
    /// `targets / interval` probes a second).
    pub interval: Duration,
    /// Time between checks while a target is changing state: after a first
    /// failure, while it rises back, and while a suspicion is being
    /// confirmed. Default 500 ms (HAProxy's `fastinter`).
    ///
    /// It is what turns one failure into a verdict quickly; keep it well
    /// under `interval`, and over the time the target needs to answer.
    pub fast_interval: Duration,
    /// Time between checks of a target that is down. Default 5 s (HAProxy's
    /// `downinter`).
    ///
    /// Lower it to bring targets back sooner after an outage; raise it so
    /// a large dead pool does not cost many probes.
    pub down_interval: Duration,
    /// How long a check may take: a TCP connect, or an HTTP response's
    /// status line and headers. Default 1 s.
    ///
    /// A check still pending then has failed. It must be under `interval`;
    /// raise it for targets far away (it should be several round trips).
    pub timeout: Duration,
    /// Consecutive passing checks that bring a down target up. Default 2.
    ///
    /// Raise it when a half-started backend passes one check and then
    /// fails under load.
    pub rise: u8,
    /// Consecutive failed checks that take a target down (and that confirm
    /// a suspicion, for targets that announce and can be probed, or a lost
    /// session of a pulse peer with a confirming check). Default 3.
    ///
    /// One lost packet should never take a backend out: lower it only on
    /// links that do not lose packets.
    pub fall: u8,
    /// Each interval is drawn uniformly within ± this percentage of its
    /// nominal value, and every target starts at a random phase of its
    /// first interval. Default 10 %.
    ///
    /// It keeps 10,000 targets from being checked in lockstep; there is
    /// rarely a reason to lower it.
    pub jitter_percent: u8,

    // --- The accrual detector (announcements) ---
    /// Suspicion level (φ) at which a target that announces becomes suspect
    /// (and, if it can be probed, is probed to confirm). Default 1.
    ///
    /// φ 1 is a silence a live service shows once in ten intervals: with the
    /// defaults, about 2.3 intervals after the last announcement, so
    /// confirming probes have a full interval to run before the down level.
    /// Suspect targets stay in their pool.
    pub suspect_level: f32,
    /// Suspicion level at which it is down. Default 8 (Akka's): with the
    /// other defaults, 3.3 intervals after the last announcement on a clean
    /// network, so three announcements in a row must be lost for a false
    /// verdict.
    ///
    /// The level climbs steeply past the acceptable pause (a normal tail):
    /// each further level costs a fraction of a deviation. To tolerate more
    /// loss, raise `acceptable_pause` rather than this.
    pub down_level: f32,
    /// Suspicion level at which it is evicted (an event telling consoles
    /// the service is gone for good), or `None` never to evict. Default
    /// `None`.
    ///
    /// Under the normal model the level climbs steeply, so any evict level
    /// comes a few deviations after the down level; a console that forgets
    /// services after minutes should rather remove a target whose down
    /// transition is that old ([`crate::Snapshot::in_state_for`]).
    pub evict_level: Option<f32>,
    /// Silence a service may keep before suspicion climbs, in units of its
    /// own announced interval. Default 1.0.
    ///
    /// One announcement can be lost with no suspicion at all. It is the
    /// main part of the detection time (`(1 + pause) × interval`, plus a
    /// few deviations): raise it on lossy paths, where each extra interval
    /// divides the false-down rate by the loss rate.
    pub acceptable_pause: f32,
    /// The smallest deviation the detector assumes, in announced intervals.
    /// Default 0.25.
    ///
    /// A perfectly regular sender would otherwise teach the detector that
    /// any lateness is impossible. With the defaults it puts the down level
    /// 1.3 intervals past the pause.
    pub min_deviation: f32,
    /// How many recent intervals the running mean and variance remember
    /// (the weight of a new sample is one over this). Default 16.
    pub history: u16,
    /// The shortest and longest announced interval taken as given; others
    /// are clamped into this range. Default 10 ms to 1 hour.
    pub announce_interval_range: (Duration, Duration),

    // --- Flap damping ---
    /// Flap damping, or `None` to take every transition at face value.
    /// Default: [`Damping::default`].
    pub damping: Option<Damping>,

    // --- Local health: our own stalls ---
    /// A timer that fires later than this after its deadline (or input that
    /// arrives that late) means the monitor itself was stalled. Default
    /// 500 ms. It is also the housekeeping period: the monitor asks to be
    /// called at least this often ([`crate::Monitor::poll_timeout`]), so a
    /// stall of more than twice this is always found.
    ///
    /// After a stall no target goes down until fresh evidence has come in
    /// (a check started after the stall, a full detection time of silence
    /// after it, or for a pulse peer a session that vouched for it after
    /// it), and intervals — and this threshold — stretch, so
    /// a loop that is late at every turn still reaches verdicts. Raise it
    /// if the monitor shares a busy thread and its timers are routinely
    /// late.
    pub stall_threshold: Duration,
    /// How far intervals stretch while the monitor is unhealthy: each stall
    /// adds one to a score capped here, and intervals are multiplied by
    /// `1 + score`. Default 4 (as memberlist's Lifeguard uses 8). It also
    /// bounds how often later stalls renew a pulse peer's
    /// [`reconnect_grace`](Self::reconnect_grace).
    pub max_local_score: u8,
    /// Time without a stall after which the score drops by one. Default 5 s.
    pub local_recovery: Duration,
    /// After a stall of ours, how long a pulse peer without a confirming
    /// check, whose session was lost before it vouched for the peer again
    /// (the peer timed our stopped session out, say), has from that loss
    /// to connect a new session before it is down
    /// ([`crate::Reason::NotReconnected`]).
    /// Until then it is suspect and stays in its pool. Default 5 s.
    ///
    /// It should cover the driver's reconnection delay and a handshake;
    /// it delays only verdicts on sessions that crossed our own stall.
    /// Another stall of ours during the wait gives the peer the whole
    /// grace again from that stall's end, at most
    /// [`max_local_score`](Self::max_local_score) times, so a monitor that
    /// stalls over and over still convicts a peer that never reconnects.
    pub reconnect_grace: Duration,
    /// More results or announcements than four times the expected rate in
    /// one such window (and at least 64) also count as a stall: they were
    /// held up somewhere on our side and arrived in a burst. Default 100 ms.
    pub burst_window: Duration,

    // --- Pools ---
    /// A pool whose share of healthy targets (among those with a verdict)
    /// falls under this percentage panics: every target that takes work by
    /// its own report stays in its healthy set. Default 50 % (Envoy's).
    ///
    /// Sending to all is better than piling everything on the few left.
    /// Whatever the threshold, a pool with verdicts and none of them up
    /// panics: the monitor cannot tell a pool that all died from its own
    /// network cut off from the pool, so a pool is never emptied by
    /// verdicts. 0 therefore means "panic only when none is up" (the
    /// smallest guard; a 1- or 2-target pool keeps its targets when all are
    /// down). A target held out by flap damping counts as not up here, as
    /// Envoy counts an ejected host: a pool whose live targets all flapped
    /// panics rather than empty. Transitions are reported either way.
    pub panic_threshold: u8,
    /// If more than this percentage of a pool goes down within
    /// `correlated_window` (at least two targets), the monitor suspects its
    /// own network to that pool: the pool panics for the window, keeping
    /// every target in its healthy set, and says so
    /// ([`crate::Event::Panic`] with [`crate::PanicReason::Correlated`]).
    /// Only that pool: its verdicts, and every other pool's, go on as
    /// before. In a pool of two, both going down within the window trips
    /// it; that pool keeps both (there is no one else to send to). 100
    /// never trips it. Default 30 %.
    pub correlated_share: u8,
    /// The window of the correlated-failure guard. Default 10 s.
    pub correlated_window: Duration,

    // --- HTTP ---
    /// The most response bytes an HTTP check reads for the status line and
    /// headers. Default 4096.
    ///
    /// A health page with very long headers fails the check; raise it for
    /// one.
    pub max_response_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            interval: Duration::from_secs(2),
            fast_interval: Duration::from_millis(500),
            down_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            jitter_percent: 10,
            suspect_level: 1.0,
            down_level: 8.0,
            evict_level: None,
            acceptable_pause: 1.0,
            min_deviation: 0.25,
            history: 16,
            announce_interval_range: (Duration::from_millis(10), Duration::from_secs(3600)),
            damping: Some(Damping::default()),
            stall_threshold: Duration::from_millis(500),
            max_local_score: 4,
            local_recovery: Duration::from_secs(5),
            reconnect_grace: Duration::from_secs(5),
            burst_window: Duration::from_millis(100),
            panic_threshold: 50,
            correlated_share: 30,
            correlated_window: Duration::from_secs(10),
            max_response_bytes: 4096,
        }
    }
}

impl Config {
    /// Targets on the same network: checks every second, 250 ms while in
    /// transition, a 500 ms timeout. A killed target is down in under 2 s,
    /// a frozen one in under 3.5 s.
    pub fn lan() -> Config {
        Config {
            interval: Duration::from_secs(1),
            fast_interval: Duration::from_millis(250),
            down_interval: Duration::from_secs(2),
            timeout: Duration::from_millis(500),
            ..Config::default()
        }
    }

    /// Targets across a WAN: checks every 5 s, 1 s in transition, a 3 s
    /// timeout, and a longer acceptable pause for announcements.
    pub fn wan() -> Config {
        Config {
            interval: Duration::from_secs(5),
            fast_interval: Duration::from_secs(1),
            down_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            acceptable_pause: 2.0,
            stall_threshold: Duration::from_secs(1),
            ..Config::default()
        }
    }

    /// Checks the whole configuration and turns the levels into the
    /// detector's deviation counts.
    pub(crate) fn tune(&self) -> Result<Tuned, ConfigError> {
        let ms = Duration::from_millis(1);
        if self.rise == 0 {
            return Err(ConfigError::ZeroRise);
        }
        if self.fall == 0 {
            return Err(ConfigError::ZeroFall);
        }
        for (name, d) in [
            ("interval", self.interval),
            ("fast_interval", self.fast_interval),
            ("down_interval", self.down_interval),
            ("timeout", self.timeout),
            ("stall_threshold", self.stall_threshold),
            ("local_recovery", self.local_recovery),
            ("reconnect_grace", self.reconnect_grace),
            ("burst_window", self.burst_window),
            ("correlated_window", self.correlated_window),
        ] {
            if d < ms {
                return Err(ConfigError::TooShort(name));
            }
        }
        if self.timeout >= self.interval {
            return Err(ConfigError::TimeoutNotUnderInterval);
        }
        if self.jitter_percent > 50 {
            return Err(ConfigError::Percentage("jitter_percent"));
        }
        if self.panic_threshold > 100 {
            return Err(ConfigError::Percentage("panic_threshold"));
        }
        if self.correlated_share > 100 {
            return Err(ConfigError::Percentage("correlated_share"));
        }
        let levels_ok = self.suspect_level > 0.0
            && self.suspect_level < self.down_level
            && self.evict_level.is_none_or(|e| e > self.down_level)
            && self.down_level <= 30.0
            && self.evict_level.is_none_or(|e| e <= 30.0);
        if !levels_ok {
            return Err(ConfigError::Levels);
        }
        if !(self.acceptable_pause >= 0.0 && self.acceptable_pause <= 100.0) {
            return Err(ConfigError::AcceptablePause);
        }
        if !(self.min_deviation > 0.0 && self.min_deviation <= 10.0) {
            return Err(ConfigError::MinDeviation);
        }
        if self.history == 0 {
            return Err(ConfigError::ZeroHistory);
        }
        let (low, high) = self.announce_interval_range;
        if low < ms || low > high {
            return Err(ConfigError::AnnounceIntervalRange);
        }
        if let Some(d) = &self.damping {
            let ok = d.penalty > 0.0
                && d.reuse > 0.0
                && d.reuse < d.suppress
                && d.half_life >= ms
                && d.suppress <= d.ceiling()
                && d.ceiling().is_finite();
            if !ok {
                return Err(ConfigError::Damping);
            }
        }
        if self.max_response_bytes < 64 {
            return Err(ConfigError::MaxResponseBytes);
        }
        Ok(Tuned {
            suspect_y: accrual::deviations_for(self.suspect_level),
            down_y: accrual::deviations_for(self.down_level),
            evict_y: self.evict_level.map(accrual::deviations_for),
            tuning: Tuning {
                pause: self.acceptable_pause,
                min_deviation: self.min_deviation,
                alpha: 1.0 / f32::from(self.history),
            },
        })
    }
}

/// What the monitor derives from a [`Config`] once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuned {
    pub(crate) suspect_y: f32,
    pub(crate) down_y: f32,
    pub(crate) evict_y: Option<f32>,
    pub(crate) tuning: Tuning,
}

/// A configuration the monitor cannot run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `rise` is 0: nothing could ever come up.
    ZeroRise,
    /// `fall` is 0: everything would be down at once.
    ZeroFall,
    /// This duration is under a millisecond.
    TooShort(&'static str),
    /// `timeout` is not under `interval`: checks would overlap.
    TimeoutNotUnderInterval,
    /// This percentage is out of its range.
    Percentage(&'static str),
    /// The levels must rise: 0 < suspect < down < evict ≤ 30.
    Levels,
    /// `acceptable_pause` must be within 0 to 100 intervals.
    AcceptablePause,
    /// `min_deviation` must be over 0 and at most 10 intervals.
    MinDeviation,
    /// `history` is 0.
    ZeroHistory,
    /// `announce_interval_range` must be an ordered range from at least 1 ms.
    AnnounceIntervalRange,
    /// Damping needs 0 < reuse < suppress ≤ its ceiling, a positive penalty
    /// and a half-life of at least 1 ms.
    Damping,
    /// `max_response_bytes` is under 64: no status line would fit.
    MaxResponseBytes,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroRise => f.write_str("rise must be at least 1"),
            ConfigError::ZeroFall => f.write_str("fall must be at least 1"),
            ConfigError::TooShort(name) => write!(f, "{name} must be at least 1 ms"),
            ConfigError::TimeoutNotUnderInterval => f.write_str("timeout must be under interval"),
            ConfigError::Percentage(name) => write!(f, "{name} is out of its range"),
            ConfigError::Levels => f.write_str("levels must rise: 0 < suspect < down < evict <= 30"),
            ConfigError::AcceptablePause => f.write_str("acceptable_pause must be within 0 to 100 intervals"),
            ConfigError::MinDeviation => f.write_str("min_deviation must be over 0 and at most 10 intervals"),
            ConfigError::ZeroHistory => f.write_str("history must be at least 1"),
            ConfigError::AnnounceIntervalRange => f.write_str("announce_interval_range must be ordered, from 1 ms"),
            ConfigError::Damping => f.write_str("damping needs 0 < reuse < suppress <= ceiling and a half-life"),
            ConfigError::MaxResponseBytes => f.write_str("max_response_bytes must be at least 64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_and_presets_are_valid() {
        for config in [Config::default(), Config::lan(), Config::wan()] {
            config.tune().unwrap();
        }
    }

    #[test]
    fn each_kind_of_mistake_is_named() {
        let with = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.tune().unwrap_err()
        };
        assert_eq!(with(|c| c.rise = 0), ConfigError::ZeroRise);
        assert_eq!(with(|c| c.timeout = c.interval), ConfigError::TimeoutNotUnderInterval);
        assert_eq!(
            with(|c| c.fast_interval = Duration::ZERO),
            ConfigError::TooShort("fast_interval")
        );
        assert_eq!(with(|c| c.down_level = 0.5), ConfigError::Levels);
        assert_eq!(with(|c| c.evict_level = Some(5.0)), ConfigError::Levels);
        assert_eq!(with(|c| c.min_deviation = f32::NAN), ConfigError::MinDeviation);
        assert_eq!(
            with(|c| c.jitter_percent = 80),
            ConfigError::Percentage("jitter_percent")
        );
        assert_eq!(
            with(|c| c.damping = Some(Damping {
                reuse: 3000.0,
                ..Damping::default()
            })),
            ConfigError::Damping
        );
    }
}
