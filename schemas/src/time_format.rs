//! Event time on the wire: RFC 3339 strings or integer epoch milliseconds in,
//! RFC 3339 with milliseconds in UTC out.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Parses an RFC 3339 timestamp (any offset) into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats epoch milliseconds as RFC 3339 in UTC with exactly three fractional digits.
pub fn format_rfc3339_ms(epoch_ms: i64) -> String {
    let nanos = i128::from(epoch_ms) * 1_000_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.millisecond()
        ),
        Err(_) => epoch_ms.to_string(),
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
    fn honours_offsets() {
        assert_eq!(
            parse_rfc3339_ms("2023-11-14T23:13:20.123+01:00"),
            Some(1_700_000_000_123)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
