//! The model source that knows remote models: [`WithRemote`] wraps the
//! catalogue's local source and answers a spec with a [`RemoteChat`] when
//! `remote.toml` names one for it — by id (`--model ID`), or for the routed
//! role (`--role chat-premium` at `models remote add`).
//!
//! Owns: which spec goes remote and what the local fallback of each is (the
//! local model of the same role, else chat-small); one breaker per entry,
//! shared by every handle on it. Never: loads a local model itself (the
//! wrapped [`CatalogModels`] does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tresor_guard::policy::RemotePolicy;
use tresor_llm::remote::Breaker;
use tresor_models::{RemoteEntry, RemoteModels, Role};

use super::{breaker_for, RemoteChat};
use crate::error::Result;
use crate::models::{CatalogModels, ChatModel, ModelSource, ModelSpec};

pub struct WithRemote {
    pub local: CatalogModels,
    /// The admin policy's `[remote]` for this workspace.
    pub policy: RemotePolicy,
    breakers: HashMap<String, Arc<Mutex<Breaker>>>,
}

impl WithRemote {
    pub fn new(local: CatalogModels, policy: RemotePolicy) -> WithRemote {
        WithRemote { local, policy, breakers: HashMap::new() }
    }

    /// The remote entry serving `spec`, if any: named by id, or entered for the
    /// role — the latter only while the policy permits it (a workspace that forbids
    /// remote backends answers its premium questions locally; a named one is refused).
    fn entry(&self, spec: &ModelSpec) -> Result<Option<RemoteEntry>> {
        let remotes = RemoteModels::load(&self.local.models_dir)?;
        Ok(match spec {
            ModelSpec::Named(n) => remotes.get(n).cloned(),
            ModelSpec::Role(r) => remotes.for_role(*r).filter(|e| {
                let ok = super::permitted(&self.policy, e).is_ok();
                if !ok {
                    tracing::info!(remote = %e.id, role = %r, "remote backend not permitted by the policy: the local model answers");
                }
                ok
            }).cloned(),
        })
    }
}

impl ModelSource for WithRemote {
    fn load(&mut self, spec: &ModelSpec) -> Result<Box<dyn ChatModel>> {
        let Some(entry) = self.entry(spec)? else { return self.local.load(spec) };
        let breaker = self.breakers.entry(entry.id.clone()).or_insert_with(|| Arc::new(Mutex::new(breaker_for(&entry)))).clone();
        let role = match spec {
            ModelSpec::Role(r) => *r,
            ModelSpec::Named(_) => entry.role.unwrap_or(Role::ChatSmall),
        };
        let mut local = self.local.clone();
        let load_fallback = Box::new(move || -> Result<Box<dyn ChatModel>> { local.load_role_or_small(role) });
        Ok(Box::new(RemoteChat::new(&entry, &self.policy, breaker, load_fallback)?))
    }

    fn available(&self) -> Vec<(String, String)> {
        let mut v = self.local.available();
        if let Ok(r) = RemoteModels::load(&self.local.models_dir) {
            for e in r.entries().iter().filter(|e| super::permitted(&self.policy, e).is_ok()) {
                v.push((e.id.clone(), e.role.map(|r| r.as_str()).unwrap_or("remote").to_string()));
            }
        }
        v
    }
}
