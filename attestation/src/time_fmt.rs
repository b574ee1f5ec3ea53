//! Time parsing and formatting shared by errors, the CLI and the simulator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a duration since the Unix epoch as RFC 3339 (UTC), or as seconds when it is
/// outside the range the calendar can show.
pub fn rfc3339(since_epoch: Duration) -> String {
    i64::try_from(since_epoch.as_secs())
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{}s after the Unix epoch", since_epoch.as_secs()))
}

/// Formats milliseconds since the Unix epoch as RFC 3339 with milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    i128::from(ms)
        .checked_mul(1_000_000)
        .and_then(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{ms}ms after the Unix epoch"))
}

/// Parses an RFC 3339 time, or the word `now`.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    if text == "now" {
        return Ok(SystemTime::now());
    }
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time or `now`: {e}"))?;
    let nanos = t.unix_timestamp_nanos();
    let nanos = u64::try_from(nanos).map_err(|_| {
        if nanos < 0 {
            format!("`{text}` is before 1970")
        } else {
            format!("`{text}` is too far in the future")
        }
    })?;
    Ok(UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let t = parse_time("2022-10-13T09:00:00Z").unwrap();
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.as_secs(), 1_665_651_600);
        assert_eq!(rfc3339(d), "2022-10-13T09:00:00Z");
        assert_eq!(rfc3339_ms(1_665_651_600_123), "2022-10-13T09:00:00.123Z");
        let offset = parse_time("2022-10-13T11:00:00+02:00").unwrap();
        assert_eq!(offset, t);
    }

    #[test]
    fn refuses_bad_times() {
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("1969-12-31T23:59:59Z").is_err());
        assert!(parse_time("2022-10-13 09:00:00").is_err());
    }
}
