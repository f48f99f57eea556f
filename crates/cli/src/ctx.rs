//! What every subcommand receives from the global flags: where Tresor keeps
//! its data and models, and which device/threads to run models on.
//! Owns path resolution only; never loads a model or opens a store itself.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--data-dir` / `TRESOR_HOME`: knowledge bases, threads, telemetry.
    pub data_dir: PathBuf,
    /// `--models-dir` / `TRESOR_MODELS`: model weights and the manifest.
    pub models_dir: PathBuf,
    /// `--device cpu|cuda:N|metal`.
    pub device: String,
    /// `--threads N` for CPU inference (None: all cores).
    pub threads: Option<usize>,
    /// `--workspace NAME` (default "default").
    pub workspace: String,
}

/// The inference device from `--device`, with `--threads` applied.
pub fn device(ctx: &Ctx) -> anyhow::Result<tresor_llm::Device> {
    if let Some(n) = ctx.threads {
        tresor_llm::set_cpu_threads(n);
    }
    Ok(tresor_llm::device_from_str(&ctx.device)?)
}
