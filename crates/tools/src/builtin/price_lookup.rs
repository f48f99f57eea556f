//! `price_lookup {"product": string}` → `{sku, product, price, currency}`.
//!
//! Matching, in order: an exact SKU (compared as A–Z0–9, e.g. `hw ds 4` =
//! `HW-DS-4`); then a fuzzy name match: the query and every product name are
//! cut into words (model codes such as `TC-10` or `TC10` stay one word,
//! `Support-Paket` becomes two, umlauts fold), stopwords of both languages
//! and price talk ("how much", "was kostet") go, a small EN/DE product
//! vocabulary maps `package`↔`Paket`, `training`↔`Schulung`, ...; words match
//! exactly, by prefix or compound part (`Tag`/`Tagessatz`), or with a typo
//! (Damerau–Levenshtein, alphabetic words of 4+ letters only; codes and
//! numbers must be exact, so FW-200 never becomes FW-500). The score weighs
//! by rarity (idf) how much of the query the product explains and how much
//! of the product's name the query covers.
//!
//! Owns: the threshold below which nothing is "found": then
//! [`ToolError::NotFound`] lists the closest products (`Name (SKU)`),
//! never a random nearest product as if it were the answer. When another
//! product scores almost as well, the result adds `alternatives`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::Connection;
use serde_json::{json, Value};

use super::arg_str;
use crate::error::{DbCtx, Result, ToolError};
use crate::import::normalise_id;
use crate::store::PriceRow;

/// Minimum score of a match that counts as found.
const THRESHOLD: f32 = 0.5;
/// Another product within this of the best is reported as an alternative.
const TIE: f32 = 0.04;

const EXTRA_STOPWORDS: &[&str] = &[
    "price", "prices", "priced", "pricing", "cost", "costs", "costing", "much", "many", "how", "hw", "what", "whats", "does",
    "do", "is", "are", "the", "a", "an", "for", "of", "please", "pls", "sku", "item", "article", "product", "tell", "me",
    "could", "can", "would", "you", "your", "our", "we", "i", "know", "like", "want", "need", "buy", "get", "order", "quote",
    "preis", "preise", "kostet", "kosten", "kostest", "wieviel", "wie", "viel", "teuer", "was", "ist", "sind", "bei", "euch",
    "ihnen", "sie", "mir", "uns", "sagen", "nennen", "konnen", "konnten", "koennen", "koennten", "bitte", "artikel",
    "artikelnummer", "produkt", "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "fur",
    "fuer", "mit", "with", "at", "to", "in", "on", "and", "und", "oder", "or", "da", "mal", "gerne", "eigentlich", "currently",
    "aktuell", "derzeit", "jetzt", "now", "per", "je", "angebot", "quote", "offer", "gern", "hatte", "mochte", "mochten",
    "would", "interested", "interessiert", "interessieren", "brauche", "brauchen", "wissen", "info", "information", "about",
    "uber", "zum", "zur", "vom", "von", "unser", "unsere", "euer", "eure", "ihr", "ihre", "current", "aktuelle", "aktuellen",
    "kaufen", "bestellen", "listenpreis", "list", "kostenpunkt", "bitte", "nochmal", "again", "genau", "exactly", "one",
    "einmal", "stuck", "piece", "unit", "looking", "suche", "suchen", "hi", "hallo", "hello", "lizenz", "lizenzen", "licence", "license", "licenses", "licences",
];

