//! Workspaces (teams or tenants) and their API tokens.
//!
//! A workspace is a data directory: its knowledge bases, keys, threads,
//! cache and audit log all live under it, so nothing that opens one
//! workspace's directory can see another's. Layout under the data root
//! (`--data-dir` / `TRESOR_HOME`):
//!
//! - `default`: the data root itself (the layout Tresor had before
//!   workspaces, so existing data stays where it is);
//! - any other `NAME`: `<root>/workspaces/NAME/`, marked by a
//!   `workspace.json` so stray folders are never taken for a workspace.
//!
//! Names are 1–64 characters of `a-z`, `0-9`, `-` and `_`, starting with a
//! letter or digit: no path separators, dots, upper case or Unicode look-alikes.
//!
//! API tokens are scoped to one workspace: a token is 32 random bytes shown
//! once at creation; the workspace stores only its SHA-256 (in
//! `api-tokens.json`, mode 0600). [`TokenIndex`] maps a presented token to
//! the workspace it belongs to.
//!
//! This module owns names, paths, the workspace marker and token records. It
//! never opens a knowledge base or a store and never reads another
//! workspace's files on behalf of a caller that named a different one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The workspace that is the data root itself.
pub const DEFAULT: &str = "default";
/// Folder under the data root that holds the other workspaces.
pub const WORKSPACES_DIR: &str = "workspaces";
/// Marker file of a (non-default) workspace.
pub const MARKER: &str = "workspace.json";
/// Token records (hashes only) inside a workspace.
pub const TOKENS_FILE: &str = "api-tokens.json";
/// Prefix of the tokens this module issues.
pub const TOKEN_PREFIX: &str = "tresor-ws-";
const MAX_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("invalid workspace name `{0}` (1-64 characters: a-z, 0-9, - and _, starting with a letter or digit)")]
    BadName(String),
    #[error("workspace `{name}` does not exist (create it with: tresor workspace create {name})")]
    NotFound { name: String },
    #[error("workspace `{0}` already exists")]
    Exists(String),
    #[error("the default workspace is the data directory itself and cannot be removed")]
    RemoveDefault,
    #[error("no token `{id}` in workspace `{workspace}`")]
    NoSuchToken { workspace: String, id: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: malformed ({reason})")]
    Malformed { path: PathBuf, reason: String },
}

pub type Result<T> = std::result::Result<T, WorkspaceError>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io { path: path.to_path_buf(), source }
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Checks a workspace name (see the module docs for the rules).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(WorkspaceError::BadName(name.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkspaceInfo {
    pub name: String,
    /// The workspace's data directory.
    pub dir: PathBuf,
    /// Unix seconds (0 for the default workspace).
    pub created: u64,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    name: String,
    created: u64,
}

/// The workspaces under one data root.
#[derive(Debug, Clone)]
pub struct Workspaces {
    root: PathBuf,
}

impl Workspaces {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspaces { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The data directory a workspace has (or would have); validates the name.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        validate_name(name)?;
        Ok(if name == DEFAULT { self.root.clone() } else { self.root.join(WORKSPACES_DIR).join(name) })
    }

    /// The default workspace always exists; another exists once created.
    pub fn exists(&self, name: &str) -> Result<bool> {
        let dir = self.dir(name)?;
        Ok(name == DEFAULT || dir.join(MARKER).is_file())
    }

    /// The data directory of an existing workspace.
    pub fn open(&self, name: &str) -> Result<PathBuf> {
        if self.exists(name)? {
            self.dir(name)
        } else {
            Err(WorkspaceError::NotFound { name: name.to_string() })
        }
    }

    /// Creates a workspace; `Exists` when it is there already.
    pub fn create(&self, name: &str) -> Result<WorkspaceInfo> {
        if self.exists(name)? {
            return Err(WorkspaceError::Exists(name.to_string()));
        }
        let dir = self.dir(name)?;
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        restrict_dir(&dir)?;
        let created = now();
        let marker = dir.join(MARKER);
        let body = serde_json::to_vec_pretty(&Marker { name: name.to_string(), created }).expect("marker serialises");
        write_private(&marker, &body)?;
        Ok(WorkspaceInfo { name: name.to_string(), dir, created })
    }

    /// The directory of the workspace, created first when it does not exist.
    /// Returns the directory and whether it was created now.
    pub fn ensure(&self, name: &str) -> Result<(PathBuf, bool)> {
        if self.exists(name)? {
            return Ok((self.dir(name)?, false));
        }
        match self.create(name) {
            Ok(info) => Ok((info.dir, true)),
            // created by someone else in between
            Err(WorkspaceError::Exists(_)) => Ok((self.dir(name)?, false)),
            Err(e) => Err(e),
        }
    }

    /// Every workspace: `default` first, then the others by name.
    pub fn list(&self) -> Result<Vec<WorkspaceInfo>> {
        let mut out = vec![WorkspaceInfo { name: DEFAULT.into(), dir: self.root.clone(), created: 0 }];
        let base = self.root.join(WORKSPACES_DIR);
        let rd = match std::fs::read_dir(&base) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&base)(e)),
        };
        let mut others = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io(&base))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if validate_name(&name).is_err() || name == DEFAULT {
                continue;
            }
            let dir = entry.path();
            let marker = dir.join(MARKER);
            let Ok(bytes) = std::fs::read(&marker) else { continue };
            let created = serde_json::from_slice::<Marker>(&bytes).map(|m| m.created).unwrap_or(0);
            others.push(WorkspaceInfo { name, dir, created });
        }
        others.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(others);
        Ok(out)
    }

    /// Deletes a workspace and all its data (knowledge bases, threads, keys, audit log).
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        if name == DEFAULT {
            return Err(WorkspaceError::RemoveDefault);
        }
        let dir = self.open(name)?;
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// Token records of a workspace.
    pub fn tokens(&self, name: &str) -> Result<TokenStore> {
        Ok(TokenStore { workspace: name.to_string(), path: self.open(name)?.join(TOKENS_FILE) })
    }
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file + rename), mode 0600.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// One API token as stored: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRecord {
    /// Short public id (for listing and revoking).
    pub id: String,
    #[serde(default)]
    pub label: String,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// Unix seconds.
    pub created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// The API tokens of one workspace.
