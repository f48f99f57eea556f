//! `tresor eval suite`, `tresor eval goldset add|import|list|candidates`,
//! `tresor eval judge` and `tresor eval judge-set`: the door to
//! tresor-bench's regression gate, gold-set tools and LLM-as-judge. Parses
//! flags, unlocks the workspace key (candidates), prints tables or JSON and
//! turns a failed gate into exit status 2. No eval logic here.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use tresor_assistant::models::{CatalogModels, ModelSource, ModelSpec};
use tresor_bench::eval_suite as suite;
use tresor_bench::{goldset, judge, judge_set, suite_runs};
use tresor_models::Role;

use crate::ctx::Ctx;

/// Exit status of a gate that ran and found a regression (1 is any other error).
pub const EXIT_REGRESSION: i32 = 2;

#[derive(Args)]
pub struct SuiteArgs {
    /// The suite config (TOML: which evals, which data, which metrics with direction and tolerance; docs/evals.md).
    #[arg(long)]
    pub config: PathBuf,
    /// The baseline to compare with (default: the config's `baseline`, else baseline.json beside it).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Write this run's values as the new baseline (with the config hash, version and date) instead of gating.
    #[arg(long)]
    pub update_baseline: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum GoldsetCmd {
    /// Add one gold item: question, expected source file, expected answer span (checked against the file).
    Add(GoldAddArgs),
    /// Add every item of a JSONL file ({question, source_file, answer, lang?, answerable?}); all or nothing.
    Import(GoldImportArgs),
    /// List the items of a gold file.
    List(GoldListArgs),
    /// Answers rated positively (thumbs up / CSAT ≥ 4) in this workspace, proposed as gold items.
    Candidates(GoldCandidatesArgs),
}

#[derive(Args)]
pub struct GoldAddArgs {
    /// The gold file (JSONL; created when missing).
    #[arg(long)]
    pub file: PathBuf,
    /// The folder of the documents the gold set is about (sources are relative to it).
    #[arg(long)]
    pub docs: PathBuf,
    #[arg(long)]
    pub question: String,
    /// The expected source file, relative to --docs.
    #[arg(long)]
    pub source: Option<String>,
    /// The expected answer span: verbatim text of the source file.
    #[arg(long)]
    pub answer: Option<String>,
    /// de or en (default: detected from the question).
    #[arg(long)]
    pub lang: Option<String>,
    /// The documents do not answer it: the right answer is a refusal.
    #[arg(long, conflicts_with_all = ["source", "answer"])]
    pub unanswerable: bool,
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Args)]
pub struct GoldImportArgs {
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub docs: PathBuf,
    /// JSONL: one {question, source_file, answer, lang?, answerable?, id?} per line (or another gold file).
    pub from: PathBuf,
}

