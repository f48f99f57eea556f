//! JSON and JSON Lines. A JSONL line, an element of a top-level array, or a
//! top-level key of an object becomes one record block of "path: value"
//! lines. JSONL streams line by line.

use std::io::Read;

use serde_json::Value;

use super::text::Lines;
use super::{Block, BlockKind, Event, ParseError, Sink};

fn flatten(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
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
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::Corrupt { format: "JSON", reason: e.to_string() })?;
    let mut pos = 0usize;
    let mut emit = |text: String, sink: &mut Sink<'_>| -> Result<(), ParseError> {
        let n = text.chars().count();
        let b = Block { kind: BlockKind::Record, text, page: None, start: pos, end: pos + n };
        pos += n + 1;
        sink(Event::Block(b))
    };
    match &v {
        Value::Array(a) => {
            for x in a {
                emit(record(x, ""), sink)?;
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                emit(record(x, k), sink)?;
            }
        }
        other => emit(scalar(other), sink)?,
    }
    Ok(())
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
        assert_eq!(b.text, "a.de: 10 EUR\na.tags: x, y\nq: Preis?"); // keys sorted (serde_json without preserve_order)
        let mut bad = |_e: Event| Ok(());
        assert!(matches!(parse_lines(&b"{\"a\":1}\n{oops\n"[..], &mut bad), Err(ParseError::Corrupt { .. })));
    }
}
