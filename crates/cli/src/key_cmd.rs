//! `tresor key ...`: front door to tresor-guard's key management (encryption at rest).

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Re-encrypt the workspace's data under a new key.
    Rotate,
}

pub fn run(_cmd: KeyCmd, _ctx: &Ctx) -> Result<()> {
    bail!("key: not implemented yet")
}
