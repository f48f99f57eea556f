//! Dates, times and durations said in English or German, resolved against a
//! given "now" (a `jiff::Zoned`, Europe/Berlin in practice).
//!
//! Owns: the reading of "tomorrow at 10", "nächsten Dienstag um 15 Uhr",
//! "16.12.", "December 16th", "halb drei", "a quarter to four", "for an
//! hour", "eine halbe Stunde" — the rules of the tools eval README:
//! - "tomorrow"/"morgen" = now + 1, "übermorgen" = now + 2, "in vier Tagen" = now + 4;
//! - a bare weekday ("on Friday", "am Donnerstag", "this Friday") is the next
//!   such day *after* today;
//! - "next Tuesday"/"nächsten Dienstag" and "next week Wednesday"/"nächste
//!   Woche Mittwoch" are that weekday of the next calendar week (ISO weeks,
//!   Monday first) — for "next Tuesday" the README only uses it where the
//!   coming Tuesday already is in the next week, where both readings agree;
//! - a date without a year is the next such date on or after today;
//! - times are read as business hours: an hour 1–7 written without am/pm,
//!   without a minute part in 24-hour form ("07:30") and without a morning
//!   word is afternoon ("at 3" = 15:00, "halb drei" = 14:30).
//!
//! A weekend date or a time outside opening hours is still returned: the
//! booking tool refuses it with free slots, which is more helpful than a
//! silent shift. Never: invents a date or a time that was not said ("next
//! week" alone and "in the morning" alone give none), or knows about tools.

use jiff::civil::{Date, Time, Weekday};
use jiff::Zoned;

use super::lex::{number_at, tokens, Kind, Token};

/// What a message says about when: each part only if it was said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct When {
    pub date: Option<Date>,
    pub time: Option<Time>,
    pub duration_minutes: Option<u32>,
    /// Byte spans of the original text that were read as a date, time or
    /// duration (so the topic can leave them out).
    pub spans: Vec<(usize, usize)>,
}

/// `YYYY-MM-DD`.
pub fn fmt_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// `HH:MM`.
pub fn fmt_time(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// Read the date, time and duration of `text` against `now`.
pub fn resolve(text: &str, now: &Zoned) -> When {
    resolve_with(text, now, false)
}

/// Like [`resolve`], for a reply to "at what time?": a message that is only
/// a number ("14", "halb 3" aside) is read as an hour.
pub fn resolve_reply(text: &str, now: &Zoned) -> When {
    resolve_with(text, now, true)
}

fn resolve_with(text: &str, now: &Zoned, bare_hour: bool) -> When {
    let toks = tokens(text);
    let mut s = Scan { t: &toks, used: vec![false; toks.len()], spans: Vec::new() };
    let today = now.date();
    let date = explicit_date(&mut s, today);
    let duration = duration(&mut s);
    let mut time = time_of_day(&mut s);
    if time.is_none() && bare_hour {
        let words: Vec<&Token> = toks.iter().filter(|t| t.kind != Kind::Punct).collect();
        if words.len() == 1 {
            if let Some(h) = words[0].value().filter(|h| (1..=23).contains(h)) {
                time = Some((business(h, 0, words[0].text.len() == 1 || words[0].kind == Kind::Word, &toks), None));
            }
        }
    }
    let (time, duration) = match time {
        Some((t, Some(range))) if duration.is_none() => (Some(t), Some(range)),
        Some((t, _)) => (Some(t), duration),
        None => (None, duration),
    };
    let date = date.or_else(|| relative_date(&mut s, today));
    let mut spans = s.spans;
    spans.sort();
    When { date, time, duration_minutes: duration, spans }
}

struct Scan<'a> {
    t: &'a [Token],
    used: Vec<bool>,
    spans: Vec<(usize, usize)>,
}

impl Scan<'_> {
    fn get(&self, i: usize) -> Option<&Token> {
        self.t.get(i)
    }
    fn is(&self, i: usize, w: &str) -> bool {
        self.t.get(i).is_some_and(|t| t.is(w))
    }
    fn is_any(&self, i: usize, list: &[&str]) -> bool {
        self.t.get(i).is_some_and(|t| t.is_any(list))
    }
    /// Token `i` follows `i - 1` without whitespace.
    fn tight(&self, i: usize) -> bool {
        self.t.get(i).is_some_and(|t| !t.space_before)
    }
    fn free(&self, i: usize, n: usize) -> bool {
        i + n <= self.t.len() && self.used[i..i + n].iter().all(|u| !u)
    }
    fn take(&mut self, i: usize, n: usize) {
        let n = n.min(self.t.len() - i);
        if n == 0 {
            return;
        }
        for u in &mut self.used[i..i + n] {
            *u = true;
        }
        self.spans.push((self.t[i].start, self.t[i + n - 1].end));
    }
    fn num(&self, i: usize) -> Option<u32> {
        self.t.get(i).and_then(Token::num)
    }
    fn prev_is_any(&self, i: usize, list: &[&str]) -> bool {
        i > 0 && self.is_any(i - 1, list)
    }
}

