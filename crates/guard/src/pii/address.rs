//! Street addresses, German and English/US.
//!
//! German: a street name carrying a street suffix (`…straße`, `…str.`,
//! `…-Allee`, `Kölner Straße`, `Am Markt` + postcode) and a house number
//! (`12`, `12a`, `6/8`, `51-29`), optionally followed by a five-digit
//! postcode and a town (`Bad …`, `… am Main`). US/English: a building number,
//! capitalised street words ending in a USPS street suffix and optional unit
//! (`Apt. 4`, `Suite 987`), optionally followed by town, state code and ZIP.
//! Without a known suffix, a US street only counts with state and ZIP.
//!
//! Also: floors and flats after a German house number (`3. OG`, `Whg. 5`,
//! `Top 4`, Austrian `5/2/14`), four-digit Austrian/Swiss postcodes
//! (`A-1010 Wien`), PO boxes (`Postfach 12 34 56, 80331 München`, `P.O. Box
//! 123, Springfield, IL 62701`), British addresses ending in a postcode
//! (`12 Baker Street, London NW1 6XE`), and a leading `c/o …` or `Flat 3,`
//! line joined to the address after it. Line breaks between the parts of an
//! address join them into one span.

use std::sync::OnceLock;

use regex::Regex;

use super::{Candidate, PiiType};

const DE_SUFFIX_ATTACHED: &str = "straße|strasse|str\\.|gasse|weg|allee|platz|ring|damm|ufer|chaussee|pfad|steig|stieg|markt|graben|kamp|wall|promenade|zeile|twiete|berg|hof|garten|feld|park|anger|höhe|wiese|wiesen|brücke|bogen|kai|stra\\u00dfe|gässchen|steg|deich|koppel|winkel|tal|grund|hain|aue";
const DE_SUFFIX_WORD: &str = "Straße|Strasse|Str\\.|Gasse|Weg|Allee|Platz|Ring|Damm|Ufer|Chaussee|Pfad|Steig|Stieg|Markt|Graben|Kamp|Wall|Promenade|Zeile|Twiete|Berg|Hof|Garten|Feld|Park|Anger|Höhe|Wiese|Brücke|Bogen|Kai|Steg|Deich|Winkel|Tal|Grund|Hain|Aue";
/// Suffixes that are also ordinary word endings (Bahnhof, Bielefeld): such
/// streets count only with a postcode after them.
const DE_WEAK: &[&str] = &["berg", "hof", "garten", "feld", "park", "höhe", "wiese", "wiesen", "tal", "grund", "hain", "aue", "winkel", "markt", "anger", "bogen", "steg", "wall", "kai", "deich", "koppel", "zeile"];
const DE_PREP: &str = "Am|An der|An den|An dem|Auf der|Auf dem|Auf den|Im|In der|In den|Zum|Zur|Unter den|Hinter der|Hinter dem|Vor dem|Vor der|Bei der|Beim|Alt|Alte|Altes|Neue|Neuer|Hohe|Große|Kleine|Lange|Breite|Obere|Untere";
const CITY_PREFIX: &str = "Bad|Sankt|St\\.|Klein|Groß|Neu|Alt|Hansestadt|Lutherstadt|Ostseebad|Seebad|Markt|Hohen|Nieder|Ober|Unter";

