//! What every subcommand receives from the global flags: where Tresor keeps
//! its data and models, which workspace it works in, and which device/threads
//! to run models on.
//! Owns path resolution only (the workspace's data dir included: see
//! tresor_guard::workspace for the layout); never loads a model or opens a
//! store itself.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tresor_guard::workspace::Workspaces;

#[derive(Debug, Clone)]
pub struct Ctx {
    /// The selected workspace's data dir: knowledge bases, threads, cache,
    /// keys, audit log, telemetry. For `default` this is the data root.
    pub data_dir: PathBuf,
    /// `--data-dir` / `TRESOR_HOME`: the data root that holds every workspace.
    pub root: PathBuf,
    /// `--models-dir` / `TRESOR_MODELS`: model weights and the manifest.
    pub models_dir: PathBuf,
    /// `--device cpu|cuda:N|metal`.
    pub device: String,
    /// `--threads N` for CPU inference (None: all cores).
    pub threads: Option<usize>,
    /// `--workspace NAME` (default "default").
    pub workspace: String,
    /// `--passphrase-file` / `TRESOR_PASSPHRASE_FILE`: unlocks the workspace key (see key_cmd).
    pub passphrase_file: Option<PathBuf>,
    /// `--now` / `TRESOR_NOW`: a fixed current time (tests, evals); None: the clock.
    pub now: Option<jiff::Timestamp>,
}

/// What a command needs of the `--workspace` it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsNeed {
    /// It must exist (reading commands): an unknown name is an error.
    Existing,
    /// Created when missing (commands that add data, e.g. `ingest`).
    Create,
    /// Only a valid name (`tresor workspace ...` manages workspaces itself).
    Name,
}

impl Ctx {
    /// Points `data_dir` at the `--workspace`'s data dir under `root`.
    pub fn in_workspace(mut self, need: WsNeed) -> Result<Ctx> {
        let ws = self.workspaces();
        let name = self.workspace.as_str();
        self.data_dir = match need {
            WsNeed::Existing => ws.open(name).context("--workspace")?,
            WsNeed::Name => ws.dir(name).context("--workspace")?,
            WsNeed::Create => {
                let (dir, created) = ws.ensure(name).context("--workspace")?;
                if created {
                    eprintln!("created workspace `{name}` ({})", dir.display());
                }
                dir
            }
        };
        Ok(self)
    }

    /// The workspaces under the data root.
    pub fn workspaces(&self) -> Workspaces {
        Workspaces::new(self.root.clone())
    }
}

/// The inference device from `--device`, with `--threads` applied.
pub fn device(ctx: &Ctx) -> anyhow::Result<tresor_llm::Device> {
    if let Some(n) = ctx.threads {
        tresor_llm::set_cpu_threads(n);
    }
    Ok(tresor_llm::device_from_str(&ctx.device)?)
}
