//! The engine's knobs, with defaults tuned on the sample knowledge base and
//! the dev gold set. Read from `assistant.toml` in the data dir when present
//! (every field optional); see [`AssistantConfig::load`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AssistantError, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AssistantConfig {
    /// Passages retrieved per question (before the evidence filter).
    pub retrieve_k: usize,
    /// At most this many passages go to the model.
    pub max_passages: usize,
    /// Context budget for the passages, in the chat model's tokens.
    pub context_tokens: usize,
    /// Evidence (0..1, lexical coverage of the question by a passage blended
    /// with embedding cosine) the best passage needs, else "not found".
    pub evidence_threshold: f32,
    /// A question that asks for a checkable fact (an amount, a date or time, a number, a duration:
    /// `choice::checkable`) is answered from this evidence up when a chosen sentence holds that
    /// kind of fact (`choice::answers_type`); below `evidence_threshold` nothing else is. Set it
    /// to `evidence_threshold` to turn this off.
    pub typed_evidence_threshold: f32,
    /// Also at or above `evidence_threshold`: "not found" when the question asks for a checkable
    /// fact and no chosen evidence sentence holds one (the passages are about the topic, not the
    /// fact). On by default since 2026-12-08: the patterns now know pence, cents, rents as a unit
    /// of money, clock times and ordinal days, the misses that kept it off (README, issue 18);
    /// turn it off to answer on topic even without the asked kind of fact.
    pub refuse_missing_answer_type: bool,
    /// A passage joins the context when its evidence is at least this share of the best one's.
    pub passage_relative_evidence: f32,
    /// "Not found" when an English question names something (a capitalised word inside a
    /// sentence: a country, product, person) that occurs nowhere in the knowledge base, or a
    /// question names a code (model, version, item number: `text::codes`) no retrieved passage
    /// mentions.
    pub refuse_unknown_names: bool,
    /// An answer sentence keeps its place when its support (lexical + cosine
    /// against the best passage) reaches this.
    pub support_threshold: f32,
    /// Weight of lexical overlap in evidence and support (the rest is cosine).
    pub lexical_weight: f32,
    /// Tokens the model may write.
    pub max_answer_tokens: usize,
    /// Stop generating after this many unsupported sentences in a row once a supported one was
    /// shown; before that, the first unsupported sentence stops it (engine/validate.rs).
    pub max_unsupported_run: usize,
    /// A first answer sentence that runs this many words without ending is decided on as it
    /// stands (shown when it is supported and states the chosen evidence, else the extractive
    /// answer) and the model is stopped, so the first visible text never waits longer than this
    /// many words after the model's first token (engine/validate.rs). 0: no cap.
    pub first_sentence_max_words: usize,
    /// Sentences an extractive fallback answer takes from the passages.
    pub extractive_sentences: usize,
    /// When no sentence of the model's answer is supported: ask the model once more with a
    /// stricter prompt and only the best passage before falling back to extraction (off by
    /// default: it did not help SmolLM2-135M on the dev gold set).
    pub regenerate: bool,
    /// Sampling temperature (0 = greedy, reproducible).
    pub temperature: f32,
    /// Conversation history budget in tokens (older turns are summarised by the model).
    pub history_tokens: usize,
    /// Most tokens the model may write for that summary.
    pub history_summary_tokens: usize,
    pub cache: CacheConfig,
    pub routing: RoutingConfig,
    /// The prompt-injection firewall (`[injection]`, see `firewall.rs`).
    pub injection: crate::firewall::InjectionConfig,
    /// Tools and actions (`[tools]`, see `act/`): opening hours, how the model fills arguments.
    pub tools: crate::act::ToolsConfig,
    /// Events and KPIs (`[telemetry]`: retention, question text opt-in, variant, cost table; docs/events.md).
    pub telemetry: tresor_telemetry::TelemetryConfig,
    /// Human handoff and CSAT (`[handoff]`, see `handoff/`, docs/handoff.md): target, redaction, offer and idle rules.
    pub handoff: crate::handoff::HandoffConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Cosine between normalised question embeddings for a hit.
    pub similarity_threshold: f32,
    /// Entries kept per knowledge base (oldest dropped first).
    pub max_entries: usize,
}

