//! A small, careful iCalendar (RFC 5545) reader for busy times, and the
//! writer of the appointments' export.
//!
//! Reads: CRLF or LF, line folding (a line starting with a space or tab
//! continues the previous one), properties with parameters (quoted values
//! included), nested components; of each VEVENT: DTSTART/DTEND (or
//! DURATION) as `;TZID=Zone:YYYYMMDDTHHMMSS`, UTC `...Z`, floating (the
//! calendar's X-WR-TIMEZONE, else the default zone), or all-day
//! `;VALUE=DATE:YYYYMMDD`; UID, SUMMARY, STATUS, TRANSP. Events marked
//! `TRANSP:TRANSPARENT` or `STATUS:CANCELLED` block no time.
//!
//! Owns: the text format only. Never: recurrence expansion (an RRULE or
//! RDATE is an error naming its line, not silently one occurrence), or
//! storing anything.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, Zoned};

use crate::hours::time_zone;

/// One busy time read from a calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub uid: Option<String>,
    pub summary: Option<String>,
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
    pub all_day: bool,
    /// The line of its BEGIN:VEVENT.
    pub line: u64,
}

/// A parse error: line (1-based, physical) and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsError {
    pub line: u64,
    pub message: String,
}

fn err<T>(line: u64, message: impl Into<String>) -> Result<T, IcsError> {
    Err(IcsError { line, message: message.into() })
}

struct Prop {
    line: u64,
    name: String,
    params: Vec<(String, String)>,
    value: String,
}

impl Prop {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Unfolded logical lines with the physical line each started on.
fn unfold(text: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(rest) = line.strip_prefix([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str(rest);
                continue;
            }
        }
        if line.is_empty() {
            continue;
        }
        out.push((i as u64 + 1, line.to_string()));
    }
    out
}

fn parse_line(line: u64, s: &str) -> Result<Prop, IcsError> {
    // name *(";" param) ":" value; a param value may be quoted and hold ; or :
    let bytes: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut name = String::new();
    while i < bytes.len() && bytes[i] != ';' && bytes[i] != ':' {
        name.push(bytes[i]);
        i += 1;
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return err(line, format!("not an iCalendar content line: {:?}", truncate(s)));
    }
    let mut params = Vec::new();
    while i < bytes.len() && bytes[i] == ';' {
        i += 1;
        let mut key = String::new();
        while i < bytes.len() && bytes[i] != '=' && bytes[i] != ':' && bytes[i] != ';' {
            key.push(bytes[i]);
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != '=' {
            return err(line, format!("parameter {key:?} of {name} has no value"));
        }
        i += 1;
        let mut val = String::new();
        if i < bytes.len() && bytes[i] == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                val.push(bytes[i]);
                i += 1;
            }
            if i >= bytes.len() {
                return err(line, format!("unterminated quoted parameter of {name}"));
            }
            i += 1;
        } else {
            while i < bytes.len() && bytes[i] != ';' && bytes[i] != ':' {
                val.push(bytes[i]);
                i += 1;
            }
        }
        params.push((key.to_ascii_uppercase(), val));
    }
    if i >= bytes.len() || bytes[i] != ':' {
        return err(line, format!("{name} has no ':' before its value"));
    }
    let value: String = bytes[i + 1..].iter().collect();
    Ok(Prop { line, name: name.to_ascii_uppercase(), params, value })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// TEXT value unescaped (`\\`, `\;`, `\,`, `\n`).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A TEXT value escaped for writing.
pub fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(';', "\\;").replace(',', "\\,").replace("\r\n", "\\n").replace('\n', "\\n")
}

/// A zone from a TZID: IANA names; the `/vendor/.../Area/City` form some
/// exporters write; the Windows names Outlook writes for central Europe.
fn tzid(line: u64, id: &str) -> Result<TimeZone, IcsError> {
    let id = id.trim();
    if let Ok(tz) = time_zone(id) {
        return Ok(tz);
    }
    let parts: Vec<&str> = id.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() >= 2 {
        if let Ok(tz) = time_zone(&parts[parts.len() - 2..].join("/")) {
            return Ok(tz);
        }
    }
    let windows = match id {
        "W. Europe Standard Time" | "Central Europe Standard Time" | "Romance Standard Time" => Some("Europe/Berlin"),
        "GMT Standard Time" => Some("Europe/London"),
        "UTC" | "Coordinated Universal Time" => Some("UTC"),
        _ => None,
    };
    match windows.and_then(|w| time_zone(w).ok()) {
        Some(tz) => Ok(tz),
        None => err(line, format!("unknown time zone TZID={id:?}")),
    }
}

enum When {
    At(Zoned),
    Day(Date),
}

