//! Where a PostgreSQL knowledge base's password comes from at the door:
//! `--password-file F` (its first line), else the OS keyring entry
//! `tresor-postgres` / `USER@HOST:PORT/DB`, else none (trust or peer
//! authentication). Never the command line, never the URL (the store refuses
//! one there). Also the scratch PostgreSQL knowledge base of
//! `tresor eval retrieval --store`.
//!
//! Owns reading the password; never stores it (the engine seals it with the
//! workspace key in the kb folder).

use std::path::Path;

use anyhow::{bail, Context, Result};
use tresor_kb::Kb;

/// The keyring service name of PostgreSQL passwords.
const KEYRING_SERVICE: &str = "tresor-postgres";

/// The password for `url` (see the module comment).
pub fn password(url: &str, file: Option<&Path>) -> Result<Option<String>> {
    // refuse a password in the URL before anything else reads it
    tresor_kb::store::pg::parse_url(url)?;
    if let Some(f) = file {
        let s = std::fs::read_to_string(f).with_context(|| format!("reading the password file {}", f.display()))?;
        let p = s.lines().next().unwrap_or("").to_string();
        if p.is_empty() {
            bail!("the password file {} is empty", f.display());
        }
        return Ok(Some(p));
    }
    if std::env::var_os("TRESOR_NO_KEYRING").is_some() {
        return Ok(None);
    }
    let account = url.trim_start_matches("postgresql://").trim_start_matches("postgres://");
    let from_keyring = keyring::Entry::new(KEYRING_SERVICE, account).and_then(|e| e.get_password());
    Ok(from_keyring.ok())
}

/// A scratch knowledge base in the empty database `url` (for `eval retrieval --store`).
pub fn scratch(dir: &Path, url: &str, file: Option<&Path>) -> Result<Kb> {
    let pw = password(url, file)?;
    // a key that lives only in memory, as for the embedded scratch knowledge base
    let kb = Kb::create_postgres(dir, &tresor_guard::crypto::WorkspaceKey::ephemeral(), url, pw.as_deref())
        .with_context(|| format!("creating a scratch knowledge base in {url}"))?;
    if kb.document_count()? > 0 {
        bail!("{url} already holds a knowledge base with documents; the retrieval eval needs an empty database");
    }
    Ok(kb)
}
