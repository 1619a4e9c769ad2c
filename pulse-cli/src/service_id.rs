//! Service ids of announcements: a number as is, a name hashed, the same
//! way in `pulse announce --id` and `pulse watch`'s `announce = "…"`.

/// The id a service is announced under: `NAME` parsed as a number if it
/// is one, else its 64-bit FNV-1a hash (stable across versions and
/// machines).
pub fn of(name: &str) -> u64 {
    if let Ok(number) = name.parse::<u64>() {
        return number;
    }
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_stay_and_names_hash_stably() {
        assert_eq!(super::of("42"), 42);
        // FNV-1a's published test vector for "a".
        assert_eq!(super::of("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(super::of("worker-1"), super::of("worker-2"));
    }
}
