//! Opening hours and free slots.
//!
//! Owns: when the business is open (default Mon–Fri 09:00–17:00,
//! Europe/Berlin; the engine's `assistant.toml` embeds it as
//! `[tools.hours]`), whether an interval lies inside them, and finding free
//! slots between busy intervals. Intervals are half-open `[start, end)`:
//! an appointment may start exactly when a busy time ends. Never: reading
//! the calendar (the caller passes the busy intervals).

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ToolError};

/// `[tools.hours]`: e.g. `timezone = "Europe/Berlin"`, `days = ["mon", "tue",
/// "wed", "thu", "fri"]`, `open = "09:00"`, `close = "17:00"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpeningHours {
    /// IANA time zone name.
    pub timezone: String,
    /// Open days: mon, tue, wed, thu, fri, sat, sun (English or German
    /// two/three-letter abbreviations: mo, di, mi, do, fr, sa, so).
    pub days: Vec<String>,
    /// Opening time, HH:MM.
    pub open: String,
    /// Closing time, HH:MM (an appointment must end by then).
    pub close: String,
}

impl Default for OpeningHours {
    fn default() -> Self {
        OpeningHours {
            timezone: "Europe/Berlin".into(),
            days: ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec(),
            open: "09:00".into(),
            close: "17:00".into(),
        }
    }
}

/// A time zone by IANA name: the system's database first, the copy bundled
/// into the binary when the system has none (or lacks the zone).
pub fn time_zone(name: &str) -> Result<TimeZone> {
    jiff::tz::db()
        .get(name)
        .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
        .map_err(|e| ToolError::Hours(format!("unknown time zone {name:?}: {e}")))
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.trim().to_lowercase().as_str() {
        "mon" | "monday" | "mo" | "montag" => Weekday::Monday,
        "tue" | "tuesday" | "di" | "dienstag" => Weekday::Tuesday,
        "wed" | "wednesday" | "mi" | "mittwoch" => Weekday::Wednesday,
        "thu" | "thursday" | "do" | "donnerstag" => Weekday::Thursday,
        "fri" | "friday" | "fr" | "freitag" => Weekday::Friday,
        "sat" | "saturday" | "sa" | "samstag" => Weekday::Saturday,
        "sun" | "sunday" | "so" | "sonntag" => Weekday::Sunday,
        _ => return None,
    })
}

/// `HH:MM` (or `H:MM`) as a civil time.
pub fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 || !h.chars().chain(m.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// Opening hours checked and resolved: build once per request.
#[derive(Debug, Clone)]
pub struct Hours {
    pub tz: TimeZone,
    pub days: Vec<Weekday>,
    pub open: Time,
    pub close: Time,
}

impl OpeningHours {
    /// Checks the settings (known zone and days, open before close).
    pub fn resolve(&self) -> Result<Hours> {
        let tz = time_zone(&self.timezone)?;
        let mut days = Vec::new();
        for d in &self.days {
            days.push(weekday(d).ok_or_else(|| ToolError::Hours(format!("unknown day {d:?} (expected mon..sun)")))?);
        }
        let open = parse_hhmm(&self.open).ok_or_else(|| ToolError::Hours(format!("open {:?} is not HH:MM", self.open)))?;
        let close = parse_hhmm(&self.close).ok_or_else(|| ToolError::Hours(format!("close {:?} is not HH:MM", self.close)))?;
        if open >= close {
            return Err(ToolError::Hours(format!("open {} is not before close {}", self.open, self.close)));
        }
        Ok(Hours { tz, days, open, close })
    }
}

/// A free slot offered instead of a refused booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// YYYY-MM-DD, local.
    pub date: String,
    /// HH:MM, local.
    pub time: String,
    pub duration_minutes: i64,
    /// RFC 3339 with the local offset.
    pub start: String,
    pub end: String,
}

/// `[start, end)` in UTC.
pub type Interval = (Timestamp, Timestamp);

/// True when the half-open intervals share any instant (touching is fine).
pub fn overlaps(a: Interval, b: Interval) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Local RFC 3339 without sub-seconds, e.g. `2026-12-08T10:30:00+01:00`.
pub fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

impl Hours {
    /// Why `[start, start + minutes)` is outside opening hours, or None.
    pub fn outside(&self, start: &Zoned, minutes: i64) -> Option<String> {
        let local = start.with_time_zone(self.tz.clone());
        let end = local.checked_add(minutes.minutes()).ok()?;
        if !self.days.contains(&local.weekday()) {
            return Some(format!("{} is a {:?}, outside opening days", local.date(), local.weekday()));
        }
        if local.time() < self.open || end.date() != local.date() || end.time() > self.close {
            return Some(format!(
                "{}–{} is outside opening hours ({}–{})",
                local.strftime("%H:%M"),
                end.strftime("%H:%M"),
                self.open.strftime("%H:%M"),
                self.close.strftime("%H:%M")
            ));
        }
        None
    }

