//! The machine's monotonic clock, mapped onto `pulse_proto::Instant`, and
//! the randomness drivers need: jitter seeds and the gate's key.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use pulse_proto::Instant;

static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();

fn epoch() -> std::time::Instant {
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Now, as pulse-proto counts it: nanoseconds since this process's epoch.
///
/// ```
/// let a = pulse_driver::clock::now();
/// let b = pulse_driver::clock::now();
/// assert!(b >= a);
/// ```
pub fn now() -> Instant {
    from_std(std::time::Instant::now())
}

/// A machine instant on pulse-proto's clock (an instant before the epoch
/// reads as the epoch).
pub fn from_std(at: std::time::Instant) -> Instant {
    let since = at.saturating_duration_since(epoch());
    Instant::from_nanos(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
}

/// A pulse-proto instant on the machine's clock, for the runtime's timer.
pub fn to_std(at: Instant) -> std::time::Instant {
    epoch() + Duration::from_nanos(at.as_nanos())
}

/// A fresh jitter seed for each session: a counter mixed with this
/// process's random hash keys, so connections opened together, in this
/// process or in others started together, draw different phases.
pub fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    random_word() ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Sixteen unpredictable bytes: a key for a datagram server's
/// [`pulse_proto::Gate`].
pub fn secret() -> [u8; 16] {
    let mut secret = [0; 16];
    secret[..8].copy_from_slice(&random_word().to_le_bytes());
    secret[8..].copy_from_slice(&random_word().to_le_bytes());
    secret
}

/// The standard library's per-process random hash keys (each
/// `RandomState` also differs from the last), hashed: unpredictable enough
/// for seeds and cookie keys, with no dependency.
fn random_word() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now().as_nanos());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_round_trips_and_seeds_differ() {
        let at = std::time::Instant::now() + Duration::from_secs(5);
        let back = to_std(from_std(at));
        assert!(back.max(at) - back.min(at) < Duration::from_micros(1));
        assert_ne!(seed(), seed());
        assert_ne!(secret(), secret());
    }
}
