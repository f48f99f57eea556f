//! `tresor events export|purge`, `tresor feedback` and `tresor handoff`:
//! thin doors to the workspace's events (tresor-telemetry) and to the
//! engine's handoff desk (tresor-assistant's `handoff/`), which delivers the
//! ticket and records feedback and handoffs as the same events the desktop and
//! the HTTP API write. No model is loaded.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tresor_assistant::store::Feedback;
use tresor_assistant::HandoffDesk;
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
    #[arg(required_unless_present_any = ["retry", "outbox"])]
    pub conversation_id: Option<i64>,
    /// Deliver the tickets waiting in the outbox again (instead of a new handoff).
    #[arg(long, conflicts_with = "conversation_id")]
    pub retry: bool,
    /// List every ticket of this workspace (delivered or pending) as JSON.
    #[arg(long, conflicts_with_all = ["conversation_id", "retry"])]
    pub outbox: bool,
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
            if store.skipped_unknown() > 0 {
                eprintln!("note: {} event(s) of a kind this Tresor does not know (written by a newer version) were not exported", store.skipped_unknown());
            }
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

fn desk(ctx: &Ctx) -> Result<HandoffDesk> {
    let key = crate::key_cmd::workspace_key(ctx)?;
    let mut d = HandoffDesk::open(&ctx.data_dir, &key).with_context(|| format!("conversations of {}", ctx.data_dir.display()))?;
    d.set_workspace(&ctx.workspace);
    Ok(d)
}

pub fn run_feedback(a: FeedbackArgs, ctx: &Ctx) -> Result<()> {
    let thumbs = if a.up { Some(1) } else if a.down { Some(-1) } else { None };
    let f = Feedback { message_id: Some(a.message_id), thread_id: None, thumbs, csat: a.csat, comment: a.comment };
    let out = desk(ctx)?.desk().feedback(&f)?;
    if let Some(offer) = &out.offer {
        eprintln!("{offer}   (tresor handoff CONVERSATION_ID)");
    }
    println!("{}", serde_json::json!({ "feedback_id": out.id, "message_id": a.message_id, "offer_handoff": out.offer_handoff }));
    Ok(())
}

/// The receipt as printed: everything but the ticket's transcript.
fn receipt_json(r: &tresor_assistant::HandoffReceipt) -> serde_json::Value {
    serde_json::json!({
        "conversation_id": r.conversation_id, "handoff": true, "ticket_id": r.ticket_id, "status": r.status,
        "target": r.target, "delivered_to": r.delivered_to, "error": r.error, "message": r.message, "created": r.created,
    })
}

pub fn run_handoff(a: HandoffArgs, ctx: &Ctx) -> Result<()> {
    let d = desk(ctx)?;
    let desk = d.desk();
    if a.outbox {
        println!("{}", serde_json::to_string_pretty(&desk.store.entries()?)?);
        return Ok(());
    }
    let receipts = match a.conversation_id {
        Some(c) => {
            let req = tresor_assistant::HandoffRequest { conversation_id: Some(c), reason: a.reason, ..Default::default() };
            vec![desk.create(&req)?]
        }
        None => desk.retry_pending()?,
    };
    let mut failed = Vec::new();
    for r in &receipts {
        println!("{}", receipt_json(r));
        match (r.status.as_str(), &r.delivered_to, &r.error) {
            ("delivered", Some(to), _) => eprintln!("ticket {} delivered to {to}", r.ticket_id),
            ("queued", _, Some(e)) => failed.push(format!("ticket {} was not delivered: {e}", r.ticket_id)),
            _ => eprintln!("ticket {} kept in the local outbox: no handoff target is set up ([handoff] target in assistant.toml or the admin policy)", r.ticket_id),
        }
    }
    if a.retry && receipts.is_empty() {
        eprintln!("the outbox has no pending tickets");
    }
    if !failed.is_empty() {
        bail!("{}; it stays in the outbox (encrypted) — `tresor handoff --retry` delivers it again", failed.join("; "));
    }
    Ok(())
}
