//! The admin policy: what the assistant refuses (topics), what it must add
//! (disclaimers), what it must never say (blocked terms, price promises),
//! which tools it may call, how long and in which languages it answers, and
//! what the injection firewall does on a detection.
//!
//! Owns: parsing `policy.toml` (unknown keys are errors; every error names the
//! file, line and key), layering built-in defaults ← admin policy (system-wide,
//! may lock items, may be ed25519-signed) ← the user's policy (only unlocked
//! items), signatures and admin keys, topic detection (keywords plus embedding
//! similarity to example prompts, with embeddings the caller passes in) and
//! the sentence-level output checks ([`OutputGuard`]).
//! Never: loads a model, reads a knowledge base, or records user text — a
//! [`PolicyDecision`] holds topic names, scores and counts only.
//! The built-in defaults are `assets/policy.example.toml`, compiled in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The shipped defaults (also the annotated example an admin copies).
pub const DEFAULT_POLICY_TOML: &str = include_str!("../../../assets/policy.example.toml");

/// Items a policy can lock (`topics.NAME` too, and `*` for all).
pub const ITEMS: &[&str] = &["detection", "topics", "disclaimer", "blocked_terms", "price_promises", "tools", "answer", "languages", "injection"];

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

// ---------------------------------------------------------------- the file

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    locked: Option<Vec<String>>,
    detection: Option<RawDetection>,
    topics: Option<BTreeMap<String, RawTopic>>,
    disclaimer: Option<RawDisclaimer>,
    blocked_terms: Option<RawBlocked>,
    price_promises: Option<RawPrice>,
    tools: Option<RawTools>,
    answer: Option<RawAnswer>,
    languages: Option<RawLanguages>,
    injection: Option<RawInjection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetection {
    threshold: Option<f32>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    enabled: Option<bool>,
    action: Option<TopicAction>,
    title: Option<RawText>,
    reason: Option<RawText>,
    disclaimer: Option<RawText>,
    examples: Option<RawExamples>,
    keywords: Option<Vec<String>>,
    threshold: Option<f32>,
    unless_tool: Option<String>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawText {
    de: Option<String>,
    en: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExamples {
    de: Option<Vec<String>>,
    en: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisclaimer {
    de: Option<String>,
    en: Option<String>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlocked {
    terms: Option<Vec<String>>,
    action: Option<BlockAction>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    enabled: Option<bool>,
    unless_tool: Option<String>,
    words: Option<Vec<String>>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTools {
    allowed: Option<Vec<String>>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    max_chars: Option<usize>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguages {
    allowed: Option<Vec<String>>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInjection {
    action: Option<InjectionAction>,
    locked: Option<bool>,
}

// ---------------------------------------------------------------- the policy in force

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopicAction {
    /// Refuse the question, saying why.
    Refuse,
    /// Answer, with the topic's disclaimer appended.
    Disclaimer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockAction {
    /// Drop the answer sentence that holds a blocked term.
    Remove,
    /// Replace the term with `[…]`.
    Mask,
}

/// What the injection firewall does on a detection (read by `injection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InjectionAction {
    Drop,
    Quarantine,
    Warn,
    Block,
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
    pub allowed_tools: Vec<String>,
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
            allowed_tools: Vec::new(),
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
        self.topics.iter().filter(|t| t.enabled && !t.unless_tool.as_ref().is_some_and(|tool| self.allowed_tools.contains(tool)))
    }

    fn price_check_active(&self) -> bool {
        self.price_promises && !self.price_unless_tool.as_ref().is_some_and(|tool| self.allowed_tools.contains(tool))
    }

    /// Layers one file over this policy. Errors name the file, line and key.
    pub fn apply_toml(&mut self, text: &str, path: &Path, layer: Layer) -> Result<()> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| toml_error(text, path, &e))?;
        let src = Src { text, path };
        let origin = if layer == Layer::BuiltIn { "built-in".to_string() } else { path.display().to_string() };

        // locks: the admin's (and the built-in file's, which has none) only
        let mut new_locks: Vec<(String, String)> = Vec::new(); // (item, key for errors)
        if let Some(list) = &raw.locked {
            if layer == Layer::User {
                return Err(src.err("locked", "only the admin policy can lock items"));
            }
            for item in list {
                let known = item == "*" || ITEMS.contains(&item.as_str()) || item.strip_prefix("topics.").is_some_and(|n| !n.is_empty());
                if !known {
                    return Err(src.err("locked", &format!("unknown item `{item}` (one of {}, topics.NAME or \"*\")", ITEMS.join(", "))));
                }
                new_locks.push((item.clone(), "locked".into()));
            }
        }
        let mut section_lock = |item: &str, locked: Option<bool>| -> Result<()> {
            if locked == Some(true) {
                if layer == Layer::User {
                    return Err(src.err(&format!("{item}.locked"), "only the admin policy can lock items"));
                }
                new_locks.push((item.to_string(), format!("{item}.locked")));
            }
            Ok(())
        };
        section_lock("detection", raw.detection.as_ref().and_then(|s| s.locked))?;
        section_lock("disclaimer", raw.disclaimer.as_ref().and_then(|s| s.locked))?;
        section_lock("blocked_terms", raw.blocked_terms.as_ref().and_then(|s| s.locked))?;
        section_lock("price_promises", raw.price_promises.as_ref().and_then(|s| s.locked))?;
        section_lock("tools", raw.tools.as_ref().and_then(|s| s.locked))?;
        section_lock("answer", raw.answer.as_ref().and_then(|s| s.locked))?;
        section_lock("languages", raw.languages.as_ref().and_then(|s| s.locked))?;
        section_lock("injection", raw.injection.as_ref().and_then(|s| s.locked))?;
        for (name, t) in raw.topics.iter().flatten() {
            section_lock(&format!("topics.{name}"), t.locked)?;
        }

        // a user's file may only touch unlocked items
        let touch = |p: &mut Policy, item: &str| -> Result<()> {
            if layer == Layer::User && p.is_locked(item) {
                return Err(src.err(item, "this item is locked by the admin policy and cannot be changed"));
            }
            p.origin.insert(item.to_string(), origin.clone());
            Ok(())
        };

        if let Some(d) = &raw.detection {
            if d.threshold.is_some() {
                touch(self, "detection")?;
            }
            if let Some(t) = d.threshold {
                if !(0.0..=1.0).contains(&t) {
                    return Err(src.err("detection.threshold", &format!("must be between 0 and 1 (got {t})")));
                }
                self.detection_threshold = t;
            }
        }
        for (name, rt) in raw.topics.iter().flatten() {
            let item = format!("topics.{name}");
            if !valid_name(name) {
                return Err(src.err(&item, "topic names use letters, digits and _"));
            }
            let exists = self.topics.iter().any(|t| &t.name == name);
            if !exists && layer == Layer::User && self.is_locked("topics") {
                return Err(src.err(&item, "the admin policy locked the list of topics; no new topics can be added"));
            }
            let only_lock = rt.locked.is_some()
                && rt.enabled.is_none()
                && rt.action.is_none()
                && rt.title.is_none()
                && rt.reason.is_none()
                && rt.disclaimer.is_none()
                && rt.examples.is_none()
                && rt.keywords.is_none()
                && rt.threshold.is_none()
                && rt.unless_tool.is_none();
            if !only_lock {
                touch(self, &item)?;
            }
            let idx = match self.topics.iter().position(|t| &t.name == name) {
                Some(i) => i,
                None => {
                    self.topics.push(Topic {
                        name: name.clone(),
                        enabled: true,
                        action: TopicAction::Refuse,
                        title: Localised { de: name.replace('_', " "), en: name.replace('_', " ") },
                        reason: Localised::default(),
                        disclaimer: Localised::default(),
                        examples_de: Vec::new(),
                        examples_en: Vec::new(),
                        keywords: Vec::new(),
                        threshold: None,
                        unless_tool: None,
                    });
                    self.topics.len() - 1
                }
            };
            let t = &mut self.topics[idx];
            if let Some(v) = rt.enabled {
                t.enabled = v;
            }
            if let Some(v) = rt.action {
                t.action = v;
            }
            merge_text(&mut t.title, &rt.title);
            merge_text(&mut t.reason, &rt.reason);
            merge_text(&mut t.disclaimer, &rt.disclaimer);
            if let Some(ex) = &rt.examples {
                if let Some(v) = &ex.de {
                    t.examples_de = clean_list(v);
                }
                if let Some(v) = &ex.en {
                    t.examples_en = clean_list(v);
                }
            }
            if let Some(k) = &rt.keywords {
                t.keywords = clean_list(k).into_iter().map(|s| s.to_lowercase()).collect();
            }
            if let Some(th) = rt.threshold {
                if !(0.0..=1.0).contains(&th) {
                    return Err(src.err(&format!("{item}.threshold"), &format!("must be between 0 and 1 (got {th})")));
                }
                t.threshold = Some(th);
            }
            if let Some(tool) = &rt.unless_tool {
                t.unless_tool = (!tool.trim().is_empty()).then(|| tool.trim().to_string());
            }
            if t.reason.de.trim().is_empty() || t.reason.en.trim().is_empty() {
                return Err(src.err(&format!("{item}.reason"), "a topic needs a reason in German and English (reason.de, reason.en)"));
            }
            if t.action == TopicAction::Disclaimer && t.disclaimer.is_empty() {
                return Err(src.err(&format!("{item}.disclaimer"), "action = \"disclaimer\" needs disclaimer.de / disclaimer.en"));
            }
            if t.enabled && t.examples_de.is_empty() && t.examples_en.is_empty() && t.keywords.is_empty() {
                return Err(src.err(&item, "a topic needs example prompts (examples.de / examples.en) or keywords"));
            }
        }
        if let Some(d) = &raw.disclaimer {
            if d.de.is_some() || d.en.is_some() {
                touch(self, "disclaimer")?;
            }
            if let Some(v) = &d.de {
                self.disclaimer.de = v.trim().to_string();
            }
            if let Some(v) = &d.en {
                self.disclaimer.en = v.trim().to_string();
            }
        }
        if let Some(b) = &raw.blocked_terms {
            if b.terms.is_some() || b.action.is_some() {
                touch(self, "blocked_terms")?;
            }
            if let Some(t) = &b.terms {
                self.blocked_terms = clean_list(t).into_iter().map(|s| s.to_lowercase()).collect();
            }
            if let Some(a) = b.action {
                self.blocked_action = a;
            }
        }
        if let Some(pp) = &raw.price_promises {
            if pp.enabled.is_some() || pp.unless_tool.is_some() || pp.words.is_some() {
                touch(self, "price_promises")?;
            }
            if let Some(v) = pp.enabled {
                self.price_promises = v;
            }
            if let Some(v) = &pp.unless_tool {
                self.price_unless_tool = (!v.trim().is_empty()).then(|| v.trim().to_string());
            }
            if let Some(v) = &pp.words {
                self.price_words = clean_list(v).into_iter().map(|s| s.to_lowercase()).collect();
            }
        }
        if let Some(t) = &raw.tools {
            if let Some(v) = &t.allowed {
                touch(self, "tools")?;
                self.allowed_tools = clean_list(v);
            }
        }
        if let Some(a) = &raw.answer {
            if let Some(n) = a.max_chars {
                touch(self, "answer")?;
                if n < 20 {
                    return Err(src.err("answer.max_chars", &format!("must be at least 20 (got {n})")));
                }
                self.max_answer_chars = n;
            }
        }
        if let Some(l) = &raw.languages {
            if let Some(v) = &l.allowed {
                touch(self, "languages")?;
                let v = clean_list(v).into_iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
                if v.is_empty() {
                    return Err(src.err("languages.allowed", "at least one language (de, en)"));
                }
                if let Some(bad) = v.iter().find(|l| !LANGS.contains(&l.as_str())) {
                    return Err(src.err("languages.allowed", &format!("unknown language `{bad}` (Tresor knows de, en)")));
                }
                self.allowed_languages = v;
            }
        }
        if let Some(i) = &raw.injection {
            if let Some(a) = i.action {
                touch(self, "injection")?;
                self.injection_action = a;
            }
        }
        for (item, _) in new_locks {
            if item.starts_with("topics.") && item != "topics.*" && !self.topics.iter().any(|t| format!("topics.{}", t.name) == item) {
                return Err(src.err("locked", &format!("`{item}` names no topic")));
            }
            self.locked.insert(item);
        }
        if layer != Layer::BuiltIn {
            self.files.push(PolicyFile { path: path.to_path_buf(), role: layer.as_str().into(), signed_by: None });
        }
        Ok(())
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn clean_list(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn merge_text(into: &mut Localised, raw: &Option<RawText>) {
    if let Some(r) = raw {
        if let Some(v) = &r.de {
            into.de = v.trim().to_string();
        }
        if let Some(v) = &r.en {
            into.en = v.trim().to_string();
        }
    }
}

// ---------------------------------------------------------------- error locations

struct Src<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Src<'_> {
    /// An error about `key` (a dotted path), located at the line that sets it.
    fn err(&self, key: &str, message: &str) -> PolicyError {
        PolicyError::Invalid { path: self.path.to_path_buf(), line: line_of_key(self.text, key), key: key.to_string(), message: message.to_string() }
    }
}

/// The 1-based line of `key` (dotted path): the line that assigns it inside
/// its table, else the table's header, else the parent's; 1 when not found.
pub fn line_of_key(text: &str, key: &str) -> usize {
    let parts: Vec<&str> = key.split('.').collect();
    for n in (1..=parts.len()).rev() {
        let (table, rest) = parts.split_at(n);
        let table = table.join(".");
        let _ = rest;
        // as a header
        for (i, line) in text.lines().enumerate() {
            if header_of(line).as_deref() == Some(table.as_str()) {
                return i + 1;
            }
        }
        // as a key (possibly dotted) inside its table
        let mut current = String::new();
        for (i, line) in text.lines().enumerate() {
            if let Some(h) = header_of(line) {
                current = h;
                continue;
            }
            if let Some(k) = assigned_key(line) {
                let full = if current.is_empty() { k } else { format!("{current}.{k}") };
                if full == table || full.starts_with(&format!("{table}.")) {
                    return i + 1;
                }
            }
        }
    }
    1
}

fn header_of(line: &str) -> Option<String> {
    let l = line.trim();
    let inner = l.strip_prefix("[[").and_then(|r| r.split("]]").next()).or_else(|| l.strip_prefix('[').and_then(|r| r.split(']').next()))?;
    Some(inner.split('.').map(|p| p.trim().trim_matches('"')).collect::<Vec<_>>().join("."))
}

fn assigned_key(line: &str) -> Option<String> {
    let l = line.trim();
    if l.starts_with('#') || l.starts_with('[') {
        return None;
    }
    let (k, _) = l.split_once('=')?;
    let k = k.trim();
    if k.is_empty() || k.contains(' ') && !k.contains('"') {
        return None;
    }
    Some(k.split('.').map(|p| p.trim().trim_matches('"')).collect::<Vec<_>>().join("."))
}

/// The dotted key that is set on the line holding byte `offset`.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut current = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        if let Some(h) = header_of(line) {
            current = h;
            if offset < end {
                return current;
            }
        } else if offset < end {
            // the key may be on an earlier line for a multi-line array: walk back
            let before = &text[..end];
            for l in before.lines().rev() {
                if header_of(l).is_some() {
                    break;
                }
                if let Some(k) = assigned_key(l) {
                    return if current.is_empty() { k } else { format!("{current}.{k}") };
                }
            }
            return current;
        }
        start = end;
    }
    current
}

fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> PolicyError {
    let msg = e.message().trim().to_string();
    let (line, mut key) = match e.span() {
        Some(span) => (text[..span.start.min(text.len())].matches('\n').count() + 1, key_at(text, span.start)),
        None => (1, String::new()),
    };
    // serde names the offending field in "unknown field `x`"
    if let Some(f) = msg.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        if !key.ends_with(f) {
            key = if key.is_empty() { f.to_string() } else { format!("{key}.{f}") };
        }
    }
    if key.is_empty() {
        key = "(file)".into();
    }
    PolicyError::Invalid { path: path.to_path_buf(), line, key, message: msg }
}

// ---------------------------------------------------------------- loading, signatures, keys

/// Where the policy layers and the trusted admin keys are.
#[derive(Debug, Clone, Default)]
pub struct PolicyPaths {
    /// The admin policy: `TRESOR_POLICY`, else /etc/tresor/policy.toml when it exists.
    pub admin: Option<PathBuf>,
    /// The user's policy: `<data_dir>/policy.toml` when it exists.
    pub user: Option<PathBuf>,
    /// Trusted admin public keys (`*.pub`): `TRESOR_ADMIN_KEYS`, else /etc/tresor/admin-keys/.
    pub admin_keys: Option<PathBuf>,
}

pub const SYSTEM_POLICY: &str = "/etc/tresor/policy.toml";
pub const SYSTEM_ADMIN_KEYS: &str = "/etc/tresor/admin-keys";

impl PolicyPaths {
    pub fn for_data_dir(data_dir: &Path) -> PolicyPaths {
        let admin = match std::env::var_os("TRESOR_POLICY") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => Some(PathBuf::from(SYSTEM_POLICY)).filter(|p| p.exists()),
        };
        let admin_keys = match std::env::var_os("TRESOR_ADMIN_KEYS") {
            Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
            _ => Some(PathBuf::from(SYSTEM_ADMIN_KEYS)).filter(|p| p.is_dir()),
        };
        let user = Some(data_dir.join("policy.toml")).filter(|p| p.exists());
        PolicyPaths { admin, user, admin_keys }
    }

    /// The effective policy: defaults ← admin ← user. A signature that does
    /// not verify, an unsigned admin policy while admin keys are installed, or
    /// a user change to a locked item is an error.
    pub fn load(&self) -> Result<Policy> {
        let mut p = Policy::builtin();
        let keys = match &self.admin_keys {
            Some(dir) => load_public_keys(dir)?,
            None => Vec::new(),
        };
        if let Some(path) = &self.admin {
            let text = read(path)?;
            let signed_by = verify_signature(path, text.as_bytes(), &keys)?;
            if signed_by.is_none() && !keys.is_empty() {
                return Err(PolicyError::Signature {
                    path: path.clone(),
                    reason: format!(
                        "admin keys are installed ({}) but the policy has no signature file {}",
                        self.admin_keys.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
                        sig_path(path).display()
                    ),
                });
            }
            p.apply_toml(&text, path, Layer::Admin)?;
            if let Some(f) = p.files.last_mut() {
                f.signed_by = signed_by;
            }
        }
        if let Some(path) = &self.user {
            let text = read(path)?;
            let signed_by = verify_signature(path, text.as_bytes(), &keys)?;
            p.apply_toml(&text, path, Layer::User)?;
            if let Some(f) = p.files.last_mut() {
                f.signed_by = signed_by;
            }
        }
        Ok(p)
    }

    pub fn trusted_keys(&self) -> Result<Vec<(String, VerifyingKey)>> {
        match &self.admin_keys {
            Some(dir) => load_public_keys(dir),
            None => Ok(Vec::new()),
        }
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })
}

