//! `tresor key ...` and the key of the workspace every other command opens:
//! the front door to tresor-guard's encryption at rest (docs/encryption.md).
//! Decides where the passphrase comes from (`--passphrase-file`,
//! `TRESOR_PASSPHRASE`, the OS keyring, a terminal prompt); never prints,
//! logs or stores a passphrase or key.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tresor_guard::crypto::{self, KeySource, Passphrase, PromptKind, WorkspaceKey};

use crate::ctx::Ctx;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// How the workspace's key is protected (passphrase or OS keyring), its id, last rotation.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Re-encrypt every database and file of the workspace under a new data key (resumable when interrupted).
    Rotate(RotateArgs),
    /// Re-wrap the data key under a new passphrase (or the OS keyring); the data is not rewritten.
    ChangePassphrase(ChangeArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    /// Also change the passphrase: read the new one from this file (or set TRESOR_NEW_PASSPHRASE).
    #[arg(long)]
    pub new_passphrase_file: Option<PathBuf>,
    /// Undo an interrupted rotation instead of finishing it: files already under the new key go
    /// back to the current one and the pending key is dropped.
    #[arg(long, conflicts_with = "new_passphrase_file")]
    pub abort: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ChangeArgs {
    /// The new passphrase, from this file (else TRESOR_NEW_PASSPHRASE, else a terminal prompt).
    #[arg(long)]
    pub new_passphrase_file: Option<PathBuf>,
    /// Keep the key-encryption key in the OS keyring instead of a passphrase.
    #[arg(long, conflicts_with = "new_passphrase_file")]
    pub keyring: bool,
}

fn prompt() -> crypto::Prompt {
    Arc::new(|kind: PromptKind, dir: &Path| {
        let text = match kind {
            PromptKind::Unlock => format!("passphrase for {}: ", dir.display()),
            PromptKind::New => format!("new passphrase for {}: ", dir.display()),
            PromptKind::Confirm => "repeat the passphrase: ".to_string(),
        };
        rpassword::prompt_password(text).ok().map(Passphrase::new)
    })
}

/// Where this invocation's passphrase comes from: `--passphrase-file`, then
/// `TRESOR_PASSPHRASE`, then the OS keyring, then a prompt when stdin is a terminal.
pub fn key_source(ctx: &Ctx) -> Result<KeySource> {
    if let Some(f) = &ctx.passphrase_file {
        let p = Passphrase::from_file(f).with_context(|| format!("--passphrase-file {}", f.display()))?;
        return Ok(KeySource { passphrase: Some(p), keyring: false, prompt: None });
    }
    let mut src = KeySource::from_env();
    if src.passphrase.is_none() && std::io::stdin().is_terminal() {
        src = src.with_prompt(prompt());
    }
    Ok(src)
}

/// The data key of the workspace (`ctx.data_dir`), created on first use.
pub fn workspace_key(ctx: &Ctx) -> Result<WorkspaceKey> {
    let src = key_source(ctx)?;
    WorkspaceKey::open(&ctx.data_dir, &src).with_context(|| format!("unlocking workspace `{}`", ctx.workspace))
}

/// The new protection for `rotate` / `change-passphrase`: a file, TRESOR_NEW_PASSPHRASE, or (when allowed) a prompt.
fn new_source(file: Option<&Path>, allow_prompt: bool) -> Result<Option<KeySource>> {
    if let Some(f) = file {
        let p = Passphrase::from_file(f).with_context(|| format!("--new-passphrase-file {}", f.display()))?;
        return Ok(Some(KeySource { passphrase: Some(p), keyring: false, prompt: None }));
    }
    if let Some(p) = std::env::var("TRESOR_NEW_PASSPHRASE").ok().filter(|s| !s.is_empty()) {
        return Ok(Some(KeySource::passphrase(p)));
    }
    if allow_prompt && std::io::stdin().is_terminal() {
        return Ok(Some(KeySource { passphrase: None, keyring: false, prompt: Some(prompt()) }));
    }
    Ok(None)
}

/// PostgreSQL knowledge bases made before `store.key` keep their password sealed inside
/// `store.json`, where a rotation cannot see it: moved into `store.key` (a sealed file the
/// rotation re-seals) before it starts. Skipped when the key does not open now (a wrong
/// passphrase, an interrupted rotation): the rotation itself then says why.
fn move_legacy_store_passwords(dir: &Path, src: &KeySource) {
    let legacy = tresor_kb::store::pg::local::legacy_folders(&dir.join("kb"));
    if legacy.is_empty() {
        return;
    }
    let Ok(key) = WorkspaceKey::open(dir, src) else { return };
    for f in legacy {
        // one the current key cannot open is lost already; the rotation does not make it worse
        if let Err(e) = tresor_kb::store::pg::local::migrate(&f, &key) {
            eprintln!("warning: {e}");
        }
    }
}

fn when(t: i64) -> String {
    format!("{t} (unix time)")
}

pub fn run(cmd: KeyCmd, ctx: &Ctx) -> Result<()> {
    let dir = &ctx.data_dir;
    match cmd {
        KeyCmd::Status { json } => {
            if !crypto::has_key(dir) {
                bail!("workspace `{}` ({}) has no key yet: it is created by the first command that stores data", ctx.workspace, dir.display());
            }
            let s = crypto::key_status(dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("workspace `{}`: {}", ctx.workspace, s.data_dir.display());
                println!("key file: {}", s.key_file.display());
                println!("protection: {}{}", s.protection, s.argon2.as_ref().map(|a| format!(" ({a})")).unwrap_or_default());
                println!("data key id: {}", s.key_id);
                println!("created: {}", when(s.created_at));
                println!("rotated: {}", s.rotated_at.map(when).unwrap_or_else(|| "never".into()));
                if s.rotation_pending {
                    println!("a rotation was interrupted: run `tresor key rotate` again to finish it");
                }
            }
        }
        KeyCmd::Rotate(args) => {
            if !crypto::has_key(dir) {
                bail!("workspace `{}` ({}) has no key yet: nothing to rotate", ctx.workspace, dir.display());
            }
            let src = key_source(ctx)?;
            if args.abort {
                let r = crypto::abort_rotation(dir, &src).with_context(|| format!("aborting the key rotation of workspace `{}`", ctx.workspace))?;
                if args.json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("rotation aborted: {} database(s) and {} file(s) back under key {}", r.databases, r.files, r.new_key_id);
                }
                return Ok(());
            }
            let new = new_source(args.new_passphrase_file.as_deref(), false)?;
            move_legacy_store_passwords(dir, &src);
            let r = crypto::rotate(dir, &src, new.as_ref()).with_context(|| format!("rotating the key of workspace `{}`", ctx.workspace))?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} key {} -> {}: {} database(s) and {} file(s) re-encrypted{}; protection: {}{}",
                    if r.resumed { "finished the interrupted rotation:" } else { "rotated:" },
                    r.old_key_id,
                    r.new_key_id,
                    r.databases,
                    r.files,
                    if r.already_done > 0 { format!(", {} already done", r.already_done) } else { String::new() },
                    r.protection,
                    if new.is_some() { " (new passphrase)" } else { "" }
                );
                for p in &r.not_encrypted {
                    eprintln!("note: not a Tresor-encrypted file, left as it is: {}", p.display());
                }
            }
        }
        KeyCmd::ChangePassphrase(args) => {
            if !crypto::has_key(dir) {
                bail!("workspace `{}` ({}) has no key yet", ctx.workspace, dir.display());
            }
            let src = key_source(ctx)?;
            let new = if args.keyring {
                KeySource { passphrase: None, keyring: true, prompt: None }
            } else {
                new_source(args.new_passphrase_file.as_deref(), true)?.context(
                    "no new passphrase: pass --new-passphrase-file FILE, set TRESOR_NEW_PASSPHRASE, or run in a terminal",
                )?
            };
            let p = crypto::change_passphrase(dir, &src, &new).with_context(|| format!("changing the passphrase of workspace `{}`", ctx.workspace))?;
            println!("workspace `{}`: the data key is now protected by {p}", ctx.workspace);
        }
    }
    Ok(())
}