// ---------------------------------------------------------------- dates

const MONTHS: &[(&str, i8)] = &[
    ("january", 1), ("januar", 1), ("jänner", 1), ("jan", 1),
    ("february", 2), ("februar", 2), ("feb", 2),
    ("march", 3), ("märz", 3), ("maerz", 3), ("mär", 3), ("mar", 3),
    ("april", 4), ("apr", 4),
    ("may", 5), ("mai", 5),
    ("june", 6), ("juni", 6), ("jun", 6),
    ("july", 7), ("juli", 7), ("jul", 7),
    ("august", 8), ("aug", 8),
    ("september", 9), ("sept", 9), ("sep", 9),
    ("october", 10), ("oktober", 10), ("oct", 10), ("okt", 10),
    ("november", 11), ("nov", 11),
    ("december", 12), ("dezember", 12), ("dec", 12), ("dez", 12),
];

fn month(t: Option<&Token>) -> Option<i8> {
    let t = t?;
    MONTHS.iter().find(|(m, _)| t.is(m)).map(|(_, n)| *n)
}

const ORDINAL: &[&str] = &["st", "nd", "rd", "th"];

/// A date with a year, or the next such date on or after today.
fn pick(today: Date, year: Option<i16>, m: i8, d: i8) -> Option<Date> {
    match year {
        Some(y) => Date::new(y, m, d).ok(),
        None => {
            let this = Date::new(today.year(), m, d).ok();
            match this {
                Some(x) if x >= today => Some(x),
                _ => Date::new(today.year() + 1, m, d).ok(),
            }
        }
    }
}

fn year_at(s: &Scan, i: usize) -> Option<i16> {
    let t = s.get(i)?;
    let n = t.num()?;
    match t.text.len() {
        4 if (2000..=2100).contains(&n) => Some(n as i16),
        2 => Some(2000 + n as i16),
        _ => None,
    }
}

/// A date written out: ISO, 16.12.(2026), 16/12/2026, "16. Dezember",
/// "December 16th, 2026", "the 16th". The first one in the text.
fn explicit_date(s: &mut Scan, today: Date) -> Option<Date> {
    for i in 0..s.t.len() {
        if !s.free(i, 1) {
            continue;
        }
        if let Some((d, n)) = date_at(s, i, today) {
            s.take(i, n);
            return Some(d);
        }
    }
    None
}

