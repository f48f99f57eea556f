//! `tresor redteam`: a thin door to `tresor_bench::redteam` on a scratch
//! engine (an ephemeral key, a temporary data dir, the installed models): the
//! user's workspaces are never touched. Text (per category, the successful
//! attacks for triage) or `--json`.

use anyhow::{Context, Result};
use clap::Args;
use tresor_bench::redteam::{self, Report, Suite};

use crate::ctx::Ctx;

#[derive(Args)]
pub struct RedteamArgs {
    /// `full` (the shipped suite, default), `smoke` (five attacks) or a suite file (TOML, see crates/bench/data/redteam/suite.toml).
    #[arg(long)]
    pub suite: Option<String>,
    /// Run with the injection firewall off (ingestion screening, spotlighting, prompt screen, output check).
    #[arg(long)]
    pub no_firewall: bool,
    /// Run twice, firewall off then on, and print both (the before/after table).
    #[arg(long, conflicts_with = "no_firewall")]
    pub compare: bool,
    /// `{"attack_success_rate", "categories": {NAME: {"attacks", "succeeded"}}, "successful": [...], ...}`
    /// (with --compare: `{"firewall_off": ..., "firewall_on": ...}`).
    #[arg(long)]
    pub json: bool,
}

fn print(r: &Report) {
    println!("suite {} — firewall {}: {} of {} attacks succeeded ({:.1}%)", r.suite, if r.firewall { "on" } else { "OFF" }, r.succeeded, r.attacks, r.attack_success_rate * 100.0);
    for (name, c) in &r.categories {
        println!("  {:<30} {:>2} / {:>2}", name, c.succeeded, c.attacks);
    }
    if !r.successful.is_empty() {
        println!("successful attacks (triage):");
        for c in &r.successful {
            println!("  [{}] {}: {}\n      answer: {}", c.id, c.category, c.findings.join("; "), c.answer.chars().take(160).collect::<String>().replace('\n', " "));
        }
    }
}

pub fn run(args: RedteamArgs, ctx: &Ctx) -> Result<()> {
    let suite = Suite::load(args.suite.as_deref()).context("--suite")?;
    let runs: Vec<bool> = if args.compare { vec![false, true] } else { vec![!args.no_firewall] };
    let mut reports = Vec::new();
    for fw in runs {
        // a fresh scratch engine per run: the two runs share no knowledge base, tool data or cache
        let (_tmp, data) = tresor_assistant::scratch::scratch_dir()?;
        let key = tresor_guard::crypto::WorkspaceKey::ephemeral();
        let mut assistant = crate::assistant_cmd::build_assistant(ctx, &data, &key).context("the red team needs the chat and embedding models")?;
        let verbose = !args.json;
        let r = redteam::run(&mut assistant, &data, &suite, fw, &mut |c| {
            if verbose {
                eprintln!("{} {:<4} {:<12} {}", if fw { "firewall" } else { "off     " }, if c.succeeded { "HIT" } else { "ok" }, c.id, c.answer.chars().take(70).collect::<String>().replace('\n', " "));
            }
        })?;
        reports.push(r);
    }
    if args.json {
        if args.compare {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "firewall_off": reports[0], "firewall_on": reports[1] }))?);
        } else {
            println!("{}", serde_json::to_string_pretty(&reports[0])?);
        }
        return Ok(());
    }
    if args.compare {
        println!("{:<30} {:>16} {:>16}", "category", "firewall off", "firewall on");
        for (name, on) in &reports[1].categories {
            let off = reports[0].categories.get(name).cloned().unwrap_or_default();
            println!("{:<30} {:>10} / {:>3} {:>10} / {:>3}", name, off.succeeded, off.attacks, on.succeeded, on.attacks);
        }
        println!("{:<30} {:>15.1}% {:>15.1}%\n", "attack success rate", reports[0].attack_success_rate * 100.0, reports[1].attack_success_rate * 100.0);
    }
    for r in &reports {
        print(r);
    }
    Ok(())
}
