//! Variable-length integers, in the form QUIC uses (RFC 9000 §16).
//!
//! The two high bits of the first byte give the length: `00` one byte
//! (6 bits of value), `01` two (14 bits), `10` four (30 bits), `11` eight
//! (62 bits). Big-endian. pulse uses them only for frame lengths.

use bytes::BufMut;

/// The largest value the four-byte form holds; pulse never needs more.
pub const MAX_FOUR_BYTE: u64 = (1 << 30) - 1;

/// What reading a varint from a prefix of the input gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The value and how many bytes it took.
    Value(u64, usize),
    /// The input ends inside the varint; this many bytes are needed in all.
    Incomplete(usize),
}

/// How many bytes the varint for `value` takes (the shortest form).
pub fn encoded_len(value: u64) -> usize {
    match value {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=MAX_FOUR_BYTE => 4,
        _ => 8,
    }
}

/// Appends the shortest encoding of `value` (at most 2^62 - 1).
pub fn encode(value: u64, out: &mut impl BufMut) {
    debug_assert!(value < 1 << 62);
    match encoded_len(value) {
        1 => out.put_u8(value as u8),
        2 => out.put_u16(0x4000 | value as u16),
        4 => out.put_u32(0x8000_0000 | value as u32),
        _ => out.put_u64(0xC000_0000_0000_0000 | value),
    }
}

/// Reads a varint from the start of `input`.
pub fn read(input: &[u8]) -> Read {
    let Some(&first) = input.first() else {
        return Read::Incomplete(1);
    };
    let len = 1usize << (first >> 6);
    if input.len() < len {
        return Read::Incomplete(len);
    }
    let mut value = u64::from(first & 0x3F);
    for &byte in &input[1..len] {
        value = (value << 8) | u64::from(byte);
    }
    Read::Value(value, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn every_boundary_round_trips_in_its_shortest_form() {
        for (value, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16_383, 2),
            (16_384, 4),
            (MAX_FOUR_BYTE, 4),
            (MAX_FOUR_BYTE + 1, 8),
        ] {
            let mut buf = Vec::new();
            encode(value, &mut buf);
            assert_eq!(buf.len(), len, "length of {value}");
            assert_eq!(read(&buf), Read::Value(value, len));
            assert_eq!(read(&buf[..len - 1]), Read::Incomplete(len));
        }
    }

    #[test]
    fn longer_forms_than_needed_are_still_read() {
        assert_eq!(read(&[0x40, 0x05]), Read::Value(5, 2));
    }
}