fn date_at(s: &Scan, i: usize, today: Date) -> Option<(Date, usize)> {
    let t = s.get(i)?;
    let n = t.num();
    // ISO 2026-12-16
    if let (Some(y), true) = (n, t.text.len() == 4) {
        if s.is(i + 1, "-") && s.tight(i + 1) && s.tight(i + 2) && s.is(i + 3, "-") && s.tight(i + 3) && s.tight(i + 4) {
            let (m, d) = (s.num(i + 2)?, s.num(i + 4)?);
            return Date::new(y as i16, m as i8, d as i8).ok().map(|x| (x, 5));
        }
    }
    if let Some(d) = n.filter(|d| (1..=31).contains(d) && t.text.len() <= 2) {
        // 16.12. / 16.12.2026 / 16.12 / 16/12/2026
        if s.is_any(i + 1, &[".", "/"]) && s.tight(i + 1) && s.tight(i + 2) {
            let sep = s.get(i + 1)?.text.clone();
            if let Some(m) = s.num(i + 2).filter(|m| (1..=12).contains(m) && s.get(i + 2).unwrap().text.len() <= 2) {
                let closed = s.is(i + 3, &sep) && s.tight(i + 3);
                if closed {
                    if let Some(y) = year_at(s, i + 4) {
                        return Date::new(y, m as i8, d as i8).ok().map(|x| (x, 5));
                    }
                    return pick(today, None, m as i8, d as i8).map(|x| (x, 4));
                }
                // "16.12" without the closing dot: a date unless a time unit
                // follows ("11.12 Uhr") or nothing marks it as a date.
                let time_next = s.is_any(i + 3, &["uhr", "h", "am", "pm", "o'clock"]);
                let marked = sep == "/" || s.prev_is_any(i, &["am", "on", "den", "bis", "zum", "the", "for", "für", ","]);
                if !time_next && marked && !s.prev_is_any(i, &["um", "at", "gegen"]) {
                    return pick(today, None, m as i8, d as i8).map(|x| (x, 3));
                }
            }
        }
        // 16. Dezember 2026 / 16th of December / 16 Dec
        let mut j = i + 1;
        if s.is(j, ".") || (s.is_any(j, ORDINAL) && s.tight(j)) {
            j += 1;
        }
        if s.is(j, "of") {
            j += 1;
        }
        if let Some(m) = month(s.get(j)) {
            let mut k = j + 1;
            if s.is(k, ".") && s.tight(k) {
                k += 1;
            }
            let y = year_at(s, k).filter(|_| s.get(k).is_some_and(|t| t.text.len() == 4));
            let used = if y.is_some() { k + 1 - i } else { j + 1 - i };
            return pick(today, y, m, d as i8).map(|x| (x, used));
        }
        // "the 16th", "am 16." (no month): this month, or the next
        let ordinal_en = s.is_any(i + 1, ORDINAL) && s.tight(i + 1) && s.prev_is_any(i, &["the", "on"]);
        let ordinal_de = s.is(i + 1, ".") && s.tight(i + 1) && s.prev_is_any(i, &["am", "den", "zum"]) && s.num(i + 2).is_none();
        if ordinal_en || ordinal_de {
            let this = Date::new(today.year(), today.month(), d as i8).ok().filter(|x| *x >= today);
            let next = today.first_of_month().checked_add(jiff::Span::new().months(1)).ok()?;
            let x = this.or_else(|| Date::new(next.year(), next.month(), d as i8).ok())?;
            return Some((x, 2));
        }
    }
    // December 16th(, 2026)
    if let Some(m) = month(Some(t)) {
        let mut j = i + 1;
        if s.is(j, ".") && s.tight(j) {
            j += 1;
        }
        let d = s.num(j).filter(|d| (1..=31).contains(d) && s.get(j).unwrap().text.len() <= 2)?;
        let mut k = j + 1;
        if (s.is_any(k, ORDINAL) && s.tight(k)) || s.is(k, ".") {
            k += 1;
        }
        if s.is(k, ",") {
            k += 1;
        }
        let y = year_at(s, k).filter(|_| s.get(k).is_some_and(|t| t.text.len() == 4));
        let used = if y.is_some() { k + 1 - i } else { k - i };
        return pick(today, y, m, d as i8).map(|x| (x, used));
    }
    None
}

const WEEKDAYS: &[(&str, Weekday)] = &[
    ("monday", Weekday::Monday), ("montag", Weekday::Monday), ("mon", Weekday::Monday),
    ("tuesday", Weekday::Tuesday), ("dienstag", Weekday::Tuesday), ("tue", Weekday::Tuesday),
    ("tues", Weekday::Tuesday), ("tuseday", Weekday::Tuesday),
    ("wednesday", Weekday::Wednesday), ("mittwoch", Weekday::Wednesday), ("wed", Weekday::Wednesday),
    ("wensday", Weekday::Wednesday), ("wednsday", Weekday::Wednesday), ("wendesday", Weekday::Wednesday),
    ("thursday", Weekday::Thursday), ("donnerstag", Weekday::Thursday), ("thu", Weekday::Thursday),
    ("thur", Weekday::Thursday), ("thurs", Weekday::Thursday), ("thursay", Weekday::Thursday),
    ("friday", Weekday::Friday), ("freitag", Weekday::Friday), ("fri", Weekday::Friday), ("firday", Weekday::Friday),
    ("saturday", Weekday::Saturday), ("samstag", Weekday::Saturday), ("sonnabend", Weekday::Saturday),
    ("sat", Weekday::Saturday),
    ("sunday", Weekday::Sunday), ("sonntag", Weekday::Sunday),
];

fn weekday(t: Option<&Token>) -> Option<Weekday> {
    let t = t?;
    WEEKDAYS.iter().find(|(w, _)| t.is(w)).map(|(_, d)| *d)
}

fn add_days(d: Date, n: i64) -> Option<Date> {
    d.checked_add(jiff::Span::new().days(n)).ok()
}

/// Monday of the week `weeks` after today's week.
fn week_day(today: Date, weeks: i64, wd: Weekday) -> Option<Date> {
    let monday = add_days(today, -(today.weekday().to_monday_zero_offset() as i64))?;
    add_days(monday, weeks * 7 + wd.to_monday_zero_offset() as i64)
}

/// The next `wd` strictly after today.
fn next_after(today: Date, wd: Weekday) -> Option<Date> {
    let diff = (wd.to_monday_zero_offset() as i64 - today.weekday().to_monday_zero_offset() as i64 + 7) % 7;
    add_days(today, if diff == 0 { 7 } else { diff })
}

