//! `[handoff]` of `assistant.toml` (the workspace's own target and the CSAT
//! timing) and the target in force once the admin policy's `[handoff]` is
//! laid over it.
//!
//! Owns: the knobs and how the two layers combine. Never: delivery.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tresor_guard::policy::HandoffPolicy;
use tresor_guard::redact::Setting;

use crate::error::{AssistantError, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffConfig {
    /// none | folder | eml | http (the admin policy's `[handoff] target` wins).
    pub target: String,
    /// folder / eml: where tickets go; relative paths are under the data dir. Default `handoff/tickets`.
    pub dir: Option<PathBuf>,
    /// http: the endpoint; it must be on the admin policy's `[handoff] allowed_urls`.
    pub url: Option<String>,
    pub mail_to: String,
    pub mail_from: String,
    pub timeout_ms: u64,
    /// Tries after the first one before the ticket waits in the outbox.
    pub retries: u32,
    /// mask | pseudonym | drop (only the admin policy may say `off`).
    pub redact: String,
    /// Offer a handoff after this many refusals in one conversation (0: never).
    pub offer_after_refusals: u32,
    /// A conversation idle this long has ended (CSAT is asked); 0: never by time.
    pub idle_timeout_secs: u64,
    /// Ask for a 1-5 rating at the end of a conversation.
    pub ask_csat: bool,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        HandoffConfig {
            target: "folder".into(),
            dir: None,
            url: None,
            mail_to: "support@localhost".into(),
            mail_from: "tresor@localhost".into(),
            timeout_ms: 5000,
            retries: 2,
            redact: "mask".into(),
            offer_after_refusals: 2,
            idle_timeout_secs: 900,
            ask_csat: true,
        }
    }
}

/// Where a ticket goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Kept in the local outbox only: nobody is notified.
    None,
    /// One `TICKET.json` + one `TICKET.md` per ticket.
    Folder(PathBuf),
    /// One `TICKET.eml` (RFC 5322) per ticket.
    Eml { dir: PathBuf, to: String, from: String },
    /// POST the ticket JSON.
    Http { url: String, timeout_ms: u64, retries: u32 },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::None => "none",
            Target::Folder(_) => "folder",
            Target::Eml { .. } => "eml",
            Target::Http { .. } => "http",
        }
    }
}

/// The settings in force: the admin policy's fields over assistant.toml's.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub target: Target,
    pub redact: Setting,
}

impl HandoffConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if !tresor_guard::policy::HANDOFF_TARGETS.contains(&self.target.as_str()) {
            return Err(format!("handoff.target: unknown target `{}` (one of none, folder, eml, http)", self.target));
        }
        if !["mask", "pseudonym", "drop"].contains(&self.redact.as_str()) {
            return Err(format!("handoff.redact: `{}` (one of mask, pseudonym, drop; only the admin policy may turn it off)", self.redact));
        }
        if self.timeout_ms == 0 {
            return Err("handoff.timeout_ms must be at least 1".into());
        }
        Ok(())
    }

    /// The target in force for `data_dir`: `policy`'s fields where set, else these; an HTTP
    /// URL must be on the policy's `allowed_urls` (a clear error otherwise).
    pub fn resolve(&self, policy: &HandoffPolicy, data_dir: &Path) -> Result<Resolved> {
        let kind = policy.target.clone().unwrap_or_else(|| self.target.clone());
        let dir = policy.dir.clone().or_else(|| self.dir.clone()).unwrap_or_else(|| PathBuf::from("handoff/tickets"));
        let dir = if dir.is_absolute() { dir } else { data_dir.join(dir) };
        let target = match kind.as_str() {
            "none" => Target::None,
            "folder" => Target::Folder(dir),
            "eml" => Target::Eml {
                dir,
                to: policy.mail_to.clone().unwrap_or_else(|| self.mail_to.clone()),
                from: policy.mail_from.clone().unwrap_or_else(|| self.mail_from.clone()),
            },
            "http" => {
                let url = policy.url.clone().or_else(|| self.url.clone()).ok_or_else(|| {
                    AssistantError::Invalid("handoff target `http` needs a url ([handoff] url in assistant.toml or the admin policy)".into())
                })?;
                if !policy.url_allowed(&url) {
                    return Err(AssistantError::Invalid(format!(
                        "handoff url {url} is not on the admin policy's [handoff] allowed_urls; a handoff is only posted to an endpoint the admin listed"
                    )));
                }
                Target::Http {
                    url,
                    timeout_ms: policy.timeout_ms.unwrap_or(self.timeout_ms),
                    retries: policy.retries.unwrap_or(self.retries),
                }
            }
            other => return Err(AssistantError::Invalid(format!("unknown handoff target `{other}`"))),
        };
        let redact = match policy.redact.as_deref().unwrap_or(&self.redact) {
            "off" => Setting::Off,
            "pseudonym" => Setting::Pseudonym,
            "drop" => Setting::Drop,
            _ => Setting::Mask,
        };
        Ok(Resolved { target, redact })
    }
}
