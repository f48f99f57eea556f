//! Loading a policy: the raw `policy.toml` structures, layering one file
//! over the policy in force (built-in defaults ← admin ← user), locks, and
//! where the layers are ([`PolicyPaths`]).
//!
//! Owns: parsing (unknown keys are errors), what a layer may change (a user's
//! file only unlocked items; only the admin's may lock), and errors that name
//! `FILE:LINE` and the dotted key, located with the TOML parser's spans.
//! Never: checks a signature itself ([`super::sign`] does) or writes a file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::sign::{load_public_keys, sig_path, verify_signature};
use super::tools::{check_loopback_url, check_tool_name, valid_server_name, McpServerConfig, McpTransport, MAX_MCP_TIMEOUT_MS};
use super::{read, BlockAction, InjectionAction, Layer, Localised, Policy, PolicyError, PolicyFile, Result, Topic, TopicAction, ITEMS, LANGS};

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
    mcp: Option<RawMcp>,
    handoff: Option<super::HandoffPolicy>,
    remote: Option<super::RemotePolicy>,
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
    denied: Option<Vec<String>>,
    confirm: Option<Vec<String>>,
    locked: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcp {
    servers: Option<BTreeMap<String, RawMcpServer>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcpServer {
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    url: Option<String>,
    timeout_ms: Option<u64>,
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

impl Policy {
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
        section_lock("remote", raw.remote.as_ref().and_then(|s| s.locked))?;
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
            if t.allowed.is_some() || t.denied.is_some() || t.confirm.is_some() {
                touch(self, "tools")?;
            }
            if let Some(v) = &t.allowed {
                let v = clean_list(v);
                for name in &v {
                    if name.contains('.') {
                        return Err(src.err(
                            "tools.allowed",
                            &format!("`{name}`: `allowed` lists built-in tools; an MCP server's tools are allowed unless `denied` names them"),
                        ));
                    }
                    check_tool_name(name, false).map_err(|m| src.err("tools.allowed", &m))?;
                }
                self.allowed_tools = Some(v);
            }
            for (key, list, into) in [("tools.denied", &t.denied, &mut self.denied_tools), ("tools.confirm", &t.confirm, &mut self.confirm_tools)] {
                if let Some(v) = list {
                    let v = clean_list(v);
                    for name in &v {
                        check_tool_name(name, true).map_err(|m| src.err(key, &m))?;
                    }
                    *into = v;
                }
            }
        }
        if let Some(m) = &raw.mcp {
            if layer == Layer::User {
                return Err(src.err("mcp", "MCP servers can only be listed in the admin policy (TRESOR_POLICY or /etc/tresor/policy.toml)"));
            }
            for (name, rs) in m.servers.iter().flatten() {
                let key = format!("mcp.servers.{name}");
                let config = mcp_server(name, rs).map_err(|(k, m)| src.err(&if k.is_empty() { key.clone() } else { format!("{key}.{k}") }, &m))?;
                self.mcp_servers.insert(name.clone(), config);
                self.origin.insert(key, origin.clone());
            }
        }
        if let Some(h) = &raw.handoff {
            if layer == Layer::User {
                return Err(src.err("handoff", "the handoff target can only be set in the admin policy (TRESOR_POLICY or /etc/tresor/policy.toml); a workspace sets its own in assistant.toml [handoff]"));
            }
            h.check().map_err(|(k, m)| src.err(&format!("handoff.{k}"), &m))?;
            self.handoff = h.clone();
            self.origin.insert("handoff".into(), origin.clone());
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
        if let Some(r) = &raw.remote {
            // the URL list is the admin's; a workspace may only forbid (data residency)
            if layer == Layer::User && !r.allowed_urls.is_empty() {
                return Err(src.err("remote.allowed_urls", "remote backends can only be listed in the admin policy (TRESOR_POLICY or /etc/tresor/policy.toml); a workspace may set `enabled = false`"));
            }
            if layer == Layer::User && r.enabled == Some(true) && self.remote.enabled == Some(false) {
                return Err(src.err("remote.enabled", "the admin policy forbids remote backends; a workspace cannot allow them"));
            }
            r.check().map_err(|(k, m)| src.err(&format!("remote.{k}"), &m))?;
            if r.enabled.is_some() || !r.allowed_urls.is_empty() {
                touch(self, "remote")?;
            }
            if let Some(e) = r.enabled {
                self.remote.enabled = Some(e);
            }
            if layer != Layer::User && !r.allowed_urls.is_empty() {
                self.remote.allowed_urls = r.allowed_urls.clone();
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

/// One `[mcp.servers.NAME]` entry, checked; errors as (key below the entry, message).
fn mcp_server(name: &str, rs: &RawMcpServer) -> std::result::Result<McpServerConfig, (String, String)> {
    let err = |k: &str, m: String| (k.to_string(), m);
    if !valid_server_name(name) {
        return Err(err("", format!("`{name}` is not a server name (lowercase letters, digits, `_`, `-`)")));
    }
    if let Some(t) = rs.timeout_ms {
        if t == 0 || t > MAX_MCP_TIMEOUT_MS {
            return Err(err("timeout_ms", format!("must be between 1 and {MAX_MCP_TIMEOUT_MS} (got {t})")));
        }
    }
    let transport = match (&rs.command, &rs.url) {
        (Some(_), Some(_)) => return Err(err("url", "give `command` (stdio) or `url` (streamable HTTP), not both".into())),
        (None, None) => return Err(err("", "needs `command` (a stdio server) or `url` (a streamable-HTTP server)".into())),
        (Some(command), None) => {
            let command = command.trim();
            if command.is_empty() {
                return Err(err("command", "must not be empty".into()));
            }
            let env = rs.env.clone().unwrap_or_default();
            if let Some(bad) = env.keys().find(|k| k.is_empty() || k.contains('=') || k.contains('\0')) {
                return Err(err("env", format!("`{bad}` is not an environment variable name")));
            }
            McpTransport::Stdio { command: command.to_string(), args: rs.args.clone().unwrap_or_default(), env }
        }
        (None, Some(url)) => {
            if rs.args.is_some() {
                return Err(err("args", "`args` belongs to a stdio server (`command`), not to a `url`".into()));
            }
            if rs.env.is_some() {
                return Err(err("env", "`env` belongs to a stdio server (`command`), not to a `url`".into()));
            }
            let url = url.trim();
            check_loopback_url(url).map_err(|m| err("url", m))?;
            McpTransport::Http { url: url.to_string() }
        }
    };
    Ok(McpServerConfig { transport, timeout_ms: rs.timeout_ms })
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

/// The file being layered, for errors that name its line.
struct Src<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Src<'_> {
    /// An error about `key` (a dotted path), located at the line that sets it.
    fn err(&self, key: &str, message: &str) -> PolicyError {
        let line = KeySpans::of(self.text).line_of(self.text, key);
        PolicyError::Invalid { path: self.path.to_path_buf(), line, key: key.to_string(), message: message.to_string() }
    }
}

/// Every key a TOML text writes, as (dotted path, the key's span), in the
/// order the parser reports them. Table headers count: `[topics.x]` writes
/// `topics` and `topics.x`, both located inside the header.
struct KeySpans(Vec<(String, Range<usize>)>);

impl KeySpans {
    /// The keys of `text`; none when it is not valid TOML.
    fn of(text: &str) -> KeySpans {
        let mut out = Vec::new();
        if let Ok(tree) = toml::from_str::<KeyTree>(text) {
            tree.flatten("", &mut out);
        }
        KeySpans(out)
    }

    /// The 1-based line of `key` (dotted path): the line that writes it, else
    /// the first line that writes a key below it, else the same for its
    /// parent; 1 when none is written.
    fn line_of(&self, text: &str, key: &str) -> usize {
        let mut key = key;
        loop {
            let below = format!("{key}.");
            let at = self.0.iter().find(|(k, _)| k == key).or_else(|| self.0.iter().filter(|(k, _)| k.starts_with(&below)).min_by_key(|(_, s)| s.start));
            if let Some((_, span)) = at {
                return line_at(text, span.start);
            }
            match key.rsplit_once('.') {
                Some((parent, _)) => key = parent,
                None => return 1,
            }
        }
    }

    /// The dotted key whose entry holds byte `offset` of `text`: the key
    /// written last at or before it, or the deepest key of its line when the
    /// offset comes first there (a table header's `[`); empty when none.
    fn key_at(&self, text: &str, offset: usize) -> String {
        let offset = offset.min(text.len());
        let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        let last = |range: Range<usize>| self.0.iter().filter(|(_, s)| range.contains(&s.start)).max_by_key(|(_, s)| s.start);
        let before = last(0..offset + 1);
        let at = match before {
            Some((_, s)) if s.start >= line_start => before,
            _ => last(line_start..line_end).or(before),
        };
        at.map(|(k, _)| k.clone()).unwrap_or_default()
    }
}

/// The 1-based line that holds byte `offset` of `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Any TOML value, keeping only its keys and their spans (for [`KeySpans`]).
#[derive(Default)]
struct KeyTree(Vec<(Spanned<String>, KeyTree)>);

impl KeyTree {
    fn flatten(self, prefix: &str, out: &mut Vec<(String, Range<usize>)>) {
        for (k, sub) in self.0 {
            let span = k.span();
            let path = if prefix.is_empty() { k.into_inner() } else { format!("{prefix}.{}", k.into_inner()) };
            sub.flatten(&path, out);
            out.push((path, span));
        }
    }
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyTree;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any TOML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<KeyTree, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key_seed(SpannedKey)? {
                    let sub = map.next_value::<KeyTree>()?;
                    // a date-time arrives as a one-entry map whose key has no span
                    if let Some(k) = k {
                        keys.push((k, sub));
                    }
                }
                Ok(KeyTree(keys))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<KeyTree, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyTree::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<KeyTree, E> {
                Ok(KeyTree::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<KeyTree, E> {
                Ok(KeyTree::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<KeyTree, E> {
                Ok(KeyTree::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<KeyTree, E> {
                Ok(KeyTree::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<KeyTree, E> {
                Ok(KeyTree::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key with its span; `None` for a key the parser made up (no span).
struct SpannedKey;

impl<'de> DeserializeSeed<'de> for SpannedKey {
    type Value = Option<Spanned<String>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Self::Value, D::Error> {
        Ok(Spanned::<String>::deserialize(d).ok())
    }
}

/// A parse error as `FILE:LINE: key `K``: the line of the parser's span and
/// the key written there ("(file)" when the text is not TOML at all).
fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> PolicyError {
    let msg = e.message().trim().to_string();
    let (line, mut key) = match e.span() {
        Some(span) => (line_at(text, span.start), KeySpans::of(text).key_at(text, span.start)),
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

// ---------------------------------------------------------------- where the layers are

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
