//! Unique users and sessions: an exact set of 64-bit hashes that becomes a
//! HyperLogLog when it grows.
//!
//! - Up to [`EXACT_MAX`] (4,096) distinct values a sketch keeps the values'
//!   64-bit hashes ([`hash64`] under a fixed seed), so its count is exact:
//!   exact up to a collision of the 64-bit hash, which for `n` values has a
//!   probability below n² / 2^65 (below 5 · 10^-13 at 4,096, below
//!   5 · 10^-17 at 40).
//! - Above that it is a HyperLogLog of precision 14: 16,384 one-byte
//!   registers, a relative standard error of 1.04 / sqrt(16384) ≈ 0.81 %
//!   (about 98 % of estimates within 2.4 %); counts below about 40,000 are
//!   estimated by linear counting, whose error is smaller still (about 0.6 %
//!   just above 4,096).
//!
//! Merging is exact: the merge of two sketches is the sketch of the union of
//! their values, in any order and grouping. Two exact sets merge into their
//! union while it holds at most [`EXACT_MAX`] values, else into the registers
//! of the union; registers take the maximum on merge.
//!
//! The stored form ([`Hll::to_bytes`]) starts with a tag that says which form
//! follows; the representation depends only on the values (the set, or the
//! registers), so equal sketches encode to equal bytes.
//!
//! - Tag 3 (this version): the exact set. A varint count `n`, then the sorted
//!   hashes as Golomb-Rice coded gaps: the first hash, then each hash minus
//!   the previous one minus 1, each as `gap >> k` in unary (that many 0 bits,
//!   then a 1 bit) and the low `k` bits of the gap, most significant bit
//!   first, with `k = 63 - floor(log2 n)`; zero bits pad the last byte. About
//!   `65.5 - log2 n` bits a value: 9 bytes for one value, 123 for 16, 740
//!   for 100, 7 KB for 1,000, 27 KB for 4,096 (the minimum for a set of `n`
//!   random 64-bit values is about `65.4 - log2 n` bits each).
//! - Tag 2 (both versions): the 16,384 registers, one byte each (16,385
//!   bytes with the tag), for a sketch of more than [`EXACT_MAX`] values with
//!   more than 1,024 registers set (in practice: all of them).
//! - Tag 1 (the first version, still read): sorted (index, rank) pairs of
//!   the set registers, up to 1,024 of them. The first version stored every
//!   sketch with few registers this way, dropping the values: two values with
//!   the same 14-bit register index counted once, so about one small cell in
//!   a thousand counted one value too few. Sketches read from tag 1 (or from
//!   a tag 2 the first version wrote) stay registers, and so does anything
//!   merged with them: ranges that include rows stored by the first version
//!   are estimates, nearly exact for a few hundred values.
//!
//! An empty sketch of any tag reads as the empty exact set.

use super::codec::{DecodeError, Reader, decode_exact, put_varint};
use super::hash::{fmix64, hash64};

pub const PRECISION: u32 = 14;
const REGISTERS: usize = 1 << PRECISION;
/// The most distinct values a sketch counts exactly: past this many it
/// becomes registers. "A few thousand"; at 4,096 the exact form's stored
/// bytes (27 KB) are 1.7 times the registers' (16 KB), which they equal
/// near 2,400 values.
pub const EXACT_MAX: usize = 4_096;
/// Beyond this many set registers the dense form is smaller and faster.
const SPARSE_MAX: usize = 1_024;
/// The hash seed of every HyperLogLog value; part of the stored format.
const SEED: u64 = 0x51_u64;

const TAG_SPARSE: u8 = 1;
const TAG_DENSE: u8 = 2;
const TAG_EXACT: u8 = 3;

#[derive(Debug, Clone)]
pub struct Hll(Repr);

#[derive(Debug, Clone)]
enum Repr {
    /// At most [`EXACT_MAX`] distinct hashes.
    Exact(Exact),
    /// `index << 8 | rank`, sorted, ranks non-zero, at most [`SPARSE_MAX`]
    /// (only from a stored tag 1 or a merge with one).
    Sparse(Vec<u32>),
    Dense(Box<[u8]>),
}

/// A set of hashes: a hash table with linear probing, 3/8 to 3/4 full (11
/// to 22 bytes a value, at most 64 KB), in slots indexed by a per-process
/// random mix of the hash, so that ids chosen for their hashes to share
/// slots are hard to find; 0 marks an empty slot, and the hash 0 is `zero`.
/// The layout is no part of any output: the stored form is sorted.
#[derive(Debug, Clone, Default)]
struct Exact {
    /// Empty, or a power of two of slots.
    slots: Vec<u64>,
    /// Values in `slots`.
    filled: usize,
    zero: bool,
}

/// The seed of [`Exact`]'s slot mix, random per process.
fn slot_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x51);
        hasher.finish()
    })
}

impl Exact {
    fn len(&self) -> usize {
        self.filled + usize::from(self.zero)
    }

    fn slot(&self, hash: u64) -> usize {
        fmix64(hash ^ slot_seed()) as usize & (self.slots.len() - 1)
    }

