//! `tresor serve`: the local HTTP API (tresor-server) over every workspace of
//! the data dir and the models. Flags in, one call into tresor-server.

use std::net::SocketAddr;

use anyhow::{Context, Result};
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
