//! Structure-aware chunking. Blocks are packed into chunks of about
//! `target_tokens` embedder tokens; a heading always starts a new chunk and
//! is carried as the chunk's heading path; small tables and code blocks are
//! kept whole; bigger ones split by rows (header repeated) or lines (never
//! mid-line); long paragraphs split at sentence boundaries
//! (`tresor_text::sentences`: German abbreviations such as "z. B.", "Nr.",
//! "ca." are not boundaries), then at words. Consecutive chunks of one
//! section overlap by whole sentences of up to `overlap_tokens`.

use std::collections::VecDeque;

use tresor_text::sentences::sentence_ranges;

use crate::parse::{Block, BlockKind, Event};

#[derive(Debug, Clone)]
pub struct ChunkConfig {
    pub target_tokens: usize,
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig { target_tokens: 256, overlap_tokens: 32 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    pub ord: usize,
    pub text: String,
    /// Heading path, " > " separated ("" before the first heading).
    pub heading: String,
    pub page: Option<u32>,
    pub start: usize,
    pub end: usize,
    pub tokens: usize,
}

/// The text the embedder sees: title and heading path, then the passage.
pub fn embedding_text(title: &str, heading: &str, text: &str) -> String {
    match (title.is_empty(), heading.is_empty()) {
        (_, false) if heading == title => format!("{title}\n{text}"),
        (true, false) => format!("{heading}\n{text}"),
        (false, false) => format!("{title} — {heading}\n{text}"),
        (false, true) => format!("{title}\n{text}"),
        (true, true) => text.to_string(),
    }
}

/// Byte offsets of a text to char offsets, walking forward from the last
/// answer (restarting from the front only when asked for an earlier byte).
struct CharCursor<'t> {
    text: &'t str,
    at: std::cell::Cell<(usize, usize)>,
}

impl<'t> CharCursor<'t> {
    fn new(text: &'t str) -> Self {
        CharCursor { text, at: std::cell::Cell::new((0, 0)) }
    }

    fn chars_to(&self, byte: usize) -> usize {
        let (mut b, mut c) = self.at.get();
        if byte < b {
            (b, c) = (0, 0);
        }
        c += self.text[b..byte].chars().count();
        self.at.set((byte, c));
        c
    }
}

#[derive(Debug, Clone)]
struct Piece {
    text: String,
    tokens: usize,
    page: Option<u32>,
    start: usize,
    end: usize,
    block: usize,
}

pub struct Chunker<'a> {
    cfg: ChunkConfig,
    count: &'a (dyn Fn(&str) -> usize + 'a),
    max_input: usize,
    pub title: String,
    titled: bool,
    headings: Vec<(u8, String)>,
    heading: String,
    budget: usize,
    pieces: Vec<Piece>,
    piece_tokens: usize,
    block_no: usize,
    next_ord: usize,
    ready: VecDeque<Chunk>,
    /// Where the current section's heading starts: the section's first
    /// chunk spans its heading too (the heading is part of its context).
    heading_start: Option<usize>,
}