    /// Adds `hash`; true if it was not there.
    fn insert(&mut self, hash: u64) -> bool {
        if hash == 0 {
            return !std::mem::replace(&mut self.zero, true);
        }
        if (self.filled + 1) * 4 > self.slots.len() * 3 {
            if self.contains(hash) {
                return false;
            }
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot(hash);
        loop {
            match self.slots[at] {
                0 => {
                    self.slots[at] = hash;
                    self.filled += 1;
                    return true;
                }
                slot if slot == hash => return false,
                _ => at = (at + 1) & mask,
            }
        }
    }

    fn contains(&self, hash: u64) -> bool {
        if hash == 0 {
            return self.zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut at = self.slot(hash);
        loop {
            match self.slots[at] {
                0 => return false,
                slot if slot == hash => return true,
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Doubles the slots (at least 8).
    fn grow(&mut self) {
        self.resize((self.slots.len() * 2).max(8));
    }

    /// Moves the values to `slots` (a power of two, enough for them) slots.
    fn resize(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.slots, vec![0; slots]);
        self.filled = 0;
        for hash in old.into_iter().filter(|hash| *hash != 0) {
            self.insert(hash);
        }
    }

    /// Every hash, in no particular order.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let zero = self.zero.then_some(0);
        zero.into_iter()
            .chain(self.slots.iter().copied().filter(|hash| *hash != 0))
    }

    /// Every hash, sorted.
    fn sorted(&self) -> Vec<u64> {
        let mut hashes: Vec<u64> = self.iter().collect();
        hashes.sort_unstable();
        hashes
    }
}

impl Default for Hll {
    fn default() -> Self {
        Self(Repr::Exact(Exact::default()))
    }
}

impl PartialEq for Hll {
    /// The same values (an exact set) or the same registers.
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Exact(mine), Repr::Exact(theirs)) => {
                mine.len() == theirs.len() && mine.iter().all(|hash| theirs.contains(hash))
            }
            (Repr::Exact(_), _) | (_, Repr::Exact(_)) => self.is_empty() && other.is_empty(),
            _ => self.registers().eq(other.registers()),
        }
    }
}

/// The register index (top 14 bits) and rank (position of the first set bit
/// in the remaining 50, from 1 to 51) of a 64-bit hash.
fn index_and_rank(hash: u64) -> (usize, u8) {
    let index = (hash >> (64 - PRECISION)) as usize;
    let rest = (hash << PRECISION) | (1 << (PRECISION - 1));
    (index, rest.leading_zeros() as u8 + 1)
}

/// The register index and rank of a sparse entry.
fn split(entry: u32) -> (usize, u8) {
    ((entry >> 8) as usize, entry as u8)
}

/// The union of two sorted sparse entry lists: for an index in both, the
/// higher rank, which is the larger entry (`index << 8 | rank`).
fn merge_sparse(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        match (x >> 8).cmp(&(y >> 8)) {
            std::cmp::Ordering::Less => {
                merged.push(x);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                merged.push(y);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                merged.push(x.max(y));
                i += 1;
                j += 1;
            }
        }
    }
    merged.extend_from_slice(&a[i..]);
    merged.extend_from_slice(&b[j..]);
    merged
}

/// The Rice parameter of a set of `n` (at least 1) hashes: the gaps average
/// 2^64 / n, and `k = 63 - floor(log2 n)` puts 2^k between half and all of
/// that, about 1.5 bits a value above the entropy of the gaps.
fn rice_bits(n: u64) -> u32 {
    n.leading_zeros()
}

/// Writes bits, most significant first, into whole bytes.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// The low `len` bits are not yet written (higher bits are stale).
    acc: u128,
    len: u32,
}

impl BitWriter<'_> {
    /// The low `count` (at most 64) bits of `value`.
    fn put(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 64 && (count == 64 || value >> count == 0));
        self.acc = (self.acc << count) | u128::from(value);
        self.len += count;
        while self.len >= 8 {
            self.len -= 8;
            self.out.push((self.acc >> self.len) as u8);
        }
    }

    /// `q` zero bits, then a one bit.
    fn unary(&mut self, mut q: u64) {
        while q >= 64 {
            self.put(0, 64);
            q -= 64;
        }
        self.put(1, q as u32 + 1);
    }

    /// Pads the last byte with zero bits.
    fn finish(self) {
        if self.len > 0 {
            self.out.push((self.acc << (8 - self.len)) as u8);
        }
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Bits read.
    pos: usize,
}

impl BitReader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }

    /// The next 64 bits, zeros past the end.
    fn window(&self) -> u64 {
        let start = self.pos / 8;
        let word = match self.bytes.get(start..start + 16) {
            Some(sixteen) => u128::from_be_bytes(sixteen.try_into().expect("16 bytes")),
            None => {
                let mut padded = [0u8; 16];
                let tail = &self.bytes[start.min(self.bytes.len())..];
                padded[..tail.len()].copy_from_slice(tail);
                u128::from_be_bytes(padded)
            }
        };
        ((word << (self.pos % 8)) >> 64) as u64
    }

    /// `count` (at most 63) bits.
    fn bits(&mut self, count: u32) -> Result<u64, DecodeError> {
        if self.remaining() < count as usize {
            return Err(DecodeError("truncated"));
        }
        let value = match count {
            0 => 0,
            _ => self.window() >> (64 - count),
        };
        self.pos += count as usize;
        Ok(value)
    }

    /// A Rice-coded number with `k` (at most 63) low bits: a unary high
    /// part, then the low bits; one 64-bit window when it fits in one.
    fn rice(&mut self, k: u32) -> Result<u64, DecodeError> {
        let window = self.window();
        let zeros = window.leading_zeros();
        let used = zeros as usize + 1 + k as usize;
        if used <= 64 && used <= self.remaining() {
            self.pos += used;
            let low = match k {
                0 => 0,
                _ => (window << (zeros + 1)) >> (64 - k),
            };
            return Ok((u64::from(zeros) << k) | low);
        }
        let high = self.unary(u64::MAX >> k)?;
        Ok((high << k) | self.bits(k)?)
    }

    /// A unary number (zero bits up to a one bit) of at most `max`.
    fn unary(&mut self, max: u64) -> Result<u64, DecodeError> {
        let mut q = 0u64;
        loop {
            let available = self.remaining().min(64);
            if available == 0 {
                return Err(DecodeError("truncated"));
            }
            let zeros = self.window().leading_zeros() as usize;
            if zeros < available {
                q += zeros as u64;
                self.pos += zeros + 1;
                break;
            }
            q += available as u64;
            self.pos += available;
            if q > max {
                break;
            }
        }
        if q > max {
            return Err(DecodeError("HLL hash out of range"));
        }
        Ok(q)
    }
}