const US_SUFFIXES: &[&str] = &[
    "alley", "aly", "annex", "arcade", "avenue", "ave", "av", "bayou", "beach", "bend", "bluff", "bluffs", "bottom",
    "boulevard", "blvd", "branch", "bridge", "brook", "brooks", "burg", "burgs", "bypass", "camp", "canyon", "cape",
    "causeway", "center", "centre", "centers", "circle", "cir", "circles", "cliff", "cliffs", "club", "common", "commons",
    "corner", "corners", "course", "court", "ct", "courts", "cove", "coves", "creek", "crescent", "crest", "crossing",
    "crossroad", "curve", "dale", "dam", "divide", "drive", "dr", "drives", "estate", "estates", "expressway",
    "extension", "extensions", "fall", "falls", "ferry", "field", "fields", "flat", "flats", "ford", "fords", "forest",
    "forge", "forges", "fork", "forks", "fort", "freeway", "garden", "gardens", "gateway", "glen", "glens", "green",
    "greens", "grove", "groves", "harbor", "harbors", "haven", "heights", "highway", "hwy", "hill", "hills", "hollow",
    "inlet", "island", "islands", "isle", "junction", "junctions", "key", "keys", "knoll", "knolls", "lake", "lakes",
    "land", "landing", "lane", "ln", "light", "lights", "loaf", "lock", "locks", "lodge", "loop", "mall", "manor",
    "manors", "meadow", "meadows", "mews", "mill", "mills", "mission", "motorway", "mount", "mountain", "mountains",
    "neck", "orchard", "oval", "overpass", "park", "parks", "parkway", "pkwy", "parkways", "pass", "passage", "path",
    "pike", "pine", "pines", "place", "pl", "plain", "plains", "plaza", "point", "points", "port", "ports", "prairie",
    "radial", "ramp", "ranch", "rapid", "rapids", "rest", "ridge", "ridges", "river", "road", "rd", "roads", "route",
    "row", "rue", "run", "shoal", "shoals", "shore", "shores", "skyway", "spring", "springs", "spur", "spurs",
    "square", "sq", "squares", "station", "stravenue", "stream", "street", "st", "str", "streets", "summit", "terrace",
    "ter", "throughway", "trace", "track", "trafficway", "trail", "trl", "trailer", "tunnel", "turnpike", "underpass",
    "union", "unions", "valley", "valleys", "viaduct", "view", "views", "village", "villages", "ville", "vista",
    "walk", "walks", "wall", "way", "ways", "well", "wells", "close", "gardens", "grove", "hill", "mews", "rise", "wynd",
];

const US_STATES: &str = "AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC|AS|GU|MP|PR|VI|UM|FM|MH|PW|AA|AE|AP";

fn de_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let street = format!(
            r"(?P<street>(?:\p{{Lu}}[\p{{Ll}}ß]+-)+(?:{w})|\p{{Lu}}[\p{{Ll}}ß]*(?P<att>{a})|\p{{Lu}}[\p{{Ll}}ß]+(?:er|e|es|sche|scher) (?:{w})|(?P<prep>(?:{p}) \p{{Lu}}[\p{{Ll}}ß]+(?:-\p{{Lu}}[\p{{Ll}}ß]+)*))",
            w = DE_SUFFIX_WORD,
            a = DE_SUFFIX_ATTACHED,
            p = DE_PREP
        );
        let number = r"\d{1,4}[a-zA-Z]?\b(?: ?[-–/] ?\d{1,4}[a-zA-Z]?\b){0,2}";
        let unit = r"(?:,? (?:\d{1,2}\. ?(?:OG|Obergeschoss|Etage|Stock)|EG|Erdgeschoss|DG|Dachgeschoss|Hinterhaus|Vorderhaus|Seitenflügel|(?:Whg|Wohnung|App|Apt|Top|Stiege|Tür)\.? ?\d{1,4}[a-z]?)\b)";
        let city = format!(
            r"(?:(?:{cp}) )?\p{{Lu}}[\p{{L}}]+(?:-\p{{L}}+)*(?: (?:am|an der|in der|im|ob der|bei|vor der|unter der|in) \p{{Lu}}[\p{{L}}]+| \(\p{{Lu}}[\p{{L}}]+\)| ?/ ?\p{{Lu}}[\p{{L}}]+)?",
            cp = CITY_PREFIX
        );
        let pat = format!(
            r"\b{street} (?P<num>{number})(?P<unit>{unit}{{1,3}})?(?P<plz>,?[ \t]*\n?[ \t]*(?:(?:D|A|CH)-)?(?:\d{{5}}|[1-9]\d{{3}}) {city})?"
        );
        Regex::new(&pat).expect("German address pattern")
    })
}

const UK_POSTCODE: &str = r"(?:GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2})";

/// German/Austrian/Swiss PO boxes: `Postfach 12 34 56`, with an optional
/// postcode and town.
fn postfach_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"\bPostfach:? \d{1,6}(?: \d{2,3}){0,3}\b(?:,?[ \t]*\n?[ \t]*(?:(?:D|A|CH)-)?(?:\d{5}|[1-9]\d{3}) \p{Lu}[\p{L}]+(?:[ -]\p{Lu}[\p{L}]+)?)?",
        )
        .expect("Postfach pattern")
    })
}

