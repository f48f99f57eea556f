//! Remote chat models behind the engine's [`ChatModel`] seam: an
//! OpenAI-compatible server (tresor-llm's `remote` client) with a circuit
//! breaker, falling back to the local model of the same role when the server
//! fails before its first token or the breaker is open. The engine cannot
//! tell it from a local model: the same prompts, the same streaming, the same
//! citation validation and output guards run on its text.
//!
//! Owns: building a backend from a `remote.toml` entry (the admin policy's
//! `[remote]` asked first), the fallback and what the answer's trace and the
//! audit log learn about it ([`BackendTrace`]). Never: the HTTP protocol
//! (tresor-llm), the entries' storage (tresor-models), the policy's rules
//! (tresor-guard).

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tresor_guard::policy::RemotePolicy;
use tresor_llm::remote::{Breaker, RemoteClient, RemoteConfig};
use tresor_llm::{ChatMessage, GenerateParams, Generation, TokenCounts};
use tresor_models::RemoteEntry;

use crate::error::{AssistantError, Result};
use crate::models::ChatModel;

mod source;
pub use source::WithRemote;

/// Context window assumed for a remote model whose entry names none.
pub const DEFAULT_REMOTE_CONTEXT: usize = 4096;
/// Consecutive failed calls that open the breaker, and how long it stays open.
pub const DEFAULT_BREAKER_FAILURES: u32 = 3;
pub const DEFAULT_BREAKER_COOLDOWN_MS: u64 = 30_000;

/// Which backend produced an answer's text (the trace's `backend`, the audit entry's `backend`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BackendTrace {
    /// `remote` or `local`.
    pub kind: String,
    /// The id of the model that answered.
    pub model: String,
    /// The remote backend's `host:port` (also when it failed and the local model answered).
    pub host: Option<String>,
    /// The remote entry that was asked, when the local model stood in for it.
    pub remote_model: Option<String>,
    /// Why the local model answered instead of the remote one.
    pub fallback: Option<String>,
    /// The remote backend's circuit breaker after this call: closed, open, half_open.
    pub breaker: Option<String>,
    /// When the remote backend answered: whether its token counts are the server's (`server`,
    /// its `usage`) or estimated (`estimated`: it reported none).
    pub tokens: Option<String>,
}

/// Loads the local model a remote one falls back to (on first need).
pub type FallbackLoader = Box<dyn FnMut() -> Result<Box<dyn ChatModel>> + Send>;

/// A remote chat model with its breaker and its local stand-in.
pub struct RemoteChat {
    id: String,
    client: RemoteClient,
    breaker: Arc<Mutex<Breaker>>,
    context_length: usize,
    fallback: Option<Box<dyn ChatModel>>,
    load_fallback: FallbackLoader,
    /// The model that answered the last call (what `id()` says after it).
    answered: String,
    last: Option<BackendTrace>,
}

/// The client configuration of an entry (API key read now, from its file or the keyring).
pub fn client_config(entry: &RemoteEntry) -> Result<RemoteConfig> {
    let d = RemoteConfig::new(&entry.url);
    Ok(RemoteConfig {
        model: entry.model.clone(),
        api_key: entry.api_key()?,
        connect_timeout: entry.connect_timeout_ms.map(Duration::from_millis).unwrap_or(d.connect_timeout),
        read_timeout: entry.read_timeout_ms.map(Duration::from_millis).unwrap_or(d.read_timeout),
        retries: entry.retries.unwrap_or(d.retries),
        ..d
    })
}

/// A fresh breaker for an entry.
pub fn breaker_for(entry: &RemoteEntry) -> Breaker {
    Breaker::new(
        entry.breaker_failures.unwrap_or(DEFAULT_BREAKER_FAILURES),
        Duration::from_millis(entry.breaker_cooldown_ms.unwrap_or(DEFAULT_BREAKER_COOLDOWN_MS)),
    )
}

/// Whether the policy lets prompts go to `entry`; a typed refusal naming the entry and the rule.
pub fn permitted(policy: &RemotePolicy, entry: &RemoteEntry) -> Result<()> {
    policy.permits(&entry.url).map_err(|r| AssistantError::RemoteRefused { id: entry.id.clone(), reason: r.as_str().into() })
}

