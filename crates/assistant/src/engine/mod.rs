//! The engine: [`Assistant`], which every front door calls, and the answer
//! pipeline's entry point. `answer` runs what every route shares — input
//! checks, the admin policy before and after, the prompt screen, then one of
//! small talk / out of scope / general (the model alone) / grounded
//! (`grounded.rs`, the knowledge-base stages in order), then the record
//! (thread messages, counters, the audit entry).
//!
//! Owns: the engine's state (config, key, models, open knowledge bases,
//! cache, threads, policy gate) and the order of the shared steps. Never:
//! a stage's own logic (retrieval is tresor-kb's, packing `pack.rs`,
//! citations `cite.rs`, policy `policy.rs`, the firewall `firewall.rs`), or
//! a door's concerns (keys, flags, HTTP).

mod answer;
mod grounded;
mod prompt;
mod validate;
#[cfg(test)]
mod tests;

pub use answer::{Answer, AskRequest, Metrics, PassageTrace, Regeneration, Source, Timings, Tokens, Trace};
pub(crate) use answer::CachedAnswer;
pub use prompt::prompt_messages;

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tresor_guard::crypto::WorkspaceKey;
use tresor_guard::injection::InjectionOutputGuard;
use tresor_kb::lang::Lang;
use tresor_kb::{search, IngestOptions, IngestProgress, IngestReport, Kb, SearchOptions, TextEmbedder, TextReranker};
use tresor_llm::{ChatMessage, GenerateParams, SamplingParams};
use tresor_models::Role;

use crate::cache::{CacheStats, SemanticCache};
use crate::config::AssistantConfig;
use crate::error::{AssistantError, Result};
use crate::firewall;
use crate::library::Library;
use crate::models::{ChatModel, ModelSource, ModelSpec};
use crate::pack::Passage;
use crate::route::{self, Intent, RouteChoice};
use crate::store::ThreadStore;
use crate::text::{language, normalise, MAX_QUESTION_CHARS};

pub type ModelChoice = RouteChoice;

pub struct Assistant {
    cfg: AssistantConfig,
    data_dir: PathBuf,
    /// The data dir's key: every database and file under it is encrypted with it.
    key: WorkspaceKey,
    embedder: Arc<dyn TextEmbedder>,
    reranker: Option<Arc<dyn TextReranker>>,
    models: Box<dyn ModelSource>,
    loaded: HashMap<ModelSpec, Box<dyn ChatModel>>,
    kbs: HashMap<String, (Kb, String)>,
    cache: SemanticCache,
    threads: ThreadStore,
    /// The handoff outbox and conversation ends (`handoff/`), in the same database.
    pub(crate) handoffs: crate::handoff::HandoffStore,
    pub metrics: Metrics,
    /// The admin policy and the audit log (`policy.rs`).
    pub(crate) gate: crate::policy::PolicyGate,
    /// Tools and actions (`act/`).
    pub(crate) tools: crate::act::ToolLayer,
    /// The release store as last read, and its policy gates (`release/apply.rs`).
    pub(crate) releases: crate::release::EngineReleases,
    /// The grounded/general instructions of the release answering now (None: the built-in prompts).
    pub(crate) prompt_override: Option<crate::release::PromptSet>,
}

/// A short hash of the knowledge base's documents (source, sha256, chunks):
/// changes whenever a document is added, changed or removed.
pub fn kb_version(kb: &Kb) -> Result<String> {
    let mut h = Sha256::new();
    let mut docs = kb.list()?;
    docs.sort_by(|a, b| a.source.cmp(&b.source));
    for d in docs {
        h.update(d.source.as_bytes());
        h.update([0]);
        h.update(d.sha256.as_bytes());
        h.update(d.chunks.to_le_bytes());
    }
    h.update(kb.chunk_count()?.to_le_bytes());
    Ok(hex::encode(&h.finalize()[..8]))
}


