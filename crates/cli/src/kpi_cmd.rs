//! `tresor kpi` and `tresor simulate`: thin doors to tresor-telemetry over
//! the workspace's events (no model is loaded). Flags in, the report or the
//! simulation out (text or `--json`).

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_assistant::tresor_telemetry::{self as tel, simulate::Scenario, EventStore, GroupBy, Window};
use tresor_assistant::AssistantConfig;

use crate::ctx::Ctx;

#[derive(Args, Debug)]
pub struct KpiArgs {
    /// Start of the window: a date (2026-12-01), an RFC 3339 time, or a duration back from now (7d, 24h).
    #[arg(long)]
    pub since: Option<String>,
    /// End of the window (exclusive), same forms; default now.
    #[arg(long)]
    pub until: Option<String>,
    /// Also the KPIs per day, ISO week, knowledge base, model or variant.
    #[arg(long, value_parser = ["day", "week", "kb", "model", "variant"])]
    pub by: Option<String>,
    /// Print everything the dashboard shows (tiles with the previous window, daily series, stage latency, gaps, tool errors) as JSON.
    #[arg(long)]
    pub dashboard: bool,
    /// One JSON object (the KPIs at the top level, `groups`, `gaps`); see docs/kpi.md.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Conversations per day (`200` or `200/day`); default: the measured volume.
    #[arg(long)]
    pub volume: Option<String>,
    /// Change of the containment rate, absolute (`-0.1`) or in points (`-10%`).
    #[arg(long, allow_hyphen_values = true)]
    pub containment: Option<String>,
    /// Cache hit rate 0–1 (`0.2`) or in percent (`20%`); default: the measured rate.
    #[arg(long)]
    pub cache_hit_rate: Option<String>,
    /// Share of each model among answers that are not cache hits: `MODEL=SHARE,...` (normalised); default: measured.
    #[arg(long)]
    pub model_mix: Option<String>,
    /// Measure from events since (same forms as `tresor kpi --since`); default: all.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// The workspace's events and its cost table.
pub fn open_events(ctx: &Ctx) -> Result<(EventStore, AssistantConfig)> {
    let cfg = AssistantConfig::load(&ctx.data_dir).with_context(|| format!("settings of {}", ctx.data_dir.display()))?;
    let key = crate::key_cmd::workspace_key(ctx)?;
    let store = EventStore::open(&ctx.data_dir, &key).with_context(|| format!("events of {}", ctx.data_dir.display()))?;
    Ok((store, cfg))
}

pub fn window(since: Option<&str>, until: Option<&str>) -> Result<Window> {
    let w = Window { since: since.map(tel::time::parse_time).transpose()?, until: until.map(tel::time::parse_time).transpose()? };
    if let (Some(s), Some(u)) = (w.since, w.until) {
        if s >= u {
            bail!("--since must be before --until");
        }
    }
    Ok(w)
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

pub fn run_kpi(args: KpiArgs, ctx: &Ctx) -> Result<()> {
    let (store, cfg) = open_events(ctx)?;
    let w = window(args.since.as_deref(), args.until.as_deref())?;
    let cost = &cfg.telemetry.cost;
    if args.dashboard {
        println!("{}", serde_json::to_string_pretty(&tel::dashboard(&store, w, cost)?)?);
        return Ok(());
    }
    let by = args.by.as_deref().map(|b| b.parse::<GroupBy>().map_err(anyhow::Error::msg)).transpose()?;
    let events = store.events(&w)?;
    if store.skipped_unknown() > 0 {
        eprintln!("note: {} event(s) of a kind this Tresor does not know (written by a newer version) were skipped", store.skipped_unknown());
    }
    let r = tel::report(&events, &w, by, cost);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let k = &r.kpis;
    let c = &cost.currency;
    let money = |x: Option<f64>| x.map_or("–".to_string(), |v| format!("{v:.6} {c}"));
    println!("conversations        {}", k.conversations);
    println!("messages             {}", k.messages);
    println!("containment          {}", pct(k.containment_rate));
    println!("deflection           {}", pct(k.deflection_rate));
    println!("first-contact res.   {}", pct(k.fcr_rate));
    println!("escalation           {}", pct(k.escalation_rate));
    println!("refusal              {}", pct(k.refusal_rate));
    println!("avg handle time      {:.0} ms", k.aht_ms);
    println!("CSAT                 {} ({} scores)", k.csat.mean.map_or("–".into(), |m| format!("{m:.2}")), k.csat.count);
    println!("cache hit rate       {}", pct(k.cache_hit_rate));
    println!("TTFT p50 / p95       {:.0} / {:.0} ms", k.ttft_ms.p50, k.ttft_ms.p95);
    println!("total p50 / p95      {:.0} / {:.0} ms", k.total_ms.p50, k.total_ms.p95);
    println!("tokens / conversation {:.1}", k.tokens.per_conversation);
    println!("tool error rate      {} ({} calls)", pct(k.tool_error_rate), k.tool_actions);
    println!("cost / conversation  {}", money(Some(k.cost_per_conversation)));
    println!("cost / resolved      {}", money(k.cost_per_resolved));
    for cl in &k.cost.cloud {
        println!("  at {} prices     {:.6} {} / conversation", cl.name, cl.per_conversation, cl.currency);
    }
    match &k.retrieval {
        Some(q) => println!(
            "retrieval            recall@1 {:.3}, recall@5 {:.3}, MRR {:.3}, rerank lift {} ({} on {}, {} questions; {} run(s))",
            q.recall_at_1,
            q.recall_at_5,
            q.mrr,
            q.rerank_lift.map_or("–".into(), |l| format!("{l:+.3}")),
            q.kb.as_deref().unwrap_or("–"),
            q.dataset,
            q.cases,
            q.runs
        ),
        None => println!("retrieval            – (record one: tresor eval retrieval --record ...)"),
    }
    if !r.groups.is_empty() {
        println!("\n{:<14} {:>6} {:>6} {:>12} {:>9} {:>9} {:>10}", r.by.as_deref().unwrap_or(""), "conv", "msgs", "containment", "refusal", "CSAT", "TTFT p95");
        for g in &r.groups {
            let k = &g.kpis;
            println!(
                "{:<14} {:>6} {:>6} {:>12} {:>9} {:>9} {:>7.0} ms",
                g.key,
                k.conversations,
                k.messages,
                pct(k.containment_rate),
                pct(k.refusal_rate),
                k.csat.mean.map_or("–".into(), |m| format!("{m:.2}")),
                k.ttft_ms.p95
            );
        }
    }
    if !r.gaps.is_empty() {
        println!("\ncontent gaps (refused or rated low):");
        for g in &r.gaps {
            let ex = if g.examples.is_empty() { String::new() } else { format!(" e.g. {}", g.examples.join(" | ")) };
            println!("  topic {}  {} × ({} refused, {} low-rated, {} distinct){ex}", g.topic_id, g.count, g.refused, g.low_rated, g.questions);
        }
    }
    Ok(())
}

/// `0.2`, `20%`, `-10%`.
fn fraction(s: &str, flag: &str) -> Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    };
    v.map_err(|_| anyhow::anyhow!("{flag} `{s}`: give a number (0.2) or a percentage (20%)"))
}