fn parse_when(p: &Prop, default_tz: &TimeZone) -> Result<When, IcsError> {
    let v = p.value.trim();
    if v.contains(',') {
        return err(p.line, format!("{} with several values is not supported", p.name));
    }
    let is_date = p.param("VALUE").is_some_and(|x| x.eq_ignore_ascii_case("DATE")) || (v.len() == 8 && !v.contains('T'));
    if is_date {
        if v.len() != 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return err(p.line, format!("{} {v:?} is not a date YYYYMMDD", p.name));
        }
        let d = Date::strptime("%Y%m%d", v).map_err(|e| IcsError { line: p.line, message: format!("{} {v:?}: {e}", p.name) })?;
        return Ok(When::Day(d));
    }
    let (body, utc) = match v.strip_suffix('Z').or_else(|| v.strip_suffix('z')) {
        Some(b) => (b, true),
        None => (v, false),
    };
    if body.len() != 15 || body.as_bytes()[8] != b'T' {
        return err(p.line, format!("{} {v:?} is not a date-time YYYYMMDDTHHMMSS", p.name));
    }
    let dt = DateTime::strptime("%Y%m%dT%H%M%S", body).map_err(|e| IcsError { line: p.line, message: format!("{} {v:?}: {e}", p.name) })?;
    let tz = if utc {
        TimeZone::UTC
    } else if let Some(id) = p.param("TZID") {
        tzid(p.line, id)?
    } else {
        default_tz.clone()
    };
    let z = dt.to_zoned(tz).map_err(|e| IcsError { line: p.line, message: format!("{} {v:?}: {e}", p.name) })?;
    Ok(When::At(z))
}