/// Groups of words that name the same thing in English and German
/// (umlauts folded). Generic product vocabulary, not one company's list.
const SYNONYMS: &[&[&str]] = &[
    &["package", "paket", "bundle", "pack"],
    &["licence", "license", "lizenz", "lizenzen"],
    &["keyboard", "tastatur"],
    &["mouse", "maus"],
    &["wireless", "kabellos", "cordless", "funk"],
    &["training", "schulung", "course", "kurs", "workshop"],
    &["ups", "usv"],
    &["antivirus", "virenschutz", "virus", "viren", "virenscanner"],
    &["docking", "dockingstation", "dock"],
    &["year", "jahr", "annual", "yearly", "jahrlich", "jahreslizenz"],
    &["hour", "stunde", "hourly", "stundlich", "stundensatz"],
    &["day", "tag", "daily", "tagessatz", "taglich"],
    &["month", "monat", "monate", "monthly", "monatlich"],
    &["device", "gerat", "geraet", "devices"],
    &["storage", "speicher"],
    &["silver", "silber"],
    &["site", "ort"],
    &["onsite", "vorort"],
    &["user", "users", "nutzer", "benutzer"],
    &["seat", "seats", "platze", "platz"],
    &["ergonomic", "ergonomisch"],
    &["german", "deutsch", "deutsches", "deutsche"],
    &["inch", "zoll"],
    &["notebook", "laptop"],
    &["database", "datenbank"],
    &["installation", "installationsservice", "install", "setup", "einrichtung"],
    &["service", "dienstleistung"],
    &["monitor", "bildschirm", "display", "screen"],
    &["headset", "kopfhorer"],
    &["wlan", "wifi"],
    &["per", "pro", "je"],
    &["management", "verwaltung"],
    &["mobile", "mobil"],
    &["port", "ports", "anschluss", "anschlusse"],
    &["single", "einzelplatz", "einzel"],
    &["standard", "std"],
    &["layout", "tastaturlayout"],
    &["cable", "kabel"],
    &["printer", "drucker"],
    &["phone", "telefon"],
    &["backup", "datensicherung", "sicherung"],
    &["firewall", "firewallappliance"],
];

fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'ä' | 'à' | 'á' | 'â' => "a",
        'ö' | 'ò' | 'ó' | 'ô' | 'ø' => "o",
        'ü' | 'ù' | 'ú' | 'û' => "u",
        'é' | 'è' | 'ê' => "e",
        'ß' => "ss",
        _ => return None,
    })
}

fn is_stop(w: &str) -> bool {
    tresor_text::is_stopword(w) || EXTRA_STOPWORDS.contains(&w)
}

/// Words of a product name or query: lower case, umlauts folded; hyphenated
/// model codes (`TC-10`, `4-Bay`) joined into one word, other hyphenated
/// words (`Support-Paket`, `USB-C`) split.
fn words(s: &str) -> Vec<String> {
    let mut lowered = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match fold(c) {
            Some(f) => lowered.push_str(f),
            None => lowered.push(c),
        }
    }
    let mut out = Vec::new();
    for chunk in lowered.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
        let parts: Vec<&str> = chunk.split('-').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() {
            continue;
        }
        let has_digit = parts.iter().any(|p| p.chars().any(|c| c.is_ascii_digit()));
        let has_alpha = parts.iter().any(|p| p.chars().any(char::is_alphabetic));
        if parts.len() > 1 && has_digit && has_alpha {
            out.push(parts.concat());
        } else {
            out.extend(parts.iter().map(|p| p.to_string()));
        }
    }
    out
}

fn is_alpha(w: &str) -> bool {
    w.chars().all(char::is_alphabetic)
}

/// Optimal string alignment distance (Damerau–Levenshtein with adjacent
/// transpositions), on characters.
fn osa(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=m {
        d[0][j] = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

/// How well query word `q` names product word `p` (0..=1).
fn word_sim(q: &str, p: &str) -> f32 {
    if q == p {
        return 1.0;
    }
    if !is_alpha(q) || !is_alpha(p) {
        return 0.0; // codes and numbers: exact only
    }
    let (lq, lp) = (q.chars().count(), p.chars().count());
    let (short, long, ls) = if lq <= lp { (q, p, lq) } else { (p, q, lp) };
    if ls >= 3 && long.starts_with(short) {
        return 0.85; // plural, inflection, compound head: Lizenz/Lizenzen, Tag/Tagessatz
    }
    if ls >= 5 && long.contains(short) {
        return 0.8; // compound tail: Station/Dockingstation
    }
    if ls >= 4 {
        let d = osa(q, p);
        let max = lq.max(lp) as f32;
        let allowed = if ls >= 7 { 2 } else { 1 };
        if d <= allowed {
            return (1.0 - d as f32 / max).min(0.9);
        }
    }
    0.0
}

fn synonyms() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static MAP: std::sync::OnceLock<HashMap<&'static str, Vec<&'static str>>> = std::sync::OnceLock::new();
    MAP.get_or_init(|| {
        let mut m: HashMap<&str, Vec<&str>> = HashMap::new();
        for group in SYNONYMS {
            for w in *group {
                m.entry(w).or_default().extend(group.iter().filter(|x| *x != w));
            }
        }
        m
    })
}

/// The query word, or one of its synonyms, against a product word.
fn sim(q: &str, p: &str) -> f32 {
    let mut best = word_sim(q, p);
    if best < 1.0 {
        if let Some(alts) = synonyms().get(q) {
            for a in alts {
                best = best.max(word_sim(a, p) * 0.95);
            }
        }
    }
    best
}

/// A product with its score, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductMatch {
    pub row: PriceRow,
    pub score: f32,
}

