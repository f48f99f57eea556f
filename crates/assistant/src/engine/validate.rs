//! Streamed sentence validation: every answer sentence the model writes is
//! checked against the packed passages (`cite.rs`) and the injection
//! firewall's output check as it streams; supported ones are emitted with
//! their citation number. The first unsupported sentence before anything was
//! shown stops the model at once (the caller shows the extractive answer
//! instead of making the user wait for text that would be thrown away);
//! after a supported one, a run of `max_unsupported_run` does. A first
//! sentence that runs `first_sentence_max_words` words without ending is
//! decided on as it stands (shown, marked unfinished, when it is supported
//! and states the chosen evidence; else the fallback) and the model stopped:
//! the first visible text comes at most that many words after the model's
//! first token.
//!
//! Owns: the numbering of citations in order of first use, the stop rules.
//! Never: the support score itself (`cite.rs`).

use std::ops::ControlFlow;
use std::time::Instant;

use tresor_kb::TextEmbedder;
use tresor_llm::{ChatMessage, GenerateParams};

use super::ms;
use crate::cite::{self, SentenceCheck, SentenceStream};
use crate::config::AssistantConfig;
use crate::error::Result;
use crate::firewall;
use crate::models::ChatModel;
use crate::pack::Passage;
use crate::text::jaccard;

/// Checks streamed answer sentences against the passages and emits the supported ones with their number.
pub(super) struct Validator<'a> {
    pub(super) question: &'a str,
    pub(super) qvec: &'a [f32],
    pub(super) passages: &'a [Passage],
    pub(super) embedder: &'a dyn TextEmbedder,
    pub(super) cfg: &'a AssistantConfig,
    /// (sentence, passage index) of the kept sentences.
    pub(super) kept: Vec<(String, usize)>,
    /// Passage indices in the order of their first citation (citation n = position + 1).
    pub(super) order: Vec<usize>,
    pub(super) checks: Vec<SentenceCheck>,
    /// Unsupported sentences in a row.
    pub(super) run: usize,
    pub(super) text: String,
    pub(super) ms: f64,
    /// The output check (injection firewall) and what it found.
    pub(super) guard: Option<tresor_guard::injection::InjectionOutputGuard>,
    pub(super) inj: firewall::InjectionTrace,
    /// Sentence embeddings computed already (the candidate sentences' batch), by text.
    pub(super) vecs: std::collections::HashMap<String, Vec<f32>>,
    /// The model was stopped because its first sentence was unsupported (or ran past
    /// `first_sentence_max_words` and was not shown).
    pub(super) stopped_early: bool,
    /// The chosen evidence (`choice.rs`): the answer's first sentence must state it.
    pub(super) evidence: Vec<(String, usize)>,
}

impl<'a> Validator<'a> {
    pub(super) fn new(question: &'a str, qvec: &'a [f32], passages: &'a [Passage], embedder: &'a dyn TextEmbedder, cfg: &'a AssistantConfig) -> Self {
        Validator { question, qvec, passages, embedder, cfg, kept: Vec::new(), order: Vec::new(), checks: Vec::new(), run: 0, text: String::new(), ms: 0.0, guard: None, inj: Default::default(), vecs: Default::default(), stopped_early: false, evidence: Vec::new() }
    }

    /// The sentence as the output check lets it through (markers removed, exfiltration links stripped), or None.
    pub(super) fn guarded(&mut self, s: &str) -> Option<String> {
        let s = tresor_guard::injection::spotlight::unmark(s);
        match &self.guard {
            Some(g) => firewall::check_sentence(g, &s, &mut self.inj),
            None => Some(s),
        }
    }

