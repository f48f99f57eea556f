//! `[handoff]` of the admin policy: where a conversation goes when the user
//! asks for a human (a folder, an .eml file, an HTTP endpoint) and which HTTP
//! endpoints a handoff may ever be posted to.
//!
//! Owns: the section's shape and its checks (an HTTP target must be on
//! `allowed_urls`; only the admin policy may hold the section). Never:
//! writes or sends a ticket (tresor-assistant's `handoff/` does).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Target kinds a handoff can be delivered to.
pub const HANDOFF_TARGETS: &[&str] = &["none", "folder", "eml", "http"];
/// How personal data in a ticket is redacted (`off` only by the admin).
pub const HANDOFF_REDACT: &[&str] = &["mask", "pseudonym", "drop", "off"];

/// The admin's handoff settings; every field unset leaves the data dir's
/// `assistant.toml` `[handoff]` in force, except `allowed_urls`, which only the admin sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HandoffPolicy {
    /// none | folder | eml | http
    pub target: Option<String>,
    /// folder / eml: the directory tickets are written to.
    pub dir: Option<PathBuf>,
    /// http: the endpoint a ticket is POSTed to (must be on `allowed_urls`).
    pub url: Option<String>,
    /// The only HTTP endpoints a handoff may be posted to (exact URLs).
    #[serde(default)]
    pub allowed_urls: Vec<String>,
    /// eml: the recipient and sender addresses.
    pub mail_to: Option<String>,
    pub mail_from: Option<String>,
    /// http: per-request timeout and retries before the ticket waits in the outbox.
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    /// mask | pseudonym | drop | off
    pub redact: Option<String>,
}

impl HandoffPolicy {
    /// Checks the section; errors as (key below `handoff`, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(t) = &self.target {
            if !HANDOFF_TARGETS.contains(&t.as_str()) {
                return Err(("target".into(), format!("unknown target `{t}` (one of {})", HANDOFF_TARGETS.join(", "))));
            }
        }
        if let Some(r) = &self.redact {
            if !HANDOFF_REDACT.contains(&r.as_str()) {
                return Err(("redact".into(), format!("unknown redaction `{r}` (one of {})", HANDOFF_REDACT.join(", "))));
            }
        }
        for u in self.allowed_urls.iter().chain(self.url.iter()) {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                return Err(("allowed_urls".into(), format!("`{u}` is not an http:// or https:// URL")));
            }
        }
        if let Some(u) = &self.url {
            if !self.allowed_urls.iter().any(|a| a == u) {
                return Err(("url".into(), format!("`{u}` is not on handoff.allowed_urls")));
            }
        }
        if self.timeout_ms == Some(0) {
            return Err(("timeout_ms".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether a handoff may be posted to `url` (exactly one of `allowed_urls`).
    pub fn url_allowed(&self, url: &str) -> bool {
        self.allowed_urls.iter().any(|a| a == url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_target_redaction_and_the_url_list() {
        assert!(HandoffPolicy::default().check().is_ok());
        let bad = HandoffPolicy { target: Some("fax".into()), ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "target");
        let off_list = HandoffPolicy { url: Some("http://127.0.0.1:9/t".into()), ..Default::default() };
        assert_eq!(off_list.check().unwrap_err().0, "url");
        let ok = HandoffPolicy { url: Some("http://127.0.0.1:9/t".into()), allowed_urls: vec!["http://127.0.0.1:9/t".into()], ..Default::default() };
        assert!(ok.check().is_ok() && ok.url_allowed("http://127.0.0.1:9/t") && !ok.url_allowed("http://127.0.0.1:9/x"));
        let ftp = HandoffPolicy { allowed_urls: vec!["ftp://x/y/z".into()], ..Default::default() };
        assert_eq!(ftp.check().unwrap_err().0, "allowed_urls");
    }
}
