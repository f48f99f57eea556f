//! The admin policy around the answer pipeline, and the audit record of
//! every answer.
//!
//! Owns: loading the effective policy for the data dir (tresor-guard's
//! layering: built-in ← admin ← user), the example-prompt index for topic
//! detection (embedded once with the assistant's embedder, cached in
//! `<data_dir>/policy-index.json` keyed by embedder and examples), the checks
//! before generation (language, blocked terms, refused topics → a localised
//! refusal that names the topic and why), settling the streamed answer after
//! tresor-guard's [`PolicyOutputCheck`] (blocked terms, price promises, language,
//! length, disclaimers), and one audit entry per answer and per knowledge-base
//! change. The decision goes into `trace.policy`.
//! Never: writes question or answer text to the audit log (a keyed question
//! id, source paths through `redact::for_log`, names and counts only), or
//! answers when the policy or the audit log cannot be loaded or written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tresor_guard::audit::{os_actor, AuditLog, Event};
use tresor_guard::policy::{Policy, PolicyDecision, PolicyOutputCheck, PolicyPaths, TopicAction, TopicIndex};
use tresor_kb::lang::Lang;
use tresor_kb::TextEmbedder;

use crate::engine::{Answer, AskRequest, Assistant, Timings, Tokens, Trace};
use crate::error::{AssistantError, Result};
use crate::route::RouteChoice;
use crate::text::language;

const INDEX_FILE: &str = "policy-index.json";

/// The policy in force for one data dir, its topic index and its audit log.
pub struct PolicyGate {
    pub policy: Arc<Policy>,
    index: Option<TopicIndex>,
    index_cache: PathBuf,
    audit: AuditLog,
    workspace: String,
}

/// What the checks before generation found.
#[derive(Debug, Clone, Default)]
pub struct Precheck {
    /// The localised refusal, when the question is refused.
    pub refusal: Option<String>,
    pub decision: PolicyDecision,
    /// Topics (action = "disclaimer") whose disclaimers the answer gets.
    pub disclaimers: Vec<String>,
}

impl Precheck {
    /// The sentence-level checks for this answer.
    pub fn output_guard<'p>(&self, policy: &'p Policy, lang: Lang) -> PolicyOutputCheck<'p> {
        let mut g = PolicyOutputCheck::new(policy, lang.as_str(), |s: &str| language(s).as_str().to_string());
        g.topic_disclaimers = self.disclaimers.clone();
        g
    }
}

/// The effective policy for `data_dir` (admin policy and keys from the system locations or
/// `TRESOR_POLICY` / `TRESOR_ADMIN_KEYS`): where the engine reads it (one read per engine).
pub(crate) fn load_policy(data_dir: &Path) -> Result<Policy> {
    #[cfg(test)]
    POLICY_READS.with(|n| n.set(n.get() + 1));
    Ok(PolicyPaths::for_data_dir(data_dir).load()?)
}