#[derive(Debug, Clone)]
pub struct TokenStore {
    workspace: String,
    path: PathBuf,
}

impl TokenStore {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        Ok(read_tokens(&self.path)?.tokens)
    }

    /// A new random token: returns its record and the token, which is
    /// stored nowhere and must be shown to the user now.
    pub fn create(&self, label: &str) -> Result<(TokenRecord, String)> {
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let mut file = read_tokens(&self.path)?;
        let id = loop {
            let id = hex::encode(rand::random::<[u8; 4]>());
            if !file.tokens.iter().any(|t| t.id == id) {
                break id;
            }
        };
        let rec = TokenRecord { id, label: label.to_string(), sha256: token_hash(&token), created: now() };
        file.tokens.push(rec.clone());
        write_private(&self.path, &serde_json::to_vec_pretty(&file).expect("tokens serialise"))?;
        Ok((rec, token))
    }

    /// Removes a token by id; requests with it fail from then on.
    pub fn revoke(&self, id: &str) -> Result<TokenRecord> {
        let mut file = read_tokens(&self.path)?;
        let pos = file
            .tokens
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| WorkspaceError::NoSuchToken { workspace: self.workspace.clone(), id: id.to_string() })?;
        let rec = file.tokens.remove(pos);
        write_private(&self.path, &serde_json::to_vec_pretty(&file).expect("tokens serialise"))?;
        Ok(rec)
    }
}

fn read_tokens(path: &Path) -> Result<TokenFile> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| WorkspaceError::Malformed { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(e) => Err(io(path)(e)),
    }
}

/// Modification time and length of a file (None when missing).
pub(crate) fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Which workspace a presented token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    pub workspace: String,
    /// The record id, or `None` for an extra (legacy) token.
    pub token_id: Option<String>,
    /// SHA-256 of the token (a stable key for per-token limits that is not the token).
    pub sha256: String,
}

/// Token hash → workspace, over every workspace of a data root, plus extra
/// tokens given in plain (the `--token` of `tresor serve`) pinned to one
/// workspace. Only hashes are held.
#[derive(Debug, Clone, Default)]
pub struct TokenIndex {
    by_hash: HashMap<String, TokenMatch>,
    /// Files read, with their modification times (to tell when to reload).
    seen: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

impl TokenIndex {
    /// Reads the token files of every workspace under `ws`.
    /// A malformed token file is an error: a server must not start with
    /// tokens it cannot read.
    pub fn load(ws: &Workspaces, extra: &[(String, String)]) -> Result<Self> {
        let mut idx = TokenIndex::default();
        for info in ws.list()? {
            let path = info.dir.join(TOKENS_FILE);
            let mtime = stamp(&path);
            for rec in read_tokens(&path)?.tokens {
                let m = TokenMatch { workspace: info.name.clone(), token_id: Some(rec.id), sha256: rec.sha256.clone() };
                idx.by_hash.insert(rec.sha256, m);
            }
            idx.seen.push((path, mtime));
        }
        for (workspace, token) in extra {
            validate_name(workspace)?;
            let h = token_hash(token);
            idx.by_hash.insert(h.clone(), TokenMatch { workspace: workspace.clone(), token_id: None, sha256: h });
        }
        Ok(idx)
    }

    /// Whether a token file was added, changed or removed since `load`
    /// (or a workspace was added or removed).
    pub fn is_stale(&self, ws: &Workspaces) -> bool {
        let Ok(list) = ws.list() else { return true };
        if list.len() != self.seen.len() {
            return true;
        }
        list.iter().zip(&self.seen).any(|(info, (path, mtime))| {
            let p = info.dir.join(TOKENS_FILE);
            p != *path || stamp(&p) != *mtime
        })
    }

