//! Which passage sentence answers the question: the extractive answer's
//! choice (and the evidence a generated answer is asked to state). Every
//! sentence of the packed passages is a candidate, scored by how well it
//! answers rather than by shared words alone: the embedder's
//! question→sentence cosine (MiniLM was trained on question/answer pairs),
//! whether it holds the kind of fact the question asks for ("how much" → an
//! amount, "when" → a date or time, "who" → a name or role, "how many" → a
//! number, "how long" → a duration), its passage's rank, and the lexical
//! coverage of the question's weighted terms. The weights are fitted on one
//! half of the development documents and reported on the other
//! (`tresor eval answers --fit-choice`, see the README).
//!
//! Owns: the answer types, the candidate features and their combination.
//! Never: embeds anything itself (the caller batches and caches vectors), or
//! decides whether an answer is supported (`cite.rs`).

use serde::Serialize;
use tresor_kb::embed::dot;

use crate::pack::Passage;
use crate::text::{sentences, term_set, weighted_coverage};

/// The kind of fact a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    /// how much / wie viel / wie hoch: an amount of money (or a share).
    Amount,
    /// when / wann / by when / what time: a date, weekday or time of day.
    Date,
    /// who / wer / wem / an wen: a person, team or role.
    Name,
    /// how many / wie viele: a number.
    Number,
    /// how long / wie lange: a number with a unit of time.
    Duration,
    /// Anything else (what, how, why …): no expectation.
    Any,
}

/// The weights of the candidate features (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChoiceWeights {
    pub cosine: f32,
    pub answer_type: f32,
    pub rank: f32,
    pub lexical: f32,
}

/// The shipped weights: set by hand before any measurement, then measured with `tresor eval
/// answers --fit-choice` on both halves of the development documents (English rag_goldset_dev and
/// the project's German set, split by document), beside the weights the grid fits on the fit half;
/// the README reports both on the held-out half.
pub const FITTED: ChoiceWeights = ChoiceWeights { cosine: 1.0, answer_type: 0.3, rank: 0.2, lexical: 0.5 };

/// One candidate answer sentence with its features.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub text: String,
    /// Index into the packed passages.
    pub passage: usize,
    /// Position of the sentence in its passage.
    pub index: usize,
    /// Question→sentence cosine (0 without vectors).
    pub cosine: f32,
    /// 1 when the sentence holds the kind of fact the question asks for, else 0 (always 0 for `Any`).
    pub answer_type: f32,
    /// The passage's evidence relative to the best passage's (1 for the best).
    pub rank: f32,
    /// Weighted coverage of the question's terms by the sentence.
    pub lexical: f32,
}

impl Candidate {
    pub fn score(&self, w: &ChoiceWeights) -> f32 {
        // earlier sentences win ties
        w.cosine * self.cosine + w.answer_type * self.answer_type + w.rank * self.rank + w.lexical * self.lexical - 0.001 * self.index as f32
    }
}

