//! Pattern detectors for the structured PII types: EMAIL, IBAN, CREDIT_CARD,
//! IP_ADDRESS, TAX_ID, SSN, PHONE and DATE_OF_BIRTH. Each candidate from a
//! regex is validated (checksum, length/prefix rules, birth context) before
//! it is reported; a pattern match alone is never enough for the
//! number-shaped types. Byte offsets in, [`Candidate`]s out.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use regex::Regex;

use super::checks;
use super::{Candidate, PiiType};

fn re(cell: &'static OnceLock<Regex>, pat: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pat).expect("PII pattern compiles"))
}

pub fn detect(text: &str, out: &mut Vec<Candidate>) {
    email(text, out);
    iban(text, out);
    credit_card(text, out);
    ip(text, out);
    tax_id(text, out);
    ssn(text, out);
    phone(text, out);
    date_of_birth(text, out);
}

/// The character before byte `i`, if any.
fn prev_char(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

/// The character at byte `i`, if any.
fn next_char(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Lower-cased text of the `n` bytes (rounded to char boundaries) before `i`.
fn window_before(text: &str, i: usize, n: usize) -> String {
    let mut s = i.saturating_sub(n);
    while !text.is_char_boundary(s) {
        s += 1;
    }
    super::charge(i - s);
    text[s..i].to_lowercase()
}

fn window_after(text: &str, i: usize, n: usize) -> String {
    let mut e = (i + n).min(text.len());
    while !text.is_char_boundary(e) {
        e -= 1;
    }
    super::charge(e - i);
    text[i..e].to_lowercase()
}

fn has_any(hay: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.contains(n))
}

// ---------------------------------------------------------------- EMAIL

fn email(text: &str, out: &mut Vec<Candidate>) {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"(?i)[\p{L}\p{N}_%+-](?:[\p{L}\p{N}._%+-]*[\p{L}\p{N}_%+-])?@(?:[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?\.)+[\p{L}]{2,24}",
    );
    super::charge(text.len());
    for m in r.find_iter(text) {
        if is_word(prev_char(text, m.start())) || prev_char(text, m.start()) == Some('.') {
            continue;
        }
        out.push(Candidate::new(m.start(), m.end(), PiiType::Email, 0.98));
    }
}

// ---------------------------------------------------------------- IBAN

fn iban(text: &str, out: &mut Vec<Candidate>) {
    static R: OnceLock<Regex> = OnceLock::new();
    // country, check digits, then 1-4 character groups with optional single spaces
    let r = re(&R, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){2,8}");
    super::charge(text.len());
    for m in r.find_iter(text) {
        // try the longest prefix ending on an alphanumeric that validates
        let s = m.as_str();
        let ends: Vec<usize> =
            s.char_indices().filter(|(_, c)| c.is_ascii_alphanumeric()).map(|(i, _)| i + 1).collect();
        for &e in ends.iter().rev() {
            let end = m.start() + e;
            if is_word(next_char(text, end)) {
                continue;
            }
            let compact: String = s[..e].chars().filter(|c| !c.is_whitespace()).collect();
            if checks::iban_valid(&compact) {
                out.push(Candidate::new(m.start(), end, PiiType::Iban, 0.99));
                break;
            }
        }
    }
}

// ---------------------------------------------------------------- CREDIT_CARD

fn credit_card(text: &str, out: &mut Vec<Candidate>) {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(&R, r"\b\d(?:[ -]?\d){12,18}\b");
    super::charge(text.len());
    for m in r.find_iter(text) {
        let p = prev_char(text, m.start());
        if matches!(p, Some('+') | Some('.') | Some(',') | Some('/')) || is_word(p) {
            continue;
        }
        if let Some(c) = card_candidate(m.as_str()) {
            let ctx = window_before(text, m.start(), 40);
            let boost = has_any(&ctx, &["card", "karte", "visa", "mastercard", "amex", "kreditkarte"]);
            out.push(Candidate::new(m.start(), m.start() + c, PiiType::CreditCard, if boost { 0.98 } else { 0.93 }));
        }
    }
}

