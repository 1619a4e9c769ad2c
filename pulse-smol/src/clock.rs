//! Maps the machine's monotonic clock onto pulse-proto's `Instant`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use pulse_proto::Instant;

static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();

fn epoch() -> std::time::Instant {
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Now, as pulse-proto counts it: nanoseconds since this process's epoch.
pub(crate) fn now() -> Instant {
    Instant::from_nanos(u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// A pulse-proto instant on the machine's clock, for timers.
pub(crate) fn to_std(at: Instant) -> std::time::Instant {
    epoch() + Duration::from_nanos(at.as_nanos())
}

/// A fresh jitter seed for each session: a counter mixed with the time the
/// process started, so connections opened together draw different phases.
pub(crate) fn seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    start.rotate_left(17) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Sixteen unpredictable bytes, for a datagram server's cookie key: the
/// standard library's per-process random hash keys, hashed.
pub(crate) fn secret() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let word = || std::collections::hash_map::RandomState::new().build_hasher().finish();
    let mut secret = [0; 16];
    secret[..8].copy_from_slice(&word().to_le_bytes());
    secret[8..].copy_from_slice(&(word() ^ seed()).to_le_bytes());
    secret
}
