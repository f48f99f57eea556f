//! The grounded answer, as the stages a knowledge-base question passes, in
//! order: [`route`](Assistant::route) (follow-up rewriting, model choice) →
//! [`retrieve`](Assistant::retrieve) (question vector, semantic cache, hybrid
//! search) → [`score`](Assistant::score) (evidence, unknown names, passage
//! screening) → [`pack`](Assistant::pack) (context budget, prompt, output
//! guard) → [`generate`](Assistant::generate) (streamed sentence
//! validation, a stricter second try, the extractive fallback) →
//! [`validate`] (sources, refusal, the answer) → [`record`](Assistant::record)
//! (the semantic cache).
//!
//! Owns: the order of those stages and what each hands the next ([`Ask`],
//! [`Record`], [`Packed`]). Never: the policy checks and the audit entry
//! (`answer` in `mod.rs` runs them around every route), threads, or a
//! citation rule of its own (`cite.rs`).

use std::collections::HashMap;
use std::time::Instant;

use tresor_guard::injection::{InjectionOutputGuard, Marking};
use tresor_kb::lang::Lang;
use tresor_kb::{search, Hit, Kb, SearchOptions};
use tresor_llm::{ChatMessage, GenerateParams};

use super::prompt::{evidence_prompt_messages, strict_prompt_messages};
use super::validate::Validator;
use super::{bare_answer, ms, passage_trace, snippet, spec_for, Answer, AskRequest, Assistant, CachedAnswer, Regeneration, Source, Timings, Tokens, Trace};
use crate::choice::{self, Candidate};
use crate::cite;
use crate::error::{AssistantError, Result};
use crate::firewall;
use crate::models::ModelSpec;
use crate::pack::{self, Passage};
use crate::route::{self, Intent, RouteChoice};
use crate::text::cache_form;

/// The question as the stages read it (fixed once retrieval has run).
pub(super) struct Ask<'r> {
    pub kb: &'r str,
    /// The standalone question (a follow-up rewritten).
    pub question: String,
    pub lang: Lang,
    pub req: &'r AskRequest,
    pub choice: RouteChoice,
    pub use_cache: bool,
    /// The knowledge base's version (set by `retrieve`).
    pub version: String,
    /// The question's embedding (set by `retrieve`).
    pub qvec: Vec<f32>,
    pub t0: Instant,
}

/// What the stages write down as they go.
#[derive(Default)]
pub(super) struct Record {
    pub trace: Trace,
    pub timings: Timings,
    pub inj: firewall::InjectionTrace,
}

/// Retrieval's outcome: a cached answer, or hits with their stored vectors.
pub(super) enum Retrieved {
    Cached(Box<Answer>),
    Hits(Vec<(Hit, Vec<f32>)>),
}

/// The prompt and what it was built from.
pub(super) struct Packed {
    pub spec: ModelSpec,
    pub params: GenerateParams,
    pub passages: Vec<Passage>,
    pub msgs: Vec<ChatMessage>,
    pub marking: Option<Marking>,
    pub context_tokens: usize,
    /// The injection firewall's check of every answer sentence (None: off).
    pub guard: Option<InjectionOutputGuard>,
    /// The passage sentences that answer best (`choice.rs`): named in the prompt, and the
    /// extractive answer when the model's text is not supported.
    pub evidence: Vec<(String, usize)>,
    /// The candidate sentences' embeddings (one batch), reused when the model copies a sentence.
    pub sentence_vecs: HashMap<String, Vec<f32>>,
}

/// What the model run produced, besides the validator's sentences.
pub(super) struct Generated {
    pub prompt_tokens: usize,
    pub completion: usize,
    pub cancelled: bool,
    pub model_id: String,
}