const NEXT: &[&str] = &["next", "nächste", "nächsten", "nächster", "naechste", "naechsten", "naechster"];
const AFTER_NEXT: &[&str] = &["übernächste", "übernächsten", "übernächster", "uebernaechste", "uebernaechsten"];
const THIS: &[&str] = &["this", "diese", "dieser", "diesen"];
const WEEK: &[&str] = &["week", "woche"];
const DAYS: &[&str] = &["day", "days", "tag", "tage", "tagen"];
const WEEKS: &[&str] = &["week", "weeks", "woche", "wochen"];

/// Relative dates: today/tomorrow/übermorgen, "in 4 days", weekdays with
/// "next"/"next week"/"this week".
fn relative_date(s: &mut Scan, today: Date) -> Option<Date> {
    let toks = s.t;
    let n = toks.len();
    // which week a weekday belongs to, when said: +1 next week, +2 the week after, 0 this week
    let mut week_shift: Option<(i64, usize, usize)> = None;
    for i in 0..n {
        if !s.free(i, 1) {
            continue;
        }
        let t = &toks[i];
        let w = t.text.as_str();
        match w {
            "today" | "heute" | "heut" | "tonight" => {
                let mut k = 1;
                if s.is_any(i + 1, &["morgen", "früh", "vormittag", "nachmittag", "abend", "mittag"]) {
                    k = 2; // "heute Morgen" is this morning
                }
                s.take(i, k);
                return Some(today);
            }
            "tomorrow" | "tmrw" | "tmr" | "tomorow" | "tommorow" | "tommorrow" => {
                if s.prev_is_any(i, &["after"]) && i >= 2 && s.is(i - 2, "day") {
                    s.take(i - 2, 3);
                    return add_days(today, 2);
                }
                s.take(i, 1);
                return add_days(today, 1);
            }
            "morgen" if !s.prev_is_any(i, &["guten", "am", "jeden", "gestern", "heute", "den", "einen", "schönen"]) => {
                s.take(i, 1);
                return add_days(today, 1);
            }
            "übermorgen" | "uebermorgen" => {
                s.take(i, 1);
                return add_days(today, 2);
            }
            "in" | "within" => {
                // in 4 days / in vier Tagen / in a week / in einer Woche
                let (count, used) = match s.get(i + 1) {
                    Some(a) if a.is_any(&["a", "an", "one"]) => (1, 1),
                    _ => match number_at(toks, i + 1) {
                        Some((v, u)) => (v, u),
                        None => continue,
                    },
                };
                let unit = i + 1 + used;
                if s.is_any(unit, DAYS) && w == "in" {
                    s.take(i, unit + 1 - i);
                    return add_days(today, count as i64);
                }
                if s.is_any(unit, WEEKS) && w == "in" {
                    s.take(i, unit + 1 - i);
                    return add_days(today, 7 * count as i64);
                }
            }
            _ => {}
        }
        if week_shift.is_none() {
            if s.is_any(i + 1, WEEK) && (t.is_any(NEXT) || t.is_any(&["kommende", "kommenden", "coming"])) {
                week_shift = Some((1, i, 2));
            } else if s.is_any(i + 1, WEEK) && t.is_any(AFTER_NEXT) {
                week_shift = Some((2, i, 2));
            } else if t.is_any(&["übernächste", "uebernaechste"]) && s.is_any(i + 1, WEEK) {
                week_shift = Some((2, i, 2));
            } else if s.is_any(i + 1, WEEK) && t.is_any(THIS) {
                week_shift = Some((0, i, 2));
            } else if w == "week" && s.is(i + 1, "after") && s.is(i + 2, "next") {
                week_shift = Some((2, i, 3));
            }
        }
    }
    // weekdays
    for i in 0..n {
        if !s.free(i, 1) {
            continue;
        }
        let Some(wd) = weekday(s.get(i)) else { continue };
        if let Some((shift, at, len)) = week_shift {
            // the week phrase next to the weekday (either side, a few words apart)
            if at.abs_diff(i) <= 4 {
                s.take(at, len);
                s.take(i, 1);
                return week_day(today, shift, wd);
            }
        }
        if i > 0 && s.is_any(i - 1, NEXT) {
            s.take(i - 1, 2);
            return week_day(today, 1, wd);
        }
        if i > 0 && s.is_any(i - 1, AFTER_NEXT) {
            s.take(i - 1, 2);
            return week_day(today, 2, wd);
        }
        if s.is(i + 1, "after") && s.is(i + 2, "next") {
            s.take(i, 3);
            return week_day(today, 2, wd);
        }
        s.take(i, 1);
        return next_after(today, wd);
    }
    None
}

// ---------------------------------------------------------------- durations

