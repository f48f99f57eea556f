//! Routing: what kind of message this is (small talk, a question for the
//! knowledge base, out of scope), which chat model answers it and why, and
//! rewriting follow-ups ("and for part-time staff?") into standalone
//! questions with the conversation.

use serde::Serialize;
use tresor_kb::lang::Lang;
use tresor_llm::{ChatMessage, Role as MsgRole};

use crate::config::RoutingConfig;
use crate::text::{content_terms, language, normalise};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Greetings, thanks, "who are you": answered without the documents.
    SmallTalk,
    /// A question for the selected knowledge base.
    KbQuestion,
    /// A request the document assistant does not serve (weather, poems, ...).
    OutOfScope,
    /// No knowledge base selected: the model answers on its own, ungrounded.
    General,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::SmallTalk => "small_talk",
            Intent::KbQuestion => "kb_question",
            Intent::OutOfScope => "out_of_scope",
            Intent::General => "general",
        }
    }
}

const SMALL_TALK: &[&str] = &[
    "hi", "hello", "hey", "hallo", "moin", "servus", "guten morgen", "guten tag", "guten abend", "good morning",
    "good evening", "good afternoon", "thanks", "thank you", "thx", "danke", "danke schön", "vielen dank", "bye",
    "goodbye", "tschüss", "ciao", "who are you", "what are you", "wer bist du", "was bist du", "how are you",
    "wie geht's", "wie geht es dir", "ok", "okay", "cool", "great", "super", "prima",
];

const OUT_OF_SCOPE: &[&str] = &[
    "weather", "wetter", "write a poem", "schreib ein gedicht", "schreibe ein gedicht", "tell me a joke", "erzähl einen witz",
    "erzähl mir einen witz", "stock price", "aktienkurs", "latest news", "nachrichten von heute", "lottery", "lotto",
    "football score", "fußballergebnis",
];

/// Classifies a normalised message.
pub fn classify(q: &str, has_kb: bool) -> Intent {
    let lower = q.to_lowercase();
    let bare = lower.trim_end_matches(|c: char| c.is_ascii_punctuation() || c == ' ' || c == '!' || c == '?');
    let bare = bare.trim_start_matches(|c: char| c.is_ascii_punctuation() || c == ' ');
    if SMALL_TALK.iter().any(|s| {
        bare == *s || (bare.starts_with(s) && bare.len() <= s.len() + 12 && content_terms(bare, Lang::En).len() <= 3)
    }) {
        return Intent::SmallTalk;
    }
    if OUT_OF_SCOPE.iter().any(|s| lower.contains(s)) {
        return Intent::OutOfScope;
    }
    if has_kb {
        Intent::KbQuestion
    } else {
        Intent::General
    }
}

/// The canned reply to small talk, in the message's language.
pub fn small_talk_reply(q: &str, lang: Lang) -> String {
    let l = q.to_lowercase();
    let thanks = ["thank", "thx", "danke", "dank"].iter().any(|t| l.contains(t));
    let bye = ["bye", "tschüss", "ciao"].iter().any(|t| l.contains(t));
    let who = ["who are you", "what are you", "wer bist du", "was bist du"].iter().any(|t| l.contains(t));
    match (lang, thanks, bye, who) {
        (Lang::De, true, _, _) => "Gern geschehen! Fragen Sie mich gern noch etwas zu Ihren Dokumenten.".into(),
        (Lang::De, _, true, _) => "Auf Wiedersehen!".into(),
        (Lang::De, _, _, true) => "Ich bin Tresor, ein Assistent, der offline aus Ihren eigenen Dokumenten antwortet und die Quellen nennt.".into(),
        (Lang::De, ..) => "Hallo! Stellen Sie mir eine Frage zu Ihren Dokumenten.".into(),
        (_, true, _, _) => "You're welcome! Ask me anything else about your documents.".into(),
        (_, _, true, _) => "Goodbye!".into(),
        (_, _, _, true) => "I am Tresor, an assistant that answers offline from your own documents and cites its sources.".into(),
        _ => "Hello! Ask me a question about your documents.".into(),
    }
}

pub fn out_of_scope_reply(lang: Lang) -> String {
    match lang {
        Lang::De => "Das kann ich nicht beantworten: Ich antworte nur auf Fragen zu Ihren Dokumenten.".into(),
        Lang::En => "I can't help with that: I only answer questions about your documents.".into(),
    }
}

/// The "not found in your documents" answer.
pub fn not_found_reply(lang: Lang) -> String {
    match lang {
        Lang::De => "Dazu habe ich in Ihren Dokumenten keine Antwort gefunden.".into(),
        Lang::En => "I could not find an answer to this in your documents.".into(),
    }
}

/// Which chat model answers, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct RouteChoice {
    /// `chat-small`, `chat-premium`, or `explicit` (the caller named a model).
    pub role: String,
    pub reason: String,
}

