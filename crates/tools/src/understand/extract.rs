//! The arguments a message gives for each built-in tool, other than dates
//! and times (see `when`): order ids, ticket priority, subject and
//! description, appointment topic, the product a price question names.
//!
//! Owns: the patterns for those values in English and German, general over
//! companies (an order id is letters and digits, not "NL-"). Never: invents
//! a value (absent is `None`, and the caller lists it as missing), or looks a
//! value up in the tools' data (the built-ins match products fuzzily).

use std::sync::LazyLock;

use regex::Regex;

// ---------------------------------------------------------------- order ids

/// Letters, an optional hyphen, digits (at least 4), optional more groups:
/// `NL-10234`, `NL10240`, `AB-2024-0042`, `ORD-7781-X`. A 3-digit tail is a
/// product code ("FW-200"), not an order.
static ID_JOINED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:^|[^\p{L}\p{N}\-])([A-Z]{1,5}(?:-[A-Z]{1,5})?[-_/]?\d{4,12}(?:-[A-Z0-9]{1,8})*)(?:$|[^\p{L}\p{N}\-])").unwrap()
});
/// `nl 10240`: letters, a space, digits — only where the letters are not a word.
static ID_SPACED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[^\p{L}\p{N}\-])([A-Za-z]{2,4}) (\d{4,12})(?:$|[^\p{L}\p{N}\-])").unwrap());
/// A number after an order word: "Bestellung 4711", "order no. 123456", "#88213".
static ID_AFTER_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:\b(?:orders?|order-?nr|bestellung|bestellnr|bestellnummer|auftrag|auftragsnr|auftragsnummer|ordernummer|lieferung|sendung|shipment|delivery|vorgang)\b\.?\s*(?:(?:number|no|nr|nummer|id)\b\.?\s*)?[:#]?\s*|#\s?)(\d{4,12})\b",
    )
    .unwrap()
});
/// Words that look like an id prefix before a spaced number but are words.
const NOT_PREFIX: &[&str] = &[
    "nr", "no", "num", "am", "um", "at", "to", "on", "in", "von", "bis", "ab", "is", "ist", "the", "die", "der", "das",
    "und", "and", "or", "for", "für", "mit", "with", "id", "vom", "zum", "seit", "since", "ca", "von", "only", "nur",
    "über", "over", "eur", "usd", "euro", "chf", "gbp", "jahr", "year", "mal", "x", "sku", "usv", "ups", "va", "rma",
    "art", "kw", "pos", "tel", "fax", "plz", "zip",
];

/// The order id of `text`, upper case, a space between its parts written as
/// a hyphen (`nl 10240` → `NL-10240`); `None` when none is given.
pub fn order_id(text: &str) -> Option<String> {
    let joined = ID_JOINED.captures_iter(text).map(|c| c.get(1).unwrap()).find(|m| {
        let s = m.as_str();
        // not an error code (0x8007…) and not a year-only thing
        !s.to_ascii_lowercase().starts_with("0x") && s.chars().any(|c| c.is_ascii_alphabetic())
    });
    if let Some(m) = joined {
        return Some(m.as_str().to_uppercase().replace('_', "-"));
    }
    for c in ID_SPACED.captures_iter(text) {
        let prefix = c.get(1).unwrap().as_str();
        // a real word ("Bestellung", "order") is longer; two to four letters
        // in capitals, or lower case (not a short word) beside an order word
        let upper = prefix.chars().all(|c| c.is_ascii_uppercase());
        if !upper && NOT_PREFIX.contains(&prefix.to_lowercase().as_str()) {
            continue;
        }
        if upper || ORDER_WORD.is_match(text) {
            return Some(format!("{}-{}", prefix.to_uppercase(), &c[2]));
        }
    }
    ID_AFTER_WORD.captures(text).map(|c| c[1].to_string())
}

/// A reply that should be an order id: as [`order_id`], or the message is
/// only a number of 4+ digits ("10240").
pub fn order_id_reply(text: &str) -> Option<String> {
    order_id(text).or_else(|| {
        let t = text.trim().trim_end_matches(['.', '!', '?']).trim();
        let digits = t.trim_start_matches('#');
        (digits.len() >= 4 && digits.len() <= 12 && digits.chars().all(|c| c.is_ascii_digit())).then(|| digits.to_string())
    })
}

static ORDER_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:orders?|bestell\w*|auftrag\w*|liefer\w*|sendung\w*|shipment|delivery|parcel|package|paket)\b").unwrap()
});

