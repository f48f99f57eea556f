//! The tokens the date, time and argument rules read: a message cut into
//! lowercase words, numbers and single punctuation marks, with their byte
//! spans in the original text, and number words in English and German.
//!
//! Owns: the token boundary of `understand` (a letter run and a digit run are
//! two tokens, so "11am", "3pm" and "16th" split) and the number words
//! ("vier", "forty-five", "fünfundvierzig"). Never: what a token means for a
//! date or a tool (see `when`, `extract`, `route`).

/// What a token is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    Num,
    Punct,
}

/// One token: lowercase text, byte span in the original, whether whitespace
/// came before it.
#[derive(Debug, Clone)]
pub struct Token {
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
    pub space_before: bool,
}

impl Token {
    pub fn is(&self, s: &str) -> bool {
        self.text == s
    }
    pub fn is_any(&self, list: &[&str]) -> bool {
        list.contains(&self.text.as_str())
    }
    /// The number of a digit token.
    pub fn num(&self) -> Option<u32> {
        if self.kind == Kind::Num && self.text.len() <= 6 {
            self.text.parse().ok()
        } else {
            None
        }
    }
    /// The number of a digit token or a number word.
    pub fn value(&self) -> Option<u32> {
        self.num().or_else(|| if self.kind == Kind::Word { number_word(&self.text) } else { None })
    }
}

fn class(c: char) -> Option<Kind> {
    if c.is_ascii_digit() {
        Some(Kind::Num)
    } else if c.is_alphabetic() {
        Some(Kind::Word)
    } else if c.is_whitespace() {
        None
    } else {
        Some(Kind::Punct)
    }
}

/// Cut `text` into tokens. Apostrophes inside a word stay in it ("o'clock",
/// "what's").
pub fn tokens(text: &str) -> Vec<Token> {
    let mut out: Vec<Token> = Vec::new();
    let mut space = true;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let Some(kind) = class(c) else {
            space = true;
            i += 1;
            continue;
        };
        let mut j = i + 1;
        if kind != Kind::Punct {
            while j < chars.len() {
                let c2 = chars[j].1;
                if class(c2) == Some(kind) {
                    j += 1;
                } else if kind == Kind::Word
                    && (c2 == '\'' || c2 == '’')
                    && j + 1 < chars.len()
                    && chars[j + 1].1.is_alphabetic()
                {
                    j += 2;
                } else {
                    break;
                }
            }
        }
        let end = if j < chars.len() { chars[j].0 } else { text.len() };
        out.push(Token {
            text: text[start..end].to_lowercase().replace('’', "'"),
            start,
            end,
            kind,
            space_before: space,
        });
        space = false;
        i = j;
    }
    out
}

const EN_UNITS: &[&str] = &[
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
];
const EN_TENS: &[(&str, u32)] =
    &[("twenty", 20), ("thirty", 30), ("forty", 40), ("fifty", 50), ("sixty", 60), ("seventy", 70), ("eighty", 80), ("ninety", 90)];
const DE_UNITS: &[(&str, u32)] = &[
    ("null", 0),
    ("eins", 1),
    ("ein", 1),
    ("eine", 1),
    ("einer", 1),
    ("einen", 1),
    ("einem", 1),
    ("zwei", 2),
    ("zwo", 2),
    ("drei", 3),
    ("vier", 4),
    ("fünf", 5),
    ("fuenf", 5),
    ("sechs", 6),
    ("sieben", 7),
    ("acht", 8),
    ("neun", 9),
    ("zehn", 10),
    ("elf", 11),
    ("zwölf", 12),
    ("zwoelf", 12),
    ("dreizehn", 13),
    ("vierzehn", 14),
    ("fünfzehn", 15),
    ("fuenfzehn", 15),
    ("sechzehn", 16),
    ("siebzehn", 17),
    ("achtzehn", 18),
    ("neunzehn", 19),
];
const DE_TENS: &[(&str, u32)] = &[
    ("zwanzig", 20),
    ("dreißig", 30),
    ("dreissig", 30),
    ("vierzig", 40),
    ("fünfzig", 50),
    ("fuenfzig", 50),
    ("sechzig", 60),
    ("siebzig", 70),
    ("achtzig", 80),
    ("neunzig", 90),
];

/// A number word 0–99 in English ("seven", "forty-five" as one token is not
/// possible — the tokenizer splits the hyphen; see [`number_at`]) or German
/// ("vier", "fünfundvierzig"). The articles "a"/"an" are not numbers here.
pub fn number_word(w: &str) -> Option<u32> {
    if let Some(i) = EN_UNITS.iter().position(|u| *u == w) {
        return Some(i as u32);
    }
    if let Some((_, n)) = EN_TENS.iter().chain(DE_TENS).find(|(t, _)| *t == w) {
        return Some(*n);
    }
    if let Some((_, n)) = DE_UNITS.iter().find(|(t, _)| *t == w) {
        return Some(*n);
    }
    // German compounds: "fünfundvierzig", "einundzwanzig"
    if let Some((unit, tens)) = w.split_once("und") {
        let u = DE_UNITS.iter().find(|(t, _)| *t == unit).map(|(_, n)| *n)?;
        let t = DE_TENS.iter().find(|(t, _)| *t == tens).map(|(_, n)| *n)?;
        if (1..=9).contains(&u) {
            return Some(t + u);
        }
    }
    None
}

/// The number starting at token `i` and how many tokens it spans: a digit
/// run, a number word, or an English compound ("forty-five", "forty five").
pub fn number_at(toks: &[Token], i: usize) -> Option<(u32, usize)> {
    let t = toks.get(i)?;
    let v = t.value()?;
    if t.kind == Kind::Word && (20..=90).contains(&v) && v % 10 == 0 {
        // "forty-five" / "forty five"
        let (next, span) = match toks.get(i + 1) {
            Some(h) if h.is("-") && !h.space_before => (toks.get(i + 2), 3),
            Some(_) => (toks.get(i + 1), 2),
            None => (None, 1),
        };
        if let Some(n) = next {
            if let Some(u) = EN_UNITS.iter().position(|u| *u == n.text) {
                if (1..=9).contains(&u) {
                    return Some((v + u as u32, span));
                }
            }
        }
    }
    Some((v, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_letters_from_digits_and_keeps_spans() {
        let t = tokens("Meet at 11am, 16.12. o'clock");
        let texts: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["meet", "at", "11", "am", ",", "16", ".", "12", ".", "o'clock"]);
        assert!(!t[3].space_before);
        assert_eq!(&"Meet at 11am, 16.12. o'clock"[t[0].start..t[0].end], "Meet");
    }

    #[test]
    fn umlauts_and_case() {
        let t = tokens("Übermorgen um HALB drei");
        assert_eq!(t[0].text, "übermorgen");
        assert_eq!(t[2].text, "halb");
    }

    #[test]
    fn number_words_en_de() {
        assert_eq!(number_word("vier"), Some(4));
        assert_eq!(number_word("zwölf"), Some(12));
        assert_eq!(number_word("fünfundvierzig"), Some(45));
        assert_eq!(number_word("einundzwanzig"), Some(21));
        assert_eq!(number_word("eleven"), Some(11));
        assert_eq!(number_word("ninety"), Some(90));
        assert_eq!(number_word("und"), None);
        assert_eq!(number_word("a"), None);
        let t = tokens("forty-five minutes");
        assert_eq!(number_at(&t, 0), Some((45, 3)));
        let t = tokens("twenty five");
        assert_eq!(number_at(&t, 0), Some((25, 2)));
        let t = tokens("twenty people");
        assert_eq!(number_at(&t, 0), Some((20, 1)));
    }
}