pub fn run_simulate(args: SimulateArgs, ctx: &Ctx) -> Result<()> {
    let (store, cfg) = open_events(ctx)?;
    let w = window(args.since.as_deref(), args.until.as_deref())?;
    let volume = args
        .volume
        .as_deref()
        .map(|v| v.trim().trim_end_matches("/day").parse::<f64>().map_err(|_| anyhow::anyhow!("--volume `{v}`: give conversations per day (200 or 200/day)")))
        .transpose()?;
    if volume.is_some_and(|v| v < 0.0) {
        bail!("--volume must be ≥ 0");
    }
    let model_mix = args
        .model_mix
        .as_deref()
        .map(|m| {
            m.split(',')
                .map(|p| {
                    let (k, v) = p.split_once('=').ok_or_else(|| anyhow::anyhow!("--model-mix `{p}`: use MODEL=SHARE,MODEL=SHARE"))?;
                    Ok((k.trim().to_string(), fraction(v, "--model-mix")?))
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    let scenario = Scenario {
        volume_per_day: volume,
        containment_delta: args.containment.as_deref().map(|c| fraction(c, "--containment")).transpose()?.unwrap_or(0.0),
        cache_hit_rate: args.cache_hit_rate.as_deref().map(|c| fraction(c, "--cache-hit-rate")).transpose()?,
        model_mix,
    };
    let sim = tel::simulate(&store.events(&w)?, &scenario, &cfg.telemetry.cost)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&sim)?);
        return Ok(());
    }
    println!("assumptions:");
    for a in &sim.assumptions {
        println!("  - {a}");
    }
    let c = &sim.currency;
    println!("\n{:<28} {:>16} {:>16}", "per month", "measured", "scenario");
    let (b, s) = (&sim.baseline, &sim.scenario);
    let row = |name: &str, x: f64, y: f64| println!("{name:<28} {x:>16.2} {y:>16.2}");
    row("conversations", b.conversations_per_month, s.conversations_per_month);
    row("messages", b.messages_per_month, s.messages_per_month);
    row("containment", b.containment_rate, s.containment_rate);
    row("cache hit rate", b.cache_hit_rate, s.cache_hit_rate);
    row("handoffs", b.handoffs_per_month, s.handoffs_per_month);
    row(&format!("inference cost ({c})"), b.inference_cost, s.inference_cost);
    row(&format!("handoff cost ({c})"), b.handoff_cost, s.handoff_cost);
    row(&format!("total cost ({c})"), b.total_cost, s.total_cost);
    row(&format!("cost / conversation ({c})"), b.cost_per_conversation, s.cost_per_conversation);
    row("latency p50 (ms)", b.latency_p50_ms, s.latency_p50_ms);
    row("latency p95 (ms)", b.latency_p95_ms, s.latency_p95_ms);
    for (name, x) in &b.cloud_cost {
        row(&format!("cloud {name}"), *x, s.cloud_cost.get(name).copied().unwrap_or(0.0));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct BenchTrafficArgs {
    /// Documents of the scratch knowledge base (default: the sample data, assets/sample-kb).
    #[arg(long)]
    pub docs: Option<std::path::PathBuf>,
    /// Keep the scratch data dir here (must be empty or absent) instead of a temporary one.
    #[arg(long)]
    pub keep: Option<std::path::PathBuf>,
    /// The run's clock (tool dates resolve against it).
    #[arg(long, default_value = "2026-12-07T09:30:00+01:00")]
    pub at: String,
    #[arg(long)]
    pub json: bool,
}

/// `tresor bench traffic`: the scripted replay of tresor_bench::traffic through
/// this very binary on a scratch data dir; exits non-zero when a KPI differs.
pub fn run_bench_traffic(args: BenchTrafficArgs, ctx: &Ctx) -> Result<()> {
    let (_tmp, scratch) = tresor_bench::retrieval_eval::temp_kb_dir()?;
    let data_dir = args.keep.clone().unwrap_or_else(|| scratch.join("data"));
    let docs = args.docs.clone().unwrap_or_else(tresor_bench::traffic::default_docs);
    if !docs.is_dir() {
        bail!("--docs {}: not a folder", docs.display());
    }
    let o = tresor_bench::traffic::TrafficOptions {
        tresor: std::env::current_exe().context("this binary's path")?,
        docs,
        data_dir,
        models_dir: ctx.models_dir.clone(),
        now: args.at.clone(),
    };
    let quiet = args.json;
    let report = tresor_bench::traffic::run(&o, &mut |m| {
        if !quiet {
            eprintln!("{m}");
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} conversations, {} answers replayed through {}", report.conversations, report.asks, o.tresor.display());
        for t in &report.turns {
            println!("  {t}");
        }
        print!("{}", tresor_bench::traffic::table(&report));
    }
    if !report.ok {
        let bad: Vec<&str> = report.rows.iter().filter(|r| !r.ok).map(|r| r.kpi.as_str()).collect();
        bail!("tresor kpi differs from the script in: {}", bad.join(", "));
    }
    Ok(())
}