const MINUTES: &[&str] = &["min", "mins", "minute", "minutes", "minuten", "minütig", "minütige", "minütigen", "minütiges", "minütigem", "minuetig", "m"];
const HOURS: &[&str] = &["hour", "hours", "hr", "hrs", "stunde", "stunden", "std", "stündig", "stündige", "stündigen", "stündiges"];
/// Words before a number that make "2 hours" a time span in the past or a
/// relative time, not the length of a meeting.
const NOT_LENGTH: &[&str] =
    &["in", "vor", "seit", "since", "last", "letzten", "letzte", "past", "every", "alle", "jede", "jeden", "within", "innerhalb", "nach", "after"];

/// The length of the meeting, in minutes: "for an hour", "45 Minuten",
/// "eine halbe Stunde", "90 min", "1,5 Stunden", "2 hours and 15 minutes".
fn duration(s: &mut Scan) -> Option<u32> {
    let n = s.t.len();
    for i in 0..n {
        if !s.free(i, 1) {
            continue;
        }
        if let Some((mins, used)) = duration_at(s, i) {
            if s.prev_is_any(i, NOT_LENGTH) || s.is(i + used, "ago") {
                continue;
            }
            // "2 hours and 15 minutes" / "1 Stunde 30"
            let mut total = mins;
            let mut used = used;
            let k = i + used;
            let j = if s.is_any(k, &["and", "und"]) { k + 1 } else { k };
            if mins % 60 == 0 {
                if let Some((m2, u2)) = duration_at(s, j) {
                    if m2 < 60 {
                        total += m2;
                        used = j + u2 - i;
                    }
                }
            }
            s.take(i, used);
            return Some(total);
        }
    }
    None
}

fn unit_at(s: &Scan, i: usize) -> Option<(u32, usize)> {
    // an optional hyphen: "45-minute", "2-stündigen"
    let (j, extra) = if s.is(i, "-") { (i + 1, 1) } else { (i, 0) };
    let t = s.get(j)?;
    if t.is_any(MINUTES) {
        if t.is("m") && !s.tight(j) {
            return None;
        }
        Some((1, 1 + extra))
    } else if t.is_any(HOURS) {
        Some((60, 1 + extra))
    } else {
        None
    }
}

fn duration_at(s: &Scan, i: usize) -> Option<(u32, usize)> {
    let t = s.get(i)?;
    let w = t.text.as_str();
    // fixed phrases first
    let phrase = |words: &[&str]| words.iter().enumerate().all(|(k, x)| s.is(i + k, x));
    let fixed: &[(&[&str], u32)] = &[
        (&["half", "an", "hour"], 30),
        (&["half", "hour"], 30),
        (&["half", "-", "hour"], 30),
        (&["halbe", "stunde"], 30),
        (&["halben", "stunde"], 30),
        (&["halbstündig"], 30),
        (&["halbstündigen"], 30),
        (&["halbstündige"], 30),
        (&["an", "hour", "and", "a", "half"], 90),
        (&["one", "and", "a", "half", "hours"], 90),
        (&["an", "hour", "and", "a", "quarter"], 75),
        (&["anderthalb", "stunden"], 90),
        (&["eineinhalb", "stunden"], 90),
        (&["einer", "dreiviertelstunde"], 45),
        (&["dreiviertelstunde"], 45),
        (&["dreiviertel", "stunde"], 45),
        (&["three", "quarters", "of", "an", "hour"], 45),
        (&["a", "quarter", "of", "an", "hour"], 15),
        (&["quarter", "of", "an", "hour"], 15),
        (&["quarter", "hour"], 15),
        (&["quarter", "-", "hour"], 15),
        (&["viertelstunde"], 15),
        (&["viertel", "stunde"], 15),
        (&["an", "hour"], 60),
        (&["one", "hour"], 60),
        (&["a", "full", "hour"], 60),
        (&["eine", "stunde"], 60),
        (&["einer", "stunde"], 60),
        (&["ein", "paar", "minuten"], 15),
        (&["a", "few", "minutes"], 15),
    ];
    for (words, mins) in fixed {
        if phrase(words) {
            return Some((*mins, words.len()));
        }
    }
    // 1,5 / 1.5 hours
    if let (Some(a), true) = (t.num(), s.is_any(i + 1, &[",", "."]) && s.tight(i + 1) && s.tight(i + 2)) {
        if let Some(b) = s.num(i + 2).filter(|_| s.get(i + 2).unwrap().text.len() == 1) {
            if let Some((60, u)) = unit_at(s, i + 3) {
                return Some((a * 60 + b * 6, 3 + u));
            }
        }
    }
    let (v, used) = number_at(s.t, i)?;
    if w == "ein" || w == "eine" || w == "einer" || w == "einen" {
        // "eine Stunde" is above; "ein 45-Minuten-Termin" is not a 1
        if !s.is_any(i + 1, HOURS) {
            return None;
        }
    }
    let (unit, u) = unit_at(s, i + used)?;
    let mins = v * unit;
    (5..=600).contains(&mins).then_some((mins, used + u))
}

