//! A 64-bit hash whose output is fixed by this file, not by a Rust version or
//! a process's random seed: HyperLogLog registers written by one processor are
//! merged with registers written by another, years apart, so every process
//! must hash a user id to the same bits. The golden values in the tests pin it.
//!
//! Construction: 8-byte little-endian words, each scrambled by MurmurHash3's
//! 64-bit finalizer (`fmix64`) and folded into the state with a rotate and a
//! multiply; the length is part of the input; the result is finalized again.
//! Not cryptographic: inputs chosen to collide would only merge their own
//! project's counts.

const P1: u64 = 0x9E37_79B9_7F4A_7C15;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// MurmurHash3's 64-bit finalizer: every input bit affects every output bit.
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    k ^= k >> 33;
    k = k.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    k ^ (k >> 33)
}

/// The stable hash of `bytes` under `seed`.
pub fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    let mut state = seed ^ (bytes.len() as u64).wrapping_mul(P1);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        state = fold(state, word);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let mut padded = [0u8; 8];
        padded[..tail.len()].copy_from_slice(tail);
        state = fold(state, u64::from_le_bytes(padded));
    }
    fmix64(state)
}

/// The stable hash of a sequence of fields; the length of each is hashed
/// too, so ("ab", "c") and ("a", "bc") differ.
pub fn hash_fields(seed: u64, fields: &[&[u8]]) -> u64 {
    fields
        .iter()
        .fold(seed, |state, field| fold(state, hash64(state, field)))
}

fn fold(state: u64, word: u64) -> u64 {
    (state ^ fmix64(word.wrapping_mul(P2)))
        .rotate_left(27)
        .wrapping_mul(P1)
        .wrapping_add(0x52DC_E729)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These values are a contract with every sketch already stored: a change
    /// here corrupts unique counts that merge old and new registers. They were
    /// checked against an independent Python transcription of this file.
    #[test]
    fn output_is_pinned() {
        assert_eq!(hash64(0, b""), 0);
        assert_eq!(hash64(0, b"user-1"), 0x83E7_4748_19CB_F2A3);
        assert_eq!(
            hash64(7, b"a longer user identifier"),
            0xD26B_0035_EE51_8A62
        );
        assert_eq!(hash_fields(1, &[b"p", b"click"]), 0x25F7_7B31_8193_BAA1);
    }

    #[test]
    fn fields_are_delimited_and_seeds_matter() {
        assert_ne!(
            hash_fields(0, &[b"ab", b"c"]),
            hash_fields(0, &[b"a", b"bc"])
        );
        assert_ne!(hash64(1, b"x"), hash64(2, b"x"));
        assert_ne!(hash64(0, b"\0"), hash64(0, b""));
    }

    #[test]
    fn top_bits_are_uniform() {
        // HyperLogLog takes its register index from the top 14 bits.
        let mut buckets = [0u32; 16];
        for n in 0..160_000u32 {
            buckets[(hash64(0, format!("user-{n}").as_bytes()) >> 60) as usize] += 1;
        }
        for count in buckets {
            assert!((9_500..10_500).contains(&count), "{buckets:?}");
        }
    }
}