// ---------------------------------------------------------------- priority

const PRIO: &str = r"(?:prio(?:rity|rität|ritaet|rit[äa]t)?)";

static PRIO_SAID: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let said = |levels: &str, adj: &str| -> Regex {
        Regex::new(&format!(
            r"(?i)\b{PRIO}\s*(?:[:=]|is|ist|auf|of|on)?\s*(?:{levels})\b|\b(?:{adj})[\s-]*{PRIO}\b|\b(?:{adj})[\s-]+(?:dringlichkeit|urgency)\b"
        ))
        .unwrap()
    };
    vec![
        (said("high|hoch|urgent|dringend|critical|kritisch|1|eins|one|a|top", "high|hohe[rnms]?|hoch|höchste[rnms]?|top|critical|kritische[rnms]?|urgent"), "high"),
        (said("low|niedrig|gering|3|drei|three|c", "low|niedrige[rnms]?|geringe[rnms]?|tiefe[rnms]?"), "low"),
        (said("normal|medium|mittel|standard|2|zwei|two|b", "normal|normale[rnms]?|medium|mittlere[rnms]?|standard"), "normal"),
        (Regex::new(r"(?i)\bp1\b").unwrap(), "high"),
        (Regex::new(r"(?i)\bp2\b").unwrap(), "normal"),
        (Regex::new(r"(?i)\bp3\b").unwrap(), "low"),
    ]
});

static PRIO_LOW: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:no rush|no hurry|not urgent|nothing urgent|not critical|not an emergency|no emergency|not a priority|can wait|whenever (?:you|it)|when(?:ever)? you (?:get|have) (?:a chance|time)|no pressure|low urgency|nicht dringend|nicht eilig|keine eile|eilt nicht|hat zeit|kann warten|kein notfall|kein stress|nichts dringendes|nicht kritisch|geringe dringlichkeit|wenn (?:sie|du) zeit (?:haben|hast))\b",
    )
    .unwrap()
});
static PRIO_HIGH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:urgent|urgently|dringend|dringende[rnms]?|dringlich|emergency|notfall|asap|as soon as possible|so schnell wie möglich|schnellstmöglich|sofort|immediately|umgehend|critical|kritisch|eilig|eilt|top priority|business[- ]critical|production (?:is )?down|steht still|total ausfall|totalausfall)\b",
    )
    .unwrap()
});

/// The ticket priority the message says or clearly implies: said wins,
/// then "no rush"-style (checked before "urgent" so that "not urgent" is
/// low), then "urgent"-style. `None`: nothing said (the schema default,
/// normal, applies).
pub fn priority(text: &str) -> Option<&'static str> {
    let said = PRIO_SAID
        .iter()
        .filter_map(|(re, level)| re.find(text).map(|m| (m.start(), *level)))
        .min_by_key(|(at, _)| *at);
    if let Some((_, level)) = said {
        return Some(level);
    }
    if PRIO_LOW.is_match(text) {
        return Some("low");
    }
    if PRIO_HIGH.is_match(text) {
        return Some("high");
    }
    None
}

// ---------------------------------------------------------------- tickets

/// Nouns that name the ticket being asked for.
static TICKET_NOUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b(?:support[- ]?)?(?:tickets?|störungsmeldung|stoerungsmeldung|fehlermeldung aufnehmen|support[- ]?fall|support[- ]?case|service[- ]?request|supportanfrage|support-anfrage|incident|vorfall)\b",
    )
    .unwrap()
});
/// A report verb that asks to record a problem ("I want to report …",
/// "Bitte melden Sie …").
static REPORT_VERB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:report|reporting|melden|melde|meldung)\b").unwrap());
/// What may follow the ticket noun and still belong to the request.
static REQUEST_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:\s|[,:;!?.\-–]|\b(?:an|auf|eröffnen|eroeffnen|anlegen|aufmachen|erstellen|erfassen|aufnehmen|öffnen|oeffnen|machen|anlegen|einstellen|für mich|for me|for us|für uns|please|pls|bitte|mir|uns|mal|kurz|schnell|dringend|urgently|real quick|now|jetzt|with|mit|high|low|normal|medium|hohe[rnm]?|niedrige[rnm]?|normale[rnm]?|prio(?:rity|rität)?|create|open|file|raise|log|submit|ein|eine|einen|a|an|the|new|neues|neuen|support|it|helpdesk)\b)+",
    )
    .unwrap()
});
/// Leading words of a problem text that only join it to the request.
static LEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:\s|[,:;\-–]|\b(?:for|about|regarding|concerning|re|that|because|as|since|wegen|für|zu|zum|zur|bezüglich|betreffend|betreffs|dass|weil|da|denn|and|und|also|nämlich|folgendes|following|the following)\b)+",
    )
    .unwrap()
});

