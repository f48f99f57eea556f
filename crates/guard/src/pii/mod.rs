//! PII detection: finds personal data in free text (German and English) and
//! returns typed spans with a confidence score.
//!
//! Owns: the span type, the detectors (patterns with checksum/structure
//! validation in [`patterns`], street addresses in [`address`], person names
//! from first-name gazetteers plus context rules in [`person`]) and overlap
//! resolution. Offsets are Unicode scalar values (code points), end exclusive,
//! like Python string indices.
//!
//! Never: redacts (that is [`crate::redact`]), logs the text it scans, keeps
//! state between calls, or touches the network. Detection is deterministic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod address;
pub mod checks;
pub mod names;
pub mod patterns;
pub mod person;

/// The kinds of personal data Tresor detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PiiType {
    Email,
    Phone,
    Iban,
    CreditCard,
    IpAddress,
    /// German Steuerliche Identifikationsnummer (11 digits, ISO 7064 check digit).
    TaxId,
    /// US Social Security number or German Rentenversicherungsnummer.
    Ssn,
    DateOfBirth,
    Address,
    Person,
}

impl PiiType {
    pub const ALL: [PiiType; 10] = [
        PiiType::Email,
        PiiType::Phone,
        PiiType::Iban,
        PiiType::CreditCard,
        PiiType::IpAddress,
        PiiType::TaxId,
        PiiType::Ssn,
        PiiType::DateOfBirth,
        PiiType::Address,
        PiiType::Person,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PiiType::Email => "EMAIL",
            PiiType::Phone => "PHONE",
            PiiType::Iban => "IBAN",
            PiiType::CreditCard => "CREDIT_CARD",
            PiiType::IpAddress => "IP_ADDRESS",
            PiiType::TaxId => "TAX_ID",
            PiiType::Ssn => "SSN",
            PiiType::DateOfBirth => "DATE_OF_BIRTH",
            PiiType::Address => "ADDRESS",
            PiiType::Person => "PERSON",
        }
    }

    /// Parses our names and the aliases used by evaluation sets and Presidio
    /// (`DE_TAX_ID`, `EMAIL_ADDRESS`, `PHONE_NUMBER`, `IBAN_CODE`, `US_SSN`,
    /// `STREET_ADDRESS`, `IP`). `None` for types Tresor does not detect.
    pub fn from_name(name: &str) -> Option<PiiType> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "EMAIL" | "EMAIL_ADDRESS" => PiiType::Email,
            "PHONE" | "PHONE_NUMBER" => PiiType::Phone,
            "IBAN" | "IBAN_CODE" => PiiType::Iban,
            "CREDIT_CARD" => PiiType::CreditCard,
            "IP_ADDRESS" | "IP" => PiiType::IpAddress,
            "TAX_ID" | "DE_TAX_ID" | "STEUER_ID" => PiiType::TaxId,
            "SSN" | "US_SSN" | "DE_SSN" | "RVNR" => PiiType::Ssn,
            "DATE_OF_BIRTH" | "DOB" => PiiType::DateOfBirth,
            "ADDRESS" | "STREET_ADDRESS" => PiiType::Address,
            "PERSON" | "PER" => PiiType::Person,
            _ => return None,
        })
    }
}

impl fmt::Display for PiiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PiiType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PiiType::from_name(s).ok_or_else(|| format!("unknown PII type {s:?}"))
    }
}

/// One detected piece of personal data. `start`/`end` count Unicode code
/// points, end exclusive; `score` is the detector's confidence in 0..=1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiiSpan {
    pub start: usize,
    pub end: usize,
    #[serde(rename = "type")]
    pub kind: PiiType,
    pub score: f32,
}

/// A candidate in byte offsets, before overlap resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub start: usize,
    pub end: usize,
    pub kind: PiiType,
    pub score: f32,
}

impl Candidate {
    pub fn new(start: usize, end: usize, kind: PiiType, score: f32) -> Self {
        Candidate { start, end, kind, score }
    }
}

