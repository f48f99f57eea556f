//! DOCX: a zip of XML parts. Reads `word/document.xml` (paragraphs, heading
//! styles, numbered lists, tables) and the title from `docProps/core.xml`,
//! under zip-bomb limits: entry count, uncompressed size per part and in
//! total, and compression ratio, checked against what is actually inflated,
//! not only what the archive claims.

use std::io::Read;
use std::path::Path;

use quick_xml::events::Event as X;
use quick_xml::Reader;

use super::{squash, Block, BlockKind, Event, Limits, ParseError, Sink};

const MAX_ENTRIES: usize = 10_000;

fn corrupt(reason: impl ToString) -> ParseError {
    ParseError::Corrupt { format: "DOCX", reason: reason.to_string() }
}

fn read_part(zip: &mut zip::ZipArchive<std::fs::File>, name: &str, limits: &Limits) -> Result<Option<String>, ParseError> {
    let mut f = match zip.by_name(name) {
        Ok(f) => f,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(corrupt(e)),
    };
    let declared = f.size();
    let compressed = f.compressed_size().max(1);
    if declared > limits.max_docx_part {
        return Err(ParseError::ZipBomb(format!("{name} inflates to {declared} bytes (limit {})", limits.max_docx_part)));
    }
    if declared > (1 << 20) && declared / compressed > limits.max_docx_ratio {
        return Err(ParseError::ZipBomb(format!("{name} has compression ratio {}:1", declared / compressed)));
    }
    let mut buf = Vec::new();
    (&mut f).take(limits.max_docx_part + 1).read_to_end(&mut buf).map_err(corrupt)?;
    if buf.len() as u64 > limits.max_docx_part {
        return Err(ParseError::ZipBomb(format!("{name} inflates past {} bytes", limits.max_docx_part)));
    }
    String::from_utf8(buf).map(Some).map_err(|_| corrupt(format!("{name} is not UTF-8 XML")))
}

pub(crate) fn parse(path: &Path, limits: &Limits, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let file = std::fs::File::open(path)?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| corrupt(format!("not a zip archive ({e})")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(ParseError::ZipBomb(format!("{} entries", zip.len())));
    }
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).map_err(corrupt)?;
        total = total.saturating_add(f.size());
    }
    if total > limits.max_docx_total {
        return Err(ParseError::ZipBomb(format!("entries inflate to {total} bytes (limit {})", limits.max_docx_total)));
    }
    let doc = read_part(&mut zip, "word/document.xml", limits)?.ok_or_else(|| corrupt("no word/document.xml"))?;
    let title = read_part(&mut zip, "docProps/core.xml", limits)?.and_then(|core| core_title(&core));
    let mut titled = false;
    if let Some(t) = title {
        titled = true;
        sink(Event::Title(t))?;
    }
    body(&doc, titled, sink)
}

fn attr_val(e: &quick_xml::events::BytesStart) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == b"val")
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

