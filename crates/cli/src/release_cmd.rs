//! `tresor release ...`: thin door to `tresor_assistant::release` (no model
//! is loaded). Flags in, one store operation (audited by the engine side),
//! text or `--json` out. docs/releases.md describes the store and the rules.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tresor_assistant::release::{self, canary_step, compare, Actor, CanaryConfig, Gate, ReleaseFiles, Releases, StepOutcome};
use tresor_assistant::tresor_telemetry::{EventStore, Window};
use tresor_assistant::AssistantConfig;

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum ReleaseCmd {
    /// Snapshot a prompt, policy and/or config file as release NAME (validated; immutable).
    Create(CreateArgs),
    /// The releases: name, status, share (`--json`: `[{name, status, share, ...}]`).
    List(JsonArg),
    /// One release: its snapshot and history.
    Show(NameJson),
    /// What differs between two releases (prompts, policy lines, config keys).
    Diff { a: String, b: String, #[arg(long)] json: bool },
    /// Let release NAME serve a share of the conversations (0 < S < 1).
    Canary(CanaryArgs),
    /// Judge the canary on the events since its last step: roll back on a broken guard, else step up, after the last step promote.
    CanaryStep(JsonArg),
    /// Show or set the canary steps and guard margins.
    CanaryConfig(CanaryConfigArgs),
    /// Make release NAME serve every conversation.
    Promote(PromoteArgs),
    /// Stop the canary; without one, roll the active release back to the one it replaced.
    Rollback(RollbackArgs),
    /// Per-variant KPIs of the experiment with significance tests and the sample size still needed.
    Compare(CompareArgs),
}

#[derive(Args)]
pub struct JsonArg {
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct NameJson {
    pub name: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GateArgs {
    /// A gate result (the JSON of `tresor eval suite --json`), kept with the step; a failed gate refuses canary/promote.
    #[arg(long)]
    pub gate: Option<PathBuf>,
    /// Go on although the gate result failed (recorded).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct CreateArgs {
    pub name: String,
    /// TOML with `en`, `de` (the grounded answer's instruction) and/or `general`.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// A policy file (user layer, over the admin policy).
    #[arg(long)]
    pub policy_file: Option<PathBuf>,
    /// An assistant.toml.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Args)]
pub struct CanaryArgs {
    pub name: String,
    /// Share of the conversations, 0 < S < 1 (`0.05` or `5%`).
    #[arg(long)]
    pub share: String,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Args)]
pub struct PromoteArgs {
    pub name: String,
    #[command(flatten)]
    pub gate: GateArgs,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// Why (recorded in the audit log and shown in `list`).
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub gate: Option<PathBuf>,
}

#[derive(Args)]
pub struct CanaryConfigArgs {
    /// Shares the canary goes through, comma-separated (`0.05,0.1,0.25,0.5`).
    #[arg(long)]
    pub steps: Option<String>,
    #[arg(long)]
    pub min_conversations: Option<u64>,
    #[arg(long)]
    pub max_refusal_increase: Option<f64>,
    #[arg(long)]
    pub max_grounded_drop: Option<f64>,
    #[arg(long)]
    pub max_error_increase: Option<f64>,
    #[arg(long)]
    pub max_p95_ratio: Option<f64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    /// The control variant (default: the active release, else the workspace's label).
    #[arg(long)]
    pub control: Option<String>,
    /// The candidate (default: the canary, else the most recently changed other release).
    #[arg(long)]
    pub candidate: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn who(ctx: &Ctx) -> Actor {
    Actor { actor: tresor_guard::audit::os_actor(), workspace: ctx.workspace.clone() }
}

fn gate(path: &Option<PathBuf>) -> Result<Option<Gate>> {
    path.as_deref().map(|p| Gate::from_file(p).with_context(|| format!("--gate {}", p.display()))).transpose()
}

fn share(s: &str) -> Result<f64> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
        None => t.parse::<f64>(),
    };
    v.with_context(|| format!("--share `{s}`: expected a number such as 0.05 or 5%"))
}

fn open(ctx: &Ctx) -> Result<Releases> {
    let key = crate::key_cmd::workspace_key(ctx)?;
    Releases::open(&ctx.data_dir, &key).with_context(|| format!("release store of workspace `{}`", ctx.workspace))
}

fn events(ctx: &Ctx) -> Result<(Vec<tresor_assistant::tresor_telemetry::StoredEvent>, String)> {
    let cfg = AssistantConfig::load(&ctx.data_dir).with_context(|| format!("settings of {}", ctx.data_dir.display()))?;
    let key = crate::key_cmd::workspace_key(ctx)?;
    let store = EventStore::open(&ctx.data_dir, &key).with_context(|| format!("events of {}", ctx.data_dir.display()))?;
    Ok((store.events(&Window::default())?, cfg.telemetry.variant))
}

fn print_rows(r: &Releases) {
    println!("{:<20} {:<12} {:>6}  {:<8} reason", "name", "status", "share", "gate");
    for row in r.set.rows() {
        let gate = match row.gate_passed {
            Some(true) => "passed",
            Some(false) => "FAILED",
            None => "-",
        };
        println!("{:<20} {:<12} {:>5.0}%  {:<8} {}", row.name, row.status, row.share * 100.0, gate, row.reason.unwrap_or_default());
    }
}

pub fn run(cmd: ReleaseCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        ReleaseCmd::Create(a) => {
            let mut r = open(ctx)?;
            let files = ReleaseFiles { prompt: a.prompt_file, policy: a.policy_file, config: a.config_file };
            let g = gate(&a.gate.gate)?;
            let rel = r.create(&a.name, &files, g, &who(ctx))?;
            println!("created release `{}` (digest {})", rel.name, rel.digest);
        }
        ReleaseCmd::List(a) => {
            let r = open(ctx)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r.set.rows())?);
            } else if r.set.releases.is_empty() {
                println!("no releases (tresor release create NAME --prompt-file F --policy-file F --config-file F)");
            } else {
                print_rows(&r);
            }
        }
        ReleaseCmd::Show(a) => {
            let r = open(ctx)?;
            let rel = r.set.get(&a.name).with_context(|| format!("no release named `{}`", a.name))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(rel)?);
            } else {
                println!("release {}  status {}  share {:.0}%  digest {}", rel.name, rel.status.as_str(), rel.share * 100.0, rel.digest);
                println!("prompt: {}  policy: {}  config: {}", rel.prompt.is_some(), rel.policy.is_some(), rel.config.is_some());
                if let Some(reason) = &rel.reason {
                    println!("reason: {reason}");
                }
                for s in &rel.history {
                    let g = s.gate.as_ref().map(|g| format!(" gate {}={:?}", g.file, g.passed)).unwrap_or_default();
                    println!("  {} {:<12} {:<12} {:>4.0}% {}{}{}", s.at, s.action, s.status.as_str(), s.share * 100.0, s.actor, g, s.reason.as_ref().map(|r| format!("  ({r})")).unwrap_or_default());
                }
            }
        }
        ReleaseCmd::Diff { a, b, json } => {
            let r = open(ctx)?;
            let ra = r.set.get(&a).with_context(|| format!("no release named `{a}`"))?;
            let rb = r.set.get(&b).with_context(|| format!("no release named `{b}`"))?;
            let lines = release::diff(ra, rb);
            if json {
                println!("{}", serde_json::to_string_pretty(&lines)?);
            } else if lines.is_empty() {
                println!("`{a}` and `{b}` are the same");
            } else {
                for l in lines {
                    println!("{}\n  - {}\n  + {}", l.field, l.a.as_deref().unwrap_or("(unset)"), l.b.as_deref().unwrap_or("(unset)"));
                }
            }
        }
        ReleaseCmd::Canary(a) => {
            let mut r = open(ctx)?;
            let s = share(&a.share)?;
            r.canary(&a.name, s, gate(&a.gate.gate)?, a.gate.force, &who(ctx))?;
            println!("release `{}` serves {:.1}% of conversations", a.name, s * 100.0);
        }
        ReleaseCmd::Promote(a) => {
            let mut r = open(ctx)?;
            r.promote(&a.name, gate(&a.gate.gate)?, a.gate.force, &who(ctx))?;
            println!("release `{}` is active", a.name);
        }
        ReleaseCmd::Rollback(a) => {
            let mut r = open(ctx)?;
            let _ = gate(&a.gate)?;
            let name = r.rollback(a.reason.as_deref(), &who(ctx))?;
            let now = r.set.active().map(|x| x.name.clone()).unwrap_or_else(|| "the workspace's own settings".into());
            println!("rolled back `{name}`; serving: {now}");
        }
        ReleaseCmd::CanaryStep(a) => {
            let mut r = open(ctx)?;
            let (ev, label) = events(ctx)?;
            let out = canary_step(&mut r, &ev, &label, &who(ctx))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                match out {
                    StepOutcome::Wait { release, share, conversations, needed } => println!("`{release}` at {:.0}%: {conversations} of {needed} conversations needed before the next step", share * 100.0),
                    StepOutcome::Stepped { release, from, to } => println!("`{release}`: guards held, {:.0}% -> {:.0}%", from * 100.0, to * 100.0),
                    StepOutcome::Promoted { release } => println!("`{release}`: guards held at the last step, promoted"),
                    StepOutcome::RolledBack { release, reason, .. } => println!("`{release}` ROLLED BACK: {reason}"),
                }
            }
        }
        ReleaseCmd::CanaryConfig(a) => {
            let mut r = open(ctx)?;
            let mut c: CanaryConfig = r.set.canary.clone();
            let changed = a.steps.is_some() || a.min_conversations.is_some() || a.max_refusal_increase.is_some() || a.max_grounded_drop.is_some() || a.max_error_increase.is_some() || a.max_p95_ratio.is_some();
            if let Some(s) = &a.steps {
                c.steps = s.split(',').map(share).collect::<Result<_>>()?;
            }
            c.min_conversations = a.min_conversations.unwrap_or(c.min_conversations);
            c.max_refusal_increase = a.max_refusal_increase.unwrap_or(c.max_refusal_increase);
            c.max_grounded_drop = a.max_grounded_drop.unwrap_or(c.max_grounded_drop);
            c.max_error_increase = a.max_error_increase.unwrap_or(c.max_error_increase);
            c.max_p95_ratio = a.max_p95_ratio.unwrap_or(c.max_p95_ratio);
            if changed {
                r.set_canary_config(c.clone(), &who(ctx))?;
            }
            if a.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!("steps {:?}, min {} conversations per step; rollback when refusal +{} / grounded -{} / errors +{} / p95 x{}", c.steps, c.min_conversations, c.max_refusal_increase, c.max_grounded_drop, c.max_error_increase, c.max_p95_ratio);
            }
        }
        ReleaseCmd::Compare(a) => {
            let r = open(ctx)?;
            let (ev, label) = events(ctx)?;
            let control = a.control.or_else(|| r.set.active().map(|x| x.name.clone())).unwrap_or(label);
            let candidate = match a.candidate.or_else(|| r.set.canary_release().map(|x| x.name.clone())) {
                Some(c) => c,
                None => match r.set.releases.iter().filter(|x| x.name != control).max_by_key(|x| x.history.last().map_or(0, |s| s.at_ms)) {
                    Some(x) => x.name.clone(),
                    None => bail!("nothing to compare: no canary and no other release (--control A --candidate B)"),
                },
            };
            // the experiment's window: since the candidate first served as a canary
            let since = r.set.get(&candidate).and_then(|x| x.history.iter().find(|s| s.action == "canary").map(|s| s.at_ms));
            let ev: Vec<_> = ev.into_iter().filter(|e| since.is_none_or(|s| e.event.ts_ms >= s)).collect();
            let c = compare(&ev, &control, &candidate);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                print!("{}", format_comparison(&c));
            }
        }
    }
    Ok(())
}