/// An RFC 5545 duration: `[+-]P[nW]` or `[+-]P[nD][T[nH][nM][nS]]`.
pub fn parse_duration(s: &str) -> Option<Span> {
    let s = s.trim();
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let s = s.strip_prefix('P')?;
    if s.is_empty() {
        return None;
    }
    // calendar units (weeks, days) and clock units cannot be summed without
    // a reference date: set each field once instead
    let (mut w, mut d, mut h, mut m, mut sec) = (None, None, None, None, None);
    let mut num = String::new();
    let mut in_time = false;
    for c in s.chars() {
        match c {
            '0'..='9' => num.push(c),
            'T' if !in_time && num.is_empty() => in_time = true,
            'W' | 'D' | 'H' | 'M' | 'S' => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                let slot = match (c, in_time) {
                    ('W', false) => &mut w,
                    ('D', false) => &mut d,
                    ('H', true) => &mut h,
                    ('M', true) => &mut m,
                    ('S', true) => &mut sec,
                    _ => return None,
                };
                if slot.replace(n).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    if !num.is_empty() || [w, d, h, m, sec].iter().all(Option::is_none) {
        return None;
    }
    let span = Span::new()
        .try_weeks(w.unwrap_or(0))
        .ok()?
        .try_days(d.unwrap_or(0))
        .ok()?
        .try_hours(h.unwrap_or(0))
        .ok()?
        .try_minutes(m.unwrap_or(0))
        .ok()?
        .try_seconds(sec.unwrap_or(0))
        .ok()?;
    Some(if neg { span.negate() } else { span })
}

#[derive(Default)]
struct Pending {
    line: u64,
    dtstart: Option<Prop>,
    dtend: Option<Prop>,
    duration: Option<Prop>,
    uid: Option<String>,
    summary: Option<String>,
    skip: bool,
}

/// Reads every VEVENT of `text` as a busy time. `default_tz` places floating
/// times and all-day dates when the calendar names no X-WR-TIMEZONE.
pub fn parse(text: &str, default_tz: &TimeZone) -> Result<Vec<Event>, IcsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = unfold(text);
    let mut stack: Vec<(String, u64)> = Vec::new();
    let mut events = Vec::new();
    let mut cal_tz = default_tz.clone();
    let mut ev: Option<Pending> = None;
    let mut seen_calendar = false;
    for (n, raw) in &lines {
        let p = parse_line(*n, raw)?;
        match p.name.as_str() {
            "BEGIN" => {
                let comp = p.value.trim().to_ascii_uppercase();
                if stack.is_empty() {
                    if comp != "VCALENDAR" || seen_calendar {
                        return err(*n, format!("expected BEGIN:VCALENDAR, found BEGIN:{comp}"));
                    }
                    seen_calendar = true;
                }
                if comp == "VEVENT" {
                    if ev.is_some() {
                        return err(*n, "a VEVENT inside a VEVENT");
                    }
                    ev = Some(Pending { line: *n, ..Default::default() });
                }
                stack.push((comp, *n));
                continue;
            }
            "END" => {
                let comp = p.value.trim().to_ascii_uppercase();
                match stack.pop() {
                    Some((open, _)) if open == comp => {}
                    Some((open, l)) => return err(*n, format!("END:{comp} closes BEGIN:{open} of line {l}")),
                    None => return err(*n, format!("END:{comp} without BEGIN")),
                }
                if comp == "VEVENT" {
                    let pending = ev.take().expect("inside a VEVENT");
                    if let Some(e) = finish(pending, &cal_tz)? {
                        events.push(e);
                    }
                }
                continue;
            }
            _ => {}
        }
        if stack.is_empty() {
            return err(*n, format!("{} outside BEGIN:VCALENDAR ... END:VCALENDAR", p.name));
        }
        let top = stack.last().map(|(c, _)| c.as_str()).unwrap_or("");
        if top == "VCALENDAR" && p.name == "X-WR-TIMEZONE" {
            cal_tz = tzid(p.line, &p.value)?;
        }
        if top != "VEVENT" {
            continue; // VTIMEZONE, VALARM, other components: not busy times
        }
        let e = ev.as_mut().expect("inside a VEVENT");
        match p.name.as_str() {
            "DTSTART" => e.dtstart = Some(p),
            "DTEND" => e.dtend = Some(p),
            "DURATION" => e.duration = Some(p),
            "UID" => e.uid = Some(p.value.trim().to_string()),
            "SUMMARY" => e.summary = Some(unescape(&p.value)),
            "STATUS" => e.skip |= p.value.trim().eq_ignore_ascii_case("CANCELLED"),
            "TRANSP" => e.skip |= p.value.trim().eq_ignore_ascii_case("TRANSPARENT"),
            "RRULE" | "RDATE" => {
                return err(p.line, format!("recurring events ({}) are not supported: export the occurrences as single events", p.name))
            }
            _ => {}
        }
    }
    if let Some((open, l)) = stack.last() {
        return err(*l, format!("BEGIN:{open} is never closed"));
    }
    if !seen_calendar {
        return err(1, "not an iCalendar file (no BEGIN:VCALENDAR)");
    }
    Ok(events)
}

fn finish(e: Pending, tz: &TimeZone) -> Result<Option<Event>, IcsError> {
    let Some(start_p) = &e.dtstart else { return err(e.line, "VEVENT without DTSTART") };
    if e.dtend.is_some() && e.duration.is_some() {
        return err(e.line, "VEVENT with both DTEND and DURATION");
    }
    let start = parse_when(start_p, tz)?;
    let (start_z, all_day) = match &start {
        When::At(z) => (z.clone(), false),
        When::Day(d) => (d.to_zoned(tz.clone()).map_err(|x| IcsError { line: start_p.line, message: x.to_string() })?, true),
    };
    let end_z = if let Some(p) = &e.dtend {
        match (parse_when(p, tz)?, &start) {
            (When::At(z), When::At(_)) => z,
            (When::Day(d), When::Day(_)) => d.to_zoned(tz.clone()).map_err(|x| IcsError { line: p.line, message: x.to_string() })?,
            _ => return err(p.line, "DTEND and DTSTART must both be dates or both date-times"),
        }
    } else if let Some(p) = &e.duration {
        let span = parse_duration(&p.value).ok_or_else(|| IcsError { line: p.line, message: format!("DURATION {:?} is not an RFC 5545 duration", p.value) })?;
        start_z.checked_add(span).map_err(|x| IcsError { line: p.line, message: x.to_string() })?
    } else if all_day {
        start_z.checked_add(1.day()).map_err(|x| IcsError { line: e.line, message: x.to_string() })?
    } else {
        start_z.clone()
    };
    if end_z.timestamp() < start_z.timestamp() {
        return err(e.dtend.as_ref().or(e.duration.as_ref()).map_or(e.line, |p| p.line), "the event ends before it starts");
    }
    if e.skip {
        return Ok(None);
    }
    Ok(Some(Event { uid: e.uid, summary: e.summary, start: start_z.timestamp(), end: end_z.timestamp(), all_day, line: e.line }))
}

/// Appends a content line folded at 75 octets (RFC 5545 3.1), CRLF.
fn push_line(out: &mut String, line: &str) {
    let mut count = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if count + len > 75 {
            out.push_str("\r\n ");
            count = 1;
        }
        out.push(c);
        count += len;
    }
    out.push_str("\r\n");
}

/// One VEVENT of an export.
pub struct ExportEvent<'a> {
    pub uid: &'a str,
    pub summary: &'a str,
    pub description: Option<&'a str>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub stamp: Timestamp,
}

