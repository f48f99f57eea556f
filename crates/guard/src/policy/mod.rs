//! The admin policy: what the assistant refuses (topics), what it must add
//! (disclaimers), what it must never say (blocked terms, price promises),
//! which tools it may call, how long and in which languages it answers, and
//! what the injection firewall does on a detection.
//!
//! Owns: the policy in force ([`Policy`], its [`Topic`]s and actions) and the
//! curated names of its parts: [`load`] (parsing `policy.toml`, layering
//! built-in defaults ← admin policy ← the user's policy, locks, errors that
//! name file, line and key), [`sign`] (ed25519 signatures and admin keys),
//! [`topics`] (topic detection over embeddings the caller passes in),
//! [`output`] (the sentence-level output check, [`PolicyOutputCheck`]) and
//! [`tools`] (which tools may run, which need confirmation, the MCP servers),
//! [`remote`] (which remote inference backends prompts may go to).
//! Never: loads a model, reads a knowledge base, or records user text — a
//! [`PolicyDecision`] holds topic names, scores and counts only.
//! The built-in defaults are `assets/policy.example.toml`, compiled in.

pub mod handoff;
pub mod load;
pub mod output;
pub mod remote;
pub mod sign;
pub mod tools;
pub mod topics;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::injection::InjectionAction;
pub use handoff::{HandoffPolicy, HANDOFF_REDACT, HANDOFF_TARGETS};
pub use load::{PolicyPaths, SYSTEM_ADMIN_KEYS, SYSTEM_POLICY};
pub use remote::{RemotePolicy, RemoteRefusal};
pub use output::{is_price_promise, states_money, PolicyDecision, PolicyOutputCheck};
pub use sign::{keygen, load_public_keys, read_public_key, read_signing_key, sig_path, sign, verify_signature, write_private};
pub use tools::{McpServerConfig, McpTransport, DEFAULT_MCP_TIMEOUT_MS};
pub use topics::{contains_term, cosine, TopicHit, TopicIndex};

/// The shipped defaults (also the annotated example an admin copies).
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../../assets/policy.example.toml");

/// Items a policy can lock (`topics.NAME` too, and `*` for all).
pub const ITEMS: &[&str] = &["detection", "topics", "disclaimer", "blocked_terms", "price_promises", "tools", "answer", "languages", "injection", "remote"];

const LANGS: &[&str] = &["de", "en"];

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A malformed or disallowed entry: `FILE:LINE: key `K`: message`.
    #[error("{}:{line}: key `{key}`: {message}", path.display())]
    Invalid { path: PathBuf, line: usize, key: String, message: String },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: signature does not verify: {reason}", path.display())]
    Signature { path: PathBuf, reason: String },
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
}

type Result<T, E = PolicyError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicAction {
    /// Refuse the question, saying why.
    Refuse,
    /// Answer, with the topic's disclaimer appended.
    Disclaimer,
}

impl fmt::Display for TopicAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicAction::Refuse => "refuse",
            TopicAction::Disclaimer => "disclaimer",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockAction {
    /// Drop the answer sentence that holds a blocked term.
    Remove,
    /// Replace the term with `[…]`.
    Mask,
}

/// A text in German and English.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Localised {
    pub de: String,
    pub en: String,
}