/// Words of a clause that only states a priority ("Low priority.", "normale
/// Priorität reicht", "das ist dringend!").
const PRIO_CLAUSE: &[&str] = &[
    "priority", "prio", "priorität", "prioritaet", "high", "hoch", "hohe", "hoher", "hohen", "low", "niedrig",
    "niedrige", "niedriger", "normal", "normale", "normaler", "medium", "urgent", "dringend", "no", "rush", "keine",
    "eile", "not", "nicht", "hurry", "eilt", "please", "bitte", "reicht", "genügt", "is", "enough", "this", "it",
    "it's", "s", "das", "ist", "es", "a", "an", "the", "mit", "with", "sehr", "very", "quite", "ziemlich", "also",
    "auch", "asap", "sofort", "emergency", "notfall", "aber", "but", "pls", "thanks", "danke", "but", "tho", "though",
    "really", "wirklich", "eilig", "kein", "stress", "can", "wait", "kann", "warten", "just", "nur", "fine", "okay",
    "ok", "reicht", "aus", "völlig", "totally", "set", "to", "auf", "setzen", "use", "as", "als",
];
const PRIO_CORE: &[&str] = &[
    "priority", "prio", "priorität", "prioritaet", "urgent", "dringend", "rush", "eile", "hurry", "eilt", "asap",
    "emergency", "notfall", "eilig", "stress", "wait", "warten",
];

fn words_lower(s: &str) -> Vec<String> {
    s.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

fn is_prio_clause(clause: &str) -> bool {
    let w = words_lower(clause);
    !w.is_empty() && w.iter().all(|x| PRIO_CLAUSE.contains(&x.as_str())) && w.iter().any(|x| PRIO_CORE.contains(&x.as_str()))
}

/// Sentences with their byte ranges; a dot after a number ("im 2. OG") or
/// an abbreviation of one or two letters does not end one.
pub(crate) fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'.' | b'!' | b'?') {
            let mut j = i + 1;
            while j < b.len() && matches!(b[j], b'.' | b'!' | b'?') {
                j += 1;
            }
            let at_end = j >= b.len();
            let space_next = !at_end && b[j].is_ascii_whitespace();
            let prev_word: String = text[start..i].chars().rev().take_while(|c| c.is_alphanumeric()).collect();
            let abbrev = c == b'.'
                && (prev_word.chars().all(|c| c.is_ascii_digit()) && !prev_word.is_empty() && prev_word.len() <= 2
                    || prev_word.chars().count() <= 2 && prev_word.chars().all(|c| c.is_alphabetic()) && !prev_word.is_empty()
                        && prev_word.chars().next().is_some_and(|c| c.is_lowercase()));
            if (at_end || space_next) && !abbrev {
                let s = text[start..j].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = j;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Split at ", " and drop the clauses that only state a priority.
fn drop_prio_clauses(sentence: &str) -> String {
    let parts: Vec<&str> = sentence.split([',', ';']).collect();
    let kept: Vec<&str> = parts.iter().copied().filter(|p| !is_prio_clause(p)).collect();
    if kept.len() == parts.len() {
        return sentence.to_string();
    }
    let mut s = kept.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(", ");
    let end = sentence.trim_end().chars().last().filter(|c| matches!(c, '.' | '!' | '?'));
    if let Some(e) = end {
        if !s.ends_with(['.', '!', '?']) && !s.is_empty() {
            s.push(e);
        }
    }
    s
}

fn content_words(s: &str) -> usize {
    words_lower(s)
        .iter()
        .filter(|w| !tresor_text::is_stopword(w) && !FILLER.contains(&w.as_str()) && w.chars().count() > 1)
        .count()
}
const FILLER: &[&str] = &[
    "please", "pls", "bitte", "thanks", "thank", "danke", "hi", "hello", "hey", "hallo", "ticket", "tickets", "new",
    "neues", "open", "create", "raise", "file", "support", "priority", "prio", "priorität", "high", "low", "normal",
    "hoch", "niedrig", "hohe", "hoher", "niedrige", "niedriger", "normale", "eröffnen", "anlegen", "aufmachen",
    "erstellen", "need", "want", "like", "brauche", "möchte", "würde", "gern", "gerne", "kannst", "können", "könnten",
    "würden", "could", "would", "you", "make", "log", "submit", "machen", "mach", "erstell", "leg", "urgent",
    "dringend", "quickly", "schnell", "one", "einen", "ein", "eine", "ok", "okay",
];

fn tidy(s: &str) -> String {
    let s = s.trim().trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | ';' | '-' | '–'));
    let s = s.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ':' | ';' | '-' | '–'));
    let mut out = String::with_capacity(s.len());
    let mut cs = s.chars();
    if let Some(f) = cs.next() {
        out.extend(f.to_uppercase());
        out.push_str(cs.as_str());
    }
    out
}