/// The kind of fact `question` asks for (English and German question words).
pub fn answer_type(question: &str) -> AnswerType {
    let q = question.to_lowercase();
    let q = q.as_str();
    // a time of day before "wie viel" reads as an amount
    if q.contains("what time") || q.contains("wie viel uhr") || q.contains("wieviel uhr") || q.contains("wie spät") {
        return AnswerType::Date;
    }
    // "How long must a password be?": a length, any number
    if q.contains("how long") && q.trim_end_matches(|c: char| c == '?' || c.is_whitespace()).ends_with(" be") {
        return AnswerType::Number;
    }
    if q.contains("how long")
        || q.contains("wie lange")
        || q.contains("how many days") && q.contains("after")
        || ["how much time", "wie viel zeit", "how soon", "how quickly", "how early", "how far in advance", "wie schnell", "wie früh"]
            .iter()
            .any(|p| q.contains(p))
    {
        return AnswerType::Duration;
    }
    if q.contains("how many") || q.contains("wie viele") || q.contains("wieviele") || q.contains("number of") || q.contains("anzahl") {
        return AnswerType::Number;
    }
    // "What does a colour copy cost?", "Was kosten zwei Stunden?", "What is the late fee?"
    let prices = crate::text::words_of(q).any(|w| ["cost", "costs", "price", "fee", "kostet", "kosten", "preis", "gebühr"].contains(&w));
    if q.contains("how much") || q.contains("wie viel") || q.contains("wieviel") || q.contains("wie hoch") || prices || q.contains("limit") || q.contains("allowance") {
        return AnswerType::Amount;
    }
    if q.starts_with("when") || q.contains(" when ") || q.contains("by when") || q.contains("what time") || q.contains("deadline") || q.starts_with("wann") || q.contains(" wann ") || q.contains("bis wann") || q.contains("um wie viel uhr") || q.contains("frist") {
        return AnswerType::Date;
    }
    if q.starts_with("who") || q.contains(" who ") || q.contains("whom") || q.starts_with("wer ") || q.contains(" wer ") || q.contains(" wem ") || q.starts_with("wem ") || q.contains("an wen") || q.contains("bei wem") || q.contains("which team") || q.contains("welches team") || q.contains("whose") {
        return AnswerType::Name;
    }
    AnswerType::Any
}

const CURRENCY: &[&str] = &["eur", "euro", "euros", "usd", "dollar", "dollars", "chf", "gbp", "pounds", "cent", "cents", "percent", "prozent"];
const MONTHS: &[&str] = &[
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
    "januar", "februar", "märz", "mai", "juni", "juli", "oktober", "dezember",
];
const DAYS: &[&str] = &[
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "montag", "dienstag", "mittwoch", "donnerstag",
    "freitag", "samstag", "sonntag", "weekday", "weekend", "wochenende", "werktag", "werktage", "noon", "midnight", "mittag", "uhr",
    "am", "pm", "morning", "evening", "morgens", "abends", "daily", "weekly", "monthly", "annually", "quarterly", "yearly", "täglich",
    "wöchentlich", "monatlich", "jährlich", "before", "after", "within", "vor", "nach", "innerhalb", "bis", "until", "by",
];
const UNITS: &[&str] = &[
    "second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months", "year", "years",
    "sekunden", "minuten", "stunde", "stunden", "tag", "tage", "tagen", "woche", "wochen", "monat", "monate", "monaten", "jahr", "jahre",
    "jahren", "kalendertag", "kalendertage", "kalendertagen", "arbeitstage", "arbeitstagen", "werktage", "werktagen", "working",
];
const NUMBER_WORDS: &[&str] = &[
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty", "thirty", "hundred",
    "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn", "elf", "zwölf", "zwanzig", "dreißig", "hundert",
];
/// Ordinals that date a weekday ("the first Friday", "am letzten Werktag").
const ORDINALS: &[&str] = &[
    "first", "second", "third", "fourth", "last", "erste", "ersten", "zweite", "zweiten", "dritte", "dritten", "vierten", "letzte",
    "letzten",
];
/// Words that count a unit of time as a number does ("an hour", "innerhalb einer Stunde", "a few days").
const QUANTIFIERS: &[&str] = &["a", "an", "few", "several", "couple", "ein", "eine", "einer", "einem", "einen", "einige", "wenige", "wenigen", "mehrere", "paar"];
/// Units of a measured quantity: with a number, an amount ("1,8 Liter", "a 40-hour week").
const MEASURES: &[&str] = &[
    "l", "liter", "litre", "liters", "litres", "ml", "kg", "g", "gram", "grams", "gramm", "kilogramm", "lb", "lbs", "w", "watt", "watts",
    "kw", "kwh", "wh", "mah", "v", "volt", "km", "m", "cm", "mm", "meter", "metre", "meters", "metres", "gb", "mb", "tb", "qm", "grad",
    "degrees", "°c",
];
/// Quantities a question can name the dimension of, the words that name it and the units that
/// measure it: "how much does it weigh" wants a weight, not the battery's mAh.
const DIMENSIONS: &[(&[&str], &[&str])] = &[
    (&["weigh", "weight", "heavy", "wiegt", "gewicht", "schwer"], &["kg", "g", "gram", "grams", "gramm", "kilogramm", "kilo", "lb", "lbs", "t", "tonnen"]),
    (
        &["power consumption", "consume", "consumes", "strom", "verbraucht", "stromverbrauch", "leistungsaufnahme", "energy"],
        &["w", "watt", "watts", "kw", "kwh", "wh"],
    ),
    (
        &["capacity", "how much water", "fassungsvermögen", "passt", "volume", "volumen"],
        &["l", "liter", "litre", "liters", "litres", "ml", "cups", "tassen"],
    ),
];
/// Words that make an amount a sum of money (or a share of one): "what daily allowance" wants
/// euros, not "5 working days".
const MONEY: &[&str] = &[
    "allowance", "cost", "costs", "price", "fee", "fees", "charge", "paid", "pay", "pays", "salary", "budget", "kostet", "kosten",
    "gebühr", "preis", "beitrag", "zahlt", "bezahlt", "zuschuss", "pauschale", "erstattet", "gehalt",
];
const ROLES: &[&str] = &[
    "manager", "managers", "team", "hr", "department", "lead", "head", "director", "ceo", "cto", "officer", "admin", "administrator",
    "support", "desk", "office", "people", "personal", "personalteam", "vorgesetzte", "vorgesetzten", "vorgesetzter", "abteilung",
    "leitung", "teamleitung", "geschäftsführung", "it", "helpdesk", "datenschutzbeauftragte", "datenschutzbeauftragten",
];