/// A VCALENDAR with the events in UTC (no VTIMEZONE needed).
pub fn write(events: &[ExportEvent<'_>]) -> String {
    let utc = |t: Timestamp| t.strftime("%Y%m%dT%H%M%SZ").to_string();
    let mut out = String::new();
    for l in ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Tresor//Appointments//EN", "CALSCALE:GREGORIAN", "METHOD:PUBLISH"] {
        push_line(&mut out, l);
    }
    for e in events {
        push_line(&mut out, "BEGIN:VEVENT");
        push_line(&mut out, &format!("UID:{}", escape(e.uid)));
        push_line(&mut out, &format!("DTSTAMP:{}", utc(e.stamp)));
        push_line(&mut out, &format!("DTSTART:{}", utc(e.start)));
        push_line(&mut out, &format!("DTEND:{}", utc(e.end)));
        push_line(&mut out, &format!("SUMMARY:{}", escape(e.summary)));
        if let Some(d) = e.description {
            push_line(&mut out, &format!("DESCRIPTION:{}", escape(d)));
        }
        push_line(&mut out, "END:VEVENT");
    }
    push_line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        time_zone("Europe/Berlin").unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn reads_folded_lines_params_and_every_time_form() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=\"Europe/Berlin\":20260710T100000\r\nDTEND;TZID=Europe/Berlin:20260710T11\r\n 3000\r\nSUMMARY:Lo\r\n\tng\\, folded\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261210\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20261216T123000Z\r\nDURATION:-PT0S\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20261216T090000\r\nDURATION:P1DT1H\r\nTRANSP:OPAQUE\r\nBEGIN:VALARM\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nDTSTART:20261216T090000\r\nDTEND:20261216T100000\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let ev = parse(text, &berlin()).unwrap();
        assert_eq!(ev.len(), 4, "the transparent event blocks nothing");
        assert_eq!(ev[0].start, ts("2026-07-10T08:00:00Z"), "summer time: +02:00");
        assert_eq!(ev[0].end, ts("2026-07-10T09:30:00Z"), "folded value");
        assert_eq!(ev[0].summary.as_deref(), Some("Long, folded"));
        assert_eq!(ev[0].line, 3);
        assert!(ev[1].all_day);
        assert_eq!((ev[1].start, ev[1].end), (ts("2026-12-09T23:00:00Z"), ts("2026-12-10T23:00:00Z")));
        assert_eq!(ev[2].start, ev[2].end);
        assert_eq!(ev[3].start, ts("2026-12-16T08:00:00Z"), "floating: the calendar's zone");
        assert_eq!(ev[3].end, ts("2026-12-17T09:00:00Z"));
    }

    #[test]
    fn errors_name_the_line() {
        let bad = |t: &str| parse(t, &berlin()).unwrap_err();
        let e = bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:2026121\nEND:VEVENT\nEND:VCALENDAR\n");
        assert_eq!(e.line, 3, "{e:?}");
        let e = bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:x\nEND:VEVENT\nEND:VCALENDAR\n");
        assert_eq!((e.line, e.message.as_str()), (2, "VEVENT without DTSTART"));
        let e = bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;TZID=Nowhere/Land:20261210T100000\nEND:VEVENT\nEND:VCALENDAR\n");
        assert!(e.message.contains("Nowhere/Land") && e.line == 3, "{e:?}");
        let e = bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261210T100000\nRRULE:FREQ=WEEKLY\nEND:VEVENT\nEND:VCALENDAR\n");
        assert_eq!(e.line, 4);
        let e = bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261210T100000\nDTEND:20261210T090000\nEND:VEVENT\nEND:VCALENDAR\n");
        assert_eq!(e.line, 4);
        let e = bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261210T100000\n");
        assert_eq!(e.line, 2, "{e:?}");
        assert_eq!(bad("hello\n").line, 1);
        assert_eq!(bad("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n").line, 3);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT1H").unwrap().fieldwise(), 1.hour().fieldwise());
        assert_eq!(parse_duration("P2W").unwrap().fieldwise(), 2.weeks().fieldwise());
        assert_eq!(parse_duration("P1DT2H30M").unwrap().fieldwise(), 1.day().hours(2).minutes(30).fieldwise());
        for bad in ["", "P", "PT", "1H", "PT1", "P1H", "PT1D", "PxT", "PT1H2H"] {
            assert!(parse_duration(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn export_round_trips_and_folds() {
        let long = "Beratung ".repeat(20);
        let evs = [ExportEvent {
            uid: "apt_1",
            summary: &long,
            description: Some("a; b, c\nd"),
            start: ts("2026-12-08T09:30:00Z"),
            end: ts("2026-12-08T10:00:00Z"),
            stamp: ts("2026-12-07T08:00:00Z"),
        }];
        let text = write(&evs);
        assert!(text.lines().all(|l| l.trim_end_matches('\r').len() <= 75));
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        let back = parse(&text, &TimeZone::UTC).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].summary.as_deref(), Some(long.as_str()));
        assert_eq!((back[0].start, back[0].end), (evs[0].start, evs[0].end));
    }
}
