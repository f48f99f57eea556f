//! The "TEXT or --file F" input that the guard commands share: clap
//! arguments plus reading them into one string with a clear error. Owns
//! argument handling only; never inspects the text.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

#[derive(Args)]
pub struct TextInput {
    /// The text to check (or --file).
    pub text: Option<String>,
    /// Read the text from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

impl TextInput {
    /// The text given inline or read from the file; exactly one of them.
    pub fn read(&self) -> Result<String> {
        match (&self.text, &self.file) {
            (Some(_), Some(_)) => bail!("give either TEXT or --file, not both"),
            (Some(t), None) => Ok(t.clone()),
            (None, Some(f)) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display())),
            (None, None) => bail!("nothing to check: give TEXT or --file F"),
        }
    }
}
