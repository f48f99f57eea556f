//! Versioned releases of the assistant's prompts, policy and configuration,
//! and the experiments run with them (docs/releases.md): `create` snapshots
//! the files (validated), `canary` lets a candidate serve a share of the
//! conversations, `promote` makes it the release every conversation gets,
//! `rollback` undoes the last step. The store is one file sealed with the
//! workspace key (`releases.json`, atomic writes); every change appends an
//! audit entry (`release.*`) and keeps the gate result it was given.
//!
//! Owns: the release store's format and invariants (unique names, immutable
//! snapshots, at most one `active` and one `canary`, the canary's share in
//! (0, 1)), the transitions and their audit entries. Never: answers
//! (`apply.rs` swaps a release into the engine), computes a KPI (events and
//! KPIs are tresor-telemetry's; `compare.rs` reads them).

mod apply;
mod assign;
mod compare;
pub mod stats;
#[cfg(test)]
mod tests;

pub use apply::{conversation_key, Variant, CONTROL_LABEL};
pub(crate) use apply::{instruction, EngineReleases};
pub use assign::{bucket, pick};
pub use compare::{canary_step, compare, ArmMetrics, Comparison, GuardBreach, MetricTest, StepOutcome};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tresor_guard::audit::{AuditLog, Event as AuditEvent};
use tresor_guard::crypto::WorkspaceKey;

use crate::config::AssistantConfig;
use crate::error::{AssistantError, Result};

/// The store's file in the workspace's data dir (sealed with the workspace key).
pub const RELEASES_FILE: &str = "releases.json";
/// The store format's version.
pub const STORE_VERSION: u32 = 1;
/// Largest prompt, policy or config file a release takes.
const MAX_FILE_BYTES: usize = 256 * 1024;

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, serves nobody.
    Draft,
    /// Serves `share` of the conversations (the candidate of an experiment).
    Canary,
    /// Serves every conversation the canary does not get (the control).
    Active,
    /// Was active, replaced by a promotion.
    Retired,
    /// Rolled back (by hand or by a canary guard); `reason` says why.
    RolledBack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Canary => "canary",
            Status::Active => "active",
            Status::Retired => "retired",
            Status::RolledBack => "rolled_back",
        }
    }
}

/// The system instructions a release gives the model (`--prompt-file`, TOML: `en`, `de`, `general`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSet {
    /// The grounded answer's instruction in English (the spotlighting note is appended).
    pub en: Option<String>,
    /// The same in German.
    pub de: Option<String>,
    /// The system prompt of an answer without a knowledge base.
    pub general: Option<String>,
}

impl PromptSet {
    pub fn from_toml(text: &str) -> std::result::Result<PromptSet, String> {
        let p: PromptSet = toml::from_str(text).map_err(|e| e.to_string())?;
        let all = [("en", &p.en), ("de", &p.de), ("general", &p.general)];
        if all.iter().all(|(_, v)| v.is_none()) {
            return Err("a prompt file sets at least one of `en`, `de`, `general`".into());
        }
        for (k, v) in all {
            if let Some(v) = v {
                if v.trim().is_empty() {
                    return Err(format!("`{k}` is empty"));
                }
                if v.chars().count() > 4000 {
                    return Err(format!("`{k}` is longer than 4000 characters"));
                }
            }
        }
        Ok(p)
    }
}

/// A gate result kept with a transition (`--gate FILE`: the JSON of `tresor eval suite --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// The file's name as given.
    pub file: String,
    pub sha256: String,
    /// The suite's verdict: its `passed` field, else no `regressions`; None when the file says neither.
    pub passed: Option<bool>,
    /// The file's JSON as it was.
    pub result: Value,
}

impl Gate {
    /// Reads and checks a gate result file.
    pub fn from_file(path: &Path) -> Result<Gate> {
        let bytes = std::fs::read(path).map_err(|source| AssistantError::Io { path: path.to_path_buf(), source })?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(AssistantError::Invalid(format!("gate file {} is larger than {} KiB", path.display(), MAX_FILE_BYTES / 1024)));
        }
        let result: Value = serde_json::from_slice(&bytes).map_err(|e| AssistantError::Invalid(format!("gate file {}: not JSON ({e})", path.display())))?;
        let passed = match (&result["passed"], &result["regressions"]) {
            (Value::Bool(b), _) => Some(*b),
            (_, Value::Array(r)) => Some(r.is_empty()),
            _ => None,
        };
        Ok(Gate { file: path.display().to_string(), sha256: hex::encode(Sha256::digest(&bytes)), passed, result })
    }
}

