//! `tresor audit verify | repair | export`: front door to tresor-guard's hash-chained audit log.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use tresor_guard::audit::{canonical, AuditLog};

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain and signed checkpoints; exits non-zero naming the first bad entry.
    Verify {
        #[arg(long)]
        json: bool,
        /// A checkpoint public key kept outside the data dir (the data dir's audit/checkpoint.pub,
        /// copied elsewhere); without it, the key pinned in entry 1 is used.
        #[arg(long)]
        pubkey: Option<PathBuf>,
        /// The head you noted down earlier (`SEQ:HASH` from a previous verify): fails when the
        /// log no longer holds it (rolled back or rewritten).
        #[arg(long)]
        expect_head: Option<String>,
    },
    /// Cut a torn last line (a write cut off by a crash or a full disk) that `verify` reports,
    /// keeping the cut bytes in audit/torn-*; whole entries are never changed. Appends refuse a
    /// torn log until this runs.
    Repair {
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

pub fn run(cmd: AuditCmd, ctx: &Ctx) -> Result<()> {
    let log = AuditLog::for_data_dir(&ctx.data_dir);
    match cmd {
        AuditCmd::Verify { json, pubkey, expect_head } => {
            let pinned = pubkey.as_deref().map(tresor_guard::policy::read_public_key).transpose().context("reading --pubkey")?;
            let mut rep = log.verify(pinned.as_ref()).with_context(|| format!("verifying {}", log.dir().display()))?;
            if let (true, Some(h)) = (rep.ok, expect_head.as_deref()) {
                let (seq, hash) = h.split_once(':').context("--expect-head takes SEQ:HASH")?;
                let seq: u64 = seq.parse().context("--expect-head takes SEQ:HASH")?;
                let held = log.entries(None)?.get((seq as usize).wrapping_sub(1)).and_then(|e| e["hash"].as_str().map(str::to_string));
                if held.as_deref() != Some(hash) {
                    rep.ok = false;
                    rep.first_bad = Some(seq);
                    rep.problem = Some(format!(
                        "entry {seq}: the expected head is not in the log ({}; the log was rolled back or rewritten)",
                        if held.is_some() { "a different entry holds that number" } else { "the log is shorter" }
                    ));
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rep)?);
            } else if rep.ok {
                let head = rep.head.as_ref().map(|h| format!("; head {}:{}", h.seq, h.hash)).unwrap_or_default();
                println!("audit log OK: {} entries, {} signed checkpoints{head}", rep.entries, rep.checkpoints);
            }
            if !rep.ok {
                bail!("audit log {} is damaged: {}", log.dir().display(), rep.problem.unwrap_or_default());
            }
            Ok(())
        }
        AuditCmd::Repair { json } => {
            let cut = log.repair().with_context(|| format!("repairing {}", log.dir().display()))?;
            let rep = log.verify(None).with_context(|| format!("verifying {}", log.dir().display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"repaired": cut, "verify": rep}))?);
            } else {
                if cut.is_empty() {
                    println!("nothing to repair: no torn last line");
                }
                for c in &cut {
                    println!("cut {} torn bytes from {} (kept in {})", c.cut_bytes, c.file.display(), c.kept_in.display());
                }
            }
            if !rep.ok {
                bail!(
                    "audit log {} is still damaged: {} (repair only cuts a torn last line; it never rewrites entries)",
                    log.dir().display(),
                    rep.problem.unwrap_or_default()
                );
            }
            if !json {
                println!("audit log OK: {} entries, {} signed checkpoints", rep.entries, rep.checkpoints);
            }
            Ok(())
        }
        AuditCmd::Export { since } => {
            let out = std::io::stdout();
            let mut out = out.lock();
            for e in log.entries(since.as_deref())? {
                writeln!(out, "{}", canonical(&e))?;
            }
            Ok(())
        }
    }
}
