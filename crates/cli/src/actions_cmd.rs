//! `tresor actions confirm|decline|show ID` and `tresor eval tools`: thin
//! doors onto the engine's action layer (confirmation, idempotent execution,
//! audit) and onto tresor-bench's tool-call evaluation.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tresor_assistant::{scratch, ActionReport, FillMode};
use tresor_bench::tools_eval as eval;

use crate::assistant_cmd::build_assistant;
use crate::ctx::Ctx;

#[derive(Subcommand, Debug)]
pub enum ActionsCmd {
    /// Confirm a proposed action and run it (at most once: a second confirm runs nothing and says so).
    Confirm(IdArgs),
    /// Decline a proposed action (nothing runs).
    Decline(IdArgs),
    /// Show one action.
    Show(IdArgs),
}

#[derive(Args, Debug)]
pub struct IdArgs {
    /// The action's id (`actions[].id` of `tresor ask --json`).
    pub id: String,
    /// Print the action as JSON (`{id, tool, arguments, status, result, error, missing}` plus `outcome` and `message`).
    #[arg(long)]
    pub json: bool,
}

fn print_report(r: &ActionReport, json: bool) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(&r.action)?;
        v["outcome"] = serde_json::to_value(r.outcome)?;
        v["message"] = r.message.clone().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", r.message);
        eprintln!("({} · {} · {})", r.action.id, r.action.tool, r.action.status);
    }
    Ok(())
}

pub fn run(cmd: ActionsCmd, ctx: &Ctx) -> Result<()> {
    let mut a = build_assistant(ctx, &ctx.data_dir, &crate::key_cmd::workspace_key(ctx)?)?;
    match cmd {
        ActionsCmd::Confirm(x) => {
            let r = a.confirm_action(&x.id, ctx.now, None).with_context(|| format!("confirming action {}", x.id))?;
            print_report(&r, x.json)
        }
        ActionsCmd::Decline(x) => {
            let r = a.decline_action(&x.id, None).with_context(|| format!("declining action {}", x.id))?;
            print_report(&r, x.json)
        }
        ActionsCmd::Show(x) => {
            let action = a.action(&x.id).with_context(|| format!("action {}", x.id))?;
            if x.json {
                println!("{}", serde_json::to_string_pretty(&action)?);
            } else {
                println!("{} · {} · {}\narguments: {}", action.id, action.tool, action.status, action.arguments);
                if let Some(r) = &action.result {
                    println!("result: {r}");
                }
                if let Some(e) = &action.error {
                    println!("error: {e}");
                }
                if !action.missing.is_empty() {
                    println!("missing: {}", action.missing.join(", "));
                }
            }
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct EvalToolsArgs {
    /// Cases (JSONL in the format of shared/eval/tools_dev/cases.jsonl).
    #[arg(long)]
    pub cases: PathBuf,
    /// Folder with prices.csv, orders.csv, calendar.ics and docs/ (default: the cases file's folder).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// How the model fills arguments: grammar (default), free (no grammar) or off (extractor only).
    #[arg(long, default_value = "grammar")]
    pub model_arguments: String,
    /// Run twice, with and without the grammar (grammar, then free), and print both tables.
    #[arg(long)]
    pub compare: bool,
    /// Only the first N cases.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn run_eval_tools(args: EvalToolsArgs, ctx: &Ctx) -> Result<()> {
    let mut cases = eval::load_cases(&args.cases).map_err(anyhow::Error::msg)?;
    if let Some(n) = args.limit {
        cases.truncate(n);
    }
    let data = match &args.data {
        Some(d) => d.clone(),
        None => args.cases.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")),
    };
    let modes: Vec<FillMode> = if args.compare {
        vec![FillMode::Grammar, FillMode::Free]
    } else {
        vec![args.model_arguments.parse().map_err(anyhow::Error::msg)?]
    };
    // a scratch data dir: the cases' data imported, their documents ingested, nothing of the user's touched
    let (_tmp, dir) = scratch::scratch_dir()?;
    let key = tresor_guard::crypto::WorkspaceKey::ephemeral();
    let mut a = build_assistant(ctx, &dir, &key)?;
    let imported = tresor_assistant::tools_data::import_folder(&dir, &key, &data).with_context(|| format!("importing the tool data in {}", data.display()))?;
    if imported == 0 {
        bail!("{}: no prices.csv, orders.csv or calendar.ics to import", data.display());
    }
    let docs = data.join("docs");
    let kb = if docs.is_dir() {
        scratch::ingest_dir(&dir, &key, "default", &docs, a.embedder())?;
        Some("default")
    } else {
        None
    };
    let mut reports = Vec::new();
    for mode in modes {
        a.config_mut().tools.model_arguments = mode;
        let items = eval::evaluate(&mut a, &cases, kb, &mut |r| {
            if !args.json {
                eprintln!(
                    "{:<16} {} {:<18} -> {:<18} {}{}",
                    r.id,
                    r.lang,
                    r.expected_tool.as_deref().unwrap_or("-"),
                    r.tool.as_deref().unwrap_or("-"),
                    if r.selection_ok { "ok" } else { "WRONG" },
                    match r.arguments_ok {
                        Some(false) => " (arguments wrong)",
                        _ => "",
                    }
                );
            }
        })
        .map_err(anyhow::Error::msg)?;
        reports.push(eval::summarise(mode_name(mode), items));
    }
    if args.json {
        let v: Vec<_> = reports.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        println!("{}", serde_json::to_string_pretty(&if v.len() == 1 { v[0].clone() } else { serde_json::Value::Array(v) })?);
    } else {
        for r in &reports {
            println!("{}", eval::table(r));
        }
    }
    Ok(())
}

fn mode_name(m: FillMode) -> &'static str {
    match m {
        FillMode::Grammar => "on",
        FillMode::Free => "off (free)",
        FillMode::Off => "off (extractor only)",
    }
}
