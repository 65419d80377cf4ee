//! A DDSketch-style quantile sketch for durations, with a relative-error
//! guarantee: every quantile it returns is within 1 % of the true value at
//! that rank (for values of at least 1/1024 ms; smaller ones count as 0).
//!
//! Values fall into bins whose bounds grow geometrically; a quantile walks the
//! bin counts and answers with a value of its bin. Bin counts add on merge, so
//! merging is exact: the merge of two sketches is the sketch of all values.
//!
//! The bin of a value comes from its IEEE-754 bits, without a logarithm: in
//! `x = 2^e * (1 + f)` the function `l(x) = e + f` is a piecewise-linear
//! approximation of `log2(x)`, and the bin is `floor(50 * l(x))`. A bin spans
//! 1/50 in `l`, and since `d ln(x) / d l` is at most 1, at most
//! 1/50 = 0.02 <= ln(1.01 / 0.99) in `ln(x)`: a bin's upper bound is at most
//! 1.0202 times its lower bound, and the harmonic mean of the bounds that a
//! quantile returns is within 1 % of anything in the bin. Only exact
//! operations go into the bin index, so every platform and Rust version puts a
//! value in the same bin.

use super::codec::{DecodeError, Reader, decode_exact, put_varint, put_zigzag};

/// The relative error bound of every quantile (see the module docs).
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bins per power of two.
const BINS_PER_OCTAVE: f64 = 50.0;
/// The smallest value that gets a bin, 2^-10 ms (about 1 µs).
const MIN_BINNED: f64 = 1.0 / 1024.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantileSketch {
    /// Values below [`MIN_BINNED`], including 0.
    zero_count: u64,
    /// (bin, count) sorted by bin; counts are non-zero.
    bins: Vec<(i32, u64)>,
}

fn bin_of(value: f64) -> i32 {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7FF) as i32 - 1023;
    let fraction = (bits & ((1 << 52) - 1)) as f64 / (1u64 << 52) as f64;
    ((f64::from(exponent) + fraction) * BINS_PER_OCTAVE).floor() as i32
}

/// The inverse of `l`: the value whose `l` is `position`.
fn value_at(position: f64) -> f64 {
    let exponent = position.floor();
    (1.0 + position - exponent) * 2f64.powi(exponent as i32)
}

fn representative(bin: i32) -> f64 {
    let low = value_at(f64::from(bin) / BINS_PER_OCTAVE);
    let high = value_at(f64::from(bin + 1) / BINS_PER_OCTAVE);
    2.0 * low * high / (low + high)
}

impl QuantileSketch {
    /// Adds a value; negative, NaN and values below 1/1024 count as 0.
    pub fn insert(&mut self, value: f64) {
        self.add_to(value, 1);
    }

    fn add_to(&mut self, value: f64, count: u64) {
        if value.is_nan() || value < MIN_BINNED || value.is_infinite() {
            self.zero_count += count;
            return;
        }
        self.add_bin(bin_of(value), count);
    }

    fn add_bin(&mut self, bin: i32, count: u64) {
        match self.bins.binary_search_by_key(&bin, |(b, _)| *b) {
            Ok(at) => self.bins[at].1 += count,
            Err(at) => self.bins.insert(at, (bin, count)),
        }
    }

    pub fn count(&self) -> u64 {
        self.zero_count + self.bins.iter().map(|(_, count)| count).sum::<u64>()
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        self.zero_count += other.zero_count;
        // Readers add many small partials into one large sketch: each bin
        // of a small one is found (or inserted) in place, rather than the
        // whole large one copied per partial.
        if other.bins.len() * 16 < self.bins.len() {
            for &(bin, count) in &other.bins {
                match self.bins.binary_search_by_key(&bin, |(b, _)| *b) {
                    Ok(index) => self.bins[index].1 += count,
                    Err(index) => self.bins.insert(index, (bin, count)),
                }
            }
            return;
        }
        let mut merged = Vec::with_capacity(self.bins.len() + other.bins.len());
        let (mut left, mut right) = (self.bins.iter().peekable(), other.bins.iter().peekable());
        loop {
            let next = match (left.peek(), right.peek()) {
                (Some(a), Some(b)) if a.0 == b.0 => {
                    let bin = (a.0, a.1 + b.1);
                    left.next();
                    right.next();
                    bin
                }
                (Some(a), Some(b)) if a.0 < b.0 => *left.next().expect("peeked"),
                (Some(_), Some(_)) | (None, Some(_)) => *right.next().expect("peeked"),
                (Some(_), None) => *left.next().expect("peeked"),
                (None, None) => break,
            };
            merged.push(next);
        }
        self.bins = merged;
    }