/// English PO boxes, with an optional `Town, ST 12345` or `Town POSTCODE`.
fn po_box_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let town = r"(?:\p{Lu}[\p{L}.'’-]*\s){0,2}\p{Lu}[\p{L}.'’-]*";
        Regex::new(&format!(
            r"\b(?:P\.[ ]?O\.|PO|P O|Post Office) ?Box \d{{1,6}}\b(?:,?\s+{town},?\s+(?:(?:{s})\s+\d{{5}}(?:-\d{{4}})?\b|{uk}\b))?",
            s = US_STATES,
            uk = UK_POSTCODE
        ))
        .expect("PO box pattern")
    })
}

/// British: building number, street words, town and postcode.
fn uk_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let word = r"\p{Lu}[\p{L}'’-]*\.?";
        Regex::new(&format!(
            r"\b\d{{1,5}}[A-Za-z]? (?:{word} ){{0,3}}{word},?\s+(?:{word}\s){{0,2}}{word},?\s+{uk}\b",
            uk = UK_POSTCODE
        ))
        .expect("UK address pattern")
    })
}

/// What may stand right before an address and belongs to it: `c/o Name,`
/// (or on its own line) and `Flat 3,` / `Apartment 2,`.
fn prefix_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"(?:(?:c/o|C/O|c/o\.) [^\n,;:()]{2,48}?(?:,[ \t]*\n?[ \t]*|[ \t]*\n[ \t]*)|(?:Flat|Apartment|Apt\.?|Unit|Wohnung|Whg\.?) [0-9A-Za-z]{1,5},?[ \t]*\n?[ \t]*)$",
        )
        .expect("address prefix pattern")
    })
}

/// Words before a German street without postcode that say an address follows.
fn has_address_cue(text: &str, at: usize) -> bool {
    let mut s = at.saturating_sub(40);
    while !text.is_char_boundary(s) {
        s += 1;
    }
    super::charge(at - s);
    let before = text[s..at].to_lowercase();
    ["wohn", "adresse", "anschrift", "zieh", "liefer", "umgezogen", "sitz", "büro in", "c/o"].iter().any(|c| before.contains(c))
}

/// Extends each address candidate over a `c/o …` or `Flat 3,` right before it.
fn extend_prefixes(text: &str, cands: &mut [Candidate]) {
    for c in cands.iter_mut().filter(|c| c.kind == PiiType::Address) {
        let mut s = c.start.saturating_sub(72);
        while !text.is_char_boundary(s) {
            s += 1;
        }
        super::charge(c.start - s);
        if let Some(m) = prefix_regex().find(&text[s..c.start]) {
            c.start = s + m.start();
        }
    }
}

/// `with_csz`: town, state and ZIP are required (so the street words can
/// give back "Suite" to the unit); otherwise the street alone.
fn us_regex(with_csz: bool) -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    static S: OnceLock<Regex> = OnceLock::new();
    let cell = if with_csz { &R } else { &S };
    cell.get_or_init(|| {
        let word = r"\p{Lu}[\p{L}'’-]*\.?";
        let csz = if with_csz { "" } else { "?" };
        let pat = format!(
            r"\b\d{{1,6}}[A-Z]? (?:[NSEW]\.? )?(?P<street>(?:{word} ){{0,3}}{word})(?P<dir> (?:North|South|East|West|NE|NW|SE|SW)\b)?(?P<unit>,? (?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Fl\.?|Floor|Rm\.?|Room|#) ?#?[A-Za-z0-9-]+)?(?P<csz>,?\s+(?:\p{{Lu}}[\p{{L}}.'’-]*\s){{0,2}}\p{{Lu}}[\p{{L}}.'’-]*,?\s+(?:{s})\s+\d{{5}}(?:-\d{{4}})?\b){csz}",
            s = US_STATES
        );
        Regex::new(&pat).expect("US address pattern")
    })
}

/// International "building street number unit" lines (`3482 Via Franscini 71
/// Suite 838`, `41086 Kiannonkatu 98`) and "the corner of X and Y".
fn intl_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        Regex::new(
            r"\b\d{1,6} (?:\p{Lu}[\p{Ll}\p{M}'’.-]+ ){0,2}\p{Lu}[\p{Ll}\p{M}'’.-]+ \d{1,4}\b(?:,?\s+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Fl\.?|Floor) ?#?\d{1,5}\b)?",
        )
        .expect("international address pattern")
    })
}

