//! `tresor serve`: the local HTTP API (tresor-server) over this data dir and models.

use std::net::SocketAddr;

use anyhow::Result;
use clap::Args;

use crate::ctx::Ctx;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; another address exposes the API to the network).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Bearer token clients must send (default: generated at first start, stored with mode 0600 as `api-token` in the data dir).
    #[arg(long, env = "TRESOR_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Requests queued or running in the engine before the server answers 429.
    #[arg(long, default_value_t = 32)]
    pub max_queue: usize,
    /// Largest JSON request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub body_limit: usize,
}

pub fn run_serve(args: ServeArgs, ctx: &Ctx) -> Result<()> {
    let (token, generated) = tresor_server::api_token(&ctx.data_dir, args.token.as_deref())?;
    if !args.addr.ip().is_loopback() {
        eprintln!("warning: listening on {} exposes the API beyond this machine", args.addr);
    }
    let opts = tresor_server::ServeOptions {
        addr: args.addr,
        token,
        max_queue: args.max_queue,
        body_limit: args.body_limit,
        ..Default::default()
    };
    let token_file = ctx.data_dir.join("api-token");
    let c = ctx.clone();
    let data = ctx.data_dir.clone();
    tresor_server::serve(
        opts,
        ctx.data_dir.clone(),
        Box::new(move || crate::assistant_cmd::build_assistant(&c, &data).map_err(|e| format!("{e:#}"))),
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