    /// Up to `count` free slots of `minutes` on a 30-minute grid, within
    /// opening hours, not before `now`, overlapping no `busy` interval:
    /// first on `from` (the day asked for), then the days after it, at most
    /// 14 days ahead.
    pub fn free_slots(&self, busy: &[Interval], now: &Zoned, from: Date, minutes: i64, count: usize) -> Vec<Slot> {
        let mut out = Vec::new();
        let today = now.with_time_zone(self.tz.clone()).date();
        let mut day = if from < today { today } else { from };
        for _ in 0..15 {
            if self.days.contains(&day.weekday()) {
                let mut t = day.to_datetime(self.open);
                let close = day.to_datetime(self.close);
                while t < close && out.len() < count {
                    let Ok(start) = t.to_zoned(self.tz.clone()) else { break };
                    let Ok(end) = start.checked_add(minutes.minutes()) else { break };
                    let iv = (start.timestamp(), end.timestamp());
                    if start.timestamp() >= now.timestamp()
                        && self.outside(&start, minutes).is_none()
                        && !busy.iter().any(|b| overlaps(iv, *b))
                    {
                        out.push(Slot {
                            date: start.date().to_string(),
                            time: start.strftime("%H:%M").to_string(),
                            duration_minutes: minutes,
                            start: rfc3339(&start),
                            end: rfc3339(&end),
                        });
                    }
                    match t.checked_add(30.minutes()) {
                        Ok(n) => t = n,
                        Err(_) => break,
                    }
                }
            }
            if out.len() >= count {
                break;
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Zoned {
        s.parse::<Zoned>().unwrap()
    }

    #[test]
    fn default_is_weekdays_nine_to_five_in_berlin_and_config_parses() {
        let h = OpeningHours::default().resolve().unwrap();
        assert_eq!(h.days.len(), 5);
        let mon = at("2026-12-07T09:00:00+01:00[Europe/Berlin]");
        assert!(h.outside(&mon, 30).is_none());
        assert!(h.outside(&at("2026-12-07T16:30:00+01:00[Europe/Berlin]"), 30).is_none());
        assert!(h.outside(&at("2026-12-07T16:45:00+01:00[Europe/Berlin]"), 30).is_some());
        assert!(h.outside(&at("2026-12-07T08:30:00+01:00[Europe/Berlin]"), 30).is_some());
        assert!(h.outside(&at("2026-12-12T10:00:00+01:00[Europe/Berlin]"), 30).is_some(), "Saturday");
        let cfg: OpeningHours = toml::from_str("open = \"08:00\"\ndays = [\"mo\", \"sa\"]").unwrap();
        assert_eq!(cfg.close, "17:00");
        let h = cfg.resolve().unwrap();
        assert!(h.outside(&at("2026-12-12T08:00:00+01:00[Europe/Berlin]"), 60).is_none());
        assert!(toml::from_str::<OpeningHours>("opens = \"08:00\"").is_err());
        assert!(OpeningHours { open: "18:00".into(), ..Default::default() }.resolve().is_err());
        assert!(OpeningHours { timezone: "Mars/Base".into(), ..Default::default() }.resolve().is_err());
    }

    #[test]
    fn berlin_is_known_without_the_system_database() {
        let tz = jiff::tz::TimeZoneDatabase::bundled().get("Europe/Berlin").expect("bundled tzdb");
        let summer = jiff::civil::date(2026, 7, 1).at(12, 0, 0, 0).to_zoned(tz.clone()).unwrap();
        let winter = jiff::civil::date(2026, 12, 1).at(12, 0, 0, 0).to_zoned(tz).unwrap();
        assert_eq!(summer.offset().seconds(), 7200);
        assert_eq!(winter.offset().seconds(), 3600);
    }

    #[test]
    fn free_slots_skip_busy_times_touching_allowed() {
        let h = OpeningHours::default().resolve().unwrap();
        let now = at("2026-12-08T08:00:00+01:00[Europe/Berlin]");
        let busy = [(at("2026-12-08T09:00:00+01:00[Europe/Berlin]").timestamp(), at("2026-12-08T10:00:00+01:00[Europe/Berlin]").timestamp())];
        let s = h.free_slots(&busy, &now, jiff::civil::date(2026, 12, 8), 60, 3);
        assert_eq!(s.iter().map(|s| s.time.as_str()).collect::<Vec<_>>(), ["10:00", "10:30", "11:00"]);
        assert_eq!(s[0].start, "2026-12-08T10:00:00+01:00");
        // late on Friday: the next slots are on Monday
        let fri = at("2026-12-11T16:50:00+01:00[Europe/Berlin]");
        let s = h.free_slots(&[], &fri, jiff::civil::date(2026, 12, 11), 30, 1);
        assert_eq!(s[0].date, "2026-12-14");
        assert_eq!(s[0].time, "09:00");
    }
}
