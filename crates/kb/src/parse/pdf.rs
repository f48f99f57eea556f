//! PDF text layer via pdf-extract, page by page (page numbers kept).
//! Encrypted PDFs are refused up front; a parser panic on a malformed file
//! is caught and reported as a corrupt file. Before pdf-extract sees the
//! file, every Flate stream is inflated once into nothing (filter chains
//! followed) and the total is held to [`Limits::max_pdf_inflated`]: lopdf
//! inflates without a limit, so a 1 MB file of chained FlateDecode streams
//! would otherwise grow to gigabytes in memory. Then the work pdf-extract
//! would do (pages, content drawn again and again, form XObjects drawing
//! themselves) is added up and bounded ([`pdf_budget`]), so no file hangs
//! the parser or overflows its stack.

use std::io::Read;

use flate2::read::ZlibDecoder;

use super::{squash, Block, BlockKind, Event, Limits, ParseError, Sink};

#[path = "pdf_budget.rs"]
mod pdf_budget;

/// More Flate filters in one stream's chain than any producer writes.
const MAX_FILTER_CHAIN: usize = 4;

pub(crate) fn parse(bytes: &[u8], limits: &Limits, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(ParseError::Corrupt { format: "PDF", reason: "missing %PDF- header".into() });
    }
    if is_encrypted(bytes) {
        return Err(ParseError::EncryptedPdf);
    }
    check_inflation(bytes, limits.max_pdf_inflated)?;
    pdf_budget::check(bytes, limits)?;
    let owned = bytes.to_vec();
    let pages = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem_by_pages(&owned))
        .map_err(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "no reason given".into());
            // pdf-extract's panics are terse ("F1": a font the page names is missing)
            ParseError::Corrupt { format: "PDF", reason: format!("the PDF text extractor gave up: {msg}") }
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

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Inflates every FlateDecode stream of the file into a counter (chained
/// filters decoded in turn) and refuses the file once the total passes
/// `limit`. A stream that does not inflate cleanly counts what it gave;
/// pdf-extract judges it later.
fn check_inflation(bytes: &[u8], limit: u64) -> Result<(), ParseError> {
    let mut total: u64 = 0;
    let mut at = 0usize;
    while let Some(i) = find(bytes, b"stream", at) {
        at = i + 6;
        if i >= 3 && &bytes[i - 3..i] == b"end" {
            continue;
        }
        // the stream's dictionary: back to the object's `obj` keyword (bounded)
        let dict_from = i.saturating_sub(64 << 10);
        let dict = &bytes[dict_from..i];
        let dict = rfind(dict, b"obj").map(|o| &dict[o..]).unwrap_or(dict);
        let chain = dict.windows(12).filter(|w| w == b"/FlateDecode").count();
        if chain == 0 {
            continue;
        }
        if chain > MAX_FILTER_CHAIN {
            return Err(ParseError::Corrupt {
                format: "PDF",
                reason: format!("a stream chains {chain} FlateDecode filters (at most {MAX_FILTER_CHAIN} are read)"),
            });
        }
        let mut d = at;
        if bytes.get(d) == Some(&b'\r') {
            d += 1;
        }
        if bytes.get(d) == Some(&b'\n') {
            d += 1;
        }
        let end = find(bytes, b"endstream", d).unwrap_or(bytes.len());
        let data = &bytes[d..end];
        let mut r: Box<dyn Read + '_> = Box::new(ZlibDecoder::new(data));
        for _ in 1..chain {
            r = Box::new(ZlibDecoder::new(r));
        }
        let room = limit - total;
        // a stream that turns corrupt late still counts what it inflated
        let mut counter = Counter(0);
        let _ = std::io::copy(&mut r.take(room + 1), &mut counter);
        total += counter.0;
        if total > limit {
            return Err(ParseError::OverLimit {
                what: "PDF streams inflate past the limit for one document (a decompression bomb?)".into(),
                limit,
                unit: "bytes",
                var: "TRESOR_MAX_PDF_INFLATED",
            });
        }
        at = end.max(at);
    }
    Ok(())
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
        let l = Limits::BUILTIN;
        assert!(matches!(parse(b"hello", &l, &mut sink), Err(ParseError::Corrupt { .. })));
        assert!(matches!(
            parse(b"%PDF-1.4\ntrailer << /Encrypt 5 0 R /Root 1 0 R >>\n%%EOF", &l, &mut sink),
            Err(ParseError::EncryptedPdf)
        ));
        assert!(matches!(parse(b"%PDF-1.4\n1 0 obj << /Type /Catalog", &l, &mut sink), Err(ParseError::Corrupt { .. })));
    }

    /// Found by the coverage-guided fuzzer (scripts/fuzz pdf, 2026-12-07): a page whose content
    /// stream names a font (/F1) its resources do not define; pdf-extract panics with "F1".
    #[test]
    fn a_page_naming_a_missing_font_is_a_clear_error_not_a_panic() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/pdf/missing-font-f1.pdf")).unwrap();
        let mut sink = |_e: Event| Ok(());
        match parse(&bytes, &Limits::BUILTIN, &mut sink) {
            Err(ParseError::Corrupt { format: "PDF", reason }) => assert!(reason.contains("text extractor gave up: F1"), "{reason}"),
            other => panic!("expected a Corrupt error, got {other:?}"),
        }
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A PDF whose page content is a doubly FlateDecoded stream of `inflated` bytes.
    pub(crate) fn chained_flate_pdf(inflated: usize) -> Vec<u8> {
        let mut inner = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        {
            use std::io::Write;
            let line = b"BT /F1 12 Tf 72 712 Td (Bombe) Tj ET\n";
            let mut left = inflated;
            while left > 0 {
                let n = left.min(line.len());
                inner.write_all(&line[..n]).unwrap();
                left -= n;
            }
        }
        let once = inner.finish().unwrap();
        let twice = zlib(&once);
        let mut pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n".to_vec();
        pdf.extend_from_slice(format!("4 0 obj << /Length {} /Filter [/FlateDecode /FlateDecode] >>\nstream\n", twice.len()).as_bytes());
        pdf.extend_from_slice(&twice);
        pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
        pdf
    }

    /// Issue 19: chained FlateDecode streams inflating to gigabytes; lopdf
    /// inflates without a limit. Failed before the check (pdf-extract inflated
    /// the whole stream: 64 MB here, gigabytes in `bench hostile`).
    #[test]
    fn chained_flate_bomb_is_refused_with_the_limit_named() {
        let pdf = chained_flate_pdf(64 << 20);
        assert!(pdf.len() < 200 << 10, "{}", pdf.len());
        let l = Limits { max_pdf_inflated: 16 << 20, ..Limits::BUILTIN };
        let t0 = std::time::Instant::now();
        let err = parse(&pdf, &l, &mut |_e| Ok(())).unwrap_err();
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
        let msg = err.to_string();
        assert!(msg.contains("TRESOR_MAX_PDF_INFLATED") && msg.contains(&(16u64 << 20).to_string()), "{msg}");
        // under the limit the same file is read
        assert!(check_inflation(&chained_flate_pdf(1 << 20), 16 << 20).is_ok());
    }

    /// Issue 19: a form XObject that draws itself made pdf-extract recurse
    /// until the stack overflowed (the test binary aborted); pages sharing one
    /// content stream were decoded once per page. Both end with a clear error.
    #[test]
    fn self_drawing_forms_and_shared_streams_end_with_the_limit_named() {
        let l = Limits::BUILTIN;
        let t0 = std::time::Instant::now();
        let msg = parse(&pdf_budget::tests::self_drawing_form_pdf(), &l, &mut |_e| Ok(())).unwrap_err().to_string();
        assert!(msg.contains("draws itself") && msg.contains("TRESOR_MAX_PDF_FORM_DEPTH"), "{msg}");
        // 2,000 pages drawing one 64 KB stream: 128 MB of content from a file of ~250 KB
        let pdf = pdf_budget::tests::shared_stream_pdf(2_000, 6_000);
        assert!(pdf.len() < 400 << 10, "{}", pdf.len());
        let msg = parse(&pdf, &Limits { max_pdf_work: 32 << 20, ..l.clone() }, &mut |_e| Ok(())).unwrap_err().to_string();
        assert!(msg.contains("TRESOR_MAX_PDF_WORK"), "{msg}");
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{:?}", t0.elapsed());
        // a normal file still reads, page by page
        let mut pages = Vec::new();
        parse(&pdf_budget::tests::shared_stream_pdf(2, 3), &l, &mut |e| {
            if let Event::Block(b) = e {
                pages.push(b.page);
            }
            Ok(())
        })
        .unwrap();
        assert!(pages.contains(&Some(1)) && pages.contains(&Some(2)), "{pages:?}");
    }
}