impl Assistant {
    /// A knowledge-base question from start to answer (the stages in order).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn grounded(
        &mut self,
        q: &str,
        kb: &str,
        history: &[ChatMessage],
        req: &AskRequest,
        lang: Lang,
        t0: Instant,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        // `ttft_ms` is the first text the user sees (validated, extractive or a refusal)
        let mut first_visible: Option<Instant> = None;
        let on_text = &mut |s: &str| {
            if first_visible.is_none() && !s.trim().is_empty() {
                first_visible = Some(Instant::now());
            }
            on_text(s)
        };
        let a = self.grounded_inner(q, kb, history, req, lang, t0, on_text)?;
        Ok(with_visible_ttft(a, first_visible, t0))
    }

    #[allow(clippy::too_many_arguments)]
    fn grounded_inner(
        &mut self,
        q: &str,
        kb: &str,
        history: &[ChatMessage],
        req: &AskRequest,
        lang: Lang,
        t0: Instant,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let (mut ask, mut rec) = self.route(q, kb, history, req, lang, t0);
        let hits = match self.retrieve(&mut ask, &mut rec, on_text)? {
            Retrieved::Cached(a) => return Ok(*a),
            Retrieved::Hits(h) => h,
        };
        let t = Instant::now();
        let scored = self.score(&ask, &mut rec, hits)?;
        let best = scored.first().map(|p| p.evidence).unwrap_or(0.0);
        rec.trace.evidence = Some(best);
        rec.trace.evidence_threshold = Some(self.cfg.evidence_threshold);
        // a question for a checkable fact may go on from a lower evidence: the chosen sentence
        // must then hold that kind of fact (below)
        let asked = choice::Asked::of(&ask.question);
        let typed = choice::checkable(asked.t);
        let threshold = if typed { self.cfg.typed_evidence_threshold.min(self.cfg.evidence_threshold) } else { self.cfg.evidence_threshold };
        let early = if !rec.trace.unknown_names.is_empty() {
            Some("unknown_names")
        } else if best < threshold {
            Some("evidence")
        } else {
            None
        };
        if let Some(reason) = early {
            rec.trace.passages = scored.iter().map(|p| passage_trace(p, false)).collect();
            rec.timings.pack_ms = ms(t);
            return self.refuse(&ask, rec, reason, on_text);
        }
        let mut packed = self.pack(&ask, &mut rec, scored)?;
        rec.timings.pack_ms = ms(t) - rec.timings.load_ms;
        let must_hold = typed && (best < self.cfg.evidence_threshold || self.cfg.refuse_missing_answer_type);
        if must_hold && !packed.evidence.iter().any(|(s, _)| asked.answered_by(s)) {
            return self.refuse(&ask, rec, "answer_type", on_text);
        }
        let cfg = self.cfg.clone();
        let embedder = self.embedder.clone();
        let guard = packed.guard.take();
        let mut v = Validator::new(&ask.question, &ask.qvec, &packed.passages, embedder.as_ref(), &cfg);
        v.guard = guard;
        v.vecs = std::mem::take(&mut packed.sentence_vecs);
        v.evidence = packed.evidence.clone();
        let g = self.generate(&ask, &mut rec, &packed, &mut v, on_text)?;
        // a stopped answer is not worth caching
        let keep = ask.use_cache && !g.cancelled;
        let mut a = validate(&ask, rec, &packed, v, g, on_text);
        self.record(&ask, &mut a, keep)?;
        Ok(a)
    }

    /// "Not in your documents", decided before the model wrote anything (`reason`: see
    /// `Trace::refusal`), recorded like any answer.
    fn refuse(&mut self, ask: &Ask, mut rec: Record, reason: &str, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        rec.trace.refusal = Some(reason.to_string());
        let mut a = refusal(ask, rec, on_text);
        self.record(ask, &mut a, ask.use_cache)?;
        Ok(a)
    }

    /// Route: the standalone question (a follow-up rewritten with the
    /// conversation) and the chat model it goes to.
    fn route<'r>(&self, q: &str, kb: &'r str, history: &[ChatMessage], req: &'r AskRequest, lang: Lang, t0: Instant) -> (Ask<'r>, Record) {
        let rewritten = route::rewrite_follow_up(q, history);
        let question = rewritten.clone().unwrap_or_else(|| q.to_string());
        let choice = route::choose_model(&question, &self.cfg.routing, req.model.as_deref());
        let use_cache = self.cfg.cache.enabled && !req.no_cache;
        let trace = Trace { rewritten, kb: Some(kb.to_string()), ..Default::default() };
        let ask = Ask { kb, question, lang, req, choice, use_cache, version: String::new(), qvec: Vec::new(), t0 };
        (ask, Record { trace, ..Default::default() })
    }

    /// Retrieve: the question's vector (once: the policy and the firewall
    /// embedded the same text already, `memo.rs`), a semantic-cache hit, else
    /// tresor-kb's hybrid search (+ rerank) and the hits' stored vectors.
    fn retrieve(&mut self, ask: &mut Ask, rec: &mut Record, on_text: &mut dyn FnMut(&str)) -> Result<Retrieved> {
        let t = Instant::now();
        let (_, version) = self.kb(ask.kb)?;
        rec.trace.kb_version = Some(version.clone());
        ask.version = version;
        let t_embed = Instant::now();
        ask.qvec = self.embedder.embed(&[&ask.question])?.pop().unwrap_or_default();
        rec.timings.embed_ms = ms(t_embed);
        if ask.use_cache {
            if let Some(a) = self.cached(ask, rec, t, on_text)? {
                return Ok(Retrieved::Cached(Box::new(a)));
            }
        }
        let opts = SearchOptions { k: self.cfg.retrieve_k, ..SearchOptions::default() };
        let embedder = self.embedder.clone();
        let reranker = self.reranker.clone();
        let (kb, _) = self.kb(ask.kb)?;
        let t_search = Instant::now();
        let res = search(kb, &ask.question, Some(embedder.as_ref()), reranker.as_deref(), &opts)?;
        let ids: Vec<i64> = res.hits.iter().map(|h| h.chunk_id).collect();
        let mut embs: HashMap<i64, Vec<f32>> = kb.chunks_by_id(&ids)?.into_iter().map(|c| (c.id, c.embedding)).collect();
        rec.timings.search_ms = ms(t_search);
        rec.trace.retrieval = Some(res.trace);
        rec.timings.retrieve_ms = ms(t);
        Ok(Retrieved::Hits(
            res.hits
                .into_iter()
                .map(|h| {
                    let e = embs.remove(&h.chunk_id).unwrap_or_default();
                    (h, e)
                })
                .collect(),
        ))
    }

    /// A cached answer to a question close enough to this one, for this version of the knowledge base.
    fn cached(&mut self, ask: &Ask, rec: &mut Record, t: Instant, on_text: &mut dyn FnMut(&str)) -> Result<Option<Answer>> {
        let t_cache = Instant::now();
        let hit = self.cache.lookup(ask.kb, &ask.version, &ask.qvec, self.cfg.cache.similarity_threshold)?;
        rec.timings.cache_ms = ms(t_cache);
        let Some(hit) = hit else { return Ok(None) };
        let Ok(c) = serde_json::from_str::<CachedAnswer>(&hit.answer_json) else { return Ok(None) };
        on_text(&c.answer);
        rec.trace.cache_similarity = Some(hit.similarity);
        rec.trace.cached_question = Some(hit.question);
        rec.timings.retrieve_ms = ms(t);
        Ok(Some(Answer {
            answer: c.answer,
            sources: c.sources,
            grounded: c.grounded,
            refused: c.refused,
            model: c.model,
            cache_hit: true,
            route: c.route,
            routing: c.routing,
            lang: c.lang,
            timings: std::mem::take(&mut rec.timings),
            tokens: Tokens { prompt: 0, completion: 0, context: 0 },
            thread_id: None,
            message_id: None,
            actions: Vec::new(),
            offer_handoff: false,
            ask_csat: false,
            handoff: None,
            trace: std::mem::take(&mut rec.trace),
            variant: String::new(),
        }))
    }

    /// Score: each passage's evidence for the question, the names it asks
    /// about that the documents never mention, and the injection firewall's
    /// passage screen (flagged passages leave, unless the policy says warn).
    fn score(&mut self, ask: &Ask, rec: &mut Record, hits: Vec<(Hit, Vec<f32>)>) -> Result<Vec<Passage>> {
        let (lexical_weight, refuse_unknown_names) = (self.cfg.lexical_weight, self.cfg.refuse_unknown_names);
        let injection = self.injection();
        let embedder = self.embedder.clone();
        let (kb, _) = self.kb(ask.kb)?;
        let chunks = kb.chunk_count()?;
        let kb: &Kb = kb;
        let scored = pack::score(&ask.question, &ask.qvec, hits, lexical_weight, &|t| kb.term_idf(t, chunks));
        // a name the documents never mention ("… in Germany" against a US-only benefits page)
        // … or a model, version or item number no retrieved passage mentions ("LP-50" against
        // the LP-40's manual, "4.3" against release notes up to 4.2)
        rec.trace.unknown_names = if refuse_unknown_names {
            let mut unknown: Vec<String> = crate::text::names(&ask.question, ask.lang)
                .into_iter()
                .filter(|n| kb.term_docs(n) == 0 && kb.term_docs(&tresor_kb::analyze::stem(n, Lang::En)) == 0)
                .collect();
            for code in crate::text::codes(&ask.question) {
                let seen = scored.iter().any(|p| crate::text::mentions_code(&p.hit.text, &code) || crate::text::mentions_code(&p.hit.title, &code));
                if !seen && !unknown.contains(&code) {
                    unknown.push(code);
                }
            }
            unknown
        } else {
            Vec::new()
        };
        let t_fw = Instant::now();
        let scored = if injection.enabled { firewall::screen_passages(scored, embedder.as_ref(), &injection, &mut rec.inj) } else { scored };
        rec.timings.firewall_ms += ms(t_fw);
        Ok(scored)
    }

    /// Pack: loads the chat model (its tokenizer counts the budget), packs
    /// the best passages into the context budget and builds the prompt, in
    /// the question's language, passages spotlighted.
    fn pack(&mut self, ask: &Ask, rec: &mut Record, scored: Vec<Passage>) -> Result<Packed> {
        let spec = spec_for(&ask.choice, ask.req.model.as_deref());
        let mut params = self.gen_params(self.cfg.max_answer_tokens);
        params.cancel = ask.req.cancel.clone();
        let model = Self::model(&mut self.loaded, &mut self.models, &spec, &mut rec.timings.load_ms)?;
        let all = scored.clone();
        let (passages, rep) = pack::pack(scored, self.cfg.context_tokens, self.cfg.max_passages, self.cfg.passage_relative_evidence, &|s| model.count_tokens(s));
        rec.trace.passages = all
            .iter()
            .map(|p| {
                let packed = passages.iter().find(|x| x.hit.chunk_id == p.hit.chunk_id);
                passage_trace(packed.unwrap_or(p), packed.is_some())
            })
            .collect();
        let context_tokens = rep.tokens;
        rec.trace.pack = Some(rep);
        let inj = &self.cfg.injection;
        let marking = inj.enabled.then_some(inj.spotlight);
        let t_choice = Instant::now();
        let (cands, sentence_vecs) = self.candidates(ask, &passages);
        let evidence = choice::choose(&cands, &choice::FITTED, self.cfg.extractive_sentences);
        rec.trace.answer_type = Some(choice::answer_type(&ask.question));
        rec.trace.evidence_sentences = top(&cands, 3);
        rec.timings.validate_ms += ms(t_choice);
        let mut msgs = evidence_prompt_messages(&ask.question, &passages, ask.lang, marking, &evidence);
        super::prompt::apply_release(&mut msgs, self.prompt_override.as_ref(), ask.lang);
        let t_fw = Instant::now();
        let guard = (inj.enabled && inj.output_check).then(|| firewall::output_guard(&msgs[0].content, &passages, &mut rec.inj));
        rec.timings.firewall_ms += ms(t_fw);
        Ok(Packed { spec, params, passages, msgs, marking, context_tokens, guard, evidence, sentence_vecs })
    }

    /// Every candidate answer sentence of `passages` with its features (`choice.rs`); their
    /// embeddings in one batch (kept for the citation check).
    fn candidates(&self, ask: &Ask, passages: &[Passage]) -> (Vec<Candidate>, HashMap<String, Vec<f32>>) {
        let texts = choice::candidate_texts(passages);
        let strs: Vec<&str> = texts.iter().map(|t| t.2.as_str()).collect();
        let vecs = if strs.is_empty() || ask.qvec.is_empty() { Vec::new() } else { self.embedder.embed(&strs).unwrap_or_default() };
        let cache: HashMap<String, Vec<f32>> = strs.iter().map(|s| s.to_string()).zip(vecs.iter().cloned()).collect();
        (choice::candidates(&ask.question, &ask.qvec, passages, texts, &vecs), cache)
    }

    /// The candidate answer sentences of a question's packed passages, with their features and
    /// whether the fit would choose them — what `tresor eval answers --fit-choice` fits the
    /// weights on. Nothing is generated, cached or recorded.
    pub fn answer_candidates(&mut self, kb: &str, question: &str) -> Result<Vec<Candidate>> {
        let req = AskRequest { question: question.to_string(), kb: Some(kb.to_string()), no_cache: true, ..Default::default() };
        let lang = crate::text::language(question);
        let (mut ask, mut rec) = self.route(question, kb, &[], &req, lang, Instant::now());
        ask.use_cache = false;
        let hits = match self.retrieve(&mut ask, &mut rec, &mut |_| {})? {
            Retrieved::Cached(_) => return Ok(Vec::new()),
            Retrieved::Hits(h) => h,
        };
        let scored = self.score(&ask, &mut rec, hits)?;
        if scored.is_empty() {
            return Ok(Vec::new());
        }
        let packed = self.pack(&ask, &mut rec, scored)?;
        Ok(self.candidates(&ask, &packed.passages).0)
    }

    /// Generate: the model writes, every sentence is checked against the
    /// passages as it streams (`v`); when none is supported, one stricter try
    /// with the best passage only; when still none, the extractive fallback.
    fn generate(&mut self, ask: &Ask, rec: &mut Record, packed: &Packed, v: &mut Validator, on_text: &mut dyn FnMut(&str)) -> Result<Generated> {
        let model = Self::model(&mut self.loaded, &mut self.models, &packed.spec, &mut rec.timings.load_ms)?;
        let t_gen = Instant::now();
        let g = v.generate(model.as_mut(), &packed.msgs, &packed.params, on_text)?;
        let mut gen_elapsed = ms(t_gen);
        let mut completion = g.tokens.len();
        // nothing the model wrote is supported: one more try with a stricter prompt that shows only
        // the best passage (every packed passage still counts for the citation check)
        rec.trace.stopped_early = v.stopped_early;
        if v.kept.is_empty() && !stopped(ask.req) && v.cfg.regenerate && !packed.passages.is_empty() {
            let mut strict = strict_prompt_messages(&ask.question, &packed.passages[..1], ask.lang, packed.marking);
            super::prompt::apply_release(&mut strict, self.prompt_override.as_ref(), ask.lang);
            if let Some(g) = v.guard.as_mut() {
                *g = firewall::output_guard(&strict[0].content, &packed.passages, &mut rec.inj);
            }
            let first_checks = v.checks.len();
            v.run = 0;
            let t_re = Instant::now();
            let g2 = v.generate(model.as_mut(), &strict, &packed.params, on_text)?;
            gen_elapsed += ms(t_re);
            completion += g2.tokens.len();
            rec.trace.regeneration = Some(Regeneration {
                prompt_tokens: g2.prompt_tokens,
                completion_tokens: g2.tokens.len(),
                sentences: v.checks.len() - first_checks,
                kept: v.kept.len(),
                ms: ms(t_re),
            });
        }
        let cancelled = stopped(ask.req);
        if v.kept.is_empty() && !cancelled {
            rec.trace.extractive = true;
            let chosen = if packed.evidence.is_empty() { cite::extractive(&packed.passages, v.cfg.extractive_sentences) } else { packed.evidence.clone() };
            for (s, pi) in chosen {
                if let Some(s) = v.guarded(&s) {
                    v.emit(&s, pi, on_text);
                }
            }
        }
        rec.timings.validate_ms = v.ms;
        rec.timings.prefill_ms = g.prefill_ms;
        rec.timings.generate_ms = gen_elapsed;
        rec.timings.model_first_token_ms = (t_gen.duration_since(ask.t0).as_secs_f64() * 1e3) + g.ttft_ms;
        // until the first visible text is timed (`grounded`), the model's first token
        rec.timings.ttft_ms = rec.timings.model_first_token_ms;
        rec.trace.finish = Some(format!("{:?}", g.finish).to_lowercase());
        rec.trace.backend = model.backend();
        Ok(Generated { prompt_tokens: g.prompt_tokens, completion, cancelled, model_id: model.id().to_string() })
    }

    /// Record: keeps the answer in the semantic cache (when `keep`).
    pub(super) fn record(&self, ask: &Ask, a: &mut Answer, keep: bool) -> Result<()> {
        if !keep || ask.qvec.is_empty() {
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
        self.cache.store(ask.kb, &ask.version, &cache_form(&ask.question), &ask.qvec, &json, self.cfg.cache.max_entries)?;
        a.timings.cache_ms += ms(t);
        Ok(())
    }
}

