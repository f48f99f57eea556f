//! PERSON: names found by first-name gazetteers and context rules.
//!
//! 1. A known first name (or hyphenated pair, `Hans-Theo`) followed by
//!    optional further first names, initials (`M.`) and particles
//!    (`van der`) and a capitalised surname: `Klaus Peter Dörr`.
//! 2. A cue before capitalised words: titles and salutations (`Herr`,
//!    `Frau`, `Mrs.`, `Dear`, `Hi`), introductions (`my name is`, `mein Name
//!    ist`, `Name:`, `this is`), roles (`Kontoinhaber:`, `account holder`,
//!    `Patient`, `contact:`), sign-offs (`Mit freundlichen Grüßen\n`, `Gruß,`,
//!    `Thanks,`). Titles and introductions admit a single unknown word
//!    (`Frau Schäfer`); other cues need two words or a known first name.
//! 3. A known first name alone, unless it is also an ordinary word.
//! 4. A first name of the generated lexicon (`names-dataset`, see
//!    [`super::names`]) followed by a surname of the lexicon: `Leticia
//!    Friedl`. Lexicon names never count alone.
//! 5. Lower case (chat, quick notes): a lexicon first name and a lexicon
//!    surname (`jürgen weber`, `deborah clark`); when both are also common
//!    words (`hans berg`) a cue must stand before them (`an`, `to`, `this
//!    is`, …). A title before a lexicon surname (`herr müller`, `mrs smith`).
//!
//! Capitalised words that are street compounds, function words, months or
//! form words (see `data/not_names.txt`) never become names; all-caps words
//! are not names here.

use std::sync::OnceLock;

use regex::Regex;

use super::names::{
    is_also_word, is_ambiguous, is_first_name, is_lexicon_first, is_lexicon_surname, is_not_name, is_particle,
};
use super::{Candidate, PiiType};

#[derive(Debug, Clone)]
struct Tok<'a> {
    start: usize,
    end: usize,
    s: &'a str,
}

fn tokens(text: &str) -> Vec<Tok<'_>> {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = R.get_or_init(|| Regex::new(r"\p{L}[\p{L}\p{M}]*(?:['’-]\p{L}[\p{L}\p{M}]*)*").unwrap());
    r.find_iter(text)
        .map(|m| {
            let mut s = m.as_str();
            // possessive: Amanda's
            for suf in ["'s", "’s"] {
                if s.len() > suf.len() + 1 && s.ends_with(suf) {
                    s = &s[..s.len() - suf.len()];
                }
            }
            Tok { start: m.start(), end: m.start() + s.len(), s }
        })
        .collect()
}

/// Capitalised, not all caps, not a street compound or a known non-name.
fn name_shaped(t: &str) -> bool {
    let mut chars = t.chars();
    let Some(first) = chars.next() else { return false };
    if !first.is_uppercase() || t.chars().count() < 2 {
        return false;
    }
    if !t.chars().any(|c| c.is_lowercase()) {
        return false;
    }
    // every hyphen part capitalised (Müller-Lüdenscheidt), not "E-Mail"-like
    if !t.split(['-']).all(|p| p.chars().next().is_some_and(|c| c.is_uppercase()) && p.chars().count() >= 2) {
        return false;
    }
    let lower = t.to_lowercase();
    const STREETISH: &[&str] = &[
        "straße", "strasse", "gasse", "allee", "platz", "weg", "ring", "damm", "ufer", "chaussee", "pfad", "markt", "steig",
    ];
    if STREETISH.iter().any(|s| lower.ends_with(s) && lower.len() > s.len() + 2) {
        return false;
    }
    !is_not_name(t)
}

fn is_initial(text: &str, t: &Tok) -> bool {
    t.s.chars().count() == 1 && t.s.chars().next().unwrap().is_uppercase() && text[t.end..].starts_with('.')
}

/// Joined by exactly one space (or ". " after an initial) on the same line.
fn joined(text: &str, a: &Tok, b: &Tok) -> bool {
    let gap = &text[a.end..b.start];
    gap == " " || gap == ". "
}