#[derive(Args)]
pub struct GoldListArgs {
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GoldCandidatesArgs {
    /// Lowest CSAT that counts as positive (thumbs up always does).
    #[arg(long, default_value_t = 4)]
    pub min_csat: u8,
    /// Also write the candidates as JSONL here (edit each answer down to a span of its source, then `goldset import`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct JudgeArgs {
    /// A labelled set (JSONL: question, passages, answer, label faithful|unfaithful, split dev|heldout), or a
    /// RAG gold set (rag_goldset_dev format), from which the labelled set is built as `eval judge-set` does.
    #[arg(long)]
    pub goldset: PathBuf,
    /// The documents the passages come from (every passage is checked against them).
    #[arg(long)]
    pub docs: PathBuf,
    /// The judge model (catalogue id or GGUF path; default: the chat-premium model, else chat-small).
    #[arg(long)]
    pub model: Option<String>,
    /// both (either side can veto) or either (faithful when one says so); default: chosen on the dev part.
    #[arg(long)]
    pub combine: Option<String>,
    /// Only the first N items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Share of a RAG gold set's questions held out (when building the labelled set).
    #[arg(long, default_value_t = 0.3)]
    pub heldout_share: f64,
    /// Write N verdicts for human review (disagreements first) to FILE (JSONL).
    #[arg(long, num_args = 2, value_names = ["N", "FILE"])]
    pub export_sample: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct JudgeSetArgs {
    /// The RAG gold set (rag_goldset_dev format, with reference_context).
    #[arg(long)]
    pub goldset: PathBuf,
    /// Its documents (every passage is checked against them).
    #[arg(long)]
    pub docs: PathBuf,
    /// Where to write the labelled set (JSONL).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0.3)]
    pub heldout_share: f64,
}

pub fn run_suite(args: SuiteArgs, ctx: &Ctx) -> Result<()> {
    let cfg = suite::load_config(&args.config)?;
    let baseline_path = cfg.baseline_path(args.baseline.as_deref());
    // read (and check) the baseline before minutes of evals
    let baseline = if args.update_baseline { suite::read_baseline(&baseline_path).ok() } else { Some(suite::read_baseline(&baseline_path)?) };
    let env = suite_runs::RunEnv { models_dir: ctx.models_dir.clone(), device: crate::ctx::device(ctx)? };
    let quiet = args.json;
    let (outcomes, gated) = suite::run_suite(&cfg, &mut |spec| suite_runs::run(spec, &cfg, &env), &mut |m| {
        if !quiet {
            eprintln!("{m}");
        }
    })?;
    let report = suite::report(&cfg, &baseline_path, baseline.as_ref(), outcomes, &gated);
    if args.update_baseline {
        let b = suite::new_baseline(&cfg, &gated, suite::version_string(env!("CARGO_PKG_VERSION"), &cfg.dir));
        suite::write_baseline(&baseline_path, &b)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "baseline_written": baseline_path, "baseline": b, "report": report }))?);
        } else {
            print!("{}", suite::table(&report.rows));
            println!("baseline written: {} ({} metrics)", baseline_path.display(), b.metrics.len());
        }
        return Ok(());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", suite::table(&report.rows));
        let secs: Vec<String> = report.evals.iter().map(|e| format!("{} {:.0} s", e.name, e.seconds)).collect();
        println!("evals: {}", secs.join(", "));
        if report.baseline_config_differs {
            println!("note: the baseline was written for another version of {} (its metrics still compare by name)", report.config);
        }
        if report.passed {
            println!("gate passed: {} metrics within tolerance of {}", report.rows.len(), report.baseline);
        }
    }
    if !report.passed {
        for r in report.rows.iter().filter(|r| r.status == suite::Status::Regressed) {
            eprintln!("regression: {}", r.regression_message());
        }
        eprintln!("gate failed: {} of {} metrics regressed against {}", report.regressions.len(), report.rows.len(), report.baseline);
        let _ = std::io::stdout().flush();
        std::process::exit(EXIT_REGRESSION);
    }
    Ok(())
}

pub fn run_goldset(cmd: GoldsetCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        GoldsetCmd::Add(a) => {
            if !a.docs.is_dir() {
                bail!("--docs {}: not a folder", a.docs.display());
            }
            let item = goldset::NewItem {
                id: a.id,
                question: a.question,
                source_file: a.source,
                answer: a.answer,
                lang: a.lang,
                answerable: Some(!a.unanswerable),
            };
            let e = goldset::add(&a.file, &a.docs, &item).map_err(|e| anyhow!(e)).with_context(|| format!("adding to {}", a.file.display()))?;
            println!("{}", serde_json::to_string(&e)?);
        }
        GoldsetCmd::Import(a) => {
            if !a.docs.is_dir() {
                bail!("--docs {}: not a folder", a.docs.display());
            }
            let added = goldset::import(&a.file, &a.docs, &a.from).map_err(|e| anyhow!(e)).with_context(|| format!("importing into {} (nothing was written)", a.file.display()))?;
            println!("{}", serde_json::json!({ "imported": added.len(), "file": a.file }));
        }
        GoldsetCmd::List(a) => {
            if !a.file.exists() {
                bail!("{}: no such gold file", a.file.display());
            }
            let items = goldset::read(&a.file).map_err(|e| anyhow!(e))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!("{} items ({} answerable) in {}", items.len(), items.iter().filter(|i| i.answerable).count(), a.file.display());
                for i in &items {
                    println!(
                        "{:<12} {} {:<28} {:<40} {}",
                        i.id,
                        i.lang,
                        i.source_file.as_deref().unwrap_or("(unanswerable)"),
                        i.question.chars().take(40).collect::<String>(),
                        i.answer.as_deref().unwrap_or("").chars().take(40).collect::<String>()
                    );
                }
            }
        }
        GoldsetCmd::Candidates(a) => {
            let key = crate::key_cmd::workspace_key(ctx)?;
            let c = goldset::candidates(&ctx.data_dir, &key, a.min_csat).map_err(|e| anyhow!(e)).context("reading the feedback events")?;
            if let Some(out) = &a.out {
                let mut text = String::new();
                for x in &c {
                    text.push_str(&serde_json::to_string(&serde_json::json!({
                        "question": x.question, "source_file": x.source_file, "answer": x.answer, "lang": x.lang,
                        "_message_id": x.message_id, "_snippet": x.snippet,
                    }))?);
                    text.push('\n');
                }
                std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("{} candidates (answers rated thumbs up or CSAT ≥ {})", c.len(), a.min_csat);
                for x in &c {
                    println!("#{} {}  →  {}  [{}]", x.message_id, x.question, x.answer.chars().take(80).collect::<String>().replace('\n', " "), x.source_file.as_deref().unwrap_or("-"));
                }
            }
        }
    }
    Ok(())
}