/// Validates a card-number-shaped string: consistent grouping, 13-19
/// digits, an issuer prefix, Luhn. Returns the byte length used.
fn card_candidate(s: &str) -> Option<usize> {
    let seps: Vec<char> = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return None;
    }
    let groups: Vec<usize> = s.split([' ', '-']).map(str::len).collect();
    if groups.len() > 1 {
        let fours = groups[..groups.len() - 1].iter().all(|&g| g == 4) && (1..=4).contains(groups.last()?);
        let amex = groups == [4, 6, 5] || groups == [4, 6, 4];
        if !(fours || amex) {
            return None;
        }
    }
    let d = checks::digits(s);
    if !(13..=19).contains(&d.len()) {
        return None;
    }
    let prefix = d[0] as u32 * 1000 + d[1] as u32 * 100 + d[2] as u32 * 10 + d[3] as u32;
    let issuer = match d[0] {
        2 => (2221..=2720).contains(&prefix),
        3 => matches!(d[1], 0 | 4 | 5 | 6 | 7 | 8),
        4 => true,
        5 => (0..=9).contains(&d[1]),
        6 => true,
        _ => false,
    };
    if !issuer || !checks::luhn(s) {
        return None;
    }
    Some(s.len())
}

// ---------------------------------------------------------------- IP_ADDRESS

