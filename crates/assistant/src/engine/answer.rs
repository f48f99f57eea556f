//! What an answer is: the request, the answer with its sources, timings,
//! token counts and the trace of every stage (the `--json` / API contract).
//!
//! Owns: these types and their JSON field names. Never: how they are filled.

use serde::{Deserialize, Serialize};
use tresor_kb::retrieve::Trace as RetrievalTrace;
use tresor_llm::ChatMessage;
use std::sync::Arc;

use crate::cite::SentenceCheck;
use crate::firewall;
use crate::pack::PackReport;
use super::ModelChoice;

#[derive(Debug, Clone, Default)]
pub struct AskRequest {
    pub question: String,
    /// The knowledge base to answer from; None: the model answers alone (ungrounded).
    pub kb: Option<String>,
    /// Earlier turns (ignored when `thread` is set: the thread's turns are used).
    pub history: Vec<ChatMessage>,
    /// A stored thread: its history is used and this turn is saved to it.
    pub thread: Option<i64>,
    /// A chat model id or path instead of the routed one.
    pub model: Option<String>,
    /// Skip the semantic cache (neither read nor written).
    pub no_cache: bool,
    /// Set to true to stop generation early (the desktop app's stop button);
    /// the answer keeps what was streamed so far and no extractive fallback runs.
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Who asks, for the audit log: an API token id (`token:…`); None: the OS user.
    pub actor: Option<String>,
    /// "Now" for relative dates and times in tool calls ("tomorrow at 10"); None: the clock.
    pub now: Option<jiff::Timestamp>,
    /// Run side-effect tools without stopping at `needs_confirmation` (the user said yes up front).
    pub yes: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Source {
    pub n: usize,
    /// The file path as ingested.
    pub source: String,
    pub title: String,
    pub heading: String,
    pub page: Option<u32>,
    pub snippet: String,
    pub chunk_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Timings {
    /// Request start to the first token the user sees: the first validated sentence, the
    /// extractive fallback's first sentence or the refusal (cache hits and canned answers: to the
    /// answer). The model's own first token is `model_first_token_ms`.
    pub ttft_ms: f64,
    /// Request start to the chat model's first generated token (0 when no model ran); text the
    /// validation drops is never shown, so this can be much earlier than `ttft_ms`.
    pub model_first_token_ms: f64,
    pub total_ms: f64,
    /// Question embedding, cache lookup, hybrid search (+ rerank).
    pub retrieve_ms: f64,
    /// Evidence scoring and context packing.
    pub pack_ms: f64,
    /// Loading the chat model (first use only).
    pub load_ms: f64,
    pub prefill_ms: f64,
    /// Model time: prefill plus decoding.
    pub generate_ms: f64,
    /// Citation alignment (embedding and scoring answer sentences).
    pub validate_ms: f64,
    /// Everything but model load, prefill and decode.
    pub pipeline_ms: f64,
    /// Parts of the pipeline share (a profile; they overlap nothing and do not add up to it exactly):
    /// admin-policy checks before generation (topic similarity included).
    pub policy_ms: f64,
    /// Injection firewall: prompt screen, passage screen, output-guard set-up.
    pub firewall_ms: f64,
    /// Embedding the question (once; every later step reuses the vector).
    pub embed_ms: f64,
    /// Semantic-cache lookup and store.
    pub cache_ms: f64,
    /// tresor-kb hybrid search (BM25, vector, rerank) and fetching the passages' vectors.
    pub search_ms: f64,
    /// Writing the answer down: audit entry, thread messages.
    pub record_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Tokens {
    pub prompt: usize,
    pub completion: usize,
    /// Passage tokens packed into the prompt.
    pub context: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PassageTrace {
    pub source: String,
    pub chunk_id: i64,
    pub lexical: f32,
    pub cosine: f32,
    pub evidence: f32,
    pub tokens: usize,
    pub packed: bool,
    /// Question terms the passage does not hold, most specific first.
    pub missing_terms: Vec<String>,
}

// TypeScript (the `ts` feature): the deep engine traces (retrieval, packing, citation
// checks, history, policy, firewall) are `unknown` there: the UI shows none of them, and
// their crates stay free of ts-rs.
#[derive(Debug, Clone, Serialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Trace {
    /// The standalone question a follow-up was rewritten into.
    pub rewritten: Option<String>,
    pub kb: Option<String>,
    pub kb_version: Option<String>,
    pub evidence: Option<f32>,
    pub evidence_threshold: Option<f32>,
    /// Names in the question (capitalised words of an English question) that occur nowhere in the
    /// knowledge base, and codes (model, version, item numbers: `text::codes`) that no retrieved
    /// passage mentions: its documents cannot say anything about them, so the answer is "not found".
    pub unknown_names: Vec<String>,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub retrieval: Option<RetrievalTrace>,
    pub passages: Vec<PassageTrace>,
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub pack: Option<PackReport>,
    /// Every answer sentence the model wrote, with its support and fate.
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub sentences: Vec<SentenceCheck>,
    /// The model's text had no supported sentence; the answer was extracted from the passages.
    pub extractive: bool,
    /// The kind of fact the question asks for (`choice.rs`): amount, date, name, number, duration or any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "string", optional))]
    pub answer_type: Option<crate::choice::AnswerType>,
    /// Why the answer is "not in your documents", when the engine decided so before the model
    /// wrote anything: `evidence` (no passage reached the evidence threshold), `unknown_names`,
    /// or `answer_type` (the question asks for an amount, date, number or duration and no chosen
    /// sentence holds one).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub refusal: Option<String>,
    /// The passage sentences chosen as the answer's evidence (shown to the model, and the
    /// extractive answer when its text is not supported), best first, with their features.
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub evidence_sentences: Vec<crate::choice::Candidate>,
    /// The model was stopped at its first unsupported sentence (the fallback was shown at once).
    pub stopped_early: bool,
    /// The first answer had no supported sentence, so the model answered once more with a stricter
    /// prompt and only the best passage (before any extractive fallback); `sentences` holds both tries.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub regeneration: Option<Regeneration>,
    /// The conversation did not fit `history_tokens`: its older turns were summarised (history.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "unknown", optional))]
    pub history: Option<crate::history::HistoryTrace>,
    pub finish: Option<String>,
    pub cache_similarity: Option<f32>,
    pub cached_question: Option<String>,
    /// What the admin policy decided (see `policy.rs`): topic, refusal, removed sentences, disclaimers.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "unknown", optional))]
    pub policy: Option<tresor_guard::policy::PolicyDecision>,
    /// What the prompt-injection firewall found and did (prompt, passages, answer sentences).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(type = "unknown", optional))]
    pub injection: Option<firewall::InjectionTrace>,
    /// Which backend wrote the model's text: local, or a remote server — and, when the
    /// local model stood in for a failed or circuit-broken remote one, why (`remote/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "ts", ts(optional))]
    pub backend: Option<crate::remote::BackendTrace>,
}

/// The second, stricter try (see [`Trace::regeneration`]).
#[derive(Debug, Clone, Serialize, Default)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Regeneration {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Sentences the second try wrote, and of those (the first try had none) kept.
    pub sentences: usize,
    pub kept: usize,
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Answer {
    pub answer: String,
    pub sources: Vec<Source>,
    /// Every sentence of the answer is supported by a cited passage.
    pub grounded: bool,
    /// The assistant declined: not found in the documents, or out of scope.
    pub refused: bool,
    /// The chat model that wrote it ("none" when no model ran).
    pub model: String,
    pub cache_hit: bool,
    /// small_talk | kb_question | out_of_scope | general
    pub route: String,
    /// Which model role was chosen and why.
    pub routing: ModelChoice,
    pub lang: String,
    pub timings: Timings,
    pub tokens: Tokens,
    pub thread_id: Option<i64>,
    pub message_id: Option<i64>,
    /// Tool calls of this turn (`[]` when the message needed none): `{id, tool, arguments,
    /// status, result, error, missing}`, status needs_input | needs_confirmation | succeeded |
    /// failed | declined | timed_out.
    #[cfg_attr(
        feature = "ts",
        ts(type = "Array<{ id: string, tool: string, arguments: Record<string, unknown>, status: 'needs_input' | 'needs_confirmation' | 'succeeded' | 'failed' | 'declined' | 'timed_out', result: unknown, error: string | null, missing: Array<string> }>")
    )]
    pub actions: Vec<tresor_tools::actions::Action>,
    /// Offer the user a human: the assistant refused for the second time in this conversation
    /// (`[handoff] offer_after_refusals`). The offer's text: `tresor_assistant::handoff::offer_text`.
    pub offer_handoff: bool,
    /// The conversation ended with this message ("thanks, bye"): ask for a 1-5 rating now (once per conversation).
    pub ask_csat: bool,
    /// The user asked for a human: the ticket and what happens next (route `handoff`).
    pub handoff: Option<crate::handoff::HandoffReceipt>,
    pub trace: Trace,
    /// The release that answered (`tresor release`), else the workspace's `[telemetry] variant` label.
    #[serde(default)]
    pub variant: String,
}

/// What the cache keeps of an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedAnswer {
    pub(crate) answer: String,
    pub(crate) sources: Vec<Source>,
    pub(crate) grounded: bool,
    pub(crate) refused: bool,
    pub(crate) model: String,
    pub(crate) route: String,
    pub(crate) routing: ModelChoice,
    pub(crate) lang: String,
    pub(crate) tokens: Tokens,
}

/// Counters for `/api/metrics`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Metrics {
    pub answers: u64,
    pub refused: u64,
    pub grounded: u64,
    pub extractive: u64,
    pub cache_hits: u64,
    pub ttft_ms_sum: f64,
    pub total_ms_sum: f64,
}

