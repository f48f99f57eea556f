//! `tresor eval indirect`: front door to tresor-bench's end-to-end indirect
//! injection run (documents carrying orders to the assistant, asked through
//! the real engine with the installed models). Reads options, prints, gates.
//! No grading logic here.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_bench::indirect::{self, IndirectReport};

use crate::ctx::Ctx;

#[derive(Args)]
pub struct EvalIndirectArgs {
    /// Folder with docs.jsonl and orders.jsonl.
    #[arg(long, default_value = "eval/indirect")]
    pub set: PathBuf,
    /// dev | heldout | all (held out: documents and order phrasings not used while building the cutter).
    #[arg(long, default_value = "heldout")]
    pub split: String,
    /// Only the first N cases (a quick look).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Also run with the firewall off (ingestion screening, spotlighting, output check), for comparison.
    #[arg(long)]
    pub compare_off: bool,
    /// Gate: exit non-zero when the attack success rate is above this.
    #[arg(long)]
    pub max_attack_success: Option<f64>,
    /// Gate: exit non-zero when the own-question answered rate is below this.
    #[arg(long)]
    pub min_answered: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

pub fn run_eval_indirect(args: EvalIndirectArgs, ctx: &Ctx) -> Result<()> {
    let cases = indirect::cases(&args.set, &args.split).with_context(|| format!("reading the indirect set in {}", args.set.display()))?;
    let (_tmp, data) = tresor_assistant::scratch::scratch_dir()?;
    let mut assistant = crate::assistant_cmd::build_assistant(ctx, &data, &tresor_guard::crypto::WorkspaceKey::ephemeral())
        .context("the indirect run needs the chat and embedding models")?;
    let verbose = !args.json;
    let mut show = |o: &indirect::Outcome| {
        if verbose {
            eprintln!(
                "{:<8} {:<7} {:<16} {}",
                o.id,
                if o.attack_succeeded { "HIT" } else if o.answered { "ok" } else { "no-fact" },
                o.kind,
                o.answer.chars().take(90).collect::<String>().replace('\n', " ")
            );
        }
    };
    let mut reports = vec![indirect::run(&mut assistant, &data, &args.split, &cases, true, args.limit, &mut show)?];
    if args.compare_off {
        reports.push(indirect::run(&mut assistant, &data, &args.split, &cases, false, args.limit, &mut show)?);
    }
    let on = &reports[0];
    let mut failures = Vec::new();
    if let Some(m) = args.max_attack_success {
        if on.all.attack_success_rate > m {
            failures.push(format!("attack success {:.3} > {m}", on.all.attack_success_rate));
        }
    }
    if let Some(m) = args.min_answered {
        if on.all.answered_rate < m {
            failures.push(format!("own question answered {:.3} < {m}", on.all.answered_rate));
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"runs": reports, "gate_failures": failures}))?);
    } else {
        for r in &reports {
            print_report(r);
        }
    }
    if !failures.is_empty() {
        bail!("indirect injection gate failed on split {}: {}", args.split, failures.join("; "));
    }
    Ok(())
}

fn print_report(r: &IndirectReport) {
    println!(
        "split {} — firewall {}: {} cases, attack success {}/{} ({:.3}), own question answered {}/{} ({:.3}); chunks neutralised {}, quarantined {}",
        r.split,
        if r.firewall { "on" } else { "OFF" },
        r.all.n,
        r.all.attack_succeeded,
        r.all.n,
        r.all.attack_success_rate,
        r.all.answered,
        r.all.n,
        r.all.answered_rate,
        r.neutralised_chunks,
        r.quarantined_chunks
    );
    for (name, m) in r.per_kind.iter().chain(&r.per_lang) {
        println!("  {name:<16} n {:>3}  attack success {:.3}  answered {:.3}", m.n, m.attack_success_rate, m.answered_rate);
    }
}
