//! The answer pipeline's side of the prompt-injection firewall
//! (tresor-guard): screens the user's prompt (warn or block), screens the
//! retrieved passages before packing (a knowledge base ingested before
//! screening, or a chunk let through with `warn`), and checks each answer
//! sentence after generation. Owns the `[injection]` settings and what the
//! trace records; the detection logic is tresor-guard's, and this module never
//! changes retrieval or citations.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tresor_guard::injection::neutralise::neutralise;
use tresor_guard::injection::output::Finding;
use tresor_guard::injection::{Detector, InjectionAction, InjectionOutputGuard, Marking, OutputAction, Verdict};
use tresor_guard::policy::Policy;
use tresor_kb::TextEmbedder;

use crate::pack::Passage;

/// `[injection]` in assistant.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct InjectionConfig {
    /// Off: no screening, no spotlighting, no output check.
    pub enabled: bool,
    /// A user prompt with instruction-like content: `warn` (answer, recorded
    /// in the trace) or `block` (refused).
    pub prompt: InjectionAction,
    /// A retrieved passage flagged at answer time: `warn` keeps it (the
    /// output check still runs), anything else leaves it out of the prompt.
    pub passages: InjectionAction,
    /// How passages are marked in the prompt: lines | words | off.
    pub spotlight: Marking,
    /// Check every answer sentence for followed injected instructions,
    /// system-prompt leaks and exfiltration links.
    pub output_check: bool,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        InjectionConfig {
            enabled: true,
            prompt: InjectionAction::Warn,
            passages: InjectionAction::Drop,
            spotlight: Marking::Lines,
            output_check: true,
        }
    }
}

/// What ingestion does with a chunk the detector flags: the policy's action
/// (built-in: `quarantine`).
pub fn ingest_action(policy: &Policy) -> InjectionAction {
    policy.injection_action
}

/// The `[injection]` settings in force for answers: assistant.toml's, unless a
/// policy file (admin or user) set `[injection] action`, which then decides —
/// `block` blocks flagged prompts, `warn` keeps flagged passages, and
/// `drop`/`quarantine` warn on prompts and leave flagged passages out (the
/// built-in policy's `quarantine` maps to assistant.toml's defaults).
pub fn in_force(cfg: &InjectionConfig, policy: &Policy) -> InjectionConfig {
    let mut c = cfg.clone();
    if policy.origin.get("injection").is_some_and(|o| o != "built-in") {
        let a = policy.injection_action;
        c.prompt = if a == InjectionAction::Block { InjectionAction::Block } else { InjectionAction::Warn };
        c.passages = if a == InjectionAction::Warn { InjectionAction::Warn } else { InjectionAction::Drop };
    }
    c
}

/// What the firewall did for one answer (in `trace.injection`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct InjectionTrace {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Verdict>,
    /// `warn` or `block` when the prompt was flagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_action: Option<String>,
    pub passages: Vec<FlaggedPassage>,
    /// What injected instructions in the packed passages asked the model to output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payloads: Vec<String>,
    pub output: Vec<OutputFinding>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlaggedPassage {
    pub chunk_id: i64,
    pub source: String,
    pub score: f32,
    pub reasons: Vec<String>,
    /// `drop` (left out of the prompt), `cut` (kept without its injected
    /// sentences, listed in `cut`) or `warn` (kept).
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cut: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputFinding {
    pub sentence: String,
    /// `strip` or `refuse` (the sentence was not shown).
    pub action: String,
    pub findings: Vec<Finding>,
}

/// The shipped detector, built once.
pub fn detector() -> Option<&'static Detector> {
    static D: OnceLock<Option<Detector>> = OnceLock::new();
    D.get_or_init(|| Detector::shipped().map_err(|e| tracing::warn!("injection detector unavailable: {e}")).ok()).as_ref()
}

/// Scores the user's prompt (classifier when `embedder` is the one the weights were trained on).
pub fn screen_prompt(q: &str, embedder: &dyn TextEmbedder) -> Option<Verdict> {
    let det = detector()?;
    if det.embed_model() == embedder.model_id() {
        let w = det.windows(q);
        let refs: Vec<&str> = w.iter().map(String::as_str).collect();
        if let Ok(v) = embedder.embed(&refs) {
            if let Ok(v) = det.detect(q, &v) {
                return Some(v);
            }
        }
    }
    Some(det.detect_rules_only(q))
}