    /// The value at quantile `q` (0 to 1) of the values added: the one at
    /// rank `floor(q * (count - 1))` in sorted order, within 1 %. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (count - 1) as f64).floor() as u64;
        if rank < self.zero_count {
            return Some(0.0);
        }
        let mut seen = self.zero_count;
        for (bin, bin_count) in &self.bins {
            seen += bin_count;
            if rank < seen {
                return Some(representative(*bin));
            }
        }
        self.bins.last().map(|(bin, _)| representative(*bin))
    }

    /// Appends the stored form: the zero count, then (bin delta, count) pairs.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.zero_count);
        put_varint(out, self.bins.len() as u64);
        let mut previous = 0i64;
        for (bin, count) in &self.bins {
            put_zigzag(out, i64::from(*bin) - previous);
            put_varint(out, *count);
            previous = i64::from(*bin);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let zero_count = reader.varint()?;
        let len = reader.length(2)?;
        let mut bins = Vec::with_capacity(len);
        let mut bin = 0i64;
        for n in 0..len {
            let delta = reader.zigzag()?;
            if n > 0 && delta <= 0 {
                return Err(DecodeError("quantile bins not increasing"));
            }
            bin = bin.checked_add(delta).ok_or(DecodeError("quantile bin"))?;
            let bin = i32::try_from(bin).map_err(|_| DecodeError("quantile bin"))?;
            let count = reader.varint()?;
            if count == 0 {
                return Err(DecodeError("empty quantile bin"));
            }
            bins.push((bin, count));
        }
        Ok(Self { zero_count, bins })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, Self::decode)
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<(i32, u64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn every_quantile_is_within_the_relative_accuracy() {
        let mut values: Vec<f64> = (0..20_000u32)
            .map(|n| (f64::from(n) * 0.737).powf(1.7) % 1e9 + 0.01)
            .collect();
        let mut sketch = QuantileSketch::default();
        for value in &values {
            sketch.insert(*value);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (got, want) = (sketch.quantile(q).unwrap(), exact_quantile(&values, q));
            assert!(
                (got - want).abs() <= RELATIVE_ACCURACY * want,
                "q{q}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn every_bin_is_narrow_enough() {
        for bin in -500..2_100 {
            let (low, high) = (
                value_at(f64::from(bin) / BINS_PER_OCTAVE),
                value_at(f64::from(bin + 1) / BINS_PER_OCTAVE),
            );
            assert!(high / low <= 1.0203, "bin {bin}");
            assert_eq!(bin_of(low * 1.000_000_1), bin, "low edge of {bin}");
            assert!((representative(bin) - low) / low <= RELATIVE_ACCURACY);
            assert!((high - representative(bin)) / high <= RELATIVE_ACCURACY);
        }
    }

    #[test]
    fn zeros_and_empty() {
        let mut sketch = QuantileSketch::default();
        assert_eq!(sketch.quantile(0.5), None);
        for value in [0.0, -3.0, f64::NAN, 1e-9, 1e12] {
            sketch.insert(value);
        }
        assert_eq!(sketch.count(), 5);
        assert_eq!(sketch.quantile(0.5), Some(0.0));
        let top = sketch.quantile(1.0).unwrap();
        assert!((top - 1e12).abs() <= 1e10);
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut sketch = QuantileSketch::default();
        for value in [0.0, 0.5, 3.0, 3.0, 7e6] {
            sketch.insert(value);
        }
        let bytes = sketch.to_bytes();
        assert_eq!(QuantileSketch::from_bytes(&bytes), Ok(sketch));
        for bad in [
            &[][..],
            &[0, 1],
            &[0, 2, 2, 1, 0, 1],
            &[0, 1, 2, 0],
            &[0, 0, 9],
        ] {
            assert!(QuantileSketch::from_bytes(bad).is_err(), "{bad:?}");
        }
    }

    /// Merging a small sketch into a large one in place gives what merging
    /// the two evenly does.
    #[test]
    fn small_into_large_merges_like_even_merges() {
        let mut large = QuantileSketch::default();
        for n in 0..5_000 {
            large.insert(f64::from(n) * 0.37);
        }
        let mut small = QuantileSketch::default();
        for value in [0.0, 0.2, 1.0, 1.0, 999.0, 5e6, 2.5e7] {
            small.insert(value);
        }
        assert!(small.bins.len() * 16 < large.bins.len());
        let mut in_place = large.clone();
        in_place.merge(&small);
        let mut even = small.clone();
        even.merge(&large);
        assert_eq!(in_place, even);
        assert_eq!(in_place.count(), 5_007);
    }
}
