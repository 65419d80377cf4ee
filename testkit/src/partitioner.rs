//! Kafka's own partitioner, as the Java client computes it: which partition a
//! keyed message goes to. Tests use it to check that the gateway places an
//! event where a direct producer with the same key would.

/// The partition of `key` among `partitions`: `murmur2(key)` with its sign bit
/// cleared, modulo `partitions` (Java's `Utils.toPositive(Utils.murmur2(key))`).
pub fn java_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Java's `org.apache.kafka.common.utils.Utils.murmur2`.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java hashes the length as an int; keys longer than 4 GiB do not occur.
    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = words.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(&first) = rest.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes and partitions (of 4) computed by kafka-python 2.0.2's
    /// `kafka.partitioner.default.murmur2`, a port of the Java client's.
    #[test]
    fn agrees_with_the_java_client() {
        let cases: [(&[u8], u32, u32); 7] = [
            (b"", 0x106e_08d9, 1),
            (b"kafka", 0xd067_cf64, 0),
            (b"giberish123456789", 0x8f55_2b0c, 0),
            (b"1234", 0x9fc9_7b14, 0),
            (b"bench/evt-0001", 0xabb4_f86e, 2),
            ("p1/événement-42".as_bytes(), 0xdfaa_122b, 3),
            (
                b"project-x/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                0x546d_966b,
                3,
            ),
        ];
        for (key, hash, partition) in cases {
            let shown = String::from_utf8_lossy(key);
            assert_eq!(murmur2(key), hash, "murmur2({shown:?})");
            assert_eq!(java_partition(key, 4), partition, "partition of {shown:?}");
        }
    }
}