fn has_digit(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
}

/// A sum of money written as one token: pence or cents after the digits ("20p", "50ct").
fn money_token(w: &str) -> bool {
    let digits = w.trim_end_matches(|c: char| c.is_alphabetic());
    let unit = &w[digits.len()..];
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',') && matches!(unit, "p" | "ct")
}

/// A rent as the unit of a sum ("drei Nettokaltmieten", "two months' rent"): deposits are
/// stated that way.
fn rent_word(w: &str) -> bool {
    w == "rent" || w.ends_with("miete") || w.ends_with("mieten")
}

/// Whether `lower` (lowercased) states a sum of money or a share: a currency word or sign, a
/// pence/cent token, or a number of rents.
fn states_money(lower: &str) -> bool {
    let words: Vec<&str> = crate::text::words_of(lower).collect();
    let number = has_digit(lower) || words.iter().any(|w| NUMBER_WORDS.contains(w));
    words.iter().any(|w| CURRENCY.contains(w) || money_token(w))
        || ['€', '$', '£', '%'].iter().any(|c| lower.contains(*c))
        || number && words.iter().any(|w| rent_word(w))
}

/// Whether `lower` (lowercased) names a time of day: "9:30", "14.00 Uhr", "8 Uhr", "5 pm",
/// "noon", "Mitternacht".
fn states_clock_time(lower: &str) -> bool {
    let words: Vec<&str> = crate::text::words_of(lower).collect();
    let hhmm = |w: &str| {
        let parts: Vec<&str> = w.split([':', '.']).collect();
        parts.len() == 2 && (1..=2).contains(&parts[0].len()) && parts[1].len() == 2 && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
    };
    let hhmm_in_text = lower.split(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.')).any(|t| hhmm(t.trim_matches('.')));
    let digits_then = |unit: &[&str]| words.windows(2).any(|p| p[0].chars().all(|c| c.is_ascii_digit()) && unit.contains(&p[1]));
    let glued = words.iter().any(|w| {
        let d = w.trim_end_matches(|c: char| c.is_alphabetic());
        !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()) && matches!(&w[d.len()..], "am" | "pm" | "h")
    });
    hhmm_in_text
        || digits_then(&["uhr", "am", "pm", "a.m", "p.m", "o'clock", "h"])
        || glued
        || words.iter().any(|w| ["noon", "midday", "midnight", "mittag", "mittags", "mitternacht"].contains(w))
}

