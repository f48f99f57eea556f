//! The workspace's in-use lock for CLI commands: every command that opens a
//! workspace's data holds the same shared lock (`in-use.lock`,
//! tresor_guard::crypto::hold_in_use) that `tresor serve` and the desktop app
//! hold, for as long as it runs. So `tresor key rotate` (which needs the lock
//! exclusively) refuses while a plain `tresor ingest`, `kb remove`, `ask` ...
//! runs, instead of re-encrypting files under its feet (issue 19 §4).
//!
//! Owns: which commands hold it. Never: takes the exclusive lock (key
//! rotation does, in tresor-guard) or waits for anything but a running rotation.

use std::path::Path;

use anyhow::{Context, Result};
use tresor_guard::crypto::InUse;

/// What a command does with its workspace's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Reads or writes the workspace's stores: holds the shared lock.
    Data,
    /// Works elsewhere (models, scratch dirs, text from the command line), manages
    /// workspaces or keys itself (`key rotate` takes the lock exclusively), or runs
    /// a server that locks each workspace it opens.
    None,
}

/// Holds the shared in-use lock of `data_dir` when `use_` is [`Use::Data`] and the
/// workspace exists (a command on a missing one fails on its own, with its own error).
/// A running key rotation makes this wait until it is done.
pub fn hold(data_dir: &Path, use_: Use) -> Result<Option<InUse>> {
    if use_ == Use::None || !data_dir.is_dir() {
        return Ok(None);
    }
    let lock = tresor_guard::crypto::hold_in_use(data_dir).with_context(|| format!("marking the workspace {} in use", data_dir.display()))?;
    Ok(Some(lock))
}
