//! Markdown via pulldown-cmark, fed in segments of ~256 KiB cut at blank
//! lines outside code fences, so big files stream. Headings, paragraphs,
//! list items, code blocks and tables become blocks; inline markup is
//! dropped, its text kept; raw HTML is dropped.

use std::io::Read;

use pulldown_cmark::{Event as Md, Options, Parser, Tag, TagEnd};

use super::text::Lines;
use super::{squash, Block, BlockKind, Event, Limits, ParseError, Sink};

const SEGMENT: usize = 256 << 10;

pub(crate) fn parse<R: Read>(r: R, limits: &Limits, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let max_seg = (limits.max_markdown_segment as usize).max(SEGMENT);
    let mut lines = Lines::new(r);
    let mut seg = String::new();
    let mut seg_base = 0usize;
    // a fence line put before a segment that continues a cut code block (not in the file)
    let mut prefix = 0usize;
    let mut fence: Option<String> = None;
    let mut st = State::default();
    while let Some((pos, line)) = lines.next_line()? {
        if seg.len() == prefix {
            seg_base = pos;
        }
        let t = line.trim_start();
        let marker = if t.starts_with("```") { Some("```") } else if t.starts_with("~~~") { Some("~~~") } else { None };
        match (&fence, marker) {
            (None, Some(m)) => fence = Some(m.to_string()),
            (Some(f), Some(m)) if f == m => fence = None,
            _ => {}
        }
        let blank = line.trim().is_empty();
        seg.push_str(&line);
        if blank && fence.is_none() && seg.len() >= SEGMENT {
            parse_segment(&seg, prefix, seg_base, &mut st, sink)?;
            seg.clear();
            prefix = 0;
        } else if seg.len() >= max_seg {
            // no blank line for max_seg bytes (one huge paragraph, an unclosed
            // code fence): cut here, so pulldown-cmark never holds more; a cut
            // code block goes on as code in the next segment
            parse_segment(&seg, prefix, seg_base, &mut st, sink)?;
            seg.clear();
            prefix = 0;
            if let Some(f) = &fence {
                seg.push_str(f);
                seg.push('\n');
                prefix = seg.len();
            }
        }
    }
    if seg.len() > prefix {
        parse_segment(&seg, prefix, seg_base, &mut st, sink)?;
    }
    Ok(())
}

#[derive(Default)]
struct State {
    titled: bool,
}

struct Cur {
    kind: BlockKind,
    text: String,
    start: usize,
}

/// Byte offsets of one segment to file char offsets, incrementally.
struct CharMap<'a> {
    s: &'a str,
    base: usize,
    byte: usize,
    chars: usize,
    /// Bytes at the front that are not in the file (a reopened code fence).
    prefix: usize,
}

impl CharMap<'_> {
    fn at(&mut self, b: usize) -> usize {
        let b = b.min(self.s.len()).max(self.prefix);
        let b = (0..=b).rev().find(|&i| self.s.is_char_boundary(i)).unwrap_or(0);
        if b < self.byte {
            self.byte = self.prefix;
            self.chars = 0;
        }
        self.chars += self.s[self.byte..b].chars().count();
        self.byte = b;
        self.base + self.chars
    }
}

