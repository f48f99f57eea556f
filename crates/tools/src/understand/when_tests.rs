use super::*;

/// 2026-12-10 is a Thursday.
fn now(s: &str) -> Zoned {
    format!("{s}[Europe/Berlin]").parse().unwrap()
}
fn thu() -> Zoned {
    now("2026-12-10T08:45:00+01:00")
}
fn fri() -> Zoned {
    now("2026-12-11T16:20:00+01:00")
}

fn d(text: &str, n: &Zoned) -> Option<String> {
    resolve(text, n).date.map(fmt_date)
}
fn t(text: &str) -> Option<String> {
    resolve(text, &thu()).time.map(fmt_time)
}
fn len(text: &str) -> Option<u32> {
    resolve(text, &thu()).duration_minutes
}

#[test]
fn relative_days_en_de() {
    let n = thu();
    assert_eq!(d("tomorrow at 10", &n).as_deref(), Some("2026-12-11"));
    assert_eq!(d("Geht es morgen um 10?", &n).as_deref(), Some("2026-12-11"));
    assert_eq!(d("Morgen früh bitte", &n).as_deref(), Some("2026-12-11"));
    assert_eq!(d("übermorgen halb drei", &n).as_deref(), Some("2026-12-12"));
    assert_eq!(d("the day after tomorrow", &n).as_deref(), Some("2026-12-12"));
    assert_eq!(d("heute um 16 Uhr", &n).as_deref(), Some("2026-12-10"));
    assert_eq!(d("today at 3", &n).as_deref(), Some("2026-12-10"));
    assert_eq!(d("in vier Tagen um 9 Uhr", &n).as_deref(), Some("2026-12-14"));
    assert_eq!(d("in 3 days", &n).as_deref(), Some("2026-12-13"));
    assert_eq!(d("in einer Woche", &n).as_deref(), Some("2026-12-17"));
    assert_eq!(d("in two weeks", &n).as_deref(), Some("2026-12-24"));
    // greetings and day parts are not "tomorrow"
    assert_eq!(d("Guten Morgen, einen Termin bitte", &n), None);
    assert_eq!(d("heute Morgen ging der Drucker nicht", &n).as_deref(), Some("2026-12-10"));
}

#[test]
fn friday_plus_one_is_saturday_still() {
    // the booking tool refuses the weekend later; understanding keeps the date
    assert_eq!(d("tomorrow at 10", &fri()).as_deref(), Some("2026-12-12"));
}