impl<'a> Chunker<'a> {
    /// `count` counts embedder tokens; `max_input` is the embedder's input
    /// limit, so title + heading + passage are never truncated.
    pub fn new(cfg: ChunkConfig, count: &'a (dyn Fn(&str) -> usize + 'a), max_input: usize, default_title: &str) -> Self {
        let mut c = Chunker {
            cfg,
            count,
            max_input,
            title: default_title.to_string(),
            titled: false,
            headings: Vec::new(),
            heading: String::new(),
            budget: 0,
            pieces: Vec::new(),
            piece_tokens: 0,
            block_no: 0,
            next_ord: 0,
            ready: VecDeque::new(),
            heading_start: None,
        };
        c.rebudget();
        c
    }

    fn rebudget(&mut self) {
        let head = (self.count)(&embedding_text(&self.title, &self.heading, ""));
        let room = self.max_input.saturating_sub(head + 3);
        self.budget = self.cfg.target_tokens.min(room).max(16);
    }

    pub fn push(&mut self, ev: Event) {
        match ev {
            Event::Title(t) => {
                if !self.titled && self.next_ord == 0 && self.pieces.is_empty() {
                    self.title = t;
                    self.titled = true;
                    self.rebudget();
                }
            }
            Event::Block(b) => self.block(b),
        }
    }

    fn block(&mut self, b: Block) {
        self.block_no += 1;
        if let BlockKind::Heading(level) = b.kind {
            self.flush(false);
            while self.headings.last().is_some_and(|(l, _)| *l >= level) {
                self.headings.pop();
            }
            self.headings.push((level, b.text.clone()));
            self.heading_start = Some(b.start);
            // the document title as the top heading adds nothing
            let path: Vec<&str> = self
                .headings
                .iter()
                .map(|(_, h)| h.as_str())
                .filter(|h| *h != self.title.as_str() || self.headings.len() == 1)
                .collect();
            self.heading = path.join(" > ");
            self.rebudget();
            return;
        }
        // a chunk never spans pages: its page number stays exact
        if self.pieces.last().is_some_and(|p| p.page != b.page) {
            self.flush(false);
        }
        for unit in self.units(&b) {
            if self.piece_tokens + unit.tokens > self.budget && !self.pieces.is_empty() {
                self.flush(true);
                if self.piece_tokens + unit.tokens > self.budget {
                    self.pieces.clear();
                    self.piece_tokens = 0;
                }
            }
            self.piece_tokens += unit.tokens;
            self.pieces.push(unit);
        }
    }

    /// Splits a block into pieces that each fit the budget.
    fn units(&self, b: &Block) -> Vec<Piece> {
        let tokens = (self.count)(&b.text);
        let piece = |text: String, tokens: usize, start: usize, end: usize| Piece {
            text,
            tokens,
            page: b.page,
            start,
            end,
            block: self.block_no,
        };
        if tokens <= self.budget {
            return vec![piece(b.text.clone(), tokens, b.start, b.end)];
        }
        // pieces come in text order: byte → char offsets by a forward cursor, so a
        // block of n chars costs O(n) here, not O(n) per piece (quadratic on a
        // 20 MB paragraph or a JSON array of millions of scalars)
        let cursor = CharCursor::new(&b.text);
        let at = |byte: usize| (b.start + cursor.chars_to(byte)).min(b.end);
        let mut out = Vec::new();
        match b.kind {
            BlockKind::Code | BlockKind::Table => {
                let mut lines = b.text.split_inclusive('\n');
                let header = if b.kind == BlockKind::Table { lines.next().map(|h| h.to_string()) } else { None };
                let header_tokens = header.as_deref().map(|h| (self.count)(h)).unwrap_or(0);
                let mut cur = header.clone().unwrap_or_default();
                let mut cur_tokens = header_tokens;
                let mut cur_start = 0usize;
                let mut off = header.as_ref().map(|h| h.len()).unwrap_or(0);
                let has_rows = |t: usize| t > header_tokens;
                for line in lines {
                    let lt = (self.count)(line);
                    if cur_tokens + lt > self.budget && has_rows(cur_tokens) {
                        out.push(piece(cur.trim_end().to_string(), cur_tokens, at(cur_start), at(off)));
                        cur = header.clone().unwrap_or_default();
                        cur_tokens = header_tokens;
                        cur_start = off;
                    }
                    if lt > self.budget {
                        // one overlong line: cut it by words, the only way it fits
                        for (s, e, t) in self.word_windows(line) {
                            out.push(piece(line[s..e].to_string(), t, at(off + s), at(off + e)));
                        }
                        cur_start = off + line.len();
                    } else {
                        cur.push_str(line);
                        cur_tokens += lt;
                    }
                    off += line.len();
                }
                if has_rows(cur_tokens) {
                    out.push(piece(cur.trim_end().to_string(), cur_tokens, at(cur_start), b.end));
                }
            }
            _ => {
                for (s, e) in sentence_ranges(&b.text) {
                    let sent = &b.text[s..e];
                    let t = (self.count)(sent);
                    if t <= self.budget {
                        out.push(piece(sent.to_string(), t, at(s), at(e)));
                    } else {
                        for (ws, we, wt) in self.word_windows(sent) {
                            out.push(piece(sent[ws..we].to_string(), wt, at(s + ws), at(s + we)));
                        }
                    }
                }
            }
        }
        out
    }

    /// Byte ranges of word windows of at most the budget.
    fn word_windows(&self, text: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut start: Option<usize> = None;
        let mut last_end = 0;
        let mut tokens = 0;
        for (i, w) in text.split_inclusive(char::is_whitespace).scan(0usize, |pos, w| {
            let s = *pos;
            *pos += w.len();
            Some((s, w))
        }) {
            let mut wt = (self.count)(w);
            if start.is_some() && tokens + wt > self.budget {
                out.push((start.unwrap(), last_end, tokens));
                start = None;
                tokens = 0;
            }
            if wt > self.budget {
                // a single giant "word": cut at char boundaries
                let mut s = i;
                let chars: Vec<(usize, char)> = w.char_indices().collect();
                for part in chars.chunks(self.budget.max(8)) {
                    let e = i + part.last().map(|(o, c)| o + c.len_utf8()).unwrap_or(0);
                    out.push((s, e, (self.count)(&text[s..e]).min(self.budget)));
                    s = e;
                }
                wt = 0;
                last_end = i + w.len();
                continue;
            }
            if start.is_none() {
                start = Some(i);
            }
            tokens += wt;
            last_end = i + w.len();
        }
        if let Some(s) = start {
            out.push((s, last_end, tokens));
        }
        out
    }

    fn flush(&mut self, overlap: bool) {
        if self.pieces.is_empty() {
            return;
        }
        let mut text = String::new();
        for (i, p) in self.pieces.iter().enumerate() {
            if i > 0 {
                text.push_str(if self.pieces[i - 1].block == p.block { " " } else { "\n" });
            }
            text.push_str(p.text.trim());
        }
        let chunk = Chunk {
            ord: self.next_ord,
            heading: self.heading.clone(),
            page: self.pieces.iter().find_map(|p| p.page),
            start: self.pieces.first().map(|p| p.start).unwrap_or(0).min(self.heading_start.take().unwrap_or(usize::MAX)),
            end: self.pieces.iter().map(|p| p.end).max().unwrap_or(0),
            tokens: self.piece_tokens,
            text,
        };
        self.next_ord += 1;
        self.ready.push_back(chunk);
        let mut keep: Vec<Piece> = Vec::new();
        if overlap && self.cfg.overlap_tokens > 0 {
            let mut t = 0;
            for p in self.pieces.iter().rev() {
                if t + p.tokens > self.cfg.overlap_tokens || keep.len() + 1 >= self.pieces.len() {
                    break;
                }
                t += p.tokens;
                keep.push(p.clone());
            }
            keep.reverse();
        }
        self.piece_tokens = keep.iter().map(|p| p.tokens).sum();
        self.pieces = keep;
    }

    /// Chunks completed so far (call after each push to stream).
    pub fn take_ready(&mut self) -> impl Iterator<Item = Chunk> + '_ {
        self.ready.drain(..)
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Flushes the last chunk.
    pub fn finish(&mut self) {
        self.flush(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(t: &str) -> usize {
        crate::analyze::words(t).count()
    }

    fn chunks(events: Vec<Event>, target: usize, overlap: usize) -> Vec<Chunk> {
        let count = |t: &str| words(t);
        let mut c = Chunker::new(ChunkConfig { target_tokens: target, overlap_tokens: overlap }, &count, 10_000, "Doc");
        for e in events {
            c.push(e);
        }
        c.finish();
        c.take_ready().collect()
    }

    fn blk(kind: BlockKind, text: &str) -> Event {
        Event::Block(Block { kind, text: text.into(), page: None, start: 0, end: text.chars().count() })
    }

    #[test]
    fn headings_start_chunks_and_build_paths() {
        let ch = chunks(
            vec![
                Event::Title("Handbuch".into()),
                blk(BlockKind::Heading(1), "Handbuch"),
                blk(BlockKind::Heading(2), "Urlaub"),
                blk(BlockKind::Paragraph, "Dreißig Tage im Jahr."),
                blk(BlockKind::Heading(3), "Antrag"),
                blk(BlockKind::ListItem, "Im Portal stellen."),
                blk(BlockKind::Heading(2), "Reisen"),
                blk(BlockKind::Paragraph, "Bahn zweite Klasse."),
            ],
            50,
            0,
        );
        let hs: Vec<&str> = ch.iter().map(|c| c.heading.as_str()).collect();
        assert_eq!(hs, vec!["Urlaub", "Urlaub > Antrag", "Reisen"]);
        assert_eq!(embedding_text("Handbuch", &ch[1].heading, &ch[1].text), "Handbuch — Urlaub > Antrag\nIm Portal stellen.");
    }

    #[test]
    fn long_paragraphs_split_at_sentences_with_overlap_and_fit_budget() {
        let para: String = (0..40).map(|i| format!("Satz Nummer {i} hat genau sieben Wörter hier. ")).collect();
        let ch = chunks(vec![blk(BlockKind::Paragraph, para.trim())], 50, 10);
        assert!(ch.len() >= 6, "{}", ch.len());
        for c in &ch {
            assert!(c.tokens <= 50);
            assert!(c.text.ends_with('.'));
        }
        // overlap: each next chunk starts with the previous chunk's last sentence
        let last = sentence_ranges(&ch[0].text).last().map(|(s, e)| ch[0].text[*s..*e].to_string()).unwrap();
        assert!(ch[1].text.starts_with(&last));
    }

    #[test]
    fn tables_kept_whole_when_small_and_split_with_header_when_big() {
        let small = "A | B\n1 | 2\n3 | 4";
        assert_eq!(chunks(vec![blk(BlockKind::Table, small)], 50, 0)[0].text, small);
        let big: String = std::iter::once("Produkt | Preis\n".to_string())
            .chain((0..60).map(|i| format!("Artikel {i} | {i} EUR\n")))
            .collect();
        let ch = chunks(vec![blk(BlockKind::Table, big.trim_end())], 40, 0);
        assert!(ch.len() > 3);
        assert!(ch.iter().all(|c| c.text.starts_with("Produkt | Preis\n")));
        let rows: usize = ch.iter().map(|c| c.text.lines().count() - 1).sum();
        assert_eq!(rows, 60);
    }

    /// Issue 19: one 8 MB paragraph (a 20 MB one-paragraph Markdown file, a
    /// JSON array of millions of scalars flattened into one record) was
    /// quadratic: every piece recounted the characters before it. Failed
    /// (minutes) before the forward cursor; the spans must stay exact.
    #[test]
    fn huge_paragraph_chunks_in_linear_time_with_exact_spans() {
        let text: String = (0..800_000).map(|i| format!("{i}, ")).collect::<String>() + "Ende.";
        let n = text.chars().count();
        let count = |t: &str| t.len() / 4 + 1;
        let t0 = std::time::Instant::now();
        let mut c = Chunker::new(ChunkConfig { target_tokens: 256, overlap_tokens: 0 }, &count, 10_000, "Doc");
        c.push(Event::Block(Block { kind: BlockKind::Record, text: text.clone(), page: None, start: 0, end: n }));
        c.finish();
        let ch: Vec<Chunk> = c.take_ready().collect();
        assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{:?}", t0.elapsed());
        assert!(ch.len() > 1000);
        for k in [0, ch.len() / 2, ch.len() - 1] {
            let span: String = text.chars().skip(ch[k].start).take(ch[k].end - ch[k].start).collect();
            assert_eq!(span.trim(), ch[k].text, "chunk {k}");
        }
    }

    #[test]
    fn code_never_split_mid_line() {
        let code: String = (0..100).map(|i| format!("let x{i} = compute({i});\n")).collect();
        let ch = chunks(vec![blk(BlockKind::Code, code.trim_end())], 30, 0);
        assert!(ch.len() > 3);
        for c in &ch {
            for l in c.text.lines() {
                assert!(l.starts_with("let x") && l.ends_with(");"), "{l}");
            }
        }
    }
}
