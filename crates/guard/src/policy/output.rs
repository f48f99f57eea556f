//! The policy's output check on a streamed answer, sentence by sentence:
//! blocked terms (removed or masked), price promises, sentences in a language
//! the policy does not allow, the length cap; disclaimers at the end; and
//! what the policy says when it refuses or withholds.
//!
//! Owns: [`PolicyOutputCheck`] and the [`PolicyDecision`] it records (names
//! and counts only). Never: keeps user text beyond the answer it is given,
//! or judges injected instructions (that is
//! [`crate::injection::InjectionOutputGuard`]).

use serde::{Deserialize, Serialize};

use super::topics::{contains_term, on_word_boundaries};
use super::{BlockAction, Policy};

/// What the policy did to one answer. Names and counts only, never user text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyDecision {
    /// "allow", "refuse" or "modify".
    pub action: String,
    /// Why it refused: "topic", "language", "blocked_term" or "withheld".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The refused (or disclaimed) topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The closest active topic by similarity and its score (for calibration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest: Option<(String, f32)>,
    /// Topics whose disclaimers were added ("global" for the policy's own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disclaimers: Vec<String>,
    /// Answer sentences removed, by cause.
    #[serde(skip_serializing_if = "is_zero")]
    pub blocked_terms: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub price_promises: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub wrong_language: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl PolicyDecision {
    pub fn allow() -> Self {
        PolicyDecision { action: "allow".into(), ..Default::default() }
    }
    pub fn refuse(reason: &str) -> Self {
        PolicyDecision { action: "refuse".into(), reason: Some(reason.into()), ..Default::default() }
    }
    fn modified(&self) -> bool {
        self.blocked_terms + self.price_promises + self.wrong_language > 0 || self.truncated
    }
}

/// Sentence-level checks on a streamed answer: blocked terms, price
/// promises, language, length cap; disclaimers at the end. Feed it the
/// pieces as they stream ([`PolicyOutputCheck::push`]) and emit what it returns.
pub struct PolicyOutputCheck<'p> {
    policy: &'p Policy,
    lang: String,
    lang_of: Box<dyn Fn(&str) -> String + 'p>,
    buf: String,
    out: String,
    stopped: bool,
    seen_text: bool,
    pub decision: PolicyDecision,
    /// Topic disclaimers to add at the end.
    pub topic_disclaimers: Vec<String>,
    /// "No price outside the defined APIs": a sentence this returns true for states a price
    /// that did not come from the price tool in this turn; it is removed (counted as a price promise).
    pub unverified_price: Option<Box<dyn Fn(&str) -> bool + 'p>>,
}

impl<'p> PolicyOutputCheck<'p> {
    /// `lang`: the question's language; `lang_of`: a language detector ("de"/"en").
    pub fn new(policy: &'p Policy, lang: &str, lang_of: impl Fn(&str) -> String + 'p) -> Self {
        PolicyOutputCheck {
            policy,
            lang: lang.to_string(),
            lang_of: Box::new(lang_of),
            buf: String::new(),
            out: String::new(),
            stopped: false,
            seen_text: false,
            decision: PolicyDecision::allow(),
            topic_disclaimers: Vec::new(),
            unverified_price: None,
        }
    }

    /// The text emitted so far.
    pub fn text(&self) -> &str {
        &self.out
    }

    /// Takes a streamed piece; returns the text to emit now (whole sentences).
    pub fn push(&mut self, piece: &str) -> String {
        self.buf.push_str(piece);
        let mut emit = String::new();
        while let Some(end) = tresor_text::sentences::complete_end(&self.buf) {
            let s: String = self.buf.drain(..end).collect();
            emit.push_str(&self.sentence(&s));
        }
        emit
    }

    /// Flushes the rest; `refused`: the answer is a refusal (no disclaimers).
    pub fn finish(&mut self, refused: bool) -> String {
        let rest = std::mem::take(&mut self.buf);
        let mut emit = self.sentence(&rest);
        if self.seen_text && self.out.trim().is_empty() {
            // the checks removed everything
            let w = self.policy.withheld(&self.lang);
            self.decision.action = "refuse".into();
            self.decision.reason = Some("withheld".into());
            self.out.push_str(&w);
            emit.push_str(&w);
            return emit;
        }
        if !refused && !self.out.trim().is_empty() {
            let mut add: Vec<(String, String)> = Vec::new();
            for name in &self.topic_disclaimers {
                if let Some(t) = self.policy.topic(name) {
                    add.push((name.clone(), t.disclaimer.get(&self.lang).to_string()));
                }
            }
            if !self.policy.disclaimer.is_empty() {
                add.push(("global".into(), self.policy.disclaimer.get(&self.lang).to_string()));
            }
            for (name, text) in add {
                if text.is_empty() || self.out.contains(&text) {
                    continue;
                }
                let piece = format!("\n\n{text}");
                self.out.push_str(&piece);
                emit.push_str(&piece);
                self.decision.disclaimers.push(name);
            }
        }
        if self.decision.action == "allow" && (self.decision.modified() || !self.decision.disclaimers.is_empty()) {
            self.decision.action = "modify".into();
        }
        emit
    }

