//! `tresor widget token create | list | revoke`: front door to
//! tresor_guard::widget. A widget token belongs to the `--workspace` and one
//! of its knowledge bases (which must exist), works only from the given
//! `--origin`s and only asks; `tresor serve` hosts the widget (`/widget.js`).

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;
use tresor_guard::widget::{NewWidgetToken, DEFAULT_RATE_PER_MIN, DEFAULT_VISITOR_RATE_PER_MIN};

use crate::ctx::Ctx;

#[derive(Subcommand, Debug)]
pub enum WidgetCmd {
    /// Publishable tokens for the embeddable web widget (one workspace, one knowledge base, ask-only).
    #[command(subcommand)]
    Token(WidgetTokenCmd),
}

#[derive(Subcommand, Debug)]
pub enum WidgetTokenCmd {
    /// Print a new widget token once; the workspace stores only its SHA-256.
    Create {
        /// The knowledge base the widget answers from (of --workspace).
        #[arg(long)]
        kb: String,
        /// A page origin allowed to embed the widget, exactly scheme://host[:port] (repeatable).
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
        /// Requests per minute for this token, all visitors together (N/min, N/s, N/h).
        #[arg(long, default_value_t = DEFAULT_RATE_PER_MIN.to_string())]
        rate: String,
        /// Requests per minute for one visitor (IP address).
        #[arg(long, default_value_t = DEFAULT_VISITOR_RATE_PER_MIN.to_string())]
        visitor_rate: String,
        /// Most answers per UTC day (default: no cap).
        #[arg(long)]
        daily_cap: Option<u32>,
        /// A note to tell tokens apart in `list`.
        #[arg(long, default_value = "")]
        label: String,
        /// Print {"token", "id", "workspace", "kb", "origins", ...} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the workspace's widget tokens (never the tokens themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a widget token by id; a running server rejects it within seconds.
    Revoke { id: String },
}

/// `N/min` (or plain N), `N/s`, `N/h` as requests per minute (at least 1).
fn per_minute(s: &str) -> Result<u32> {
    let r = tresor_server::limits::parse_rate_limit(s).map_err(anyhow::Error::msg)?;
    let Some(r) = r else { bail!("`{s}`: a widget token always has a rate limit") };
    let n = (r.per_second * 60.0).round();
    if n < 1.0 {
        bail!("`{s}`: at least 1 request a minute");
    }
    Ok(n.min(u32::MAX as f64) as u32)
}

pub fn run(cmd: WidgetCmd, ctx: &Ctx) -> Result<()> {
    let ws = ctx.workspaces();
    let name = ctx.workspace.as_str();
    match cmd {
        WidgetCmd::Token(WidgetTokenCmd::Create { kb, origins, rate, visitor_rate, daily_cap, label, json }) => {
            let dir = ws.open(name)?;
            if !tresor_assistant::library::kb_names(&dir).contains(&kb) {
                bail!("workspace `{name}` has no knowledge base `{kb}` (create it with: tresor ingest FOLDER --kb {kb})");
            }
            if daily_cap == Some(0) {
                bail!("--daily-cap must be at least 1 (leave it out for no cap)");
            }
            let new = NewWidgetToken {
                kb: kb.clone(),
                origins,
                rate_per_min: per_minute(&rate).context("--rate")?,
                visitor_rate_per_min: per_minute(&visitor_rate).context("--visitor-rate")?,
                daily_cap,
                label,
            };
            let (rec, token) = ws.widget_tokens(name)?.create(&new).with_context(|| format!("creating a widget token for `{name}`"))?;
            if json {
                println!(
                    "{}",
                    json!({"token": token, "id": rec.id, "workspace": name, "kb": rec.kb, "origins": rec.origins,
                        "rate_per_min": rec.rate_per_min, "visitor_rate_per_min": rec.visitor_rate_per_min, "daily_cap": rec.daily_cap})
                );
            } else {
                println!("{token}");
                eprintln!(
                    "widget token {} for knowledge base `{}` of workspace `{name}`, allowed on {}: shown once, only its SHA-256 is stored",
                    rec.id,
                    rec.kb,
                    rec.origins.join(", ")
                );
            }
        }
        WidgetCmd::Token(WidgetTokenCmd::List { json }) => {
            let list = ws.widget_tokens(name)?.list()?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|t| {
                        json!({"id": t.id, "label": t.label, "kb": t.kb, "origins": t.origins, "rate_per_min": t.rate_per_min,
                            "visitor_rate_per_min": t.visitor_rate_per_min, "daily_cap": t.daily_cap, "created": t.created})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for t in list {
                    println!("{}\t{}\t{}\t{}", t.id, t.kb, t.origins.join(","), t.label);
                }
            }
        }
        WidgetCmd::Token(WidgetTokenCmd::Revoke { id }) => {
            let rec = ws.widget_tokens(name)?.revoke(&id)?;
            println!("revoked widget token {} of workspace `{name}`", rec.id);
        }
    }
    Ok(())
}

/// `tresor bench widget`.
#[derive(clap::Args, Debug)]
pub struct BenchWidgetArgs {
    /// Folder of documents ingested into the scratch server's `default` knowledge base.
    #[arg(long)]
    pub docs: std::path::PathBuf,
    /// A question to ask (repeatable); each run asks each one through both paths.
    #[arg(long = "question", required = true)]
    pub questions: Vec<String>,
    /// Rounds over the questions (which path asks first alternates per pair and per round).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[arg(long)]
    pub json: bool,
}

/// `tresor bench widget`: a scratch data dir with `--docs` ingested and the
/// semantic cache off, the real `tresor serve` on loopback, a widget token
/// for a loopback test page under the strict CSP, headless Chromium; then
/// each question through the API (raw HTTP, streamed) and through
/// `TresorWidget.ask` in the browser, both in a fresh conversation each
/// time, alternating which goes first (per pair and per round), each after
/// the same unmeasured flush answer (the chat model's KV prefix reuse would
/// otherwise hand the second path the first one's prefill), after one
/// discarded warm-up answer per path. See tresor_bench::widget.
pub fn run_bench_widget(args: BenchWidgetArgs, ctx: &Ctx) -> Result<()> {
    use tresor_bench::widget as w;

    if !args.docs.is_dir() {
        bail!("--docs {}: not a folder", args.docs.display());
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let (_tmp, data) = tresor_assistant::scratch::scratch_dir()?;
    std::fs::write(data.join("assistant.toml"), "[cache]\nenabled = false\n").context("writing the scratch assistant.toml")?;
    let t = crate::serve_cmd::scratch_tresor(ctx, &data)?;
    let api_token = crate::serve_cmd::random_hex();
    t.run("tresor ingest", &["ingest", &args.docs.to_string_lossy()])?;
    let page = w::PageServer::start()?;
    let out = t.run(
        "tresor widget token create",
        &["widget", "token", "create", "--kb", "default", "--origin", &page.origin(), "--rate", "100000/min", "--visitor-rate", "100000/min", "--json"],
    )?;
    let widget_token = serde_json::from_str::<serde_json::Value>(&out)?["token"].as_str().unwrap_or_default().to_string();
    let server = t.serve(&["--rate-limit", "off", "--token", &api_token])?;
    let addr = server.addr;
    let origin = format!("http://{addr}");
    page.set(w::embed_page(&origin, "default", &widget_token, "en"), w::strict_csp(&origin));
    let url = page.origin();
    let b = w::Browser::start(1100, 800)?;
    let load_before = crate::serve_cmd::load_average();
    let e = anyhow::Error::msg;
    let mut flushes_ran_model = true;
    let mut flushed = |q: &str| -> Result<()> {
        let m = w::flush(addr, &api_token, "default", q).map_err(e)?;
        flushes_ran_model &= m.ran_model();
        Ok(())
    };
    // warm-up, discarded: the model loads on the first answer, the browser warms its connection
    let warm = &args.questions[0];
    flushed(warm)?;
    w::time_api(addr, &api_token, "default", warm).map_err(e)?;
    flushed(warm)?;
    w::time_widget(&b, &url, warm).map_err(e)?;
    let mut runs = Vec::new();
    for round in 0..args.runs {
        for (qi, q) in args.questions.iter().enumerate() {
            let api_first = w::api_first(round, qi);
            for path in if api_first { ["api", "widget"] } else { ["widget", "api"] } {
                flushed(q)?;
                let mut r = if path == "api" { w::time_api(addr, &api_token, "default", q) } else { w::time_widget(&b, &url, q) }.map_err(e)?;
                r.round = round;
                r.first_in_pair = (path == "api") == api_first;
                runs.push(r);
            }
        }
    }
    drop(b);
    drop(server);
    let conditions = w::Conditions {
        cpu: tresor_bench::process::cpu_description(),
        device: ctx.device.clone(),
        threads: ctx.threads,
        load_average_before: load_before,
        load_average_after: crate::serve_cmd::load_average(),
        flushes_ran_model,
        semantic_cache: "off ([cache] enabled = false)",
    };
    let report = w::WidgetBench::of(runs, conditions);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
