//! `tresor guard pii` and `tresor eval pii`: front door to tresor-guard's PII
//! detector. No detection logic here.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::ctx::Ctx;

#[derive(Args)]
pub struct PiiArgs {
    /// The text to scan (or --file).
    pub text: Option<String>,
    /// Read the text from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Print an array of spans {start, end, type, score} (Unicode character offsets, end exclusive).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct EvalPiiArgs {
    /// JSONL cases: {id, lang, text, spans:[{start,end,type}]}.
    #[arg(long)]
    pub cases: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run_pii(_args: PiiArgs, _ctx: &Ctx) -> Result<()> {
    bail!("guard pii: not implemented yet")
}

pub fn run_eval_pii(_args: EvalPiiArgs, _ctx: &Ctx) -> Result<()> {
    bail!("eval pii: not implemented yet")
}