impl Assistant {
    pub fn new(
        cfg: AssistantConfig,
        data_dir: &Path,
        key: &WorkspaceKey,
        embedder: Arc<dyn TextEmbedder>,
        reranker: Option<Arc<dyn TextReranker>>,
        models: Box<dyn ModelSource>,
    ) -> Result<Self> {
        let gate = crate::policy::PolicyGate::load(data_dir)?;
        Self::with_gate(cfg, data_dir, key, embedder, reranker, models, gate)
    }

    /// [`Assistant::new`] with the policy gate already loaded (`Assistant::open` reads the
    /// policy once, for the gate and the remote models).
    pub(crate) fn with_gate(
        cfg: AssistantConfig,
        data_dir: &Path,
        key: &WorkspaceKey,
        embedder: Arc<dyn TextEmbedder>,
        reranker: Option<Arc<dyn TextReranker>>,
        models: Box<dyn ModelSource>,
        gate: crate::policy::PolicyGate,
    ) -> Result<Self> {
        cfg.validate().map_err(|reason| AssistantError::Config { path: data_dir.join("assistant.toml"), reason })?;
        let embedder: Arc<dyn TextEmbedder> = Arc::new(crate::memo::MemoEmbedder::new(embedder, 16));
        let db = data_dir.join(crate::store::DB_FILE);
        Ok(Assistant {
            cache: SemanticCache::open(&db, key)?,
            threads: Self::open_threads(&db, key, &cfg.telemetry)?,
            // after the threads: its conversation table refers to theirs
            handoffs: crate::handoff::HandoffStore::open(&db, key)?,
            cfg,
            data_dir: data_dir.to_path_buf(),
            key: key.clone(),
            embedder,
            reranker,
            models,
            loaded: HashMap::new(),
            kbs: HashMap::new(),
            metrics: Metrics::default(),
            gate,
            tools: Default::default(),
            releases: Default::default(),
            prompt_override: None,
        })
    }

    /// The thread store with the events beside it; events past the retention are purged here.
    fn open_threads(db: &Path, key: &WorkspaceKey, telemetry: &tresor_telemetry::TelemetryConfig) -> Result<ThreadStore> {
        let threads = ThreadStore::open_with(db, key, telemetry)?;
        if let Some(ev) = threads.events() {
            ev.purge_older_than(telemetry.retention_days)?;
        }
        Ok(threads)
    }

