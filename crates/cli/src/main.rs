//! `tresor`: the command-line front door to Tresor's engine.
//! Parses flags, resolves paths, calls the library crates and reports their
//! errors with context. Holds no engine logic.
#![forbid(unsafe_code)]

mod actions_cmd;
mod assistant_cmd;
mod audit_cmd;
mod bench_cmd;
mod ctx;
mod eval_cmd;
mod events_cmd;
mod indirect_cmd;
mod injection_cmd;
mod kb_cmd;
mod kb_store;
mod kpi_cmd;
mod key_cmd;
mod llm_cmd;
mod mcp_cmd;
mod models_cmd;
mod pii_cmd;
mod policy_cmd;
mod redteam_cmd;
mod release_cmd;
mod serve_cmd;
mod text_input;
mod tools_cmd;
mod widget_cmd;
mod workspace_cmd;
mod ws_lock;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use ctx::Ctx;

#[derive(Parser)]
#[command(name = "tresor", version, about = "Offline AI assistant: answers from your own documents, nothing leaves the machine")]
struct Cli {
    /// Where Tresor keeps knowledge bases, conversations and telemetry.
    #[arg(long, global = true, env = "TRESOR_HOME")]
    data_dir: Option<PathBuf>,
    /// Where model files and the model manifest live.
    #[arg(long, global = true, env = "TRESOR_MODELS")]
    models_dir: Option<PathBuf>,
    /// Device to run models on: cpu, cuda:N or metal.
    #[arg(long, global = true, default_value = "cpu", env = "TRESOR_DEVICE")]
    device: String,
    /// CPU threads for inference (default: all cores).
    #[arg(long, global = true, env = "TRESOR_THREADS")]
    threads: Option<usize>,
    /// Workspace (team or tenant): its own knowledge bases, keys, threads, cache and audit log.
    #[arg(long, global = true, default_value = "default", env = "TRESOR_WORKSPACE")]
    workspace: String,
    /// File whose first line is the passphrase of the workspace key (else TRESOR_PASSPHRASE, the OS keyring, or a prompt).
    #[arg(long, global = true, env = "TRESOR_PASSPHRASE_FILE")]
    passphrase_file: Option<PathBuf>,
    /// The current time for this run (ISO 8601 with an offset, e.g. 2026-12-07T09:30:00+01:00): relative
    /// dates ("tomorrow at 10") resolve against it. For tests and evals; default: the clock.
    #[arg(long, global = true, env = "TRESOR_NOW")]
    now: Option<String>,
    /// More logging (-v info, -vv debug, -vvv trace); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text with a chat model (streams to stdout).
    Generate(llm_cmd::GenerateArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(llm_cmd::TokenizeArgs),
    /// Print sentence embeddings as a JSON array of vectors.
    Embed(llm_cmd::EmbedArgs),
    /// Install, list, verify, remove and pull models.
    #[command(subcommand)]
    Models(models_cmd::ModelsCmd),
    /// Benchmarks against the peers (llama.cpp, sentence-transformers).
    #[command(subcommand)]
    Bench(bench_cmd::BenchCmd),
    /// Add files or folders to a knowledge base (incremental; --prune removes deleted files).
    Ingest(kb_cmd::IngestArgs),
    /// Inspect and maintain knowledge bases: list, stats, remove, check, rebuild-index.
    #[command(subcommand)]
    Kb(kb_cmd::KbCmd),
    /// Search a knowledge base (hybrid BM25 + vector, reranked when a reranker is installed).
    Search(kb_cmd::SearchArgs),
    /// Answer a question from a knowledge base, with cited sources (streams; --json for one object).
    Ask(assistant_cmd::AskArgs),
    /// Confirm, decline or show a tool action (`actions[].id` of `tresor ask --json`).
    #[command(subcommand)]
    Actions(actions_cmd::ActionsCmd),
    /// Interactive conversation with history (/sources /new /kb /model /rate).
    Chat(assistant_cmd::ChatArgs),
    /// Local HTTP API: OpenAI-compatible /v1 and native /api endpoints (bearer token, loopback by default).
    Serve(serve_cmd::ServeArgs),
    /// Evaluations: retrieval, answers, tools, PII, injection; the regression gate (suite), gold sets, the judge.
    #[command(subcommand)]
    Eval(EvalCmd),
    /// Guard checks on a text: PII spans, prompt injection.
    #[command(subcommand)]
    Guard(GuardCmd),
    /// Show or check the admin policy.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCmd),
    /// Model Context Protocol: the admin policy's MCP servers and their tools; Tresor as an MCP server (stdio).
    #[command(subcommand)]
    Mcp(mcp_cmd::McpCmd),
    /// Verify or export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCmd),
    /// Encryption keys of the workspace.
    #[command(subcommand)]
    Key(key_cmd::KeyCmd),
    /// Workspaces (teams or tenants) and their API tokens: list, create, remove, token create|list|revoke.
    #[command(subcommand)]
    Workspace(workspace_cmd::WorkspaceCmd),
    /// The embeddable web widget: its publishable tokens (`tresor serve` hosts /widget.js).
    #[command(subcommand)]
    Widget(widget_cmd::WidgetCmd),
    /// Tools the assistant can call: import their data (prices, orders, calendar), list them, show appointments and tickets.
    #[command(subcommand)]
    Tools(tools_cmd::ToolsCmd),
    /// KPIs from the recorded events: containment, CSAT, latency, cost, content gaps (docs/kpi.md).
    Kpi(kpi_cmd::KpiArgs),
    /// The recorded events: export (parquet, jsonl) or purge.
    #[command(subcommand)]
    Events(events_cmd::EventsCmd),
    /// Rate an answer: thumbs up/down, CSAT 1-5, a comment.
    Feedback(events_cmd::FeedbackArgs),
    /// Record that a conversation was handed to a human.
    Handoff(events_cmd::HandoffArgs),
    /// What monthly cost and latency become if volume, containment, cache hits or the model mix change (from the measured events).
    Simulate(kpi_cmd::SimulateArgs),
    /// Versioned releases of prompts, policy and config: create, list, show, diff, canary, promote, rollback, compare (docs/releases.md).
    #[command(subcommand)]
    Release(release_cmd::ReleaseCmd),
    /// Attack the full pipeline (hostile documents and tool data in a scratch knowledge base): attack success per category.
    Redteam(redteam_cmd::RedteamArgs),
}

#[derive(Subcommand)]
enum GuardCmd {
    /// Find personal data (EMAIL, PHONE, IBAN, CREDIT_CARD, IP_ADDRESS, TAX_ID, SSN, DATE_OF_BIRTH, ADDRESS, PERSON).
    Pii(pii_cmd::PiiArgs),
    /// Score a text for prompt-injection / jailbreak content.
    Injection(injection_cmd::InjectionArgs),
    /// (internal) Train the injection classifier: cross-validates, picks the threshold, writes the weights.
    #[command(hide = true)]
    TrainInjection(injection_cmd::TrainInjectionArgs),
}

#[derive(Subcommand)]
enum EvalCmd {
    /// Recall@1/5/10, MRR and nDCG@10 per search mode on a gold set.
    Retrieval(kb_cmd::EvalRetrievalArgs),
    /// Tool calls on cases (shared/eval/tools_dev format): selection, arguments, false calls, JSON validity, task success.
    Tools(actions_cmd::EvalToolsArgs),
    /// Answer quality on a gold set: token F1, citation precision, refusal rate, latency, tokens.
    Answers(assistant_cmd::EvalAnswersArgs),
    /// PII detection per type (precision/recall), Tresor and Presidio on the same cases.
    Pii(pii_cmd::EvalPiiArgs),
    /// Injection detection (TPR/FPR) and an end-to-end attack run.
    Injection(injection_cmd::EvalInjectionArgs),
    /// Indirect injection end to end: documents carrying orders to the assistant; attack success and own question answered.
    Indirect(indirect_cmd::EvalIndirectArgs),
    /// The regression gate: run the evals of a config, compare every metric with the baseline, exit 2 on a regression.
    Suite(eval_cmd::SuiteArgs),
    /// Gold sets from your own documents: add, import, list; candidates from positively rated answers.
    #[command(subcommand)]
    Goldset(eval_cmd::GoldsetCmd),
    /// LLM-as-judge with heuristics: faithfulness and relevance verdicts, kappa against gold labels.
    Judge(eval_cmd::JudgeArgs),
    /// Build the judge's labelled set (faithful and corrupted answers) from a RAG gold set.
    JudgeSet(eval_cmd::JudgeSetArgs),
}

fn main() {
    if let Some(msg) = tresor_llm::device::cpu_mismatch_message() {
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    if let Err(err) = run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// Which commands hold the workspace's in-use lock (see ws_lock).
fn workspace_use(cmd: &Command) -> ws_lock::Use {
    use ws_lock::Use;
    match cmd {
        Command::Ingest(_)
        | Command::Kb(_)
        | Command::Search(_)
        | Command::Ask(_)
        | Command::Actions(_)
        | Command::Chat(_)
        | Command::Policy(_)
        | Command::Mcp(_)
        | Command::Audit(_)
        | Command::Widget(_)
        | Command::Tools(_)
        | Command::Kpi(_)
        | Command::Events(_)
        | Command::Feedback(_)
        | Command::Handoff(_)
        | Command::Simulate(_)
        | Command::Release(_) => Use::Data,
        // models and scratch dirs only; a server that locks each workspace it opens;
        // workspaces and keys managed by their own commands (a rotation locks exclusively)
        Command::Generate(_)
        | Command::Tokenize(_)
        | Command::Embed(_)
        | Command::Models(_)
        | Command::Bench(_)
        | Command::Serve(_)
        | Command::Eval(_)
        | Command::Guard(_)
        | Command::Key(_)
        | Command::Workspace(_)
        | Command::Redteam(_) => Use::None,
    }
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRESOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn run(cli: Cli) -> Result<()> {
    // the workspace's data dir: `ingest` creates a missing workspace, `workspace ...` names its own
    let need = match &cli.command {
        Command::Ingest(_) => ctx::WsNeed::Create,
        Command::Tools(cmd) if tools_cmd::creates_data(cmd) => ctx::WsNeed::Create,
        Command::Workspace(_) => ctx::WsNeed::Name,
        _ => ctx::WsNeed::Existing,
    };
    let root = cli.data_dir.unwrap_or_else(default_data_dir);
    // nothing readable by other local users: every file this process (SQLite included) creates is
    // 0600 and every folder 0700 from creation, and an existing data root is tightened to 0700
    tresor_guard::private::restrict_umask();
    if root.is_dir() {
        tresor_guard::private::secure_root(&root).with_context(|| format!("making {} private (0700)", root.display()))?;
    }
    let now = match cli.now.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<jiff::Timestamp>()
                .with_context(|| format!("--now / TRESOR_NOW `{s}`: expected ISO 8601 with an offset, e.g. 2026-12-07T09:30:00+01:00"))?,
        ),
        None => None,
    };
    let ctx = Ctx {
        data_dir: root.clone(),
        root,
        models_dir: tresor_models::resolve_models_dir(cli.models_dir.as_deref()),
        device: cli.device,
        threads: cli.threads,
        workspace: cli.workspace,
        passphrase_file: cli.passphrase_file,
        now,
    }
    .in_workspace(need)?;
    // the shared lock serve and the app hold: a key rotation refuses while this command runs
    let _in_use = ws_lock::hold(&ctx.data_dir, workspace_use(&cli.command))?;
    match cli.command {
        Command::Generate(args) => llm_cmd::run_generate(args, &ctx),
        Command::Tokenize(args) => llm_cmd::run_tokenize(args, &ctx),
        Command::Embed(args) => llm_cmd::run_embed(args, &ctx),
        Command::Models(cmd) => models_cmd::run(cmd, &ctx),
        Command::Bench(cmd) => bench_cmd::run(cmd, &ctx),
        Command::Ingest(args) => kb_cmd::run_ingest(args, &ctx),
        Command::Kb(cmd) => kb_cmd::run_kb(cmd, &ctx),
        Command::Search(args) => kb_cmd::run_search(args, &ctx),
        Command::Eval(EvalCmd::Retrieval(args)) => kb_cmd::run_eval_retrieval(args, &ctx),
        Command::Eval(EvalCmd::Answers(args)) => assistant_cmd::run_eval_answers(args, &ctx),
        Command::Ask(args) => assistant_cmd::run_ask(args, &ctx),
        Command::Actions(cmd) => actions_cmd::run(cmd, &ctx),
        Command::Eval(EvalCmd::Tools(args)) => actions_cmd::run_eval_tools(args, &ctx),
        Command::Chat(args) => assistant_cmd::run_chat(args, &ctx),
        Command::Serve(args) => serve_cmd::run_serve(args, &ctx),
        Command::Eval(EvalCmd::Pii(args)) => pii_cmd::run_eval_pii(args, &ctx),
        Command::Eval(EvalCmd::Injection(args)) => injection_cmd::run_eval_injection(args, &ctx),
        Command::Eval(EvalCmd::Indirect(args)) => indirect_cmd::run_eval_indirect(args, &ctx),
        Command::Eval(EvalCmd::Suite(args)) => eval_cmd::run_suite(args, &ctx),
        Command::Eval(EvalCmd::Goldset(cmd)) => eval_cmd::run_goldset(cmd, &ctx),
        Command::Eval(EvalCmd::Judge(args)) => eval_cmd::run_judge(args, &ctx),
        Command::Eval(EvalCmd::JudgeSet(args)) => eval_cmd::run_judge_set(args, &ctx),
        Command::Guard(GuardCmd::Pii(args)) => pii_cmd::run_pii(args, &ctx),
        Command::Guard(GuardCmd::Injection(args)) => injection_cmd::run_injection(args, &ctx),
        Command::Guard(GuardCmd::TrainInjection(args)) => injection_cmd::run_train_injection(args, &ctx),
        Command::Policy(cmd) => policy_cmd::run(cmd, &ctx),
        Command::Mcp(cmd) => mcp_cmd::run(cmd, &ctx),
        Command::Audit(cmd) => audit_cmd::run(cmd, &ctx),
        Command::Key(cmd) => key_cmd::run(cmd, &ctx),
        Command::Workspace(cmd) => workspace_cmd::run(cmd, &ctx),
        Command::Widget(cmd) => widget_cmd::run(cmd, &ctx),
        Command::Tools(cmd) => tools_cmd::run(cmd, &ctx),
        Command::Kpi(args) => kpi_cmd::run_kpi(args, &ctx),
        Command::Events(cmd) => events_cmd::run(cmd, &ctx),
        Command::Feedback(args) => events_cmd::run_feedback(args, &ctx),
        Command::Handoff(args) => events_cmd::run_handoff(args, &ctx),
        Command::Simulate(args) => kpi_cmd::run_simulate(args, &ctx),
        Command::Release(cmd) => release_cmd::run(cmd, &ctx),
        Command::Redteam(args) => redteam_cmd::run(args, &ctx),
    }
}

fn default_data_dir() -> PathBuf {
    tresor_models::platform_data_dir()
}