/// The comparison as a table (also printed by `tresor bench ab`).
pub fn format_comparison(c: &release::Comparison) -> String {
    let mut s = String::new();
    let (a, b) = (&c.control, &c.candidate);
    s.push_str(&format!("{:<16} {:>12} {:>12}\n", "", format!("control {}", a.variant), format!("cand. {}", b.variant)));
    s.push_str(&format!("{:<16} {:>12} {:>12}\n", "conversations", a.conversations, b.conversations));
    for (n, x, y) in [("containment", a.containment, b.containment), ("refusal", a.refusal, b.refusal), ("groundedness", a.groundedness, b.groundedness), ("error rate", a.error_rate, b.error_rate)] {
        s.push_str(&format!("{:<16} {:>12.3} {:>12.3}\n", n, x, y));
    }
    let csat = |m: Option<f64>| m.map_or("-".to_string(), |v| format!("{v:.2}"));
    s.push_str(&format!("{:<16} {:>12} {:>12}\n", "CSAT mean", csat(a.csat_mean), csat(b.csat_mean)));
    s.push_str(&format!("{:<16} {:>12.0} {:>12.0}\n", "latency p50 ms", a.latency_p50_ms, b.latency_p50_ms));
    s.push_str(&format!("{:<16} {:>12.0} {:>12.0}\n", "latency p95 ms", a.latency_p95_ms, b.latency_p95_ms));
    s.push_str(&format!("\n{:<16} {:>8} {:>8} {:>10} {:>6} {:>12} {:>12}\n", "test", "diff", "z", "p", "sig.", "n/arm need", "still need"));
    for t in &c.tests {
        let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
        s.push_str(&format!(
            "{:<16} {:>+8.3} {:>8} {:>10} {:>6} {:>12} {:>12}\n",
            t.metric,
            t.diff,
            f(t.z, 2),
            f(t.p_value, 4),
            if t.significant { "yes" } else { "no" },
            t.needed_per_arm.map_or("-".into(), |n| n.to_string()),
            t.still_needed_per_arm.map_or("-".into(), |n| n.to_string())
        ));
    }
    s
}
