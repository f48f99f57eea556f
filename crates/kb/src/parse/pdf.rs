//! PDF text layer via pdf-extract, page by page (page numbers kept).
//! Encrypted PDFs are refused up front; a parser panic on a malformed file
//! is caught and reported as a corrupt file.

use super::{squash, Block, BlockKind, Event, ParseError, Sink};

pub(crate) fn parse(bytes: &[u8], sink: &mut Sink<'_>) -> Result<(), ParseError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ParseError::Corrupt { format: "PDF", reason: "missing %PDF- header".into() });
    }
    if is_encrypted(bytes) {
        return Err(ParseError::EncryptedPdf);
    }
    let owned = bytes.to_vec();
    let pages = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem_by_pages(&owned))
        .map_err(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "parser panicked".into());
            ParseError::Corrupt { format: "PDF", reason: msg }
        })?
        .map_err(|e| {
            let s = e.to_string();
            if s.to_lowercase().contains("encrypt") {
                ParseError::EncryptedPdf
            } else {
                ParseError::Corrupt { format: "PDF", reason: s }
            }
        })?;
    let mut pos = 0usize;
    let mut titled = false;
    for (i, page) in pages.iter().enumerate() {
        for (kind, para) in blocks_of_page(page) {
            let text = squash(&para);
            if text.is_empty() {
                continue;
            }
            if !titled && i == 0 && kind != BlockKind::Paragraph {
                titled = true;
                sink(Event::Title(text.clone()))?;
            }
            let n = text.chars().count();
            sink(Event::Block(Block { kind, text, page: Some(i as u32 + 1), start: pos, end: pos + n }))?;
            pos += n + 1;
        }
    }
    Ok(())
}

/// A line that looks like a heading: short, no sentence punctuation at the
/// end, starting with a capital or a section number ("3. Übernachtung").
fn heading_like(line: &str) -> bool {
    let t = line.trim();
    let n = t.chars().count();
    (3..=60).contains(&n)
        && !t.ends_with(['.', ',', ';', ':', '!', '?'])
        && t.chars().next().is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
        && t.split_whitespace().count() <= 8
        && t.chars().any(|c| c.is_alphabetic())
}

/// Blocks of a page: wrapped lines are joined into paragraphs, which end at
/// a blank line or a line ending a sentence; heading-like lines stand alone.
fn blocks_of_page(page: &str) -> Vec<(BlockKind, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, out: &mut Vec<(BlockKind, String)>| {
        if !cur.trim().is_empty() {
            out.push((BlockKind::Paragraph, std::mem::take(cur)));
        }
        cur.clear();
    };
    let lines: Vec<&str> = page.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            flush(&mut cur, &mut out);
            continue;
        }
        // a short line continued in lower case is a wrapped line, not a heading
        let next_lower = lines.get(i + 1).and_then(|n| n.trim().chars().next()).is_some_and(|c| c.is_lowercase());
        if cur.is_empty() && heading_like(t) && !next_lower {
            out.push((BlockKind::Heading(2), t.to_string()));
            continue;
        }
        cur.push_str(t);
        cur.push(' ');
        if t.ends_with(['.', '!', '?', ':']) {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The trailer (or a cross-reference stream) names an /Encrypt dictionary.
fn is_encrypted(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64 << 10)..];
    let has = |hay: &[u8]| hay.windows(8).any(|w| w == b"/Encrypt");
    has(tail) || (bytes.len() <= 4 << 20 && has(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lines_become_headings_and_paragraphs() {
        let b = blocks_of_page("Reisekosten\n1. Genehmigung\nJede Reise wird\nvorher genehmigt.\nZweiter Satz.\n");
        let kinds: Vec<BlockKind> = b.iter().map(|x| x.0).collect();
        assert_eq!(kinds, vec![BlockKind::Heading(2), BlockKind::Heading(2), BlockKind::Paragraph, BlockKind::Paragraph]);
        assert_eq!(squash(&b[2].1), "Jede Reise wird vorher genehmigt.");
    }

    #[test]
    fn rejects_garbage_and_encrypted() {
        let mut sink = |_e: Event| Ok(());
        assert!(matches!(parse(b"hello", &mut sink), Err(ParseError::Corrupt { .. })));
        assert!(matches!(
            parse(b"%PDF-1.4\ntrailer << /Encrypt 5 0 R /Root 1 0 R >>\n%%EOF", &mut sink),
            Err(ParseError::EncryptedPdf)
        ));
        assert!(matches!(parse(b"%PDF-1.4\n1 0 obj << /Type /Catalog", &mut sink), Err(ParseError::Corrupt { .. })));
    }
}
