//! The engine's side of releases: before an answer, the release that serves
//! the conversation (`assign.rs`) is swapped in — its config, its policy
//! (layered over the admin policy), its prompts — and its name becomes the
//! answer's `variant` and the events' variant; after the answer the
//! workspace's own settings are back. The store is re-read when its file
//! changes (a hash of its bytes), so a running server follows `tresor release` commands.
//!
//! Owns: the swap and its undo, the conversation key, the cache rule during
//! an experiment (the semantic cache is off for both arms while a canary
//! runs, so neither arm serves the other's answers). Never: changes the
//! store (`mod.rs`), or the answer pipeline itself.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{layered_policy, pick, PromptSet, ReleaseSet, Releases, RELEASES_FILE};
use crate::config::AssistantConfig;
use crate::engine::{AskRequest, Assistant};
use crate::error::{AssistantError, Result};
use crate::policy::PolicyGate;

/// The variant label of answers given without any release (the workspace's own settings), unless
/// `[telemetry] variant` in assistant.toml names another.
pub const CONTROL_LABEL: &str = "default";

/// The releases the engine knows (the store as last read) and the policy gates built for them.
#[derive(Default)]
pub(crate) struct EngineReleases {
    set: Option<ReleaseSet>,
    stamp: Option<[u8; 32]>,
    gates: HashMap<String, PolicyGate>,
}

/// What an answer was given with; undone by [`Assistant::leave_variant`].
pub struct Variant {
    /// The release that answered, or the workspace's `[telemetry] variant` label.
    pub name: String,
    saved_cfg: Option<AssistantConfig>,
    saved_gate: Option<(String, PolicyGate)>,
}

/// The store file's fingerprint: a hash of its sealed bytes (None: no file). Reading a few KiB per
/// answer is nothing next to a model run, and unlike a modification time it never misses a change.
fn stamp(path: &Path) -> Option<[u8; 32]> {
    let bytes = std::fs::read(path).ok()?;
    Sha256::digest(&bytes).as_slice().try_into().ok()
}

/// The conversation an answer belongs to: its thread, else its first user turn (a client that keeps
/// the history itself sends the same first turn with every request).
pub fn conversation_key(req: &AskRequest) -> String {
    if let Some(t) = req.thread {
        return format!("t{t}");
    }
    let first = req.history.iter().find(|m| m.role == tresor_llm::template::Role::User).map(|m| m.content.as_str()).unwrap_or(&req.question);
    format!("q{}", hex::encode(&Sha256::digest(first.trim().as_bytes())[..8]))
}

impl Assistant {
    /// The release store as the engine sees it (re-read when the file changed).
    fn releases_now(&mut self) -> Result<Option<&ReleaseSet>> {
        let path = self.data_dir().join(RELEASES_FILE);
        let now = stamp(&path);
        if now != self.releases.stamp || (now.is_some() && self.releases.set.is_none()) {
            self.releases.set = Releases::read(&path, self.key())?;
            self.releases.stamp = now;
            self.releases.gates.clear();
        }
        Ok(self.releases.set.as_ref())
    }

    /// Swaps in the release that serves `req`'s conversation.
    pub(crate) fn enter_variant(&mut self, req: &AskRequest) -> Result<Variant> {
        let base_label = self.config().telemetry.variant.clone();
        let Some(set) = self.releases_now()? else {
            return Ok(Variant { name: base_label, saved_cfg: None, saved_gate: None });
        };
        let experiment = set.canary_release().is_some();
        let chosen = pick(set, &conversation_key(req)).cloned();
        let Some(rel) = chosen else {
            if !experiment {
                return Ok(Variant { name: base_label, saved_cfg: None, saved_gate: None });
            }
            let mut cfg = self.config().clone();
            cfg.cache.enabled = false;
            let saved = std::mem::replace(self.config_mut(), cfg);
            return Ok(Variant { name: base_label, saved_cfg: Some(saved), saved_gate: None });
        };
        let mut cfg = match &rel.config {
            Some(text) => AssistantConfig::from_toml(text).map_err(|reason| AssistantError::Config { path: self.data_dir().join(RELEASES_FILE), reason: format!("release `{}`: {reason}", rel.name) })?,
            None => self.config().clone(),
        };
        // the workspace's telemetry stays (retention, cost table); the label is the release's
        cfg.telemetry = self.config().telemetry.clone();
        cfg.telemetry.variant = rel.name.clone();
        if experiment {
            cfg.cache.enabled = false;
        }
        let saved_cfg = Some(std::mem::replace(self.config_mut(), cfg));
        let saved_gate = match &rel.policy {
            Some(text) => {
                let gate = match self.releases.gates.remove(&rel.name) {
                    Some(g) => g,
                    None => {
                        let p = layered_policy(self.data_dir(), text, &format!("release:{}/policy.toml", rel.name))?;
                        PolicyGate::new(p, self.data_dir()).with_workspace(self.workspace())
                    }
                };
                Some((rel.name.clone(), std::mem::replace(&mut self.gate, gate)))
            }
            None => None,
        };
        self.prompt_override = rel.prompt.clone();
        Ok(Variant { name: rel.name, saved_cfg, saved_gate })
    }

    /// Puts the workspace's own settings back.
    pub(crate) fn leave_variant(&mut self, v: &mut Variant) {
        if let Some(cfg) = v.saved_cfg.take() {
            *self.config_mut() = cfg;
        }
        if let Some((name, gate)) = v.saved_gate.take() {
            let used = std::mem::replace(&mut self.gate, gate);
            self.releases.gates.insert(name, used);
        }
        self.prompt_override = None;
    }

    /// The release (or label) that would answer `req` now, without answering.
    pub fn variant_for(&mut self, req: &AskRequest) -> Result<String> {
        let label = self.config().telemetry.variant.clone();
        Ok(self.releases_now()?.and_then(|s| pick(s, &conversation_key(req))).map(|r| r.name.clone()).unwrap_or(label))
    }
}

/// A release's grounded instruction for `lang`, if it sets one.
pub(crate) fn instruction(p: Option<&PromptSet>, de: bool) -> Option<&str> {
    let p = p?;
    if de { p.de.as_deref() } else { p.en.as_deref() }
}
