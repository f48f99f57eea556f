//! Times of the events: now in Unix milliseconds, the `--since`/`--until`
//! forms a door accepts, and the day and ISO-week buckets of `--by day|week`.
//!
//! Owns: these conversions (UTC throughout). Never: a time zone of the user's.

use jiff::{civil::Date, tz::TimeZone, Timestamp};

use crate::{Result, TelemetryError};

pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// `2026-12-06` (that day's start, UTC), `2026-12-06T10:00:00Z` (RFC 3339), or a duration back
/// from now: `30m`, `24h`, `7d`, `4w`.
pub fn parse_time(s: &str) -> Result<i64> {
    parse_at(s, now_ms())
}

pub fn parse_at(s: &str, now: i64) -> Result<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t.as_millisecond());
    }
    if let Ok(d) = s.parse::<Date>() {
        let z = d.to_zoned(TimeZone::UTC).map_err(|e| TelemetryError::Invalid(format!("`{s}`: {e}")))?;
        return Ok(z.timestamp().as_millisecond());
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let unit_ms: i64 = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => 0,
    };
    match n.parse::<i64>() {
        Ok(n) if unit_ms > 0 => Ok(now - n * unit_ms),
        _ => Err(TelemetryError::Invalid(format!(
            "time `{s}`: give a date (2026-12-06), an RFC 3339 time (2026-12-06T10:00:00Z) or a duration back from now (30m, 24h, 7d, 4w)"
        ))),
    }
}

/// `2026-12-06`: the UTC day of `ms`.
pub fn day(ms: i64) -> String {
    date(ms).to_string()
}

/// `2026-W49`: the ISO week of `ms` (UTC).
pub fn week(ms: i64) -> String {
    let w = date(ms).iso_week_date();
    format!("{}-W{:02}", w.year(), w.week())
}

fn date(ms: i64) -> Date {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH).to_zoned(TimeZone::UTC).date()
}

/// RFC 3339 of `ms` (for reports).
pub fn rfc3339(ms: i64) -> String {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_bucket() {
        let t = parse_time("2026-12-06").unwrap();
        assert_eq!(t, parse_time("2026-12-06T00:00:00Z").unwrap());
        assert_eq!(day(t + 3_600_000), "2026-12-06");
        assert_eq!(week(t), "2026-W49");
        assert_eq!(parse_at("7d", 10 * 86_400_000).unwrap(), 3 * 86_400_000);
        assert_eq!(parse_at("30m", 3_600_000).unwrap(), 1_800_000);
        let e = parse_time("yesterday").unwrap_err().to_string();
        assert!(e.contains("7d"), "{e}");
    }
}
