//! `tresor workspace list | create | remove | token ...`: front door to
//! tresor_guard::workspace. Workspaces are named here explicitly (the global
//! `--workspace` is not used), under the data root of `--data-dir`.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::json;

use crate::ctx::Ctx;

#[derive(Subcommand, Debug)]
pub enum WorkspaceCmd {
    /// List the workspaces of the data dir (`default` is the data dir itself).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create a workspace: its own knowledge bases, keys, threads, cache and audit log.
    Create { name: String },
    /// Delete a workspace and all its data (knowledge bases, threads, keys, audit log).
    Remove {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
    /// API tokens scoped to one workspace (for `tresor serve`).
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Print a new random token once; the workspace stores only its SHA-256.
    Create {
        /// The workspace the token gives access to.
        name: String,
        /// A note to tell tokens apart in `token list`.
        #[arg(long, default_value = "")]
        label: String,
        /// Print {workspace, id, label, token} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a workspace's tokens (ids, labels, creation times; never the tokens).
    List {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; a running server rejects it within seconds.
    Revoke { name: String, id: String },
}

pub fn run(cmd: WorkspaceCmd, ctx: &Ctx) -> Result<()> {
    let ws = ctx.workspaces();
    match cmd {
        WorkspaceCmd::List { json } => {
            let list = ws.list().context("listing workspaces")?;
            if json {
                let v: Vec<_> = list.iter().map(|i| json!({"name": i.name, "dir": i.dir, "created": i.created})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for i in list {
                    println!("{}\t{}", i.name, i.dir.display());
                }
            }
        }
        WorkspaceCmd::Create { name } => {
            let info = ws.create(&name)?;
            println!("created workspace `{}` ({})", info.name, info.dir.display());
        }
        WorkspaceCmd::Remove { name, yes } => {
            let dir = ws.open(&name)?;
            if !yes {
                bail!("this deletes workspace `{name}` and all its data in {}; run again with --yes", dir.display());
            }
            ws.remove(&name)?;
            println!("removed workspace `{name}`");
        }
        WorkspaceCmd::Token(TokenCmd::Create { name, label, json }) => {
            let (rec, token) = ws.tokens(&name)?.create(&label).with_context(|| format!("creating a token for `{name}`"))?;
            if json {
                println!("{}", json!({"workspace": name, "id": rec.id, "label": rec.label, "token": token}));
            } else {
                println!("{token}");
                eprintln!("token {} for workspace `{name}`: shown once, only its SHA-256 is stored", rec.id);
            }
        }
        WorkspaceCmd::Token(TokenCmd::List { name, json }) => {
            let list = ws.tokens(&name)?.list()?;
            if json {
                let v: Vec<_> = list.iter().map(|t| json!({"id": t.id, "label": t.label, "created": t.created})).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for t in list {
                    println!("{}\t{}\t{}", t.id, t.created, t.label);
                }
            }
        }
        WorkspaceCmd::Token(TokenCmd::Revoke { name, id }) => {
            let rec = ws.tokens(&name)?.revoke(&id)?;
            println!("revoked token {} of workspace `{name}`", rec.id);
        }
    }
    Ok(())
}