thread_local! {
    static WORK: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Charges `bytes` of scanning to the current thread's work counter: every
/// regex pass over the text and every look-back window is charged, so a test
/// can show the detector's work grows linearly with its input (the regex
/// crate itself guarantees linear-time matching; what could go quadratic is
/// our own looping around it).
pub(crate) fn charge(bytes: usize) {
    WORK.with(|w| w.set(w.get() + bytes as u64));
}

/// As [`detect_bytes`], also returning the work (bytes scanned) it charged.
pub fn detect_bytes_counted(text: &str) -> (Vec<Candidate>, u64) {
    let before = WORK.with(|w| w.get());
    let spans = detect_bytes(text);
    (spans, WORK.with(|w| w.get()) - before)
}

/// Detects every kind of PII in `text`, overlaps resolved (the candidate
/// with the higher confidence wins, then the longer one), sorted by start.
pub fn detect(text: &str) -> Vec<PiiSpan> {
    let spans = detect_bytes(text);
    to_char_spans(text, &spans)
}

/// As [`detect`], but with byte offsets into `text` (what [`crate::redact`]
/// needs to cut the string).
pub fn detect_bytes(text: &str) -> Vec<Candidate> {
    let mut cands = Vec::new();
    patterns::detect(text, &mut cands);
    address::detect(text, &mut cands);
    person::detect(text, &mut cands);
    resolve(cands)
}

/// Keeps a non-overlapping subset: highest score first, then longest, then
/// earliest. The result is sorted by start.
pub fn resolve(mut cands: Vec<Candidate>) -> Vec<Candidate> {
    cands.retain(|c| c.end > c.start);
    cands.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Candidate> = Vec::new();
    for c in cands {
        if kept.iter().all(|k| c.end <= k.start || c.start >= k.end) {
            kept.push(c);
        }
    }
    kept.sort_by_key(|c| (c.start, c.end));
    kept
}

/// Converts byte-offset candidates into code-point spans.
pub fn to_char_spans(text: &str, cands: &[Candidate]) -> Vec<PiiSpan> {
    cands
        .iter()
        .map(|c| PiiSpan {
            start: char_index(text, c.start),
            end: char_index(text, c.end),
            kind: c.kind,
            score: (c.score * 100.0).round() / 100.0,
        })
        .collect()
}

/// Code-point index of byte offset `byte` (which must be a char boundary).
pub fn char_index(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

/// Byte offset of code-point index `ch` (clamped to the text's end).
pub fn byte_index(text: &str, ch: usize) -> usize {
    text.char_indices().nth(ch).map(|(b, _)| b).unwrap_or(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_aliases() {
        for t in PiiType::ALL {
            assert_eq!(PiiType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(PiiType::from_name("DE_TAX_ID"), Some(PiiType::TaxId));
        assert_eq!(PiiType::from_name("STREET_ADDRESS"), Some(PiiType::Address));
        assert_eq!(PiiType::from_name("LOCATION"), None);
        let json = serde_json::to_string(&PiiSpan { start: 1, end: 2, kind: PiiType::CreditCard, score: 0.5 }).unwrap();
        assert_eq!(json, r#"{"start":1,"end":2,"type":"CREDIT_CARD","score":0.5}"#);
    }

    #[test]
    fn overlap_resolution_prefers_confidence_then_length() {
        let kept = resolve(vec![
            Candidate::new(0, 10, PiiType::Phone, 0.7),
            Candidate::new(2, 8, PiiType::CreditCard, 0.95),
            Candidate::new(8, 20, PiiType::Address, 0.8),
            Candidate::new(12, 14, PiiType::Person, 0.8),
        ]);
        assert_eq!(kept, vec![Candidate::new(2, 8, PiiType::CreditCard, 0.95), Candidate::new(8, 20, PiiType::Address, 0.8)]);
    }

    #[test]
    fn offsets_are_code_points_with_umlauts_and_emoji() {
        let text = "Grüße 🙂 an jürgen.müller@example.de, danke";
        let spans = detect(text);
        let email: Vec<_> = spans.iter().filter(|s| s.kind == PiiType::Email).collect();
        assert_eq!(email.len(), 1, "{spans:?}");
        let got: String = text.chars().skip(email[0].start).take(email[0].end - email[0].start).collect();
        assert_eq!(got, "jürgen.müller@example.de");
        assert_eq!(email[0].start, 11);
    }

    #[test]
    fn german_text_end_to_end() {
        let text = "Sehr geehrte Frau Schäfer, bitte überweisen Sie an DE89 3704 0044 0532 0130 00. \
                    Herr Jürgen Weiß, geb. 03.08.1973, wohnt in der Lindenstraße 12, 10115 Berlin, Tel. 030 1234567.";
        let spans = detect(text);
        let kinds: Vec<PiiType> = spans.iter().map(|s| s.kind).collect();
        for k in [PiiType::Person, PiiType::Iban, PiiType::DateOfBirth, PiiType::Address, PiiType::Phone] {
            assert!(kinds.contains(&k), "{k} missing in {spans:?}");
        }
        let texts: Vec<String> =
            spans.iter().map(|s| text.chars().skip(s.start).take(s.end - s.start).collect()).collect();
        assert!(texts.contains(&"Schäfer".to_string()), "{texts:?}");
        assert!(texts.contains(&"Jürgen Weiß".to_string()), "{texts:?}");
        assert!(texts.contains(&"Lindenstraße 12, 10115 Berlin".to_string()), "{texts:?}");
        assert!(texts.contains(&"030 1234567".to_string()), "{texts:?}");
    }

    /// Adversarial lines (long runs of almost-addresses, almost-names, digits
    /// and separators) cost work linear in their length: doubling the input
    /// at most doubles the work (plus slack), and the work per byte is small.
    #[test]
    fn adversarial_lines_cost_linear_work() {
        let units = [
            "Am Am Am Markt 1 1 1 ",
            "Hauptstraße 1-2-3/4/5 ",
            "c/o c/o c/o ",
            "anna anna schmidt schmidt ",
            "Herr Herr Frau Dr. ",
            "1 1 1 1 1 1 1 1 ",
            "12 Baker Street, London ",
            "P.O. Box 1, ",
            "Postfach 12 34 ",
            "a@b.c a@b. ",
            "DE89 3704 0044 ",
            "Flat 3, Flat 3, ",
            "-/-/-/-/ ",
            "Müller-Müller-Müller-",
        ];
        for unit in units {
            let n = 20_000 / unit.len() + 1;
            let small = unit.repeat(n);
            let big = unit.repeat(2 * n);
            let (_, w1) = detect_bytes_counted(&small);
            let (_, w2) = detect_bytes_counted(&big);
            assert!(w1 > 0, "{unit:?}: no work was counted");
            assert!(w2 <= w1 * 22 / 10 + 1000, "{unit:?}: work {w1} -> {w2} when the input doubled");
            assert!(w2 <= 100 * big.len() as u64, "{unit:?}: {w2} work units for {} bytes", big.len());
        }
        // one 200 kB line of everything at once
        let all: String = units.concat().repeat(700);
        let (_, w) = detect_bytes_counted(&all);
        assert!(w <= 100 * all.len() as u64, "{w} work units for {} bytes", all.len());
    }

    #[test]
    fn plain_business_text_has_no_pii() {
        for t in [
            "Der Umsatz stieg im dritten Quartal um 12,5 Prozent auf 1.234.567 Euro.",
            "Revenue grew 12.5% to $1,234,567 in Q3.",
            "Ticket INC-2024-000183 has been escalated.",
            "Die Norm DIN 5008 regelt die Gestaltung von Geschäftsbriefen.",
            "ISO 27001 certification was renewed this year.",
            "Flight LH 400 departs at 10:15 from gate B44.",
            "The meeting is in conference room 4B on the second floor.",
            "Version 1.2.3.4.5 was released on 2024-05-01.",
        ] {
            assert_eq!(detect(t), vec![], "{t}");
        }
    }
}
