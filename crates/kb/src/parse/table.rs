//! CSV/TSV, streamed record by record. Each row becomes a record block
//! "Header: value | Header: value", so every chunk of rows carries its
//! header. The delimiter (',' ';' or tab) is sniffed from the first line.
//! A row's span is the character span of its line(s) in the file (a
//! leading BOM not counted, the line break not included), like the spans
//! of Markdown and plain text.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{over_block, Block, BlockKind, Event, Limits, ParseError, Sink};

/// How much of the first line the delimiter sniffing reads.
const SNIFF: u64 = 64 << 10;

pub(crate) fn parse(path: &Path, tsv: bool, limits: &Limits, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let first = {
        // bounded: a file without a newline is not read whole to sniff
        let mut rd = BufReader::new(std::fs::File::open(path)?.take(SNIFF));
        let mut raw = Vec::new();
        rd.read_until(b'\n', &mut raw)?;
        String::from_utf8_lossy(&raw).into_owned()
    };
    let delim = if tsv {
        b'\t'
    } else {
        let count = |c: char| first.matches(c).count();
        [(b',', count(',')), (b';', count(';')), (b'\t', count('\t'))].into_iter().max_by_key(|x| x.1).map(|x| x.0).unwrap_or(b',')
    };
    let mut rd = csv::ReaderBuilder::new().delimiter(delim).flexible(true).has_headers(false).from_path(path).map_err(csv_err)?;
    let mut rec = csv::ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    let mut chars = CharPos::new(std::fs::File::open(path)?)?;
    loop {
        let start_byte = rd.position().byte() as usize;
        chars.advance(start_byte)?;
        let more = rd.read_byte_record(&mut rec).map_err(csv_err)?;
        if !more {
            break;
        }
        // a header or row over the block limit (a 64 MB field, 100 MB without a newline)
        let row_bytes = (rd.position().byte() as usize).saturating_sub(start_byte);
        if row_bytes as u64 > limits.max_block {
            return Err(over_block(row_bytes, limits));
        }
        let mut fields = Vec::with_capacity(rec.len());
        for f in rec.iter() {
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s.trim().trim_start_matches('\u{feff}').to_string()),
                Err(e) => {
                    let off = start_byte as u64 + e.valid_up_to() as u64;
                    return Err(ParseError::InvalidUtf8 { offset: off });
                }
            }
        }
        // the bytes crossed may begin with the previous row's '\n' or blank lines
        let (start, end) = chars.advance(rd.position().byte() as usize)?;
        match &header {
            None => header = Some(fields),
            Some(h) => {
                let text = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(i, v)| match h.get(i).filter(|k| !k.is_empty()) {
                        Some(k) => format!("{k}: {v}"),
                        None => v.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ");
                sink(Event::Block(Block { kind: BlockKind::Record, text, page: None, start, end }))?;
            }
        }
    }
    Ok(())
}

/// Byte offsets → character offsets of a UTF-8 file read front to back
/// once (every byte that is not a continuation byte starts a character).
struct CharPos<R: Read> {
    rd: BufReader<R>,
    byte: usize,
    chars: usize,
}

impl<R: Read> CharPos<R> {
    fn new(r: R) -> std::io::Result<Self> {
        let mut rd = BufReader::with_capacity(1 << 16, r);
        let bom = rd.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]);
        let mut byte = 0;
        if bom {
            rd.consume(3);
            byte = 3;
        }
        Ok(CharPos { rd, byte, chars: 0 })
    }

    /// Moves to byte offset `to` (never backwards): the character span of
    /// the bytes crossed without the line breaks they begin and end with.
    fn advance(&mut self, to: usize) -> std::io::Result<(usize, usize)> {
        let from = self.chars;
        let (mut lead, mut breaks, mut only_breaks) = (0, 0, true);
        while self.byte < to {
            let buf = self.rd.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len().min(to - self.byte);
            for &b in &buf[..n] {
                if b & 0xC0 != 0x80 {
                    self.chars += 1;
                }
                let br = b == b'\n' || b == b'\r';
                breaks = if br { breaks + 1 } else { 0 };
                only_breaks &= br;
                if only_breaks {
                    lead += 1;
                }
            }
            self.rd.consume(n);
            self.byte += n;
        }
        if only_breaks {
            return Ok((self.chars, self.chars));
        }
        Ok((from + lead, self.chars - breaks))
    }
}

fn csv_err(e: csv::Error) -> ParseError {
    match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => ParseError::Io(io),
            _ => unreachable!(),
        },
        _ => ParseError::Corrupt { format: "CSV", reason: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::parse::test_util::{blocks, span};

    fn rows(content: &str) -> Vec<Block> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, content).unwrap();
        blocks(|sink| parse(&p, false, &Limits::BUILTIN, sink))
    }

    #[test]
    fn row_spans_are_character_spans_of_the_row() {
        // multi-byte characters before and inside rows; CRLF; a quoted field with a line break
        let content = "Produkt;Preis (€);Hinweis\r\nGrüße-Paket;12,50 €;für Büros\r\n\"Süß\nwaren\";3 €;ß\r\nZähler;1 €;Ende";
        let b = rows(content);
        assert_eq!(b.len(), 3);
        assert_eq!(span(content, &b[0]), "Grüße-Paket;12,50 €;für Büros");
        assert_eq!(span(content, &b[1]), "\"Süß\nwaren\";3 €;ß");
        assert_eq!(span(content, &b[2]), "Zähler;1 €;Ende");
        assert!(b[0].text.contains("Preis (€): 12,50 €"));
        // a BOM is not counted, as in every other format
        let bom = format!("\u{feff}{content}");
        let b2 = rows(&bom);
        assert_eq!((b2[2].start, b2[2].end), (b[2].start, b[2].end));
        assert_eq!(span(&bom, &b2[2]), "Zähler;1 €;Ende");
    }
}