/// One transition of a release, as kept with it (the audit log has the same, hash-chained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// RFC 3339, UTC.
    pub at: String,
    /// Unix ms (windows of the events).
    pub at_ms: i64,
    /// create | canary | canary_step | promote | rollback | retire
    pub action: String,
    pub actor: String,
    pub status: Status,
    pub share: f64,
    pub reason: Option<String>,
    pub gate: Option<Gate>,
}

/// One release: an immutable snapshot plus where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub status: Status,
    /// The share of conversations it serves now (0 when it serves none).
    pub share: f64,
    pub created_at: String,
    /// sha256 over the snapshot (prompt, policy, config): two releases with the same content share it.
    pub digest: String,
    pub prompt: Option<PromptSet>,
    /// A user-layer policy file's text (layered over the admin policy like `<data_dir>/policy.toml`).
    pub policy: Option<String>,
    /// An `assistant.toml`'s text: the engine's knobs for this release.
    pub config: Option<String>,
    /// Why it was last rolled back.
    pub reason: Option<String>,
    /// For an active release: the one it replaced (what `rollback` restores).
    pub previous: Option<String>,
    /// Since when it serves its current share (Unix ms): the canary's guard window starts here.
    pub since_ms: i64,
    pub history: Vec<Step>,
}

/// How a canary advances and when it rolls back (`[canary]` of the store; `tresor release canary-config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryConfig {
    /// The shares a canary goes through; after the last it is promoted.
    pub steps: Vec<f64>,
    /// Conversations the candidate needs in the window before a step is judged.
    pub min_conversations: u64,
    /// Rollback when the candidate's refusal rate exceeds the control's by more than this (absolute).
    pub max_refusal_increase: f64,
    /// ... its grounded (faithful) share falls below the control's by more than this (absolute).
    pub max_grounded_drop: f64,
    /// ... its error rate (failed tool actions) exceeds the control's by more than this (absolute).
    pub max_error_increase: f64,
    /// ... its p95 total latency exceeds the control's by more than this factor.
    pub max_p95_ratio: f64,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig { steps: vec![0.05, 0.1, 0.25, 0.5], min_conversations: 50, max_refusal_increase: 0.05, max_grounded_drop: 0.05, max_error_increase: 0.05, max_p95_ratio: 1.5 }
    }
}

impl CanaryConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.steps.is_empty() || self.steps.iter().any(|s| !(*s > 0.0 && *s < 1.0)) {
            return Err("canary steps must be shares between 0 and 1 (exclusive)".into());
        }
        if self.steps.windows(2).any(|w| w[0] >= w[1]) {
            return Err("canary steps must increase".into());
        }
        if self.min_conversations == 0 {
            return Err("min_conversations must be at least 1".into());
        }
        for (k, v) in [("max_refusal_increase", self.max_refusal_increase), ("max_grounded_drop", self.max_grounded_drop), ("max_error_increase", self.max_error_increase)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{k} must be between 0 and 1"));
            }
        }
        if self.max_p95_ratio < 1.0 || !self.max_p95_ratio.is_finite() {
            return Err("max_p95_ratio must be at least 1".into());
        }
        Ok(())
    }
}

/// The whole store, as sealed in `releases.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseSet {
    pub version: u32,
    pub canary: CanaryConfig,
    pub releases: Vec<Release>,
}

impl Default for ReleaseSet {
    fn default() -> Self {
        ReleaseSet { version: STORE_VERSION, canary: CanaryConfig::default(), releases: Vec::new() }
    }
}

/// `tresor release list --json`'s row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub status: String,
    pub share: f64,
    pub created_at: String,
    pub digest: String,
    /// Why it was rolled back (automatic rollbacks name the guard metric).
    pub reason: Option<String>,
    /// The last gate result's verdict.
    pub gate_passed: Option<bool>,
}

/// The files a release is made of (any may be missing: the workspace's own then applies).
#[derive(Debug, Clone, Default)]
pub struct ReleaseFiles {
    pub prompt: Option<PathBuf>,
    pub policy: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// Who changes the store, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    pub actor: String,
    pub workspace: String,
}