fn labelled_items(goldset: &std::path::Path, docs: &std::path::Path, heldout_share: f64) -> Result<Vec<judge::JudgeItem>> {
    if !docs.is_dir() {
        bail!("--docs {}: not a folder", docs.display());
    }
    if !(0.0..=1.0).contains(&heldout_share) {
        bail!("--heldout-share {heldout_share}: expected 0 to 1");
    }
    let text = std::fs::read_to_string(goldset).with_context(|| format!("reading {}", goldset.display()))?;
    let items = if judge_set::is_rag_goldset(&text) {
        judge_set::build(goldset, heldout_share).map_err(|e| anyhow!(e))?
    } else {
        judge::load_items(goldset).map_err(|e| anyhow!(e))?
    };
    judge::check_passages(&items, docs).map_err(|e| anyhow!(e)).with_context(|| format!("checking the passages against {}", docs.display()))?;
    Ok(items)
}

pub fn run_judge_set(args: JudgeSetArgs, _ctx: &Ctx) -> Result<()> {
    let items = labelled_items(&args.goldset, &args.docs, args.heldout_share)?;
    let mut text = String::new();
    for it in &items {
        text.push_str(&serde_json::to_string(it)?);
        text.push('\n');
    }
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    let faithful = items.iter().filter(|i| i.faithful()).count();
    println!(
        "{}",
        serde_json::json!({ "items": items.len(), "faithful": faithful, "unfaithful": items.len() - faithful,
            "heldout": items.iter().filter(|i| i.split == "heldout").count(), "out": args.out })
    );
    Ok(())
}

pub fn run_judge(args: JudgeArgs, ctx: &Ctx) -> Result<()> {
    let mut items = labelled_items(&args.goldset, &args.docs, args.heldout_share)?;
    if let Some(n) = args.limit {
        items.truncate(n);
    }
    let combine = match args.combine.as_deref() {
        None => None,
        Some("both") => Some(judge::Combine::Both),
        Some("either") => Some(judge::Combine::Either),
        Some(o) => bail!("--combine {o}: expected both or either"),
    };
    let sample = match args.export_sample.as_slice() {
        [] => None,
        [n, f] => Some((n.parse::<usize>().with_context(|| format!("--export-sample {n}: not a count"))?, PathBuf::from(f))),
        _ => bail!("--export-sample takes N FILE"),
    };
    let mut source = CatalogModels { models_dir: ctx.models_dir.clone(), device: crate::ctx::device(ctx)?, context_cap: Some(4096) };
    let model = match &args.model {
        Some(m) => source.load(&ModelSpec::Named(m.clone())).with_context(|| format!("loading the judge model `{m}`"))?,
        None => source
            .load(&ModelSpec::Role(Role::ChatPremium))
            .or_else(|_| source.load(&ModelSpec::Role(Role::ChatSmall)))
            .context("loading the judge model (chat-premium, else chat-small): run `tresor models setup`")?,
    };
    let mut grader = judge::ModelGrader { model };
    let verbose = !args.json;
    let report = judge::evaluate(&items, &mut grader, combine, &mut |g| {
        if verbose {
            eprintln!(
                "{:<22} {:<7} gold {:<10} judge {:<10} heuristics {:<10} {}",
                g.id,
                g.split,
                g.label,
                match &g.judge {
                    Some(v) if v.faithful => "faithful",
                    Some(_) => "unfaithful",
                    None => "error",
                },
                if g.heuristics.pass { "faithful" } else { "unfaithful" },
                g.heuristics.reasons.join("; ")
            );
        }
    });
    if let Some((n, file)) = &sample {
        let mut text = String::new();
        for v in judge::review_sample(&items, &report, *n) {
            text.push_str(&serde_json::to_string(&v)?);
            text.push('\n');
        }
        std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", judge::summary(&report));
        if let Some((n, file)) = &sample {
            println!("{n} verdicts for review: {}", file.display());
        }
    }
    Ok(())
}