const TITLE_CUES: &[&str] = &[
    "herr", "herrn", "frau", "hr.", "fr.", "mr.", "mr", "mrs.", "mrs", "ms.", "ms", "miss", "mx.", "dr.", "prof.",
    "dear", "liebe", "lieber", "hallo", "hello", "hi", "hey", "moin", "servus", "sir", "madam", "dame",
];
const INTRO_CUES: &[&str] = &[
    "name:", "name is", "name ist", "name lautet", "heiße", "heisse", "this is", "i am", "i'm", "ich bin", "called",
    "namens", "named",
];
const ROLE_CUES: &[&str] = &[
    "kontoinhaber:", "kontoinhaberin:", "kontoinhaber", "kontoinhaberin", "account holder", "account holder:",
    "karteninhaber", "karteninhaberin", "karteninhaber:", "cardholder", "card holder", "ansprechpartner:",
    "ansprechpartnerin:", "ansprechpartner", "contact:", "kontakt:", "kontaktdaten:", "notfallkontakt:",
    "emergency contact is", "emergency contact:", "contact is", "contact person:", "patient", "patientin", "mitarbeiter",
    "mitarbeiterin", "employee", "employee record:", "employee:", "applicant", "bewerber", "bewerberin", "kunde",
    "kundin", "customer", "customer:", "client", "client:", "cc", "cc:", "bcc:", "gruß,", "gruß", "grüße,", "grüße",
    "grüßen,", "grüßen", "gruss,", "thanks,", "thanks", "thank you,", "regards,", "regards", "best,", "cheers,",
    "sincerely,", "sincerely", "yours,", "yours truly,", "signed", "signed:", "gez.", "unterschrift:", "from:", "von:",
    "an:", "to:", "attn:", "attn.", "z. hd.", "z.hd.", "zu händen", "c/o", "vertreten durch", "represented by",
    "geschäftsführer", "geschäftsführerin", "inhaber", "inhaberin", "author:", "autor:", "verfasser:", "sachbearbeiter:",
    "sachbearbeiterin:", "user", "benutzer", "mieter", "mieterin", "vermieter", "vermieterin", "tenant", "landlord",
    "versicherungsnehmer", "versicherungsnehmerin", "schüler", "schülerin", "student", "kollege", "kollegin",
    "colleague", "manager", "doctor", "arzt", "ärztin", "nurse", "teacher", "lehrer", "lehrerin", "witness", "zeuge",
    "zeugin", "spouse", "ehefrau", "ehemann", "wife", "husband", "sohn", "tochter", "son", "daughter", "mother",
    "father", "mutter", "vater", "bruder", "schwester", "brother", "sister", "partner", "partnerin", "cc'd",
    "wenden sie sich an", "reach out to", "ask for", "invoice to", "rechnung geht an", "ship the package to",
    "zahlung von", "payment from", "payment of", "call", "rufen sie", "email", "e-mail an", "write to", "schreiben sie",
    "assigned to", "zugewiesen an", "owner:", "holder:", "name of", "erstellt von", "created by", "reviewed by",
    "approved by", "genehmigt von", "requested by", "beantragt von", "born", "geboren",
];

/// Which cue ends right before byte `at` (ignoring whitespace and, for
/// sign-offs, a line break): 2 = title/introduction, 1 = other cue, 0 = none.
fn cue_before(text: &str, at: usize) -> u8 {
    let mut s = at.saturating_sub(48);
    while !text.is_char_boundary(s) {
        s += 1;
    }
    super::charge(at - s);
    let before = text[s..at].to_lowercase();
    let before = before.trim_end_matches([' ', '\t', '\n', '\r']);
    let ends_word = |cue: &str| -> bool {
        before.ends_with(cue) && {
            let rest = &before[..before.len() - cue.len()];
            !rest.chars().next_back().is_some_and(|c| c.is_alphanumeric())
        }
    };
    let closing = |cue: &str| ends_word(cue) || before.strip_suffix(',').is_some_and(|b| b.ends_with(cue));
    if TITLE_CUES.iter().any(|c| closing(c)) || INTRO_CUES.iter().any(|c| closing(c)) {
        return 2;
    }
    let sign_off = ["mit freundlichen grüßen", "freundliche grüße", "viele grüße", "beste grüße", "liebe grüße", "best regards", "kind regards", "with kind regards", "mfg", "lg", "vg"];
    if sign_off.iter().any(|c| closing(c)) {
        return 2;
    }
    if ROLE_CUES.iter().any(|c| closing(c)) || before.ends_with(':') && before.len() > 2 && {
        // "Name:" / "Patient:" style labels with any single word before the colon
        let label = before[..before.len() - 1].rsplit([' ', '\n', ',', '(']).next().unwrap_or("");
        matches!(label, "name" | "vorname" | "nachname" | "full name" | "contact" | "kontakt" | "von" | "from" | "an" | "to")
    } {
        return 1;
    }
    0
}

fn is_lower_word(t: &str) -> bool {
    t.chars().all(|c| !c.is_uppercase()) && t.chars().any(|c| c.is_lowercase())
}