/// `policy.toml` → `policy.toml.sig`.
pub fn sig_path(policy: &Path) -> PathBuf {
    let mut s = policy.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Checks `FILE.sig` when it exists: Ok(Some(key name)) when a trusted key
/// verifies it, Ok(None) when there is no signature file, an error otherwise.
pub fn verify_signature(path: &Path, bytes: &[u8], keys: &[(String, VerifyingKey)]) -> Result<Option<String>> {
    let sp = sig_path(path);
    let sig_text = match std::fs::read_to_string(&sp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PolicyError::Io { path: sp, source }),
    };
    let bad = |reason: String| PolicyError::Signature { path: path.to_path_buf(), reason };
    let raw = b64().decode(sig_text.trim()).map_err(|e| bad(format!("{} is not base64: {e}", sp.display())))?;
    let sig = Signature::from_slice(&raw).map_err(|_| bad(format!("{} is not an ed25519 signature (64 bytes)", sp.display())))?;
    if keys.is_empty() {
        return Err(bad(format!(
            "the file is signed but no trusted admin keys are installed ({SYSTEM_ADMIN_KEYS}/*.pub or TRESOR_ADMIN_KEYS)"
        )));
    }
    for (name, k) in keys {
        if k.verify(bytes, &sig).is_ok() {
            return Ok(Some(name.clone()));
        }
    }
    Err(bad(format!("no trusted admin key ({}) verifies {}", keys.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "), sp.display())))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// `*.pub` files in `dir` (base64 of a 32-byte ed25519 public key), by file name.
pub fn load_public_keys(dir: &Path) -> Result<Vec<(String, VerifyingKey)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PolicyError::Io { path: dir.to_path_buf(), source }),
    };
    let mut keys = Vec::new();
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pub")).collect();
    paths.sort();
    for p in paths {
        let k = read_public_key(&p)?;
        keys.push((p.file_name().unwrap_or_default().to_string_lossy().into_owned(), k));
    }
    Ok(keys)
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let text = read(path)?;
    let raw = b64().decode(text.trim()).map_err(|e| PolicyError::Key { path: path.to_path_buf(), reason: format!("not base64: {e}") })?;
    let arr: [u8; 32] = raw.try_into().map_err(|_| PolicyError::Key { path: path.to_path_buf(), reason: "not a 32-byte ed25519 public key".into() })?;
    VerifyingKey::from_bytes(&arr).map_err(|e| PolicyError::Key { path: path.to_path_buf(), reason: e.to_string() })
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = read(path)?;
    let raw = b64().decode(text.trim()).map_err(|e| PolicyError::Key { path: path.to_path_buf(), reason: format!("not base64: {e}") })?;
    let arr: [u8; 32] =
        raw.try_into().map_err(|_| PolicyError::Key { path: path.to_path_buf(), reason: "not a 32-byte ed25519 private key (seed)".into() })?;
    Ok(SigningKey::from_bytes(&arr))
}

/// Writes `PREFIX.key` (private, mode 0600) and `PREFIX.pub`; refuses to overwrite.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf)> {
    let key_path = prefix.with_extension("key");
    let pub_path = prefix.with_extension("pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(PolicyError::Key { path: p.clone(), reason: "already exists (not overwritten)".into() });
        }
    }
    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PolicyError::Io { path: dir.to_path_buf(), source })?;
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let sk = SigningKey::from_bytes(&seed);
    write_private(&key_path, format!("{}\n", b64().encode(seed)).as_bytes())?;
    std::fs::write(&pub_path, format!("{}\n", b64().encode(sk.verifying_key().to_bytes())))
        .map_err(|source| PolicyError::Io { path: pub_path.clone(), source })?;
    Ok((key_path, pub_path))
}

