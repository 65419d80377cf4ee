//! The byte encoding shared by the sketches: LEB128 varints, zigzag for
//! signed values, and a reader that says what was missing.

use thiserror::Error;

/// Bytes that are not an encoding this module wrote.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid rollup encoding: {0}")]
pub struct DecodeError(pub &'static str);

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_zigzag(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

/// Decodes a whole byte string with `decode`, refusing trailing bytes.
pub fn decode_exact<T>(
    bytes: &[u8],
    decode: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut reader = Reader(bytes);
    let value = decode(&mut reader)?;
    if !reader.is_empty() {
        return Err(DecodeError("trailing bytes"));
    }
    Ok(value)
}

/// Reads from the front of a byte slice, advancing it.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    #[inline]
    pub fn byte(&mut self) -> Result<u8, DecodeError> {
        let (&first, rest) = self.0.split_first().ok_or(DecodeError("truncated"))?;
        self.0 = rest;
        Ok(first)
    }

    pub fn bytes(&mut self, len: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < len {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Sketch indexes and counts are mostly one or two bytes.
        match *self.0 {
            [first, ref rest @ ..] if first & 0x80 == 0 => {
                self.0 = rest;
                return Ok(u64::from(first));
            }
            [first, second, ref rest @ ..] if second & 0x80 == 0 => {
                self.0 = rest;
                return Ok(u64::from(first & 0x7F) | u64::from(second) << 7);
            }
            _ => {}
        }
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint longer than 64 bits"))
    }

    pub fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let raw = self.varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let bytes = self.bytes(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// A length that must fit in what is left, so hostile input cannot make
    /// the decoder allocate more than its own size.
    pub fn length(&mut self, min_bytes_each: usize) -> Result<usize, DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length"))?;
        if len.saturating_mul(min_bytes_each) > self.0.len() {
            return Err(DecodeError("length beyond the input"));
        }
        Ok(len)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader(&out).varint(), Ok(value));
        }
        for value in [0, -1, 1, i64::MIN, i64::MAX, -300] {
            let mut out = Vec::new();
            put_zigzag(&mut out, value);
            assert_eq!(Reader(&out).zigzag(), Ok(value));
        }
        assert!(Reader(&[0x80]).varint().is_err());
        assert!(Reader(&[0xFF; 11]).varint().is_err());
        assert!(Reader(&[200, 1]).length(1).is_err());
    }
}