    fn sentence(&mut self, s: &str) -> String {
        if self.stopped || s.is_empty() {
            return String::new();
        }
        if !s.trim().is_empty() {
            self.seen_text = true;
        }
        let p = self.policy;
        let lower = s.to_lowercase();
        let mut s = s.to_string();
        let hit_terms: Vec<&String> = p.blocked_terms.iter().filter(|t| contains_term(&lower, t)).collect();
        if !hit_terms.is_empty() {
            self.decision.blocked_terms += 1;
            match p.blocked_action {
                BlockAction::Remove => return String::new(),
                BlockAction::Mask => {
                    for t in hit_terms {
                        s = mask_term(&s, t);
                    }
                }
            }
        }
        let unverified = self.unverified_price.as_ref().is_some_and(|f| states_money(&lower) && f(&lower));
        if unverified || (p.price_check_active() && is_price_promise(&lower, &p.price_words)) {
            self.decision.price_promises += 1;
            return String::new();
        }
        if s.split_whitespace().filter(|w| w.chars().any(char::is_alphabetic)).count() >= 4 {
            let l = (self.lang_of)(&s);
            if !p.allowed_languages.iter().any(|a| *a == l) {
                self.decision.wrong_language += 1;
                return String::new();
            }
        }
        let have = self.out.chars().count();
        let len = s.chars().count();
        if have + len > p.max_answer_chars {
            let room = p.max_answer_chars.saturating_sub(have + 1);
            let mut cut: String = s.chars().take(room).collect();
            if let Some(i) = cut.rfind(char::is_whitespace) {
                cut.truncate(i);
            }
            let cut = if cut.trim().is_empty() { String::new() } else { format!("{}…", cut.trim_end()) };
            self.decision.truncated = true;
            self.stopped = true;
            self.out.push_str(&cut);
            return cut;
        }
        self.out.push_str(&s);
        s
    }
}

fn mask_term(s: &str, term: &str) -> String {
    let lower = s.to_lowercase();
    if lower.len() != s.len() {
        // byte offsets differ after lowercasing: mask the whole sentence's term-bearing words instead
        return s.split(' ').map(|w| if contains_term(&w.to_lowercase(), term) { "[…]" } else { w }).collect::<Vec<_>>().join(" ");
    }
    let mut out = String::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(term) {
        let st = from + i;
        let e = st + term.len();
        if on_word_boundaries(&lower, st, e, false) {
            out.push_str(&s[from..st]);
            out.push_str("[…]");
        } else {
            out.push_str(&s[from..e]);
        }
        from = e;
    }
    out.push_str(&s[from..]);
    out
}

/// A sentence that names an amount of money (a currency sign or code next to a number).
pub fn states_money(lower: &str) -> bool {
    static MONEY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    MONEY
        .get_or_init(|| regex::Regex::new(r"(?i)([€$£]\s?\d)|(\d[\d.,]*\s?(€|\$|£|eur\b|euro\b|usd\b|dollars?\b|chf\b|gbp\b))").expect("valid regex"))
        .is_match(lower)
}

/// A sentence that names an amount of money together with a promise word.
pub fn is_price_promise(lower: &str, words: &[String]) -> bool {
    static MONEY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let money = MONEY.get_or_init(|| {
        regex::Regex::new(r"(?i)([€$£]\s?\d)|(\d[\d.,]*\s?(€|\$|£|eur\b|euro\b|usd\b|dollars?\b|chf\b|gbp\b))|(\d+\s?(%|prozent\b|percent\b)\s*(discount|rabatt|off\b|nachlass))")
            .expect("valid regex")
    });
    money.is_match(lower) && words.iter().any(|w| contains_term(lower, w))
}

impl Policy {
    /// Price promises are checked (and not lifted by an allowed tool).
    fn price_check_active(&self) -> bool {
        self.price_promises && !self.lifted(&self.price_unless_tool)
    }

    /// A question in a language the policy does not allow.
    pub fn language_refusal(&self, lang: &str) -> String {
        let allowed = self.allowed_languages.join(", ");
        if lang == "de" {
            format!("Diese Sprache ist laut Richtlinie nicht erlaubt (erlaubt: {allowed}).")
        } else {
            format!("The policy does not allow questions in this language (allowed: {allowed}).")
        }
    }

    /// A question that holds a blocked term.
    pub fn blocked_refusal(&self, lang: &str) -> String {
        if lang == "de" {
            "Diese Frage enthält einen Begriff, den die Richtlinie sperrt; ich beantworte sie nicht.".into()
        } else {
            "This question contains a term the policy blocks, so I won't answer it.".into()
        }
    }

    /// Every answer sentence was removed by the output checks.
    pub fn withheld(&self, lang: &str) -> String {
        if lang == "de" {
            "Die Antwort wurde zurückgehalten: sie verstieß gegen die Richtlinie (gesperrte Begriffe, Preiszusagen oder Sprache).".into()
        } else {
            "The answer was withheld: it broke the policy (blocked terms, price promises or language).".into()
        }
    }

    /// Whether the question holds a blocked term.
    pub fn has_blocked_term(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.blocked_terms.iter().any(|t| contains_term(&lower, t))
    }
}