/// The best `n` candidates by the fitted weights, best first (for the trace).
fn top(cands: &[Candidate], n: usize) -> Vec<Candidate> {
    let mut v: Vec<&Candidate> = cands.iter().collect();
    v.sort_by(|a, b| b.score(&choice::FITTED).total_cmp(&a.score(&choice::FITTED)));
    v.into_iter().take(n).cloned().collect()
}

/// Sets `ttft_ms` to the first text the user saw (`first`), when any was shown.
fn with_visible_ttft(mut a: Answer, first: Option<Instant>, t0: Instant) -> Answer {
    if let Some(t) = first {
        a.timings.ttft_ms = t.duration_since(t0).as_secs_f64() * 1e3;
    }
    a
}

/// The user pressed stop.
fn stopped(req: &AskRequest) -> bool {
    req.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
}

/// "Not in your documents", in the question's language (too little evidence, or an unknown name).
fn refusal(ask: &Ask, rec: Record, on_text: &mut dyn FnMut(&str)) -> Answer {
    let text = route::not_found_reply(ask.lang);
    on_text(&text);
    let mut a = bare_answer(text, Intent::KbQuestion, ask.lang, ask.choice.clone());
    a.refused = true;
    a.timings = rec.timings;
    a.trace = rec.trace;
    a.trace.injection = Some(rec.inj);
    a
}