/// The problem text of a ticket request, without the request itself ("Please
/// open a ticket:") and without clauses that only state the priority.
/// `None` when no problem is described ("Please open a high priority ticket.").
pub fn ticket_description(text: &str) -> Option<String> {
    let sents = sentences(text);
    let mut kept: Vec<String> = Vec::new();
    let mut request_seen = false;
    for s in sents {
        let mut rest = s.to_string();
        if !request_seen {
            if let Some(cut) = request_cut(s) {
                request_seen = true;
                rest = LEAD.replace(&s[cut..], "").into_owned();
            }
        }
        let rest = drop_prio_clauses(&rest);
        if !is_prio_clause(&rest) && content_words(&rest) > 0 {
            kept.push(tidy(&rest));
        }
    }
    let desc = kept.join(" ");
    (content_words(&desc) >= 2).then_some(desc)
}

/// Where the problem text starts in a sentence that asks for a ticket: after
/// a ':' or ' - ' that follows the request, else after the ticket noun (or
/// report verb) and the request words after it.
fn request_cut(s: &str) -> Option<usize> {
    let noun = TICKET_NOUN.find(s).map(|m| (m.start(), m.end()));
    let verb = REPORT_VERB.find(s).map(|m| (m.start(), m.end()));
    let (start, end) = noun.or(verb)?;
    // a separator after the request words
    let seps = [": ", " - ", " – ", ":\t", ":"];
    for sep in seps {
        if let Some(p) = s[start..].find(sep) {
            let at = start + p + sep.len();
            if at < s.len() && content_words(&s[at..]) > 0 {
                return Some(at);
            }
        }
    }
    // "Ticket bitte: …" handled above; else after the noun and its verb/filler
    let tail = REQUEST_TAIL.find(&s[end..]).map(|m| m.end()).unwrap_or(0);
    let _ = start;
    Some(end + tail)
}

/// A subject from the description: its first sentence, at most ~80
/// characters, cut at a word boundary.
pub fn ticket_subject(description: &str) -> String {
    let first = sentences(description).into_iter().next().unwrap_or(description);
    let first = first.trim_end_matches(['.', '!', '?']).trim();
    if first.chars().count() <= 80 {
        return first.to_string();
    }
    let mut cut = String::new();
    for w in first.split_whitespace() {
        if cut.chars().count() + w.chars().count() + 1 > 77 {
            break;
        }
        if !cut.is_empty() {
            cut.push(' ');
        }
        cut.push_str(w);
    }
    format!("{}…", cut.trim_end_matches([',', ';', ':']))
}

// ---------------------------------------------------------------- topics

/// Markers after which the appointment's topic follows; strong ones first.
static TOPIC_STRONG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:\b(?:about|regarding|concerning|to discuss|to go over|to talk about|to talk through|to review|topic|subject|re|thema|zum thema|wegen|bezüglich|betreffend|betreffs|es geht um|it's about|it is about|agenda)\b\s*:?)",
    )
    .unwrap()
});
static TOPIC_WEAK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b(?:for|zur|zum|über|für|on|of|zu)\b").unwrap());
const TOPIC_TRIM: &[&str] = &[
    "please", "pls", "bitte", "thanks", "thank", "you", "danke", "if", "possible", "möglich", "wenn", "geht", "ok",
    "okay", "noch", "mal", "ein", "eintragen", "buchen", "vereinbaren", "ausmachen", "book", "schedule", "thx",
];

