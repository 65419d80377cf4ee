//! Event time on the wire: RFC 3339 strings or integer epoch milliseconds in,
//! RFC 3339 with milliseconds in UTC out.

use std::fmt;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Parses an RFC 3339 timestamp (any offset) into epoch milliseconds. Also
/// takes ISO 8601's basic offsets, `+hhmm` and `+hh`, which some clients
/// write (Java's `Z` pattern, for one).
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let parsed = match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(parsed) => parsed,
        Err(_) => OffsetDateTime::parse(&with_extended_offset(text)?, &Rfc3339).ok()?,
    };
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// `text` with a basic offset at its end (`+0530`, `-08`) written as RFC
/// 3339's `+05:30`, `-08:00`; `None` when it ends otherwise.
fn with_extended_offset(text: &str) -> Option<String> {
    let digits = text.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits != 2 && digits != 4 {
        return None;
    }
    let sign_at = text.len().checked_sub(digits + 1)?;
    // An ASCII sign, so a character boundary to split at.
    if !matches!(text.as_bytes()[sign_at], b'+' | b'-') {
        return None;
    }
    let (time, offset) = text.split_at(sign_at);
    // After the time of day (which has a colon), not a date's hyphen.
    if !time.contains(':') {
        return None;
    }
    let (hours, minutes) = offset[1..].split_at(2);
    let minutes = if minutes.is_empty() { "00" } else { minutes };
    Some(format!("{time}{}{hours}:{minutes}", &offset[..1]))
}

/// Formats epoch milliseconds as RFC 3339 in UTC with exactly three fractional digits.
pub fn format_rfc3339_ms(epoch_ms: i64) -> String {
    Rfc3339Ms(epoch_ms).to_string()
}

/// Epoch milliseconds that display as RFC 3339 in UTC with three fractional
/// digits (`2026-11-22T09:45:00.000Z`), written without allocating: exports
/// format two per row. Times outside years 0 to 9999 display as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Ms(pub i64);

impl fmt::Display for Rfc3339Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000);
        let Some(at) = at.ok().filter(|at| (0..=9999).contains(&at.year())) else {
            return write!(f, "{}", self.0);
        };
        let mut text = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for index in (at..at + width).rev() {
                text[index] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, at.year().unsigned_abs());
        put(5, 2, u32::from(u8::from(at.month())));
        put(8, 2, u32::from(at.day()));
        put(11, 2, u32::from(at.hour()));
        put(14, 2, u32::from(at.minute()));
        put(17, 2, u32::from(at.second()));
        put(20, 3, u32::from(at.millisecond()));
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl serde::Serialize for Rfc3339Ms {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let ms = 1_700_000_000_123;
        let text = format_rfc3339_ms(ms);
        assert_eq!(text, "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339_ms(&text), Some(ms));
    }

    #[test]
    fn formats_edges_without_allocating() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339_ms(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(format_rfc3339_ms(i64::MAX), i64::MAX.to_string());
        let json = serde_json::to_string(&Rfc3339Ms(1_700_000_000_123)).unwrap();
        assert_eq!(json, r#""2023-11-14T22:13:20.123Z""#);
    }

    #[test]
    fn honours_offsets() {
        assert_eq!(
            parse_rfc3339_ms("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn takes_iso_8601_basic_offsets() {
        let ms = Some(1_700_000_000_123);
        assert_eq!(parse_rfc3339_ms("2023-11-14T23:13:20.123+0100"), ms);
        assert_eq!(parse_rfc3339_ms("2023-11-14T17:43:20.123-0430"), ms);
        assert_eq!(parse_rfc3339_ms("2023-11-14T23:13:20.123+01"), ms);
        assert_eq!(parse_rfc3339_ms("2023-11-14T22:13:20.123+0000"), ms);
        for wrong in [
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-11-14T22:13:20.1234",
            "2023-11-14T22:13:20+2400",
            "2023-11-14T22:13:20+123",
            "2023-11-14T22:13:20 0100",
            "é00",
            "2023-11-14T22:13:20é0100",
        ] {
            assert_eq!(parse_rfc3339_ms(wrong), None, "{wrong}");
        }
    }

    proptest::proptest! {
        /// Whatever follows a time of day, parsing answers without panicking.
        #[test]
        fn any_suffix_parses_or_is_refused(suffix in "\\PC{0,8}") {
            let _ = parse_rfc3339_ms(&format!("2023-11-14T22:13:20{suffix}"));
            let _ = parse_rfc3339_ms(&suffix);
        }
    }
}