/// Appends tag 3 and the set of sorted, strictly increasing `hashes`.
fn put_exact(out: &mut Vec<u8>, hashes: &[u64]) {
    out.push(TAG_EXACT);
    put_varint(out, hashes.len() as u64);
    let Some(n) = std::num::NonZeroU64::new(hashes.len() as u64) else {
        return;
    };
    let k = rice_bits(n.get());
    let mut bits = BitWriter {
        out,
        acc: 0,
        len: 0,
    };
    let mut next = 0u64;
    for &hash in hashes {
        let gap = hash - next;
        bits.unary(gap >> k);
        bits.put(gap & ((1u64 << k) - 1), k);
        next = hash.wrapping_add(1);
    }
    bits.finish();
}

/// Reads the rest of a tag 3 (after the tag): the count goes to `item`,
/// then each hash, in increasing order.
fn read_exact(reader: &mut Reader<'_>, mut item: impl FnMut(Item)) -> Result<(), DecodeError> {
    let n = reader.varint()?;
    if n == 0 {
        return Ok(());
    }
    let k = rice_bits(n);
    // Every value takes at least k + 1 bits: refuse a count the input
    // cannot hold before reading (or allocating for) any of it.
    if u128::from(n) * u128::from(k + 1) > reader.0.len() as u128 * 8 {
        return Err(DecodeError("length beyond the input"));
    }
    item(Item::Hashes(n));
    let mut bits = BitReader {
        bytes: reader.0,
        pos: 0,
    };
    let mut next = 0u128;
    for _ in 0..n {
        let gap = bits.rice(k)?;
        let value = next + u128::from(gap);
        let value = u64::try_from(value).map_err(|_| DecodeError("HLL hash out of range"))?;
        item(Item::Hash(value));
        next = u128::from(value) + 1;
    }
    let used = bits.pos.div_ceil(8);
    // The bits of the last byte after the last value (n > 0, so used > 0).
    let padding = (1u16 << (used * 8 - bits.pos)) - 1;
    if u16::from(reader.0[used - 1]) & padding != 0 {
        return Err(DecodeError("HLL padding bits set"));
    }
    reader.bytes(used)?;
    Ok(())
}

/// What a stored sketch holds, as [`read_encoded`] hands it over.
enum Item {
    Register(usize, u8),
    /// How many hashes follow.
    Hashes(u64),
    Hash(u64),
}

/// Reads a stored sketch: each set register of the sparse form, and each
/// hash of the exact form, goes to `item` in increasing order; the dense
/// form's registers are returned. Every register is checked.
fn read_encoded<'r>(
    reader: &'r mut Reader<'_>,
    mut item: impl FnMut(Item),
) -> Result<Option<&'r [u8]>, DecodeError> {
    match reader.byte()? {
        TAG_SPARSE => {
            let set = reader.length(2)?;
            let mut index = 0usize;
            for n in 0..set {
                let delta = reader.varint()? as usize;
                if n > 0 && delta == 0 {
                    return Err(DecodeError("HLL indexes not increasing"));
                }
                index = index.checked_add(delta).ok_or(DecodeError("HLL index"))?;
                let rank = reader.byte()?;
                if index >= REGISTERS || rank == 0 || rank > 51 {
                    return Err(DecodeError("HLL register out of range"));
                }
                item(Item::Register(index, rank));
            }
            Ok(None)
        }
        TAG_DENSE => {
            let registers = reader.bytes(REGISTERS)?;
            if registers.iter().any(|rank| *rank > 51) {
                return Err(DecodeError("HLL register out of range"));
            }
            Ok(Some(registers))
        }
        TAG_EXACT => {
            read_exact(reader, item)?;
            Ok(None)
        }
        _ => Err(DecodeError("unknown HLL tag")),
    }
}

/// Raises the registers of `registers` by `hash`.
fn raise_dense(registers: &mut [u8], hash: u64) {
    let (index, rank) = index_and_rank(hash);
    registers[index] = registers[index].max(rank);
}

impl Hll {
    /// Adds a value (e.g. a user id).
    pub fn insert(&mut self, value: &[u8]) {
        self.insert_hash(Self::hash(value));
    }

    /// The hash [`Self::insert_hash`] takes for `value`: for a value added
    /// to several sketches, hashed once.
    pub fn hash(value: &[u8]) -> u64 {
        hash64(SEED, value)
    }

