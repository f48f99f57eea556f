//! `tresor bench ...`: runs tresor-bench and prints a table or JSON.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tresor_bench::{embed, llm, Machine};
use tresor_llm::qmatmul::CpuTier;
use tresor_models::{Catalog, Role};

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Prompt processing and generation tokens/s, load time and peak RSS,
    /// Tresor vs llama.cpp's llama-bench (alternating runs).
    Llm(BenchLlmArgs),
    /// Sentences/s of the embedder, Tresor vs sentence-transformers.
    Embed(BenchEmbedArgs),
    /// Knowledge base: ingest throughput, query latency per mode at scale, index recall.
    Kb(crate::kb_cmd::BenchKbArgs),
    /// Answers: TTFT p50/p95 (and at 500/1000/1500 context tokens), pipeline share, semantic-cache hit latency.
    Answers(crate::assistant_cmd::BenchAnswersArgs),
    /// Server: N streaming chat clients at once against a scratch `tresor serve` on loopback (errors, TTFT, total).
    Serve(crate::serve_cmd::BenchServeArgs),
    /// KPIs: replays a scripted mix of conversations through this binary and checks `tresor kpi --json` against the script.
    Traffic(crate::kpi_cmd::BenchTrafficArgs),
    /// A simulated experiment on scripted traffic: an A/B test with a known better candidate, an A/A test, and a worse canary that must roll back.
    Ab(BenchAbArgs),
    /// Web widget: first-answer latency of the widget in headless Chromium vs the API, alternating (scratch server).
    Widget(crate::widget_cmd::BenchWidgetArgs),
    /// Hostile documents (issue 19): writes them at full size and ingests each,
    /// timed, read or refused. Run under `ulimit -v 4000000` (README, Reliability).
    Hostile(BenchHostileArgs),
    /// Remote backend: local vs llama-server over the OpenAI API on the same GGUF (TTFT, tokens/s),
    /// then the fallback time when the server dies (default retries, breaker open).
    Remote(crate::models_cmd::BenchRemoteArgs),
    /// (internal) One Tresor LLM measurement in a fresh process.
    #[command(hide = true)]
    LlmWorker {
        #[arg(long, default_value_t = 512)]
        pp: usize,
        #[arg(long, default_value_t = 128)]
        tg: usize,
        model: PathBuf,
    },
    /// (internal) One Tresor embedder measurement in a fresh process.
    #[command(hide = true)]
    EmbedWorker { model: PathBuf, passages: PathBuf },
}

#[derive(Args)]
pub struct BenchLlmArgs {
    /// Model ids or GGUF paths (repeatable; default: the chat-small model).
    #[arg(long)]
    model: Vec<String>,
    /// Synthetic models written by the bench itself (repeatable):
    /// llama-3.2-1b-q4_k, llama-3.2-1b-q8_0, llama-3.1-8b-q4_k (4.6 GB, written once).
    #[arg(long)]
    synthetic: Vec<String>,
    /// Thread counts to measure (repeatable; default: --threads or all cores).
    #[arg(long = "bench-threads")]
    bench_threads: Vec<usize>,
    #[arg(long, default_value_t = 512)]
    pp: usize,
    #[arg(long, default_value_t = 128)]
    tg: usize,
    /// Alternating rounds (Tresor, peer); medians over rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// CPU tiers to run Tresor's kernels on, one row each, comma-separated
    /// (avx512vnni, avxvnni, avx2, neondot, neon, scalar; `all`: every tier this CPU
    /// has). Default: the detected tier (or TRESOR_CPU_TIER).
    #[arg(long, value_delimiter = ',')]
    tiers: Vec<String>,
    /// A llama-bench built for one tier, as TIER=PATH (repeatable): that
    /// tier's rows are compared with it instead of the native build
    /// (scripts/peer/build-llama-bench-avx2.sh builds `avx2=...`).
    #[arg(long = "tier-peer")]
    tier_peer: Vec<String>,
    /// Skip the peer even if it is installed.
    #[arg(long)]
    no_peer: bool,
    /// One JSON object (an array when several models/threads/tiers are measured).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BenchHostileArgs {
    /// Where the files and scratch knowledge bases go (kept; default: a temporary folder, removed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The small sizes the tests use, instead of the full ones.
    #[arg(long)]
    small: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct BenchEmbedArgs {
    #[arg(long)]
    model: Option<String>,
    #[arg(long, default_value_t = 200)]
    passages: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long)]
    no_peer: bool,
    #[arg(long)]
    json: bool,
}