// ---------------------------------------------------------------- times

const MORNING: &[&str] = &["morning", "morgens", "vormittag", "vormittags", "früh", "frueh"];
const AFTERNOON: &[&str] = &["afternoon", "nachmittag", "nachmittags", "abend", "abends", "evening", "tonight", "pm"];
/// Words after a bare number that make it not an hour ("at 3 locations").
const NOT_HOUR_NEXT: &[&str] = &[
    "days", "day", "tage", "tagen", "tag", "weeks", "wochen", "minutes", "minuten", "min", "mins", "hours", "stunden",
    "people", "personen", "leute", "users", "nutzer", "stück", "pcs", "units", "x", "%", "euro", "eur", "€", "$",
];

/// Words that may follow a bare hour ("at 3 tomorrow", "um 3 bitte").
const FOLLOW_HOUR: &[&str] = &[
    "uhr", "o'clock", "bis", "to", "till", "until", "and", "und", "for", "für", "on", "am", "tomorrow", "morgen",
    "today", "heute", "übermorgen", "next", "nächste", "nächsten", "this", "diese", "diesen", "please", "bitte", "in",
    "with", "mit", "about", "wegen", "zum", "zur", "zu", "if", "wenn", "or", "oder", "then", "dann", "thema", "topic",
    "re", "regarding", "is", "ist", "works", "passt", "geht", "would", "würde", "okay", "ok", "ca", "circa", "über",
    "a", "an", "ein", "eine", "einen", "einer", "the", "der", "die", "das", "den", "dem", "that", "because", "weil",
    "so", "noch", "sharp", "pünktlich", "genau", "instead", "statt", "lieber", "rather", "bezüglich", "betreffend",
    "es", "it", "we", "wir", "i", "ich", "you", "sie", "du", "thanks", "danke", "at", "um", "as", "wie", "can", "kann",
    "können", "could", "vereinbaren", "eintragen", "buchen", "book", "ausmachen", "reservieren", "einplanen", "termin",
];

/// The business-hours reading of an hour said without am/pm: 1–7 is the
/// afternoon unless a morning word is in the message or it was written
/// with two digits ("07:30").
fn business(h: u32, m: u32, short: bool, toks: &[Token]) -> Time {
    let morning = toks.iter().any(|t| t.is_any(MORNING));
    let afternoon = toks.iter().any(|t| t.is_any(AFTERNOON) && !t.is("pm"));
    let h = if h < 12 && afternoon {
        h + 12
    } else if (1..=7).contains(&h) && short && !morning {
        h + 12
    } else {
        h
    };
    Time::new(h.min(23) as i8, m.min(59) as i8, 0, 0).unwrap_or(Time::midnight())
}

fn clock(h: u32, m: u32, meridiem: Option<&str>) -> Option<Time> {
    let h = match meridiem {
        Some("pm") if h < 12 => h + 12,
        Some("am") if h == 12 => 0,
        _ => h,
    };
    (h <= 23 && m <= 59).then(|| Time::new(h as i8, m as i8, 0, 0).ok()).flatten()
}

/// am/pm after token `i`: "am", "pm", "a.m.", "p.m." → (which, tokens).
/// German "am" ("um 9 am Freitag", "am 16.") is not a.m.: a spaced "am"
/// counts only when no weekday, number, month or day-part follows.
fn meridiem(s: &Scan, i: usize) -> Option<(&'static str, usize)> {
    let t = s.get(i)?;
    match t.text.as_str() {
        "am" => {
            let next = s.get(i + 1);
            let german = next.is_some_and(|n| {
                n.kind == Kind::Num
                    || weekday(Some(n)).is_some()
                    || month(Some(n)).is_some()
                    || n.is_any(&["morgen", "vormittag", "nachmittag", "abend", "mittag", "ende", "anfang", "besten", "liebsten", "tag"])
            });
            (s.tight(i) || !german).then_some(("am", 1))
        }
        "pm" => Some(("pm", 1)),
        "a" | "p" if s.is(i + 1, ".") && s.is(i + 2, "m") && s.tight(i + 1) => {
            let n = if s.is(i + 3, ".") { 4 } else { 3 };
            Some((if t.is("a") { "am" } else { "pm" }, n))
        }
        _ => None,
    }
}