struct Doc {
    words: Vec<String>,
}

fn content_words(s: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(s).into_iter().filter(|w| !is_stop(w) && seen.insert(w.clone())).collect()
}

/// Query words plus model codes written apart (`TC 10` → `tc10`).
fn query_words(q: &str) -> Vec<String> {
    let raw = words(q);
    let mut out = content_words(q);
    let digits = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit());
    let short_alpha = |w: &str| !w.is_empty() && is_alpha(w) && w.chars().count() <= 4;
    for pair in raw.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if (short_alpha(a) && digits(b)) || (digits(a) && short_alpha(b)) {
            let joined = format!("{a}{b}");
            if !out.contains(&joined) {
                out.push(joined);
            }
        }
    }
    out
}

/// Every product scored against `query`, best first (score > 0 only). An
/// exact SKU in the query scores 1.0 and comes first.
pub fn match_product(rows: &[PriceRow], query: &str) -> Vec<ProductMatch> {
    // exact SKU: any run of 1..=4 raw words that spells one, as A-Z0-9
    let raw: Vec<String> = query.split(|c: char| c.is_whitespace() || c == ',' || c == '?' || c == '!').map(normalise_id).filter(|s| !s.is_empty()).collect();
    let mut runs = HashSet::new();
    for i in 0..raw.len() {
        let mut acc = String::new();
        for w in raw.iter().skip(i).take(4) {
            acc.push_str(w);
            runs.insert(acc.clone());
        }
    }
    if let Some(row) = rows.iter().find(|r| runs.contains(&normalise_id(&r.sku))) {
        return vec![ProductMatch { row: row.clone(), score: 1.0 }];
    }

    let docs: Vec<Doc> = rows.iter().map(|r| Doc { words: content_words(&r.product) }).collect();
    let n = docs.len().max(1) as f32;
    let mut df: HashMap<&str, usize> = HashMap::new();
    for d in &docs {
        for w in &d.words {
            *df.entry(w.as_str()).or_default() += 1;
        }
    }
    let idf = |w: &str| (1.0 + n / (1 + df.get(w).copied().unwrap_or(0)) as f32).ln();
    let q = query_words(query);
    if q.is_empty() {
        return Vec::new();
    }
    // an unmatched query word weighs like a rare product word
    let unknown = (1.0 + n / 2.0).ln();
    let mut out = Vec::new();
    for (row, doc) in rows.iter().zip(&docs) {
        if doc.words.is_empty() {
            continue;
        }
        let (mut q_hit, mut q_all) = (0.0f32, 0.0f32);
        let mut strong = false;
        let mut code_hit = false;
        let mut used = vec![0.0f32; doc.words.len()];
        for qw in &q {
            let (mut best, mut at) = (0.0f32, None);
            for (i, pw) in doc.words.iter().enumerate() {
                let s = sim(qw, pw);
                if s > best {
                    best = s;
                    at = Some(i);
                }
            }
            // a code the query joined from two words need not count as extra
            let joined_extra = !words(query).contains(qw) && best == 0.0;
            let weight = match at {
                Some(i) if best > 0.0 => idf(&doc.words[i]),
                _ if joined_extra => 0.0,
                _ => unknown,
            };
            q_all += weight;
            q_hit += weight * best;
            if let Some(i) = at {
                used[i] = used[i].max(best);
                strong |= best >= 0.8;
                // a model code (letters and digits, e.g. fw200) named exactly is decisive
                let w = &doc.words[i];
                code_hit |= best == 1.0 && w.chars().any(|c| c.is_ascii_digit()) && w.chars().any(char::is_alphabetic) && w.len() >= 3;
            }
        }
        if !strong {
            continue;
        }
        let (mut p_hit, mut p_all) = (0.0f32, 0.0f32);
        for (i, pw) in doc.words.iter().enumerate() {
            let w = idf(pw);
            p_all += w;
            p_hit += w * used[i];
        }
        let q_cov = if q_all > 0.0 { q_hit / q_all } else { 0.0 };
        let p_cov = if p_all > 0.0 { p_hit / p_all } else { 0.0 };
        let mut score = 0.5 * q_cov + 0.5 * p_cov;
        if code_hit {
            score = score.max(0.6 + 0.2 * p_cov);
        }
        if score > 0.0 {
            out.push(ProductMatch { row: row.clone(), score });
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.row.sku.cmp(&b.row.sku)));
    out
}