/// Lower-case words right before a lower-case name that make it one (`an`,
/// `to`, `this is`): needed when both name words are also common words.
const LOWER_CUES: &[&str] = &[
    "an", "to", "von", "from", "with", "mit", "für", "for", "by", "ist", "is", "bin", "am", "called", "named", "cc",
    "contact", "kontakt", "heiße", "frag", "ask", "bei", "und", "and",
];
const LOWER_TITLES: &[&str] = &["herr", "herrn", "frau", "mr", "mrs", "ms", "dr", "prof"];

/// Rule 5: names written in lower case.
fn detect_lower(text: &str, toks: &[Tok], out: &mut Vec<Candidate>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        let (a, b) = (&toks[i], &toks[i + 1]);
        if !is_lower_word(a.s) {
            i += 1;
            continue;
        }
        // "herr müller", "mrs smith"
        let titled = LOWER_TITLES.contains(&a.s.trim_end_matches('.'))
            && (joined(text, a, b) || text[a.end..b.start] == *". ")
            && is_lower_word(b.s)
            && is_lexicon_surname(b.s)
            && !is_not_name(b.s)
            && !is_particle(b.s);
        if titled {
            out.push(Candidate::new(b.start, b.end, PiiType::Person, 0.75));
            i += 2;
            continue;
        }
        let pair = joined(text, a, b)
            && text[a.end..b.start] == *" "
            && is_lower_word(b.s)
            && is_lexicon_first(a.s)
            && !is_not_name(a.s)
            && (is_lexicon_surname(b.s) || is_lexicon_first(b.s))
            && !is_not_name(b.s)
            && !is_ambiguous(b.s)
            && !is_particle(b.s)
            && !is_particle(a.s);
        if !pair {
            i += 1;
            continue;
        }
        let cue = i > 0 && {
            let p = &toks[i - 1];
            joined(text, p, a) && LOWER_CUES.contains(&p.s.to_lowercase().as_str())
        } || cue_before(text, a.start) > 0;
        if is_also_word(a.s) && is_also_word(b.s) && !cue {
            i += 1;
            continue;
        }
        out.push(Candidate::new(a.start, b.end, PiiType::Person, if cue { 0.8 } else { 0.7 }));
        i += 2;
    }
}