#[test]
fn weekdays() {
    let n = thu();
    assert_eq!(d("on Friday at 11am", &n).as_deref(), Some("2026-12-11"));
    assert_eq!(d("am Donnerstag", &n).as_deref(), Some("2026-12-17")); // today is Thursday: the next one
    assert_eq!(d("this Friday", &n).as_deref(), Some("2026-12-11"));
    assert_eq!(d("am Montag", &n).as_deref(), Some("2026-12-14"));
    assert_eq!(d("nächsten Dienstag um 15 Uhr", &n).as_deref(), Some("2026-12-15"));
    assert_eq!(d("next Tuesday", &n).as_deref(), Some("2026-12-15"));
    assert_eq!(d("next week wednesday 10:45", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("nächste Woche Mittwoch", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("Mittwoch nächste Woche", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("nächste Woche am Freitag", &n).as_deref(), Some("2026-12-18"));
    assert_eq!(d("übernächsten Montag", &n).as_deref(), Some("2026-12-21"));
    assert_eq!(d("Friday next week", &n).as_deref(), Some("2026-12-18"));
    // said on a Monday, "next Wednesday" is next week's
    let mon = now("2026-12-07T09:30:00+01:00");
    assert_eq!(d("next Wednesday", &mon).as_deref(), Some("2026-12-16"));
    assert_eq!(d("Wednesday", &mon).as_deref(), Some("2026-12-09"));
    assert_eq!(d("kommenden Mittwoch", &mon).as_deref(), Some("2026-12-09"));
    // "next week" alone is no date
    assert_eq!(d("sometime next week", &n), None);
}

#[test]
fn explicit_dates() {
    let n = thu();
    assert_eq!(d("am 16.12. um 11:15", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("am 16.12.2026", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("on 2026-12-16", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("December 16th at 2pm", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("on Dec 16, 2026", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("16. Dezember", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("Montag, 21. Dezember, 14 Uhr", &n).as_deref(), Some("2026-12-21"));
    assert_eq!(d("the 16th of December", &n).as_deref(), Some("2026-12-16"));
    assert_eq!(d("on the 18th", &n).as_deref(), Some("2026-12-18"));
    assert_eq!(d("am 5.1.", &n).as_deref(), Some("2027-01-05")); // past this year: next year
    assert_eq!(d("am 3. Januar", &n).as_deref(), Some("2027-01-03"));
    assert_eq!(d("16/12/2026", &n).as_deref(), Some("2026-12-16"));
    // not dates
    assert_eq!(d("Firmware 2.1 macht Probleme", &n), None);
    assert_eq!(d("um 15.30 Uhr", &n), None);
    assert_eq!(d("May I book something?", &n), None);
}

#[test]
fn times() {
    assert_eq!(t("10:30").as_deref(), Some("10:30"));
    assert_eq!(t("um 16 Uhr").as_deref(), Some("16:00"));
    assert_eq!(t("at 3").as_deref(), Some("15:00"));
    assert_eq!(t("um 3").as_deref(), Some("15:00"));
    assert_eq!(t("um 9 Uhr").as_deref(), Some("09:00"));
    assert_eq!(t("halb drei").as_deref(), Some("14:30"));
    assert_eq!(t("halb 10").as_deref(), Some("09:30"));
    assert_eq!(t("Viertel nach zwei").as_deref(), Some("14:15"));
    assert_eq!(t("Viertel vor vier").as_deref(), Some("15:45"));
    assert_eq!(t("a quarter to four").as_deref(), Some("15:45"));
    assert_eq!(t("quarter past ten").as_deref(), Some("10:15"));
    assert_eq!(t("half past two").as_deref(), Some("14:30"));
    assert_eq!(t("at noon").as_deref(), Some("12:00"));
    assert_eq!(t("mittags").as_deref(), Some("12:00"));
    assert_eq!(t("3pm").as_deref(), Some("15:00"));
    assert_eq!(t("at 11am").as_deref(), Some("11:00"));
    assert_eq!(t("at 1 pm").as_deref(), Some("13:00"));
    assert_eq!(t("at 8 p.m.").as_deref(), Some("20:00"));
    assert_eq!(t("12 pm").as_deref(), Some("12:00"));
    assert_eq!(t("15.30 Uhr").as_deref(), Some("15:30"));
    assert_eq!(t("um 9:30").as_deref(), Some("09:30"));
    assert_eq!(t("at 3:30").as_deref(), Some("15:30"));
    assert_eq!(t("07:30").as_deref(), Some("07:30"));
    assert_eq!(t("um neun Uhr").as_deref(), Some("09:00"));
    assert_eq!(t("at three o'clock").as_deref(), Some("15:00"));
    assert_eq!(t("um zehn nach drei").as_deref(), Some("15:10"));
    assert_eq!(t("16 Uhr 30").as_deref(), Some("16:30"));
    assert_eq!(t("morgens um 7").as_deref(), Some("07:00"));
    assert_eq!(t("nachmittags um 9").as_deref(), Some("21:00"));
    assert_eq!(t("um 9 am Freitag").as_deref(), Some("09:00"));
    // no time said
    assert_eq!(t("am Montag, Thema Lizenzaudit"), None);
    assert_eq!(t("in the morning"), None);
    assert_eq!(t("at 3 locations"), None);
    assert_eq!(t("am 16.12."), None);
    assert_eq!(t("for 45 minutes"), None);
}

#[test]
fn durations() {
    assert_eq!(len("for an hour"), Some(60));
    assert_eq!(len("45 Minuten"), Some(45));
    assert_eq!(len("a 45 minute call"), Some(45));
    assert_eq!(len("a 45-minute call"), Some(45));
    assert_eq!(len("eine halbe Stunde"), Some(30));
    assert_eq!(len("half an hour"), Some(30));
    assert_eq!(len("90 min"), Some(90));
    assert_eq!(len("90min"), Some(90));
    assert_eq!(len("2 Stunden"), Some(120));
    assert_eq!(len("zwei Stunden"), Some(120));
    assert_eq!(len("1,5 Stunden"), Some(90));
    assert_eq!(len("1.5 hours"), Some(90));
    assert_eq!(len("anderthalb Stunden"), Some(90));
    assert_eq!(len("an hour and a half"), Some(90));
    assert_eq!(len("15 mins"), Some(15));
    assert_eq!(len("fünfundvierzig Minuten"), Some(45));
    assert_eq!(len("forty-five minutes"), Some(45));
    assert_eq!(len("eine Viertelstunde"), Some(15));
    assert_eq!(len("2 hours and 15 minutes"), Some(135));
    assert_eq!(len("ein 30-minütiges Gespräch"), Some(30));
    // not the meeting's length
    assert_eq!(len("in 30 Minuten"), None);
    assert_eq!(len("seit 2 Stunden kaputt"), None);
    assert_eq!(len("two hours ago"), None);
    assert_eq!(len("einen Termin"), None);
}

#[test]
fn ranges_give_a_length() {
    let w = resolve("morgen von 10 bis 11 Uhr", &thu());
    assert_eq!(w.time.map(fmt_time).as_deref(), Some("10:00"));
    assert_eq!(w.duration_minutes, Some(60));
    let w = resolve("tomorrow from 2 to 3:30pm", &thu());
    assert_eq!(w.time.map(fmt_time).as_deref(), Some("14:00"));
    assert_eq!(w.duration_minutes, Some(90));
    let w = resolve("10:00-11:00", &thu());
    assert_eq!(w.duration_minutes, Some(60));
}

#[test]
fn all_together_and_spans() {
    let text = "Bitte buchen Sie mir für Mittwoch um 9 Uhr einen Termin zur Vertragsverlängerung, eine Stunde.";
    let w = resolve(text, &now("2026-12-07T09:30:00+01:00"));
    assert_eq!(w.date.map(fmt_date).as_deref(), Some("2026-12-09"));
    assert_eq!(w.time.map(fmt_time).as_deref(), Some("09:00"));
    assert_eq!(w.duration_minutes, Some(60));
    let said: Vec<&str> = w.spans.iter().map(|(a, b)| &text[*a..*b]).collect();
    assert!(said.contains(&"Mittwoch"), "{said:?}");
    assert!(said.contains(&"um 9 Uhr"), "{said:?}");
    assert!(said.contains(&"eine Stunde"), "{said:?}");
}

#[test]
fn a_reply_that_is_only_an_hour() {
    let n = thu();
    assert_eq!(resolve_reply("14", &n).time.map(fmt_time).as_deref(), Some("14:00"));
    assert_eq!(resolve_reply("3", &n).time.map(fmt_time).as_deref(), Some("15:00"));
    assert_eq!(resolve_reply("um 14 Uhr", &n).time.map(fmt_time).as_deref(), Some("14:00"));
    assert_eq!(resolve("14", &n).time, None);
}
