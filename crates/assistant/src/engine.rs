//! The answer pipeline (see the crate docs for the order of steps) and the
//! [`Assistant`] that front doors call.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tresor_kb::lang::Lang;
use tresor_kb::retrieve::Trace as RetrievalTrace;
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::{search, Kb, SearchOptions, TextEmbedder, TextReranker};
use tresor_llm::{ChatMessage, GenerateParams, SamplingParams};
use tresor_models::Role;

use crate::cache::{CacheStats, SemanticCache};
use crate::cite::{self, SentenceCheck, SentenceStream};
use crate::config::AssistantConfig;
use crate::error::{AssistantError, Result};
use crate::firewall;
use crate::models::{ChatModel, ModelSource, ModelSpec};
use crate::pack::{self, PackReport, Passage};
use crate::route::{self, Intent, RouteChoice};
use crate::store::ThreadStore;
use crate::text::{cache_form, jaccard, language, normalise, MAX_QUESTION_CHARS};

pub type ModelChoice = RouteChoice;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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
pub struct Timings {
    /// Request start to the model's first token (cache hits and canned answers: to the answer).
    pub ttft_ms: f64,
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
pub struct Tokens {
    pub prompt: usize,
    pub completion: usize,
    /// Passage tokens packed into the prompt.
    pub context: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
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

#[derive(Debug, Clone, Serialize, Default)]
pub struct Trace {
    /// The standalone question a follow-up was rewritten into.
    pub rewritten: Option<String>,
    pub kb: Option<String>,
    pub kb_version: Option<String>,
    pub evidence: Option<f32>,
    pub evidence_threshold: Option<f32>,
    /// Names in the question (capitalised words of an English question) that occur nowhere in the
    /// knowledge base: its documents cannot say anything about them, so the answer is "not found".
    pub unknown_names: Vec<String>,
    pub retrieval: Option<RetrievalTrace>,
    pub passages: Vec<PassageTrace>,
    pub pack: Option<PackReport>,
    /// Every answer sentence the model wrote, with its support and fate.
    pub sentences: Vec<SentenceCheck>,
    /// The model's text had no supported sentence; the answer was extracted from the passages.
    pub extractive: bool,
    /// The first answer had no supported sentence, so the model answered once more with a stricter
    /// prompt and only the best passage (before any extractive fallback); `sentences` holds both tries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regeneration: Option<Regeneration>,
    /// The conversation did not fit `history_tokens`: its older turns were summarised (history.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<crate::history::HistoryTrace>,
    pub finish: Option<String>,
    pub cache_similarity: Option<f32>,
    pub cached_question: Option<String>,
    /// What the admin policy decided (see `policy.rs`): topic, refusal, removed sentences, disclaimers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<tresor_guard::policy::PolicyDecision>,
    /// What the prompt-injection firewall found and did (prompt, passages, answer sentences).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection: Option<firewall::InjectionTrace>,
}

/// The second, stricter try (see [`Trace::regeneration`]).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Regeneration {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Sentences the second try wrote, and of those (the first try had none) kept.
    pub sentences: usize,
    pub kept: usize,
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize)]
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
    pub trace: Trace,
}

/// What the cache keeps of an answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedAnswer {
    answer: String,
    sources: Vec<Source>,
    grounded: bool,
    refused: bool,
    model: String,
    route: String,
    routing: ModelChoice,
    lang: String,
    tokens: Tokens,
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
    pub metrics: Metrics,
    /// The admin policy and the audit log (`policy.rs`).
    pub(crate) gate: crate::policy::PolicyGate,
}

/// Where a data dir keeps its knowledge bases.
pub fn kb_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(AssistantError::BadKbName(name.to_string()));
    }
    Ok(data_dir.join("kb").join(name))
}

