//! The kb folder of a PostgreSQL knowledge base: `store.json` (the server's
//! URL, for people and for `Kb::exists`) and `store.key`, a file sealed with
//! the workspace key that holds the database password and the knowledge
//! base's own 32-byte key. That key seals what the server holds but must not
//! read (the pseudonym secret and vault, the original source paths).
//!
//! `store.key` is an ordinary sealed file ([`WorkspaceKey::write_file`]), so
//! `tresor key rotate` re-seals it atomically like the index files, and
//! `--abort` puts it back; the knowledge base's own key stays the same
//! through a rotation, so what the server holds sealed stays readable.
//! Knowledge bases created before `store.key` kept the password sealed
//! inside `store.json` (which a rotation could not see); [`read`] moves it
//! into `store.key` the first time, [`migrate`] lets `key rotate` do that
//! before it starts.
//!
//! Owns these two files: their format, their write order and the move from
//! the old layout. Never the connection or the server's tables.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tresor_guard::crypto::WorkspaceKey;
use zeroize::Zeroizing;

use crate::error::{IoCtx, KbError, Result};

/// The kb folder's file naming the server.
pub const STORE_FILE: &str = "store.json";
/// The kb folder's sealed file: the password and the knowledge base's key.
pub const KEY_FILE: &str = "store.key";
/// Where the old layout sealed the password (inside `store.json`).
const LEGACY_PASSWORD_AAD: &[u8] = b"tresor-kb-postgres-password";
/// The subkey of the workspace key a new knowledge base's key is derived from: every client
/// of the same workspace key derives the same one (they can share a pseudonymising store).
const KB_KEY_LABEL: &str = "tresor-kb-postgres-key";

/// `store.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoreConfig {
    kind: String,
    url: String,
    /// The old layout: hex of the password sealed with the workspace key. Never written now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_sealed: Option<String>,
}

/// The plaintext of `store.key`.
#[derive(Serialize, Deserialize)]
struct Secrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    /// Hex of the knowledge base's 32-byte key.
    kb_key: String,
}

/// What the kb folder says, unsealed.
pub(crate) struct Local {
    pub url: String,
    pub password: Option<String>,
    pub kb_key: WorkspaceKey,
}

pub(crate) fn configured(dir: &Path) -> bool {
    dir.join(STORE_FILE).is_file()
}

fn read_config(dir: &Path) -> Result<StoreConfig> {
    let p = dir.join(STORE_FILE);
    let bytes = std::fs::read(&p).io(&p)?;
    let c: StoreConfig = serde_json::from_slice(&bytes).map_err(|e| KbError::Invalid(format!("{}: not a store file: {e}", p.display())))?;
    if c.kind != "postgres" {
        return Err(KbError::Invalid(format!("{}: unknown store kind `{}`", p.display(), c.kind)));
    }
    Ok(c)
}

fn write_config(dir: &Path, url: &str) -> Result<()> {
    let cfg = StoreConfig { kind: "postgres".into(), url: url.to_string(), password_sealed: None };
    let json = serde_json::to_vec_pretty(&cfg).expect("serializable");
    tresor_guard::crypto::write_atomic(&dir.join(STORE_FILE), &json)?;
    Ok(())
}

/// Points the kb folder at `url`: the same database, moved to another host or port (a
/// restarted test server, a migrated one). The sealed password and key stay as they are.
pub fn repoint(dir: &Path, url: &str) -> Result<()> {
    let mut c = read_config(dir)?;
    c.url = url.to_string();
    let json = serde_json::to_vec_pretty(&c).expect("serializable");
    tresor_guard::crypto::write_atomic(&dir.join(STORE_FILE), &json)?;
    Ok(())
}

fn write_secrets(dir: &Path, key: &WorkspaceKey, password: Option<&str>, kb_key: &[u8; 32]) -> Result<()> {
    let s = Secrets { password: password.map(str::to_string), kb_key: hex::encode(kb_key) };
    let plain = Zeroizing::new(serde_json::to_vec(&s).expect("serializable"));
    key.write_file(&dir.join(KEY_FILE), &plain)?;
    Ok(())
}

/// Writes a new knowledge base's folder: `store.key` first, then `store.json` (a crash between
/// leaves no knowledge base, only a `store.key` the next `kb create` replaces). Returns its key.
pub(crate) fn create(dir: &Path, key: &WorkspaceKey, url: &str, password: Option<&str>) -> Result<WorkspaceKey> {
    std::fs::create_dir_all(dir).io(dir)?;
    let bytes = key.subkey(KB_KEY_LABEL);
    write_secrets(dir, key, password, &bytes)?;
    write_config(dir, url)?;
    Ok(WorkspaceKey::from_bytes(*bytes))
}

/// Reads the folder (moving an old-layout password into `store.key` first).
pub(crate) fn read(dir: &Path, key: &WorkspaceKey) -> Result<Local> {
    migrate(dir, key)?;
    let cfg = read_config(dir)?;
    let p = dir.join(KEY_FILE);
    let plain = Zeroizing::new(key.read_file(&p)?);
    let s: Secrets = serde_json::from_slice(&plain).map_err(|e| KbError::Invalid(format!("{}: {e}", p.display())))?;
    let bytes = hex::decode(&s.kb_key).ok().filter(|b| b.len() == 32).ok_or_else(|| KbError::Invalid(format!("{}: the key is not 32 bytes of hex", p.display())))?;
    let mut arr = Zeroizing::new([0u8; 32]);
    arr.copy_from_slice(&bytes);
    Ok(Local { url: cfg.url, password: s.password, kb_key: WorkspaceKey::from_bytes(*arr) })
}