fn corner_regex() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| {
        let part = r"(?:\d{1,5} )?\p{Lu}[\p{L}\p{M}.'’-]*(?: \p{Lu}[\p{L}\p{M}.'’-]*| \d{1,5}\b){0,3}";
        Regex::new(&format!(r"\b(?:[Tt]he )?corner of {part} (?:and|&) {part}")).expect("corner pattern")
    })
}

pub fn detect(text: &str, out: &mut Vec<Candidate>) {
    let first = out.len();
    detect_streets(text, out);
    super::charge(3 * text.len());
    for m in postfach_regex().find_iter(text) {
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, 0.92));
    }
    for m in po_box_regex().find_iter(text) {
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, 0.92));
    }
    for m in uk_regex().find_iter(text) {
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, 0.94));
    }
    extend_prefixes(text, &mut out[first..]);
}

fn detect_streets(text: &str, out: &mut Vec<Candidate>) {
    super::charge(5 * text.len());
    for m in intl_regex().find_iter(text) {
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, 0.72));
    }
    for m in corner_regex().find_iter(text) {
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, 0.9));
    }
    for c in de_regex().captures_iter(text) {
        let m = c.get(0).unwrap();
        let has_plz = c.name("plz").is_some();
        let weak = c.name("att").is_some_and(|a| DE_WEAK.contains(&a.as_str().to_lowercase().as_str()));
        let prep = c.name("prep").is_some();
        let unit = c.name("unit").is_some();
        // "Am Markt 5 Jahre", "Bahnhof 3": a street that is also a phrase needs a postcode, a
        // floor/flat after it or an address word before it
        if !has_plz && (weak || prep) && !unit && !has_address_cue(text, m.start()) {
            continue;
        }
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, if has_plz { 0.93 } else if unit { 0.86 } else { 0.82 }));
    }
    let mut full: Vec<(usize, usize)> = Vec::new();
    for c in us_regex(true).captures_iter(text) {
        let m = c.get(0).unwrap();
        full.push((m.start(), m.end()));
        out.push(Candidate::new(m.start(), m.end(), PiiType::Address, 0.93));
    }
    for c in us_regex(false).captures_iter(text) {
        let m = c.get(0).unwrap();
        if full.iter().any(|&(s, e)| m.start() < e && s < m.end()) {
            continue;
        }
        // the street alone: up to its last street suffix (and a unit right after it)
        let street = c.name("street").unwrap();
        let mut end = None;
        let mut off = 0;
        for (i, w) in street.as_str().split(' ').enumerate() {
            let wl = w.trim_end_matches('.').to_lowercase();
            if i >= 1 && US_SUFFIXES.contains(&wl.as_str()) {
                end = Some(street.start() + off + w.len());
            }
            off += w.len() + 1;
        }
        let Some(mut end) = end else { continue };
        if end == street.end() {
            end = ["dir", "unit"].iter().filter_map(|g| c.name(g)).map(|g| g.end()).max().unwrap_or(end);
        }
        out.push(Candidate::new(m.start(), end, PiiType::Address, 0.86));
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
    fn german_addresses() {
        for (t, want) in [
            ("an Beckmannstraße 62, 41913 Cuxhaven.", "Beckmannstraße 62, 41913 Cuxhaven"),
            ("Adresse: Hansjürgen-Girschner-Ring 78, 52014 Torgau. Tel", "Hansjürgen-Girschner-Ring 78, 52014 Torgau"),
            ("wohnt in Knappegasse 6/8, 95240 Aschaffenburg.", "Knappegasse 6/8, 95240 Aschaffenburg"),
            ("Kitzmannstr. 83-97, 78934 Jessen.", "Kitzmannstr. 83-97, 78934 Jessen"),
            ("Thiesstraße 446, 38480 Bad Freienwalde, Tel.", "Thiesstraße 446, 38480 Bad Freienwalde"),
            ("Kölner Straße 5a, 60311 Frankfurt am Main", "Kölner Straße 5a, 60311 Frankfurt am Main"),
            ("Am Markt 3, 18055 Rostock", "Am Markt 3, 18055 Rostock"),
            ("Wir sitzen in der Lindenallee 4 im Hinterhaus.", "Lindenallee 4"),
        ] {
            assert_eq!(found(t), [want], "{t}");
        }
        for t in ["Im Jahr 2023 stieg der Umsatz.", "Der Bahnhof 3 Minuten entfernt", "Seit 1990 am Markt 5 Jahre"] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn floors_po_boxes_multi_line_and_prefixes() {
        for (t, want) in [
            ("Ich wohne in der Am Mühlbach 7, 2. OG, klingeln", "Am Mühlbach 7, 2. OG"),
            ("Neue Anschrift: Auf dem Berg 12a", "Auf dem Berg 12a"),
            ("Gartenweg 5/2/14, A-1100 Wien", "Gartenweg 5/2/14, A-1100 Wien"),
            ("Seestrasse 44, 8002 Zürich.", "Seestrasse 44, 8002 Zürich"),
            ("Hauptstr. 12–14\n10115 Berlin\nDeutschland", "Hauptstr. 12–14\n10115 Berlin"),
            ("Lieferung an:\nc/o Anna Weber\nLindenallee 3\n50667 Köln", "c/o Anna Weber\nLindenallee 3\n50667 Köln"),
            ("Postanschrift: Postfach 12 34 56, 80331 München.", "Postfach 12 34 56, 80331 München"),
            ("Mail it to P.O. Box 4410, Springfield, IL 62701-1234, thanks", "P.O. Box 4410, Springfield, IL 62701-1234"),
            ("Send it to PO Box 77 please", "PO Box 77"),
            ("Please write to 12 Baker Street, London NW1 6XE by Friday.", "12 Baker Street, London NW1 6XE"),
            ("to Flat 3, 27 Oak Road, Leeds LS6 2AB now", "Flat 3, 27 Oak Road, Leeds LS6 2AB"),
            ("We moved to Apartment 4, 159 Cox Grove last month.", "Apartment 4, 159 Cox Grove"),
            ("Ship to:\n505 Robertson Lane Apt 4B\nRogersmouth, MN 52488-1796\nthanks", "505 Robertson Lane Apt 4B\nRogersmouth, MN 52488-1796"),
            ("Billing: c/o Chad Bryant, 6596 Todd Place, North Joe, VA 59909", "c/o Chad Bryant, 6596 Todd Place, North Joe, VA 59909"),
        ] {
            assert_eq!(found(t), [want], "{t}");
        }
        for t in [
            "Am Montag kommen 12 Leute.",
            "Im Jahr 2024 wurden 150 Anträge bearbeitet.",
            "Das Postfach ist voll.",
            "Meet in Room 12 on the second floor at 10.",
            "We shipped 40 Units to the Main Street store.",
            "Flight BA 117 leaves from Terminal 5.",
        ] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }

    #[test]
    fn us_addresses() {
        for (t, want) in [
            ("address: 9186 Tina Rapids Suite 987, Wilsonshire, SC 93752.", "9186 Tina Rapids Suite 987, Wilsonshire, SC 93752"),
            ("to Paul, 6442 Blanchard Center, Johnsonmouth, IL 69840.", "6442 Blanchard Center, Johnsonmouth, IL 69840"),
            ("lives at 0837 Duncan Stravenue Apt. 788, New Brenda, WA 84832.", "0837 Duncan Stravenue Apt. 788, New Brenda, WA 84832"),
            ("Meet me at 221B Baker Street tomorrow", "221B Baker Street"),
            ("Meet at 35 Pentelis Str. tomorrow", "35 Pentelis Str."),
            ("the corner of 35 Pentelis Str. and Main", "the corner of 35 Pentelis Str. and Main"),
        ] {
            assert_eq!(found(t), [want], "{t}");
        }
        assert_eq!(found("Billing: 3482 Via Franscini 71 Suite 838\n Tujetsch"), ["3482 Via Franscini 71 Suite 838"]);
        assert_eq!(
            found("it is the corner of Dalbraut 99 and Frederikke Coves"),
            ["the corner of Dalbraut 99 and Frederikke Coves"]
        );
        for t in ["5 Musicians Of The 70s You're Supposed To Hate", "We sold 300 Units Last Year", "Room 4B", "Flight LH 400 at 10"] {
            assert!(found(t).is_empty(), "{t}: {:?}", found(t));
        }
    }
}