pub fn detect(text: &str, out: &mut Vec<Candidate>) {
    super::charge(text.len());
    let toks = tokens(text);
    detect_lower(text, &toks, out);
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        // skip tokens inside compounds (Ekkehard-Gröttner-Allee is one token anyway) and after digits/@
        let prev = text[..t.start].chars().next_back();
        if matches!(prev, Some('@') | Some('.') | Some('_') | Some('/') | Some('\\')) && !text[..t.start].ends_with(". ") {
            i += 1;
            continue;
        }
        if !name_shaped(t.s) {
            i += 1;
            continue;
        }
        let curated = is_first_name(t.s);
        // a lexicon first name counts only with a lexicon surname right after it
        let lex_pair = !curated
            && is_lexicon_first(t.s)
            && toks.get(i + 1).is_some_and(|n| joined(text, t, n) && name_shaped(n.s) && is_lexicon_surname(n.s));
        let known = curated || lex_pair;
        let cue = cue_before(text, t.start);
        // place names: San Michele, Lake Jason, Port Joseph, Sankt Peter
        const PLACE: &[&str] = &["San", "Santa", "Santo", "São", "Saint", "St", "Sankt", "Lake", "Port", "Fort", "Mount", "New", "Bad", "Villa", "Porto"];
        if i > 0 && joined(text, &toks[i - 1], t) && PLACE.contains(&toks[i - 1].s) {
            i += 1;
            continue;
        }
        if !known && cue == 0 {
            i += 1;
            continue;
        }
        // extend over further name words on the same line
        let mut j = i;
        let mut name_words = 1;
        let mut surname = false;
        while j + 1 < toks.len() && name_words < 4 {
            let cur = &toks[j];
            let nx = &toks[j + 1];
            if !joined(text, cur, nx) || (text[cur.end..nx.start].contains('.') && !is_initial(text, cur)) {
                break;
            }
            if is_initial(text, nx) {
                j += 1;
                continue;
            }
            if is_particle(nx.s) {
                // a particle must be followed by a name word
                if let Some(k) = (j + 2..toks.len().min(j + 4))
                    .find(|&k| name_shaped(toks[k].s) && joined(text, &toks[k - 1], &toks[k]))
                {
                    if (j + 2..k).all(|m| is_particle(toks[m].s)) {
                        j = k;
                        name_words += 1;
                        surname = true;
                        if !is_first_name(toks[k].s) {
                            break;
                        }
                        continue;
                    }
                }
                break;
            }
            if !name_shaped(nx.s) {
                break;
            }
            // "Müller-" at a hyphen compound boundary (Detlef-Heinrich-Weg) is not a name
            j += 1;
            name_words += 1;
            surname = true;
            if !is_first_name(nx.s) {
                break; // a surname ends the name
            }
        }
        let end_tok = &toks[j];
        let next = text[end_tok.end..].chars().next();
        if next == Some('-') {
            i = j + 1;
            continue;
        }
        let end = if is_initial(text, end_tok) { end_tok.end + 1 } else { end_tok.end };
        let score = match (known, surname, cue) {
            (_, true, c) if c > 0 => 0.9,
            (true, true, _) if !is_ambiguous(t.s) => 0.85,
            (true, true, _) => 0.7,
            (false, true, _) => 0.0, // unknown + no cue handled above
            (_, false, 2) => 0.8,
            (true, false, 1) if curated && !is_ambiguous(t.s) => 0.75,
            (true, false, 0) if curated && !is_ambiguous(t.s) => 0.6,
            _ => 0.0,
        };
        // an unknown first word after a weak cue needs a second name word
        let score = if !known && cue == 1 && !surname { 0.0 } else { score };
        if score > 0.0 {
            out.push(Candidate::new(t.start, end, PiiType::Person, score));
            i = j + 1;
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        let mut v = Vec::new();
        detect(text, &mut v);
        crate::pii::resolve(v).into_iter().map(|c| text[c.start..c.end].to_string()).collect()
    }

    #[test]
    fn gazetteer_first_name_plus_surname() {
        assert_eq!(found("Die Zahlung von Amalia Davids wurde abgelehnt."), ["Amalia Davids"]);
        assert_eq!(found("Patient Klaus Peter Dörr (geb. 1973)"), ["Klaus Peter Dörr"]);
        assert_eq!(found("Kontakt: Manuel van der Dussen, Tel."), ["Manuel van der Dussen"]);
        assert_eq!(found("Karin M. Beike\nLeasing consultant"), ["Karin M. Beike"]);
        assert_eq!(found("Anschrift: Hans-Theo Hethur, Bonn"), ["Hans-Theo Hethur"]);
        assert_eq!(found("Call Kenneth Martinez at noon."), ["Kenneth Martinez"]);
    }

    #[test]
    fn context_rules_admit_unknown_names() {
        assert_eq!(found("Sehr geehrte Frau Schäfer,"), ["Schäfer"]);
        assert_eq!(found("For my take on Mrs. Labrie, see"), ["Labrie"]);
        assert_eq!(found("Mit freundlichen Grüßen\nKowalczyk Zbigniewski"), ["Kowalczyk Zbigniewski"]);
        assert_eq!(found("Hallo, mein Name ist Xaver Quappendorf und"), ["Xaver Quappendorf"]);
        assert_eq!(found("Name: Kamila Červinková\nPhone"), ["Kamila Červinková"]);
        assert_eq!(found("Dear Mr. O'Neill,"), ["O'Neill"]);
    }

    #[test]
    fn lone_first_names_and_ambiguous_words() {
        assert_eq!(found("Why is Natalia so impulsive?"), ["Natalia"]);
        assert_eq!(found("I'm Amanda's daughter"), ["Amanda"]);
        assert!(found("We will meet in May and August.").is_empty());
        assert!(found("Sehr geehrte Damen und Herren, anbei die Rechnung.").is_empty());
    }

    #[test]
    fn lexicon_pairs_and_lower_case_names() {
        // lexicon first name + lexicon surname, no cue
        assert_eq!(found("Gestern hat Yusuf Öztürk angerufen."), ["Yusuf Öztürk"]);
        assert_eq!(found("bitte an jürgen weber schicken"), ["jürgen weber"]);
        assert_eq!(found("hi, this is sarah connor from sales"), ["sarah connor"]);
        assert_eq!(found("schreib herr müller eine mail"), ["müller"]);
        // lower-case prose is not a name
        for t in [
            "we will mark the date and can send the report in may",
            "die hand des arztes war ruhig und der weg war lang",
            "please review the pull request and merge it after the build passes",
            "bitte die rechnung bis freitag bezahlen, danke",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn streets_and_compounds_are_not_people() {
        assert!(found("Ekkehard-Gröttner-Allee 1-2").is_empty(), "{:?}", found("Ekkehard-Gröttner-Allee 1-2"));
        assert!(found("Detlef-Heinrich-Weg 641").is_empty());
        assert!(found("Marius-Pärtzelt-Straße 99/25").is_empty());
        assert!(found("Die IBAN lautet DE12, Konto bei der Bank.").is_empty());
    }
}