/// The topic of an appointment: what follows "about", "wegen", "Thema",
/// "to discuss" … (or, weaker, "for"/"zur" not followed by a time), without
/// the parts read as a date, time or length. `None` when none is said.
pub fn topic(text: &str, when_spans: &[(usize, usize)]) -> Option<String> {
    // blank out the date/time/length spans, keeping byte offsets
    let mut masked = text.to_string();
    for (a, b) in when_spans {
        if *b <= masked.len() && masked.is_char_boundary(*a) && masked.is_char_boundary(*b) {
            masked.replace_range(*a..*b, &"\u{1}".repeat(b - a));
        }
    }
    let candidates = TOPIC_STRONG.find_iter(&masked).chain(TOPIC_WEAK.find_iter(&masked));
    for m in candidates {
        let rest = &masked[m.end()..];
        // up to the end of the sentence, or a blanked time span after the topic
        let stop = rest.find(['.', '?', '!', '\u{1}', '\n']).unwrap_or(rest.len());
        let mut t = rest[..stop].trim().to_string();
        // a trailing ", eine Stunde" was blanked; drop dangling commas and fillers
        loop {
            let trimmed = t.trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '-'));
            let last = trimmed.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
            if !last.is_empty() && TOPIC_TRIM.contains(&last.to_lowercase().as_str()) {
                t = trimmed[..trimmed.len() - last.len()].to_string();
                continue;
            }
            t = trimmed.to_string();
            break;
        }
        let t = t.trim_start_matches(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '-'));
        let t = strip_article(t);
        if content_words(t) >= 1 && t.chars().count() >= 3 {
            return Some(t.to_string());
        }
    }
    None
}

fn strip_article(t: &str) -> &str {
    for a in ["the ", "a ", "an ", "our ", "my ", "der ", "die ", "das ", "den ", "dem ", "unsere ", "unseren ", "unser ", "meine ", "einen ", "eine ", "ein "] {
        if t.len() > a.len() && t.get(..a.len()).is_some_and(|p| p.eq_ignore_ascii_case(a)) {
            return &t[a.len()..];
        }
    }
    t
}

// ---------------------------------------------------------------- products

/// Words that frame a price question, never part of a product name.
const PRICE_FRAME: &[&str] = &[
    "how", "hw", "much", "is", "are", "does", "do", "did", "would", "will", "what", "what's", "whats", "the", "a",
    "an", "price", "prices", "pricing", "cost", "costs", "costing", "of", "for", "tell", "me", "could", "can", "you",
    "please", "pls", "plz", "i", "need", "want", "to", "know", "let", "check", "current", "your", "us", "sku", "hi",
    "hello", "hey", "and", "again", "exactly", "currently", "right", "now", "today", "does", "one", "was", "kostet",
    "kosten", "wie", "viel", "wieviel", "teuer", "ist", "sind", "der", "die", "das", "den", "dem", "preis", "preise",
    "für", "von", "bitte", "können", "könnten", "sie", "mir", "sagen", "du", "kannst", "bei", "euch", "ihnen",
    "eigentlich", "zahlt", "zahle", "zahlen", "man", "ich", "aktuell", "derzeit", "gerade", "hallo", "moin", "so",
    "kostenpunkt", "listenpreis", "list", "ein", "eine", "einen", "artikel", "artikelnummer", "item", "product",
    "produkt", "liegt", "bei", "da", "at", "on", "there", "we", "pay", "would", "have", "quote", "expensive",
    "cheap", "mal", "denn", "nochmal", "info", "about", "wissen", "wüsste", "gern", "gerne", "like", "i'd", "it",
    "this", "that", "these", "those", "dies", "diese", "dieses", "es",
];
/// Framing words dropped even inside the phrase.
const PRICE_CORE: &[&str] = &["price", "prices", "cost", "costs", "kostet", "kosten", "preis", "preise", "pricing", "teuer", "costing"];

static PRODUCT_TOKEN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[\p{L}\p{N}][\p{L}\p{N}'’\-_./+]*[\p{L}\p{N}+]|[\p{L}\p{N}]").unwrap());

/// The product a price question names, with the question's framing taken
/// off ("Was kostet bei euch die USV mit 1500 VA?" → "USV mit 1500 VA").
/// Typos and SKUs are kept for the fuzzy match. `None` when nothing is left.
pub fn product(text: &str) -> Option<String> {
    let toks: Vec<regex::Match> = PRODUCT_TOKEN.find_iter(text).collect();
    let framing = |m: &regex::Match| PRICE_FRAME.contains(&m.as_str().to_lowercase().as_str());
    let first = toks.iter().position(|m| !framing(m))?;
    let last = toks.iter().rposition(|m| !framing(m))?;
    let span = &toks[first..=last];
    let words: Vec<&str> =
        span.iter().map(|m| m.as_str()).filter(|w| !PRICE_CORE.contains(&w.to_lowercase().as_str())).collect();
    let out = words.join(" ");
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
