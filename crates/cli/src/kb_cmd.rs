//! `tresor ingest | kb | search | eval retrieval | bench kb`: flags in,
//! calls into `tresor-kb`, results out (text or `--json`). No engine logic.

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tresor_bench::kb::{self as bench, BenchOptions};
use tresor_kb::chunk::ChunkConfig;
use tresor_bench::retrieval_eval as eval;
use tresor_kb::rerank::{CrossEncoder, SentenceMaxSim};
use tresor_kb::retrieve::Fusion;
use tresor_kb::{ingest, search, Filter, IngestOptions, IngestProgress, Kb, Mode, Quantization, RerankChoice, SearchOptions, TextEmbedder, TextReranker};

use tresor_assistant::{open, Library, DEFAULT_KB};
use tresor_guard::crypto::WorkspaceKey;

use crate::ctx::Ctx;

/// `println!` that ends quietly when stdout is closed (`tresor search ... | head`).
macro_rules! out {
    ($($t:tt)*) => {
        emit(format!($($t)*))?
    };
}

fn emit(mut line: String) -> Result<()> {
    use std::io::Write;
    line.push('\n');
    let mut o = std::io::stdout().lock();
    match o.write_all(line.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => Ok(r?),
    }
}

#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Embedding model: an id under the models directory or a folder path (default: the installed embed model).
    #[arg(long, value_name = "ID|PATH")]
    pub embed_model: Option<String>,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files or folders (recursive; .gitignore and .tresorignore are honoured).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Knowledge base name.
    #[arg(long, default_value = "default")]
    pub kb: String,
    /// Remove documents under PATH whose files no longer exist.
    #[arg(long)]
    pub prune: bool,
    /// Redact PII in chunk text before it is stored: mask, pseudonym, drop or off.
    /// Stored as this knowledge base's setting; later ingests without the flag keep it.
    #[arg(long, value_name = "MODE")]
    pub redact_pii: Option<tresor_guard::redact::Setting>,
    /// Vector quantization of a new knowledge base.
    #[arg(long, value_enum)]
    pub quantization: Option<QuantArg>,
    /// Target chunk size in embedder tokens.
    #[arg(long, default_value_t = 256)]
    pub chunk_tokens: usize,
    /// Overlap between consecutive chunks of a section, in tokens.
    #[arg(long, default_value_t = 32)]
    pub overlap_tokens: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum QuantArg {
    F32,
    F16,
    I8,
}