impl ReleaseSet {
    /// Checks the invariants (docs/releases.md): a store that breaks one is refused, never half-used.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.version != STORE_VERSION {
            return Err(format!("store version {} (this Tresor reads {STORE_VERSION})", self.version));
        }
        self.canary.validate()?;
        let mut names = std::collections::HashSet::new();
        for r in &self.releases {
            valid_name(&r.name)?;
            if !names.insert(&r.name) {
                return Err(format!("release `{}` appears twice", r.name));
            }
            match r.status {
                Status::Canary if !(r.share > 0.0 && r.share < 1.0) => return Err(format!("canary `{}` has share {} (must be in (0, 1))", r.name, r.share)),
                Status::Draft | Status::Retired | Status::RolledBack if r.share != 0.0 => return Err(format!("`{}` is {} but has share {}", r.name, r.status.as_str(), r.share)),
                _ => {}
            }
            if digest(&r.prompt, &r.policy, &r.config) != r.digest {
                return Err(format!("release `{}`'s snapshot does not match its digest", r.name));
            }
        }
        for s in [Status::Active, Status::Canary] {
            if self.releases.iter().filter(|r| r.status == s).count() > 1 {
                return Err(format!("more than one {} release", s.as_str()));
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Release> {
        self.releases.iter().find(|r| r.name == name)
    }
    pub fn active(&self) -> Option<&Release> {
        self.releases.iter().find(|r| r.status == Status::Active)
    }
    pub fn canary_release(&self) -> Option<&Release> {
        self.releases.iter().find(|r| r.status == Status::Canary)
    }

    /// What `list` shows: the active release's share is what the canary leaves it.
    pub fn rows(&self) -> Vec<Row> {
        self.releases
            .iter()
            .map(|r| Row {
                name: r.name.clone(),
                status: r.status.as_str().into(),
                share: r.share,
                created_at: r.created_at.clone(),
                digest: r.digest.clone(),
                reason: r.reason.clone(),
                gate_passed: r.history.iter().rev().find_map(|s| s.gate.as_ref()).and_then(|g| g.passed),
            })
            .collect()
    }

    fn get_mut(&mut self, name: &str) -> Result<&mut Release> {
        self.releases.iter_mut().find(|r| r.name == name).ok_or_else(|| AssistantError::Invalid(format!("no release named `{name}` (tresor release list)")))
    }

    /// Keeps the active release's share at 1 − the canary's.
    fn rebalance(&mut self) {
        let canary = self.canary_release().map_or(0.0, |r| r.share);
        for r in &mut self.releases {
            if r.status == Status::Active {
                r.share = 1.0 - canary;
            }
        }
    }
}

/// A release name: 1–64 of `a-z A-Z 0-9 . _ -`, starting with a letter or digit.
pub fn valid_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok && name != CONTROL_LABEL {
        Ok(())
    } else {
        Err(format!("invalid release name `{name}` (1-64 of letters, digits, . _ -; not `{CONTROL_LABEL}`)"))
    }
}

fn digest(prompt: &Option<PromptSet>, policy: &Option<String>, config: &Option<String>) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_string(prompt).unwrap_or_default().as_bytes());
    h.update([0]);
    h.update(policy.as_deref().unwrap_or("").as_bytes());
    h.update([0]);
    h.update(config.as_deref().unwrap_or("").as_bytes());
    hex::encode(&h.finalize()[..8])
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| AssistantError::Io { path: path.to_path_buf(), source })?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(AssistantError::Invalid(format!("{what} file {} is larger than {} KiB", path.display(), MAX_FILE_BYTES / 1024)));
    }
    String::from_utf8(bytes).map_err(|_| AssistantError::Invalid(format!("{what} file {} is not UTF-8", path.display())))
}

/// Validates a policy file the way the engine will layer it (over the admin policy of `data_dir`).
pub(crate) fn layered_policy(data_dir: &Path, text: &str, label: &str) -> Result<tresor_guard::policy::Policy> {
    let mut paths = tresor_guard::policy::PolicyPaths::for_data_dir(data_dir);
    paths.user = None;
    let mut p = paths.load()?;
    p.apply_toml(text, Path::new(label), tresor_guard::policy::Layer::User)?;
    Ok(p)
}

/// The workspace's release store.
pub struct Releases {
    path: PathBuf,
    data_dir: PathBuf,
    key: WorkspaceKey,
    pub set: ReleaseSet,
}

impl Releases {
    /// The store of `data_dir` (empty when there is none yet). A store that does not decrypt, parse
    /// or keep its invariants is an error naming the file; nothing is overwritten.
    pub fn open(data_dir: &Path, key: &WorkspaceKey) -> Result<Releases> {
        let path = data_dir.join(RELEASES_FILE);
        let set = Self::read(&path, key)?.unwrap_or_default();
        Ok(Releases { path, data_dir: data_dir.to_path_buf(), key: key.clone(), set })
    }