    pub fn config(&self) -> &AssistantConfig {
        &self.cfg
    }
    /// The `[injection]` settings in force: assistant.toml's, or the policy's action where a policy file sets one.
    pub fn injection(&self) -> firewall::InjectionConfig {
        firewall::in_force(&self.cfg.injection, &self.gate.policy)
    }
    pub fn config_mut(&mut self) -> &mut AssistantConfig {
        &mut self.cfg
    }
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
    /// The data dir's key (open its knowledge bases with it).
    pub fn key(&self) -> &WorkspaceKey {
        &self.key
    }
    pub fn embedder(&self) -> &dyn TextEmbedder {
        self.embedder.as_ref()
    }
    pub fn threads(&self) -> &ThreadStore {
        &self.threads
    }
    /// Handoffs and conversation ends over this engine's threads, settings, policy and audit log.
    pub fn desk(&self) -> crate::handoff::Desk<'_> {
        crate::handoff::Desk {
            threads: &self.threads,
            store: &self.handoffs,
            cfg: &self.cfg.handoff,
            policy: &self.gate.policy,
            audit: self.audit_log(),
            workspace: self.workspace(),
            data_dir: &self.data_dir,
            key: &self.key,
        }
    }
    pub fn cache_stats(&self) -> Result<CacheStats> {
        self.cache.stats()
    }
    pub fn clear_cache(&self) -> Result<usize> {
        self.cache.clear()
    }
    pub fn available_models(&self) -> Vec<(String, String)> {
        self.models.available()
    }
    pub fn embedder_arc(&self) -> Arc<dyn TextEmbedder> {
        self.embedder.clone()
    }

    /// Plain retrieval (no answer): hybrid search with the engine's embedder and reranker.
    pub fn search(&mut self, kb_name: &str, query: &str, k: usize) -> Result<tresor_kb::SearchResult> {
        let embedder = self.embedder.clone();
        let reranker = self.reranker.clone();
        let (kb, _) = self.kb(kb_name)?;
        let opts = SearchOptions { k: k.clamp(1, 100), ..SearchOptions::default() };
        Ok(search(kb, query, Some(embedder.as_ref()), reranker.as_deref(), &opts)?)
    }

    /// This workspace's knowledge bases (list, create, ingest, re-index, remove), audited as `actor`'s.
    pub fn library<'a>(&'a self, actor: Option<&'a str>) -> Library<'a> {
        Library::new(&self.data_dir, self.gate.workspace(), &self.key).as_actor(actor)
    }

    /// Ingests files or folders into knowledge base `kb_name` (created when
    /// new) with the engine's embedder; audited, screened by the policy's
    /// injection action.
    pub fn ingest(&mut self, kb_name: &str, paths: &[PathBuf], actor: Option<&str>, progress: &dyn IngestProgress) -> Result<IngestReport> {
        self.kbs.remove(kb_name);
        let embedder = self.embedder.clone();
        self.library(actor).ingest(kb_name, embedder.as_ref(), paths, &IngestOptions::default(), progress)
    }

    /// Re-reads knowledge base `kb_name`'s folders and rebuilds its indexes (audited).
    pub fn reindex(&mut self, kb_name: &str, actor: Option<&str>, progress: &dyn IngestProgress) -> Result<IngestReport> {
        self.kbs.remove(kb_name);
        let embedder = self.embedder.clone();
        self.library(actor).reindex(kb_name, embedder.as_ref(), progress)
    }

    /// Closes and deletes knowledge base `kb_name` (its store only; audited).
    pub fn remove_kb(&mut self, kb_name: &str, actor: Option<&str>) -> Result<()> {
        self.kbs.remove(kb_name);
        self.library(actor).delete(kb_name, false).map(|_| ())
    }

    pub fn reranker_id(&self) -> Option<String> {
        self.reranker.as_ref().map(|r| r.model_id())
    }

    /// The open knowledge base `name` (reopened when its version changed) and its version.
    pub fn kb(&mut self, name: &str) -> Result<(&mut Kb, String)> {
        let dir = crate::library::kb_dir(&self.data_dir, name)?;
        let fresh = match self.kbs.get(name) {
            Some((kb, v)) => kb_version(kb)? != *v,
            None => true,
        };
        if fresh {
            self.kbs.remove(name);
            let kb = Kb::open_existing(&dir, &self.key)?;
            let v = kb_version(&kb)?;
            self.kbs.insert(name.to_string(), (kb, v));
        }
        let (kb, v) = self.kbs.get_mut(name).expect("inserted above");
        let v = v.clone();
        Ok((kb, v))
    }

    fn model<'a>(
        loaded: &'a mut HashMap<ModelSpec, Box<dyn ChatModel>>,
        source: &mut Box<dyn ModelSource>,
        spec: &ModelSpec,
        load_ms: &mut f64,
    ) -> Result<&'a mut Box<dyn ChatModel>> {
        if !loaded.contains_key(spec) {
            let t = Instant::now();
            let m = source.load(spec)?;
            *load_ms = ms(t);
            loaded.insert(spec.clone(), m);
        }
        Ok(loaded.get_mut(spec).expect("inserted above"))
    }

    /// The chat model that fills tool arguments (chat-small: the shipped default).
    pub(crate) fn tool_model(&mut self) -> Result<&mut Box<dyn ChatModel>> {
        let mut load_ms = 0.0;
        Self::model(&mut self.loaded, &mut self.models, &ModelSpec::Role(Role::ChatSmall), &mut load_ms)
    }

    /// The chat model that answers `q` (the routed role, or `explicit`), with the choice and its load time.
    pub(crate) fn answer_model(&mut self, q: &str, explicit: Option<&str>) -> Result<(RouteChoice, f64, &mut Box<dyn ChatModel>)> {
        let choice = route::choose_model(q, &self.cfg.routing, explicit);
        let spec = spec_for(&choice, explicit);
        let mut load_ms = 0.0;
        let model = Self::model(&mut self.loaded, &mut self.models, &spec, &mut load_ms)?;
        Ok((choice, load_ms, model))
    }

    /// Answers one question, streaming the answer text to `on_text`, with the settings of the
    /// release that serves its conversation (`release/`; `Answer::variant` names it).
    pub fn answer(&mut self, req: &AskRequest, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let mut v = self.enter_variant(req)?;
        let r = self.answer_with(req, on_text);
        self.leave_variant(&mut v);
        let mut ans = r?;
        ans.variant = v.name;
        Ok(ans)
    }

    fn answer_with(&mut self, req: &AskRequest, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let t0 = Instant::now();
        let q = normalise(&req.question);
        if q.is_empty() {
            return Err(AssistantError::EmptyQuestion);
        }
        let chars = q.chars().count();
        if chars > MAX_QUESTION_CHARS {
            return Err(AssistantError::QuestionTooLong { chars, max: MAX_QUESTION_CHARS });
        }
        let history = match req.thread {
            Some(t) => self.threads.history(t)?,
            None => req.history.clone(),
        };
        let lang = language(&q);
        // prompts reach logs only PII-masked (tresor-guard redact::for_log); evaluated only at debug level
        tracing::debug!(question = %tresor_guard::redact::for_log(&q), "answering");
        // a request for a human or a closing message, before anything else runs (handoff/)
        if let Some(ans) = self.handoff_turns(&q, lang, req, on_text)? {
            return self.record_turn(req, &q, ans, t0);
        }
        // admin policy (policy.rs): language, blocked terms and refused topics before anything
        // runs; every streamed sentence then passes its output checks
        let t_policy = Instant::now();
        let pre = self.policy_precheck(&q, lang);
        let policy_ms = ms(t_policy);
        // a refused topic may be what a tool answers (a price question goes to price_lookup,
        // never refused as a "price promise" before the tool ran); language and blocked terms stand
        let topic_refusal = pre.refusal.is_some() && pre.decision.reason.as_deref() == Some("topic");
        if pre.refusal.is_some() && !topic_refusal {
            return self.policy_refuse(pre, &q, lang, req, t0, on_text);
        }
        let policy = self.gate.policy.clone();
        let mut og = pre.output_guard(&policy, lang);
        // "no price outside the defined APIs": with a price list imported, a sentence that names
        // one of its products with an amount is a price only price_lookup may state (a tool turn
        // words the tool's own result and bypasses this check below)
        let catalogue = self.price_catalogue()?;
        if !catalogue.is_empty() {
            og.unverified_price = Some(Box::new(move |lower: &str| catalogue.iter().any(|t| lower.contains(t.as_str()))));
        }
        let outer = on_text;
        let mut guarded = |p: &str| {
            let e = og.push(p);
            if !e.is_empty() {
                outer(&e);
            }
        };
        let on_text: &mut dyn FnMut(&str) = &mut guarded;
        let intent = route::classify(&q, req.kb.is_some());
        let t_fw = Instant::now();
        let injection = self.injection();
        let flagged = if injection.enabled { firewall::screen_prompt(&q, self.embedder.as_ref()).filter(|v| v.injection) } else { None };
        let prompt_screen_ms = ms(t_fw);
        let blocked = flagged.is_some() && injection.prompt == tresor_guard::injection::InjectionAction::Block;
        // tools (act/): only the user's own message is routed to a tool, never retrieved text
        let conversation = crate::act::conversation_key(req);
        let turn = if blocked { None } else { self.tool_turn(&q, lang, req, &conversation)? };
        if turn.is_none() && topic_refusal {
            drop(og);
            return self.policy_refuse(pre, &q, lang, req, t0, outer);
        }
        let mut tool_trace = firewall::InjectionTrace::default();
        let mut ans = if let Some(mut t) = turn {
            // the tool's result in the engine's own words: not a model's claim to check — but the
            // values it quotes are the tool's (untrusted) data: screened before anything is shown
            if injection.enabled {
                let results: Vec<&serde_json::Value> = t.actions.iter().filter_map(|a| a.result.as_ref()).collect();
                t.text = firewall::guard_tool_text(&t.text, &results, lang == Lang::De, &mut tool_trace);
            }
            outer(&t.text);
            let role = if t.model_ms > 0.0 { "chat-small" } else { "none" };
            let mut a = bare_answer(t.text, intent, lang, RouteChoice { role: role.into(), reason: t.reason });
            a.route = "tool".into();
            a.grounded = t.ran.is_some();
            a.sources = t.sources;
            a.actions = t.actions;
            a.timings.generate_ms = t.model_ms;
            a
        } else if blocked {
            let text = firewall::blocked_reply(lang == Lang::De);
            on_text(&text);
            let mut a = bare_answer(text, intent, lang, RouteChoice { role: "none".into(), reason: "blocked by the injection firewall".into() });
            a.refused = true;
            a
        } else { match intent {
            Intent::SmallTalk | Intent::OutOfScope => {
                let text = if intent == Intent::SmallTalk { route::small_talk_reply(&q, lang) } else { route::out_of_scope_reply(lang) };
                on_text(&text);
                let mut a = bare_answer(text, intent, lang, RouteChoice { role: "none".into(), reason: format!("{} needs no model", intent.as_str()) });
                a.refused = intent == Intent::OutOfScope;
                a
            }
            Intent::General => self.general(&q, &history, req, lang, on_text)?,
            Intent::KbQuestion => {
                let kb = req.kb.clone().expect("KbQuestion only with a kb");
                self.grounded(&q, &kb, &history, req, lang, t0, on_text)?
            }
        } };
        if !tool_trace.output.is_empty() {
            ans.trace.injection.get_or_insert_with(Default::default).output.extend(tool_trace.output);
        }
        if let Some(v) = flagged {
            let t = ans.trace.injection.get_or_insert_with(Default::default);
            t.prompt_action = Some(if blocked { "block" } else { "warn" }.into());
            t.prompt = Some(v);
        }
        let tail = og.finish(ans.refused);
        if !tail.is_empty() {
            outer(&tail);
        }
        self.policy_settle(&mut ans, og, pre);
        ans.timings.policy_ms = policy_ms;
        ans.timings.firewall_ms += prompt_screen_ms;
        ans.timings.total_ms = ms(t0);
        if ans.timings.ttft_ms == 0.0 {
            ans.timings.ttft_ms = ans.timings.total_ms;
        }
        ans.timings.pipeline_ms = (ans.timings.total_ms - ans.timings.generate_ms - ans.timings.load_ms + ans.timings.validate_ms).max(0.0);
        ans.offer_handoff = self.desk().offer_after(req.thread, ans.refused)?;
        self.record_turn(req, &q, ans, t0)
    }

    /// The record step every turn ends with: the thread's messages, counters, the audit entry, the events.
    fn record_turn(&mut self, req: &AskRequest, q: &str, mut ans: Answer, t0: Instant) -> Result<Answer> {
        if ans.timings.total_ms == 0.0 {
            ans.timings.total_ms = ms(t0);
            ans.timings.ttft_ms = ans.timings.total_ms;
            ans.timings.pipeline_ms = ans.timings.total_ms;
        }
        let q = q.to_string();
        let t_record = Instant::now();
        if let Some(t) = req.thread {
            self.threads.add_message(t, "user", &q, None)?;
            let meta = serde_json::json!({
                "sources": ans.sources, "model": ans.model, "timings": ans.timings, "tokens": ans.tokens,
                "route": ans.route, "routing": ans.routing, "grounded": ans.grounded, "refused": ans.refused, "cache_hit": ans.cache_hit,
                "actions": ans.actions, "offer_handoff": ans.offer_handoff, "ask_csat": ans.ask_csat,
                "ticket_id": ans.handoff.as_ref().map(|h| h.ticket_id.clone()),
            });
            ans.message_id = Some(self.threads.add_message(t, "assistant", &ans.answer, Some(&meta))?);
            ans.thread_id = Some(t);
        }
        self.metrics.answers += 1;
        self.metrics.refused += ans.refused as u64;
        self.metrics.grounded += ans.grounded as u64;
        self.metrics.extractive += ans.trace.extractive as u64;
        self.metrics.cache_hits += ans.cache_hit as u64;
        self.metrics.ttft_ms_sum += ans.timings.ttft_ms;
        self.metrics.total_ms_sum += ans.timings.total_ms;
        self.audit_answer(req, &q, &ans)?;
        // the record is part of the request's time (and of the pipeline's share), though the
        // thread's copy of the timings was written before it was known
        ans.timings.record_ms = ms(t_record);
        ans.timings.total_ms += ans.timings.record_ms;
        ans.timings.pipeline_ms += ans.timings.record_ms;
        // telemetry (tresor-telemetry): the message event, with the final timings
        self.record_answer_events(req, &q, &ans);
        Ok(ans)
    }

    /// Without a knowledge base: the routed model answers with the conversation, ungrounded.
    fn general(&mut self, q: &str, history: &[ChatMessage], req: &AskRequest, lang: Lang, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let choice = route::choose_model(q, &self.cfg.routing, req.model.as_deref());
        let spec = spec_for(&choice, req.model.as_deref());
        // the output guard below is part of the injection firewall: `[injection] enabled = false`
        // streams the model's text as it comes
        let guarded = self.injection().enabled;
        let mut load_ms = 0.0;
        let mut params = self.gen_params(self.cfg.max_answer_tokens * 2);
        params.cancel = req.cancel.clone();
        let model = Self::model(&mut self.loaded, &mut self.models, &spec, &mut load_ms)?;
        let system = self.prompt_override.as_ref().and_then(|p| p.general.as_deref()).unwrap_or(tresor_llm::template::DEFAULT_SYSTEM_PROMPT);
        let mut msgs = vec![ChatMessage::system(system)];
        // the conversation within history_tokens; older turns the model summarises (history.rs)
        let (older, kept) = crate::history::split(history, self.cfg.history_tokens, &|s| model.count_tokens(s));
        let mut summary = None;
        if older.is_empty() {
            msgs.extend(kept.iter().cloned());
        } else {
            let mut h = crate::history::summarise(model.as_mut(), older, self.cfg.history_summary_tokens, lang);
            h.kept_turns = kept.len();
            msgs.extend(crate::history::with_summary(&h.summary, kept, lang));
            summary = Some(h);
        }
        msgs.push(ChatMessage::user(q));
        // No passages to cite here, so no validation — but the output guard still stands between
        // the model and the user: text is shown a sentence at a time, after the system-prompt leak
        // and link/image checks; a leaking sentence stops the generation (red team: jailbreaks
        // made the model echo its instructions on this route).
        let guard = InjectionOutputGuard::new(system, &[]);
        let mut inj = firewall::InjectionTrace::default();
        let (mut shown, mut buf, mut leaked) = (String::new(), String::new(), false);
        let show = |s: &str, shown: &mut String, on_text: &mut dyn FnMut(&str)| {
            shown.push_str(s);
            on_text(s);
        };
        let g = model.generate(&msgs, &params, &mut |piece| {
            if !guarded {
                show(piece, &mut shown, on_text);
                return ControlFlow::Continue(());
            }
            buf.push_str(piece);
            while let Some(end) = tresor_text::sentences::complete_end(&buf) {
                let done: String = buf.drain(..end).collect();
                // a leak spans sentences ("You are … . Answer … ."): judged with the text just shown
                let tail: String = shown.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
                if guard.check(&format!("{tail}{done}")).findings.iter().any(|f| f.kind == "system_prompt_leak") {
                    leaked = true;
                    return ControlFlow::Break(());
                }
                match firewall::check_sentence(&guard, &done, &mut inj) {
                    Some(t) if t == done => show(&t, &mut shown, on_text),
                    Some(t) => show(&format!("{t} "), &mut shown, on_text),
                    None => {
                        leaked = true;
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        if !leaked && !buf.trim().is_empty() {
            let tail: String = shown.chars().rev().take(400).collect::<Vec<_>>().into_iter().rev().collect();
            leaked = guard.check(&format!("{tail}{buf}")).findings.iter().any(|f| f.kind == "system_prompt_leak");
        }
        if !leaked && !buf.trim().is_empty() {
            match firewall::check_sentence(&guard, &buf, &mut inj) {
                Some(t) => show(&t, &mut shown, on_text),
                None => leaked = true,
            }
        }
        if leaked {
            inj.output.push(firewall::OutputFinding {
                sentence: String::new(),
                action: "refuse".into(),
                findings: vec![tresor_guard::injection::output::Finding { kind: "system_prompt_leak".into(), detail: "the model began repeating its instructions; generation stopped".into() }],
            });
            let note = if lang == Lang::De { "Meine Anweisungen gebe ich nicht weiter." } else { "I don't share my instructions." };
            let sep = if shown.trim().is_empty() { "" } else { "\n\n" };
            show(&format!("{sep}{note}"), &mut shown, on_text);
        }
        let mut a = bare_answer(shown.trim().to_string(), Intent::General, lang, choice);
        if !inj.output.is_empty() {
            a.trace.injection = Some(inj);
        }
        a.model = model.id().to_string();
        a.trace.backend = model.backend();
        // summarising is model time: it counts in generate (and so in TTFT), not in the pipeline's share
        let summary_ms = summary.as_ref().map_or(0.0, |h| h.ms);
        a.timings = Timings { ttft_ms: 0.0, load_ms, prefill_ms: g.prefill_ms, generate_ms: g.total_ms + summary_ms, ..Default::default() };
        a.timings.ttft_ms = g.ttft_ms + load_ms + summary_ms;
        // the general route streams the model's text as it comes: its first token is the visible one
        a.timings.model_first_token_ms = a.timings.ttft_ms;
        a.tokens = Tokens { prompt: g.prompt_tokens, completion: g.tokens.len() + summary.as_ref().map_or(0, |h| h.summary_tokens), context: 0 };
        a.trace.history = summary;
        a.trace.finish = Some(format!("{:?}", g.finish).to_lowercase());
        Ok(a)
    }

    pub(crate) fn gen_params(&self, max_tokens: usize) -> GenerateParams {
        let sampling = if self.cfg.temperature <= 0.0 {
            SamplingParams { repeat_penalty: 1.1, ..SamplingParams::greedy() }
        } else {
            SamplingParams { temperature: self.cfg.temperature, ..SamplingParams::default() }
        };
        GenerateParams {
            max_tokens,
            sampling,
            stop: ["Question:", "Frage:", "Sources:", "Quellen:", "\n\n\n"].iter().map(|s| s.to_string()).collect(),
            cancel: None,
        }
    }

}

fn spec_for(choice: &RouteChoice, explicit: Option<&str>) -> ModelSpec {
    match (explicit, choice.role.as_str()) {
        (Some(m), _) => ModelSpec::Named(m.to_string()),
        (None, "chat-premium") => ModelSpec::Role(Role::ChatPremium),
        _ => ModelSpec::Role(Role::ChatSmall),
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn snippet(text: &str, max: usize) -> String {
    let t = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() <= max {
        return t;
    }
    let mut s: String = t.chars().take(max).collect();
    if let Some(i) = s.rfind(' ') {
        s.truncate(i);
    }
    s.push('…');
    s
}

fn passage_trace(p: &Passage, packed: bool) -> PassageTrace {
    PassageTrace {
        source: p.hit.source.clone(),
        chunk_id: p.hit.chunk_id,
        lexical: p.lexical,
        cosine: p.cosine,
        evidence: p.evidence,
        tokens: p.tokens,
        packed,
        missing_terms: p.missing_terms.clone(),
    }
}

pub(crate) fn bare_answer(text: String, intent: Intent, lang: Lang, routing: RouteChoice) -> Answer {
    Answer {
        answer: text,
        sources: Vec::new(),
        grounded: false,
        refused: false,
        model: "none".into(),
        cache_hit: false,
        route: intent.as_str().into(),
        routing,
        lang: lang.as_str().into(),
        timings: Timings::default(),
        tokens: Tokens::default(),
        thread_id: None,
        message_id: None,
        actions: Vec::new(),
        offer_handoff: false,
        ask_csat: false,
        handoff: None,
        trace: Trace::default(),
        variant: String::new(),
    }
}