fn label(r: &PriceRow) -> String {
    format!("{} ({})", r.product, r.sku)
}

pub(super) fn run(conn: &Connection, path: &Path, args: &Value) -> Result<Value> {
    let query = arg_str(args, "product").trim().to_string();
    let rows = {
        let mut stmt = conn.prepare("SELECT sku, product, price, currency FROM prices ORDER BY sku").db(path)?;
        let it = stmt
            .query_map([], |r| Ok(PriceRow { sku: r.get(0)?, product: r.get(1)?, price: r.get(2)?, currency: r.get(3)? }))
            .db(path)?;
        it.collect::<std::result::Result<Vec<_>, _>>().db(path)?
    };
    if rows.is_empty() {
        return Err(ToolError::NoData { what: "prices" });
    }
    let matches = match_product(&rows, &query);
    match matches.first() {
        Some(best) if best.score >= THRESHOLD => {
            let r = &best.row;
            let mut out = json!({"sku": r.sku, "product": r.product, "price": r.price, "currency": r.currency});
            let alts: Vec<Value> = matches[1..]
                .iter()
                .take_while(|m| m.score >= THRESHOLD && best.score - m.score <= TIE)
                .map(|m| json!({"sku": m.row.sku, "product": m.row.product, "price": m.row.price, "currency": m.row.currency}))
                .collect();
            if !alts.is_empty() {
                out["alternatives"] = Value::Array(alts);
            }
            Ok(out)
        }
        _ => Err(ToolError::NotFound { what: "product", query, closest: matches.iter().take(3).map(|m| label(&m.row)).collect() }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{ctx, dev_store};
    use super::*;
    use crate::builtin::execute;

    fn sku(store: &crate::store::ToolStore, q: &str) -> String {
        match execute(store, "price_lookup", &json!({"product": q}), &ctx("2026-12-07T08:30:00Z")) {
            Ok(v) => v["sku"].as_str().unwrap().to_string(),
            Err(e) => panic!("{q:?}: {e}"),
        }
    }

    #[test]
    fn finds_products_by_name_sku_typo_and_language() {
        let (_d, s) = dev_store();
        for (q, want) in [
            ("thin clint TC10", "HW-TC-10"),
            ("hw much is the thin clint TC10??", "HW-TC-10"),
            ("FW-200 firewall appliance", "HW-FW-200"),
            ("Firewall FW 500", "HW-FW-500"),
            ("How much is the FW-200 firewall appliance?", "HW-FW-200"),
            ("USV mit 1500 VA", "HW-UPS-1500"),
            ("UPS 1500 VA", "HW-UPS-1500"),
            ("Database Enterprise Edition", "SW-DB-ENT"),
            ("Installationsservice pro Stunde", "SV-INST-H"),
            ("installation service per hour", "SV-INST-H"),
            ("Schulung vor Ort für einen Tag", "SV-TRN-DAY"),
            ("on-site training day rate", "SV-TRN-DAY"),
            ("HW-DS-4", "HW-DS-4"),
            ("Price for SKU HW-DS-4 please", "HW-DS-4"),
            ("hw ds 4", "HW-DS-4"),
            ("Lizenz für Backup Pro Server", "SW-BAK-PRO"),
            ("notebok nordlicht book 14", "HW-NB-14"),
            ("gold support package", "SV-SUP-GLD"),
            ("what does the gold support package cost per year?", "SV-SUP-GLD"),
            ("Support Paket Silber", "SV-SUP-SLV"),
            ("Headset HS-7", "HW-HS-7"),
            ("Preis für SW-MDM-1?", "SW-MDM-1"),
            ("sw-mdm-1", "SW-MDM-1"),
            ("wireless keyboard german layout", "HW-KB-DE"),
            ("Tastatur kabellos", "HW-KB-DE"),
            ("ergonomic mouse", "HW-MS-2"),
            ("antivirus business 10 seats", "SW-AV-10"),
            ("Virenschutz Business", "SW-AV-10"),
            ("docking station usb-c", "HW-DS-4"),
            ("27 inch monitor", "HW-MON-27"),
            ("Monitor 27 Zoll", "HW-MON-27"),
            ("NAS storage 4 bay", "HW-NAS-4"),
            ("Office Professional", "SW-OFF-PRO"),
            ("office standard licence", "SW-OFF-STD"),
            ("Switch 24 port", "HW-SW-24"),
            ("VPN gateway license for 25 users", "SW-VPN-25"),
            ("Designer Studio", "SW-DSN-ST"),
            ("Acess Point AP-6", "HW-AP-6"),
            ("backup client", "SW-BAK-CL"),
            ("mobile device management", "SW-MDM-1"),
            ("Ich hätte gern ein Angebot für die FW-200", "HW-FW-200"),
            ("I would like a quote for the 27 inch monitor", "HW-MON-27"),
            ("Wie viel kostet ein Switch?", "HW-SW-24"),
        ] {
            assert_eq!(sku(&s, q), want, "{q:?}");
        }
    }

    #[test]
    fn every_dev_price_message_finds_its_product_even_as_a_whole_sentence() {
        let (_d, s) = dev_store();
        let rows = s.prices().unwrap();
        let cases = std::fs::read_to_string(crate::import::tests::dev("cases.jsonl")).unwrap();
        let mut n = 0;
        for line in cases.lines().filter(|l| !l.trim().is_empty()) {
            let case: Value = serde_json::from_str(line).unwrap();
            if case["kind"] != "price" {
                continue;
            }
            n += 1;
            let msg = case["message"].as_str().unwrap();
            let best = match_product(&rows, msg).into_iter().next().unwrap_or_else(|| panic!("{msg:?}: nothing"));
            assert_eq!(best.row.sku, case["expect"]["result"]["sku"].as_str().unwrap(), "{msg:?}");
            assert!(best.score >= THRESHOLD, "{msg:?}: {}", best.score);
        }
        assert_eq!(n, 12);
    }

    #[test]
    fn the_result_is_the_contract_row() {
        let (_d, s) = dev_store();
        let v = execute(&s, "price_lookup", &json!({"product": "Thin Client TC-10"}), &ctx("2026-12-07T08:30:00Z")).unwrap();
        assert_eq!(v, json!({"sku": "HW-TC-10", "product": "Thin Client TC-10", "price": "379.00", "currency": "EUR"}));
    }

    #[test]
    fn no_match_is_not_found_with_the_closest_products() {
        let (_d, s) = dev_store();
        for q in ["unicorn deluxe", "espresso machine", "Kaffeemaschine", "FW-900", "premium plan", "xyz"] {
            let e = execute(&s, "price_lookup", &json!({"product": q}), &ctx("2026-12-07T08:30:00Z")).unwrap_err();
            assert!(matches!(e, ToolError::NotFound { .. }), "{q:?}: {e:?}");
        }
        let e = execute(&s, "price_lookup", &json!({"product": "Firewall FW-900"}), &ctx("2026-12-07T08:30:00Z")).unwrap_err();
        match e {
            ToolError::NotFound { closest, .. } => assert!(closest.iter().any(|c| c.contains("Firewall Appliance")), "{closest:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ambiguous_names_report_alternatives() {
        let (_d, s) = dev_store();
        let v = execute(&s, "price_lookup", &json!({"product": "firewall appliance"}), &ctx("2026-12-07T08:30:00Z")).unwrap();
        assert_eq!(v["alternatives"].as_array().map(Vec::len), Some(1), "{v}");
    }

    #[test]
    fn words_and_distances() {
        assert_eq!(words("Thin Client TC-10"), ["thin", "client", "tc10"]);
        assert_eq!(words("Support-Paket Gold (12 Monate)"), ["support", "paket", "gold", "12", "monate"]);
        assert_eq!(words("Dockingstation USB-C DS-4"), ["dockingstation", "usb", "c", "ds4"]);
        assert_eq!(words("Plätze"), ["platze"]);
        assert_eq!(osa("clint", "client"), 1);
        assert_eq!(osa("acess", "access"), 1);
        assert_eq!(osa("ab", "ba"), 1);
        assert_eq!(word_sim("fw200", "fw500"), 0.0);
        assert!(word_sim("notebok", "notebook") > 0.8);
    }
}