/// Rules for chat-small vs chat-premium. The shipped premium model
/// (Gemma-3-270M) is a pre-trained base model, not instruction-tuned, so the
/// defaults send it only long or multi-part questions, where its larger size
/// helps most; everything else goes to SmolLM2-135M-Instruct.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingConfig {
    /// Off: every question goes to chat-small.
    pub enabled: bool,
    /// Questions with at least this many words go to chat-premium.
    pub premium_min_words: usize,
    /// Questions with several parts (two question marks, enumerations) go to chat-premium.
    pub premium_multi_part: bool,
    /// Words that mark a high-risk question (legal, medical, money); any one sends it to chat-premium.
    pub premium_keywords: Vec<String>,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        AssistantConfig {
            retrieve_k: 6,
            max_passages: 3,
            context_tokens: 400,
            // with term weights (idf) the dev set's answerable questions start at 0.46 and three of
            // its four unanswerable ones end at 0.42; 0.48 was the unweighted score's threshold
            evidence_threshold: 0.45,
            // set on the fit halves of the answer gold sets (README, "Answers on unseen documents")
            typed_evidence_threshold: 0.35,
            refuse_missing_answer_type: true,
            passage_relative_evidence: 0.7,
            refuse_unknown_names: true,
            support_threshold: 0.55,
            lexical_weight: 0.6,
            max_answer_tokens: 80,
            max_unsupported_run: 2,
            // the dev documents' sentences: p90 29 words, p99 53 (rag_goldset_dev); the sample
            // knowledge base's at most 28; a restatement that runs past 40 has stopped answering
            first_sentence_max_words: 40,
            extractive_sentences: 2,
            // measured on the dev gold set's first 15 questions: the second try answered 1 of the 8
            // it ran for, that one worse than the extractive fallback (F1 0.41 -> 0.40), at twice
            // the time; kept as a setting, off by default
            regenerate: false,
            temperature: 0.0,
            history_tokens: 400,
            history_summary_tokens: 60,
            cache: CacheConfig::default(),
            routing: RoutingConfig::default(),
            injection: crate::firewall::InjectionConfig::default(),
            tools: crate::act::ToolsConfig::default(),
            telemetry: tresor_telemetry::TelemetryConfig::default(),
            handoff: crate::handoff::HandoffConfig::default(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { enabled: true, similarity_threshold: 0.95, max_entries: 2000 }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            enabled: true,
            premium_min_words: 30,
            premium_multi_part: true,
            premium_keywords: ["lawsuit", "klage", "kündigung", "termination", "diagnosis", "diagnose", "gdpr", "dsgvo"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl AssistantConfig {
    /// `assistant.toml` in `data_dir` when it exists, else the defaults.
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = data_dir.join("assistant.toml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text).map_err(|reason| AssistantError::Config { path, reason }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(AssistantError::Io { path, source }),
        }
    }

    pub fn from_toml(text: &str) -> std::result::Result<Self, String> {
        let cfg: AssistantConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, v) in [
            ("evidence_threshold", self.evidence_threshold),
            ("typed_evidence_threshold", self.typed_evidence_threshold),
            ("support_threshold", self.support_threshold),
            ("lexical_weight", self.lexical_weight),
            ("passage_relative_evidence", self.passage_relative_evidence),
            ("cache.similarity_threshold", self.cache.similarity_threshold),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1 (got {v})"));
            }
        }
        if self.max_passages == 0 || self.retrieve_k == 0 || self.context_tokens < 32 || self.max_answer_tokens == 0 {
            return Err("retrieve_k, max_passages and max_answer_tokens must be at least 1, context_tokens at least 32".into());
        }
        self.handoff.validate()?;
        self.telemetry.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_keeps_defaults_and_bad_values_are_rejected() {
        let c = AssistantConfig::from_toml("evidence_threshold = 0.5\n[cache]\nsimilarity_threshold = 0.9\n").unwrap();
        assert_eq!(c.evidence_threshold, 0.5);
        assert_eq!(c.cache.similarity_threshold, 0.9);
        assert!(c.cache.enabled);
        assert_eq!(c.max_passages, AssistantConfig::default().max_passages);
        let e = AssistantConfig::from_toml("support_threshold = 2.0").unwrap_err();
        assert!(e.contains("support_threshold"), "{e}");
        assert!(AssistantConfig::from_toml("nonsense = [").is_err());
    }
}