/// Whether the folder still has the old layout (the password in `store.json`, no `store.key`).
pub fn needs_migration(dir: &Path) -> bool {
    configured(dir) && (!dir.join(KEY_FILE).is_file() || read_config(dir).map(|c| c.password_sealed.is_some()).unwrap_or(false))
}

/// Moves the old layout to the new one with the workspace key `key`: `store.key` written
/// (password unsealed from `store.json`, the knowledge base key derived as a new one would be),
/// then `store.json` rewritten without the password. Idempotent; each step atomic. Returns
/// whether anything changed.
pub fn migrate(dir: &Path, key: &WorkspaceKey) -> Result<bool> {
    if !needs_migration(dir) {
        return Ok(false);
    }
    let cfg = read_config(dir)?;
    let cfg_path = dir.join(STORE_FILE);
    if !dir.join(KEY_FILE).is_file() {
        let password = match &cfg.password_sealed {
            Some(h) => {
                let sealed = hex::decode(h).map_err(|e| KbError::Invalid(format!("{}: password: {e}", cfg_path.display())))?;
                let p = key.unseal(&sealed, LEGACY_PASSWORD_AAD, &cfg_path).map_err(|_| {
                    KbError::Invalid(format!(
                        "{}: the database password was sealed with a workspace key this workspace no longer has \
                         (a key rotation before Tresor re-sealed it); run `tresor kb delete NAME --yes --force` and \
                         `tresor kb create NAME --store {}` again (the documents stay on the server)",
                        cfg_path.display(),
                        cfg.url
                    ))
                })?;
                Some(String::from_utf8(p).map_err(|_| KbError::Invalid(format!("{}: password is not UTF-8", cfg_path.display())))?)
            }
            None => None,
        };
        write_secrets(dir, key, password.as_deref(), &key.subkey(KB_KEY_LABEL))?;
    }
    write_config(dir, &cfg.url)?;
    Ok(true)
}

/// The kb folders under `kb_root` (a workspace's `kb/`) that still have the old layout.
pub fn legacy_folders(kb_root: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(kb_root) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| needs_migration(p)).collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived_kb_key(key: &WorkspaceKey) -> WorkspaceKey {
        WorkspaceKey::from_bytes(*key.subkey(KB_KEY_LABEL))
    }

    #[test]
    fn a_new_folder_holds_the_password_only_sealed_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        let key = WorkspaceKey::ephemeral();
        let k = create(d.path(), &key, "postgres://u@h:5432/db", Some("s3cret-pw")).unwrap();
        for f in [STORE_FILE, KEY_FILE] {
            let b = std::fs::read(d.path().join(f)).unwrap();
            assert!(!b.windows(9).any(|w| w == b"s3cret-pw"), "{f} holds the password in clear");
        }
        let l = read(d.path(), &key).unwrap();
        assert_eq!((l.url.as_str(), l.password.as_deref()), ("postgres://u@h:5432/db", Some("s3cret-pw")));
        assert_eq!(l.kb_key.id(), k.id());
        // the same workspace key derives the same knowledge base key (clients can share)
        assert_eq!(derived_kb_key(&key).id(), k.id());
        // another workspace key cannot open it
        assert!(read(d.path(), &WorkspaceKey::ephemeral()).is_err());
    }

    #[test]
    fn the_old_layout_moves_to_store_key_once() {
        let root = tempfile::tempdir().unwrap();
        let d = root.path().join("team");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(root.path().join("embedded")).unwrap();
        let key = WorkspaceKey::ephemeral();
        let sealed = hex::encode(key.seal(b"old-pw", LEGACY_PASSWORD_AAD));
        let old = serde_json::json!({"kind": "postgres", "url": "postgres://u@h:5432/db", "password_sealed": sealed});
        std::fs::write(d.join(STORE_FILE), old.to_string()).unwrap();
        assert!(needs_migration(&d));
        assert_eq!(legacy_folders(root.path()), vec![d.clone()]);
        assert!(migrate(&d, &key).unwrap());
        assert!(!needs_migration(&d) && !migrate(&d, &key).unwrap());
        assert!(legacy_folders(root.path()).is_empty());
        let cfg = std::fs::read_to_string(d.join(STORE_FILE)).unwrap();
        assert!(!cfg.contains("password"), "{cfg}");
        let l = read(&d, &key).unwrap();
        assert_eq!(l.password.as_deref(), Some("old-pw"));
        assert_eq!(l.kb_key.id(), derived_kb_key(&key).id());
        // an old-layout password under a key the workspace no longer has: a clear error, nothing changed
        let d2 = tempfile::tempdir().unwrap();
        std::fs::write(d2.path().join(STORE_FILE), old.to_string()).unwrap();
        let e = migrate(d2.path(), &WorkspaceKey::ephemeral()).unwrap_err().to_string();
        assert!(e.contains("no longer has") && e.contains("kb create"), "{e}");
        assert!(!d2.path().join(KEY_FILE).exists());
    }
}
