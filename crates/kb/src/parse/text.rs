//! Streaming UTF-8 line reading (bounded memory, exact offsets) and the
//! plain-text parser: paragraphs separated by blank lines.

use std::io::{BufRead, BufReader, Read};

use super::{Block, BlockKind, Event, ParseError, Sink};

/// Reads a file line by line as UTF-8, tracking byte and character offsets.
/// A BOM is skipped. Invalid UTF-8 is an error naming the offset.
pub(crate) struct Lines<R: Read> {
    rd: BufReader<R>,
    carry: Vec<u8>,
    pub byte_pos: u64,
    pub char_pos: usize,
    first: bool,
}

const MAX_PIECE: usize = 1 << 20;

impl<R: Read> Lines<R> {
    pub fn new(r: R) -> Self {
        Lines { rd: BufReader::with_capacity(1 << 16, r), carry: Vec::new(), byte_pos: 0, char_pos: 0, first: true }
    }

    /// The next line including its '\n', with its starting char offset.
    /// Very long lines come in pieces of about 1 MiB (cut at a char boundary).
    pub fn next_line(&mut self) -> Result<Option<(usize, String)>, ParseError> {
        let mut buf = std::mem::take(&mut self.carry);
        loop {
            if buf.last() == Some(&b'\n') || buf.len() >= MAX_PIECE {
                break;
            }
            let avail = self.rd.fill_buf()?;
            if avail.is_empty() {
                break;
            }
            let want = MAX_PIECE - buf.len();
            let take = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1).min(want),
                None => avail.len().min(want),
            };
            buf.extend_from_slice(&avail[..take]);
            self.rd.consume(take);
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let mut bom = 0;
        if self.first {
            self.first = false;
            if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                bom = 3;
            }
        }
        let text_end = match std::str::from_utf8(&buf[bom..]) {
            Ok(_) => buf.len(),
            // a multi-byte character cut by the piece limit: finish it next time
            Err(e) if e.error_len().is_none() && buf.len() >= MAX_PIECE => bom + e.valid_up_to(),
            Err(e) => return Err(ParseError::InvalidUtf8 { offset: self.byte_pos + (bom + e.valid_up_to()) as u64 }),
        };
        self.carry = buf[text_end..].to_vec();
        let s = String::from_utf8(buf[bom..text_end].to_vec()).map_err(|e| ParseError::InvalidUtf8 {
            offset: self.byte_pos + (bom + e.utf8_error().valid_up_to()) as u64,
        })?;
        let start = self.char_pos;
        self.byte_pos += text_end as u64;
        self.char_pos += s.chars().count();
        Ok(Some((start, s)))
    }
}

pub(crate) fn parse_plain<R: Read>(r: R, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let mut lines = Lines::new(r);
    let mut para = String::new();
    let mut start = 0usize;
    let mut end = 0usize;
    let flush = |para: &mut String, start: usize, end: usize, sink: &mut Sink<'_>| -> Result<(), ParseError> {
        if !para.trim().is_empty() {
            sink(Event::Block(Block { kind: BlockKind::Paragraph, text: para.trim().to_string(), page: None, start, end }))?;
        }
        para.clear();
        Ok(())
    };
    while let Some((pos, line)) = lines.next_line()? {
        if line.trim().is_empty() {
            flush(&mut para, start, end, sink)?;
            continue;
        }
        if para.is_empty() {
            start = pos + (line.len() - line.trim_start().len());
        }
        para.push_str(&line);
        end = pos + line.trim_end().chars().count();
        // bound a paragraph that never ends (a 200 MB file without blank lines)
        if para.len() > 64 << 10 {
            flush(&mut para, start, end, sink)?;
        }
    }
    flush(&mut para, start, end, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_track_offsets_and_reject_bad_utf8() {
        let mut l = Lines::new("äb\ncd\n".as_bytes());
        assert_eq!(l.next_line().unwrap(), Some((0, "äb\n".to_string())));
        assert_eq!(l.next_line().unwrap(), Some((3, "cd\n".to_string())));
        assert_eq!(l.next_line().unwrap(), None);
        let mut bad = Lines::new(&b"ok\nbad \xff here\n"[..]);
        bad.next_line().unwrap();
        match bad.next_line() {
            Err(ParseError::InvalidUtf8 { offset }) => assert_eq!(offset, 7),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_text_paragraphs_with_spans() {
        let src = "First para\nstill first.\n\n  Second.\n";
        let mut v = Vec::new();
        parse_plain(src.as_bytes(), &mut |e| {
            v.push(e);
            Ok(())
        })
        .unwrap();
        let Event::Block(b) = &v[1] else { panic!() };
        assert_eq!(b.text, "Second.");
        assert_eq!(&src[b.start..b.end], "Second.");
    }
}
