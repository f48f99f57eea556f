//! `book_appointment {"date", "time", "duration_minutes", "topic"}` →
//! `{appointment_id, date, time, duration_minutes, topic, start, end}`.
//!
//! Owns: the booking rules. Refused with [`ToolError::SlotUnavailable`]
//! (free slots offered): a start before "now", a slot outside opening hours,
//! a slot overlapping a busy time of the imported calendar or another
//! appointment. Intervals are half-open: a booking may start exactly when a
//! busy time ends. Also the appointments' .ics export. Never: double
//! booking (the check and the insert run in the caller's one write
//! transaction).

use std::path::Path;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

use super::{arg_str, ExecCtx};
use crate::error::{DbCtx, Result, ToolError};
use crate::hours::{overlaps, parse_hhmm, rfc3339, Interval};
use crate::ics::{self, ExportEvent};
use crate::store::{appointments_on, busy_on, new_id, ToolStore};

fn invalid(errors: String) -> ToolError {
    ToolError::InvalidArguments { tool: "book_appointment".into(), errors: vec![errors] }
}

/// Every interval the calendar and earlier appointments block.
fn blocked(conn: &Connection, path: &Path) -> Result<Vec<(Interval, String)>> {
    let mut out = Vec::new();
    for b in busy_on(conn, path)? {
        if let (Ok(s), Ok(e)) = (Timestamp::from_second(b.start), Timestamp::from_second(b.end)) {
            out.push(((s, e), "a busy time in the calendar".to_string()));
        }
    }
    for a in appointments_on(conn, path)? {
        if let (Ok(s), Ok(e)) = (Timestamp::from_second(a.start_unix), Timestamp::from_second(a.end_unix)) {
            out.push(((s, e), format!("appointment {}", a.appointment_id)));
        }
    }
    Ok(out)
}

pub(super) fn run(conn: &Connection, path: &Path, args: &Value, ctx: &ExecCtx, action: Option<&str>) -> Result<Value> {
    let hours = ctx.hours.resolve()?;
    let date_s = arg_str(args, "date");
    let time_s = arg_str(args, "time");
    let minutes = args.get("duration_minutes").and_then(Value::as_i64).unwrap_or(30);
    let topic = args.get("topic").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
    let date: Date = date_s.parse().map_err(|_| invalid(format!("date {date_s:?} is not a calendar date")))?;
    let time = parse_hhmm(time_s).ok_or_else(|| invalid(format!("time {time_s:?} is not a time of day")))?;
    if !(15..=240).contains(&minutes) {
        return Err(invalid(format!("duration_minutes {minutes} is outside 15..240")));
    }
    let start = date.to_datetime(time).to_zoned(hours.tz.clone()).map_err(|e| invalid(e.to_string()))?;
    let end = start.checked_add(minutes.minutes()).map_err(|e| invalid(e.to_string()))?;
    let iv = (start.timestamp(), end.timestamp());
    let blocked = blocked(conn, path)?;
    let busy: Vec<Interval> = blocked.iter().map(|(i, _)| *i).collect();
    let refuse = |reason: String| {
        let free_slots = hours.free_slots(&busy, &ctx.now, date, minutes, 5);
        Err(ToolError::SlotUnavailable { reason, free_slots })
    };
    if start.timestamp() < ctx.now.timestamp() {
        return refuse(format!("{date_s} {time_s} is in the past"));
    }
    if let Some(why) = hours.outside(&start, minutes) {
        return refuse(why);
    }
    if let Some((_, what)) = blocked.iter().find(|(b, _)| overlaps(iv, *b)) {
        return refuse(format!("{date_s} {time_s} ({minutes} min) conflicts with {what}"));
    }
    let id = new_id("apt_");
    let time_text = start.strftime("%H:%M").to_string();
    let tz_name = hours.tz.iana_name().unwrap_or("UTC").to_string();
    conn.execute(
        "INSERT INTO appointments(id, action_id, date, time, duration_minutes, topic, start, end, tz, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            action,
            date.to_string(),
            time_text,
            minutes,
            topic,
            start.timestamp().as_second(),
            end.timestamp().as_second(),
            tz_name,
            rfc3339(&ctx.now)
        ],
    )
    .db(path)?;
    Ok(json!({
        "appointment_id": id,
        "date": date.to_string(),
        "time": time_text,
        "duration_minutes": minutes,
        "topic": topic,
        "start": rfc3339(&start),
        "end": rfc3339(&end),
    }))
}

