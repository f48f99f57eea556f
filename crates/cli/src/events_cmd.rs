//! `tresor events export|purge`, `tresor feedback` and `tresor handoff`:
//! thin doors to the workspace's events (tresor-telemetry) and to the
//! engine's conversation store, which records feedback and handoffs as the
//! same events the desktop and the HTTP API write. No model is loaded.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tresor_assistant::store::{Feedback, ThreadStore};
use tresor_assistant::tresor_telemetry::export::{export, Format};

use crate::ctx::Ctx;
use crate::kpi_cmd::{open_events, window};

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// Write the events to a file (one row per event, the columns of docs/events.md). Nothing leaves the machine otherwise.
    Export(ExportArgs),
    /// Delete events older than N days (default: `[telemetry] retention_days` of assistant.toml).
    Purge(PurgeArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[arg(long, value_parser = ["parquet", "jsonl"])]
    pub format: String,
    /// Only events since (a date, an RFC 3339 time, or 7d / 24h back from now).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[arg(long)]
    pub older_than_days: Option<u32>,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("thumbs").args(["up", "down"]))]
pub struct FeedbackArgs {
    /// The answer's message id (`message_id` of `tresor ask --json`).
    pub message_id: i64,
    /// Thumbs up.
    #[arg(long)]
    pub up: bool,
    /// Thumbs down.
    #[arg(long)]
    pub down: bool,
    /// Customer satisfaction 1–5.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub csat: Option<u8>,
    /// A comment (stored PII-masked in the events).
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Args, Debug)]
pub struct HandoffArgs {
    /// The conversation (`conversation_id` of `tresor ask --json`).
    pub conversation_id: i64,
    /// Why (stored PII-masked).
    #[arg(long)]
    pub reason: Option<String>,
}

pub fn run(cmd: EventsCmd, ctx: &Ctx) -> Result<()> {
    let (store, cfg) = open_events(ctx)?;
    match cmd {
        EventsCmd::Export(a) => {
            let format: Format = a.format.parse().map_err(anyhow::Error::msg)?;
            let w = window(a.since.as_deref(), a.until.as_deref())?;
            let n = export(&store.events(&w)?, format, &a.out).with_context(|| format!("exporting to {}", a.out.display()))?;
            eprintln!("{n} event(s) written to {}", a.out.display());
        }
        EventsCmd::Purge(a) => {
            let days = a.older_than_days.unwrap_or(cfg.telemetry.retention_days);
            if days == 0 {
                bail!("--older-than-days must be at least 1");
            }
            let n = store.purge_older_than(days)?;
            println!("{n} event(s) older than {days} day(s) deleted");
        }
    }
    Ok(())
}

fn threads(ctx: &Ctx) -> Result<ThreadStore> {
    let key = crate::key_cmd::workspace_key(ctx)?;
    ThreadStore::for_data_dir(&ctx.data_dir, &key).with_context(|| format!("conversations of {}", ctx.data_dir.display()))
}

pub fn run_feedback(a: FeedbackArgs, ctx: &Ctx) -> Result<()> {
    let thumbs = if a.up { Some(1) } else if a.down { Some(-1) } else { None };
    let f = Feedback { message_id: Some(a.message_id), thread_id: None, thumbs, csat: a.csat, comment: a.comment };
    let id = threads(ctx)?.add_feedback(&f)?;
    println!("{}", serde_json::json!({ "feedback_id": id, "message_id": a.message_id }));
    Ok(())
}

pub fn run_handoff(a: HandoffArgs, ctx: &Ctx) -> Result<()> {
    threads(ctx)?.handoff(a.conversation_id, a.reason.as_deref())?;
    println!("{}", serde_json::json!({ "conversation_id": a.conversation_id, "handoff": true }));
    Ok(())
}
