//! Widget tokens: the publishable keys of the embeddable web widget.
//!
//! A widget token is its own kind, apart from the workspace API tokens of
//! [`crate::workspace`]: it sits in a web page's source, so it gives far less.
//! It is scoped to one workspace and one knowledge base, only asks (the
//! server refuses every other route), works only from the exact origins on
//! its list (`scheme://host[:port]`, as a browser sends `Origin`), and
//! carries its own limits: requests per minute for the token, per visitor
//! (IP address) and an optional cap of answers per day.
//!
//! Like API tokens, a widget token is 32 random bytes shown once at creation;
//! the workspace stores only its SHA-256, in `widget-tokens.json` (mode 0600).
//! [`WidgetTokenIndex`] maps a presented token to its workspace and record
//! over every workspace of a data root.
//!
//! Owns: the widget token records, their file and the origin syntax. Never:
//! stores a token in plain, decides what a route may do (the server's widget
//! gate does), or opens a knowledge base.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::workspace::{io, now, stamp, token_hash, write_private, WorkspaceError, Workspaces};

/// Widget token records (hashes only) inside a workspace.
pub const WIDGET_TOKENS_FILE: &str = "widget-tokens.json";
/// Prefix of widget tokens (so the server tells them from API tokens at a glance).
pub const WIDGET_TOKEN_PREFIX: &str = "tresor-wd-";
/// Default requests per minute for one widget token, all visitors together.
pub const DEFAULT_RATE_PER_MIN: u32 = 120;
/// Default requests per minute for one visitor (IP address) of a widget token.
pub const DEFAULT_VISITOR_RATE_PER_MIN: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum WidgetError {
    #[error("invalid origin `{origin}`: {reason} (an origin is exactly scheme://host[:port], e.g. https://intranet.example.com or http://127.0.0.1:8000)")]
    BadOrigin { origin: String, reason: &'static str },
    #[error("a widget token needs at least one --origin (the pages allowed to embed it)")]
    NoOrigin,
    #[error("invalid knowledge base name `{0}`")]
    BadKb(String),
    #[error("a rate must be at least 1 request a minute")]
    ZeroRate,
    #[error("no widget token `{id}` in workspace `{workspace}`")]
    NoSuchToken { workspace: String, id: String },
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

pub type Result<T> = std::result::Result<T, WidgetError>;

/// An origin as a browser serialises it in the `Origin` header: lower-case
/// scheme (`http` or `https`) and host, the port only when it is not the
/// scheme's default. Anything else (a path, a query, user info, a wildcard)
/// is an error, so an allow-list entry matches one origin exactly.
pub fn parse_origin(s: &str) -> Result<String> {
    let bad = |reason| WidgetError::BadOrigin { origin: s.to_string(), reason };
    let t = s.trim();
    let (scheme, rest) = t.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains(['/', '?', '#', '@', '*', ' ', '\\']) {
        return Err(bad("only scheme, host and port (no path, query, user or wildcard)"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed [ in an IPv6 host"))?;
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(bad("not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after the IPv6 host"))?),
        };
        (format!("[{}]", h.to_ascii_lowercase()), port)
    } else {
        let (h, p) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            return Err(bad("the host must be a DNS name or an IP address"));
        }
        (h.to_ascii_lowercase(), p)
    };
    let port = match port {
        None => None,
        Some(p) => {
            let n: u16 = p.parse().map_err(|_| bad("the port must be a number 1-65535"))?;
            if n == 0 {
                return Err(bad("the port must be a number 1-65535"));
            }
            (n != default_port).then_some(n)
        }
    };
    Ok(match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// One widget token as stored: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WidgetTokenRecord {
    /// Short public id (for listing and revoking).
    pub id: String,
    #[serde(default)]
    pub label: String,
    /// The one knowledge base it answers from.
    pub kb: String,
    /// Exact origins (as [`parse_origin`] writes them) allowed to use it.
    pub origins: Vec<String>,
    /// Requests per minute for the token, all visitors together.
    pub rate_per_min: u32,
    /// Requests per minute for one visitor (IP address).
    pub visitor_rate_per_min: u32,
    /// Answers per UTC day for the token; None: no cap.
    #[serde(default)]
    pub daily_cap: Option<u32>,
    /// SHA-256 of the token, hex.
    pub sha256: String,
    /// Unix seconds.
    pub created: u64,
}

impl WidgetTokenRecord {
    /// Whether `origin` (an `Origin` header's value) is on the list, exactly.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

/// What a new widget token may do.
#[derive(Debug, Clone)]
pub struct NewWidgetToken {
    pub kb: String,
    /// Origins as given; each is checked and normalised with [`parse_origin`].
    pub origins: Vec<String>,
    pub rate_per_min: u32,
    pub visitor_rate_per_min: u32,
    pub daily_cap: Option<u32>,
    pub label: String,
}

impl NewWidgetToken {
    pub fn new(kb: impl Into<String>, origins: Vec<String>) -> Self {
        NewWidgetToken {
            kb: kb.into(),
            origins,
            rate_per_min: DEFAULT_RATE_PER_MIN,
            visitor_rate_per_min: DEFAULT_VISITOR_RATE_PER_MIN,
            daily_cap: None,
            label: String::new(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct WidgetTokenFile {
    tokens: Vec<WidgetTokenRecord>,
}

/// The widget tokens of one workspace.
#[derive(Debug, Clone)]
pub struct WidgetTokenStore {
    workspace: String,
    path: PathBuf,
}

impl Workspaces {
    /// Widget token records of a workspace.
    pub fn widget_tokens(&self, name: &str) -> std::result::Result<WidgetTokenStore, WorkspaceError> {
        Ok(WidgetTokenStore { workspace: name.to_string(), path: self.open(name)?.join(WIDGET_TOKENS_FILE) })
    }
}

impl WidgetTokenStore {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn list(&self) -> Result<Vec<WidgetTokenRecord>> {
        Ok(read_file(&self.path)?.tokens)
    }

    /// A new random widget token: returns its record and the token, which is
    /// stored nowhere and must be shown to the user now.
    pub fn create(&self, new: &NewWidgetToken) -> Result<(WidgetTokenRecord, String)> {
        let kb = new.kb.trim();
        if kb.is_empty() || kb.len() > 64 || !kb.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(WidgetError::BadKb(new.kb.clone()));
        }
        if new.origins.is_empty() {
            return Err(WidgetError::NoOrigin);
        }
        if new.rate_per_min == 0 || new.visitor_rate_per_min == 0 {
            return Err(WidgetError::ZeroRate);
        }
        let mut origins = Vec::new();
        for o in &new.origins {
            let o = parse_origin(o)?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        let token = format!("{WIDGET_TOKEN_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()));
        let mut file = read_file(&self.path)?;
        let id = loop {
            let id = hex::encode(rand::random::<[u8; 4]>());
            if !file.tokens.iter().any(|t| t.id == id) {
                break id;
            }
        };
        let rec = WidgetTokenRecord {
            id,
            label: new.label.clone(),
            kb: kb.to_string(),
            origins,
            rate_per_min: new.rate_per_min,
            visitor_rate_per_min: new.visitor_rate_per_min,
            daily_cap: new.daily_cap,
            sha256: token_hash(&token),
            created: now(),
        };
        file.tokens.push(rec.clone());
        write_private(&self.path, &serde_json::to_vec_pretty(&file).expect("widget tokens serialise"))?;
        Ok((rec, token))
    }

    /// Removes a widget token by id; a running server rejects it within seconds.
    pub fn revoke(&self, id: &str) -> Result<WidgetTokenRecord> {
        let mut file = read_file(&self.path)?;
        let pos = file
            .tokens
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| WidgetError::NoSuchToken { workspace: self.workspace.clone(), id: id.to_string() })?;
        let rec = file.tokens.remove(pos);
        write_private(&self.path, &serde_json::to_vec_pretty(&file).expect("widget tokens serialise"))?;
        Ok(rec)
    }
}

fn read_file(path: &Path) -> std::result::Result<WidgetTokenFile, WorkspaceError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| WorkspaceError::Malformed { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(WidgetTokenFile::default()),
        Err(e) => Err(io(path)(e)),
    }
}

/// A presented widget token's workspace and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetTokenMatch {
    pub workspace: String,
    pub record: WidgetTokenRecord,
}

/// Widget token hash → workspace and record, over every workspace of a data
/// root. Only hashes are held.
#[derive(Debug, Clone, Default)]
pub struct WidgetTokenIndex {
    by_hash: HashMap<String, WidgetTokenMatch>,
    seen: Vec<(PathBuf, Option<(SystemTime, u64)>)>,
}

impl WidgetTokenIndex {
    /// Reads the widget token files of every workspace under `ws`; a
    /// malformed one is an error (a server must not start with tokens it
    /// cannot read).
    pub fn load(ws: &Workspaces) -> std::result::Result<Self, WorkspaceError> {
        let mut idx = WidgetTokenIndex::default();
        for info in ws.list()? {
            let path = info.dir.join(WIDGET_TOKENS_FILE);
            let mtime = stamp(&path);
            for record in read_file(&path)?.tokens {
                idx.by_hash.insert(record.sha256.clone(), WidgetTokenMatch { workspace: info.name.clone(), record });
            }
            idx.seen.push((path, mtime));
        }
        Ok(idx)
    }

    /// Whether a widget token file was added, changed or removed since `load`.
    pub fn is_stale(&self, ws: &Workspaces) -> bool {
        let Ok(list) = ws.list() else { return true };
        if list.len() != self.seen.len() {
            return true;
        }
        list.iter().zip(&self.seen).any(|(info, (path, mtime))| {
            let p = info.dir.join(WIDGET_TOKENS_FILE);
            p != *path || stamp(&p) != *mtime
        })
    }

    /// The workspace and record of a presented token.
    pub fn lookup(&self, token: &str) -> Option<&WidgetTokenMatch> {
        if token.is_empty() {
            return None;
        }
        self.by_hash.get(&token_hash(token))
    }

    /// Whether any widget token allows `origin` (for CORS preflights, which carry no token).
    pub fn origin_known(&self, origin: &str) -> bool {
        self.by_hash.values().any(|m| m.record.allows_origin(origin))
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
    fn origins_are_exact_and_normalised_as_browsers_send_them() {
        assert_eq!(parse_origin("https://Intranet.Example.com").unwrap(), "https://intranet.example.com");
        assert_eq!(parse_origin("https://intranet.example.com:443").unwrap(), "https://intranet.example.com");
        assert_eq!(parse_origin("http://127.0.0.1:8000").unwrap(), "http://127.0.0.1:8000");
        assert_eq!(parse_origin("HTTP://localhost:80").unwrap(), "http://localhost");
        assert_eq!(parse_origin("http://[::1]:3000").unwrap(), "http://[::1]:3000");
        for bad in [
            "",
            "intranet.example.com",
            "ftp://x.example",
            "https://",
            "https://x.example/",
            "https://x.example/path",
            "https://*.example.com",
            "https://user@x.example",
            "https://x.example:0",
            "https://x.example:99999",
            "https://x.example:port",
            "https://x.example?q",
            "http://[::1",
            "null",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn widget_tokens_are_hashed_scoped_and_revocable() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(dir.path());
        ws.create("acme").unwrap();
        let store = ws.widget_tokens("acme").unwrap();
        let mut new = NewWidgetToken::new("handbook", vec!["https://intranet.example.com:443".into(), "https://intranet.example.com".into()]);
        new.daily_cap = Some(100);
        let (rec, token) = store.create(&new).unwrap();
        assert!(token.starts_with(WIDGET_TOKEN_PREFIX) && token.len() == WIDGET_TOKEN_PREFIX.len() + 64);
        assert_eq!(rec.origins, ["https://intranet.example.com"], "duplicates after normalising are one origin");
        assert_eq!((rec.rate_per_min, rec.visitor_rate_per_min, rec.daily_cap), (DEFAULT_RATE_PER_MIN, DEFAULT_VISITOR_RATE_PER_MIN, Some(100)));
        let stored = std::fs::read_to_string(store.path()).unwrap();
        assert!(!stored.contains(&token[WIDGET_TOKEN_PREFIX.len()..]), "the token itself is stored");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // a widget token is not an API token
        let api = crate::workspace::TokenIndex::load(&ws, &[]).unwrap();
        assert!(api.lookup(&token).is_none());
        let idx = WidgetTokenIndex::load(&ws).unwrap();
        let m = idx.lookup(&token).unwrap();
        assert_eq!((m.workspace.as_str(), m.record.kb.as_str()), ("acme", "handbook"));
        assert!(m.record.allows_origin("https://intranet.example.com"));
        assert!(!m.record.allows_origin("https://intranet.example.com:8443"));
        assert!(!m.record.allows_origin("http://intranet.example.com"));
        assert!(idx.origin_known("https://intranet.example.com") && !idx.origin_known("https://evil.example"));
        assert!(idx.lookup(&format!("{token}x")).is_none() && idx.lookup("").is_none());
        assert!(!idx.is_stale(&ws));
        // bad input is refused and writes nothing
        assert!(matches!(store.create(&NewWidgetToken::new("handbook", vec![])), Err(WidgetError::NoOrigin)));
        assert!(matches!(store.create(&NewWidgetToken::new("../x", vec!["https://a.example".into()])), Err(WidgetError::BadKb(_))));
        assert!(matches!(store.create(&NewWidgetToken::new("kb", vec!["https://a.example/x".into()])), Err(WidgetError::BadOrigin { .. })));
        assert_eq!(store.list().unwrap().len(), 1);
        // revoking: the index goes stale and a reload drops it
        store.revoke(&rec.id).unwrap();
        assert!(idx.is_stale(&ws));
        assert!(WidgetTokenIndex::load(&ws).unwrap().lookup(&token).is_none());
        assert!(matches!(store.revoke(&rec.id), Err(WidgetError::NoSuchToken { .. })));
        // a malformed file is an error, not an empty list
        std::fs::write(store.path(), b"{not json").unwrap();
        assert!(WidgetTokenIndex::load(&ws).is_err());
        assert!(store.list().is_err());
    }
}
