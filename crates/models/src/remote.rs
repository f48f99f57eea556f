//! Remote chat models: OpenAI-compatible servers (llama.cpp's `llama-server`,
//! vLLM, a gateway) entered in the catalogue with `tresor models remote add`,
//! kept in `<models_dir>/remote.toml`.
//!
//! Owns: that file's format, its checks (a valid id that no local model
//! uses, an http(s) base URL, a chat role) and atomic updates; where an API
//! key comes from (a file the entry names — the key itself is never stored
//! here nor taken on a command line — or the OS keyring). Never: whether a
//! backend may be used (the admin policy's `[remote]`, checked by the
//! assistant) or talking to the server (tresor-llm's `remote`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{IoContext, ModelsError, Result};
use crate::manifest::{valid_id, Role};
use crate::paths::absolute;

/// The remote entries' file in the models dir.
pub const REMOTE_MANIFEST: &str = "remote.toml";

/// The keyring service under which `keyring:NAME` API keys are looked up.
pub const KEYRING_SERVICE: &str = "tresor-remote";

/// One remote chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEntry {
    pub id: String,
    /// Base URL (`http://host:port` or `…/v1`).
    pub url: String,
    /// The `model` field sent to the server (vLLM and gateways route on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Absolute path of a file holding the API key (first line), read at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// An API key kept in the OS keyring under service `tresor-remote`, this user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_keyring: Option<String>,
    /// The routing role it serves (`chat-small` / `chat-premium`); None: only `--model ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Context window the engine packs prompts for (default 4096).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
    /// Timeouts, retries and the circuit breaker; unset: the defaults in docs/remote.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker_cooldown_ms: Option<u64>,
}

impl RemoteEntry {
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> RemoteEntry {
        RemoteEntry {
            id: id.into(),
            url: url.into(),
            model: None,
            api_key_file: None,
            api_key_keyring: None,
            role: None,
            context_length: None,
            connect_timeout_ms: None,
            read_timeout_ms: None,
            retries: None,
            breaker_failures: None,
            breaker_cooldown_ms: None,
        }
    }

    /// The entry's rules; errors say which field is wrong.
    pub fn check(&self) -> Result<()> {
        let bad = |message: String| Err(ModelsError::Remote { id: self.id.clone(), message });
        if !valid_id(&self.id) {
            return bad("an id is letters, digits, `.`, `_` and `-` (at most 128)".into());
        }
        let rest = self.url.strip_prefix("http://").or_else(|| self.url.strip_prefix("https://"));
        if rest.is_none_or(|r| r.split('/').next().unwrap_or("").is_empty()) {
            return bad(format!("`{}` is not an http:// or https:// base URL", self.url));
        }
        if rest.is_some_and(|r| r.split('/').next().unwrap_or("").contains('@')) {
            return bad("credentials do not belong in the URL: use --api-key-file".into());
        }
        if let Some(r) = self.role {
            if !r.is_chat() {
                return bad(format!("role {r} is not a chat role (chat-small, chat-premium)"));
            }
        }
        if let Some(f) = &self.api_key_file {
            if !f.is_absolute() {
                return bad(format!("api_key_file {} is not an absolute path", f.display()));
            }
        }
        if self.context_length == Some(0) || self.read_timeout_ms == Some(0) || self.connect_timeout_ms == Some(0) {
            return bad("context_length and timeouts must be at least 1".into());
        }
        Ok(())
    }

