//! JSON and JSON Lines. A JSONL line, an element of a top-level array, or a
//! top-level key of an object becomes one record block of "path: value"
//! lines. JSONL streams line by line. A record's span is the character span
//! of its line, array element or `"key": value` member in the file.

use std::io::Read;

use serde_json::Value;

use super::text::Lines;
use super::{Block, BlockKind, Event, ParseError, Sink};

fn flatten(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            // Keys sorted, as they were when serde_json's maps were always
            // sorted: with llguidance in the build (its `preserve_order`
            // feature) maps keep file order, and records must not change.
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                let x = &m[k];
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                flatten(x, &p, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            out.push(format!("{path}: {}", items.join(", ")));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(x, &format!("{path}[{i}]"), out);
            }
        }
        _ => out.push(if path.is_empty() { scalar(v) } else { format!("{path}: {}", scalar(v)) }),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

fn record(v: &Value, path: &str) -> String {
    let mut lines = Vec::new();
    flatten(v, path, &mut lines);
    lines.join("\n")
}

pub(crate) fn parse_lines<R: Read>(r: R, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let mut lines = Lines::new(r);
    let mut n = 0usize;
    while let Some((pos, line)) = lines.next_line()? {
        n += 1;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| ParseError::Corrupt { format: "JSONL", reason: format!("line {n}: {e}") })?;
        let text = record(&v, "");
        let end = pos + line.trim_end().chars().count();
        sink(Event::Block(Block { kind: BlockKind::Record, text, page: None, start: pos, end }))?;
    }
    Ok(())
}

pub(crate) fn parse_whole(bytes: &[u8], sink: &mut Sink<'_>) -> Result<(), ParseError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ParseError::InvalidUtf8 { offset: e.valid_up_to() as u64 });
    }
    let s = std::str::from_utf8(bytes).unwrap_or_default();
    let bom = if s.starts_with('\u{feff}') { 3 } else { 0 };
    let v: Value = serde_json::from_str(&s[bom..]).map_err(|e| ParseError::Corrupt { format: "JSON", reason: e.to_string() })?;
    // byte → char offsets, walking forward once (members come in file order)
    let (mut at_byte, mut at_char) = (bom, 0usize);
    let mut chars_to = |b: usize| {
        at_char += s[at_byte..b].chars().count();
        at_byte = b;
        at_char
    };
    let corrupt = |e: serde_json::Error| ParseError::Corrupt { format: "JSON", reason: e.to_string() };
    match &v {
        Value::Array(_) | Value::Object(_) => {
            let is_object = v.is_object();
            for (a, b) in top_level_members(s) {
                let member = &s[a..b];
                let text = if is_object {
                    // `"key": value` parsed as a one-member object
                    let m: serde_json::Map<String, Value> = serde_json::from_str(&format!("{{{member}}}")).map_err(corrupt)?;
                    m.iter().map(|(k, x)| record(x, k)).collect::<Vec<_>>().join("\n")
                } else {
                    record(&serde_json::from_str::<Value>(member).map_err(corrupt)?, "")
                };
                let (start, end) = (chars_to(a), chars_to(b));
                sink(Event::Block(Block { kind: BlockKind::Record, text, page: None, start, end }))?;
            }
        }
        other => {
            let t = s[bom..].trim();
            let a = bom + (s[bom..].len() - s[bom..].trim_start().len());
            let start = chars_to(a);
            sink(Event::Block(Block { kind: BlockKind::Record, text: scalar(other), page: None, start, end: start + t.chars().count() }))?;
        }
    }
    Ok(())
}

/// Byte ranges of the members of the top-level array or object of valid
/// JSON `s` (elements; `"key": value` pairs), whitespace trimmed, in file
/// order: a scan that tracks strings and nesting depth.
fn top_level_members(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    let mut start: Option<usize> = None;
    let push = |a: usize, e: usize, out: &mut Vec<(usize, usize)>| {
        let t = &s[a..e];
        let lead = t.len() - t.trim_start().len();
        let t = t.trim();
        if !t.is_empty() {
            out.push((a + lead, a + lead + t.len()));
        }
    };
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth == 1 {
                    start = Some(i + 1);
                }
            }
            b']' | b'}' => {
                if depth == 1 {
                    if let Some(a) = start.take() {
                        push(a, i, &mut out);
                    }
                }
                depth = depth.saturating_sub(1);
            }
            b',' if depth == 1 => {
                if let Some(a) = start {
                    push(a, i, &mut out);
                }
                start = Some(i + 1);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_flatten_with_paths() {
        let mut v = Vec::new();
        parse_whole(br#"[{"q":"Preis?","a":{"de":"10 EUR","tags":["x","y"]}}]"#, &mut |e| {
            v.push(e);
            Ok(())
        })
        .unwrap();
        let Event::Block(b) = &v[0] else { panic!() };
        assert_eq!(b.text, "a.de: 10 EUR\na.tags: x, y\nq: Preis?"); // keys sorted, whatever serde_json's map order
        let mut bad = |_e: Event| Ok(());
        assert!(matches!(parse_lines(&b"{\"a\":1}\n{oops\n"[..], &mut bad), Err(ParseError::Corrupt { .. })));
    }

    use crate::parse::test_util::{blocks, span};

    #[test]
    fn record_spans_are_character_spans_in_the_file() {
        let jsonl = "{\"q\":\"Größe?\",\"a\":\"5 €\"}\r\n\n{\"q\":\"Süß\",\"a\":\"ja\"}\n";
        let b = blocks(|s| parse_lines(jsonl.as_bytes(), s));
        assert_eq!(b.len(), 2);
        assert_eq!(span(jsonl, &b[0]), "{\"q\":\"Größe?\",\"a\":\"5 €\"}");
        assert_eq!(span(jsonl, &b[1]), "{\"q\":\"Süß\",\"a\":\"ja\"}");

        let arr = "\u{feff}[\n  {\"name\": \"Ärger, \\\"quoted\\\" ]}\", \"n\": [1, 2]},\n  \"ß\" , {\"x\": {\"y\": \"€\"}}\n]";
        let b = blocks(|s| parse_whole(arr.as_bytes(), s));
        let spans: Vec<String> = b.iter().map(|x| span(arr, x)).collect();
        assert_eq!(spans, ["{\"name\": \"Ärger, \\\"quoted\\\" ]}\", \"n\": [1, 2]}", "\"ß\"", "{\"x\": {\"y\": \"€\"}}"]);
        assert_eq!(b[0].text, "n: 1, 2\nname: Ärger, \"quoted\" ]}");
        assert_eq!(b[2].text, "x.y: €");

        let obj = "{\"Öffnungszeiten\": {\"mo\": \"9–17\"}, \"Preis\": \"12 €\"}";
        let b = blocks(|s| parse_whole(obj.as_bytes(), s));
        assert_eq!(span(obj, &b[0]), "\"Öffnungszeiten\": {\"mo\": \"9–17\"}");
        assert_eq!(b[0].text, "Öffnungszeiten.mo: 9–17");
        assert_eq!((span(obj, &b[1]).as_str(), b[1].text.as_str()), ("\"Preis\": \"12 €\"", "Preis: 12 €"));

        let scalar = "  \"nur Text\"\n";
        let b = blocks(|s| parse_whole(scalar.as_bytes(), s));
        assert_eq!(span(scalar, &b[0]), "\"nur Text\"");
    }
}