/// The time of day, and a length when it was said as a range ("von 10 bis
/// 11 Uhr", "from 2 to 3:30pm").
fn time_of_day(s: &mut Scan) -> Option<(Time, Option<u32>)> {
    for i in 0..s.t.len() {
        if !s.free(i, 1) {
            continue;
        }
        if let Some((t, used)) = time_at(s, i) {
            if !s.free(i, used) {
                continue;
            }
            s.take(i, used);
            let k = i + used;
            if s.is_any(k, &["bis", "to", "till", "until", "-", "–", "and", "und"]) && s.free(k + 1, 1) {
                let end = time_at(s, k + 1).or_else(|| bare_hour_at(s, k + 1));
                if let Some((e, u)) = end {
                    // "2 to 3pm": the start takes the end's afternoon
                    let mut start = t;
                    if e.hour() >= 12 && start.hour() < 12 && e.hour() - 12 >= start.hour() {
                        start = Time::new(start.hour() + 12, start.minute(), 0, 0).unwrap_or(start);
                    }
                    let len = (e.hour() as i32 * 60 + e.minute() as i32) - (start.hour() as i32 * 60 + start.minute() as i32);
                    if (5..=480).contains(&len) {
                        s.take(k, 1 + u);
                        return Some((start, Some(len as u32)));
                    }
                }
            }
            return Some((t, None));
        }
    }
    None
}

/// "at 3" / "um 16" / "von 10": a bare hour after a time preposition.
fn bare_hour_at(s: &Scan, i: usize) -> Option<(Time, usize)> {
    let t = s.get(i)?;
    let (h, used) = number_at(s.t, i)?;
    if h > 23 || t.text.len() > 2 && t.kind == Kind::Num {
        return None;
    }
    if t.kind == Kind::Word && (h == 0 || h > 12) {
        return None;
    }
    if s.is_any(i + used, NOT_HOUR_NEXT) || s.is_any(i + used, &[".", ":", "/"]) && s.num(i + used + 1).is_some() {
        return None;
    }
    if month(s.get(i + used)).is_some() || s.is_any(i + used, ORDINAL) && s.tight(i + used) || meridiem(s, i + used).is_some() {
        return None;
    }
    if let Some(next) = s.get(i + used).filter(|n| n.kind == Kind::Word) {
        // a bare hour is followed by punctuation, a clock word or a function word, not by a noun
        let ok = next.is_any(FOLLOW_HOUR)
            || next.is_any(MORNING)
            || next.is_any(AFTERNOON)
            || weekday(Some(next)).is_some()
            || meridiem(s, i + used).is_some();
        if !ok {
            return None;
        }
    }
    let mut k = used;
    if s.is_any(i + k, &["o'clock", "uhr"]) {
        k += 1;
    }
    let short = t.kind == Kind::Word || t.text.len() == 1;
    Some((business(h, 0, short, s.t), k))
}