/// Whether `sentence` holds the kind of fact `t` asks for.
pub fn holds(sentence: &str, t: AnswerType) -> bool {
    let lower = sentence.to_lowercase();
    let words: Vec<&str> = crate::text::words_of(&lower).collect();
    let any = |list: &[&str]| words.iter().any(|w| list.contains(w));
    let number = has_digit(&lower) || any(NUMBER_WORDS);
    match t {
        AnswerType::Amount => states_money(&lower) || has_digit(&lower) && (any(UNITS) || any(MEASURES)),
        AnswerType::Date => {
            states_clock_time(&lower)
                || any(MONTHS) && has_digit(&lower)
                || lower.contains(':') && has_digit(&lower)
                || any(DAYS) && (number || any(MONTHS) || any(ORDINALS))
                // "ab dem vierten Kalendertag", "from the third day of illness"
                || any(ORDINALS) && words.iter().any(|w| *w == "day" || w.ends_with("tag") || w.ends_with("tages"))
                || words.iter().any(|w| w.len() == 4 && w.starts_with("20") && w.chars().all(|c| c.is_ascii_digit()))
        }
        AnswerType::Name => {
            any(ROLES)
                || lower.contains('@')
                // a capitalised word past the first in an English sentence: a name
                || sentence.split_whitespace().skip(1).any(|w| w.chars().next().is_some_and(|c| c.is_uppercase()) && w.len() > 1)
                    && crate::text::language(sentence) == tresor_kb::lang::Lang::En
        }
        AnswerType::Number => number,
        AnswerType::Duration => (number || any(QUANTIFIERS)) && any(UNITS),
        AnswerType::Any => false,
    }
}

/// What a question asks for, read once: its [`AnswerType`] and, for an amount, the units of the
/// quantity it names ([`DIMENSIONS`]) or whether it asks for money ([`MONEY`]).
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub t: AnswerType,
    units: Option<&'static [&'static str]>,
    money: bool,
    /// A time of day is asked for ("at what time", "um wie viel Uhr"), not a date.
    clock: bool,
}

/// Phrases that ask for a time of day.
const CLOCK_QUESTIONS: &[&str] = &[
    "what time", "which time", "wie viel uhr", "wieviel uhr", "wie spät", "welche uhrzeit", "um welche zeit", "how late", "how early in the day",
];

impl Asked {
    pub fn of(question: &str) -> Asked {
        let t = answer_type(question);
        let q = question.to_lowercase();
        let amount = t == AnswerType::Amount;
        let units = DIMENSIONS.iter().find(|(names, _)| amount && names.iter().any(|n| q.contains(n))).map(|(_, units)| *units);
        let money = amount && units.is_none() && crate::text::words_of(&q).any(|w| MONEY.contains(&w));
        let clock = t == AnswerType::Date && CLOCK_QUESTIONS.iter().any(|p| q.contains(p));
        Asked { t, units, money, clock }
    }

    /// Whether `sentence` holds the kind of fact asked for ([`holds`]), in the named unit, in
    /// money where money is asked for, and as a time of day where one is asked for.
    pub fn answered_by(&self, sentence: &str) -> bool {
        if !holds(sentence, self.t) {
            return false;
        }
        let lower = sentence.to_lowercase();
        if self.clock {
            return states_clock_time(&lower);
        }
        match self.units {
            Some(units) => crate::text::words_of(&lower).any(|w| units.contains(&w)),
            None if self.money => states_money(&lower),
            None => true,
        }
    }
}

/// [`Asked::answered_by`] for one question and one sentence.
pub fn answers_type(question: &str, sentence: &str) -> bool {
    Asked::of(question).answered_by(sentence)
}

/// Whether a question of this type has a checkable answer (an amount, a date or time, a number,
/// a duration): no chosen sentence holding one means the documents do not say (names and
/// open questions are too varied to check).
pub fn checkable(t: AnswerType) -> bool {
    matches!(t, AnswerType::Amount | AnswerType::Date | AnswerType::Number | AnswerType::Duration)
}

