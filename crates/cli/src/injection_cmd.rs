//! `tresor guard injection` and `tresor eval injection`: front door to
//! tresor-guard's prompt-injection firewall. No detection logic here.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::ctx::Ctx;

#[derive(Args)]
pub struct InjectionArgs {
    /// The text to check (or --file).
    pub text: Option<String>,
    /// Read the text from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print {injection, score, reasons}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalInjectionArgs {
    /// JSONL cases: {id, text, label: "injection"|"benign"}.
    #[arg(long)]
    pub cases: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run_injection(_args: InjectionArgs, _ctx: &Ctx) -> Result<()> {
    bail!("guard injection: not implemented yet")
}

pub fn run_eval_injection(_args: EvalInjectionArgs, _ctx: &Ctx) -> Result<()> {
    bail!("eval injection: not implemented yet")
}