impl RemoteChat {
    /// `breaker` is shared by every handle on the same entry.
    pub fn new(entry: &RemoteEntry, policy: &RemotePolicy, breaker: Arc<Mutex<Breaker>>, load_fallback: FallbackLoader) -> Result<RemoteChat> {
        permitted(policy, entry)?;
        let client = RemoteClient::new(client_config(entry)?)
            .map_err(|source| AssistantError::Remote { id: entry.id.clone(), source })?;
        Ok(RemoteChat {
            id: entry.id.clone(),
            client,
            breaker,
            context_length: entry.context_length.unwrap_or(DEFAULT_REMOTE_CONTEXT),
            fallback: None,
            load_fallback,
            answered: entry.id.clone(),
            last: None,
        })
    }

    fn fallback(&mut self) -> Result<&mut Box<dyn ChatModel>> {
        if self.fallback.is_none() {
            self.fallback = Some((self.load_fallback)()?);
        }
        Ok(self.fallback.as_mut().expect("loaded above"))
    }

    fn breaker_state(&self) -> String {
        self.breaker.lock().map(|b| b.state().as_str().to_string()).unwrap_or_else(|_| "unknown".into())
    }

    /// The local model answers for the remote one, and the trace says why.
    fn fall_back(
        &mut self,
        reason: String,
        run: &mut dyn FnMut(&mut dyn ChatModel) -> Result<Generation>,
    ) -> Result<Generation> {
        tracing::warn!(remote = %self.id, host = %self.client.host(), %reason, "remote backend: the local model answers");
        let breaker = self.breaker_state();
        let host = self.client.host().to_string();
        let remote = self.id.clone();
        let fb = self.fallback().map_err(|e| AssistantError::Invalid(format!("remote model `{remote}` failed ({reason}) and its local fallback could not load: {e}")))?;
        let g = run(fb.as_mut())?;
        let model = fb.id().to_string();
        self.answered = model.clone();
        self.last = Some(BackendTrace {
            kind: "local".into(),
            model,
            host: Some(host),
            remote_model: Some(remote),
            fallback: Some(reason),
            breaker: Some(breaker),
            tokens: None,
        });
        Ok(g)
    }
}

impl ChatModel for RemoteChat {
    fn id(&self) -> &str {
        &self.answered
    }
    /// The server's tokenizer is not here: a conservative estimate keeps packed prompts
    /// inside the remote context.
    fn count_tokens(&self, text: &str) -> usize {
        tresor_llm::remote::estimate_tokens(text)
    }
    fn context_length(&self) -> usize {
        self.context_length
    }
    fn generate(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let allowed = self.breaker.lock().map(|b| b.allows()).unwrap_or(true);
        let reason = if allowed {
            let mut shown = false;
            let r = self.client.generate(messages, params, &mut |p| {
                shown = true;
                on_text(p)
            });
            match r {
                Ok(g) => {
                    if let Ok(mut b) = self.breaker.lock() {
                        b.record_success();
                    }
                    self.answered = self.id.clone();
                    let tokens = match g.token_counts {
                        TokenCounts::Server => "server",
                        TokenCounts::Estimated | TokenCounts::Tokenizer => "estimated",
                    };
                    self.last = Some(BackendTrace {
                        kind: "remote".into(),
                        model: self.id.clone(),
                        host: Some(self.client.host().to_string()),
                        breaker: Some(self.breaker_state()),
                        tokens: Some(tokens.into()),
                        ..Default::default()
                    });
                    return Ok(g);
                }
                Err(e) => {
                    if let Ok(mut b) = self.breaker.lock() {
                        b.record_failure();
                    }
                    if shown {
                        // text is on the screen: a second answer after it would repeat it
                        self.last = Some(BackendTrace {
                            kind: "remote".into(),
                            model: self.id.clone(),
                            host: Some(self.client.host().to_string()),
                            breaker: Some(self.breaker_state()),
                            ..Default::default()
                        });
                        return Err(AssistantError::Remote { id: self.id.clone(), source: e });
                    }
                    format!("remote backend failed: {e}")
                }
            }
        } else {
            let n = self.breaker.lock().map(|b| b.failures()).unwrap_or(0);
            format!("circuit breaker open after {n} failed calls")
        };
        self.fall_back(reason, &mut |m| m.generate(messages, params, on_text))
    }
    /// Grammar-constrained decoding needs the tokenizer: the local model writes the value.
    fn generate_json(
        &mut self,
        messages: &[ChatMessage],
        schema: &serde_json::Value,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Generation> {
        let reason = "grammar-constrained JSON runs on the local model".to_string();
        self.fall_back(reason, &mut |m| m.generate_json(messages, schema, params, on_text))
    }
    fn backend(&self) -> Option<BackendTrace> {
        self.last.clone()
    }
}

#[cfg(test)]
mod tests;
