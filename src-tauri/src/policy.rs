//! The admin policy as the Settings screen shows it: read-only, locked items
//! marked. Everything shown comes from tresor-guard's own loader
//! (`PolicyPaths::load`, the call enforcement makes): the effective value of
//! every policy item after defaults ← admin ← user, whether tresor-guard
//! treats it as locked (`Policy::is_locked`), which layer set it, the files
//! read and the admin key whose signature verified — so the view cannot
//! disagree with what is enforced. When tresor-guard refuses the policy the
//! view says why and shows the files, with no items.
//! Never parses policy TOML itself, validates signatures, writes or enforces
//! the policy.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tresor_guard::policy::{Policy, PolicyPaths};

#[derive(Debug, Serialize, Deserialize, ts_rs::TS)]
pub struct PolicyView {
    /// The policy files in force, admin first (empty: the built-in defaults only).
    pub files: Vec<PolicyFileView>,
    /// Every policy item with its effective value and whether an admin locked it
    /// (empty when tresor-guard refuses the policy).
    pub items: Vec<PolicyItem>,
    /// Why tresor-guard refuses the policy (bad signature, unknown key, a user
    /// change to a locked item); None when it loads.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ts_rs::TS)]
pub struct PolicyFileView {
    pub path: String,
    /// "admin" or "user".
    #[ts(type = "'admin' | 'user'")]
    pub role: String,
    /// The admin key whose signature verified (None: unsigned, or not loaded).
    pub signed_by: Option<String>,
    /// The file as written, shown read-only.
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, ts_rs::TS)]
pub struct PolicyItem {
    /// tresor-guard's item name (`answer`, `topics.legal_advice`, ...), the names `locked = [...]` uses.
    pub key: String,
    pub value: String,
    pub locked: bool,
    /// Who set the value: "built-in" or the policy file's path.
    pub origin: String,
}

/// The policy in force for `data_dir`, found where tresor-guard finds it
/// (`TRESOR_POLICY` or /etc/tresor/policy.toml, then `DATA_DIR/policy.toml`).
pub fn view(data_dir: &Path) -> Result<PolicyView> {
    view_with(&PolicyPaths::for_data_dir(data_dir))
}

pub fn view_with(paths: &PolicyPaths) -> Result<PolicyView> {
    let read = |path: &Path, role: &str, signed_by: Option<String>| -> Result<PolicyFileView> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(PolicyFileView { path: path.display().to_string(), role: role.to_string(), signed_by, text })
    };
    match paths.load() {
        Ok(policy) => {
            let files = policy.files.iter().map(|f| read(&f.path, &f.role, f.signed_by.clone())).collect::<Result<_>>()?;
            Ok(PolicyView { files, items: items(&policy), error: None })
        }
        Err(e) => {
            let mut files = Vec::new();
            for (path, role) in [(&paths.admin, "admin"), (&paths.user, "user")] {
                if let Some(p) = path.as_deref().filter(|p| p.is_file()) {
                    files.push(read(p, role, None)?);
                }
            }
            Ok(PolicyView { files, items: Vec::new(), error: Some(e.to_string()) })
        }
    }
}

