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
    for (i, page) in pages.iter().enumerate() {
        for para in split_paragraphs(page) {
            let text = squash(&para);
            if text.is_empty() {
                continue;
            }
            let n = text.chars().count();
            sink(Event::Block(Block {
                kind: BlockKind::Paragraph,
                text,
                page: Some(i as u32 + 1),
                start: pos,
                end: pos + n,
            }))?;
            pos += n + 1;
        }
    }
    Ok(())
}

/// Paragraphs of a page: blank-line separated; lines ending a sentence
/// followed by a short line also end a paragraph.
fn split_paragraphs(page: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in page.lines() {
        if line.trim().is_empty() {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            continue;
        }
        cur.push_str(line.trim());
        cur.push(' ');
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
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
