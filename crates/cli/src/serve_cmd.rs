//! `tresor serve`: the local HTTP API (tresor-server) over every workspace of
//! the data dir and the models. Flags in, one call into tresor-server.
//! `tresor bench serve`: the bounded load test against a scratch server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_server::limits::{parse_rate_limit, PromptLimits, RateLimit};

use crate::ctx::Ctx;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; another address exposes the API to the network).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Bearer token clients must send, scoped to --workspace (default: generated at first start, stored with mode 0600 as `api-token` in the workspace's data dir). Tokens from `tresor workspace token create NAME` work as well, each in its own workspace.
    #[arg(long, env = "TRESOR_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Requests queued or running in the engine before the server answers 429.
    #[arg(long, default_value_t = 32)]
    pub max_queue: usize,
    /// Largest JSON request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// Largest uploaded document in bytes (413 above it).
    #[arg(long, default_value_t = 64 << 20)]
    pub upload_limit: usize,
    /// Requests per API token: N/min, N/s, N/h (a bucket of N that refills at that rate), or `off`; 429 with Retry-After above it.
    #[arg(long, default_value = tresor_server::DEFAULT_RATE_LIMIT, value_parser = parse_rate_arg)]
    pub rate_limit: RateArg,
    /// Longest question in characters (the last user message, a thread message, a search query); 413 above it.
    #[arg(long, default_value_t = PromptLimits::default().max_prompt_chars)]
    pub max_prompt_chars: usize,
    /// Most characters of all messages of one chat request together; 413 above it.
    #[arg(long, default_value_t = PromptLimits::default().max_messages_chars)]
    pub max_messages_chars: usize,
    /// A host name (besides localhost and the bound address) that browsers may use for this server in `Host` / `Origin`; others get 403 (DNS-rebinding defence). Repeat for several.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
}

/// `--rate-limit`: a limit, or none for `off`.
#[derive(Debug, Clone, Copy)]
pub struct RateArg(pub Option<RateLimit>);

fn parse_rate_arg(s: &str) -> Result<RateArg, String> {
    parse_rate_limit(s).map(RateArg)
}

pub fn run_serve(args: ServeArgs, ctx: &Ctx) -> Result<()> {
    let (token, generated) = tresor_server::api_token(&ctx.data_dir, args.token.as_deref())?;
    if !args.addr.ip().is_loopback() {
        eprintln!("warning: listening on {} exposes the API beyond this machine", args.addr);
    }
    let opts = tresor_server::ServeOptions {
        addr: args.addr,
        root: ctx.root.clone(),
        workspace: ctx.workspace.clone(),
        token,
        max_queue: args.max_queue,
        body_limit: args.body_limit,
        upload_limit: args.upload_limit,
        rate_limit: args.rate_limit.0,
        prompt_limits: PromptLimits { max_prompt_chars: args.max_prompt_chars, max_messages_chars: args.max_messages_chars },
        allowed_hosts: args.allow_hosts,
    };
    let token_file = ctx.data_dir.join("api-token");
    let base = ctx.clone();
    tresor_server::serve(
        opts,
        // each workspace's engine sees only its own data dir (and so its own key, cache, threads, audit)
        Box::new(move |name, dir| {
            let ws = Ctx { data_dir: dir.to_path_buf(), workspace: name.to_string(), ..base.clone() };
            crate::key_cmd::workspace_key(&ws)
                .and_then(|key| crate::assistant_cmd::build_assistant(&ws, &ws.data_dir, &key))
                .with_context(|| format!("workspace `{name}`"))
                .map_err(|e| format!("{e:#}"))
        }),
        Box::new(move |addr| {
            if generated {
                eprintln!("generated an API token: {}", token_file.display());
            }
            // one line on stdout, for scripts and tests
            println!("listening on http://{addr}");
        }),
    )?;
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchServeArgs {
    /// Streaming clients sent at once.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Gold set whose answerable questions the clients ask, one each in turn (JSONL).
    #[arg(long)]
    pub goldset: PathBuf,
    /// Folder of documents ingested into the scratch server's `default` knowledge base.
    #[arg(long)]
    pub docs: PathBuf,
    /// Let the semantic cache answer repeated questions (default: every client makes the model run).
    #[arg(long)]
    pub cache: bool,
    /// Each client's deadline in seconds; a client past it counts as an error, and the test stops.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    #[arg(long)]
    pub json: bool,
}

/// `tresor bench serve`: a scratch data dir with `--docs` ingested, the real
/// `tresor serve` on an ephemeral loopback port, `--clients` streaming chat
/// requests at once (tresor_bench::loadtest), then the server is stopped.
pub fn run_bench_serve(args: BenchServeArgs, ctx: &Ctx) -> Result<()> {
    let gold = tresor_bench::retrieval_eval::load_goldset(&args.goldset)?;
    let questions: Vec<String> = gold.into_iter().filter(|g| g.answerable).map(|g| g.question).collect();
    if questions.is_empty() {
        bail!("--goldset {}: no answerable questions", args.goldset.display());
    }
    if !args.docs.is_dir() {
        bail!("--docs {}: not a folder", args.docs.display());
    }
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let (_tmp, data) = tresor_assistant::scratch::scratch_dir()?;
    let t = scratch_tresor(ctx, &data)?;
    let token = random_hex();
    t.run("tresor ingest", &["ingest", &args.docs.to_string_lossy()])?;
    let max_queue = (args.clients + 1).to_string();
    let server = t.serve(&["--rate-limit", "off", "--token", &token, "--max-queue", &max_queue])?;
    let addr = server.addr;
    let load_before = load_average();
    let report = tresor_bench::loadtest::run(&tresor_bench::loadtest::LoadTest {
        addr,
        token,
        questions,
        clients: args.clients,
        no_cache: !args.cache,
        timeout: Duration::from_secs(args.timeout.max(1)),
    });
    let load_after = load_average();
    // every client has finished or given up: nothing is left to drain
    drop(server);
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["load_average"] = serde_json::json!({"before": load_before, "after": load_after});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", tresor_bench::loadtest::table(&report));
        println!("\nload average (1 min) before / after: {} / {}", load_before.as_deref().unwrap_or("?"), load_after.as_deref().unwrap_or("?"));
    }
    if report.errors > 0 {
        bail!("{} of {} clients failed", report.errors, report.clients);
    }
    Ok(())
}

/// The scratch `tresor` of a bench (tresor-bench's one helper): this
/// binary on `data` with the CLI's models, device and threads.
pub(crate) fn scratch_tresor(ctx: &Ctx, data: &std::path::Path) -> Result<tresor_bench::process::ScratchTresor> {
    let exe = std::env::current_exe().context("locating the tresor binary")?;
    let mut t = tresor_bench::process::ScratchTresor::new(exe, data, &ctx.models_dir);
    t.device = Some(ctx.device.clone());
    t.threads = ctx.threads;
    Ok(t)
}

pub(crate) use tresor_bench::process::{load_average, random_hex};