impl Localised {
    /// The text for `lang` ("de" or anything else: English), falling back to the other language.
    pub fn get(&self, lang: &str) -> &str {
        let (a, b) = if lang == "de" { (&self.de, &self.en) } else { (&self.en, &self.de) };
        if a.is_empty() {
            b
        } else {
            a
        }
    }
    pub fn is_empty(&self) -> bool {
        self.de.is_empty() && self.en.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    pub name: String,
    pub enabled: bool,
    pub action: TopicAction,
    pub title: Localised,
    pub reason: Localised,
    pub disclaimer: Localised,
    /// Example prompts (German and English) the question is compared with.
    pub examples_de: Vec<String>,
    pub examples_en: Vec<String>,
    pub keywords: Vec<String>,
    /// Overrides `[detection].threshold` for this topic.
    pub threshold: Option<f32>,
    /// Not enforced while this tool is allowed.
    pub unless_tool: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub detection_threshold: f32,
    pub topics: Vec<Topic>,
    /// Appended to every answer that is not a refusal.
    pub disclaimer: Localised,
    pub blocked_terms: Vec<String>,
    pub blocked_action: BlockAction,
    pub price_promises: bool,
    pub price_unless_tool: Option<String>,
    pub price_words: Vec<String>,
    /// `[tools] allowed`: `None` (absent) = every built-in tool, `Some([])` = none.
    /// Ask [`Policy::tool_allowed`] rather than reading it.
    pub allowed_tools: Option<Vec<String>>,
    /// `[tools] denied`: built-in names, `SERVER.tool`, `SERVER.*`.
    pub denied_tools: Vec<String>,
    /// `[tools] confirm`: tools that need confirmation besides those with side effects.
    pub confirm_tools: Vec<String>,
    /// `[mcp.servers.NAME]` (admin policy only).
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    /// `[handoff]` (admin policy only): the handoff target and the HTTP endpoints it may use.
    pub handoff: HandoffPolicy,
    /// `[remote]`: the remote inference backends allowed (admin) or forbidden (admin or workspace).
    pub remote: RemotePolicy,
    pub max_answer_chars: usize,
    pub allowed_languages: Vec<String>,
    pub injection_action: InjectionAction,
    /// Items the admin policy locked.
    pub locked: BTreeSet<String>,
    /// Which layer last set each item: "built-in" or a file path.
    pub origin: BTreeMap<String, String>,
    /// The files that were read, in order.
    pub files: Vec<PolicyFile>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyFile {
    pub path: PathBuf,
    /// "admin" or "user".
    pub role: String,
    /// The admin key (file name) whose signature verified, when signed.
    pub signed_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    BuiltIn,
    Admin,
    User,
}

impl Layer {
    fn as_str(self) -> &'static str {
        match self {
            Layer::BuiltIn => "built-in",
            Layer::Admin => "admin",
            Layer::User => "user",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::builtin()
    }
}

impl Policy {
    /// The compiled-in defaults.
    pub fn builtin() -> Policy {
        let mut p = Policy::empty();
        p.apply_toml(DEFAULT_POLICY_TOML, Path::new("<built-in policy>"), Layer::BuiltIn)
            .expect("the built-in policy (assets/policy.example.toml) is valid");
        p.files.clear();
        p
    }

    fn empty() -> Policy {
        Policy {
            detection_threshold: 0.6,
            topics: Vec::new(),
            disclaimer: Localised::default(),
            blocked_terms: Vec::new(),
            blocked_action: BlockAction::Remove,
            price_promises: false,
            price_unless_tool: None,
            price_words: Vec::new(),
            allowed_tools: None,
            denied_tools: Vec::new(),
            confirm_tools: Vec::new(),
            mcp_servers: BTreeMap::new(),
            handoff: HandoffPolicy::default(),
            remote: RemotePolicy::default(),
            max_answer_chars: 2000,
            allowed_languages: LANGS.iter().map(|s| s.to_string()).collect(),
            injection_action: InjectionAction::Quarantine,
            locked: BTreeSet::new(),
            origin: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// Validates `text` as a policy file on its own (as `tresor policy check` does), over the defaults.
    pub fn check_text(text: &str, path: &Path, layer: Layer) -> Result<Policy> {
        let mut p = Policy::builtin();
        p.apply_toml(text, path, layer)?;
        Ok(p)
    }

    pub fn is_locked(&self, item: &str) -> bool {
        self.locked.contains("*")
            || self.locked.contains(item)
            || (item.starts_with("topics.") && self.locked.contains("topics") && !self.topics.iter().any(|t| item == format!("topics.{}", t.name)))
    }

    /// The topic that is enforced (enabled, its tool not allowed).
    pub fn active_topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.iter().filter(|t| t.enabled && !self.lifted(&t.unless_tool))
    }

    /// A check with `unless_tool` is lifted while that tool is allowed.
    pub fn lifted(&self, unless_tool: &Option<String>) -> bool {
        unless_tool.as_ref().is_some_and(|tool| self.tool_allowed(tool))
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })
}