fn parse_segment(seg: &str, prefix: usize, base: usize, st: &mut State, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let mut map = CharMap { s: seg, base, byte: prefix, chars: 0, prefix };
    let mut cur: Option<Cur> = None;
    let mut item_depth = 0usize;
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let flush = |cur: &mut Option<Cur>, end: usize, st: &mut State, sink: &mut Sink<'_>| -> Result<(), ParseError> {
        if let Some(c) = cur.take() {
            let text = if c.kind == BlockKind::Code || c.kind == BlockKind::Table {
                c.text.trim_end().to_string()
            } else {
                squash(&c.text)
            };
            if text.is_empty() {
                return Ok(());
            }
            if let BlockKind::Heading(1) = c.kind {
                if !st.titled {
                    st.titled = true;
                    sink(Event::Title(text.clone()))?;
                }
            }
            sink(Event::Block(Block { kind: c.kind, text, page: None, start: c.start, end: end.max(c.start) }))?;
        }
        Ok(())
    };
    for (ev, range) in Parser::new_ext(seg, opts).into_offset_iter() {
        match ev {
            Md::Start(tag) => match tag {
                Tag::Heading { level, .. } => {
                    let s = map.at(range.start);
                    flush(&mut cur, s, st, sink)?;
                    cur = Some(Cur { kind: BlockKind::Heading(level as u8), text: String::new(), start: s });
                }
                Tag::Paragraph => {
                    let in_item = item_depth > 0;
                    match &mut cur {
                        Some(c) if in_item && c.kind == BlockKind::ListItem => {
                            if !c.text.is_empty() {
                                c.text.push(' ');
                            }
                        }
                        _ => {
                            let s = map.at(range.start);
                            flush(&mut cur, s, st, sink)?;
                            let kind = if in_item { BlockKind::ListItem } else { BlockKind::Paragraph };
                            cur = Some(Cur { kind, text: String::new(), start: s });
                        }
                    }
                }
                Tag::Item => {
                    item_depth += 1;
                    let s = map.at(range.start);
                    flush(&mut cur, s, st, sink)?;
                    cur = Some(Cur { kind: BlockKind::ListItem, text: String::new(), start: s });
                }
                Tag::CodeBlock(_) => {
                    let s = map.at(range.start);
                    flush(&mut cur, s, st, sink)?;
                    cur = Some(Cur { kind: BlockKind::Code, text: String::new(), start: s });
                }
                Tag::Table(_) => {
                    let s = map.at(range.start);
                    flush(&mut cur, s, st, sink)?;
                    cur = Some(Cur { kind: BlockKind::Table, text: String::new(), start: s });
                }
                _ => {}
            },
            Md::End(tag) => match tag {
                TagEnd::Heading(_) | TagEnd::CodeBlock | TagEnd::Table => {
                    let e = map.at(range.end);
                    flush(&mut cur, e, st, sink)?;
                }
                TagEnd::Paragraph => {
                    if item_depth == 0 {
                        let e = map.at(range.end);
                        flush(&mut cur, e, st, sink)?;
                    }
                }
                TagEnd::Item => {
                    item_depth = item_depth.saturating_sub(1);
                    let e = map.at(range.end);
                    flush(&mut cur, e, st, sink)?;
                }
                TagEnd::TableCell => {
                    if let Some(c) = &mut cur {
                        c.text.push_str(" | ");
                    }
                }
                TagEnd::TableHead | TagEnd::TableRow => {
                    if let Some(c) = &mut cur {
                        let t = c.text.trim_end_matches(" | ").to_string();
                        c.text = t;
                        c.text.push('\n');
                    }
                }
                _ => {}
            },
            Md::Text(t) | Md::Code(t) => {
                if cur.is_none() {
                    let kind = if item_depth > 0 { BlockKind::ListItem } else { BlockKind::Paragraph };
                    cur = Some(Cur { kind, text: String::new(), start: map.at(range.start) });
                }
                if let Some(c) = &mut cur {
                    c.text.push_str(&t);
                }
            }
            Md::SoftBreak | Md::HardBreak => {
                if let Some(c) = &mut cur {
                    c.text.push(if c.kind == BlockKind::Code { '\n' } else { ' ' });
                }
            }
            _ => {}
        }
    }
    let e = map.at(seg.len());
    flush(&mut cur, e, st, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(src: &str) -> Vec<Event> {
        let mut v = Vec::new();
        parse(src.as_bytes(), &Limits::BUILTIN, &mut |e| {
            v.push(e);
            Ok(())
        })
        .unwrap();
        v
    }

    /// Issue 19: an unclosed code fence (or one paragraph without a blank
    /// line) made the whole file one segment held and parsed at once (a 200 MB
    /// file: 200 MB in pulldown-cmark). Now it is cut at `max_markdown_segment`;
    /// the cut code goes on as code and spans stay exact. Failed before (one
    /// block of the whole file).
    #[test]
    fn unclosed_fence_is_cut_into_bounded_code_segments() {
        let line = "let x = compute(1);\n";
        let src = format!("# T\n\n```\n{}", line.repeat(40_000)); // ~800 KB, never closed
        let limits = Limits { max_markdown_segment: 256 << 10, ..Limits::BUILTIN };
        let mut bs = Vec::new();
        parse(src.as_bytes(), &limits, &mut |e| {
            if let Event::Block(b) = e {
                bs.push(b);
            }
            Ok(())
        })
        .unwrap();
        assert!(bs.len() >= 4, "{}", bs.len());
        assert!(bs[1..].iter().all(|b| b.kind == BlockKind::Code && b.text.len() <= 300 << 10));
        let total: usize = bs[1..].iter().map(|b| b.text.lines().count()).sum();
        assert_eq!(total, 40_000);
        for b in &bs[1..] {
            assert_eq!(crate::parse::test_util::span(&src, b).trim_start_matches("```\n").trim_end(), b.text);
        }
    }

    #[test]
    fn headings_lists_code_tables_and_spans() {
        let src = "# Handbuch\n\nIntro *text* here.\n\n## Urlaub\n\n- 30 Tage\n- Antrag im **Portal**\n\n```sh\nls -la\necho hi\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let ev = blocks(src);
        assert_eq!(ev[0], Event::Title("Handbuch".into()));
        let bs: Vec<&Block> = ev.iter().filter_map(|e| if let Event::Block(b) = e { Some(b) } else { None }).collect();
        let kinds: Vec<BlockKind> = bs.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            vec![
                BlockKind::Heading(1),
                BlockKind::Paragraph,
                BlockKind::Heading(2),
                BlockKind::ListItem,
                BlockKind::ListItem,
                BlockKind::Code,
                BlockKind::Table
            ]
        );
        assert_eq!(bs[1].text, "Intro text here.");
        assert_eq!(bs[4].text, "Antrag im Portal");
        assert_eq!(bs[5].text, "ls -la\necho hi");
        assert_eq!(bs[6].text, "a | b\n1 | 2");
        let chars: Vec<char> = src.chars().collect();
        let span: String = chars[bs[1].start..bs[1].end].iter().collect();
        assert!(span.starts_with("Intro *text* here."), "{span:?}");
    }

    #[test]
    fn big_files_are_parsed_in_segments_with_global_offsets() {
        let para = "Ein Absatz über Reisekosten und Urlaub. ".repeat(20);
        let mut src = String::from("# Groß\n\n");
        for i in 0..2000 {
            src.push_str(&format!("{para}{i}\n\n"));
        }
        let ev = blocks(&src);
        let chars: Vec<char> = src.chars().collect();
        let n = ev.iter().filter(|e| matches!(e, Event::Block(_))).count();
        assert_eq!(n, 2001);
        let Some(Event::Block(last)) = ev.last() else { panic!() };
        let span: String = chars[last.start..last.end].iter().collect();
        assert_eq!(span.trim(), last.text);
        assert!(last.text.ends_with("1999"));
    }
}
