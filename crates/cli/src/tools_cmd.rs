//! `tresor tools ...`: the door to tresor-tools' data — import the admin's
//! price list, orders and calendar, list the tools, show and export the
//! appointments and tickets the assistant created. Opens `tools.sqlite`
//! with the workspace key; no tool logic here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use tresor_assistant::tools_data;
use tresor_tools::{export_ics, ToolStore};

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum ToolsCmd {
    /// Import the data of the built-in tools (replaces that kind; all or nothing; errors name FILE:LINE).
    Import {
        /// prices (CSV sku,product,price,currency), orders (CSV order_id,customer,status,updated_at) or calendar (.ics: every VEVENT is a busy time).
        #[arg(value_enum)]
        kind: ImportKind,
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The tools the assistant may call: name, description, JSON Schema of the arguments, side effect, source.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Appointments booked through book_appointment.
    Appointments {
        #[arg(long)]
        json: bool,
        /// Also write them as an iCalendar file (times in UTC).
        #[arg(long, value_name = "FILE")]
        ics: Option<PathBuf>,
    },
    /// Tickets opened through create_ticket (PII-masked).
    Tickets {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ImportKind {
    Prices,
    Orders,
    Calendar,
}

/// Whether the command adds data (then a missing workspace is created).
pub fn creates_data(cmd: &ToolsCmd) -> bool {
    matches!(cmd, ToolsCmd::Import { .. })
}

fn open_store(ctx: &Ctx) -> Result<ToolStore> {
    let key = crate::key_cmd::workspace_key(ctx)?;
    ToolStore::open(&ctx.data_dir, &key).with_context(|| format!("opening the tools store of workspace `{}`", ctx.workspace))
}

pub fn run(cmd: ToolsCmd, ctx: &Ctx) -> Result<()> {
    match cmd {
        ToolsCmd::Import { kind, file, json } => {
            let key = crate::key_cmd::workspace_key(ctx)?;
            let kind = match kind {
                ImportKind::Prices => "prices",
                ImportKind::Orders => "orders",
                ImportKind::Calendar => "calendar",
            };
            // through the engine's door: audited (tools.import), validated by tresor-tools
            let report = tools_data::import(&ctx.data_dir, &key, &ctx.workspace, None, kind, &file).context("nothing was imported")?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{report}");
            }
        }
        ToolsCmd::List { json } => {
            let key = crate::key_cmd::workspace_key(ctx)?;
            let (tools, unreachable) = tools_data::tools_in_force(&ctx.data_dir, &key)?;
            for (server, why) in &unreachable {
                eprintln!("warning: MCP server `{server}` is not available: {why}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&tools)?);
            } else {
                if tools.is_empty() {
                    println!("no tools in force (import data with `tresor tools import prices|orders|calendar FILE`, or list MCP servers in the admin policy)");
                }
                for t in &tools {
                    let class = if t.is_read_only() { "read-only" } else { "side effect" };
                    println!("{:<18} {:<12} {:<8} {}", t.name, class, t.source.to_string(), t.description_en);
                }
            }
        }
        ToolsCmd::Appointments { json, ics } => {
            let store = open_store(ctx)?;
            let apts = store.appointments()?;
            if let Some(path) = &ics {
                let text = export_ics(&store)?;
                std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
                if !json {
                    eprintln!("wrote {} appointment(s) to {}", apts.len(), path.display());
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&apts)?);
            } else if apts.is_empty() {
                println!("no appointments");
            } else {
                for a in &apts {
                    println!("{}  {} {}  {:>3} min  {}", a.appointment_id, a.date, a.time, a.duration_minutes, a.topic.as_deref().unwrap_or("-"));
                }
            }
        }
        ToolsCmd::Tickets { json } => {
            let store = open_store(ctx)?;
            let tickets = store.tickets()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tickets)?);
            } else if tickets.is_empty() {
                println!("no tickets");
            } else {
                for t in &tickets {
                    println!("{}  {:<6}  {}  {}", t.ticket_id, t.priority, t.created, t.subject);
                }
            }
        }
    }
    Ok(())
}