/// The candidate sentences of `passages` (at least three words each), in passage order.
pub fn candidate_texts(passages: &[Passage]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (pi, p) in passages.iter().enumerate() {
        for (si, s) in sentences(&p.text).into_iter().enumerate() {
            if s.split_whitespace().count() < 3 || s.trim_end().ends_with('?') {
                continue;
            }
            out.push((pi, si, s.trim().to_string()));
        }
    }
    out
}

/// The candidates with their features. `vecs` are the candidate sentences' embeddings in
/// [`candidate_texts`] order (empty or mismatched: cosine 0).
pub fn candidates(question: &str, qvec: &[f32], passages: &[Passage], texts: Vec<(usize, usize, String)>, vecs: &[Vec<f32>]) -> Vec<Candidate> {
    let asked = Asked::of(question);
    let best = passages.iter().map(|p| p.evidence).fold(0.0f32, f32::max);
    texts
        .into_iter()
        .enumerate()
        .map(|(i, (pi, si, s))| {
            let p = &passages[pi];
            let lang = p.lang();
            let cosine = match vecs.get(i) {
                Some(v) if v.len() == qvec.len() && !v.is_empty() => dot(qvec, v).max(0.0),
                _ => 0.0,
            };
            Candidate {
                cosine,
                answer_type: if asked.answered_by(&s) { 1.0 } else { 0.0 },
                rank: if best > 0.0 { p.evidence / best } else { 0.0 },
                lexical: weighted_coverage(&p.q_terms, &term_set(&s, lang), lang),
                passage: pi,
                index: si,
                text: s,
            }
        })
        .collect()
}

/// Words that, among a sentence's first four, refer back to the sentence before it ("Here you'll
/// find …", "We still run it, but …"): what they refer to is named only there.
const BACK_REFERENCES: &[&str] = &[
    "it", "its", "this", "these", "those", "they", "them", "their", "here", "there", "such", "hier", "dort", "dies", "diese",
    "dieser", "dieses", "diesem", "diesen", "dafür", "dabei", "damit", "davon", "dazu", "darauf",
];

/// Whether `sentence` refers back to the one before it (see [`BACK_REFERENCES`]).
pub fn refers_back(sentence: &str) -> bool {
    crate::text::words_of(&sentence.to_lowercase()).take(4).any(|w| BACK_REFERENCES.contains(&w))
}

