//! The engine's lifetime inside the app: the data key, unlocked once (in the
//! background from launch: Argon2id takes a moment and the window need not
//! wait for it), and one `Assistant`, created on first use — when the user
//! starts typing a question or on the first command that needs it, never at
//! start-up (no model is in memory until someone asks; chat models load on
//! the first answer) — kept behind a mutex so answers run one at a time, and
//! a stop flag for the answer in flight. Owns no answer logic and no model
//! choice: the engine opens itself (`Assistant::open`), exactly as for the
//! CLI and the server, and knowledge-base changes go through its audited
//! `Library`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use tresor_assistant::store::ThreadStore;
use tresor_assistant::{Assistant, EnginePaths, Library};
use tresor_guard::crypto::{KeySource, WorkspaceKey};

use crate::Paths;

/// The workspace the app works in (its data dir is the data root), as the audit log names it.
pub const DESKTOP_WORKSPACE: &str = "default";

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

    /// The knowledge bases, changed through the engine's library (audited as the OS user).
    pub fn library(&self) -> Result<Library<'_>> {
        Ok(Library::new(self.data_dir(), DESKTOP_WORKSPACE, self.key()?))
    }

    /// A separate connection to the thread store: the sidebar stays usable
    /// while an answer holds the engine.
    pub fn threads(&self) -> Result<ThreadStore> {
        ThreadStore::for_data_dir(self.data_dir(), self.key()?).with_context(|| format!("opening conversations in {}", self.data_dir().display()))
    }
}

fn build(paths: &Paths, key: &WorkspaceKey) -> Result<Assistant> {
    let engine = EnginePaths::new(&paths.data_dir, &paths.models_dir, DESKTOP_WORKSPACE);
    Ok(Assistant::open(&engine, key, tresor_llm::Device::Cpu)?)
}