fn threads(ctx: &Ctx) -> usize {
    ctx.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

pub fn run(cmd: BenchCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        BenchCmd::LlmWorker { pp, tg, model } => {
            let device = crate::ctx::device(ctx)?;
            let r = llm::worker(&model, &device, pp, tg)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        BenchCmd::EmbedWorker { model, passages } => {
            let device = crate::ctx::device(ctx)?;
            let r = embed::worker(&model, &device, &passages)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        BenchCmd::Llm(args) => run_llm(args, ctx),
        BenchCmd::Embed(args) => run_embed(args, ctx),
        BenchCmd::Kb(args) => crate::kb_cmd::run_bench_kb(args, ctx),
        BenchCmd::Answers(args) => crate::assistant_cmd::run_bench_answers(args, ctx),
        BenchCmd::Serve(args) => crate::serve_cmd::run_bench_serve(args, ctx),
        BenchCmd::Traffic(args) => crate::kpi_cmd::run_bench_traffic(args, ctx),
        BenchCmd::Ab(args) => run_ab(args),
        BenchCmd::Widget(args) => crate::widget_cmd::run_bench_widget(args, ctx),
        BenchCmd::Hostile(args) => run_hostile(args),
        BenchCmd::Remote(args) => crate::models_cmd::run_bench_remote(args, ctx, threads(ctx)),
    }
}

#[derive(Args)]
pub struct BenchAbArgs {
    /// Seed of the scripted traffic (the runs are reproducible).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

fn run_ab(args: BenchAbArgs) -> Result<()> {
    let (_tmp, dir) = tresor_assistant::scratch::scratch_dir().context("scratch folder")?;
    let r = tresor_bench::ab::run(&dir, args.seed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    for (title, run) in [("A/B: candidate better (scripted)", &r.ab), ("A/A: same rates (must find nothing)", &r.aa)] {
        println!("== {title}: {} conversations, candidate share {:.0}%, seed {}", run.conversations, run.share * 100.0, r.seed);
        println!("{}", crate::release_cmd::format_comparison(&run.comparison));
    }
    let c = &r.canary;
    println!("== canary of a worse release (true refusal {:.2} vs {:.2}); steps {:?}, min {} conversations, refusal margin {}", c.candidate_spec.refusal, c.control_spec.refusal, c.config.steps, c.config.min_conversations, c.config.max_refusal_increase);
    for (n, s) in &c.steps {
        println!("  after {n:>5} conversations: {}", serde_json::to_string(s)?);
    }
    println!("  rolled back: {}  reason: {}", c.rolled_back, c.reason.as_deref().unwrap_or("-"));
    Ok(())
}

fn run_hostile(args: BenchHostileArgs) -> Result<()> {
    let scale = if args.small { tresor_kb::hostile::Scale::Small } else { tresor_kb::hostile::Scale::Full };
    let dir = match &args.out {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("tresor-hostile-{}", std::process::id())),
    };
    let r = tresor_bench::hostile::run(&dir, scale).with_context(|| format!("hostile bench in {}", dir.display()));
    if args.out.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let r = r?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", tresor_bench::hostile::table(&r));
    }
    if let Some(d) = &args.out {
        std::fs::write(d.join("hostile.json"), serde_json::to_string_pretty(&r)?)?;
        std::fs::write(d.join("hostile.md"), tresor_bench::hostile::table(&r))?;
    }
    Ok(())
}

fn run_llm(args: BenchLlmArgs, ctx: &Ctx) -> Result<()> {
    let catalog = Catalog::load(&ctx.models_dir).context("reading the model catalogue")?;
    let mut models: Vec<(String, PathBuf)> = Vec::new();
    if args.model.is_empty() && args.synthetic.is_empty() {
        let r = catalog.resolve(None, Role::ChatSmall)?;
        models.push((r.id, r.path));
    }
    for spec in &args.model {
        let r = catalog.resolve(Some(spec), Role::ChatSmall)?;
        models.push((r.id, r.path));
    }
    let cache = tresor_bench::cache_dir().unwrap_or_else(|| ctx.data_dir.join("cache"));
    for name in &args.synthetic {
        models.push((format!("synthetic {name}"), llm::synthetic_model(name, &cache)?));
    }
    let thread_counts = if args.bench_threads.is_empty() { vec![threads(ctx)] } else { args.bench_threads.clone() };
    let tiers = CpuTier::parse_list(&args.tiers).map_err(|e| anyhow::anyhow!("--tiers: {e}"))?;
    let peer = if args.no_peer { None } else { llm::find_llama_bench() };
    let mut tier_peers = Vec::new();
    for spec in args.tier_peer.iter().filter(|_| !args.no_peer) {
        let (tier, path) = spec.split_once('=').with_context(|| format!("--tier-peer `{spec}`: expected TIER=PATH"))?;
        let tier = CpuTier::parse_list(&[tier.to_string()]).map_err(|e| anyhow::anyhow!("--tier-peer `{spec}`: {e}"))?;
        let path = PathBuf::from(path);
        anyhow::ensure!(path.is_file(), "--tier-peer `{spec}`: no file at {}", path.display());
        tier_peers.extend(tier.into_iter().map(|t| (t, path.clone())));
    }
    let exe = std::env::current_exe().context("locating the tresor binary")?;
    let machine = Machine::probe();
    if !args.json {
        eprintln!("machine: {} ({} cores, SIMD: {})", machine.cpu, machine.cores, machine.simd.join(", "));
        println!("{}", llm::cpu_line());
    }
    let mut reports = Vec::new();
    for (id, path) in &models {
        for &t in &thread_counts {
            let opts = llm::LlmBenchOptions {
                tresor_exe: exe.clone(),
                model_id: id.clone(),
                model: path.clone(),
                threads: t,
                pp: args.pp,
                tg: args.tg,
                rounds: args.rounds,
                peer: peer.clone(),
                tiers: tiers.clone(),
                tier_peers: tier_peers.clone(),
            };
            let rs = llm::run_tiers(&opts).with_context(|| format!("benchmarking `{id}` at {t} threads"))?;
            if let (Some(note), false) = (&rs[0].note, args.json) {
                eprintln!("note: {note}");
            }
            reports.extend(rs);
        }
    }
    if args.json {
        let mut v = if reports.len() == 1 { serde_json::to_value(&reports[0])? } else { serde_json::to_value(&reports)? };
        if let Some(o) = v.as_object_mut() {
            o.insert("machine".into(), serde_json::to_value(&machine)?);
            o.insert("cpu".into(), serde_json::Value::String(llm::cpu_line()));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", llm::table(&reports));
        let mut peers: Vec<(&str, &str)> = Vec::new();
        for p in reports.iter().filter_map(|r| Some((r.tier.as_deref().unwrap_or("default"), r.peer_exe.as_deref()?))) {
            if !peers.contains(&p) {
                peers.push(p);
            }
        }
        for (tier, exe) in peers {
            println!("peer for {tier}: {exe}");
        }
    }
    Ok(())
}

fn run_embed(args: BenchEmbedArgs, ctx: &Ctx) -> Result<()> {
    let catalog = Catalog::load(&ctx.models_dir).context("reading the model catalogue")?;
    let resolved = catalog.resolve(args.model.as_deref(), Role::Embed)?;
    let work = std::env::temp_dir().join(format!("tresor-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let opts = embed::EmbedBenchOptions {
        tresor_exe: std::env::current_exe()?,
        model_id: resolved.id.clone(),
        model_dir: resolved.path.clone(),
        threads: threads(ctx),
        passages: args.passages,
        rounds: args.rounds,
        peer: if args.no_peer { None } else { embed::find_sentence_transformers() },
        work_dir: work.clone(),
    };
    let r = embed::run(&opts);
    let _ = std::fs::remove_dir_all(&work);
    let r = r?;
    if args.json {
        let mut v = serde_json::to_value(&r)?;
        v["machine"] = serde_json::to_value(Machine::probe())?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if let Some(n) = &r.note {
            eprintln!("note: {n}");
        }
        print!("{}", embed::table(&[r]));
    }
    Ok(())
}