/// Every item of the effective policy, in tresor-guard's order (`ITEMS`, each
/// topic after `topics`), valued as `tresor policy show` words them.
pub fn items(p: &Policy) -> Vec<PolicyItem> {
    let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    let mut out = Vec::new();
    for &item in tresor_guard::policy::ITEMS {
        let value = match item {
            "detection" => format!("threshold {:.2}", p.detection_threshold),
            "topics" => list(&p.topics.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
            "disclaimer" if p.disclaimer.is_empty() => "none".to_string(),
            "disclaimer" => format!("en: {:?}, de: {:?}", p.disclaimer.en, p.disclaimer.de),
            "blocked_terms" => format!("{} terms ({:?} in answers)", p.blocked_terms.len(), p.blocked_action).to_lowercase(),
            "price_promises" if p.price_promises => format!("removed from answers ({} promise words)", p.price_words.len()),
            "price_promises" => "not checked".to_string(),
            "tools" => match p.tools_allowed_list() {
                None => "all built-in tools".to_string(),
                Some(v) => list(v),
            },
            "answer" => format!("at most {} characters", p.max_answer_chars),
            "languages" => p.allowed_languages.join(", "),
            "injection" => format!("{:?}", p.injection_action).to_lowercase(),
            other => other.to_string(),
        };
        push(p, &mut out, item.to_string(), value);
        if item == "topics" {
            for t in &p.topics {
                let state = if !t.enabled {
                    "disabled".to_string()
                } else if p.lifted(&t.unless_tool) {
                    format!("lifted: tool `{}` is allowed", t.unless_tool.as_deref().unwrap_or_default())
                } else {
                    format!("{} ({})", t.action, t.title.en)
                };
                push(p, &mut out, format!("topics.{}", t.name), state);
            }
        }
    }
    out
}

fn push(p: &Policy, out: &mut Vec<PolicyItem>, key: String, value: String) {
    let locked = p.is_locked(&key);
    let origin = p.origin.get(&key).cloned().unwrap_or_else(|| "built-in".to_string());
    out.push(PolicyItem { key, value, locked, origin });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn paths(admin: Option<PathBuf>, user: Option<PathBuf>) -> PolicyPaths {
        PolicyPaths { admin, user, admin_keys: None }
    }

    fn get<'a>(v: &'a PolicyView, k: &str) -> &'a PolicyItem {
        v.items.iter().find(|i| i.key == k).unwrap_or_else(|| panic!("no item {k}: {v:?}"))
    }

    #[test]
    fn the_view_is_tresor_guards_policy_with_its_locks() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.toml");
        std::fs::write(&admin, "locked = [\"answer\", \"topics.legal_advice\"]\n[answer]\nmax_chars = 800\n[injection]\nlocked = true\naction = \"block\"\n").unwrap();
        let v = view_with(&paths(Some(admin.clone()), None)).unwrap();
        assert_eq!(v.error, None);
        assert_eq!(v.files.len(), 1);
        assert_eq!(v.files[0].role, "admin");
        assert!(v.files[0].text.contains("max_chars = 800"));
        let answer = get(&v, "answer");
        assert!(answer.locked && answer.value.contains("800"), "{answer:?}");
        assert_eq!(answer.origin, admin.display().to_string());
        let inj = get(&v, "injection");
        assert!(inj.locked && inj.value == "block", "a table with locked = true: {inj:?}");
        assert!(get(&v, "topics.legal_advice").locked);
        // not locked, still shown with the built-in value
        let lang = get(&v, "languages");
        assert!(!lang.locked && lang.value == "de, en" && lang.origin == "built-in", "{lang:?}");
        assert!(!get(&v, "topics.medical_diagnosis").locked);
        // every item tresor-guard knows, and what it says is locked is what is shown locked
        let policy = paths(Some(admin), None).load().unwrap();
        for it in &v.items {
            assert_eq!(it.locked, policy.is_locked(&it.key), "{}", it.key);
        }
        for item in tresor_guard::policy::ITEMS {
            get(&v, item);
        }
    }

    #[test]
    fn a_wildcard_lock_locks_every_item() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.toml");
        std::fs::write(&admin, "locked = [\"*\"]\n").unwrap();
        let v = view_with(&paths(Some(admin), None)).unwrap();
        assert!(!v.items.is_empty() && v.items.iter().all(|i| i.locked), "{v:?}");
    }

    #[test]
    fn a_refused_policy_is_shown_with_the_reason_and_no_items() {
        let dir = tempfile::tempdir().unwrap();
        let admin = dir.path().join("admin.toml");
        let user = dir.path().join("policy.toml");
        std::fs::write(&admin, "locked = [\"answer\"]\n").unwrap();
        // a user file changing a locked item: enforcement refuses it, so does the view
        std::fs::write(&user, "[answer]\nmax_chars = 5000\n").unwrap();
        let v = view_with(&paths(Some(admin.clone()), Some(user.clone()))).unwrap();
        let err = v.error.as_deref().unwrap();
        assert!(err.contains("locked") && err.contains("policy.toml"), "{err}");
        assert!(v.items.is_empty());
        assert_eq!(v.files.iter().map(|f| f.role.as_str()).collect::<Vec<_>>(), ["admin", "user"]);
        // what the old hand-written reader accepted and tresor-guard does not: unknown keys
        std::fs::write(&admin, "locked = [\"a\"]\na = 1\n").unwrap();
        let v = view_with(&paths(Some(admin), None)).unwrap();
        assert!(v.error.is_some() && v.items.is_empty(), "{v:?}");
    }

    #[test]
    fn no_policy_file_is_the_built_in_defaults() {
        let v = view_with(&paths(None, None)).unwrap();
        assert!(v.files.is_empty() && v.error.is_none());
        assert!(v.items.iter().all(|i| !i.locked && i.origin == "built-in"), "{v:?}");
        assert!(v.items.iter().any(|i| i.key == "topics.legal_advice"));
    }
}
