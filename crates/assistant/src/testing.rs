//! Test fakes for the engine's chat-model seam: a scripted chat model and
//! the model source that hands it out. Compiled for this crate's tests and,
//! behind the `test-support` feature, for other crates' tests (the server's
//! in-process handler tests); never in a production build.
//!
//! Owns: the fakes. Never: a real model, a file, the network.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use tresor_llm::{ChatMessage, FinishReason, GenerateParams, Generation};

use crate::error::Result;
use crate::models::{ChatModel, ModelSource, ModelSpec};

/// A chat model that writes a scripted reply word by word and records its
/// prompts. A reply of several parts separated by `"\n---\n"` gives one part
/// per call; the last part repeats. `generate_json` writes the scripted reply
/// as it is, schema or not, so tests can feed the engine valid or invalid JSON.
pub struct Scripted {
    pub reply: String,
    pub prompts: Arc<Mutex<Vec<String>>>,
    /// Pause before each word (a slow model, for cancellation tests).
    pub word_delay: std::time::Duration,
    /// Words written so far, over all calls.
    pub words: Arc<std::sync::atomic::AtomicUsize>,
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
    fn generate_json(
        &mut self,
        messages: &[ChatMessage],
        _schema: &serde_json::Value,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        self.generate(messages, params, on_text)
    }
    fn generate(&mut self, messages: &[ChatMessage], params: &GenerateParams, on_text: &mut dyn FnMut(&str) -> ControlFlow<()>) -> Result<Generation> {
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
            // like the real models: a raised cancel flag stops generation
            if params.cancel.as_ref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) {
                finish = FinishReason::Cancelled;
                break;
            }
            if !self.word_delay.is_zero() {
                std::thread::sleep(self.word_delay);
            }
            n += 1;
            self.words.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if on_text(w).is_break() {
                finish = FinishReason::Cancelled;
                break;
            }
        }
        Ok(Generation {
            text: reply,
            tokens: vec![0; n],
            finish,
            prompt_tokens: 100,
            token_counts: tresor_llm::TokenCounts::Estimated,
            reused_prompt_tokens: 0,
            prefill_ms: 1.0,
            ttft_ms: 2.0,
            total_ms: 3.0,
            decode_tps: 0.0,
        })
    }
}

/// Hands out [`Scripted`] models with the current `reply`; records what was loaded.
#[derive(Clone, Default)]
pub struct ScriptedModels {
    pub reply: Arc<Mutex<String>>,
    pub prompts: Arc<Mutex<Vec<String>>>,
    pub loads: Arc<Mutex<Vec<ModelSpec>>>,
    /// The models' [`Scripted::word_delay`].
    pub word_delay: Arc<Mutex<std::time::Duration>>,
    /// Words written by every model handed out.
    pub words: Arc<std::sync::atomic::AtomicUsize>,
}

impl ScriptedModels {
    /// A source whose models always write `reply`.
    pub fn replying(reply: &str) -> ScriptedModels {
        let m = ScriptedModels::default();
        *m.reply.lock().unwrap() = reply.to_string();
        m
    }
}

impl ModelSource for ScriptedModels {
    fn load(&mut self, spec: &ModelSpec) -> Result<Box<dyn ChatModel>> {
        self.loads.lock().unwrap().push(spec.clone());
        Ok(Box::new(Scripted {
            reply: self.reply.lock().unwrap().clone(),
            prompts: self.prompts.clone(),
            word_delay: *self.word_delay.lock().unwrap(),
            words: self.words.clone(),
        }))
    }
    fn available(&self) -> Vec<(String, String)> {
        vec![("scripted".into(), "chat-small".into())]
    }
}
