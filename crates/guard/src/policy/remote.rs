//! `[remote]` of the policy: which remote inference backends (OpenAI-compatible
//! servers) a workspace may send prompts to. The admin lists the allowed base
//! URLs; a workspace (its own `policy.toml`) or the admin may forbid remote
//! backends altogether — data residency: then no prompt leaves the machine.
//!
//! Owns: the section's shape, its checks and the one question
//! [`RemotePolicy::permits`]. Never: talks to a server or picks a model
//! (tresor-assistant's `remote.rs` does, asking this first).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RemotePolicy {
    /// `false`: no remote backend answers in this workspace (default: allowed when listed).
    pub enabled: Option<bool>,
    /// The only base URLs a remote backend may have (admin policy only); empty: none.
    #[serde(default)]
    pub allowed_urls: Vec<String>,
    /// Admin only: a workspace's `policy.toml` may not change `[remote]`.
    pub locked: Option<bool>,
}

/// Why a backend may not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteRefusal {
    /// `[remote] enabled = false` (data residency).
    Forbidden,
    /// The URL is not on the admin's `[remote] allowed_urls`.
    NotListed,
}

impl RemoteRefusal {
    pub fn as_str(&self) -> &'static str {
        match self {
            RemoteRefusal::Forbidden => "remote backends are forbidden in this workspace ([remote] enabled = false)",
            RemoteRefusal::NotListed => "the URL is not on the admin policy's [remote] allowed_urls",
        }
    }
}

/// `http://h:1/v1/` and `http://h:1/v1` are the same base URL.
fn norm(u: &str) -> &str {
    u.trim_end_matches('/')
}

impl RemotePolicy {
    /// Checks the URL list; errors as (key below `remote`, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        for u in &self.allowed_urls {
            let rest = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
            if rest.is_none_or(|r| r.split('/').next().unwrap_or("").is_empty()) {
                return Err(("allowed_urls".into(), format!("`{u}` is not an http:// or https:// URL")));
            }
        }
        Ok(())
    }

    /// May prompts go to the backend at `url`? Exactly one of `allowed_urls`
    /// (a trailing `/` aside), and remote backends not forbidden.
    pub fn permits(&self, url: &str) -> Result<(), RemoteRefusal> {
        if self.enabled == Some(false) {
            return Err(RemoteRefusal::Forbidden);
        }
        if !self.allowed_urls.iter().any(|a| norm(a) == norm(url)) {
            return Err(RemoteRefusal::NotListed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_urls_and_never_when_forbidden() {
        let p = RemotePolicy { allowed_urls: vec!["http://10.0.0.5:8080/v1".into()], ..Default::default() };
        assert!(p.check().is_ok());
        assert_eq!(p.permits("http://10.0.0.5:8080/v1/"), Ok(()));
        assert_eq!(p.permits("http://10.0.0.5:8080/v1/../x"), Err(RemoteRefusal::NotListed));
        assert_eq!(p.permits("http://10.0.0.6:8080/v1"), Err(RemoteRefusal::NotListed));
        assert_eq!(RemotePolicy::default().permits("http://10.0.0.5:8080/v1"), Err(RemoteRefusal::NotListed), "none by default");
        let off = RemotePolicy { enabled: Some(false), ..p };
        assert_eq!(off.permits("http://10.0.0.5:8080/v1"), Err(RemoteRefusal::Forbidden));
        let bad = RemotePolicy { allowed_urls: vec!["10.0.0.5:8080".into()], ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "allowed_urls");
    }

    #[test]
    fn the_admin_lists_backends_and_a_workspace_may_only_forbid_them() {
        use crate::policy::{Layer, Policy};
        use std::path::Path;
        let mut p = Policy::builtin();
        p.apply_toml("[remote]\nallowed_urls = [\"http://gpu:8080/v1\"]\n", Path::new("admin.toml"), Layer::Admin).unwrap();
        assert_eq!(p.remote.permits("http://gpu:8080/v1"), Ok(()));
        // a workspace lists nothing of its own ...
        let e = p.clone().apply_toml("[remote]\nallowed_urls = [\"http://evil:1\"]\n", Path::new("u.toml"), Layer::User).unwrap_err();
        assert!(e.to_string().contains("remote.allowed_urls"), "{e}");
        // ... but may forbid remote backends (data residency)
        let mut ws = p.clone();
        ws.apply_toml("[remote]\nenabled = false\n", Path::new("u.toml"), Layer::User).unwrap();
        assert_eq!(ws.remote.permits("http://gpu:8080/v1"), Err(RemoteRefusal::Forbidden));
        // the admin's `enabled = false` stands against a workspace's `true`; a locked section against any change
        let mut off = Policy::builtin();
        off.apply_toml("[remote]\nenabled = false\nallowed_urls = [\"http://gpu:8080\"]\n", Path::new("admin.toml"), Layer::Admin).unwrap();
        assert!(off.clone().apply_toml("[remote]\nenabled = true\n", Path::new("u.toml"), Layer::User).is_err());
        let mut locked = Policy::builtin();
        locked.apply_toml("[remote]\nallowed_urls = [\"http://gpu:8080\"]\nlocked = true\n", Path::new("admin.toml"), Layer::Admin).unwrap();
        let e = locked.apply_toml("[remote]\nenabled = false\n", Path::new("u.toml"), Layer::User).unwrap_err();
        assert!(e.to_string().contains("locked"), "{e}");
    }
}
