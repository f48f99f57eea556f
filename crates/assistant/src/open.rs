//! The engine opens itself: [`Assistant::open`] builds the embedder, the
//! optional cross-encoder, the catalogue's chat models and the workspace's
//! stores from one [`EnginePaths`], a key and a device. Every front door (CLI,
//! HTTP server, desktop app) calls it; none of them names a default model or
//! loads an embedder itself.
//!
//! Owns: which model serves each role when none is named (a remote model
//! entered for the role and permitted by the policy's `[remote]`, else the
//! catalogue's installed model, else the hand-placed default folder), the embedder that
//! built a knowledge base, the context cap of the chat models.
//! Never: the key (the door unlocks it: a prompt, a file, the keyring), the
//! data-dir layout (tresor-guard's `workspace`), knowledge-base operations
//! ([`crate::library`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::rerank::CrossEncoder;
use tresor_kb::{Kb, TextReranker};
use tresor_llm::embed::Embedder;
use tresor_llm::Device;
use tresor_models::{Catalog, Role};

use crate::config::AssistantConfig;
use crate::engine::Assistant;
use crate::error::{AssistantError, Result};
use crate::models::CatalogModels;
use crate::policy::{load_policy, PolicyGate};
use crate::remote::WithRemote;

/// The embedding model's folder when models were placed by hand, without the
/// catalogue's install stamps.
pub const DEFAULT_EMBED: &str = "all-minilm-l6-v2";

/// Longest context a chat model is loaded with (bounds the KV cache's memory).
pub const CONTEXT_CAP: usize = 4096;

/// Where an engine keeps its data and finds its models.
#[derive(Debug, Clone)]
pub struct EnginePaths {
    /// The workspace's data dir: knowledge bases, threads, cache, audit log, policy.
    pub data_dir: PathBuf,
    /// Model weights and the manifest (`tresor models setup`).
    pub models_dir: PathBuf,
    /// The workspace's name, as the audit log records it.
    pub workspace: String,
}

impl EnginePaths {
    pub fn new(data_dir: impl Into<PathBuf>, models_dir: impl Into<PathBuf>, workspace: impl Into<String>) -> EnginePaths {
        EnginePaths { data_dir: data_dir.into(), models_dir: models_dir.into(), workspace: workspace.into() }
    }
}

impl Assistant {
    /// The engine for a workspace: its `assistant.toml`, the installed
    /// embedder and cross-encoder, the catalogue's chat models (loaded on
    /// first use) and the workspace's stores, encrypted with `key`.
    pub fn open(paths: &EnginePaths, key: &WorkspaceKey, device: Device) -> Result<Assistant> {
        let cfg = AssistantConfig::load(&paths.data_dir)?;
        let embedder = load_embedder(&paths.models_dir, None, &device)?;
        let reranker = load_reranker(&paths.models_dir, None, &device)?.map(|r| Arc::new(r) as Arc<dyn TextReranker>);
        let local = CatalogModels { models_dir: paths.models_dir.clone(), device, context_cap: Some(CONTEXT_CAP) };
        // read once: the gate enforces the policy the remote models were admitted under
        let policy = load_policy(&paths.data_dir)?;
        // remote models (remote.toml) only where the policy's [remote] lets prompts go
        let models = WithRemote::new(local, policy.remote.clone());
        let gate = PolicyGate::new(policy, &paths.data_dir);
        let mut a = Assistant::with_gate(cfg, &paths.data_dir, key, Arc::new(embedder), reranker, Box::new(models), gate)?;
        a.set_workspace(&paths.workspace);
        Ok(a)
    }
}

/// The embedder's folder: `spec` (catalogue id, folder under the models
/// directory, or path), else the installed embed model, else the hand-placed
/// default folder.
pub fn embedder_dir(models_dir: &Path, spec: Option<&str>) -> Result<PathBuf> {
    match Catalog::load(models_dir).and_then(|c| c.resolve(spec, Role::Embed)) {
        Ok(r) => Ok(r.path),
        Err(_) if spec.is_none() && models_dir.join(DEFAULT_EMBED).join("config.json").is_file() => Ok(models_dir.join(DEFAULT_EMBED)),
        Err(source) => Err(AssistantError::NoModel { role: "embedding", source }),
    }
}