fn time_at(s: &Scan, i: usize) -> Option<(Time, usize)> {
    let t = s.get(i)?;
    let w = t.text.as_str();
    // "noon", "mittags"
    if matches!(w, "noon" | "midday" | "mittag" | "mittags" | "mittagszeit") && !s.is_any(i + 1, &["pause", "break"]) {
        return Some((Time::new(12, 0, 0, 0).ok()?, 1));
    }
    // halb drei = 14:30 ; half past two = 14:30
    if w == "halb" {
        let (h, u) = number_at(s.t, i + 1).filter(|(h, _)| (1..=12).contains(h))?;
        let h0 = if h == 1 { 12 } else { h - 1 };
        return Some((business(h0, 30, true, s.t), 1 + u));
    }
    // Viertel nach zwei / Viertel vor vier / dreiviertel vier / quarter past|to
    let quarter = |k: usize| -> Option<(Time, usize)> {
        let dir = s.get(k)?;
        let (h, u) = number_at(s.t, k + 1).filter(|(h, _)| (1..=12).contains(h))?;
        if dir.is_any(&["nach", "past", "after"]) {
            Some((business(h, 15, true, s.t), 1 + u))
        } else if dir.is_any(&["vor", "to", "before", "of", "till"]) {
            let h0 = if h == 1 { 12 } else { h - 1 };
            Some((business(h0, 45, true, s.t), 1 + u))
        } else {
            None
        }
    };
    if w == "viertel" {
        if let Some((tm, u)) = quarter(i + 1) {
            return Some((tm, 1 + u));
        }
    }
    if w == "quarter" || (w == "a" && s.is(i + 1, "quarter")) {
        let q = if w == "a" { i + 1 } else { i };
        if let Some((tm, u)) = quarter(q + 1) {
            return Some((tm, q - i + 1 + u));
        }
    }
    if w == "dreiviertel" {
        let (h, u) = number_at(s.t, i + 1).filter(|(h, _)| (1..=12).contains(h))?;
        let h0 = if h == 1 { 12 } else { h - 1 };
        return Some((business(h0, 45, true, s.t), 1 + u));
    }
    if w == "half" && s.is(i + 1, "past") {
        let (h, u) = number_at(s.t, i + 2).filter(|(h, _)| (1..=12).contains(h))?;
        return Some((business(h, 30, true, s.t), 2 + u));
    }
    // "um zehn nach drei", "at ten to four"
    if matches!(w, "um" | "at" | "gegen" | "around") {
        if let Some((m, u)) = number_at(s.t, i + 1).filter(|(m, _)| matches!(m, 5 | 10 | 20 | 25)) {
            let dir = i + 1 + u;
            if let Some((h, u2)) = number_at(s.t, dir + 1).filter(|(h, _)| (1..=12).contains(h)) {
                if s.is_any(dir, &["nach", "past", "after"]) {
                    return Some((business(h, m, true, s.t), 1 + u + 1 + u2));
                }
                if s.is_any(dir, &["vor", "to", "before"]) {
                    let h0 = if h == 1 { 12 } else { h - 1 };
                    return Some((business(h0, 60 - m, true, s.t), 1 + u + 1 + u2));
                }
            }
        }
    }
    // 10:30 / 15.30 Uhr / 3.30pm
    if let Some(h) = t.num().filter(|h| *h <= 23 && t.text.len() <= 2) {
        let sep_colon = s.is(i + 1, ":");
        let sep_dot = s.is(i + 1, ".");
        if (sep_colon || sep_dot) && s.tight(i + 1) && s.tight(i + 2) {
            if let Some(m) = s.num(i + 2).filter(|m| *m <= 59 && s.get(i + 2).unwrap().text.len() == 2) {
                let mut used = 3;
                if sep_colon && s.is(i + 3, ":") && s.tight(i + 3) && s.num(i + 4).is_some() {
                    used = 5; // seconds
                }
                let mer = meridiem(s, i + used);
                let uhr = s.is_any(i + used, &["uhr", "h"]);
                let prep = i > 0 && s.is_any(i - 1, &["um", "at", "gegen", "around", "ab", "from", "von", "by", "bis"]);
                if sep_colon || mer.is_some() || uhr || prep {
                    let time = match mer {
                        Some((m2, _)) => clock(h, m, Some(m2))?,
                        None => business(h, m, t.text.len() == 1, s.t),
                    };
                    let extra = mer.map(|(_, n)| n).unwrap_or(usize::from(uhr));
                    return Some((time, used + extra));
                }
            }
        }
        // 3pm / 11 am / 11 a.m.
        if let Some((mer, n)) = meridiem(s, i + 1) {
            if (1..=12).contains(&h) {
                return Some((clock(h, 0, Some(mer))?, 1 + n));
            }
        }
        // 16 Uhr (30)
        if s.is_any(i + 1, &["uhr", "o'clock"]) {
            let mut used = 2;
            let mut m = 0;
            if s.is(i + 1, "uhr") {
                if let Some(mm) = s.num(i + 2).filter(|mm| *mm <= 59 && s.get(i + 2).unwrap().text.len() == 2) {
                    m = mm;
                    used = 3;
                }
            }
            return Some((business(h, m, t.text.len() == 1, s.t), used));
        }
    }
    // neun Uhr / three o'clock / three pm
    if t.kind == Kind::Word {
        if let Some((h, u)) = number_at(s.t, i).filter(|(h, _)| (1..=12).contains(h)) {
            if s.is_any(i + u, &["uhr", "o'clock"]) {
                return Some((business(h, 0, true, s.t), u + 1));
            }
            if let Some((mer, n)) = meridiem(s, i + u).filter(|(m, _)| *m == "pm" || !s.is(i + u, "am")) {
                return Some((clock(h, 0, Some(mer))?, u + n));
            }
        }
    }
    // um 16 / at 3 / ab 9 / from 10
    if matches!(w, "um" | "at" | "gegen" | "around" | "ab" | "from" | "von" | "between" | "zwischen") {
        if let Some((tm, u)) = bare_hour_at(s, i + 1) {
            if w == "ab" || w == "von" || w == "from" || w == "between" || w == "zwischen" {
                // "von 10 bis 11" is a time; "ab 9" only with a clock word
                if !(s.is_any(i + 1 + u, &["bis", "to", "till", "until", "-", "–", "and", "und"]) || s.is_any(i + u, &["uhr", "o'clock"])) {
                    return None;
                }
            }
            return Some((tm, 1 + u));
        }
    }
    None
}

#[cfg(test)]
#[path = "when_tests.rs"]
mod tests;
