//! Sentences: the one splitter, German- and English-aware. A sentence ends
//! at `.`, `!`, `?` or `…` (with any closing quotes and brackets and the
//! citation markers `[n]` after it) that is followed by whitespace and then
//! by something that can start a sentence (an uppercase letter, a digit, an
//! opening quote or bracket, a dash or bullet). A full stop after an
//! abbreviation ("z. B.", "Nr.", "ca.", "e.g."), an initial or a German
//! ordinal ("am 1. Mai") ends nothing.
//!
//! [`Splitter`] says what else ends a sentence (a line break) and what a
//! sentence is not (a list bullet, a fragment of a few words); it gives
//! byte ranges ([`Splitter::ranges`]) or trimmed slices ([`Splitter::split`]).
//! [`SentenceStream`] and [`complete_end`] apply the same rule to text that
//! arrives in pieces.
//!
//! Owns where sentences begin and end; never changes the text (no
//! normalising, no dropping of citation markers).

/// Words that end with a full stop without ending the sentence (lowercase,
/// without the stop). Single letters and one- or two-digit numbers are
/// abbreviations too (initials, "z. B.", "d. h.", "am 1. Mai").
const ABBREVIATIONS: &[&str] = &[
    "vgl", "bzw", "usw", "etc", "ca", "nr", "dr", "prof", "inkl", "zzgl", "ggf", "evtl", "abs", "art", "bspw", "sog",
    "str", "tel", "mio", "mrd", "max", "min", "jan", "feb", "mär", "apr", "jun", "jul", "aug", "sep", "sept", "okt",
    "nov", "dez", "mr", "mrs", "ms", "st", "vs", "no", "approx", "incl", "fig", "dept", "co", "inc", "ltd", "corp",
    "jr", "sr", "pp", "ff", "bzgl", "gem", "lt", "ggü", "allg", "anm", "hrsg", "jh", "kap", "mind", "mo", "di", "mi",
    "do", "fr", "sa", "so", "u", "z", "d", "i", "e", "eur", "std", "tsd",
];

/// Leading list markers a line's first sentence does not include
/// ([`Splitter::drop_bullets`]).
const BULLETS: [char; 3] = ['-', '*', '•'];

/// How a text is split (see the module comment for the sentence rule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Splitter {
    by_line: bool,
    drop_bullets: bool,
    min_words: usize,
}

impl Splitter {
    /// Prose: only sentence ends split (a line break is whitespace); the
    /// first range starts at 0 and the last runs to the end of the text.
    /// How the knowledge base cuts a paragraph.
    pub const fn prose() -> Splitter {
        Splitter { by_line: false, drop_bullets: false, min_words: 0 }
    }
    /// Lines: every line break ends a sentence too (answers, list items,
    /// tables); ranges are trimmed and empty lines give none.
    pub const fn lines() -> Splitter {
        Splitter { by_line: true, drop_bullets: false, min_words: 0 }
    }
    /// With [`Splitter::lines`]: a line's leading list markers (`-`, `*`,
    /// `•`) are not part of its first sentence.
    pub const fn drop_bullets(self) -> Splitter {
        Splitter { drop_bullets: true, ..self }
    }
    /// A sentence of fewer than `n` words joins the next one on its line
    /// (so a short "Fragen?" does not stand alone).
    pub const fn min_words(self, n: usize) -> Splitter {
        Splitter { min_words: n, ..self }
    }

    /// Byte ranges of the sentences of `text`, in order.
    pub fn ranges(self, text: &str) -> Vec<(usize, usize)> {
        if !self.by_line {
            return self.joined(text, prose_ranges(text));
        }
        let mut out = Vec::new();
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            let content = line.trim_start();
            let content = if self.drop_bullets { content.trim_start_matches(BULLETS).trim_start() } else { content };
            let content = content.trim_end();
            if !content.is_empty() {
                let off = at + (content.as_ptr() as usize - line.as_ptr() as usize);
                let ranges = prose_ranges(content).into_iter().map(|(s, e)| (off + s, off + e)).collect();
                out.extend(self.joined(text, ranges));
            }
            at += line.len();
        }
        out
    }

    /// The sentences of `text`, trimmed, none empty.
    pub fn split(self, text: &str) -> Vec<&str> {
        self.ranges(text).into_iter().map(|(s, e)| text[s..e].trim()).filter(|s| !s.is_empty()).collect()
    }

    /// `ranges` (of one line, or of the whole text in prose) with each run
    /// of sentences shorter than `min_words` joined to the next.
    fn joined(self, text: &str, ranges: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
        if self.min_words <= 1 {
            return ranges;
        }
        let mut out = Vec::new();
        let mut from: Option<usize> = None;
        for (s, e) in &ranges {
            let start = *from.get_or_insert(*s);
            if text[start..*e].split_whitespace().count() >= self.min_words {
                out.push((start, *e));
                from = None;
            }
        }
        if let (Some(start), Some((_, e))) = (from, ranges.last()) {
            out.push((start, *e));
        }
        out
    }
}

/// Byte ranges of the sentences of `text` in prose ([`Splitter::prose`]):
/// how the knowledge base chunks a paragraph.
pub fn sentence_ranges(text: &str) -> Vec<(usize, usize)> {
    Splitter::prose().ranges(text)
}