    /// The API key: the first line of `api_key_file`, or the keyring entry; None when the entry has neither.
    pub fn api_key(&self) -> Result<Option<String>> {
        if let Some(f) = &self.api_key_file {
            let text = fs::read_to_string(f).io_ctx("reading the API key file", f)?;
            let key = text.lines().next().unwrap_or("").trim().to_string();
            if key.is_empty() {
                return Err(ModelsError::Remote { id: self.id.clone(), message: format!("the API key file {} is empty", f.display()) });
            }
            return Ok(Some(key));
        }
        if let Some(user) = &self.api_key_keyring {
            let entry = keyring::Entry::new(KEYRING_SERVICE, user)
                .and_then(|e| e.get_password())
                .map_err(|e| ModelsError::Remote { id: self.id.clone(), message: format!("keyring entry {KEYRING_SERVICE}/{user}: {e}") })?;
            return Ok(Some(entry));
        }
        Ok(None)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoteFile {
    #[serde(default)]
    remote: Vec<RemoteEntry>,
}

/// The remote entries of one models dir.
#[derive(Debug, Clone, Default)]
pub struct RemoteModels {
    path: PathBuf,
    entries: Vec<RemoteEntry>,
}

impl RemoteModels {
    /// `<models_dir>/remote.toml`; absent: no remote models. A malformed file is an error naming it.
    pub fn load(models_dir: &Path) -> Result<RemoteModels> {
        let path = absolute(models_dir).join(REMOTE_MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RemoteModels { path, entries: Vec::new() }),
            Err(e) => return Err(ModelsError::io("reading", path, e)),
        };
        let file: RemoteFile =
            toml::from_str(&text).map_err(|e| ModelsError::Manifest { origin: path.display().to_string(), message: e.to_string() })?;
        for e in &file.remote {
            e.check().map_err(|err| ModelsError::Manifest { origin: path.display().to_string(), message: err.to_string() })?;
        }
        Ok(RemoteModels { path, entries: file.remote })
    }

    pub fn entries(&self) -> &[RemoteEntry] {
        &self.entries
    }

    pub fn get(&self, id: &str) -> Option<&RemoteEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// The remote model entered for `role` (the last one added wins).
    pub fn for_role(&self, role: Role) -> Option<&RemoteEntry> {
        self.entries.iter().rev().find(|e| e.role == Some(role))
    }

    /// Adds (or replaces) `entry` and writes the file. An id of a local catalogue model is refused.
    pub fn add(&mut self, entry: RemoteEntry, catalog: &crate::Catalog) -> Result<()> {
        entry.check()?;
        if catalog.get(&entry.id).is_some() {
            return Err(ModelsError::Remote { id: entry.id, message: "a local model in the catalogue has this id; choose another".into() });
        }
        match self.entries.iter_mut().find(|e| e.id == entry.id) {
            Some(slot) => *slot = entry,
            None => self.entries.push(entry),
        }
        self.save()
    }

    /// Removes entry `id` and writes the file; an unknown id is an error listing the known ones.
    pub fn remove(&mut self, id: &str) -> Result<RemoteEntry> {
        let Some(i) = self.entries.iter().position(|e| e.id == id) else {
            let known = self.entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>().join(", ");
            return Err(ModelsError::Remote { id: id.into(), message: format!("no such remote model (known: {known})") });
        };
        let e = self.entries.remove(i);
        self.save()?;
        Ok(e)
    }

    /// Write-then-rename: a crash leaves the old file or the new one, never half of one.
    fn save(&self) -> Result<()> {
        let dir = self.path.parent().expect("a file in the models dir");
        fs::create_dir_all(dir).io_ctx("creating", dir)?;
        let text = toml::to_string(&RemoteFile { remote: self.entries.clone() })
            .map_err(|e| ModelsError::Manifest { origin: self.path.display().to_string(), message: e.to_string() })?;
        let tmp = self.path.with_extension("toml.tmp");
        let header = "# Remote chat models (`tresor models remote add|remove`); see docs/remote.md.\n\n";
        fs::write(&tmp, format!("{header}{text}")).io_ctx("writing", &tmp)?;
        fs::rename(&tmp, &self.path).io_ctx("replacing", &self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalog;

    #[test]
    fn add_replace_remove_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::load(dir.path()).unwrap();
        let mut r = RemoteModels::load(dir.path()).unwrap();
        assert!(r.entries().is_empty());
        let key = dir.path().join("key");
        fs::write(&key, "sk-test\n").unwrap();
        let e = RemoteEntry { model: Some("llama-70b".into()), api_key_file: Some(key.clone()), role: Some(Role::ChatPremium), ..RemoteEntry::new("gpu", "http://10.0.0.5:8080/v1") };
        r.add(e.clone(), &catalog).unwrap();
        let again = RemoteModels::load(dir.path()).unwrap();
        assert_eq!(again.get("gpu"), Some(&e));
        assert_eq!(again.for_role(Role::ChatPremium).map(|e| e.id.as_str()), Some("gpu"));
        assert!(again.for_role(Role::ChatSmall).is_none());
        assert_eq!(again.get("gpu").unwrap().api_key().unwrap().as_deref(), Some("sk-test"));
        let text = fs::read_to_string(dir.path().join(REMOTE_MANIFEST)).unwrap();
        assert!(!text.contains("sk-test"), "the key is referenced, never stored: {text}");
        // replace, then remove
        r.add(RemoteEntry { url: "http://10.0.0.6:8080".into(), ..e }, &catalog).unwrap();
        assert_eq!(RemoteModels::load(dir.path()).unwrap().entries().len(), 1);
        r.remove("gpu").unwrap();
        assert!(RemoteModels::load(dir.path()).unwrap().entries().is_empty());
        assert!(matches!(r.remove("gpu"), Err(ModelsError::Remote { .. })));
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::load(dir.path()).unwrap();
        let mut r = RemoteModels::load(dir.path()).unwrap();
        for (e, what) in [
            (RemoteEntry::new("x", "ftp://h/v1"), "http"),
            (RemoteEntry::new("x", "http://user:pw@h:1"), "credentials"),
            (RemoteEntry::new("a b", "http://h:1"), "id"),
            (RemoteEntry { role: Some(Role::Embed), ..RemoteEntry::new("x", "http://h:1") }, "chat role"),
            (RemoteEntry { api_key_file: Some("rel/key".into()), ..RemoteEntry::new("x", "http://h:1") }, "absolute"),
            (RemoteEntry::new("smollm2-135m-instruct", "http://h:1"), "local model"),
        ] {
            let err = r.add(e, &catalog).unwrap_err().to_string();
            assert!(err.contains(what), "{what}: {err}");
        }
        assert!(!dir.path().join(REMOTE_MANIFEST).exists(), "nothing written");
        fs::write(dir.path().join(REMOTE_MANIFEST), "[[remote]]\nid = \"x\"\nurl = 5\n").unwrap();
        assert!(matches!(RemoteModels::load(dir.path()), Err(ModelsError::Manifest { .. })));
        let key = dir.path().join("empty");
        fs::write(&key, "\n").unwrap();
        let e = RemoteEntry { api_key_file: Some(key), ..RemoteEntry::new("x", "http://h:1") };
        assert!(e.api_key().unwrap_err().to_string().contains("empty"));
    }
}