    /// Adds a value by its [`hash64`] under this module's seed; for callers
    /// that already hashed it.
    pub fn insert_hash(&mut self, hash: u64) {
        match &mut self.0 {
            Repr::Exact(set) => {
                if set.insert(hash) && set.len() > EXACT_MAX {
                    self.densify();
                }
            }
            _ => {
                let (index, rank) = index_and_rank(hash);
                self.raise(index, rank);
            }
        }
    }

    /// Makes room for `n` more values in an exact set that may hold them.
    fn reserve(&mut self, n: u64) {
        if let Repr::Exact(set) = &mut self.0 {
            let wanted = set.len().saturating_add(n as usize).min(EXACT_MAX);
            if wanted * 4 > set.slots.len() * 3 {
                set.resize((wanted * 4).div_ceil(3).next_power_of_two());
            }
        }
    }

    /// Raises a register of a register form.
    fn raise(&mut self, index: usize, rank: u8) {
        match &mut self.0 {
            Repr::Dense(registers) => {
                registers[index] = registers[index].max(rank);
            }
            Repr::Sparse(entries) => {
                let position = entries.binary_search_by_key(&index, |e| (*e >> 8) as usize);
                match position {
                    Ok(at) => {
                        let old = entries[at] as u8;
                        if rank > old {
                            entries[at] = ((index as u32) << 8) | u32::from(rank);
                        }
                    }
                    Err(at) => {
                        entries.insert(at, ((index as u32) << 8) | u32::from(rank));
                        if entries.len() > SPARSE_MAX {
                            self.densify();
                        }
                    }
                }
            }
            Repr::Exact(_) => unreachable!("raise is for the register forms"),
        }
    }

    /// Turns any form into the dense registers.
    fn densify(&mut self) {
        let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
        match &self.0 {
            Repr::Exact(set) => set
                .iter()
                .for_each(|hash| raise_dense(&mut registers, hash)),
            _ => {
                for (index, rank) in self.registers() {
                    registers[index] = rank;
                }
            }
        }
        self.0 = Repr::Dense(registers);
    }