    /// The sealed store at `path`, None when it does not exist.
    pub fn read(path: &Path, key: &WorkspaceKey) -> Result<Option<ReleaseSet>> {
        if !path.exists() {
            return Ok(None);
        }
        let bytes = key.read_file(path)?;
        let set: ReleaseSet = serde_json::from_slice(&bytes).map_err(|e| AssistantError::Config { path: path.to_path_buf(), reason: format!("release store: {e}") })?;
        set.check().map_err(|reason| AssistantError::Config { path: path.to_path_buf(), reason })?;
        Ok(Some(set))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn save(&self) -> Result<()> {
        self.set.check().map_err(|reason| AssistantError::Invalid(format!("refusing to write a broken release store: {reason}")))?;
        let bytes = serde_json::to_vec_pretty(&self.set).expect("the store serialises");
        Ok(self.key.write_file(&self.path, &bytes)?)
    }

    /// Saves, then appends the audit entry: the store is the truth; an audit failure is reported.
    fn commit(&self, who: &Actor, event: &str, data: Value) -> Result<()> {
        self.save()?;
        AuditLog::for_data_dir(&self.data_dir).append(&AuditEvent { event: event.into(), actor: who.actor.clone(), workspace: who.workspace.clone(), data })?;
        Ok(())
    }

    /// `create NAME`: snapshots and validates the files (a policy is layered over the admin policy,
    /// a config parsed and checked like `assistant.toml`).
    pub fn create(&mut self, name: &str, files: &ReleaseFiles, gate: Option<Gate>, who: &Actor) -> Result<&Release> {
        valid_name(name).map_err(AssistantError::Invalid)?;
        if self.set.get(name).is_some() {
            return Err(AssistantError::Invalid(format!("release `{name}` exists (releases are immutable: create a new name)")));
        }
        let prompt = match &files.prompt {
            Some(p) => Some(PromptSet::from_toml(&read_text(p, "prompt")?).map_err(|e| AssistantError::Config { path: p.clone(), reason: e })?),
            None => None,
        };
        let policy = match &files.policy {
            Some(p) => {
                let text = read_text(p, "policy")?;
                layered_policy(&self.data_dir, &text, &p.display().to_string())?;
                Some(text)
            }
            None => None,
        };
        let config = match &files.config {
            Some(p) => {
                let text = read_text(p, "config")?;
                AssistantConfig::from_toml(&text).map_err(|reason| AssistantError::Config { path: p.clone(), reason })?;
                Some(text)
            }
            None => None,
        };
        let now = now();
        let d = digest(&prompt, &policy, &config);
        let step = Step { at: now.0.clone(), at_ms: now.1, action: "create".into(), actor: who.actor.clone(), status: Status::Draft, share: 0.0, reason: None, gate: gate.clone() };
        self.set.releases.push(Release {
            name: name.into(),
            status: Status::Draft,
            share: 0.0,
            created_at: now.0,
            digest: d.clone(),
            prompt,
            policy,
            config,
            reason: None,
            previous: None,
            since_ms: now.1,
            history: vec![step],
        });
        let files_json = json!({
            "prompt": files.prompt.is_some(), "policy": files.policy.is_some(), "config": files.config.is_some(),
        });
        self.commit(who, "release.create", json!({ "name": name, "digest": d, "files": files_json, "gate": gate_summary(&gate) }))?;
        Ok(self.set.get(name).expect("pushed above"))
    }

    fn check_gate(gate: &Option<Gate>, force: bool, what: &str) -> Result<()> {
        if let Some(g) = gate {
            if g.passed == Some(false) && !force {
                return Err(AssistantError::Invalid(format!("the gate result {} failed: refusing to {what} (--force overrides; the failure is recorded)", g.file)));
            }
        }
        Ok(())
    }

    /// `canary NAME --share S`: NAME serves share S of the conversations (a running canary of another
    /// release must be promoted or rolled back first; the active release keeps the rest).
    pub fn canary(&mut self, name: &str, share: f64, gate: Option<Gate>, force: bool, who: &Actor) -> Result<()> {
        if !(share > 0.0 && share < 1.0) {
            return Err(AssistantError::Invalid(format!("--share must be between 0 and 1 exclusive (got {share}); use promote for all traffic")));
        }
        Self::check_gate(&gate, force, "start a canary")?;
        if let Some(c) = self.set.canary_release() {
            if c.name != name {
                return Err(AssistantError::Invalid(format!("release `{}` is the canary already: promote or roll it back first", c.name)));
            }
        }
        let r = self.set.get_mut(name)?;
        if r.status == Status::Active {
            return Err(AssistantError::Invalid(format!("release `{name}` is active already")));
        }
        let from = r.status;
        let t = now();
        if from != Status::Canary {
            r.since_ms = t.1;
        }
        r.status = Status::Canary;
        r.share = share;
        r.reason = None;
        r.history.push(Step { at: t.0, at_ms: t.1, action: "canary".into(), actor: who.actor.clone(), status: Status::Canary, share, reason: None, gate: gate.clone() });
        self.set.rebalance();
        self.commit(who, "release.canary", json!({ "name": name, "share": share, "from": from.as_str(), "gate": gate_summary(&gate), "forced": force && gate.as_ref().is_some_and(|g| g.passed == Some(false)) }))
    }

    /// `promote NAME`: NAME serves every conversation; the release it replaces is retired (and is
    /// what `rollback` restores).
    pub fn promote(&mut self, name: &str, gate: Option<Gate>, force: bool, who: &Actor) -> Result<()> {
        self.promote_as(name, gate, force, who, "promote", None)
    }

    fn promote_as(&mut self, name: &str, gate: Option<Gate>, force: bool, who: &Actor, action: &str, reason: Option<String>) -> Result<()> {
        Self::check_gate(&gate, force, "promote")?;
        let target = self.set.get(name).ok_or_else(|| AssistantError::Invalid(format!("no release named `{name}` (tresor release list)")))?;
        if target.status == Status::Active {
            return Err(AssistantError::Invalid(format!("release `{name}` is active already")));
        }
        if let Some(c) = self.set.canary_release() {
            if c.name != name {
                return Err(AssistantError::Invalid(format!("release `{}` is running as a canary: promote or roll it back first", c.name)));
            }
        }
        let t = now();
        let previous = self.set.active().map(|r| r.name.clone());
        if let Some(p) = &previous {
            let r = self.set.get_mut(p)?;
            r.status = Status::Retired;
            r.share = 0.0;
            r.history.push(Step { at: t.0.clone(), at_ms: t.1, action: "retire".into(), actor: who.actor.clone(), status: Status::Retired, share: 0.0, reason: Some(format!("replaced by `{name}`")), gate: None });
        }
        let r = self.set.get_mut(name)?;
        r.status = Status::Active;
        r.share = 1.0;
        r.reason = None;
        r.previous = previous.clone();
        r.since_ms = t.1;
        r.history.push(Step { at: t.0, at_ms: t.1, action: action.into(), actor: who.actor.clone(), status: Status::Active, share: 1.0, reason: reason.clone(), gate: gate.clone() });
        self.commit(who, "release.promote", json!({ "name": name, "previous": previous, "via": action, "reason": reason, "gate": gate_summary(&gate) }))
    }

    /// `rollback`: a running canary is stopped (its share goes back to the active release); without
    /// one, the active release is rolled back and the one it replaced is active again.
    /// Returns the name of the release rolled back.
    pub fn rollback(&mut self, reason: Option<&str>, who: &Actor) -> Result<String> {
        self.rollback_as(reason.map(str::to_string), who, "release.rollback")
    }

    fn rollback_as(&mut self, reason: Option<String>, who: &Actor, event: &str) -> Result<String> {
        let t = now();
        let reason = reason.unwrap_or_else(|| "by hand".into());
        if let Some(c) = self.set.canary_release().map(|r| r.name.clone()) {
            let r = self.set.get_mut(&c)?;
            r.status = Status::RolledBack;
            r.share = 0.0;
            r.reason = Some(reason.clone());
            r.history.push(Step { at: t.0, at_ms: t.1, action: "rollback".into(), actor: who.actor.clone(), status: Status::RolledBack, share: 0.0, reason: Some(reason.clone()), gate: None });
            self.set.rebalance();
            self.commit(who, event, json!({ "name": c, "was": "canary", "reason": reason }))?;
            return Ok(c);
        }
        let Some(active) = self.set.active().map(|r| (r.name.clone(), r.previous.clone())) else {
            return Err(AssistantError::Invalid("nothing to roll back: no canary and no active release".into()));
        };
        let (name, previous) = active;
        let r = self.set.get_mut(&name)?;
        r.status = Status::RolledBack;
        r.share = 0.0;
        r.reason = Some(reason.clone());
        r.history.push(Step { at: t.0.clone(), at_ms: t.1, action: "rollback".into(), actor: who.actor.clone(), status: Status::RolledBack, share: 0.0, reason: Some(reason.clone()), gate: None });
        if let Some(p) = &previous {
            let back = self.set.get_mut(p)?;
            back.status = Status::Active;
            back.share = 1.0;
            back.since_ms = t.1;
            back.history.push(Step { at: t.0, at_ms: t.1, action: "restore".into(), actor: who.actor.clone(), status: Status::Active, share: 1.0, reason: Some(format!("`{name}` rolled back")), gate: None });
        }
        self.commit(who, event, json!({ "name": name, "was": "active", "restored": previous, "reason": reason }))?;
        Ok(name)
    }

    /// Sets the canary's share to `share` (a step of `canary-step`), audited as `release.canary_step`.
    fn step_to(&mut self, name: &str, share: f64, why: &str, who: &Actor) -> Result<()> {
        let t = now();
        let r = self.set.get_mut(name)?;
        let from = r.share;
        r.share = share;
        r.since_ms = t.1;
        r.history.push(Step { at: t.0, at_ms: t.1, action: "canary_step".into(), actor: who.actor.clone(), status: Status::Canary, share, reason: Some(why.into()), gate: None });
        self.set.rebalance();
        self.commit(who, "release.canary_step", json!({ "name": name, "from": from, "to": share, "reason": why }))
    }

    /// Replaces the canary settings (validated; audited).
    pub fn set_canary_config(&mut self, cfg: CanaryConfig, who: &Actor) -> Result<()> {
        cfg.validate().map_err(AssistantError::Invalid)?;
        self.set.canary = cfg.clone();
        self.commit(who, "release.canary_config", serde_json::to_value(&cfg).unwrap_or_default())
    }
}

/// What the audit log keeps of a gate: the file's hash and verdict, not its content.
fn gate_summary(g: &Option<Gate>) -> Value {
    match g {
        Some(g) => json!({ "sha256": g.sha256, "passed": g.passed }),
        None => Value::Null,
    }
}

fn now() -> (String, i64) {
    let ts = jiff::Timestamp::now();
    (ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), ts.as_millisecond())
}