/// The sentences, lines and list items of `text`, trimmed, without their
/// list bullets: how an answer or a passage is read sentence by sentence.
pub fn sentences(text: &str) -> Vec<&str> {
    Splitter::lines().drop_bullets().split(text)
}

fn prose_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if matches!(c, '.' | '!' | '?' | '…') {
            // include closing quotes/brackets, repeated punctuation and citation markers
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '"' | '\'' | '»' | '«' | '“' | '”' | ')' | ']') {
                j += 1;
            }
            while let Some(m) = citation_marker(&chars, j) {
                j = m;
            }
            let end = if j < chars.len() { chars[j].0 } else { text.len() };
            let followed_by_space = j < chars.len() && chars[j].1.is_whitespace();
            let mut k = j;
            while k < chars.len() && chars[k].1.is_whitespace() {
                k += 1;
            }
            let next_ok = k < chars.len()
                && (chars[k].1.is_uppercase()
                    || chars[k].1.is_ascii_digit()
                    || matches!(chars[k].1, '"' | '„' | '“' | '(' | '[' | '-' | '–' | '•' | '*'));
            let boundary = followed_by_space && next_ok && (c != '.' || !is_abbreviation(&text[start..pos]));
            if boundary {
                out.push((start, end));
                start = chars[k].0;
                i = k;
                continue;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    if start < text.len() && !text[start..].trim().is_empty() {
        out.push((start, text.len()));
    }
    out
}

/// The index just past a citation marker (`[1]`, `[1, 2]`, after optional
/// spaces) that starts at `chars[j]`, if one does.
fn citation_marker(chars: &[(usize, char)], j: usize) -> Option<usize> {
    let mut k = j;
    while k < chars.len() && chars[k].1 == ' ' {
        k += 1;
    }
    if chars.get(k)?.1 != '[' {
        return None;
    }
    let close = k + 1 + chars[k + 1..].iter().position(|(_, c)| !(c.is_ascii_digit() || matches!(c, ',' | ' ')))?;
    let digits = chars[k + 1..close].iter().any(|(_, c)| c.is_ascii_digit());
    (chars[close].1 == ']' && digits).then_some(close + 1)
}

fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(' || c == '.').next().unwrap_or("");
    if word.is_empty() {
        return false;
    }
    let lw = word.to_lowercase();
    if word.chars().count() == 1 && word.chars().all(char::is_alphabetic) {
        return true; // initials, "z. B.", "d. h."
    }
    if word.chars().all(|c| c.is_ascii_digit()) && word.len() <= 2 {
        return true; // German ordinals: "am 1. Mai", "die 3. Stufe"
    }
    ABBREVIATIONS.contains(&lw.as_str())
}

/// Byte index just past the first sentence of `buf` that is known to be
/// complete, for text that streams in: its line ended (the line break is
/// included), or the next sentence has begun on the same line (the
/// whitespace between them is left in `buf`). A citation marker that has
/// begun but not closed after it (`"… days. [1"`) means: not yet. Taking
/// `buf[..end]` each time gives back the text exactly, sentence by sentence.
pub fn complete_end(buf: &str) -> Option<usize> {
    let newline = buf.find('\n');
    let ranges = Splitter::lines().ranges(buf);
    let Some(&(start, end)) = ranges.first() else { return newline.map(|n| n + 1) };
    match newline {
        // an empty line, or the first sentence's line ends before a second sentence starts
        Some(n) if n < start || ranges.get(1).is_none_or(|r| r.0 > n) => Some(n + 1),
        _ if ranges.len() < 2 => None,
        _ => {
            let rest = buf[end..].trim_start_matches(' ');
            let open_marker = rest.starts_with('[') && !rest.contains(']');
            (!open_marker).then_some(end)
        }
    }
}

/// Splits streamed text into complete sentences as they arrive (the form
/// of [`sentences`]: trimmed, without list bullets).
#[derive(Debug, Default)]
pub struct SentenceStream {
    buf: String,
}

impl SentenceStream {
    /// Adds a piece; returns the sentences it completed.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.buf.push_str(piece);
        let mut out = Vec::new();
        while let Some(end) = complete_end(&self.buf) {
            let done: String = self.buf.drain(..end).collect();
            out.extend(sentences(&done).into_iter().map(str::to_string));
        }
        out
    }
    /// What is left at the end.
    pub fn finish(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.buf);
        sentences(&rest).into_iter().map(str::to_string).collect()
    }
    /// Whole words waiting for a sentence end (a word the next piece may still continue does
    /// not count).
    pub fn pending_words(&self) -> usize {
        self.whole_words().split_whitespace().count()
    }
    /// Ends the stream before its text did: the whole words waiting (see
    /// [`SentenceStream::pending_words`]) as sentences, the last one possibly unfinished.
    pub fn cut(&mut self) -> Vec<String> {
        let rest = self.whole_words().to_string();
        self.buf.clear();
        sentences(&rest).into_iter().map(str::to_string).collect()
    }
    fn whole_words(&self) -> &str {
        match self.buf.rfind(char::is_whitespace) {
            Some(i) => &self.buf[..i],
            None => "",
        }
    }
}

#[cfg(test)]
mod tests;