/// The booked appointments as an iCalendar file (times in UTC; SUMMARY the
/// topic, else "Appointment").
pub fn export_ics(store: &ToolStore) -> Result<String> {
    let apts = store.appointments()?;
    let stamps: Vec<Timestamp> = apts
        .iter()
        .map(|a| a.created.parse::<jiff::Zoned>().map(|z| z.timestamp()).or_else(|_| a.created.parse::<Timestamp>()).unwrap_or(Timestamp::UNIX_EPOCH))
        .collect();
    let mut events = Vec::new();
    for (a, stamp) in apts.iter().zip(&stamps) {
        let (Ok(start), Ok(end)) = (Timestamp::from_second(a.start_unix), Timestamp::from_second(a.end_unix)) else { continue };
        events.push(ExportEvent {
            uid: &a.appointment_id,
            summary: a.topic.as_deref().unwrap_or("Appointment"),
            description: None,
            start,
            end,
            stamp: *stamp,
        });
    }
    Ok(ics::write(&events))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ctx, dev_store};
    use super::*;
    use crate::builtin::execute;

    const NOW: &str = "2026-12-07T08:30:00Z"; // Monday 09:30 in Berlin

    fn book(s: &ToolStore, date: &str, time: &str, minutes: i64) -> Result<Value> {
        execute(s, "book_appointment", &json!({"date": date, "time": time, "duration_minutes": minutes, "topic": "Firewall-Angebot"}), &ctx(NOW))
    }

    fn refused(r: Result<Value>) -> (String, Vec<crate::hours::Slot>) {
        match r {
            Err(ToolError::SlotUnavailable { reason, free_slots }) => (reason, free_slots),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn books_a_free_slot_and_returns_the_contract_fields() {
        let (_d, s) = dev_store();
        let v = book(&s, "2026-12-08", "10:30", 30).unwrap();
        assert_eq!(v["date"], "2026-12-08");
        assert_eq!(v["time"], "10:30");
        assert_eq!(v["duration_minutes"], 30);
        assert_eq!(v["topic"], "Firewall-Angebot");
        assert_eq!(v["start"], "2026-12-08T10:30:00+01:00");
        assert_eq!(v["end"], "2026-12-08T11:00:00+01:00");
        assert!(v["appointment_id"].as_str().unwrap().starts_with("apt_"));
        let a = s.appointments().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].start, "2026-12-08T10:30:00+01:00");
        // the appointment now blocks its own slot
        let (reason, _) = refused(book(&s, "2026-12-08", "10:45", 30));
        assert!(reason.contains("appointment apt_"), "{reason}");
    }

    #[test]
    fn touching_a_busy_time_is_allowed_overlapping_is_not() {
        let (_d, s) = dev_store();
        // busy 2026-12-08 09:00-10:00 and 13:00-15:00
        book(&s, "2026-12-08", "10:00", 60).unwrap();
        book(&s, "2026-12-08", "12:00", 60).unwrap();
        book(&s, "2026-12-08", "15:00", 30).unwrap();
        let (reason, slots) = refused(book(&s, "2026-12-08", "14:30", 60));
        assert!(reason.contains("busy time"), "{reason}");
        assert!(!slots.is_empty());
        assert!(slots.iter().all(|x| x.date.as_str() >= "2026-12-08"));
        assert_eq!((slots[0].time.as_str(), slots[1].time.as_str()), ("11:00", "15:30"), "{slots:?}");
        refused(book(&s, "2026-12-08", "09:30", 30));
        // the all-day fair on 2026-12-10 blocks the whole day
        let (_, slots) = refused(book(&s, "2026-12-10", "11:00", 30));
        assert_eq!(slots[0].date, "2026-12-11", "{slots:?}");
        // the UTC webinar 12:30-13:30Z is 13:30-14:30 in Berlin
        refused(book(&s, "2026-12-16", "14:00", 30));
        book(&s, "2026-12-16", "14:30", 30).unwrap();
        // the DURATION event 15:00-16:00 on the 14th
        refused(book(&s, "2026-12-14", "15:30", 15));
        book(&s, "2026-12-14", "16:00", 30).unwrap();
    }

    #[test]
    fn refuses_outside_hours_weekends_and_the_past() {
        let (_d, s) = dev_store();
        let (r, slots) = refused(book(&s, "2026-12-08", "08:30", 30));
        assert!(r.contains("outside opening hours"), "{r}");
        assert_eq!(slots[0].time, "10:00", "first free slot that day: {slots:?}");
        assert!(refused(book(&s, "2026-12-08", "16:45", 30)).0.contains("outside opening hours"));
        assert!(refused(book(&s, "2026-12-12", "10:00", 30)).0.contains("outside opening days"));
        assert!(refused(book(&s, "2026-12-07", "09:00", 30)).0.contains("in the past"));
        book(&s, "2026-12-08", "16:30", 30).unwrap();
        assert!(matches!(book(&s, "2026-02-30", "10:00", 30), Err(ToolError::InvalidArguments { .. })));
        assert!(matches!(book(&s, "2026-12-08", "25:00", 30), Err(ToolError::InvalidArguments { .. })));
        assert!(matches!(book(&s, "2026-12-08", "10:00", 500), Err(ToolError::InvalidArguments { .. })));
        assert_eq!(s.appointments().unwrap().len(), 1);
    }

    #[test]
    fn exports_appointments_as_ics() {
        let (_d, s) = dev_store();
        book(&s, "2026-12-08", "10:30", 45).unwrap();
        let text = export_ics(&s).unwrap();
        let ev = ics::parse(&text, &jiff::tz::TimeZone::UTC).unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].start, "2026-12-08T09:30:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(ev[0].end, "2026-12-08T10:15:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(ev[0].summary.as_deref(), Some("Firewall-Angebot"));
    }
}
