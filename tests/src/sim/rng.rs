//! Seeded randomness for the simulator: small, fast, and the same on every
//! machine, so a seed replays a run bit for bit.

use std::time::Duration;

/// xorshift64* over a non-zero state.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..below` (0 when `below` is 0).
    pub fn below(&mut self, below: u64) -> u64 {
        if below == 0 {
            0
        } else {
            self.next_u64() % below
        }
    }

    /// True with a chance of `ppm` parts per million; draws nothing when
    /// `ppm` is 0, so a link without the fault consumes no randomness.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(1_000_000) < u64::from(ppm)
    }

    /// Uniform in `0..d`.
    pub fn duration_below(&mut self, d: Duration) -> Duration {
        Duration::from_nanos(self.below(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
    }
}

/// A number in `0..below` drawn from a seed and a salt: independent link
/// and schedule parameters per seed, without threading a generator through.
pub fn draw(seed: u64, salt: u64, below: u64) -> u64 {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^= z >> 31;
    z = z.wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 29)) % below.max(1)
}

/// A duration in `from..=to` drawn from a seed and a salt.
pub fn draw_between(seed: u64, salt: u64, from: Duration, to: Duration) -> Duration {
    let span = u64::try_from(to.saturating_sub(from).as_nanos()).unwrap_or(u64::MAX);
    from + Duration::from_nanos(draw(seed, salt, span.saturating_add(1)))
}

/// A duration in `from..=to` drawn from a seed and a salt, uniform in its
/// logarithm: short and long values alike get their share of seeds.
pub fn draw_log_between(seed: u64, salt: u64, from: Duration, to: Duration) -> Duration {
    let (low, high) = (from.as_secs_f64().max(1e-9), to.as_secs_f64().max(1e-9));
    let u = draw(seed, salt, 1 << 20) as f64 / f64::from(1u32 << 20);
    Duration::from_secs_f64(low * (high / low).powf(u)).clamp(from, to)
}