/// Creates `path` with mode 0600 (on Unix) and writes `bytes`.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })
}

/// Signs the policy file's exact bytes into `FILE.sig` (base64). Validates the policy first.
pub fn sign(policy: &Path, key: &Path) -> Result<PathBuf> {
    let text = read(policy)?;
    Policy::check_text(&text, policy, Layer::Admin)?;
    let sk = read_signing_key(key)?;
    let sig = sk.sign(text.as_bytes());
    let sp = sig_path(policy);
    std::fs::write(&sp, format!("{}\n", b64().encode(sig.to_bytes()))).map_err(|source| PolicyError::Io { path: sp.clone(), source })?;
    Ok(sp)
}

// ---------------------------------------------------------------- topic detection

/// The example prompts' embeddings, built once per policy with the caller's embedder.
#[derive(Debug, Clone, Default)]
pub struct TopicIndex {
    /// (topic index in `Policy::topics`, embedding)
    examples: Vec<(usize, Vec<f32>)>,
}

impl TopicIndex {
    pub fn len(&self) -> usize {
        self.examples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
    /// The example embeddings in [`Policy::index`] order (for a cache).
    pub fn vectors(&self) -> Vec<&[f32]> {
        self.examples.iter().map(|(_, v)| v.as_slice()).collect()
    }
}

/// A question matched a topic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicHit {
    pub topic: String,
    pub action: TopicAction,
    /// "keyword" or "similarity".
    pub via: String,
    /// Highest cosine similarity to one of the topic's examples (1.0 for a keyword).
    pub score: f32,
}