    /// The workspace of a presented token.
    pub fn lookup(&self, token: &str) -> Option<&TokenMatch> {
        if token.is_empty() {
            return None;
        }
        self.by_hash.get(&token_hash(token))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_path_tricks_and_lookalikes() {
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "-x", "_x", "A", "acme ", "ac me", "äcme", "x".repeat(65).as_str(), "a\0b"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["default", "acme", "team-1", "t_2", "0", &"x".repeat(64)] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn default_is_the_root_others_live_under_workspaces() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path());
        assert_eq!(ws.dir("default").unwrap(), dir.path());
        assert_eq!(ws.dir("acme").unwrap(), dir.path().join("workspaces/acme"));
        assert!(ws.exists("default").unwrap());
        assert!(!ws.exists("acme").unwrap());
        assert!(matches!(ws.open("acme"), Err(WorkspaceError::NotFound { .. })));
        assert!(matches!(ws.dir("../etc"), Err(WorkspaceError::BadName(_))));
        // a stray folder is not a workspace
        std::fs::create_dir_all(dir.path().join("workspaces/stray")).unwrap();
        assert!(!ws.exists("stray").unwrap());
        let info = ws.create("acme").unwrap();
        assert!(info.dir.join(MARKER).is_file());
        assert!(matches!(ws.create("acme"), Err(WorkspaceError::Exists(_))));
        assert!(matches!(ws.create("default"), Err(WorkspaceError::Exists(_))));
        assert_eq!(ws.ensure("beta").unwrap().1, true);
        assert_eq!(ws.ensure("beta").unwrap().1, false);
        let names: Vec<String> = ws.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["default", "acme", "beta"]);
        assert!(matches!(ws.remove("default"), Err(WorkspaceError::RemoveDefault)));
        ws.remove("acme").unwrap();
        assert!(!dir.path().join("workspaces/acme").exists());
        assert!(matches!(ws.remove("acme"), Err(WorkspaceError::NotFound { .. })));
    }

    #[test]
    fn tokens_are_stored_as_hashes_and_scoped_to_their_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path());
        ws.create("a").unwrap();
        ws.create("b").unwrap();
        let (ra, ta) = ws.tokens("a").unwrap().create("ci").unwrap();
        let (_rb, tb) = ws.tokens("b").unwrap().create("").unwrap();
        let (_rd, td) = ws.tokens("default").unwrap().create("").unwrap();
        assert!(ta.starts_with(TOKEN_PREFIX) && ta.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(ta, tb);
        let stored = std::fs::read_to_string(dir.path().join("workspaces/a").join(TOKENS_FILE)).unwrap();
        assert!(!stored.contains(&ta[TOKEN_PREFIX.len()..]), "the token itself is stored");
        assert!(stored.contains(&token_hash(&ta)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("workspaces/a").join(TOKENS_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let idx = TokenIndex::load(&ws, &[("b".into(), "legacy-token".into())]).unwrap();
        assert_eq!(idx.lookup(&ta).unwrap().workspace, "a");
        assert_eq!(idx.lookup(&ta).unwrap().token_id.as_deref(), Some(ra.id.as_str()));
        assert_eq!(idx.lookup(&tb).unwrap().workspace, "b");
        assert_eq!(idx.lookup(&td).unwrap().workspace, "default");
        assert_eq!(idx.lookup("legacy-token").unwrap().workspace, "b");
        assert!(idx.lookup("legacy-token").unwrap().token_id.is_none());
        assert!(idx.lookup("").is_none());
        assert!(idx.lookup(&format!("{ta}x")).is_none());
        assert!(!idx.is_stale(&ws));
        // revoking changes the file: the index is stale and a reload drops the token
        ws.tokens("a").unwrap().revoke(&ra.id).unwrap();
        assert!(idx.is_stale(&ws));
        let idx = TokenIndex::load(&ws, &[]).unwrap();
        assert!(idx.lookup(&ta).is_none());
        assert_eq!(idx.lookup(&tb).unwrap().workspace, "b");
        assert!(matches!(ws.tokens("a").unwrap().revoke(&ra.id), Err(WorkspaceError::NoSuchToken { .. })));
        assert!(matches!(ws.tokens("nope"), Err(WorkspaceError::NotFound { .. })));
    }

    #[test]
    fn a_malformed_token_file_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path());
        ws.create("a").unwrap();
        std::fs::write(dir.path().join("workspaces/a").join(TOKENS_FILE), "{not json").unwrap();
        assert!(matches!(ws.tokens("a").unwrap().list(), Err(WorkspaceError::Malformed { .. })));
        assert!(TokenIndex::load(&ws, &[]).is_err());
    }
}