/// Screens retrieved passages (their stored embeddings feed the classifier);
/// flagged ones are recorded and, unless the policy says `warn`, kept without
/// their injected sentences when those can be cut, otherwise removed.
pub fn screen_passages(scored: Vec<Passage>, embedder: &dyn TextEmbedder, cfg: &InjectionConfig, trace: &mut InjectionTrace) -> Vec<Passage> {
    let Some(det) = detector() else { return scored };
    let use_clf = det.embed_model() == embedder.model_id();
    let keep_flagged = cfg.passages == InjectionAction::Warn;
    scored
        .into_iter()
        .filter_map(|mut p| {
            let v = if use_clf { det.detect_one(&p.text, &p.embedding).ok() } else { None }.unwrap_or_else(|| det.detect_rules_only(&p.text));
            if !v.injection {
                return Some(p);
            }
            // the passage's own facts stay: its injected sentences are cut (issue #18)
            let repaired = if keep_flagged { None } else { neutralise(&p.text).filter(|n| n.text.split_whitespace().count() >= 3) };
            let action = if keep_flagged { "warn" } else if repaired.is_some() { "cut" } else { "drop" };
            trace.passages.push(FlaggedPassage {
                chunk_id: p.hit.chunk_id,
                source: p.hit.source.clone(),
                score: v.score,
                reasons: v.reasons,
                action: action.into(),
                cut: repaired.as_ref().map(|n| n.cut.clone()).unwrap_or_default(),
            });
            match repaired {
                Some(n) => {
                    p.text = n.text;
                    Some(p)
                }
                None if keep_flagged => Some(p),
                None => None,
            }
        })
        .collect()
}

/// The output guard for the packed passages and the system prompt.
pub fn output_guard(system_prompt: &str, passages: &[Passage], trace: &mut InjectionTrace) -> InjectionOutputGuard {
    let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
    let g = InjectionOutputGuard::new(system_prompt, &texts);
    trace.payloads = g.payloads().to_vec();
    g
}

/// Checks one answer sentence: `Some(text)` to keep (possibly stripped), None to drop it.
pub fn check_sentence(g: &InjectionOutputGuard, sentence: &str, trace: &mut InjectionTrace) -> Option<String> {
    let c = g.check(sentence);
    match c.action {
        OutputAction::Pass => Some(sentence.to_string()),
        OutputAction::Strip => {
            trace.output.push(OutputFinding { sentence: sentence.to_string(), action: "strip".into(), findings: c.findings });
            Some(c.text)
        }
        OutputAction::Refuse => {
            trace.output.push(OutputFinding { sentence: sentence.to_string(), action: "refuse".into(), findings: c.findings });
            None
        }
    }
}

/// A tool turn's words are the engine's own, but the values it quotes come
/// from a tool's result — untrusted data (an order's status, an MCP server's
/// answer). Every string value of the results that carries an instruction
/// (the detector's rules, or a payload such an instruction asks for) or a URL
/// is withheld from the text; what remains passes the output guard's link
/// and image filter like an answer's sentence. Returns the text to show.
pub fn guard_tool_text(text: &str, results: &[&serde_json::Value], german: bool, trace: &mut InjectionTrace) -> String {
    let mut values = Vec::new();
    for r in results {
        string_leaves(r, &mut values);
    }
    let det = detector();
    let mut out = text.to_string();
    for v in &values {
        let flagged = det.is_some_and(|d| d.detect_rules_only(v).injection)
            || !tresor_guard::injection::output::injected_payloads(v).is_empty()
            || v.contains("://")
            || v.to_lowercase().contains("www.");
        if flagged && out.contains(v.as_str()) {
            let withheld = if german { "[zurückgehalten: der Wert des Werkzeugs enthielt Anweisungen oder einen Link]" } else { "[withheld: the tool's value carried instructions or a link]" };
            trace.output.push(OutputFinding {
                sentence: v.chars().take(200).collect(),
                action: "strip".into(),
                findings: vec![Finding { kind: "tool_result_injection".into(), detail: "a tool result value carried instructions or a link; withheld".into() }],
            });
            out = out.replace(v.as_str(), withheld);
        }
    }
    let texts: Vec<&str> = values.iter().map(String::as_str).collect();
    let g = InjectionOutputGuard::new("", &texts);
    match check_sentence(&g, &out, trace) {
        Some(t) => t,
        None => {
            if german {
                "Das Ergebnis des Werkzeugs enthielt Anweisungen an den Assistenten und wird nicht angezeigt.".into()
            } else {
                "The tool's result carried instructions to the assistant and is not shown.".into()
            }
        }
    }
}

fn string_leaves(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| string_leaves(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| string_leaves(x, out)),
        _ => {}
    }
}

/// The localised refusal for a blocked prompt.
pub fn blocked_reply(german: bool) -> String {
    if german {
        "Diese Anfrage enthält Anweisungen an das System (Prompt-Injection) und wird nicht beantwortet.".into()
    } else {
        "This request contains instructions aimed at the system (prompt injection) and will not be answered.".into()
    }
}
