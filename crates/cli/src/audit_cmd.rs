//! `tresor audit verify | export`: front door to tresor-guard's hash-chained audit log.

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain and signed checkpoints; exits non-zero naming the first bad entry.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Print audit entries as JSON lines.
    Export {
        /// Only entries at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
    },
}

pub fn run(_cmd: AuditCmd, _ctx: &Ctx) -> Result<()> {
    bail!("audit: not implemented yet")
}