pub fn choose_model(q: &str, cfg: &RoutingConfig, explicit: Option<&str>) -> RouteChoice {
    if let Some(m) = explicit {
        return RouteChoice { role: "explicit".into(), reason: format!("model `{m}` requested") };
    }
    let small = |reason: String| RouteChoice { role: "chat-small".into(), reason };
    let premium = |reason: String| RouteChoice { role: "chat-premium".into(), reason };
    if !cfg.enabled {
        return small("routing disabled".into());
    }
    let n_words = q.split_whitespace().count();
    if n_words >= cfg.premium_min_words {
        return premium(format!("long question ({n_words} words >= {})", cfg.premium_min_words));
    }
    let lower = q.to_lowercase();
    if let Some(k) = cfg.premium_keywords.iter().find(|k| lower.contains(k.to_lowercase().as_str())) {
        return premium(format!("high-risk keyword `{k}`"));
    }
    if cfg.premium_multi_part {
        let qmarks = q.matches('?').count();
        if qmarks >= 2 {
            return premium(format!("multi-part question ({qmarks} question marks)"));
        }
        if q.contains(';') || q.contains("\n-") || q.contains("1.") && q.contains("2.") {
            return premium("multi-part question (enumeration)".into());
        }
    }
    small(format!("short single question ({n_words} words)"))
}

const FOLLOW_UP_STARTS: &[&str] = &[
    "and ", "and?", "what about", "how about", "also ", "but ", "or ", "und ", "und?", "was ist mit", "wie ist es mit",
    "wie sieht es mit", "aber ", "oder ", "auch ",
];
const PRONOUNS: &[&str] = &["it", "that", "this", "they", "those", "them", "es", "das", "dies", "diese", "dieser", "dafür", "dazu", "davon"];

/// A follow-up rewritten with the previous user question, when it reads like
/// one (starts with "and/und/what about", or is short and leans on a
/// pronoun). Returns None when the question stands alone.
pub fn rewrite_follow_up(q: &str, history: &[ChatMessage]) -> Option<String> {
    let prev = history.iter().rev().find(|m| m.role == MsgRole::User)?;
    let lower = q.to_lowercase();
    let lang = language(q);
    let terms = content_terms(q, lang);
    let starts = FOLLOW_UP_STARTS.iter().any(|s| lower.starts_with(s));
    let words: Vec<String> = tresor_text::words(&lower).map(String::from).collect();
    let leans = words.iter().any(|w| PRONOUNS.contains(&w.as_str())) && terms.len() <= 3;
    if !(starts || leans || terms.len() <= 1) {
        return None;
    }
    let prev_q = normalise(&prev.content);
    let prev_q = prev_q.trim_end_matches(['?', '.', '!']).trim();
    let tail = q.trim();
    Some(format!("{prev_q} — {tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_small_talk_scope_and_questions() {
        assert_eq!(classify("Hallo!", true), Intent::SmallTalk);
        assert_eq!(classify("thanks a lot", true), Intent::SmallTalk);
        assert_eq!(classify("Who are you?", true), Intent::SmallTalk);
        assert_eq!(classify("What's the weather in Berlin?", true), Intent::OutOfScope);
        assert_eq!(classify("How many vacation days do I get?", true), Intent::KbQuestion);
        assert_eq!(classify("Hi, how many vacation days do full-time employees get per year?", true), Intent::KbQuestion);
        assert_eq!(classify("How many vacation days do I get?", false), Intent::General);
    }

    #[test]
    fn routes_by_rules_and_records_the_reason() {
        let cfg = RoutingConfig::default();
        let c = choose_model("How many vacation days?", &cfg, None);
        assert_eq!(c.role, "chat-small");
        let c = choose_model("How many vacation days? And who approves them?", &cfg, None);
        assert_eq!(c.role, "chat-premium");
        assert!(c.reason.contains("multi-part"), "{}", c.reason);
        let long = "word ".repeat(40);
        assert_eq!(choose_model(&long, &cfg, None).role, "chat-premium");
        assert_eq!(choose_model("Gilt die Kündigung sofort?", &cfg, None).role, "chat-premium");
        assert_eq!(choose_model("x", &cfg, Some("gemma")).role, "explicit");
        let off = RoutingConfig { enabled: false, ..cfg };
        assert_eq!(choose_model(&long, &off, None).role, "chat-small");
    }

    #[test]
    fn rewrites_follow_ups_only() {
        let h = vec![ChatMessage::user("How many vacation days do full-time employees get?"), ChatMessage::assistant("30 days.")];
        let r = rewrite_follow_up("and for part-time staff?", &h).unwrap();
        assert!(r.starts_with("How many vacation days do full-time employees get"), "{r}");
        assert!(r.ends_with("and for part-time staff?"));
        assert_eq!(rewrite_follow_up("What is the hotel limit in Munich for business trips?", &h), None);
        assert_eq!(rewrite_follow_up("and for part-time staff?", &[]), None);
    }
}