/// Validate: the kept sentences become the answer with its numbered sources;
/// nothing kept (and not stopped) is "not in your documents".
fn validate(ask: &Ask, mut rec: Record, packed: &Packed, mut v: Validator, g: Generated, on_text: &mut dyn FnMut(&str)) -> Answer {
    // a stopped answer is neither a refusal nor worth caching
    let refused = v.kept.is_empty() && !g.cancelled;
    let sources: Vec<Source> = v
        .order
        .iter()
        .enumerate()
        .map(|(i, &pi)| {
            let p = &packed.passages[pi];
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
    let answer = if refused {
        let t = route::not_found_reply(ask.lang);
        on_text(&t);
        t
    } else {
        v.text.clone()
    };
    rec.trace.sentences = std::mem::take(&mut v.checks);
    rec.inj.output = std::mem::take(&mut v.inj.output);
    rec.trace.injection = Some(rec.inj);
    Answer {
        answer,
        sources: if refused { Vec::new() } else { sources },
        grounded: !v.kept.is_empty(),
        refused,
        model: g.model_id,
        cache_hit: false,
        route: Intent::KbQuestion.as_str().into(),
        routing: ask.choice.clone(),
        lang: ask.lang.as_str().into(),
        timings: rec.timings,
        tokens: Tokens { prompt: g.prompt_tokens, completion: g.completion, context: packed.context_tokens },
        thread_id: None,
        message_id: None,
        actions: Vec::new(),
        offer_handoff: false,
        ask_csat: false,
        handoff: None,
        trace: rec.trace,
        variant: String::new(),
    }
}