fn ip(text: &str, out: &mut Vec<Candidate>) {
    static V4: OnceLock<Regex> = OnceLock::new();
    static V6: OnceLock<Regex> = OnceLock::new();
    let v4 = re(&V4, r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b");
    super::charge(text.len());
    for m in v4.find_iter(text) {
        let p = prev_char(text, m.start());
        let after = &text[m.end()..];
        let dotted_more = matches!(p, Some('.')) || (after.starts_with('.') && after[1..].starts_with(|c: char| c.is_ascii_digit()));
        if dotted_more || m.as_str().parse::<Ipv4Addr>().is_err() {
            continue;
        }
        out.push(Candidate::new(m.start(), m.end(), PiiType::IpAddress, 0.95));
    }
    let v6 = re(&V6, r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?");
    super::charge(text.len());
    for m in v6.find_iter(text) {
        let s = m.as_str().trim_end_matches(':');
        let s = if m.as_str().ends_with("::") { m.as_str() } else { s };
        let p = prev_char(text, m.start());
        if p.is_some_and(|c| c.is_ascii_hexdigit() || c == ':') || !s.chars().any(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        if s.matches(':').count() < 2 || s.parse::<Ipv6Addr>().is_err() {
            continue;
        }
        out.push(Candidate::new(m.start(), m.start() + s.len(), PiiType::IpAddress, 0.95));
    }
}

// ---------------------------------------------------------------- TAX_ID

fn tax_id(text: &str, out: &mut Vec<Candidate>) {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(&R, r"\b(?:\d{11}|\d{2} \d{3} \d{3} \d{3}|\d{2}/\d{3}/\d{3}/\d{3})\b");
    super::charge(text.len());
    for m in r.find_iter(text) {
        let p = prev_char(text, m.start());
        if matches!(p, Some('+') | Some('.') | Some(',') | Some('-') | Some('/')) {
            continue;
        }
        let n = next_char(text, m.end());
        if matches!(n, Some('-') | Some('/')) || (n == Some(' ') && text[m.end() + 1..].starts_with(|c: char| c.is_ascii_digit())) {
            continue;
        }
        if !checks::steuer_id_valid(m.as_str()) {
            continue;
        }
        let ctx = window_before(text, m.start(), 60);
        let boost = has_any(&ctx, &["steuer", "tax", "identifikationsnummer", "idnr", "id-nr", "tin"]);
        out.push(Candidate::new(m.start(), m.end(), PiiType::TaxId, if boost { 0.97 } else { 0.9 }));
    }
}

// ---------------------------------------------------------------- SSN

fn ssn(text: &str, out: &mut Vec<Candidate>) {
    static US: OnceLock<Regex> = OnceLock::new();
    static DE: OnceLock<Regex> = OnceLock::new();
    let us = re(&US, r"\b(\d{3})([- ]?)(\d{2})([- ]?)(\d{4})\b");
    super::charge(text.len());
    for c in us.captures_iter(text) {
        let m = c.get(0).unwrap();
        let (s1, s2) = (&c[2], &c[4]);
        if s1 != s2 {
            continue;
        }
        let p = prev_char(text, m.start());
        if matches!(p, Some('+') | Some('(') | Some('-') | Some('.') | Some('/')) || is_word(p) {
            continue;
        }
        let n = next_char(text, m.end());
        if matches!(n, Some('-') | Some('/')) || (matches!(n, Some('.') | Some(' ')) && text[m.end() + 1..].starts_with(|c: char| c.is_ascii_digit())) {
            continue;
        }
        if !checks::us_ssn_valid(&c[1], &c[3], &c[5]) {
            continue;
        }
        let ctx = window_before(text, m.start(), 40);
        let context = has_any(&ctx, &["ssn", "social security", "sozialversicherung", "ss#", "ss #"]);
        // undashed or space-separated 9-digit numbers are SSNs only in context
        if s1 == "-" || context {
            out.push(Candidate::new(m.start(), m.end(), PiiType::Ssn, if context { 0.95 } else { 0.8 }));
        }
    }
    let de = re(&DE, r"\b(\d{2}) ?(\d{6}) ?([A-Z]) ?(\d{2}) ?(\d)\b");
    super::charge(text.len());
    for c in de.captures_iter(text) {
        let m = c.get(0).unwrap();
        let compact = format!("{}{}{}{}{}", &c[1], &c[2], &c[3], &c[4], &c[5]);
        if checks::rvnr_valid(&compact) {
            out.push(Candidate::new(m.start(), m.end(), PiiType::Ssn, 0.95));
        }
    }
}

// ---------------------------------------------------------------- PHONE

const PHONE_CUES: &[&str] = &[
    "tel", "phone", "mobil", "handy", "fax", "call", "ruf", "reach me", "erreich", "nummer", "number", "kontakt",
    "contact", "cell", "whatsapp", "hotline", "durchwahl",
];

fn phone(text: &str, out: &mut Vec<Candidate>) {
    static R: OnceLock<Regex> = OnceLock::new();
    // a first group (+CC, (area), or digits) and up to 5 more groups joined by
    // one separator (space, -, /, .) with at most one space around it
    let r = re(
        &R,
        r"(?:\+\d{1,3}|\(\d{1,5}\)|\d{1,12})(?:(?: ?[-/.] ?| )?(?:\(0\)|\(\d{1,5}\)|\d{1,12})){0,6}",
    );
    super::charge(text.len());
    for m in r.find_iter(text) {
        let p = prev_char(text, m.start());
        if is_word(p) {
            continue;
        }
        if matches!(p, Some('.') | Some(',') | Some('-') | Some('/')) {
            continue;
        }
        let ctx = window_before(text, m.start(), 30);
        let cue = has_any(&ctx, PHONE_CUES) || has_any(&window_after(text, m.end(), 20), &["erreichbar"]);
        // try the whole match, then shorter prefixes ending after a group
        let s = m.as_str();
        let mut ends: Vec<usize> = s
            .char_indices()
            .filter(|&(i, c)| (c.is_ascii_digit() || c == ')') && !s[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
            .map(|(i, _)| i + 1)
            .collect();
        ends.reverse();
        for e in ends {
            let end = m.start() + e;
            let n = next_char(text, end);
            if is_word(n) || (matches!(n, Some('.') | Some(',') | Some('-') | Some('/')) && text[end + 1..].starts_with(|c: char| c.is_ascii_digit())) {
                continue;
            }
            if let Some(score) = phone_score(&s[..e], cue) {
                out.push(Candidate::new(m.start(), end, PiiType::Phone, score));
                break;
            }
        }
    }
}

/// Length/prefix rules for a phone-number-shaped string. German numbers:
/// +49 or 0-prefixed, national significant number 6-13 digits not starting
/// with 0; NANP: 10 digits as (AAA) EEE-NNNN, AAA-EEE-NNNN, AAA.EEE.NNNN or
/// +1; other countries: +CC and 8-15 digits. Anything else only next to a
/// phone cue ("Tel.", "phone", "call", ...).
pub fn phone_score(s: &str, cue: bool) -> Option<f32> {
    static NANP: OnceLock<Regex> = OnceLock::new();
    static DE_NAT: OnceLock<Regex> = OnceLock::new();
    let s = s.trim();
    let d = checks::digits(s);
    let n = d.len();
    if !(6..=15).contains(&n) || s.contains(". ") || s.contains(" .") {
        return None;
    }
    let dots = s.matches('.').count();
    let nanp = re(&NANP, r"^(?:\+1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}$");
    if nanp.is_match(s) {
        return Some(if s.starts_with('+') || s.starts_with('(') { 0.9 } else { 0.8 });
    }
    if dots > 0 {
        return None; // dotted groups are dates, versions, amounts
    }
    if let Some(rest) = s.strip_prefix('+') {
        let (cc_len, nsn): (usize, Vec<u8>) = if rest.starts_with("49") {
            let mut nsn = d[2..].to_vec();
            if s.contains("(0)") && nsn.first() == Some(&0) {
                nsn.remove(0);
            }
            (2, nsn)
        } else if rest.starts_with('1') {
            (1, d[1..].to_vec())
        } else {
            // other country codes: 1-3 digits, take the first group as the code
            let cc: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            let cc_len = cc.len().min(3);
            (cc_len, d[cc_len..].to_vec())
        };
        let ok = match (cc_len, rest.starts_with("49"), rest.starts_with('1')) {
            (2, true, _) => (6..=13).contains(&nsn.len()) && nsn[0] != 0,
            (1, _, true) => nsn.len() == 10,
            _ => (6..=13).contains(&nsn.len()) && n <= 15,
        };
        return ok.then_some(0.9);
    }
    if s.starts_with("00") {
        return (n >= 9 && d[2] != 0).then_some(0.8);
    }
    let de_nat = re(&DE_NAT, r"^(?:\(0\d{1,5}\) ?|0\d{1,5}(?: ?[-/] ?| )?)\d{2,9}(?:[ -]\d{1,6})?$");
    if d[0] == 0 && d[1] != 0 && (7..=12).contains(&n) && de_nat.is_match(s) {
        return Some(0.85);
    }
    if cue && (6..=13).contains(&n) && s.split([' ', '-', '/']).count() <= 4 {
        return Some(0.7);
    }
    None
}

// ---------------------------------------------------------------- DATE_OF_BIRTH

const MONTHS: &str = "January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Januar|Jänner|Februar|März|Maerz|Mai|Juni|Juli|Oktober|Dezember|Okt|Dez";

const BIRTH_CUES: &[&str] = &[
    "geb.", "geb ", "geboren", "geburtsdatum", "geburtstag", "geburt", "dob", "d.o.b", "born", "birth", "birthday",
    "date of birth", "birthdate", "geb.-datum", "gebdat",
];

fn date_of_birth(text: &str, out: &mut Vec<Candidate>) {
    static R: OnceLock<Regex> = OnceLock::new();
    let pat = format!(
        r"\b(?:\d{{1,2}}\. ?\d{{1,2}}\. ?(?:\d{{4}}|\d{{2}})|\d{{1,2}}/\d{{1,2}}/(?:\d{{4}}|\d{{2}})|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}-\d{{1,2}}-\d{{4}}|\d{{1,2}}\.? ?(?:{m})\.? \d{{4}}|(?:{m})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}|\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{m})\.?,? \d{{4}})\b",
        m = MONTHS
    );
    let r = R.get_or_init(|| Regex::new(&pat).expect("date pattern"));
    super::charge(text.len());
    for m in r.find_iter(text) {
        let p = prev_char(text, m.start());
        if matches!(p, Some('.') | Some('/') | Some('-')) && text[..m.start() - 1].ends_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let before = window_before(text, m.start(), 40);
        // only the clause right before the date counts
        let clause = before.rsplit(['.', ';', '!', '?', '\n']).next().unwrap_or("");
        let clause = if before.ends_with("geb.") || before.ends_with("geb. ") || before.ends_with("d.o.b. ") {
            before.as_str()
        } else {
            clause
        };
        let after = window_after(text, m.end(), 16);
        let cue_before = has_any(clause, BIRTH_CUES);
        let cue_after = after.trim_start().starts_with("geboren") || after.contains(" geboren");
        if cue_before || cue_after {
            out.push(Candidate::new(m.start(), m.end(), PiiType::DateOfBirth, 0.9));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str, kind: PiiType) -> Vec<String> {
        let mut v = Vec::new();
        detect(text, &mut v);
        let v = crate::pii::resolve(v);
        v.into_iter().filter(|c| c.kind == kind).map(|c| text[c.start..c.end].to_string()).collect()
    }

    #[test]
    fn emails() {
        assert_eq!(found("Mail an max.müller@beispiel.de.", PiiType::Email), ["max.müller@beispiel.de"]);
        assert_eq!(found("<a.b+tag@sub.example.co.uk>", PiiType::Email), ["a.b+tag@sub.example.co.uk"]);
        assert!(found("no at sign here, or @handle only", PiiType::Email).is_empty());
    }

    #[test]
    fn ibans_spaced_and_compact_with_checksum() {
        assert_eq!(found("IBAN DE89 3704 0044 0532 0130 00, bitte", PiiType::Iban), ["DE89 3704 0044 0532 0130 00"]);
        assert_eq!(found("to GB82WEST12345698765432.", PiiType::Iban), ["GB82WEST12345698765432"]);
        assert!(found("IBAN DE89 3704 0044 0532 0130 01", PiiType::Iban).is_empty(), "bad mod-97");
    }

    #[test]
    fn credit_cards_need_luhn_and_issuer() {
        assert_eq!(found("Karte 4111 1111 1111 1111 abgelehnt", PiiType::CreditCard), ["4111 1111 1111 1111"]);
        assert_eq!(found("Amex 3782 822463 10005.", PiiType::CreditCard), ["3782 822463 10005"]);
        assert_eq!(found("card 5555555555554444", PiiType::CreditCard), ["5555555555554444"]);
        assert!(found("card 4111 1111 1111 1112", PiiType::CreditCard).is_empty(), "bad Luhn");
        assert!(found("order 1234567812345670", PiiType::CreditCard).is_empty(), "no issuer prefix 1");
    }

    #[test]
    fn ip_v4_and_v6() {
        assert_eq!(found("von 98.38.74.31 angemeldet", PiiType::IpAddress), ["98.38.74.31"]);
        assert_eq!(found("host 2001:db8::8a2e:370:7334 down", PiiType::IpAddress), ["2001:db8::8a2e:370:7334"]);
        assert_eq!(found("loopback ::1 and fe80::1%", PiiType::IpAddress), ["::1", "fe80::1"]);
        assert!(found("at 14:32:05 o'clock, 999.1.1.1, v1.2.3.4.5", PiiType::IpAddress).is_empty());
    }

    #[test]
    fn steuer_id_plain_and_grouped() {
        assert_eq!(found("Steuer-ID 86095742719.", PiiType::TaxId), ["86095742719"]);
        assert_eq!(found("tax ID 86 095 742 719, thanks", PiiType::TaxId), ["86 095 742 719"]);
        assert!(found("Steuer-ID 86095742718", PiiType::TaxId).is_empty(), "bad check digit");
    }

    #[test]
    fn ssn_us_and_german() {
        assert_eq!(found("SSN: 123-45-6789", PiiType::Ssn), ["123-45-6789"]);
        assert!(found("SSN: 666-45-6789", PiiType::Ssn).is_empty());
        assert_eq!(found("Rentenversicherungsnummer 15 070649 C 103", PiiType::Ssn), ["15 070649 C 103"]);
        assert!(found("Nr. 15 070649 C 104", PiiType::Ssn).is_empty());
    }

    #[test]
    fn phones_german_international_us() {
        for (t, want) in [
            ("Telefon bleibt (02027) 27255.", "(02027) 27255"),
            ("mobil +49 152 38059082.", "+49 152 38059082"),
            ("Tel. +49 (0) 69 7919-248. Danke", "+49 (0) 69 7919-248"),
            ("unter +49(0)5569 937434 erreichbar", "+49(0)5569 937434"),
            ("unter 0511 8088413 erreichbar", "0511 8088413"),
            ("rufen Sie an: 0349741138.", "0349741138"),
            ("Tel. 030/1234567", "030/1234567"),
            ("mobil +31 642 4893832.", "+31 642 4893832"),
            ("reach me at (362) 525-6751.", "(362) 525-6751"),
            ("at +1 736-759-4466.", "+1 736-759-4466"),
            ("contact is Travis, 577.923.7338.", "577.923.7338"),
            ("Phone: 451 5986", "451 5986"),
        ] {
            assert_eq!(found(t, PiiType::Phone), [want], "{t}");
        }
        for t in ["am 16.10.2007 um 14:32", "1.234.567 Euro", "ISO 27001", "Zimmer 0815", "+49 0", "INC-2024-000183"] {
            assert!(found(t, PiiType::Phone).is_empty(), "{t}");
        }
    }

    #[test]
    fn dates_only_in_birth_context() {
        assert_eq!(found("geboren am 16.10.2007.", PiiType::DateOfBirth), ["16.10.2007"]);
        assert_eq!(found("Patient X (geb. 27. August 1966)", PiiType::DateOfBirth), ["27. August 1966"]);
        assert_eq!(found("DOB 07/12/1945, lives", PiiType::DateOfBirth), ["07/12/1945"]);
        assert_eq!(found("was born on May 5, 1971.", PiiType::DateOfBirth), ["May 5, 1971"]);
        assert_eq!(found("Geburtsdatum: 1980-02-29", PiiType::DateOfBirth), ["1980-02-29"]);
        assert_eq!(found("der am 3. März 1950 geborene", PiiType::DateOfBirth), ["3. März 1950"]);
        assert!(found("Die Rechnung vom 16.10.2007 ist offen.", PiiType::DateOfBirth).is_empty());
        assert!(found("Meeting on May 5, 2024. Born to run.", PiiType::DateOfBirth).is_empty());
    }
}