#[cfg(test)]
thread_local! {
    /// How often this thread read the policy (tests: `Assistant::open` reads it once).
    pub(crate) static POLICY_READS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl PolicyGate {
    /// The effective policy for `data_dir` ([`load_policy`]).
    pub fn load(data_dir: &Path) -> Result<PolicyGate> {
        Ok(PolicyGate::new(load_policy(data_dir)?, data_dir))
    }

    /// The workspace name the audit log records.
    pub fn workspace(&self) -> &str {
        &self.workspace
    }

    /// The same gate, recording `name` as the workspace (a release's policy gate).
    pub(crate) fn with_workspace(mut self, name: &str) -> PolicyGate {
        self.workspace = name.to_string();
        self
    }

    pub fn new(policy: Policy, data_dir: &Path) -> PolicyGate {
        PolicyGate {
            policy: Arc::new(policy),
            index: None,
            index_cache: data_dir.join(INDEX_FILE),
            audit: AuditLog::for_data_dir(data_dir),
            workspace: "default".into(),
        }
    }

    /// The example prompts' embeddings: from the cache file when it matches
    /// this embedder and these examples, else embedded now (and cached).
    fn index(&mut self, embedder: &dyn TextEmbedder) -> &TopicIndex {
        if self.index.is_none() {
            let key = index_key(&self.policy, embedder);
            let cached = std::fs::read(&self.index_cache)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .filter(|v| v["key"] == key.as_str())
                .and_then(|v| serde_json::from_value::<Vec<Vec<f32>>>(v["vectors"].clone()).ok());
            let mut from_cache = cached.map(|v| v.into_iter());
            let idx = self.policy.index(|texts| match from_cache.as_mut() {
                Some(it) => {
                    let v: Vec<Vec<f32>> = it.by_ref().take(texts.len()).collect();
                    if v.len() == texts.len() {
                        Ok(v)
                    } else {
                        embedder.embed(texts).map_err(|e| e.to_string())
                    }
                }
                None => embedder.embed(texts).map_err(|e| e.to_string()),
            });
            let fresh = from_cache.is_none();
            let idx = match idx {
                Ok(i) => i,
                Err(e) => {
                    // keywords still apply; say so rather than fail every question
                    tracing::warn!("policy: embedding the topic examples failed ({e}); topic detection uses keywords only");
                    TopicIndex::default()
                }
            };
            if fresh && !idx.is_empty() {
                let body = json!({ "key": key, "vectors": idx.vectors() });
                let tmp = self.index_cache.with_extension("json.tmp");
                if std::fs::write(&tmp, body.to_string()).is_ok() {
                    let _ = std::fs::rename(&tmp, &self.index_cache);
                }
            }
            self.index = Some(idx);
        }
        self.index.as_ref().expect("set above")
    }

    /// Language, blocked terms and refused topics, before anything runs.
    pub fn precheck(&mut self, q: &str, lang: Lang, embedder: &dyn TextEmbedder) -> Precheck {
        let policy = self.policy.clone();
        let l = lang.as_str();
        if !policy.allowed_languages.iter().any(|a| a == l) {
            return Precheck { refusal: Some(policy.language_refusal(l)), decision: PolicyDecision::refuse("language"), ..Default::default() };
        }
        if policy.has_blocked_term(q) {
            return Precheck { refusal: Some(policy.blocked_refusal(l)), decision: PolicyDecision::refuse("blocked_term"), ..Default::default() };
        }
        let qvec = if policy.active_topics().any(|t| !t.examples_de.is_empty() || !t.examples_en.is_empty()) {
            embedder.embed(&[q]).ok().and_then(|mut v| v.pop())
        } else {
            None
        };
        let index = self.index(embedder);
        let (hits, nearest) = policy.detect_topics(index, q, qvec.as_deref());
        let mut pre = Precheck { decision: PolicyDecision { nearest, ..PolicyDecision::allow() }, ..Default::default() };
        if let Some(h) = hits.iter().find(|h| h.action == TopicAction::Refuse) {
            pre.refusal = Some(policy.refusal(&h.topic, l));
            pre.decision.action = "refuse".into();
            pre.decision.reason = Some("topic".into());
            pre.decision.topic = Some(h.topic.clone());
            pre.decision.via = Some(h.via.clone());
            pre.decision.score = Some(h.score);
            return pre;
        }
        pre.disclaimers = hits.iter().filter(|h| h.action == TopicAction::Disclaimer).map(|h| h.topic.clone()).collect();
        if let Some(h) = hits.first() {
            pre.decision.topic = Some(h.topic.clone());
            pre.decision.via = Some(h.via.clone());
            pre.decision.score = Some(h.score);
        }
        pre
    }
}

fn index_key(policy: &Policy, embedder: &dyn TextEmbedder) -> String {
    let mut h = Sha256::new();
    h.update(embedder.model_id().as_bytes());
    for t in policy.topics.iter().filter(|t| t.enabled) {
        for e in t.examples_de.iter().chain(&t.examples_en) {
            h.update([0]);
            h.update(e.as_bytes());
        }
        h.update([1]);
    }
    hex::encode(h.finalize())
}

impl Assistant {
    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.gate.policy
    }

    /// Replaces the policy (tests, a reloaded policy file).
    pub fn set_policy(&mut self, policy: Policy) {
        let dir = self.data_dir().to_path_buf();
        let ws = std::mem::take(&mut self.gate.workspace);
        self.gate = PolicyGate::new(policy, &dir);
        self.gate.workspace = ws;
    }

    /// The workspace name the audit log records.
    pub fn set_workspace(&mut self, name: &str) {
        self.gate.workspace = name.to_string();
    }

    /// The workspace name the audit log records.
    pub fn workspace(&self) -> &str {
        &self.gate.workspace
    }

    pub fn audit_log(&self) -> &AuditLog {
        &self.gate.audit
    }

    /// What the checks before generation decide for `question` (`tresor policy explain`).
    pub fn explain_policy(&mut self, question: &str) -> (Precheck, Lang) {
        let q = crate::text::normalise(question);
        let lang = language(&q);
        let emb = self.embedder_arc();
        (self.gate.precheck(&q, lang, emb.as_ref()), lang)
    }

    pub(crate) fn policy_precheck(&mut self, q: &str, lang: Lang) -> Precheck {
        let emb = self.embedder_arc();
        self.gate.precheck(q, lang, emb.as_ref())
    }

    /// The refusal answer for a question the policy refuses; stored in its thread and audited like any answer.
    pub(crate) fn policy_refuse(&mut self, pre: Precheck, q: &str, lang: Lang, req: &AskRequest, t0: Instant, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let text = pre.refusal.clone().unwrap_or_default();
        on_text(&text);
        let total = t0.elapsed().as_secs_f64() * 1e3;
        let mut ans = Answer {
            answer: text,
            sources: Vec::new(),
            grounded: false,
            refused: true,
            model: "none".into(),
            cache_hit: false,
            route: "policy".into(),
            routing: RouteChoice { role: "none".into(), reason: format!("refused by the policy ({})", pre.decision.reason.as_deref().unwrap_or("policy")) },
            lang: lang.as_str().into(),
            timings: Timings { ttft_ms: total, total_ms: total, pipeline_ms: total, ..Default::default() },
            tokens: Tokens::default(),
            thread_id: None,
            message_id: None,
            actions: Vec::new(),
            offer_handoff: false,
            ask_csat: false,
            handoff: None,
            trace: Trace { policy: Some(pre.decision), ..Default::default() },
            variant: String::new(),
        };
        ans.offer_handoff = self.desk().offer_after(req.thread, true)?;
        if let Some(t) = req.thread {
            self.threads().add_message(t, "user", q, None)?;
            let meta = json!({ "route": ans.route, "refused": true, "policy": ans.trace.policy });
            ans.message_id = Some(self.threads().add_message(t, "assistant", &ans.answer, Some(&meta))?);
            ans.thread_id = Some(t);
        }
        self.metrics.answers += 1;
        self.metrics.refused += 1;
        self.metrics.ttft_ms_sum += total;
        self.metrics.total_ms_sum += total;
        self.audit_answer(req, q, &ans)?;
        self.record_answer_events(req, q, &ans);
        Ok(ans)
    }

    /// After the answer streamed through `guard`: its text, sources and refusal follow what the guard let through.
    pub(crate) fn policy_settle(&self, ans: &mut Answer, guard: PolicyOutputCheck<'_>, pre: Precheck) {
        let mut d = guard.decision.clone();
        d.nearest = pre.decision.nearest.clone();
        if d.topic.is_none() {
            d.topic = pre.decision.topic.clone();
            d.via = pre.decision.via.clone();
            d.score = pre.decision.score;
        }
        if d.action != "allow" {
            ans.answer = guard.text().trim().to_string();
            if d.reason.as_deref() == Some("withheld") {
                ans.refused = true;
                ans.grounded = false;
                ans.sources.clear();
            } else {
                // sources whose [n] was removed with its sentence go too
                let text = ans.answer.clone();
                ans.sources.retain(|s| text.contains(&format!("[{}]", s.n)));
            }
        }
        ans.trace.policy = Some(d);
    }

    /// One audit entry for an answer: who, which question (keyed hash), sources, tools, policy, model, cache.
    pub(crate) fn audit_answer(&self, req: &AskRequest, q: &str, ans: &Answer) -> Result<()> {
        let sources: Vec<Value> =
            ans.sources.iter().map(|s| json!({ "source": tresor_guard::redact::for_log(&s.source), "chunk_id": s.chunk_id })).collect();
        let data = json!({
            "question_id": self.gate.audit.question_id(q)?,
            "kb": ans.trace.kb,
            "kb_version": ans.trace.kb_version,
            "route": ans.route,
            "lang": ans.lang,
            "refused": ans.refused,
            "grounded": ans.grounded,
            "model": ans.model,
            // which backend answered: local, or a remote model id and its host (never its key)
            "backend": ans.trace.backend,
            "cache_hit": ans.cache_hit,
            "sources": sources,
            "tool_calls": [],
            "policy": ans.trace.policy,
            "thread_id": ans.thread_id,
            "message_id": ans.message_id,
        });
        self.audit("answer", req.actor.as_deref(), data)
    }

    /// Appends one audit entry (`actor`: None = the OS user).
    pub fn audit(&self, event: &str, actor: Option<&str>, data: Value) -> Result<()> {
        let ev = Event { event: event.into(), actor: actor.map(str::to_string).unwrap_or_else(os_actor), workspace: self.gate.workspace.clone(), data };
        self.gate.audit.append(&ev).map_err(AssistantError::from)?;
        Ok(())
    }
}

/// One audit entry for a change outside an answer (tool data imports), as `actor` (None: the OS user).
pub fn audit_event(data_dir: &Path, workspace: &str, actor: Option<&str>, event: &str, data: Value) -> Result<()> {
    let ev = Event { event: event.into(), actor: actor.map(str::to_string).unwrap_or_else(os_actor), workspace: workspace.into(), data };
    AuditLog::for_data_dir(data_dir).append(&ev)?;
    Ok(())
}

/// The audit entry for a knowledge-base change ([`crate::library`] writes every one).
pub fn audit_kb_change(data_dir: &Path, workspace: &str, actor: Option<&str>, event: &str, kb: &str, sources: &[String], counts: Value) -> Result<()> {
    let data = json!({
        "kb": kb,
        "sources": sources.iter().map(|s| tresor_guard::redact::for_log(s)).collect::<Vec<_>>(),
        "counts": counts,
    });
    let ev = Event { event: event.into(), actor: actor.map(str::to_string).unwrap_or_else(os_actor), workspace: workspace.into(), data };
    AuditLog::for_data_dir(data_dir).append(&ev)?;
    Ok(())
}