/// The embedder named by `spec`, else the installed one.
pub fn load_embedder(models_dir: &Path, spec: Option<&str>, device: &Device) -> Result<Embedder> {
    let dir = embedder_dir(models_dir, spec)?;
    Embedder::load(&dir, device).map_err(|source| AssistantError::ModelLoad { what: "embedder", path: dir, source })
}

/// The embedder for an existing knowledge base: `spec`, else the one that
/// built it when that is in the models directory (a knowledge base ingested
/// with the static tier keeps using it), else the installed one.
pub fn kb_embedder(models_dir: &Path, spec: Option<&str>, kb: &Kb, device: &Device) -> Result<Embedder> {
    if spec.is_none() {
        let built = kb.info()?.embedder;
        if let Some(name) = built.as_deref().and_then(tresor_llm::embed::model_folder).filter(|n| *n != DEFAULT_EMBED) {
            if models_dir.join(name).is_dir() {
                return load_embedder(models_dir, Some(name), device);
            }
        }
    }
    load_embedder(models_dir, spec, device)
}

/// The cross-encoder: an explicit `spec` must load; otherwise the installed
/// rerank model, or None when there is none.
pub fn load_reranker(models_dir: &Path, spec: Option<&str>, device: &Device) -> Result<Option<CrossEncoder>> {
    let r = match Catalog::load(models_dir).and_then(|c| c.resolve(spec, Role::Rerank)) {
        Ok(r) => r,
        Err(source) if spec.is_some() => return Err(AssistantError::NoModel { role: "rerank", source }),
        Err(_) => return Ok(None),
    };
    let inner = tresor_llm::rerank::Reranker::load(&r.path, device)
        .map_err(|source| AssistantError::ModelLoad { what: "reranker", path: r.path.clone(), source })?;
    Ok(Some(CrossEncoder { inner, id: r.id }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_embedder_is_a_typed_error_naming_the_role() {
        let dir = tempfile::tempdir().unwrap();
        let e = embedder_dir(dir.path(), None).unwrap_err();
        assert!(matches!(e, AssistantError::NoModel { role: "embedding", .. }), "{e}");
        assert!(e.to_string().contains("embedding model"), "{e}");
    }

    #[test]
    fn a_hand_placed_default_embedder_is_found_without_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(DEFAULT_EMBED)).unwrap();
        std::fs::write(dir.path().join(DEFAULT_EMBED).join("config.json"), "{}").unwrap();
        assert_eq!(embedder_dir(dir.path(), None).unwrap(), dir.path().join(DEFAULT_EMBED));
        // a named model is never replaced by the default
        assert!(embedder_dir(dir.path(), Some("something-else")).is_err());
    }

    #[test]
    fn no_reranker_installed_is_none_but_a_named_one_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_reranker(dir.path(), None, &Device::Cpu).unwrap().is_none());
        assert!(matches!(load_reranker(dir.path(), Some("nope"), &Device::Cpu), Err(AssistantError::NoModel { role: "rerank", .. })));
    }

    #[test]
    fn opening_an_engine_reads_the_admin_policy_once() {
        let models = std::env::var_os("TRESOR_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
        assert!(embedder_dir(&models, None).is_ok(), "no embedder in {}: run `tresor models setup` first", models.display());
        let data = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::from_bytes([7u8; 32]);
        crate::policy::POLICY_READS.with(|n| n.set(0));
        Assistant::open(&EnginePaths::new(data.path(), &models, "default"), &key, Device::Cpu).unwrap();
        assert_eq!(crate::policy::POLICY_READS.with(|n| n.get()), 1, "the gate and the remote models must see one reading of the policy");
    }

    #[test]
    fn opening_an_engine_without_models_says_which_is_missing() {
        let data = tempfile::tempdir().unwrap();
        let models = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::from_bytes([7u8; 32]);
        let err = Assistant::open(&EnginePaths::new(data.path(), models.path(), "default"), &key, Device::Cpu).err().unwrap();
        assert!(matches!(err, AssistantError::NoModel { role: "embedding", .. }), "{err}");
    }
}