/// The best `n` candidates by `w` (those within 90 % of the best score), in passage order:
/// (sentence, passage index). A chosen sentence that refers back to the one before it comes
/// with that one (one piece of evidence of two sentences), unless that one is chosen too.
pub fn choose(cands: &[Candidate], w: &ChoiceWeights, n: usize) -> Vec<(String, usize)> {
    let mut scored: Vec<(f32, &Candidate)> = cands.iter().map(|c| (c.score(w), c)).filter(|(s, _)| *s > 0.0).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(n);
    if let Some(best) = scored.first().map(|c| c.0) {
        scored.retain(|c| c.0 >= best * 0.9);
    }
    scored.sort_by_key(|c| (c.1.passage, c.1.index));
    let chosen = |p: usize, i: usize| scored.iter().any(|(_, c)| c.passage == p && c.index == i);
    scored
        .iter()
        .map(|(_, c)| {
            let before = cands.iter().find(|b| c.index > 0 && b.passage == c.passage && b.index == c.index - 1);
            match before {
                Some(b) if refers_back(&c.text) && !chosen(b.passage, b.index) => (format!("{} {}", b.text, c.text), c.passage),
                _ => (c.text.clone(), c.passage),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_words_give_the_answer_type() {
        for (q, t) in [
            ("How much is the hotel allowance per night on business trips?", AnswerType::Amount),
            ("Wie hoch ist das Hotelbudget pro Nacht?", AnswerType::Amount),
            ("When do I have to report sick?", AnswerType::Date),
            ("Bis wann muss ich die Reisekosten abrechnen?", AnswerType::Date),
            ("Who approves business trips?", AnswerType::Name),
            ("An wen geht die Krankmeldung?", AnswerType::Name),
            ("How many vacation days do full-time employees get?", AnswerType::Number),
            ("Wie viele Urlaubstage habe ich?", AnswerType::Number),
            ("How long is the probation period?", AnswerType::Duration),
            ("Wie lange dauert die Probezeit?", AnswerType::Duration),
            ("What is the dress code?", AnswerType::Any),
            ("What does a colour copy cost?", AnswerType::Amount),
            ("How long must IT security passwords be?", AnswerType::Number),
            ("Was kosten zwei Stunden Nachhilfe?", AnswerType::Amount),
            ("What is the late fee for a DVD?", AnswerType::Amount),
            ("Um wie viel Uhr endet der Spätdienst?", AnswerType::Date),
            ("Ab wie viel Uhr gilt die Nachtruhe?", AnswerType::Date),
            ("What time does the office open?", AnswerType::Date),
            ("How much time may a side project take?", AnswerType::Duration),
            ("Wie schnell muss ein verlorener Laptop gemeldet werden?", AnswerType::Duration),
            ("How early do I need to call in sick?", AnswerType::Duration),
        ] {
            assert_eq!(answer_type(q), t, "{q}");
        }
    }

    /// An amount in the unit the question names, money where it asks for money; a duration
    /// counted by an article ("an hour", "einer Stunde"); a weekday dated by an ordinal.
    #[test]
    fn a_sentence_answers_the_type_in_the_named_unit() {
        for (q, s, want) in [
            ("How much does the printer weigh?", "The printer weighs 1.2 kg without the roll.", true),
            ("How much does the printer weigh?", "It has a built-in battery (2,600 mAh).", false),
            ("Wie viel Wasser passt in den Tank?", "Der Wassertank fasst 1,8 Liter.", true),
            ("Wie viel Wasser passt in den Tank?", "Entkalken nach 300 Bezügen.", false),
            ("Wie viel Strom verbraucht das Gerät im Standby?", "Im Standby nimmt es 0,5 W auf.", true),
            ("What daily allowance does the company pay?", "Trips must be requested at least 5 working days before.", false),
            ("What daily allowance does the company pay?", "The daily allowance is 28 EUR.", true),
            ("What is the weekly working-hour limit?", "We limit ourselves to a 40-hour work week.", true),
            ("Wie schnell muss ein verlorener Laptop gemeldet werden?", "Ein verlorener Laptop muss innerhalb von einer Stunde gemeldet werden.", true),
            ("How much time may an advisory role take?", "The time commitment must be under a few hours a month.", true),
            ("How long are videos kept?", "Videos are kept for as long as needed.", false),
            ("When are Heartbeats due?", "They are due on the first Friday of the cooldown.", true),
            // pence, cents and rents are money; a time of day is asked for by the clock
            ("What does a colour copy cost?", "A colour page costs 20p.", true),
            ("Was kostet ein Getränk?", "Ein Becher kostet 80ct.", true),
            ("Wie hoch ist die Kaution?", "Die Kaution beträgt drei Monatsmieten.", true),
            ("What is the deposit, and what does it cost?", "The deposit is two months' rent.", true),
            ("Wie hoch ist die Kaution?", "Die Kaution ist bei Einzug fällig.", false),
            ("At what time does the coach leave on Friday?", "The trip runs from Wednesday 12 May to Friday 14 May.", false),
            ("At what time does the coach leave on Friday?", "The coach leaves at 2.30 pm on Friday.", true),
            ("At what time does the coach leave on Friday?", "The coach leaves at 3pm.", true),
            ("Um wie viel Uhr beginnt der Unterricht?", "Der Unterricht beginnt um 8 Uhr.", true),
            ("Um wie viel Uhr beginnt der Unterricht?", "Der Unterricht beginnt am 3. September.", false),
            ("What time does the office close?", "The office closes at noon on Fridays.", true),
            ("When does the office close?", "The office closes on 24 December.", true),
            ("Ab wann brauche ich ein Attest?", "Ab dem dritten Krankheitstag ist ein Attest nötig.", true),
            ("From when do I need a doctor's note?", "A note is needed from the fourth day of illness.", true),
        ] {
            assert_eq!(answers_type(q, s), want, "{q} <- {s}");
        }
        assert!(checkable(AnswerType::Amount) && checkable(AnswerType::Duration) && !checkable(AnswerType::Name) && !checkable(AnswerType::Any));
    }

    #[test]
    fn sentences_hold_the_asked_kind_of_fact_or_not() {
        let hotel = "The hotel limit is 120 EUR per night in Germany and 160 EUR per night in London, Paris and Zurich, breakfast included.";
        let taxi = "Taxis: allowed for trips to and from the station or airport and at night.";
        assert!(holds(hotel, AnswerType::Amount));
        assert!(!holds(taxi, AnswerType::Amount));
        assert!(holds("Report sick to your manager before 9:30 on the first day.", AnswerType::Date));
        assert!(!holds("Trips abroad need a note to the IT team.", AnswerType::Date));
        assert!(holds("Full-time employees get 30 working days of paid vacation.", AnswerType::Number));
        assert!(holds("Die Probezeit beträgt sechs Monate.", AnswerType::Duration));
        assert!(!holds("Die Probezeit ist kurz.", AnswerType::Duration));
        assert!(holds("Approval comes from your manager in the travel tool.", AnswerType::Name));
        assert!(!holds("anything", AnswerType::Any));
    }

    #[test]
    fn a_chosen_sentence_that_refers_back_comes_with_the_sentence_before_it() {
        let c = |index: usize, text: &str, lexical: f32| Candidate { text: text.into(), passage: 0, index, cosine: 0.0, answer_type: 0.0, rank: 1.0, lexical };
        let cands = vec![
            c(0, "We monitor our systems and their health through Grafana.", 0.3),
            c(1, "Here you'll find dashboards and alerting rules.", 0.9),
            c(2, "It is our go-to for diagnosing performance issues.", 0.1),
        ];
        let w = ChoiceWeights { cosine: 0.0, answer_type: 0.0, rank: 0.0, lexical: 1.0 };
        assert_eq!(choose(&cands, &w, 1), vec![("We monitor our systems and their health through Grafana. Here you'll find dashboards and alerting rules.".to_string(), 0)]);
        // the sentence before chosen as well: no repetition
        let both = choose(&cands, &ChoiceWeights { lexical: 1.0, rank: 20.0, ..w }, 2);
        assert_eq!(both.len(), 2, "{both:?}");
        assert_eq!(both[1].0, "Here you'll find dashboards and alerting rules.");
        // a sentence that names its subject stands alone
        assert!(!refers_back("We monitor our systems and their health through Grafana."));
        assert!(refers_back("We still run it, but it's gradually being superceded by Kandji."));
        assert!(refers_back("Dafür gibt es das Personalportal."));
    }

    #[test]
    fn the_sentence_holding_the_asked_fact_beats_one_sharing_more_words() {
        // the README demo: the taxi sentence shares "night" and "trips", the hotel sentence answers
        let mk = |id: i64, heading: &str, text: &str| {
            let mut h = crate::pack::tests::hit(id, text);
            h.heading = heading.into();
            (h, vec![])
        };
        let q = "How much is the hotel allowance per night on business trips?";
        let ps = crate::pack::score(
            q,
            &[],
            vec![
                mk(1, "Transport", "Trains: second class. Taxis: allowed for trips to and from the station or airport and at night."),
                mk(2, "Hotels", "The hotel limit is 120 EUR per night in Germany and 160 EUR per night in London, Paris and Zurich, breakfast included. More expensive hotels need written approval before booking."),
            ],
            1.0,
            &|_| 1.0,
        );
        let texts = candidate_texts(&ps);
        let cands = candidates(q, &[], &ps, texts, &[]);
        let picked = choose(&cands, &FITTED, 1);
        assert!(picked[0].0.starts_with("The hotel limit is 120 EUR"), "{picked:?}");
        // without the answer type the words alone pick differently or the same; with it, the amount wins
        let hotel = cands.iter().find(|c| c.text.starts_with("The hotel limit")).unwrap();
        assert_eq!(hotel.answer_type, 1.0);
    }
}
