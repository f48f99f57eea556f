//! The engine's lifetime inside the app: the data key, unlocked once (in the
//! background from launch: Argon2id takes a moment and the window need not
//! wait for it), and one `Assistant`, created on first use — when the user
//! starts typing a question or on the first command that needs it, never at
//! start-up (no model is in memory until someone asks; chat models load on
//! the first answer) — kept behind a mutex so answers run one at a time, and
//! a stop flag for the answer in flight. Owns no answer logic: it assembles the engine exactly as
//! the CLI does (catalogue embedder, optional cross-encoder, catalogue chat
//! models) and hands it to callers.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use tresor_assistant::{Assistant, AssistantConfig, CatalogModels};
use tresor_assistant::store::ThreadStore;
use tresor_guard::crypto::{KeySource, WorkspaceKey};
use tresor_kb::rerank::CrossEncoder;
use tresor_kb::TextReranker;
use tresor_models::{Catalog, Role};

use crate::Paths;

/// The embedding model used when the catalogue has no installed embed role.
const DEFAULT_EMBED: &str = "all-minilm-l6-v2";
/// The engine's thread/feedback database in the data dir (tresor-assistant's file).
const ASSISTANT_DB: &str = "assistant.sqlite";

pub struct Host {
    pub paths: Paths,
    /// The data key of the data dir (stores are encrypted at rest): from
    /// `TRESOR_PASSPHRASE` or the OS keyring, created on first use; or why it
    /// could not be unlocked.
    key: OnceLock<std::result::Result<WorkspaceKey, String>>,
    engine: Mutex<Option<Assistant>>,
    /// The stop flag of the answer in flight.
    pub cancel: Mutex<Option<Arc<AtomicBool>>>,
}

impl Host {
    pub fn new(paths: Paths) -> Host {
        Host { paths, key: OnceLock::new(), engine: Mutex::new(None), cancel: Mutex::new(None) }
    }

    /// The data key, unlocked on first use (callers at the same time wait for
    /// that one unlock). A wrong passphrase is an error for every call.
    pub fn key(&self) -> Result<&WorkspaceKey> {
        self.key
            .get_or_init(|| {
                let t = Instant::now();
                let key = WorkspaceKey::open(&self.paths.data_dir, &KeySource::from_env())
                    .map_err(|e| format!("unlocking the data in {}: {e:#}", self.paths.data_dir.display()));
                tracing::info!("data key unlocked in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
                key
            })
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    pub fn data_dir(&self) -> &Path {
        &self.paths.data_dir
    }
    pub fn models_dir(&self) -> &Path {
        &self.paths.models_dir
    }

    /// Runs `f` on the engine (created on first use). Holds the engine for the
    /// whole call: answers and ingests run one at a time.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut Assistant) -> Result<R>) -> Result<R> {
        let mut guard = self.engine.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let t = Instant::now();
            *guard = Some(build(&self.paths, self.key()?)?);
            tracing::info!("engine loaded in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
        }
        f(guard.as_mut().expect("set above"))
    }

    /// Drops the engine (after a knowledge base was removed: it must not keep
    /// the deleted store open); the next call builds a fresh one.
    pub fn reset(&self) {
        *self.engine.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A separate connection to the thread store: the sidebar stays usable
    /// while an answer holds the engine.
    pub fn threads(&self) -> Result<ThreadStore> {
        let path = self.data_dir().join(ASSISTANT_DB);
        ThreadStore::open(&path, self.key()?).with_context(|| format!("opening conversations in {}", path.display()))
    }
}

fn build(paths: &Paths, key: &WorkspaceKey) -> Result<Assistant> {
    let device = tresor_llm::Device::Cpu;
    let cfg = AssistantConfig::load(&paths.data_dir)?;
    let embed_dir = match Catalog::load(&paths.models_dir).and_then(|c| c.resolve(None, Role::Embed)) {
        Ok(r) => r.path,
        Err(_) if paths.models_dir.join(DEFAULT_EMBED).join("config.json").is_file() => paths.models_dir.join(DEFAULT_EMBED),
        Err(e) => {
            return Err(e).with_context(|| format!("finding the embedding model in {}", paths.models_dir.display()))
        }
    };
    let embedder = tresor_llm::embed::Embedder::load(&embed_dir, &device)
        .with_context(|| format!("loading the embedder from {}", embed_dir.display()))?;
    let reranker: Option<Arc<dyn TextReranker>> = match Catalog::load(&paths.models_dir).and_then(|c| c.resolve(None, Role::Rerank)) {
        Ok(r) => {
            let rr = tresor_llm::rerank::Reranker::load(&r.path, &device)
                .with_context(|| format!("loading the reranker from {}", r.path.display()))?;
            Some(Arc::new(CrossEncoder { inner: rr, id: r.id }))
        }
        Err(_) => None,
    };
    let models = CatalogModels { models_dir: paths.models_dir.clone(), device, context_cap: Some(4096) };
    Ok(Assistant::new(cfg, &paths.data_dir, key, Arc::new(embedder), reranker, Box::new(models))?)
}

/// The knowledge base folder for `name` (validated by the engine's rules).
pub fn kb_path(data_dir: &Path, name: &str) -> Result<PathBuf> {
    Ok(tresor_assistant::engine::kb_dir(data_dir, name)?)
}
