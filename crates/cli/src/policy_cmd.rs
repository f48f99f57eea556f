//! `tresor policy show | check FILE`: front door to tresor-guard's admin policy.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Print the policy in force (and which items an admin locked).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Validate a policy file (syntax, keys, signature); errors name the line and key.
    Check { file: PathBuf },
}

pub fn run(_cmd: PolicyCmd, _ctx: &Ctx) -> Result<()> {
    bail!("policy: not implemented yet")
}