/// One line of `diff A B`: a field that differs, with both values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffLine {
    /// `prompt.en`, `policy`, `config.evidence_threshold`, ...
    pub field: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// What differs between releases `a` and `b`: prompts by key, policy text by line, config by key
/// (each side's config over the defaults, so an unset knob compares as its default).
pub fn diff(a: &Release, b: &Release) -> Vec<DiffLine> {
    let mut out = Vec::new();
    let pa = a.prompt.clone().unwrap_or_default();
    let pb = b.prompt.clone().unwrap_or_default();
    for (k, x, y) in [("prompt.en", &pa.en, &pb.en), ("prompt.de", &pa.de, &pb.de), ("prompt.general", &pa.general, &pb.general)] {
        if x != y {
            out.push(DiffLine { field: k.into(), a: x.clone(), b: y.clone() });
        }
    }
    if a.policy != b.policy {
        let la: Vec<&str> = a.policy.as_deref().unwrap_or("").lines().collect();
        let lb: Vec<&str> = b.policy.as_deref().unwrap_or("").lines().collect();
        for l in la.iter().filter(|l| !lb.contains(l) && !l.trim().is_empty()) {
            out.push(DiffLine { field: "policy".into(), a: Some(l.to_string()), b: None });
        }
        for l in lb.iter().filter(|l| !la.contains(l) && !l.trim().is_empty()) {
            out.push(DiffLine { field: "policy".into(), a: None, b: Some(l.to_string()) });
        }
    }
    let flat = |c: &Option<String>| -> Vec<(String, String)> {
        let cfg = c.as_deref().and_then(|t| AssistantConfig::from_toml(t).ok()).unwrap_or_default();
        let mut v = Vec::new();
        flatten("config", &serde_json::to_value(cfg).unwrap_or_default(), &mut v);
        v
    };
    let (ca, cb) = (flat(&a.config), flat(&b.config));
    for (k, va) in &ca {
        let vb = cb.iter().find(|(kb, _)| kb == k).map(|(_, v)| v.clone());
        if vb.as_ref() != Some(va) {
            out.push(DiffLine { field: k.clone(), a: Some(va.clone()), b: vb });
        }
    }
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.to_string())),
    }
}