fn core_title(xml: &str) -> Option<String> {
    let mut r = Reader::from_str(xml);
    let mut in_title = false;
    loop {
        match r.read_event() {
            Ok(X::Start(e)) if e.local_name().as_ref() == b"title" => in_title = true,
            Ok(X::Text(t)) if in_title => {
                let s = squash(&t.unescape().ok()?);
                return if s.is_empty() { None } else { Some(s) };
            }
            Ok(X::End(e)) if e.local_name().as_ref() == b"title" => in_title = false,
            Ok(X::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

fn heading_level(style: &str) -> Option<u8> {
    let s = style.to_lowercase();
    if s == "title" || s == "titel" {
        return Some(1);
    }
    let rest = s.strip_prefix("heading").or_else(|| s.strip_prefix("berschrift")).or_else(|| s.strip_prefix("überschrift"))?;
    rest.trim().parse::<u8>().ok().map(|n| n.clamp(1, 6))
}

fn body(xml: &str, mut titled: bool, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let mut r = Reader::from_str(xml);
    let mut para = String::new();
    let mut style: Option<String> = None;
    let mut numbered = false;
    let mut in_t = false;
    let mut tbl_depth = 0usize;
    let mut rows: Vec<String> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut pos = 0usize;
    let emit = |kind: BlockKind, text: String, sink: &mut Sink<'_>, pos: &mut usize| -> Result<(), ParseError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let n = text.chars().count();
        let b = Block { kind, text, page: None, start: *pos, end: *pos + n };
        *pos += n + 1;
        sink(Event::Block(b))
    };
    loop {
        let ev = r.read_event().map_err(|e| corrupt(format!("word/document.xml: {e}")))?;
        match ev {
            X::Start(e) | X::Empty(e) => {
                match e.local_name().as_ref() {
                    b"p" => {
                        para.clear();
                        style = None;
                        numbered = false;
                    }
                    b"pStyle" => style = attr_val(&e),
                    b"numPr" => numbered = true,
                    b"t" => in_t = true,
                    b"tab" => para.push('\t'),
                    b"br" | b"cr" => para.push('\n'),
                    b"tbl" => {
                        tbl_depth += 1;
                        if tbl_depth == 1 {
                            rows.clear();
                        }
                    }
                    b"tr" if tbl_depth == 1 => row.clear(),
                    b"tc" if tbl_depth == 1 => cell.clear(),
                    _ => {}
                }
            }
            X::Text(t) if in_t => para.push_str(&t.unescape().map_err(|e| corrupt(e))?),
            X::End(e) => match e.local_name().as_ref() {
                b"t" => in_t = false,
                b"p" => {
                    let text = squash(&para);
                    if tbl_depth > 0 {
                        if !cell.is_empty() && !text.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(&text);
                    } else {
                        let kind = match style.as_deref().and_then(heading_level) {
                            Some(l) => BlockKind::Heading(l),
                            None if numbered => BlockKind::ListItem,
                            None => BlockKind::Paragraph,
                        };
                        if kind == BlockKind::Heading(1) && !titled && !text.is_empty() {
                            titled = true;
                            sink(Event::Title(text.clone()))?;
                        }
                        emit(kind, text, sink, &mut pos)?;
                    }
                    para.clear();
                }
                b"tc" if tbl_depth == 1 => row.push(std::mem::take(&mut cell)),
                b"tr" if tbl_depth == 1 => rows.push(std::mem::take(&mut row).join(" | ")),
                b"tbl" => {
                    tbl_depth = tbl_depth.saturating_sub(1);
                    if tbl_depth == 0 {
                        emit(BlockKind::Table, rows.join("\n"), sink, &mut pos)?;
                        rows.clear();
                    }
                }
                _ => {}
            },
            X::Eof => break,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_reads_headings_lists_and_tables() {
        let xml = r#"<w:document xmlns:w="x"><w:body>
          <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Reisekosten</w:t></w:r></w:p>
          <w:p><w:r><w:t xml:space="preserve">Belege &amp; Quittungen </w:t></w:r><w:r><w:t>einreichen.</w:t></w:r></w:p>
          <w:p><w:pPr><w:numPr><w:ilvl w:val="0"/></w:numPr></w:pPr><w:r><w:t>Bahn 2. Klasse</w:t></w:r></w:p>
          <w:tbl><w:tr><w:tc><w:p><w:r><w:t>Land</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Satz</w:t></w:r></w:p></w:tc></w:tr>
          <w:tr><w:tc><w:p><w:r><w:t>DE</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>28 EUR</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
        </w:body></w:document>"#;
        let mut v = Vec::new();
        body(xml, false, &mut |e| {
            v.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(v[0], Event::Title("Reisekosten".into()));
        let b: Vec<(BlockKind, String)> =
            v.iter().filter_map(|e| if let Event::Block(b) = e { Some((b.kind, b.text.clone())) } else { None }).collect();
        assert_eq!(
            b,
            vec![
                (BlockKind::Heading(1), "Reisekosten".into()),
                (BlockKind::Paragraph, "Belege & Quittungen einreichen.".into()),
                (BlockKind::ListItem, "Bahn 2. Klasse".into()),
                (BlockKind::Table, "Land | Satz\nDE | 28 EUR".into()),
            ]
        );
    }
}