    /// The set registers of a register form, (index, rank) in index order.
    fn registers(&self) -> Box<dyn Iterator<Item = (usize, u8)> + '_> {
        match &self.0 {
            Repr::Sparse(entries) => {
                Box::new(entries.iter().map(|e| ((*e >> 8) as usize, *e as u8)))
            }
            Repr::Dense(registers) => Box::new(
                registers
                    .iter()
                    .enumerate()
                    .filter(|(_, rank)| **rank > 0)
                    .map(|(index, rank)| (index, *rank)),
            ),
            Repr::Exact(_) => unreachable!("registers of an exact set"),
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Self) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            *self = other.clone();
            return;
        }
        match (&mut self.0, &other.0) {
            (Repr::Exact(mine), Repr::Sparse(_) | Repr::Dense(_)) => {
                // The values meet registers: the union is registers.
                let mine = std::mem::take(mine);
                *self = other.clone();
                mine.iter().for_each(|hash| self.insert_hash(hash));
            }
            (_, Repr::Exact(theirs)) => theirs.iter().for_each(|hash| self.insert_hash(hash)),
            (Repr::Dense(mine), Repr::Dense(theirs)) => {
                for (mine, theirs) in mine.iter_mut().zip(theirs.iter()) {
                    *mine = (*mine).max(*theirs);
                }
            }
            (Repr::Dense(mine), Repr::Sparse(theirs)) => {
                for entry in theirs {
                    let (index, rank) = split(*entry);
                    mine[index] = mine[index].max(rank);
                }
            }
            (Repr::Sparse(_), Repr::Dense(_)) => {
                self.densify();
                self.merge(other);
            }
            (Repr::Sparse(mine), Repr::Sparse(theirs)) => {
                *mine = merge_sparse(mine, theirs);
                if mine.len() > SPARSE_MAX {
                    self.densify();
                }
            }
        }
    }

    /// The number of distinct values: exact for the exact set, else
    /// estimated (see the module docs for the error).
    pub fn estimate(&self) -> u64 {
        // Registers counted by rank, then summed by rank: the result does
        // not depend on history, and the counting loop is branch-free.
        let mut by_rank = [0u32; 64];
        match &self.0 {
            Repr::Exact(set) => return set.len() as u64,
            Repr::Sparse(entries) => {
                for entry in entries {
                    by_rank[usize::from(split(*entry).1 & 63)] += 1;
                }
            }
            Repr::Dense(registers) => {
                for rank in registers.iter() {
                    by_rank[usize::from(rank & 63)] += 1;
                }
            }
        }
        let m = REGISTERS as f64;
        let set: u32 = by_rank[1..].iter().sum();
        let zeros = REGISTERS - set as usize;
        let mut sum = zeros as f64;
        for (rank, count) in by_rank.iter().enumerate().skip(1) {
            // 2^-rank, exactly.
            sum += f64::from(*count) * f64::from_bits((1023 - rank as u64) << 52);
        }
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }

    /// Whether [`Self::estimate`] is the exact count (up to a collision of
    /// the 64-bit hash): the sketch holds at most [`EXACT_MAX`] values, and
    /// neither it nor a sketch merged into it was registers.
    pub fn is_exact(&self) -> bool {
        matches!(self.0, Repr::Exact(_))
    }

    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Exact(set) => set.len() == 0,
            _ => self.registers().next().is_none(),
        }
    }

    /// Appends the stored form (see the module docs): the exact set, or
    /// registers, sparse up to 1,024 set, else all 16,384 as bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        if let Repr::Exact(set) = &self.0 {
            put_exact(out, &set.sorted());
            return;
        }
        let set = self.registers().count();
        if set <= SPARSE_MAX {
            out.push(TAG_SPARSE);
            put_varint(out, set as u64);
            let mut previous = 0;
            for (index, rank) in self.registers() {
                put_varint(out, (index - previous) as u64);
                out.push(rank);
                previous = index;
            }
        } else {
            out.push(TAG_DENSE);
            let mut registers = vec![0u8; REGISTERS];
            for (index, rank) in self.registers() {
                registers[index] = rank;
            }
            out.extend_from_slice(&registers);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut entries = Vec::new();
        // Past EXACT_MAX values (a future version's) it becomes registers.
        let mut exact = Self::default();
        // Indexes only increase, so the list stays sorted.
        let dense = read_encoded(reader, |item| match item {
            Item::Register(index, rank) => entries.push(((index as u32) << 8) | u32::from(rank)),
            Item::Hashes(n) => exact.reserve(n),
            Item::Hash(hash) => exact.insert_hash(hash),
        })?;
        let mut hll = match dense {
            Some(registers) => Self(Repr::Dense(registers.into())),
            None if !entries.is_empty() => Self(Repr::Sparse(entries)),
            None => exact,
        };
        match &hll.0 {
            Repr::Sparse(entries) if entries.len() > SPARSE_MAX => hll.densify(),
            Repr::Dense(_) if hll.is_empty() => hll = Self::default(),
            _ => {}
        }
        Ok(hll)
    }

    /// Adds the values of a stored sketch, as `merge` with its decoded
    /// form would, without building that form: the values of an exact set
    /// go in one by one, and registers straight into dense registers. On
    /// an error this sketch may hold part of the input: discard it.
    pub fn merge_bytes(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        if bytes.first() == Some(&TAG_EXACT) {
            return decode_exact(bytes, |reader| {
                reader.byte()?;
                read_exact(reader, |item| {
                    if let Item::Hash(hash) = item {
                        self.insert_hash(hash);
                    }
                })
            });
        }
        let Repr::Dense(mine) = &mut self.0 else {
            let other = Self::from_bytes(bytes)?;
            self.merge(&other);
            return Ok(());
        };
        decode_exact(bytes, |reader| {
            let dense = read_encoded(reader, |item| match item {
                Item::Register(index, rank) => mine[index] = mine[index].max(rank),
                Item::Hashes(_) => {}
                Item::Hash(hash) => raise_dense(mine, hash),
            })?;
            for (mine, theirs) in mine.iter_mut().zip(dense.unwrap_or_default()) {
                *mine = (*mine).max(*theirs);
            }
            Ok(())
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, Self::decode)
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Exact(set) => set.slots.capacity() * 8,
            Repr::Sparse(entries) => entries.capacity() * 4,
            Repr::Dense(registers) => registers.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn id(n: u32) -> String {
        format!("user-{n}")
    }

    fn of(range: std::ops::Range<u32>) -> Hll {
        let mut hll = Hll::default();
        for n in range {
            hll.insert(id(n).as_bytes());
        }
        hll
    }

    /// The registers of the values, as the first version kept them (the
    /// form read from its tag 1 and tag 2).
    fn legacy(ids: impl IntoIterator<Item = String>) -> Hll {
        let mut hll = Hll(Repr::Sparse(Vec::new()));
        for id in ids {
            let (index, rank) = index_and_rank(Hll::hash(id.as_bytes()));
            hll.raise(index, rank);
        }
        if hll.is_empty() { Hll::default() } else { hll }
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn small_counts_are_exact() {
        assert_eq!(Hll::default().estimate(), 0);
        assert_eq!(of(0..1).estimate(), 1);
        assert_eq!(of(0..100).estimate(), 100);
        // The first version said 1,005 here.
        assert_eq!(of(0..1_000).estimate(), 1_000);
        let mut repeated = of(0..10);
        repeated.merge(&of(0..10));
        assert_eq!(repeated.estimate(), 10);
        for n in [EXACT_MAX as u32 - 1, EXACT_MAX as u32] {
            let hll = of(0..n);
            assert!(hll.is_exact());
            assert_eq!(hll.estimate(), u64::from(n));
        }
    }

    /// Issue 17: two ids whose hashes share the 14-bit register index
    /// counted once in the first version's sparse form.
    #[test]
    fn ids_sharing_a_register_count_twice() {
        // The first two ids `user-N` whose register indexes are equal,
        // found by a deterministic search.
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u32..)
            .find_map(|n| {
                let index = index_and_rank(Hll::hash(id(n).as_bytes())).0;
                seen.insert(index, n).map(|first| (first, n))
            })
            .unwrap();
        assert_eq!((a, b), (82, 357));
        let pair = || [id(a), id(b)];
        // The first version: one register, a count of 1; these are the
        // bytes its encoder wrote for the pair.
        assert_eq!(legacy(pair()).estimate(), 1);
        assert_eq!(legacy(pair()).to_bytes(), unhex("0101dc7003"));
        let mut exact = Hll::default();
        pair().iter().for_each(|id| exact.insert(id.as_bytes()));
        assert_eq!(exact.estimate(), 2);
        // Stored apart and merged, as partials of two Kafka partitions.
        let mut merged = Hll::default();
        for id in pair() {
            let mut partial = Hll::default();
            partial.insert(id.as_bytes());
            merged.merge_bytes(&partial.to_bytes()).unwrap();
        }
        assert_eq!(merged.estimate(), 2);
        // The report's example: 16 users, 15 counted.
        let sixteen: Vec<String> = [a, b].into_iter().chain(0..14).map(id).collect();
        assert_eq!(legacy(sixteen.clone()).estimate(), 15);
        let mut exact = Hll::default();
        sixteen.iter().for_each(|id| exact.insert(id.as_bytes()));
        assert_eq!(exact.estimate(), 16);
    }

    #[test]
    fn large_counts_are_within_the_stated_error() {
        for n in [EXACT_MAX as u32 + 1, 4_500, 5_000, 50_000, 400_000] {
            let hll = of(0..n);
            assert!(!hll.is_exact());
            let estimate = hll.estimate() as f64;
            let error = (estimate - f64::from(n)).abs() / f64::from(n);
            // Three standard errors.
            assert!(error < 0.025, "{n}: {estimate}");
        }
    }

    #[test]
    fn past_the_threshold_the_set_becomes_registers() {
        let limit = EXACT_MAX as u32;
        let over = of(0..limit + 1);
        assert_eq!(over.to_bytes().len(), REGISTERS + 1);
        assert_eq!(over, legacy((0..limit + 1).map(id)));
        // Two exact halves whose union is too large.
        let mut merged = of(0..limit / 2 + 1);
        merged.merge(&of(limit / 2..limit + 1));
        assert_eq!(merged.to_bytes(), over.to_bytes());
        let mut from_bytes = of(0..limit);
        from_bytes
            .merge_bytes(&of(limit..limit + 1).to_bytes())
            .unwrap();
        assert_eq!(from_bytes.to_bytes(), over.to_bytes());
        // A stored exact set larger than this version keeps (a future
        // version's) reads as the registers of its values.
        let mut sorted: Vec<u64> = (0..=limit).map(|n| Hll::hash(id(n).as_bytes())).collect();
        sorted.sort_unstable();
        let mut bytes = Vec::new();
        put_exact(&mut bytes, &sorted);
        assert_eq!(Hll::from_bytes(&bytes).unwrap(), over);
    }

    /// Stored bytes of the exact form: about 65.5 - log2(n) bits a value.
    #[test]
    fn exact_form_sizes() {
        for (n, at_most) in [
            (0u32, 2usize),
            (1, 11),
            (16, 130),
            (100, 750),
            (1_000, 7_000),
            (4_096, 27_700),
        ] {
            let len = of(0..n).to_bytes().len();
            eprintln!("{n} values: {len} bytes");
            assert!(len <= at_most, "{n} values: {len} bytes");
            if n > 1 {
                // Without the tag and the count.
                let header = 1 + if n < 128 { 1 } else { 2 };
                let bits_each = ((len - header) * 8) as f64 / f64::from(n);
                let bound = 65.5 - f64::from(n).log2() + 0.5;
                assert!(bits_each < bound, "{n} values: {bits_each} bits each");
            }
        }
    }

    /// Bytes the first version's encoder wrote (captured from it before the
    /// exact form existed) read as the registers they hold.
    #[test]
    fn sketches_of_the_first_version_still_read() {
        let vectors = [
            (0u32, "0100"),
            (1, "0101826902"),
            (3, "0103ad5401d51402ba0c01"),
            (
                16,
                "01109f0201f70b02ca0602e40e01fd0103f70203d80302f60101811b01a60b01d90901ba0403c20602920301a80901f50101",
            ),
            (
                50,
                "01329f0201890202f00203e906011502c30101870502fa0701bf0502ab0101fd0103da02021304\
                 0a03d80302b501014101d80101e80101820104950502ee0303a30102e60402d90201900106ca03\
                 011902ec0101eb0103bb0501fb01012a075601e005069101021801ac01012401ba0403c20602920\
                 301b30101d20101c80306db0201f5010148020e026e04",
            ),
        ];
        for (n, text) in vectors {
            let bytes = unhex(text);
            let stored = Hll::from_bytes(&bytes).unwrap();
            assert_eq!(stored, legacy((0..n).map(id)));
            assert_eq!(stored.estimate(), u64::from(n));
            assert_eq!(stored.is_exact(), n == 0, "registers stay registers");
            if n > 0 {
                assert_eq!(stored.to_bytes(), bytes);
            } else {
                assert_eq!(stored, Hll::default());
                assert_eq!(stored.to_bytes(), [TAG_EXACT, 0]);
            }
            // A new exact partial merged with an old one: the registers of
            // the union, whichever side, whichever way.
            let union = if n == 0 {
                of(0..30)
            } else {
                legacy((0..n + 30).map(id))
            };
            let fresh = of(n / 2..n + 30);
            for merged in [
                {
                    let mut m = stored.clone();
                    m.merge(&fresh);
                    m
                },
                {
                    let mut m = fresh.clone();
                    m.merge(&stored);
                    m
                },
                {
                    let mut m = fresh.clone();
                    m.merge_bytes(&bytes).unwrap();
                    m
                },
            ] {
                assert_eq!(merged.to_bytes(), union.to_bytes(), "{n}");
            }
        }
        // Larger sketches of the first version, by length and fingerprint:
        // the register forms still encode byte for byte as it did.
        for (n, len, fingerprint, estimate) in [
            (1_000u32, 1_954, 0xd288_ea07_efd4_0044, 1_005),
            (3_000, 16_385, 0x5f7f_1856_7e1f_cf99, 3_010),
            (5_000, 16_385, 0x0b43_83a7_62ea_6120, 5_032),
        ] {
            let old = legacy((0..n).map(id)).to_bytes();
            assert_eq!((old.len(), hash64(0, &old)), (len, fingerprint), "{n}");
            let stored = Hll::from_bytes(&old).unwrap();
            assert_eq!(stored.estimate(), estimate);
            assert_eq!(stored.to_bytes(), old);
        }
        // Past the threshold the new encoder writes what the old one did.
        let new = of(0..5_000).to_bytes();
        assert_eq!(hash64(0, &new), 0x0b43_83a7_62ea_6120);
    }

    #[test]
    fn estimates_sum_powers_of_two_exactly() {
        // 2^-rank from the bits equals the arithmetic power for every rank.
        for rank in 1u8..=51 {
            let bits = f64::from_bits((1023 - u64::from(rank)) << 52);
            assert_eq!(bits, 2f64.powi(-i32::from(rank)));
        }
    }

    #[test]
    fn every_form_round_trips_canonically() {
        for hll in [of(0..0), of(0..50), of(0..4_096), of(0..5_000)] {
            let bytes = hll.to_bytes();
            let back = Hll::from_bytes(&bytes).unwrap();
            assert_eq!(back, hll);
            assert_eq!(back.to_bytes(), bytes);
        }
        for n in [1u32, 50, 1_024, 1_500, 5_000] {
            let hll = legacy((0..n).map(id));
            let bytes = hll.to_bytes();
            assert_eq!(Hll::from_bytes(&bytes).unwrap(), hll);
            let mut dense = hll.clone();
            dense.densify();
            assert_eq!(dense.to_bytes(), bytes, "the encoding is canonical");
        }
        // Inserts in any order, with repeats, give the same bytes.
        let mut shuffled = Hll::default();
        for n in (0..3_000u32).rev().chain(0..100) {
            shuffled.insert(id((n * 7) % 3_000).as_bytes());
        }
        assert_eq!(shuffled.to_bytes(), of(0..3_000).to_bytes());
        assert_eq!(shuffled, of(0..3_000));
    }

    #[test]
    fn extreme_hashes_round_trip() {
        for hashes in [
            vec![0],
            vec![u64::MAX],
            vec![0, 1, 2, u64::MAX - 1, u64::MAX],
            (0..EXACT_MAX as u64).map(|n| u64::MAX - n).collect(),
            (0..EXACT_MAX as u64).collect(),
        ] {
            let mut hll = Hll::default();
            hashes.iter().for_each(|hash| hll.insert_hash(*hash));
            assert!(hll.is_exact());
            let bytes = hll.to_bytes();
            let back = Hll::from_bytes(&bytes).unwrap();
            assert_eq!(back, hll);
            assert_eq!(back.estimate(), hashes.len() as u64);
        }
    }

    #[test]
    fn rejects_garbage() {
        let one = of(0..1).to_bytes();
        let mut padded = one.clone();
        *padded.last_mut().unwrap() |= 1;
        for bad in [
            &[][..],
            &[9],
            &[TAG_SPARSE, 1, 0, 0],
            &[TAG_SPARSE, 2, 5, 1, 0, 1],
            &[TAG_DENSE, 1],
            &[TAG_SPARSE, 1, 0, 1, 7],
            // Exact: missing, truncated, counts the input cannot hold, a
            // gap past 2^64, padding bits set, trailing bytes.
            &[TAG_EXACT],
            &one[..one.len() - 1],
            &[TAG_EXACT, 2, 0xFF, 0xFF],
            &[TAG_EXACT, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2, 3],
            &[TAG_EXACT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[TAG_EXACT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x40],
            &padded,
            &[TAG_EXACT, 0, 0],
        ] {
            assert!(Hll::from_bytes(bad).is_err(), "{bad:?}");
            for mut target in [Hll::default(), of(0..10), of(0..5_000), legacy([id(1)])] {
                assert!(target.merge_bytes(bad).is_err(), "{bad:?}");
            }
        }
        // The largest gap and hash still read: one value, 2^64 - 1.
        let mut top = Hll::default();
        top.insert_hash(u64::MAX);
        assert_eq!(Hll::from_bytes(&top.to_bytes()).unwrap(), top);
    }

    fn ids_of(set: &std::collections::BTreeSet<u64>) -> Vec<String> {
        set.iter().map(|n| format!("id-{n:x}")).collect()
    }

    fn sketch<'a>(ids: impl IntoIterator<Item = &'a String>) -> Hll {
        let mut hll = Hll::default();
        ids.into_iter().for_each(|id| hll.insert(id.as_bytes()));
        hll
    }

    /// Set sizes across the whole exact range, small ones often.
    fn distinct_ids() -> impl Strategy<Value = std::collections::BTreeSet<u64>> {
        prop_oneof![
            prop::collection::btree_set(any::<u64>(), 0..=64),
            prop::collection::btree_set(any::<u64>(), 0..=EXACT_MAX),
            prop::collection::btree_set(any::<u64>(), EXACT_MAX - 64..=EXACT_MAX),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Issue 17: any set of up to EXACT_MAX distinct ids, split into any
        /// partials (an id may be in several), each stored and read back,
        /// merged in any order, counts exactly, and is the sketch of the
        /// whole set.
        #[test]
        fn up_to_the_threshold_partials_merge_into_an_exact_count(
            set in distinct_ids(),
            parts in 1usize..8,
            masks in prop::collection::vec(1u8.., EXACT_MAX),
            order in Just((0..8usize).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let ids = ids_of(&set);
            let whole = sketch(&ids);
            prop_assert!(whole.is_exact());
            prop_assert_eq!(whole.estimate(), ids.len() as u64);
            let partials: Vec<Vec<u8>> = (0..parts)
                .map(|part| {
                    // Each id goes to the parts its mask names (at least one).
                    let mine = ids.iter().zip(&masks).filter(|(_, mask)| {
                        let mask = (**mask as usize) % ((1 << parts) - 1) + 1;
                        mask & (1 << part) != 0
                    });
                    sketch(mine.map(|(id, _)| id)).to_bytes()
                })
                .collect();
            let in_order = order.iter().filter(|part| **part < parts);
            let mut merged = Hll::default();
            let mut merged_bytes = Hll::default();
            for part in in_order {
                merged.merge(&Hll::from_bytes(&partials[*part]).unwrap());
                merged_bytes.merge_bytes(&partials[*part]).unwrap();
            }
            prop_assert_eq!(merged.estimate(), ids.len() as u64);
            prop_assert_eq!(merged_bytes.estimate(), ids.len() as u64);
            prop_assert_eq!(merged.to_bytes(), whole.to_bytes());
            prop_assert_eq!(&merged_bytes, &whole);
            // And as a tree: halves merged first.
            let half = parts / 2;
            let mut left = Hll::default();
            let mut right = Hll::default();
            for (part, bytes) in partials.iter().enumerate() {
                let side = if part < half { &mut left } else { &mut right };
                side.merge_bytes(bytes).unwrap();
            }
            right.merge(&left);
            prop_assert_eq!(right, whole);
        }

        /// Merging gives the sketch of the union, whichever forms meet
        /// (exact sets, legacy registers sparse and dense, on either side).
        #[test]
        fn merging_is_the_sketch_of_the_union(
            a in 0u32..3_000, b in 0u32..3_000, overlap in 0u32..3_000,
            left_legacy in any::<bool>(), right_legacy in any::<bool>(),
        ) {
            let build = |range: std::ops::Range<u32>, old: bool| {
                if old { legacy(range.map(id)) } else { of(range) }
            };
            let left = build(0..a, left_legacy);
            let right = build(a.saturating_sub(overlap)..a + b, right_legacy);
            let union = build(0..a + b, (left_legacy && a > 0) || (right_legacy && b + a.min(overlap) > 0));
            let mut merged = left.clone();
            merged.merge(&right);
            prop_assert_eq!(merged.to_bytes(), union.to_bytes());
            prop_assert_eq!(merged.estimate(), union.estimate());
            let mut other_way = right.clone();
            other_way.merge(&left);
            prop_assert_eq!(other_way.to_bytes(), union.to_bytes());
            let mut from_bytes = left.clone();
            from_bytes.merge_bytes(&right.to_bytes()).unwrap();
            prop_assert_eq!(from_bytes.to_bytes(), union.to_bytes());
            let mut into_dense = of(0..0);
            into_dense.densify();
            into_dense.merge_bytes(&left.to_bytes()).unwrap();
            into_dense.merge_bytes(&right.to_bytes()).unwrap();
            prop_assert_eq!(into_dense.to_bytes(), legacy((0..a + b).map(id)).to_bytes());
        }

        /// Any set of hashes (extremes included) round-trips through the
        /// exact form.
        #[test]
        fn exact_sets_of_any_hashes_round_trip(
            hashes in prop::collection::btree_set(
                prop_oneof![any::<u64>(), 0u64..64, u64::MAX - 64..=u64::MAX],
                0..=EXACT_MAX,
            ),
        ) {
            let mut hll = Hll::default();
            for hash in hashes.iter().rev() {
                hll.insert_hash(*hash);
            }
            let bytes = hll.to_bytes();
            let back = Hll::from_bytes(&bytes).unwrap();
            prop_assert_eq!(back.estimate(), hashes.len() as u64);
            prop_assert_eq!(back.to_bytes(), bytes);
            let Repr::Exact(set) = &back.0 else { panic!("not exact") };
            prop_assert!(set.sorted().iter().eq(hashes.iter()));
        }

        /// Untrusted bytes never panic: random bytes, and stored sketches
        /// with bytes changed, cut or added, are refused or read as some
        /// sketch that round-trips.
        #[test]
        fn corrupt_bytes_never_panic(
            random in prop::collection::vec(any::<u8>(), 0..64),
            tag in 0u8..5,
            n in 0u32..300,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut tagged = random.clone();
            tagged.insert(0, tag);
            let mut edited = if n % 3 == 0 { legacy((0..n).map(id)) } else { of(0..n) }.to_bytes();
            for (at, byte, kind) in edits {
                let at = at.index(edited.len());
                match kind {
                    0 => edited[at] ^= byte.max(1),
                    1 => edited.insert(at, byte),
                    _ => { edited.remove(at); }
                }
            }
            let truncated = edited[..cut.index(edited.len() + 1)].to_vec();
            for bytes in [random, tagged, edited, truncated] {
                if let Ok(hll) = Hll::from_bytes(&bytes) {
                    let again = Hll::from_bytes(&hll.to_bytes()).unwrap();
                    prop_assert_eq!(&again, &hll);
                    let _ = hll.estimate();
                }
                for mut target in [Hll::default(), of(0..20), of(0..5_000), legacy([id(1)])] {
                    let _ = target.merge_bytes(&bytes);
                }
            }
        }
    }
}