impl From<QuantArg> for Quantization {
    fn from(q: QuantArg) -> Self {
        match q {
            QuantArg::F32 => Quantization::F32,
            QuantArg::F16 => Quantization::F16,
            QuantArg::I8 => Quantization::I8,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KbCmd {
    /// List the documents of a knowledge base.
    List(KbSel),
    /// Counts and settings of a knowledge base (`--json`: documents, chunks, ...).
    Stats(KbSel),
    /// Remove one document (by its source path as ingested).
    Remove {
        source: String,
        #[arg(long, default_value = "default")]
        kb: String,
    },
    /// Verify the storage invariants (exit status 1 on a problem).
    Check(KbSel),
    /// Rebuild the vector index and the full-text terms from the database.
    RebuildIndex(KbSel),
    /// List the knowledge bases of the workspace (name, documents, chunks).
    Bases {
        #[arg(long)]
        json: bool,
    },
    /// Create an empty knowledge base (embedded, or with --store in a PostgreSQL database a team shares).
    Create {
        name: String,
        /// A PostgreSQL database with pgvector: postgres://USER@HOST:PORT/DB (no password in it;
        /// TLS when the server offers it, `?sslmode=require` insists).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// File holding the database password (first line). Without it: the OS keyring entry
        /// `tresor-postgres` / `USER@HOST:PORT/DB`, else no password.
        #[arg(long, value_name = "FILE", requires = "store")]
        password_file: Option<PathBuf>,
    },
    /// Delete a knowledge base's store (the original files stay). A PostgreSQL one: everything it
    /// created on the server is dropped first, for every client of that database.
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
        /// PostgreSQL: when the server cannot be reached, delete only this client's record and
        /// leave the data on the server.
        #[arg(long)]
        force: bool,
    },
    /// Re-read the folders a knowledge base's documents came from (new, changed and vanished files), then rebuild its indexes.
    Reindex(KbSel),
}

#[derive(Args, Debug)]
pub struct KbSel {
    #[arg(long, default_value = "default")]
    pub kb: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum ModeArg {
    Hybrid,
    Bm25,
    Vector,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum FusionArg {
    /// Weighted sum of min-max normalised BM25 scores and cosines.
    Convex,
    /// Weighted reciprocal rank fusion.
    Rrf,
}

impl From<FusionArg> for Fusion {
    fn from(f: FusionArg) -> Self {
        match f {
            FusionArg::Convex => Fusion::Convex,
            FusionArg::Rrf => Fusion::Rrf,
        }
    }
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    pub query: String,
    #[arg(long, default_value = "default")]
    pub kb: String,
    /// Number of results.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeArg,
    /// Rerank: with the installed cross-encoder, else by sentence max-sim with the embedder
    /// (default: rerank only when a cross-encoder is installed).
    #[arg(long, conflicts_with = "no_rerank")]
    pub rerank: bool,
    /// Do not rerank.
    #[arg(long)]
    pub no_rerank: bool,
    /// Restrict results: source=GLOB (e.g. source='*handbook*') or lang=de|en; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// How hybrid fuses BM25 and vector candidates.
    #[arg(long, value_enum, default_value = "convex")]
    pub fusion: FusionArg,
    /// Fusion weight of BM25.
    #[arg(long, default_value_t = 1.0)]
    pub w_bm25: f32,
    /// Fusion weight of the vector side.
    #[arg(long, default_value_t = 1.0)]
    pub w_vector: f32,
    /// MMR trade-off between relevance (1.0) and diversity.
    #[arg(long, default_value_t = 0.9)]
    pub mmr_lambda: f32,
    /// Print a JSON array of results.
    #[arg(long)]
    pub json: bool,
    /// Print how the results were made (candidates, fusion, reranking, timings) to stderr.
    #[arg(long)]
    pub trace: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Reranker: an id under the models directory or a folder path (default: the installed rerank model).
    #[arg(long, value_name = "ID|PATH")]
    pub rerank_model: Option<String>,
}

#[derive(Args, Debug)]
pub struct EvalRetrievalArgs {
    /// Gold set (JSONL: question, answers, answer_spans, source_file).
    #[arg(long)]
    pub goldset: PathBuf,
    /// Folder of the gold set's documents (ingested into a temporary knowledge base).
    #[arg(long)]
    pub docs: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, value_name = "ID|PATH")]
    pub rerank_model: Option<String>,
    /// Also record the result as an `eval_run` event in the workspace's events, for
    /// `tresor kpi` / the dashboard (recall and rerank lift next to the traffic).
    #[arg(long)]
    pub record: bool,
    /// The knowledge base the recorded run speaks for (default: `default`).
    #[arg(long, requires = "record")]
    pub record_kb: Option<String>,
    /// Target chunk size in embedder tokens.
    #[arg(long, default_value_t = 256)]
    pub chunk_tokens: usize,
    #[arg(long, default_value_t = 32)]
    pub overlap_tokens: usize,
    /// How hybrid fuses BM25 and vector candidates (the other fusion is reported too).
    #[arg(long, value_enum, default_value = "convex")]
    pub fusion: FusionArg,
    /// Fusion weight of BM25.
    #[arg(long)]
    pub w_bm25: Option<f32>,
    /// Fusion weight of the vector side.
    #[arg(long)]
    pub w_vector: Option<f32>,
    /// RRF k constant.
    #[arg(long)]
    pub rrf_k: Option<f32>,
    /// MMR trade-off (1.0 = relevance only).
    #[arg(long)]
    pub mmr_lambda: Option<f32>,
    /// Build the scratch knowledge base in this (empty) PostgreSQL database instead of the
    /// embedded store: postgres://USER@HOST:PORT/DB (compare the two stores' recall).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Password file for --store.
    #[arg(long, value_name = "FILE", requires = "store")]
    pub password_file: Option<PathBuf>,
    /// (tuning) Also report hybrid for each of these vector weights.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub sweep_w_vector: Vec<f32>,
}

#[derive(Args, Debug)]
pub struct BenchKbArgs {
    #[arg(long)]
    pub json: bool,
    /// Size of the generated corpus for the ingest benchmark, in MB (real tokenizer, stand-in vectors).
    #[arg(long, default_value_t = 50.0)]
    pub corpus_mb: f64,
    /// Size of the generated corpus ingested with the real embedder, in MB.
    #[arg(long, default_value_t = 1.0)]
    pub embed_corpus_mb: f64,
    /// Also run the 1M-chunk scale (synthetic; several minutes and ~4 GB of disk).
    #[arg(long)]
    pub scale_1m: bool,
    /// Query-latency scales in chunks (default 10000,100000 [,1000000 with --scale-1m]).
    #[arg(long, value_delimiter = ',')]
    pub scales: Vec<usize>,
    /// Queries per mode and scale.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Skip the ingest-throughput part.
    #[arg(long)]
    pub skip_ingest: bool,
    /// The sample knowledge base folder (default: assets/sample-kb).
    #[arg(long)]
    pub sample_dir: Option<PathBuf>,
    /// Scratch folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the scale knowledge bases in --work-dir (and, with --store, the scale databases on the server) and reuse them in later runs (synthetic data, fixed key): build once, measure latency again on a quiet machine.
    #[arg(long, requires = "work_dir")]
    pub keep_scales: bool,
    /// Scales: BM25 latency only (no vector index built; reuses a kept knowledge base without one).
    #[arg(long)]
    pub bm25_only: bool,
    /// BM25 pruning budget in postings for the latency runs (0 = no pruning; default: the search default).
    #[arg(long)]
    pub bm25_max_postings: Option<usize>,
    /// Also measure the PostgreSQL store on this server (postgres://USER@HOST:PORT/DB; the user
    /// creates and drops scratch databases tresor_bench_*): same scales, two concurrent ingest clients.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Password file for --store.
    #[arg(long, value_name = "FILE", requires = "store")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The knowledge bases of the `--workspace`, changed through the engine's library (audited).
fn library<'a>(ctx: &'a Ctx, key: &'a WorkspaceKey) -> Library<'a> {
    Library::new(&ctx.data_dir, &ctx.workspace, key)
}

fn kb_dir(ctx: &Ctx, name: &str) -> Result<PathBuf> {
    Ok(tresor_assistant::library::kb_dir(&ctx.data_dir, name)?)
}

fn device(ctx: &Ctx) -> Result<tresor_llm::Device> {
    crate::ctx::device(ctx).with_context(|| format!("device `{}`", ctx.device))
}

/// The embedder's folder: `spec`, else the installed embed model.
pub(crate) fn embedder_dir(ctx: &Ctx, spec: Option<&str>) -> Result<PathBuf> {
    Ok(open::embedder_dir(&ctx.models_dir, spec)?)
}

/// The embedder: `--embed-model`, else the installed embed model.
fn load_embedder(ctx: &Ctx, m: &ModelArgs) -> Result<tresor_llm::embed::Embedder> {
    Ok(open::load_embedder(&ctx.models_dir, m.embed_model.as_deref(), &device(ctx)?)?)
}

/// The embedder for an existing knowledge base (the one that built it, unless `--embed-model`).
fn kb_embedder(ctx: &Ctx, m: &ModelArgs, kb: &Kb) -> Result<tresor_llm::embed::Embedder> {
    Ok(open::kb_embedder(&ctx.models_dir, m.embed_model.as_deref(), kb, &device(ctx)?)?)
}

/// The reranker: an explicit `--rerank-model` must load; otherwise the installed one, or None.
fn load_reranker(ctx: &Ctx, spec: Option<&str>) -> Result<Option<CrossEncoder>> {
    Ok(open::load_reranker(&ctx.models_dir, spec, &device(ctx)?)?)
}

struct Bar {
    bar: Option<ProgressBar>,
    t0: Instant,
    files: Cell<usize>,
    total_files: Cell<usize>,
    chunks: Cell<usize>,
}

impl Bar {
    fn new(enabled: bool) -> Bar {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        Bar { bar, t0: Instant::now(), files: Cell::new(0), total_files: Cell::new(0), chunks: Cell::new(0) }
    }
    fn msg(&self, current: &str) {
        if let Some(b) = &self.bar {
            let s = self.t0.elapsed().as_secs_f64().max(1e-3);
            b.set_message(format!(
                "{}/{} files · {:.1} files/s · {:.1} chunks/s · {}",
                self.files.get(),
                self.total_files.get(),
                self.files.get() as f64 / s,
                self.chunks.get() as f64 / s,
                current
            ));
        }
    }
}

impl IngestProgress for Bar {
    fn start(&self, files: usize, bytes: u64) {
        self.total_files.set(files);
        if let Some(b) = &self.bar {
            b.set_length(bytes);
        }
    }
    fn file(&self, source: &str) {
        self.files.set(self.files.get() + 1);
        self.msg(source);
    }
    fn advance(&self, bytes: u64, chunks: usize) {
        self.chunks.set(self.chunks.get() + chunks);
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
        if chunks > 0 {
            self.msg("");
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub fn run_ingest(args: IngestArgs, ctx: &Ctx) -> Result<()> {
    let dir = kb_dir(ctx, &args.kb)?;
    let key = crate::key_cmd::workspace_key(ctx)?;
    // a new knowledge base is created only once its embedder has loaded
    let fresh = if Kb::exists(&dir) { None } else { Some(load_embedder(ctx, &args.model)?) };
    let lib = library(ctx, &key);
    let (mut kb, created) = lib.open_or_create(&args.kb).with_context(|| format!("opening knowledge base `{}`", args.kb))?;
    let embedder = match fresh {
        Some(e) => e,
        None => kb_embedder(ctx, &args.model, &kb)?,
    };
    if let Some(q) = args.quantization {
        kb.set_quantization(q.into())?;
    }
    let opts = IngestOptions {
        prune: args.prune,
        redact_pii: args.redact_pii,
        chunk: ChunkConfig { target_tokens: args.chunk_tokens.max(16), overlap_tokens: args.overlap_tokens },
        ..IngestOptions::default()
    };
    let bar = Bar::new(!args.json);
    let report = lib
        .ingest_into(&mut kb, &args.kb, created, &embedder, &args.paths, &opts, &bar)
        .with_context(|| format!("ingesting into knowledge base `{}`", args.kb))?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mbps = report.bytes as f64 / 1e6 / (report.seconds / 60.0).max(1e-9);
        out!(
            "{} files: {} added, {} updated, {} unchanged, {} failed; {} chunks in {:.1}s ({:.1} MB/min, {:.1} chunks/s) into `{}`",
            report.files,
            report.added,
            report.updated,
            report.unchanged,
            report.failed.len(),
            report.chunks,
            report.seconds,
            mbps,
            report.chunks as f64 / report.seconds.max(1e-9),
            args.kb
        );
        if report.added + report.updated > 0 {
            let st = &report.stages;
            out!(
                "time: parse+chunk {:.1}s, redact {:.1}s, embed {:.1}s, screen {:.1}s, analyze {:.1}s, store {:.1}s, index {:.1}s",
                st.parse_chunk, st.redact, st.embed, st.screen, st.analyze, st.store, st.index
            );
        }
        for p in &report.pruned {
            out!("pruned: {p}");
        }
        for s in &report.skipped {
            eprintln!("skipped {}: {}", s.source, s.reason);
        }
        for f in &report.failed {
            eprintln!("failed {}: {}", f.source, f.reason);
        }
    }
    if !report.failed.is_empty() && report.added + report.updated + report.unchanged == 0 {
        bail!("nothing could be ingested");
    }
    Ok(())
}

pub fn run_kb(cmd: KbCmd, ctx: &Ctx) -> Result<()> {
    let key = crate::key_cmd::workspace_key(ctx)?;
    match cmd {
        KbCmd::List(sel) => {
            let kb = library(ctx, &key).open(&sel.kb)?;
            let docs = kb.list()?;
            if sel.json {
                out!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                eprintln!("knowledge base `{}`: {} store {}", sel.kb, kb.store_kind().as_str(), kb.location());
                for d in docs {
                    let q = if d.quarantined > 0 { format!("  [{} quarantined]", d.quarantined) } else { String::new() };
                    out!("{:>5} chunks  {:<2}  {:<8}  {}  ({}){q}", d.chunks, d.lang, d.format, d.source, d.title);
                }
            }
        }
        KbCmd::Stats(sel) => {
            let kb = library(ctx, &key).open(&sel.kb)?;
            let s = kb.stats(&sel.kb)?;
            if sel.json {
                out!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                out!("knowledge base `{}` at {} ({} store)", s.name, s.path, s.store);
                out!("documents: {}\nchunks: {}\nquarantined chunks (injection firewall, never retrieved): {}", s.documents, s.chunks, s.quarantined);
                out!("embedder: {} ({} dims, {})", s.embedder.as_deref().unwrap_or("-"), s.dim.unwrap_or(0), s.quantization);
                let l: Vec<String> = s.languages.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let f: Vec<String> = s.formats.iter().map(|(k, v)| format!("{k} {v}")).collect();
                out!("languages (chunks): {}\nformats (documents): {}", l.join(", "), f.join(", "));
                out!("database: {:.1} MB, vector index: {:.1} MB", s.db_bytes as f64 / 1e6, s.index_bytes as f64 / 1e6);
            }
        }
        KbCmd::Remove { source, kb } => {
            let n = library(ctx, &key).remove_source(&kb, &source)?;
            out!("removed {source} ({n} chunks)");
        }
        KbCmd::Check(sel) => {
            let mut kb = library(ctx, &key).open(&sel.kb)?;
            let r = kb.check()?;
            if sel.json {
                out!("{}", serde_json::to_string_pretty(&r)?);
            } else if r.ok {
                out!("ok: {} documents, {} chunks, {} vectors", r.documents, r.chunks, r.indexed);
            } else {
                for p in &r.problems {
                    out!("problem: {p}");
                }
            }
            if !r.ok {
                bail!("knowledge base `{}` has {} problem(s); `tresor kb rebuild-index` repairs the indexes", sel.kb, r.problems.len());
            }
        }
        KbCmd::RebuildIndex(sel) => {
            let (n, has_vectors) = library(ctx, &key).rebuild_index(&sel.kb)?;
            out!("rebuilt full-text terms of {n} chunks{}", if has_vectors { " and the vector index" } else { "" });
        }
        KbCmd::Bases { json } => {
            let all = library(ctx, &key).summaries()?;
            if json {
                let v: Vec<serde_json::Value> = all
                    .iter()
                    .map(|k| serde_json::json!({"name": k.name, "documents": k.documents, "chunks": k.chunks, "store": k.store, "default": k.name == DEFAULT_KB}))
                    .collect();
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else if all.is_empty() {
                out!("no knowledge bases (tresor ingest PATH --kb NAME creates one)");
            } else {
                for k in &all {
                    let d = if k.name == DEFAULT_KB { "  (default)" } else { "" };
                    out!("{:<24} {:>6} documents {:>8} chunks  {:<8}{d}", k.name, k.documents, k.chunks, k.store);
                }
            }
        }
        KbCmd::Create { name, store: None, .. } => {
            library(ctx, &key).create(&name)?;
            out!("created knowledge base `{name}`");
        }
        KbCmd::Create { name, store: Some(url), password_file } => {
            let password = crate::kb_store::password(&url, password_file.as_deref())?;
            library(ctx, &key)
                .create_postgres(&name, &url, password.as_deref())
                .with_context(|| format!("creating knowledge base `{name}` in {url}"))?;
            out!("created knowledge base `{name}` in PostgreSQL {url}");
        }
        KbCmd::Delete { name, yes, force } => {
            if !yes {
                bail!("deleting knowledge base `{name}` removes its store (your files stay); run again with --yes");
            }
            let d = library(ctx, &key).delete(&name, force)?;
            match (&d.dropped, &d.left_on_server) {
                (Some(s), _) => out!(
                    "deleted knowledge base `{name}`: dropped its schema on {} ({} documents, {} chunks{}); the original files stay",
                    s.url,
                    s.documents,
                    s.chunks,
                    if s.extension { ", and the pgvector extension Tresor had created" } else { "" }
                ),
                (None, Some(why)) => {
                    out!("deleted knowledge base `{name}` from this workspace only; its data was LEFT on the server ({why})")
                }
                (None, None) => out!("deleted knowledge base `{name}` (the original files stay)"),
            }
        }
        KbCmd::Reindex(sel) => {
            let lib = library(ctx, &key);
            let kb = lib.open(&sel.kb)?;
            let embedder = kb_embedder(ctx, &ModelArgs { embed_model: None }, &kb)?;
            drop(kb);
            let bar = Bar::new(!sel.json);
            let r = lib.reindex(&sel.kb, &embedder, &bar)?;
            if sel.json {
                out!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                out!("{} files: {} added, {} updated, {} unchanged, {} pruned, {} failed; indexes rebuilt", r.files, r.added, r.updated, r.unchanged, r.pruned.len(), r.failed.len());
            }
        }
    }
    Ok(())
}

pub fn run_search(args: SearchArgs, ctx: &Ctx) -> Result<()> {
    let dir = kb_dir(ctx, &args.kb)?;
    let mut kb = Kb::open_existing(&dir, &crate::key_cmd::workspace_key(ctx)?)?;
    let mode = match args.mode {
        ModeArg::Hybrid => Mode::Hybrid,
        ModeArg::Bm25 => Mode::Bm25,
        ModeArg::Vector => Mode::Vector,
    };
    let rerank = if args.no_rerank {
        RerankChoice::Off
    } else if args.rerank {
        RerankChoice::On
    } else {
        RerankChoice::Auto
    };
    let reranker = if rerank == RerankChoice::Off { None } else { load_reranker(ctx, args.rerank_model.as_deref())? };
    // --rerank without a cross-encoder: sentence max-sim, which needs the embedder in every mode
    let maxsim_wanted = rerank == RerankChoice::On && reranker.is_none();
    let embedder = if mode == Mode::Bm25 && !maxsim_wanted { None } else { Some(kb_embedder(ctx, &args.model, &kb)?) };
    let maxsim = match (&embedder, maxsim_wanted) {
        (Some(e), true) => Some(SentenceMaxSim::new(e)),
        _ => None,
    };
    let reranker: Option<&dyn TextReranker> = match (&reranker, &maxsim) {
        (Some(r), _) => Some(r),
        (None, Some(m)) => Some(m),
        _ => None,
    };
    let opts = SearchOptions {
        k: args.k,
        mode,
        rerank,
        filter: Filter::parse(&args.filter)?,
        fusion: args.fusion.into(),
        w_bm25: args.w_bm25,
        w_vector: args.w_vector,
        mmr_lambda: args.mmr_lambda,
        ..SearchOptions::default()
    };
    let res = search(&mut kb, &args.query, embedder.as_ref().map(|e| e as &dyn TextEmbedder), reranker, &opts)?;
    // an index this search had to rebuild (missing or stale file) is kept for the next one
    if let Err(e) = kb.save_rebuilt_indexes() {
        tracing::warn!("could not save the rebuilt search indexes: {e}");
    }
    if args.trace {
        eprintln!("{}", serde_json::to_string_pretty(&res.trace)?);
    }
    if rerank == RerankChoice::On && !res.trace.reranked && !res.hits.is_empty() {
        eprintln!("note: results are not reranked");
    }
    if args.json {
        let reranked = res.trace.reranked;
        let arr: Vec<serde_json::Value> = res
            .hits
            .iter()
            .map(|h| {
                let mut v = serde_json::to_value(h).unwrap_or_default();
                v["reranked"] = serde_json::Value::Bool(reranked);
                v
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&arr)?);
    } else if res.hits.is_empty() {
        out!("no results");
    } else {
        for h in &res.hits {
            let page = h.page.map(|p| format!(" p. {p}")).unwrap_or_default();
            let head = if h.heading.is_empty() { String::new() } else { format!(" › {}", h.heading) };
            out!("{}. [{:.3}] {}{} — {}{}", h.rank, h.score, h.source, page, h.title, head);
            let snippet: String = h.text.chars().take(300).collect();
            let more = if h.text.chars().count() > 300 { "…" } else { "" };
            out!("   {}{}\n", snippet.replace('\n', "\n   "), more);
        }
    }
    Ok(())
}

pub fn run_eval_retrieval(args: EvalRetrievalArgs, ctx: &Ctx) -> Result<()> {
    let gold = eval::load_goldset(&args.goldset)?;
    if !args.docs.is_dir() {
        bail!("--docs {}: not a folder", args.docs.display());
    }
    let embedder = load_embedder(ctx, &args.model)?;
    let reranker = load_reranker(ctx, args.rerank_model.as_deref())?;
    let (_tmp, dir) = eval::temp_kb_dir()?;
    // a scratch knowledge base, removed afterwards: a key that lives only in memory
    let mut kb = match &args.store {
        None => Kb::open(&dir, &tresor_guard::crypto::WorkspaceKey::ephemeral())?,
        Some(url) => crate::kb_store::scratch(&dir, url, args.password_file.as_deref())?,
    };
    let iopts = IngestOptions {
        chunk: ChunkConfig { target_tokens: args.chunk_tokens.max(16), overlap_tokens: args.overlap_tokens },
        ..IngestOptions::default()
    };
    let rep = ingest(&mut kb, &embedder, &[args.docs.clone()], &iopts, &Bar::new(!args.json))?;
    let d = SearchOptions::default();
    let base = SearchOptions {
        fusion: args.fusion.into(),
        w_bm25: args.w_bm25.unwrap_or(d.w_bm25),
        w_vector: args.w_vector.unwrap_or(d.w_vector),
        rrf_k: args.rrf_k.unwrap_or(d.rrf_k),
        mmr_lambda: args.mmr_lambda.unwrap_or(d.mmr_lambda),
        ..d
    };
    for f in &rep.failed {
        eprintln!("failed {}: {}", f.source, f.reason);
    }
    let report = eval::evaluate(
        &mut kb,
        &gold,
        &args.goldset,
        &args.docs,
        &embedder,
        reranker.as_ref().map(|r| r as &dyn TextReranker),
        &base,
    )?;
    if args.record {
        let (store, _) = crate::kpi_cmd::open_events(ctx)?;
        let kb = args.record_kb.clone().unwrap_or_else(|| "default".into());
        let kind = tresor_assistant::tresor_telemetry::EventKind::EvalRun(report.eval_run());
        let id = store.record(&tresor_assistant::tresor_telemetry::Event::now(None, None, Some(kb), kind)).context("recording the eval run")?;
        if !args.json {
            eprintln!("recorded as event {id} in {}", store.path().display());
        }
    }
    for w in &args.sweep_w_vector {
        for lambda in [1.0f32, 0.9] {
            let opts = SearchOptions { w_vector: *w, mmr_lambda: lambda, ..base.clone() };
            let r = eval::evaluate(&mut kb, &gold, &args.goldset, &args.docs, &embedder, None, &opts)?;
            let h = r.modes.iter().find(|m| m.mode == "hybrid").expect("hybrid");
            out!(
                "sweep w_vector={w} mmr={lambda}: hybrid R@1 {:.3} R@5 {:.3} R@10 {:.3} MRR {:.3} nDCG@10 {:.3}",
                h.recall_at_1, h.recall_at_5, h.recall_at_10, h.mrr, h.ndcg_at_10
            );
        }
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!(
            "{} questions ({} unanswerable skipped), {} documents, {} chunks, embedder {}",
            report.questions, report.skipped_unanswerable, report.documents, report.chunks, report.embedder
        );
        out!("{}", eval::table(&report).trim_end());
        for m in &report.modes {
            if !m.missed_at_5.is_empty() {
                out!("{} missed@5: {}", m.mode, m.missed_at_5.join(" "));
            }
        }
        if let Some(n) = &report.rerank_note {
            out!("note: {n}");
        }
    }
    Ok(())
}

pub fn run_bench_kb(args: BenchKbArgs, ctx: &Ctx) -> Result<()> {
    let embedder_path = embedder_dir(ctx, args.model.embed_model.as_deref())?;
    let embedder = tresor_llm::embed::Embedder::load(&embedder_path, &device(ctx)?)
        .with_context(|| format!("loading the embedder from {}", embedder_path.display()))?;
    // the static tier distilled from it (`tresor models distill`), when there is one
    let static_dir = tresor_llm::static_embed::default_dir(&embedder_path);
    let static_tier = if tresor_llm::static_embed::is_static_dir(&static_dir) && !embedder.is_static() && !args.skip_ingest {
        let e = tresor_llm::embed::Embedder::load(&static_dir, &device(ctx)?)
            .with_context(|| format!("loading the static embedder from {}", static_dir.display()))?;
        Some(e)
    } else {
        None
    };
    let sample = args.sample_dir.clone().unwrap_or_else(|| PathBuf::from("assets/sample-kb"));
    let mut scales = if args.scales.is_empty() { vec![10_000, 100_000] } else { args.scales.clone() };
    if args.scale_1m && !scales.contains(&1_000_000) {
        scales.push(1_000_000);
    }
    let opts = BenchOptions {
        sample_dir: (!args.skip_ingest && sample.is_dir()).then_some(sample),
        corpus_mb: if args.skip_ingest { 0.0 } else { args.corpus_mb },
        embed_corpus_mb: if args.skip_ingest { 0.0 } else { args.embed_corpus_mb },
        scales,
        queries: args.queries,
        work_dir: args.work_dir.clone(),
        threads: ctx.threads,
        keep_scales: args.keep_scales,
        bm25_only: args.bm25_only,
        bm25_max_postings: args.bm25_max_postings,
        postgres: match &args.store {
            Some(url) => Some(bench::PgTarget { url: url.clone(), password: crate::kb_store::password(url, args.password_file.as_deref())? }),
            None => None,
        },
    };
    let verbose = !args.json;
    let report = bench::run(&embedder, static_tier.as_ref().map(|e| e as &dyn TextEmbedder), &opts, &|line: &str| {
        if verbose {
            eprintln!("{line}");
        }
    })?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", bench::table(&report).trim_end());
    }
    Ok(())
}