    /// Generates with `model`, checking every sentence as it streams (supported ones go to
    /// `on_text`); stops the model after `max_unsupported_run` unsupported sentences in a row.
    pub(super) fn generate(
        &mut self,
        model: &mut dyn ChatModel,
        msgs: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<tresor_llm::Generation> {
        let max_run = self.cfg.max_unsupported_run.max(1);
        let cap = self.cfg.first_sentence_max_words;
        let mut stream = SentenceStream::default();
        let mut stop = false;
        let g = model.generate(msgs, params, &mut |piece| {
            for s in stream.push(piece) {
                self.sentence(&s, on_text);
                // nothing shown yet and this sentence failed: stop now, the fallback shows at once
                if self.run >= max_run || (self.run > 0 && self.kept.is_empty()) {
                    self.stopped_early |= self.kept.is_empty();
                    stop = true;
                    break;
                }
            }
            // nothing shown yet (so nothing checked: a failed sentence stops above) and the first
            // sentence does not end: decide on the words there are, and stop the model either way
            if !stop && cap > 0 && self.kept.is_empty() && stream.pending_words() >= cap {
                self.cut_first_sentence(stream.cut(), on_text);
                self.stopped_early |= self.kept.is_empty();
                stop = true;
            }
            if stop {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        if !stop {
            for s in stream.finish() {
                self.sentence(&s, on_text);
            }
        }
        Ok(g)
    }

    /// The first sentence ran past `first_sentence_max_words`: `parts` are its whole words (after
    /// any sentence that ended but waited for the next one). Each is checked like any sentence,
    /// the unfinished last one marked with "…"; until one fails.
    fn cut_first_sentence(&mut self, mut parts: Vec<String>, on_text: &mut dyn FnMut(&str)) {
        if let Some(last) = parts.last_mut() {
            if !last.trim_end().ends_with(['.', '!', '?', '…']) {
                last.push_str(" …");
            }
        }
        for s in parts {
            self.sentence(&s, on_text);
            if let Some(c) = self.checks.last_mut().filter(|c| !c.kept && s.ends_with(" …")) {
                let why = c.dropped.take().unwrap_or_default();
                c.dropped = Some(format!("first sentence cut at {} words; {why}", self.cfg.first_sentence_max_words));
            }
            if self.run > 0 {
                break;
            }
        }
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
        let svec = if let Some(v) = self.vecs.get(s.trim()) {
            Some(v.clone())
        } else if cite::needs_embedding(s, self.question, self.passages, self.cfg.lexical_weight, self.cfg.support_threshold) {
            self.embedder.embed(&[s]).ok().and_then(|mut v| v.pop())
        } else {
            None
        };
        let mut c = cite::check(s, svec.as_deref(), Some(self.qvec), self.question, self.passages, self.cfg.lexical_weight, self.cfg.support_threshold);
        if c.kept && self.kept.iter().any(|(k, _)| jaccard(k, &c.text) > 0.8) {
            c.kept = false;
            c.dropped = Some("repeats an earlier sentence".into());
        }
        // the first sentence states the chosen evidence's fact, or the evidence itself is the answer
        // (a tiny model's supported but vague phrasing loses the fact that was asked for)
        if c.kept && self.kept.is_empty() && !states_evidence(&c.text, &self.evidence, self.passages) {
            c.kept = false;
            c.dropped = Some("does not state the chosen evidence".into());
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

    pub(super) fn emit(&mut self, s: &str, pi: usize, on_text: &mut dyn FnMut(&str)) {
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


/// Whether `sentence` states the best evidence sentence's fact: it holds at least half of that
/// sentence's content terms and every number in it. True when there is no evidence.
fn states_evidence(sentence: &str, evidence: &[(String, usize)], passages: &[Passage]) -> bool {
    let Some((best, pi)) = evidence.first() else { return true };
    let lang = passages.get(*pi).map(|p| p.lang()).unwrap_or_else(|| crate::text::language(best));
    let want = crate::text::content_terms(best, lang);
    let have = crate::text::term_set(sentence, lang);
    let numbers_ok = crate::text::numbers(best).iter().all(|n| crate::text::numbers(sentence).contains(n));
    numbers_ok && crate::text::coverage(&want, &have, lang) >= 0.5
}