/// Names of the knowledge bases in a data dir.
pub fn kb_names(data_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir.join("kb"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| Kb::exists(&e.path()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
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

const DB_FILE: &str = "assistant.sqlite";

impl Assistant {
    pub fn new(
        cfg: AssistantConfig,
        data_dir: &Path,
        key: &WorkspaceKey,
        embedder: Arc<dyn TextEmbedder>,
        reranker: Option<Arc<dyn TextReranker>>,
        models: Box<dyn ModelSource>,
    ) -> Result<Self> {
        cfg.validate().map_err(|reason| AssistantError::Config { path: data_dir.join("assistant.toml"), reason })?;
        let embedder: Arc<dyn TextEmbedder> = Arc::new(crate::memo::MemoEmbedder::new(embedder, 16));
        let db = data_dir.join(DB_FILE);
        Ok(Assistant {
            cache: SemanticCache::open(&db, key)?,
            threads: ThreadStore::open(&db, key)?,
            cfg,
            data_dir: data_dir.to_path_buf(),
            key: key.clone(),
            embedder,
            reranker,
            models,
            loaded: HashMap::new(),
            kbs: HashMap::new(),
            metrics: Metrics::default(),
            gate: crate::policy::PolicyGate::load(data_dir)?,
        })
    }

    pub fn config(&self) -> &AssistantConfig {
        &self.cfg
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

    /// Ingests files or folders into knowledge base `kb_name` (created when new).
    pub fn ingest(&mut self, kb_name: &str, paths: &[PathBuf]) -> Result<tresor_kb::IngestReport> {
        let dir = kb_dir(&self.data_dir, kb_name)?;
        self.kbs.remove(kb_name);
        let mut kb = Kb::open(&dir, &self.key)?;
        let report = tresor_kb::ingest(&mut kb, self.embedder.as_ref(), paths, &tresor_kb::IngestOptions::default(), &tresor_kb::NoProgress)?;
        self.audit_ingest(kb_name, paths, &report)?;
        Ok(report)
    }

    pub fn reranker_id(&self) -> Option<String> {
        self.reranker.as_ref().map(|r| r.model_id())
    }

    /// The open knowledge base `name` (reopened when its version changed) and its version.
    pub fn kb(&mut self, name: &str) -> Result<(&mut Kb, String)> {
        let dir = kb_dir(&self.data_dir, name)?;
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

    /// Answers one question, streaming the answer text to `on_text`.
    pub fn answer(&mut self, req: &AskRequest, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
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
        // admin policy (policy.rs): language, blocked terms and refused topics before anything
        // runs; every streamed sentence then passes its output checks
        let t_policy = Instant::now();
        let pre = self.policy_precheck(&q, lang);
        let policy_ms = ms(t_policy);
        if pre.refusal.is_some() {
            return self.policy_refuse(pre, &q, lang, req, t0, on_text);
        }
        let policy = self.gate.policy.clone();
        let mut og = pre.output_guard(&policy, lang);
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
        let flagged = if self.cfg.injection.enabled { firewall::screen_prompt(&q, self.embedder.as_ref()).filter(|v| v.injection) } else { None };
        let prompt_screen_ms = ms(t_fw);
        let blocked = flagged.is_some() && self.cfg.injection.prompt == tresor_guard::injection::InjectionAction::Block;
        let mut ans = if blocked {
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
        let t_record = Instant::now();
        if let Some(t) = req.thread {
            self.threads.add_message(t, "user", &q, None)?;
            let meta = serde_json::json!({
                "sources": ans.sources, "model": ans.model, "timings": ans.timings, "tokens": ans.tokens,
                "route": ans.route, "routing": ans.routing, "grounded": ans.grounded, "refused": ans.refused, "cache_hit": ans.cache_hit,
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
        Ok(ans)
    }

    /// Without a knowledge base: the routed model answers with the conversation, ungrounded.
    fn general(&mut self, q: &str, history: &[ChatMessage], req: &AskRequest, lang: Lang, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let choice = route::choose_model(q, &self.cfg.routing, req.model.as_deref());
        let spec = spec_for(&choice, req.model.as_deref());
        let mut load_ms = 0.0;
        let mut params = self.gen_params(self.cfg.max_answer_tokens * 2);
        params.cancel = req.cancel.clone();
        let model = Self::model(&mut self.loaded, &mut self.models, &spec, &mut load_ms)?;
        let mut msgs = vec![ChatMessage::system(tresor_llm::template::DEFAULT_SYSTEM_PROMPT)];
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
        let mut text = String::new();
        let g = model.generate(&msgs, &params, &mut |piece| {
            text.push_str(piece);
            on_text(piece);
            ControlFlow::Continue(())
        })?;
        let mut a = bare_answer(text.trim().to_string(), Intent::General, lang, choice);
        a.model = model.id().to_string();
        // summarising is model time: it counts in generate (and so in TTFT), not in the pipeline's share
        let summary_ms = summary.as_ref().map_or(0.0, |h| h.ms);
        a.timings = Timings { ttft_ms: 0.0, load_ms, prefill_ms: g.prefill_ms, generate_ms: g.total_ms + summary_ms, ..Default::default() };
        a.timings.ttft_ms = g.ttft_ms + load_ms + summary_ms;
        a.tokens = Tokens { prompt: g.prompt_tokens, completion: g.tokens.len() + summary.as_ref().map_or(0, |h| h.summary_tokens), context: 0 };
        a.trace.history = summary;
        a.trace.finish = Some(format!("{:?}", g.finish).to_lowercase());
        Ok(a)
    }

    fn gen_params(&self, max_tokens: usize) -> GenerateParams {
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

    #[allow(clippy::too_many_arguments)]
    fn grounded(
        &mut self,
        q: &str,
        kb_name: &str,
        history: &[ChatMessage],
        req: &AskRequest,
        lang: Lang,
        t0: Instant,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let rewritten = route::rewrite_follow_up(q, history);
        let question = rewritten.clone().unwrap_or_else(|| q.to_string());
        let choice = route::choose_model(&question, &self.cfg.routing, req.model.as_deref());
        let embedder = self.embedder.clone();
        let reranker = self.reranker.clone();
        let use_cache = self.cfg.cache.enabled && !req.no_cache;
        let mut trace = Trace { rewritten, kb: Some(kb_name.to_string()), ..Default::default() };
        let mut timings = Timings::default();

        // retrieve (and the cache, keyed by the question's embedding)
        let t = Instant::now();
        let (_, version) = self.kb(kb_name)?;
        trace.kb_version = Some(version.clone());
        // one vector for the question: the policy and the firewall embedded the same text
        // already (memo.rs), and tresor-kb's vector search gets it from the memo too
        let t_embed = Instant::now();
        let qvec = embedder.embed(&[&question])?.pop().unwrap_or_default();
        timings.embed_ms = ms(t_embed);
        if use_cache {
            let t_cache = Instant::now();
            let hit = self.cache.lookup(kb_name, &version, &qvec, self.cfg.cache.similarity_threshold)?;
            timings.cache_ms = ms(t_cache);
            if let Some(hit) = hit {
                if let Ok(c) = serde_json::from_str::<CachedAnswer>(&hit.answer_json) {
                    on_text(&c.answer);
                    trace.cache_similarity = Some(hit.similarity);
                    trace.cached_question = Some(hit.question);
                    timings.retrieve_ms = ms(t);
                    return Ok(Answer {
                        answer: c.answer,
                        sources: c.sources,
                        grounded: c.grounded,
                        refused: c.refused,
                        model: c.model,
                        cache_hit: true,
                        route: c.route,
                        routing: c.routing,
                        lang: c.lang,
                        timings,
                        tokens: Tokens { prompt: 0, completion: 0, context: 0 },
                        thread_id: None,
                        message_id: None,
                        trace,
                    });
                }
            }
        }
        let opts = SearchOptions { k: self.cfg.retrieve_k, ..SearchOptions::default() };
        let (kb, _) = self.kb(kb_name)?;
        let t_search = Instant::now();
        let res = search(kb, &question, Some(embedder.as_ref()), reranker.as_deref(), &opts)?;
        let ids: Vec<i64> = res.hits.iter().map(|h| h.chunk_id).collect();
        let mut embs: HashMap<i64, Vec<f32>> = kb.chunks_by_id(&ids)?.into_iter().map(|c| (c.id, c.embedding)).collect();
        timings.search_ms = ms(t_search);
        trace.retrieval = Some(res.trace);
        timings.retrieve_ms = ms(t);

        // evidence and packing
        let t = Instant::now();
        let hits = res.hits.into_iter().map(|h| { let e = embs.remove(&h.chunk_id).unwrap_or_default(); (h, e) }).collect();
        let (lexical_weight, refuse_unknown_names) = (self.cfg.lexical_weight, self.cfg.refuse_unknown_names);
        let (kb, _) = self.kb(kb_name)?;
        let chunks = kb.chunk_count()?;
        let kb: &Kb = kb;
        let scored = pack::score(&question, &qvec, hits, lexical_weight, &|t| kb.term_idf(t, chunks));
        // a name the documents never mention ("… in Germany" against a US-only benefits page)
        trace.unknown_names = if refuse_unknown_names {
            crate::text::names(&question, lang)
                .into_iter()
                .filter(|n| kb.term_docs(n) == 0 && kb.term_docs(&tresor_kb::analyze::stem(n, Lang::En)) == 0)
                .collect()
        } else {
            Vec::new()
        };
        let mut inj = firewall::InjectionTrace::default();
        let t_fw = Instant::now();
        let scored = if self.cfg.injection.enabled { firewall::screen_passages(scored, embedder.as_ref(), &self.cfg.injection, &mut inj) } else { scored };
        timings.firewall_ms += ms(t_fw);
        let best = scored.first().map(|p| p.evidence).unwrap_or(0.0);
        trace.evidence = Some(best);
        trace.evidence_threshold = Some(self.cfg.evidence_threshold);
        if best < self.cfg.evidence_threshold || !trace.unknown_names.is_empty() {
            trace.passages = scored.iter().map(|p| passage_trace(p, false)).collect();
            timings.pack_ms = ms(t);
            let text = route::not_found_reply(lang);
            on_text(&text);
            let mut a = bare_answer(text, Intent::KbQuestion, lang, choice);
            a.refused = true;
            a.timings = timings;
            trace.injection = Some(std::mem::take(&mut inj));
            a.trace = trace;
            self.remember(use_cache, kb_name, &version, &question, &qvec, &mut a)?;
            return Ok(a);
        }
        let spec = spec_for(&choice, req.model.as_deref());
        let mut params = self.gen_params(self.cfg.max_answer_tokens);
        params.cancel = req.cancel.clone();
        let cfg = self.cfg.clone();
        let model = Self::model(&mut self.loaded, &mut self.models, &spec, &mut timings.load_ms)?;
        let all = scored.clone();
        let (passages, rep) = pack::pack(
            scored,
            cfg.context_tokens,
            cfg.max_passages,
            cfg.passage_relative_evidence,
            &|s| model.count_tokens(s),
        );
        trace.passages = all
            .iter()
            .map(|p| {
                let packed = passages.iter().find(|x| x.hit.chunk_id == p.hit.chunk_id);
                passage_trace(packed.unwrap_or(p), packed.is_some())
            })
            .collect();
        let context_tokens = rep.tokens;
        trace.pack = Some(rep);
        // the answer follows the question's language
        let marking = cfg.injection.enabled.then_some(cfg.injection.spotlight);
        let msgs = prompt_messages_marked(&question, &passages, lang, marking);
        let t_fw = Instant::now();
        let guard = (cfg.injection.enabled && cfg.injection.output_check).then(|| firewall::output_guard(&msgs[0].content, &passages, &mut inj));
        timings.firewall_ms += ms(t_fw);
        timings.pack_ms = ms(t) - timings.load_ms;

        // generate; validate sentence by sentence as they stream
        let t_gen = Instant::now();
        let mut v = Validator::new(&question, &qvec, &passages, embedder.as_ref(), &cfg);
        v.guard = guard;
        let g = v.generate(model.as_mut(), &msgs, &params, on_text)?;
        let mut gen_elapsed = ms(t_gen);
        let cancelled = req.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        let mut completion = g.tokens.len();
        // nothing the model wrote is supported: one more try with a stricter prompt that shows only
        // the best passage (every packed passage still counts for the citation check)
        if v.kept.is_empty() && !cancelled && cfg.regenerate && !passages.is_empty() {
            let strict = strict_prompt_messages(&question, &passages[..1], lang, marking);
            if let Some(g) = v.guard.as_mut() {
                *g = firewall::output_guard(&strict[0].content, &passages, &mut inj);
            }
            let first_checks = v.checks.len();
            v.run = 0;
            let t_re = Instant::now();
            let g2 = v.generate(model.as_mut(), &strict, &params, on_text)?;
            gen_elapsed += ms(t_re);
            completion += g2.tokens.len();
            trace.regeneration = Some(Regeneration {
                prompt_tokens: g2.prompt_tokens,
                completion_tokens: g2.tokens.len(),
                sentences: v.checks.len() - first_checks,
                kept: v.kept.len(),
                ms: ms(t_re),
            });
        }
        let cancelled = cancelled || req.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
        if v.kept.is_empty() && !cancelled {
            trace.extractive = true;
            for (s, pi) in cite::extractive(&passages, cfg.extractive_sentences) {
                if let Some(s) = v.guarded(&s) {
                    v.emit(&s, pi, on_text);
                }
            }
        }
        timings.validate_ms = v.ms;
        timings.prefill_ms = g.prefill_ms;
        timings.generate_ms = gen_elapsed;
        timings.ttft_ms = (t_gen.duration_since(t0).as_secs_f64() * 1e3) + g.ttft_ms;
        trace.finish = Some(format!("{:?}", g.finish).to_lowercase());
        let model_id = model.id().to_string();
        // a stopped answer is neither a refusal nor worth caching
        let refused = v.kept.is_empty() && !cancelled;
        let sources: Vec<Source> = v
            .order
            .iter()
            .enumerate()
            .map(|(i, &pi)| {
                let p = &passages[pi];
                Source {
                    n: i + 1,
                    source: p.hit.source.clone(),
                    title: p.hit.title.clone(),
                    heading: p.hit.heading.clone(),
                    page: p.hit.page,
                    snippet: snippet(&p.text, 300),
                    chunk_id: p.hit.chunk_id,
                }
            })
            .collect();
        let answer_text = if refused {
            let t = route::not_found_reply(lang);
            on_text(&t);
            t
        } else {
            v.text.clone()
        };
        trace.sentences = std::mem::take(&mut v.checks);
        inj.output = std::mem::take(&mut v.inj.output);
        trace.injection = Some(inj);
        let mut a = Answer {
            answer: answer_text,
            sources: if refused { Vec::new() } else { sources },
            grounded: !v.kept.is_empty(),
            refused,
            model: model_id,
            cache_hit: false,
            route: Intent::KbQuestion.as_str().into(),
            routing: choice,
            lang: lang.as_str().into(),
            timings,
            tokens: Tokens { prompt: g.prompt_tokens, completion, context: context_tokens },
            thread_id: None,
            message_id: None,
            trace,
        };
        self.remember(use_cache && !cancelled, kb_name, &version, &question, &qvec, &mut a)?;
        Ok(a)
    }

    fn remember(&self, use_cache: bool, kb: &str, version: &str, question: &str, qvec: &[f32], a: &mut Answer) -> Result<()> {
        if !use_cache || qvec.is_empty() {
            return Ok(());
        }
        let c = CachedAnswer {
            answer: a.answer.clone(),
            sources: a.sources.clone(),
            grounded: a.grounded,
            refused: a.refused,
            model: a.model.clone(),
            route: a.route.clone(),
            routing: a.routing.clone(),
            lang: a.lang.clone(),
            tokens: a.tokens.clone(),
        };
        let json = serde_json::to_string(&c).map_err(|e| AssistantError::Invalid(e.to_string()))?;
        let t = Instant::now();
        self.cache.store(kb, version, &cache_form(question), qvec, &json, self.cfg.cache.max_entries)?;
        a.timings.cache_ms += ms(t);
        Ok(())
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

fn bare_answer(text: String, intent: Intent, lang: Lang, routing: RouteChoice) -> Answer {
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
        trace: Trace::default(),
    }
}

/// The prompt: a short instruction, the numbered passages, the question
/// (passages spotlighted: delimited and datamarked, see tresor-guard).
pub fn prompt_messages(question: &str, passages: &[Passage], lang: Lang) -> Vec<ChatMessage> {
    prompt_messages_marked(question, passages, lang, Some(tresor_guard::injection::Marking::default()))
}

/// [`prompt_messages`] with a chosen spotlight marking; None: plain passages (firewall off).
pub fn prompt_messages_marked(question: &str, passages: &[Passage], lang: Lang, marking: Option<tresor_guard::injection::Marking>) -> Vec<ChatMessage> {
    use tresor_guard::injection::spotlight;
    let base = match lang {
        Lang::De => "Du beantwortest Fragen nur mit den Quellen. Antworte auf Deutsch in ein bis zwei kurzen Sätzen und übernimm die Worte der Quellen. Wenn die Quellen die Antwort nicht enthalten, sage, dass du es nicht weißt.",
        Lang::En => "You answer questions using only the sources. Answer in one or two short sentences, reusing the words of the sources. If the sources do not contain the answer, say that you do not know.",
    };
    let system = match marking {
        Some(m) => format!("{base}{}", spotlight::system_note(lang == Lang::De, m)),
        None => base.to_string(),
    };
    let mut user = String::from(if lang == Lang::De { "Quellen:\n" } else { "Sources:\n" });
    for (i, p) in passages.iter().enumerate() {
        match marking {
            Some(m) => user.push_str(&format!("[{}] {}\n\n", i + 1, spotlight::wrap(i + 1, &pack::label(&p.hit), p.text.trim(), m))),
            None => user.push_str(&format!("[{}] {}\n{}\n\n", i + 1, pack::label(&p.hit), p.text.trim())),
        }
    }
    user.push_str(if lang == Lang::De { "Frage: " } else { "Question: " });
    user.push_str(question);
    vec![ChatMessage::system(system), ChatMessage::user(user)]
}

/// The second try's prompt: only the best passage, and the instruction to answer with one of its
/// sentences word for word (the small models' own phrasing is what failed the citation check).
pub fn strict_prompt_messages(question: &str, passages: &[Passage], lang: Lang, marking: Option<tresor_guard::injection::Marking>) -> Vec<ChatMessage> {
    let mut m = prompt_messages_marked(question, passages, lang, marking);
    let strict = match lang {
        Lang::De => "Antworte mit genau einem Satz, den du wörtlich aus der Quelle übernimmst und der die Frage beantwortet. Füge nichts hinzu.",
        Lang::En => "Answer with exactly one sentence copied word for word from the source that answers the question. Add nothing else.",
    };
    m[0].content = format!("{strict} {}", m[0].content);
    m
}

/// Checks streamed answer sentences against the passages and emits the supported ones with their number.
struct Validator<'a> {
    question: &'a str,
    qvec: &'a [f32],
    passages: &'a [Passage],
    embedder: &'a dyn TextEmbedder,
    cfg: &'a AssistantConfig,
    /// (sentence, passage index) of the kept sentences.
    kept: Vec<(String, usize)>,
    /// Passage indices in the order of their first citation (citation n = position + 1).
    order: Vec<usize>,
    checks: Vec<SentenceCheck>,
    /// Unsupported sentences in a row.
    run: usize,
    text: String,
    ms: f64,
    /// The output check (injection firewall) and what it found.
    guard: Option<tresor_guard::injection::OutputGuard>,
    inj: firewall::InjectionTrace,
}

impl<'a> Validator<'a> {
    fn new(question: &'a str, qvec: &'a [f32], passages: &'a [Passage], embedder: &'a dyn TextEmbedder, cfg: &'a AssistantConfig) -> Self {
        Validator { question, qvec, passages, embedder, cfg, kept: Vec::new(), order: Vec::new(), checks: Vec::new(), run: 0, text: String::new(), ms: 0.0, guard: None, inj: Default::default() }
    }

    /// The sentence as the output check lets it through (markers removed, exfiltration links stripped), or None.
    fn guarded(&mut self, s: &str) -> Option<String> {
        let s = tresor_guard::injection::spotlight::unmark(s);
        match &self.guard {
            Some(g) => firewall::check_sentence(g, &s, &mut self.inj),
            None => Some(s),
        }
    }

    /// Generates with `model`, checking every sentence as it streams (supported ones go to
    /// `on_text`); stops the model after `max_unsupported_run` unsupported sentences in a row.
    fn generate(
        &mut self,
        model: &mut dyn ChatModel,
        msgs: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<tresor_llm::Generation> {
        let max_run = self.cfg.max_unsupported_run;
        let mut stream = SentenceStream::default();
        let g = model.generate(msgs, params, &mut |piece| {
            for s in stream.push(piece) {
                self.sentence(&s, on_text);
            }
            if self.run >= max_run {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if self.run < max_run {
            for s in stream.finish() {
                self.sentence(&s, on_text);
            }
        }
        Ok(g)
    }

    fn sentence(&mut self, s: &str, on_text: &mut dyn FnMut(&str)) {
        let Some(s) = self.guarded(s) else {
            self.run += 1;
            self.checks.push(SentenceCheck {
                text: s.to_string(),
                passage: None,
                lexical: 0.0,
                cosine: 0.0,
                support: 0.0,
                kept: false,
                dropped: Some("injection firewall: follows an injected instruction or reveals the system prompt".into()),
            });
            return;
        };
        let s = s.as_str();
        let t = Instant::now();
        let svec = if cite::needs_embedding(s, self.question, self.passages, self.cfg.lexical_weight, self.cfg.support_threshold) {
            self.embedder.embed(&[s]).ok().and_then(|mut v| v.pop())
        } else {
            None
        };
        let mut c = cite::check(s, svec.as_deref(), Some(self.qvec), self.question, self.passages, self.cfg.lexical_weight, self.cfg.support_threshold);
        if c.kept && self.kept.iter().any(|(k, _)| jaccard(k, &c.text) > 0.8) {
            c.kept = false;
            c.dropped = Some("repeats an earlier sentence".into());
        }
        self.ms += ms(t);
        if c.kept {
            self.run = 0;
            let (text, pi) = (c.text.clone(), c.passage.unwrap_or(0));
            self.emit(&text, pi, on_text);
        } else {
            self.run += 1;
        }
        self.checks.push(c);
    }

    fn emit(&mut self, s: &str, pi: usize, on_text: &mut dyn FnMut(&str)) {
        let n = match self.order.iter().position(|&x| x == pi) {
            Some(i) => i + 1,
            None => {
                self.order.push(pi);
                self.order.len()
            }
        };
        let piece = format!("{}{} [{}]", if self.text.is_empty() { "" } else { " " }, s.trim(), n);
        self.text.push_str(&piece);
        on_text(&piece);
        self.kept.push((s.to_string(), pi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelSpec;
    use std::sync::Mutex;
    use tresor_kb::HashEmbedder;
    use tresor_llm::FinishReason;

    /// A chat model that writes a scripted answer and records its prompts.
    struct Scripted {
        reply: String,
        prompts: Arc<Mutex<Vec<String>>>,
    }

    impl ChatModel for Scripted {
        fn id(&self) -> &str {
            "scripted"
        }
        fn count_tokens(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
        fn context_length(&self) -> usize {
            2048
        }
        fn generate(
            &mut self,
            messages: &[ChatMessage],
            _params: &GenerateParams,
            on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
        ) -> Result<tresor_llm::Generation> {
            // a reply of several parts separated by "\n---\n": one part per call, the last one repeats
            let calls = {
                let mut p = self.prompts.lock().unwrap();
                p.push(messages.iter().map(|m| m.content.clone()).collect::<Vec<_>>().join("\n"));
                p.len()
            };
            let parts: Vec<&str> = self.reply.split("\n---\n").collect();
            let reply = parts[(calls - 1).min(parts.len() - 1)].to_string();
            let mut n = 0;
            let mut finish = FinishReason::Eos;
            for w in reply.split_inclusive(' ') {
                n += 1;
                if on_text(w).is_break() {
                    finish = FinishReason::Cancelled;
                    break;
                }
            }
            Ok(tresor_llm::Generation {
                text: reply,
                tokens: vec![0; n],
                finish,
                prompt_tokens: 100,
                reused_prompt_tokens: 0,
                prefill_ms: 1.0,
                ttft_ms: 2.0,
                total_ms: 3.0,
                decode_tps: 0.0,
            })
        }
    }

    struct Source_ {
        reply: Arc<Mutex<String>>,
        prompts: Arc<Mutex<Vec<String>>>,
        loads: Arc<Mutex<Vec<ModelSpec>>>,
    }

    impl ModelSource for Source_ {
        fn load(&mut self, spec: &ModelSpec) -> Result<Box<dyn ChatModel>> {
            self.loads.lock().unwrap().push(spec.clone());
            Ok(Box::new(Scripted { reply: self.reply.lock().unwrap().clone(), prompts: self.prompts.clone() }))
        }
        fn available(&self) -> Vec<(String, String)> {
            vec![("scripted".into(), "chat-small".into())]
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        data: PathBuf,
        docs: PathBuf,
        reply: Arc<Mutex<String>>,
        prompts: Arc<Mutex<Vec<String>>>,
        loads: Arc<Mutex<Vec<ModelSpec>>>,
    }

    fn fixture() -> (Fixture, Assistant) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(
            docs.join("vacation.md"),
            "# Vacation policy\n\n## Vacation days\n\nFull-time employees get 30 working days of paid vacation per calendar year. \
             Part-time employees get a pro-rated amount based on their working days per week.\n\n## Sick leave\n\n\
             Report sick to your manager before 9:30 on the first day. From the fourth day on, a doctor's certificate is required.\n",
        )
        .unwrap();
        std::fs::write(
            docs.join("urlaub.md"),
            "# Urlaub\n\n## Urlaubsanspruch\n\nVollzeitbeschäftigte haben Anspruch auf 30 Arbeitstage bezahlten Urlaub pro Kalenderjahr. \
             Der Urlaub wird im Personalportal beantragt.\n",
        )
        .unwrap();
        std::fs::write(docs.join("security.md"), "# IT security\n\nPasswords must have at least twelve characters and are never shared.\n").unwrap();
        let emb = HashEmbedder::new(256);
        crate::scratch::ingest_dir(&data, &test_key(), "default", &docs, &emb).unwrap();
        let f = Fixture {
            _dir: dir,
            data,
            docs,
            reply: Arc::new(Mutex::new(String::new())),
            prompts: Arc::new(Mutex::new(Vec::new())),
            loads: Arc::new(Mutex::new(Vec::new())),
        };
        let src = Source_ { reply: f.reply.clone(), prompts: f.prompts.clone(), loads: f.loads.clone() };
        let a = Assistant::new(AssistantConfig::default(), &f.data, &test_key(), Arc::new(emb), None, Box::new(src)).unwrap();
        (f, a)
    }

    /// The fixture's data dir is encrypted with this fixed key.
    fn test_key() -> WorkspaceKey {
        WorkspaceKey::from_bytes([9; 32])
    }

    fn ask(a: &mut Assistant, q: &str) -> (Answer, String) {
        let mut streamed = String::new();
        let ans = a
            .answer(&AskRequest { question: q.into(), kb: Some("default".into()), ..Default::default() }, &mut |p| streamed.push_str(p))
            .unwrap();
        (ans, streamed)
    }

    #[test]
    fn a_cancelled_answer_gets_no_extractive_fallback() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "The CEO owns a yacht in Monaco. ".into();
        let q = "How many vacation days do full-time employees get?";
        let (normal, _) = ask(&mut a, q);
        assert!(normal.trace.extractive, "unsupported model text falls back to extraction");
        let cancel = Some(Arc::new(std::sync::atomic::AtomicBool::new(true)));
        let req = AskRequest { question: q.into(), kb: Some("default".into()), no_cache: true, cancel, ..Default::default() };
        let mut streamed = String::new();
        let stopped = a.answer(&req, &mut |p| streamed.push_str(p)).unwrap();
        assert!(!stopped.trace.extractive);
        assert!(!stopped.refused && !stopped.grounded);
        assert!(streamed.is_empty(), "nothing after stop: {streamed:?}");
    }

    #[test]
    fn supported_sentences_are_cited_and_invented_ones_dropped() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() =
            "Full-time employees get 30 working days of paid vacation per year [7]. The CEO owns a yacht in Monaco. ".into();
        let (ans, streamed) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert_eq!(ans.answer, "Full-time employees get 30 working days of paid vacation per year. [1]");
        assert_eq!(streamed, ans.answer);
        assert!(ans.grounded && !ans.refused && !ans.cache_hit);
        assert_eq!(ans.sources.len(), 1);
        assert_eq!(ans.sources[0].n, 1);
        assert!(ans.sources[0].source.ends_with("vacation.md"), "{:?}", ans.sources);
        assert_eq!(ans.model, "scripted");
        assert_eq!(ans.route, "kb_question");
        assert_eq!(ans.routing.role, "chat-small");
        assert!(!ans.trace.extractive);
        let dropped: Vec<&SentenceCheck> = ans.trace.sentences.iter().filter(|c| !c.kept).collect();
        assert_eq!(dropped.len(), 1);
        assert!(dropped[0].text.contains("yacht"));
        // the prompt numbered the passages and carried the question
        let p = f.prompts.lock().unwrap()[0].clone();
        assert!(p.contains("[1] ") && p.contains("Question: How many vacation days"), "{p}");
        let _ = f.docs;
    }

    #[test]
    fn unsupported_generation_falls_back_to_extractive() {
        let (f, mut a) = fixture();
        a.config_mut().regenerate = true;
        *f.reply.lock().unwrap() = "Bananas are yellow. Penguins cannot fly. The sky is green.".into();
        let (ans, _) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert!(ans.trace.extractive, "{:?}", ans.trace.sentences);
        assert!(ans.answer.starts_with("Full-time employees get 30 working days of paid vacation per calendar year. [1]"), "{}", ans.answer);
        assert!(ans.grounded);
        // each try stopped after the configured run of unsupported sentences; the second try was
        // recorded and its prompt was the stricter one with the best passage only
        let re = ans.trace.regeneration.as_ref().expect("a second try");
        assert_eq!((re.sentences, re.kept), (a.config().max_unsupported_run, 0));
        assert_eq!(ans.trace.sentences.len(), 2 * a.config().max_unsupported_run);
        let prompts = f.prompts.lock().unwrap();
        assert_eq!(prompts.len(), 2);
        assert!(prompts[1].contains("copied word for word") && prompts[1].contains("[1] ") && !prompts[1].contains("[2] "), "{}", prompts[1]);
    }

    #[test]
    fn a_conversation_that_no_longer_fits_is_summarised_by_the_model() {
        let (f, mut a) = fixture();
        a.config_mut().history_tokens = 60;
        *f.reply.lock().unwrap() = "The user asked about the oldest topic zebra and got twelve days.\n---\nA general answer.".into();
        let mut history = vec![
            ChatMessage::user("What is the oldest topic zebra about?"),
            ChatMessage::assistant("It is about twelve days of something."),
        ];
        for i in 0..6 {
            history.push(ChatMessage::user(format!("follow-up question number {i} with a few more words in it")));
            history.push(ChatMessage::assistant(format!("answer number {i} with a few more words in it as well")));
        }
        let req = AskRequest { question: "What should I do next?".into(), history: history.clone(), ..Default::default() };
        let ans = a.answer(&req, &mut |_| {}).unwrap();
        assert_eq!(ans.route, "general");
        let h = ans.trace.history.as_ref().expect("summarised");
        assert!(h.by_model && h.summarised_turns > 0 && h.kept_turns > 0 && h.summarised_turns + h.kept_turns == history.len(), "{h:?}");
        assert!(h.summary_tokens > 0 && h.summary_tokens <= a.config().history_summary_tokens);
        let prompts = f.prompts.lock().unwrap().clone();
        assert_eq!(prompts.len(), 2, "one summary call, one answer call");
        assert!(prompts[0].contains("Summarise the conversation") && prompts[0].contains("oldest topic zebra"), "{}", prompts[0]);
        assert!(prompts[1].contains("Summary of the earlier conversation: The user asked about the oldest topic zebra"), "{}", prompts[1]);
        assert!(!prompts[1].contains("What is the oldest topic zebra about?"), "the old turn itself is gone: {}", prompts[1]);
        assert!(prompts[1].contains("answer number 5 with a few more words"), "the newest turn stays: {}", prompts[1]);
        assert_eq!(ans.answer, "A general answer.");
        // a conversation that fits goes in as it is, with no summary call
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "Fine.".into();
        let req = AskRequest { question: "What should I do next?".into(), history: history[..2].to_vec(), ..Default::default() };
        let ans = a.answer(&req, &mut |_| {}).unwrap();
        assert!(ans.trace.history.is_none());
        assert_eq!(f.prompts.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_supported_second_try_replaces_the_extractive_fallback() {
        assert!(!AssistantConfig::default().regenerate, "off by default (measured: it did not help)");
        let (f, mut a) = fixture();
        a.config_mut().regenerate = true;
        *f.reply.lock().unwrap() =
            "Bananas are yellow. Penguins cannot fly.\n---\nFull-time employees get 30 working days of paid vacation per calendar year.".into();
        let (ans, streamed) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert!(!ans.trace.extractive && ans.grounded, "{:?}", ans.trace.sentences);
        assert_eq!(ans.answer, "Full-time employees get 30 working days of paid vacation per calendar year. [1]");
        assert_eq!(streamed, ans.answer, "nothing of the failed first try was streamed");
        let re = ans.trace.regeneration.as_ref().unwrap();
        assert_eq!(re.kept, 1);
        // switched off: straight to the extractive answer, one model call
        let (f, mut a) = fixture();
        a.config_mut().regenerate = false;
        *f.reply.lock().unwrap() = "Bananas are yellow. Penguins cannot fly.\n---\nFull-time employees get 30 working days.".into();
        let (ans, _) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert!(ans.trace.extractive && ans.trace.regeneration.is_none());
        assert_eq!(f.prompts.lock().unwrap().len(), 1);
    }

    #[test]
    fn no_evidence_is_refused_in_the_question_language() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "Invented.".into();
        let (en, _) = ask(&mut a, "What is the capital of Australia?");
        assert!(en.refused && !en.grounded, "{:?}", en.trace.evidence);
        assert_eq!(en.answer, route::not_found_reply(Lang::En));
        assert!(en.sources.is_empty());
        let (de, _) = ask(&mut a, "Wie hoch ist der Aktienindex in Japan?");
        assert!(de.refused);
        assert_eq!(de.answer, route::not_found_reply(Lang::De));
        assert_eq!(de.lang, "de");
        // no model was needed
        assert!(f.loads.lock().unwrap().is_empty());
    }

    #[test]
    fn a_name_the_documents_never_mention_is_not_found_even_with_strong_evidence() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "Full-time employees get 30 working days of paid vacation.".into();
        // every other word matches the vacation policy; "Norway" occurs in no chunk
        let (no, _) = ask(&mut a, "How many vacation days do full-time employees get in Norway?");
        assert!(no.refused && !no.grounded, "{:?}", no.trace);
        assert_eq!(no.trace.unknown_names, vec!["norway".to_string()]);
        assert!(no.trace.evidence.unwrap() >= a.cfg.evidence_threshold, "{:?}", no.trace.evidence);
        // the same question without the name is answered, and a name the documents hold is no reason
        let (yes, _) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert!(yes.grounded, "{:?}", yes.trace);
        let (it, _) = ask(&mut a, "How long must IT security passwords be?");
        assert!(it.trace.unknown_names.is_empty() && !it.refused, "{:?}", it.trace);
        // the check can be switched off (the cache would still hold the refusal)
        a.cfg.refuse_unknown_names = false;
        a.cfg.cache.enabled = false;
        let (off, _) = ask(&mut a, "How many vacation days do full-time employees get in Norway?");
        assert!(!off.refused && off.trace.unknown_names.is_empty(), "{:?}", off.trace);
    }

    #[test]
    fn german_question_gets_a_german_grounded_answer() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "You get thirty days.".into();
        let (ans, _) = ask(&mut a, "Wie viele Urlaubstage haben Vollzeitbeschäftigte?");
        assert!(ans.grounded, "{:?}", ans.trace);
        assert!(ans.answer.contains("30 Arbeitstage"), "{}", ans.answer);
        assert!(ans.sources[0].source.ends_with("urlaub.md"));
        assert!(f.prompts.lock().unwrap()[0].contains("Frage: "));
    }

    #[test]
    fn second_ask_is_a_cache_hit_until_the_kb_changes() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "Full-time employees get 30 working days of paid vacation per year.".into();
        let (first, _) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert!(!first.cache_hit);
        let (second, streamed) = ask(&mut a, "how many vacation days do full-time employees get");
        assert!(second.cache_hit);
        assert_eq!(second.answer, first.answer);
        assert_eq!(streamed, first.answer);
        assert_eq!(second.sources.len(), first.sources.len());
        assert_eq!(f.prompts.lock().unwrap().len(), 1);
        // change the knowledge base: the cache no longer answers
        std::fs::write(f.docs.join("new.md"), "# New\n\nThe office is closed on Fridays.\n").unwrap();
        crate::scratch::ingest_dir(&f.data, &test_key(), "default", &f.docs, &HashEmbedder::new(256)).unwrap();
        let (third, _) = ask(&mut a, "How many vacation days do full-time employees get?");
        assert!(!third.cache_hit);
        let s = a.cache_stats().unwrap();
        assert_eq!(s.hits, 1);
    }

    #[test]
    fn threads_keep_history_and_follow_ups_are_rewritten() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "Part-time employees get a pro-rated amount based on their working days per week.".into();
        let t = a.threads().create_thread("Vacation", Some("default")).unwrap();
        let req = |q: &str| AskRequest { question: q.into(), kb: Some("default".into()), thread: Some(t), ..Default::default() };
        a.answer(&req("How many vacation days do full-time employees get?"), &mut |_| {}).unwrap();
        let ans = a.answer(&req("and for part-time staff?"), &mut |_| {}).unwrap();
        let rw = ans.trace.rewritten.clone().unwrap();
        assert!(rw.contains("vacation days") && rw.contains("part-time"), "{rw}");
        assert!(ans.grounded);
        assert_eq!(ans.thread_id, Some(t));
        let msgs = a.threads().messages(t).unwrap();
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[3].meta.as_ref().unwrap()["sources"][0]["n"], 1);
        a.threads()
            .add_feedback(&crate::store::Feedback { message_id: ans.message_id, thumbs: Some(1), csat: Some(4), ..Default::default() })
            .unwrap();
    }

    #[test]
    fn small_talk_scope_routing_and_bad_input() {
        let (f, mut a) = fixture();
        *f.reply.lock().unwrap() = "Full-time employees get 30 working days of paid vacation per year.".into();
        let (hi, _) = ask(&mut a, "Hallo!");
        assert_eq!(hi.route, "small_talk");
        assert!(hi.answer.starts_with("Hallo"));
        let (w, _) = ask(&mut a, "What's the weather tomorrow?");
        assert_eq!(w.route, "out_of_scope");
        assert!(w.refused);
        let (multi, _) = ask(&mut a, "How many vacation days do full-time employees get? And what about part-time employees?");
        assert_eq!(multi.routing.role, "chat-premium");
        assert_eq!(f.loads.lock().unwrap().last(), Some(&ModelSpec::Role(Role::ChatPremium)));
        assert!(matches!(a.answer(&AskRequest { question: "  \n".into(), ..Default::default() }, &mut |_| {}), Err(AssistantError::EmptyQuestion)));
        let missing = AskRequest { question: "x y z?".into(), kb: Some("nope".into()), ..Default::default() };
        assert!(matches!(a.answer(&missing, &mut |_| {}), Err(AssistantError::Kb(tresor_kb::KbError::NoSuchKb(_)))));
        let bad = AskRequest { question: "x y z?".into(), kb: Some("../etc".into()), ..Default::default() };
        assert!(matches!(a.answer(&bad, &mut |_| {}), Err(AssistantError::BadKbName(_))));
    }
}