impl Policy {
    /// Embeds every enabled topic's examples (in batches) with `embed`.
    pub fn index<E>(&self, mut embed: impl FnMut(&[&str]) -> std::result::Result<Vec<Vec<f32>>, E>) -> std::result::Result<TopicIndex, E> {
        let mut texts: Vec<(usize, &str)> = Vec::new();
        for (i, t) in self.topics.iter().enumerate().filter(|(_, t)| t.enabled) {
            texts.extend(t.examples_de.iter().chain(&t.examples_en).map(|e| (i, e.as_str())));
        }
        let mut examples = Vec::with_capacity(texts.len());
        for batch in texts.chunks(16) {
            let strs: Vec<&str> = batch.iter().map(|(_, s)| *s).collect();
            let vecs = embed(&strs)?;
            examples.extend(batch.iter().map(|(i, _)| *i).zip(vecs));
        }
        Ok(TopicIndex { examples })
    }

    /// Every active topic the question matches, best first: a keyword match
    /// (score 1.0) or cosine similarity to one of its examples at or above the
    /// threshold. `qvec` is the question's embedding (same embedder as the index).
    pub fn detect_topics(&self, index: &TopicIndex, question: &str, qvec: Option<&[f32]>) -> (Vec<TopicHit>, Option<(String, f32)>) {
        let lower = question.to_lowercase();
        let mut best_sim: Vec<f32> = vec![f32::MIN; self.topics.len()];
        if let Some(q) = qvec {
            for (ti, e) in &index.examples {
                let s = cosine(q, e);
                if s > best_sim[*ti] {
                    best_sim[*ti] = s;
                }
            }
        }
        let active: Vec<&str> = self.active_topics().map(|t| t.name.as_str()).collect();
        let mut hits = Vec::new();
        let mut nearest: Option<(String, f32)> = None;
        for (i, t) in self.topics.iter().enumerate() {
            if !active.contains(&t.name.as_str()) {
                continue;
            }
            if best_sim[i] > f32::MIN && nearest.as_ref().is_none_or(|(_, s)| best_sim[i] > *s) {
                nearest = Some((t.name.clone(), best_sim[i]));
            }
            if t.keywords.iter().any(|k| contains_term(&lower, k)) {
                hits.push(TopicHit { topic: t.name.clone(), action: t.action, via: "keyword".into(), score: 1.0 });
            } else if best_sim[i] >= t.threshold.unwrap_or(self.detection_threshold) {
                hits.push(TopicHit { topic: t.name.clone(), action: t.action, via: "similarity".into(), score: best_sim[i] });
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        (hits, nearest)
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// The localised refusal for a refused topic: names the topic and says why.
    pub fn refusal(&self, topic: &str, lang: &str) -> String {
        let t = self.topic(topic);
        let title = t.map(|t| t.title.get(lang).to_string()).unwrap_or_else(|| topic.to_string());
        let reason = t.map(|t| t.reason.get(lang).to_string()).unwrap_or_default();
        if lang == "de" {
            format!("Diese Frage beantworte ich nicht – sie fällt unter „{title}“, und die Richtlinie schließt das aus: {reason}")
        } else {
            format!("I can't answer this question – it falls under \"{title}\", which the policy excludes: {reason}")
        }
    }

    /// A question in a language the policy does not allow.
    pub fn language_refusal(&self, lang: &str) -> String {
        let allowed = self.allowed_languages.join(", ");
        if lang == "de" {
            format!("Diese Sprache ist laut Richtlinie nicht erlaubt (erlaubt: {allowed}).")
        } else {
            format!("The policy does not allow questions in this language (allowed: {allowed}).")
        }
    }

    /// A question that holds a blocked term.
    pub fn blocked_refusal(&self, lang: &str) -> String {
        if lang == "de" {
            "Diese Frage enthält einen Begriff, den die Richtlinie sperrt; ich beantworte sie nicht.".into()
        } else {
            "This question contains a term the policy blocks, so I won't answer it.".into()
        }
    }

    /// Every answer sentence was removed by the output checks.
    pub fn withheld(&self, lang: &str) -> String {
        if lang == "de" {
            "Die Antwort wurde zurückgehalten: sie verstieß gegen die Richtlinie (gesperrte Begriffe, Preiszusagen oder Sprache).".into()
        } else {
            "The answer was withheld: it broke the policy (blocked terms, price promises or language).".into()
        }
    }

    /// Whether the question holds a blocked term.
    pub fn has_blocked_term(&self, text: &str) -> bool {
        let lower = text.to_lowercase();
        self.blocked_terms.iter().any(|t| contains_term(&lower, t))
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut d, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        d / (na.sqrt() * nb.sqrt())
    }
}

/// `term` (lowercase; a trailing `*` matches any word ending) occurs in
/// `lower` on word boundaries.
pub fn contains_term(lower: &str, term: &str) -> bool {
    let (term, prefix) = match term.strip_suffix('*') {
        Some(t) => (t, true),
        None => (term, false),
    };
    if term.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(i) = lower[from..].find(term) {
        let s = from + i;
        let e = s + term.len();
        let before_ok = lower[..s].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after_ok = prefix || lower[e..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            return true;
        }
        from = s + lower[s..].chars().next().map(|c| c.len_utf8()).unwrap_or(1);
    }
    false
}

// ---------------------------------------------------------------- the decision and the output checks

/// What the policy did to one answer. Names and counts only, never user text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PolicyDecision {
    /// "allow", "refuse" or "modify".
    pub action: String,
    /// Why it refused: "topic", "language", "blocked_term" or "withheld".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The refused (or disclaimed) topic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The closest active topic by similarity and its score (for calibration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest: Option<(String, f32)>,
    /// Topics whose disclaimers were added ("global" for the policy's own).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disclaimers: Vec<String>,
    /// Answer sentences removed, by cause.
    #[serde(skip_serializing_if = "is_zero")]
    pub blocked_terms: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub price_promises: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub wrong_language: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl PolicyDecision {
    pub fn allow() -> Self {
        PolicyDecision { action: "allow".into(), ..Default::default() }
    }
    pub fn refuse(reason: &str) -> Self {
        PolicyDecision { action: "refuse".into(), reason: Some(reason.into()), ..Default::default() }
    }
    fn modified(&self) -> bool {
        self.blocked_terms + self.price_promises + self.wrong_language > 0 || self.truncated
    }
}

/// Sentence-level checks on a streamed answer: blocked terms, price
/// promises, language, length cap; disclaimers at the end. Feed it the
/// pieces as they stream ([`OutputGuard::push`]) and emit what it returns.
pub struct OutputGuard<'p> {
    policy: &'p Policy,
    lang: String,
    lang_of: Box<dyn Fn(&str) -> String + 'p>,
    buf: String,
    out: String,
    stopped: bool,
    seen_text: bool,
    pub decision: PolicyDecision,
    /// Topic disclaimers to add at the end.
    pub topic_disclaimers: Vec<String>,
}

impl<'p> OutputGuard<'p> {
    /// `lang`: the question's language; `lang_of`: a language detector ("de"/"en").
    pub fn new(policy: &'p Policy, lang: &str, lang_of: impl Fn(&str) -> String + 'p) -> Self {
        OutputGuard {
            policy,
            lang: lang.to_string(),
            lang_of: Box::new(lang_of),
            buf: String::new(),
            out: String::new(),
            stopped: false,
            seen_text: false,
            decision: PolicyDecision::allow(),
            topic_disclaimers: Vec::new(),
        }
    }

    /// The text emitted so far.
    pub fn text(&self) -> &str {
        &self.out
    }

    /// Takes a streamed piece; returns the text to emit now (whole sentences).
    pub fn push(&mut self, piece: &str) -> String {
        self.buf.push_str(piece);
        let mut emit = String::new();
        while let Some(end) = sentence_end(&self.buf) {
            let s: String = self.buf.drain(..end).collect();
            emit.push_str(&self.sentence(&s));
        }
        emit
    }

    /// Flushes the rest; `refused`: the answer is a refusal (no disclaimers).
    pub fn finish(&mut self, refused: bool) -> String {
        let rest = std::mem::take(&mut self.buf);
        let mut emit = self.sentence(&rest);
        if self.seen_text && self.out.trim().is_empty() {
            // the checks removed everything
            let w = self.policy.withheld(&self.lang);
            self.decision.action = "refuse".into();
            self.decision.reason = Some("withheld".into());
            self.out.push_str(&w);
            emit.push_str(&w);
            return emit;
        }
        if !refused && !self.out.trim().is_empty() {
            let mut add: Vec<(String, String)> = Vec::new();
            for name in &self.topic_disclaimers {
                if let Some(t) = self.policy.topic(name) {
                    add.push((name.clone(), t.disclaimer.get(&self.lang).to_string()));
                }
            }
            if !self.policy.disclaimer.is_empty() {
                add.push(("global".into(), self.policy.disclaimer.get(&self.lang).to_string()));
            }
            for (name, text) in add {
                if text.is_empty() || self.out.contains(&text) {
                    continue;
                }
                let piece = format!("\n\n{text}");
                self.out.push_str(&piece);
                emit.push_str(&piece);
                self.decision.disclaimers.push(name);
            }
        }
        if self.decision.action == "allow" && (self.decision.modified() || !self.decision.disclaimers.is_empty()) {
            self.decision.action = "modify".into();
        }
        emit
    }

    fn sentence(&mut self, s: &str) -> String {
        if self.stopped || s.is_empty() {
            return String::new();
        }
        if !s.trim().is_empty() {
            self.seen_text = true;
        }
        let p = self.policy;
        let lower = s.to_lowercase();
        let mut s = s.to_string();
        let hit_terms: Vec<&String> = p.blocked_terms.iter().filter(|t| contains_term(&lower, t)).collect();
        if !hit_terms.is_empty() {
            self.decision.blocked_terms += 1;
            match p.blocked_action {
                BlockAction::Remove => return String::new(),
                BlockAction::Mask => {
                    for t in hit_terms {
                        s = mask_term(&s, t);
                    }
                }
            }
        }
        if p.price_check_active() && is_price_promise(&lower, &p.price_words) {
            self.decision.price_promises += 1;
            return String::new();
        }
        if s.split_whitespace().filter(|w| w.chars().any(char::is_alphabetic)).count() >= 4 {
            let l = (self.lang_of)(&s);
            if !p.allowed_languages.iter().any(|a| *a == l) {
                self.decision.wrong_language += 1;
                return String::new();
            }
        }
        let have = self.out.chars().count();
        let len = s.chars().count();
        if have + len > p.max_answer_chars {
            let room = p.max_answer_chars.saturating_sub(have + 1);
            let mut cut: String = s.chars().take(room).collect();
            if let Some(i) = cut.rfind(char::is_whitespace) {
                cut.truncate(i);
            }
            let cut = if cut.trim().is_empty() { String::new() } else { format!("{}…", cut.trim_end()) };
            self.decision.truncated = true;
            self.stopped = true;
            self.out.push_str(&cut);
            return cut;
        }
        self.out.push_str(&s);
        s
    }
}

/// Byte index just past the first complete sentence in `buf`: a sentence
/// end (. ! ? or newline) followed by whitespace, or a citation `[n]`, then
/// whitespace.
fn sentence_end(buf: &str) -> Option<usize> {
    let b = buf.as_bytes();
    for i in 0..b.len() {
        let c = b[i];
        let ends = c == b'\n' || ((c == b'.' || c == b'!' || c == b'?' || c == b']') && i + 1 < b.len() && (b[i + 1] as char).is_ascii_whitespace());
        if ends {
            // keep "[n]" after a full stop with its sentence
            if c != b'\n' && c != b']' && buf[i + 1..].trim_start().starts_with('[') {
                continue;
            }
            return Some(i + 1);
        }
    }
    None
}

fn mask_term(s: &str, term: &str) -> String {
    let lower = s.to_lowercase();
    if lower.len() != s.len() {
        // byte offsets differ after lowercasing: mask the whole sentence's term-bearing words instead
        return s.split(' ').map(|w| if contains_term(&w.to_lowercase(), term) { "[…]" } else { w }).collect::<Vec<_>>().join(" ");
    }
    let mut out = String::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find(term) {
        let st = from + i;
        let e = st + term.len();
        let before_ok = lower[..st].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after_ok = lower[e..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            out.push_str(&s[from..st]);
            out.push_str("[…]");
        } else {
            out.push_str(&s[from..e]);
        }
        from = e;
    }
    out.push_str(&s[from..]);
    out
}

/// A sentence that names an amount of money together with a promise word.
pub fn is_price_promise(lower: &str, words: &[String]) -> bool {
    static MONEY: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let money = MONEY.get_or_init(|| {
        regex::Regex::new(r"(?i)([€$£]\s?\d)|(\d[\d.,]*\s?(€|\$|£|eur\b|euro\b|usd\b|dollars?\b|chf\b|gbp\b))|(\d+\s?(%|prozent\b|percent\b)\s*(discount|rabatt|off\b|nachlass))")
            .expect("valid regex")
    });
    money.is_match(lower) && words.iter().any(|w| contains_term(lower, w))
}

impl fmt::Display for TopicAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicAction::Refuse => "refuse",
            TopicAction::Disclaimer => "disclaimer",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Policy> {
        Policy::check_text(text, Path::new("p.toml"), Layer::Admin)
    }

    fn invalid(r: Result<Policy>) -> (usize, String, String) {
        match r {
            Err(PolicyError::Invalid { line, key, message, .. }) => (line, key, message),
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn builtin_policy_parses_and_has_the_three_refused_topics() {
        let p = Policy::builtin();
        for t in ["legal_advice", "medical_diagnosis", "price_promise"] {
            let t = p.topic(t).unwrap();
            assert!(t.enabled && t.action == TopicAction::Refuse);
            assert!(!t.reason.de.is_empty() && !t.reason.en.is_empty());
            assert!(!t.examples_de.is_empty() && !t.examples_en.is_empty());
        }
        assert_eq!(p.allowed_languages, vec!["de", "en"]);
        assert_eq!(p.injection_action, InjectionAction::Quarantine);
        assert!(p.locked.is_empty());
        assert!(p.price_promises);
    }

    #[test]
    fn unknown_key_names_its_line_and_dotted_key() {
        let (line, key, msg) = invalid(check("[answer]\nmax_chars = 500\n\n[topics.legal_advice]\nreason.en = \"x\"\nkeywrods = [\"a\"]\n"));
        assert_eq!(line, 6);
        assert_eq!(key, "topics.legal_advice.keywrods");
        assert!(msg.contains("unknown field"), "{msg}");
        let (line, key, _) = invalid(check("\n\n[answr]\nmax_chars = 5\n"));
        assert_eq!((line, key.as_str()), (3, "answr"));
    }

    #[test]
    fn wrong_types_and_values_name_the_line_and_key() {
        let (line, key, msg) = invalid(check("[answer]\nmax_chars = \"long\"\n"));
        assert_eq!((line, key.as_str()), (2, "answer.max_chars"), "{msg}");
        let (line, key, _) = invalid(check("# c\n[injection]\naction = \"explode\"\n"));
        assert_eq!((line, key.as_str()), (3, "injection.action"));
        let (line, key, msg) = invalid(check("[detection]\nthreshold = 1.5\n"));
        assert_eq!((line, key.as_str()), (2, "detection.threshold"), "{msg}");
        let (line, key, _) = invalid(check("[languages]\n\nallowed = [\"de\", \"fr\"]\n"));
        assert_eq!((line, key.as_str()), (3, "languages.allowed"));
        let (line, key, msg) = invalid(check("[topics.new_one]\nexamples.en = [\"x\"]\n"));
        assert_eq!((line, key.as_str()), (1, "topics.new_one.reason"), "{msg}");
        // broken syntax
        let (line, _, _) = invalid(check("[answer]\nmax_chars = 5\n[tools\n"));
        assert_eq!(line, 3);
        let (line, key, _) = invalid(check("locked = [\"answers\"]\n"));
        assert_eq!((line, key.as_str()), (1, "locked"));
    }

    #[test]
    fn user_may_change_unlocked_items_but_not_locked_ones() {
        let mut p = Policy::builtin();
        let admin = "locked = [\"topics.medical_diagnosis\"]\n[answer]\nmax_chars = 300\nlocked = true\n[topics.legal_advice]\nenabled = false\n";
        p.apply_toml(admin, Path::new("/etc/tresor/policy.toml"), Layer::Admin).unwrap();
        assert!(p.is_locked("answer") && p.is_locked("topics.medical_diagnosis"));
        assert!(!p.is_locked("topics.legal_advice") && !p.is_locked("disclaimer"));
        // unlocked: fine
        let mut ok = p.clone();
        ok.apply_toml("[topics.legal_advice]\nenabled = true\n[disclaimer]\nen = \"Check with HR.\"\n", Path::new("u.toml"), Layer::User).unwrap();
        assert!(ok.topic("legal_advice").unwrap().enabled);
        assert_eq!(ok.disclaimer.en, "Check with HR.");
        assert_eq!(ok.origin["disclaimer"], "u.toml");
        // locked: an error naming the line and item
        let mut bad = p.clone();
        let e = bad.apply_toml("[disclaimer]\nen = \"x\"\n\n[topics.medical_diagnosis]\nenabled = false\n", Path::new("u.toml"), Layer::User).unwrap_err();
        assert!(e.to_string().starts_with("u.toml:4: key `topics.medical_diagnosis`: this item is locked"), "{e}");
        let e = p.clone().apply_toml("[answer]\nmax_chars = 5000\n", Path::new("u.toml"), Layer::User).unwrap_err();
        assert!(e.to_string().contains("`answer`"), "{e}");
        // a user cannot lock
        let e = p.clone().apply_toml("locked = [\"tools\"]\n", Path::new("u.toml"), Layer::User).unwrap_err();
        assert!(e.to_string().contains("only the admin policy can lock"), "{e}");
        // "*" locks everything, "topics" forbids new topics
        let mut all = Policy::builtin();
        all.apply_toml("locked = [\"*\"]\n", Path::new("a"), Layer::Admin).unwrap();
        assert!(all.apply_toml("[tools]\nallowed = [\"x\"]\n", Path::new("u"), Layer::User).is_err());
        let mut topics = Policy::builtin();
        topics.apply_toml("locked = [\"topics\"]\n", Path::new("a"), Layer::Admin).unwrap();
        let e = topics.apply_toml("[topics.mine]\nreason.de = \"x\"\nreason.en = \"x\"\nkeywords = [\"k\"]\n", Path::new("u"), Layer::User).unwrap_err();
        assert!(e.to_string().contains("no new topics"), "{e}");
    }

    fn env_paths(dir: &Path, admin: Option<&str>, user: Option<&str>) -> PolicyPaths {
        let keys = dir.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let mut p = PolicyPaths { admin: None, user: None, admin_keys: Some(keys) };
        if let Some(a) = admin {
            let path = dir.join("admin.toml");
            std::fs::write(&path, a).unwrap();
            p.admin = Some(path);
        }
        if let Some(u) = user {
            let path = dir.join("policy.toml");
            std::fs::write(&path, u).unwrap();
            p.user = Some(path);
        }
        p
    }

    #[test]
    fn signatures_good_bad_missing_and_untrusted() {
        let dir = tempfile::tempdir().unwrap();
        let paths = env_paths(dir.path(), Some("[answer]\nmax_chars = 400\nlocked = true\n"), None);
        let admin = paths.admin.clone().unwrap();
        // no keys installed, no signature: accepted
        assert_eq!(paths.load().unwrap().max_answer_chars, 400);
        let (sk, pk) = keygen(&dir.path().join("admin1")).unwrap();
        assert!(keygen(&dir.path().join("admin1")).is_err(), "keygen must not overwrite");
        // a signature but no trusted keys: error
        sign(&admin, &sk).unwrap();
        assert!(matches!(paths.load(), Err(PolicyError::Signature { .. })));
        // trusted key: verifies and names the key
        std::fs::copy(&pk, paths.admin_keys.as_ref().unwrap().join("admin1.pub")).unwrap();
        let p = paths.load().unwrap();
        assert_eq!(p.files[0].signed_by.as_deref(), Some("admin1.pub"));
        // one changed byte: error, never ignored
        std::fs::write(&admin, "[answer]\nmax_chars = 900\nlocked = true\n").unwrap();
        let e = paths.load().unwrap_err();
        assert!(matches!(e, PolicyError::Signature { .. }), "{e}");
        // signed by another key: error
        let (sk2, _) = keygen(&dir.path().join("mallory")).unwrap();
        sign(&admin, &sk2).unwrap();
        assert!(paths.load().unwrap_err().to_string().contains("no trusted admin key"));
        // keys installed but the signature file removed: error
        std::fs::remove_file(sig_path(&admin)).unwrap();
        assert!(paths.load().unwrap_err().to_string().contains("no signature file"));
        // garbage signature
        std::fs::write(sig_path(&admin), "not base64!").unwrap();
        assert!(matches!(paths.load(), Err(PolicyError::Signature { .. })));
    }

    /// A fake embedder: bag of words hashed into 64 dims.
    fn fake_embed(texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, String> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 64];
                for w in t.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2) {
                    let h = w.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
                    v[(h % 64) as usize] += 1.0;
                }
                v
            })
            .collect())
    }

    #[test]
    fn topics_are_detected_by_similarity_and_keywords_and_tools_lift_them() {
        let mut p = Policy::builtin();
        p.detection_threshold = 0.6;
        let idx = p.index(fake_embed).unwrap();
        assert!(!idx.is_empty());
        let q = "I have a headache and a fever, which illness could I have?";
        let qv = fake_embed(&[q]).unwrap().pop().unwrap();
        let (hits, _) = p.detect_topics(&idx, q, Some(&qv));
        assert_eq!(hits[0].topic, "medical_diagnosis");
        assert_eq!(hits[0].via, "similarity");
        // keyword, without any embedding
        let (hits, _) = p.detect_topics(&idx, "Welche Krankheit habe ich?", None);
        assert_eq!(hits[0].topic, "medical_diagnosis");
        assert_eq!(hits[0].via, "keyword");
        // unrelated questions pass
        for q in ["How many vacation days do I get?", "Wie hoch ist das Hotelbudget pro Nacht?", "What is the price of the Pro plan?"] {
            let qv = fake_embed(&[q]).unwrap().pop().unwrap();
            let (hits, nearest) = p.detect_topics(&idx, q, Some(&qv));
            assert!(hits.is_empty(), "{q}: {hits:?}");
            assert!(nearest.is_some());
        }
        // a price tool lifts the price-promise topic
        let q = "Can you guarantee me a 20% discount if I order today?";
        let qv = fake_embed(&[q]).unwrap().pop().unwrap();
        assert_eq!(p.detect_topics(&idx, q, Some(&qv)).0[0].topic, "price_promise");
        p.allowed_tools.push("prices".into());
        assert!(p.detect_topics(&idx, q, Some(&qv)).0.iter().all(|h| h.topic != "price_promise"));
        // refusals are localised and name the topic and why
        let de = p.refusal("medical_diagnosis", "de");
        assert!(de.contains("medizinische Diagnose") && de.contains("Ärztin"), "{de}");
        assert!(p.refusal("legal_advice", "en").contains("legal advice"));
    }

    #[test]
    fn keyword_matching_respects_word_boundaries() {
        assert!(contains_term("can i sue my boss", "sue my"));
        assert!(!contains_term("please issue my badge", "sue my"));
        assert!(contains_term("diagnosed", "diagnos*"));
        assert!(!contains_term("prognose", "diagnos*"));
    }

    fn run_guard(p: &Policy, pieces: &[&str]) -> (String, String, PolicyDecision) {
        let mut g = OutputGuard::new(p, "en", |s: &str| if s.contains(" und ") || s.contains(" der ") { "de".into() } else { "en".into() });
        let mut streamed = String::new();
        for piece in pieces {
            streamed.push_str(&g.push(piece));
        }
        streamed.push_str(&g.finish(false));
        (streamed, g.text().to_string(), g.decision.clone())
    }

    #[test]
    fn output_checks_remove_blocked_terms_price_promises_and_cap_the_length() {
        let mut p = Policy::builtin();
        p.blocked_terms = vec!["project falcon".into()];
        let (streamed, text, d) = run_guard(
            &p,
            &["Full-time staff get 30 days. [1]", " Project Falcon ships in May. [2]", " We guarantee you a price of 99 € per seat. [1]", " Ask HR for details."],
        );
        assert_eq!(streamed, text);
        assert_eq!(text, "Full-time staff get 30 days. [1] Ask HR for details.");
        assert_eq!((d.blocked_terms, d.price_promises, d.action.as_str()), (1, 1, "modify"));
        // a price from a document without a promise stays
        let (text, _, d) = run_guard(&p, &["The Pro plan costs 49 € per month. [1]"]);
        assert_eq!(text, "The Pro plan costs 49 € per month. [1]");
        assert_eq!(d.action, "allow");
        // masking instead of removing
        p.blocked_action = BlockAction::Mask;
        let (text, _, _) = run_guard(&p, &["The codename is Project Falcon. [1]"]);
        assert_eq!(text, "The codename is […]. [1]");
        // token-sized pieces are assembled into sentences first
        p.max_answer_chars = 40;
        let (text, _, d) = run_guard(&p, &["This ", "is a ", "rather long ", "answer. ", "It goes on and on and on."]);
        assert!(text.chars().count() <= 40 && text.ends_with('…'), "{text}");
        assert!(d.truncated);
        // everything removed: withheld, and said so
        p.max_answer_chars = 2000;
        p.blocked_action = BlockAction::Remove;
        let (text, _, d) = run_guard(&p, &["Project Falcon is secret."]);
        assert_eq!(text, p.withheld("en"));
        assert_eq!(d.reason.as_deref(), Some("withheld"));
        // language: sentences in a language the policy does not allow are removed
        p.allowed_languages = vec!["en".into()];
        let (text, _, d) = run_guard(&p, &["Vacation is 30 days a year. [1] Der Urlaub und die Tage sind klar. [1]"]);
        assert_eq!(text, "Vacation is 30 days a year. [1]");
        assert_eq!(d.wrong_language, 1);
    }

    #[test]
    fn disclaimers_are_appended_once_in_the_question_language() {
        let mut p = Policy::builtin();
        p.disclaimer = Localised { de: "Ohne Gewähr.".into(), en: "No warranty.".into() };
        let (text, _, d) = run_guard(&p, &["Full-time staff get 30 days. [1]"]);
        assert_eq!(text, "Full-time staff get 30 days. [1]\n\nNo warranty.");
        assert_eq!(d.disclaimers, vec!["global"]);
        assert_eq!(d.action, "modify");
        // not on refusals
        let mut g = OutputGuard::new(&p, "de", |_: &str| "de".into());
        let mut s = g.push("Dazu habe ich nichts gefunden.");
        s.push_str(&g.finish(true));
        assert_eq!(s, "Dazu habe ich nichts gefunden.");
    }
}
