//! The admin policy as the Settings screen shows it: read-only, locked items
//! marked. The app reads the policy file itself, from the places
//! tresor-guard's policy engine reads it (`TRESOR_POLICY`, else
//! `/etc/tresor/policy.toml` for the admin's; else `DATA_DIR/policy.toml`),
//! lists its settings and what it locks: the items of a `locked = [...]`
//! array, and tables with `locked = true`. Never validates signatures, writes
//! or enforces the policy (tresor-guard does).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyView {
    /// Where the policy was found (None: no policy in force).
    pub path: Option<String>,
    /// The file as written, shown read-only.
    pub text: Option<String>,
    /// Every setting (dotted key) with its value and whether an admin locked it.
    pub items: Vec<PolicyItem>,
    /// tresor-guard's verdict on the policy in force: the admin key whose
    /// signature verified, per file ("file: key").
    pub signed_by: Vec<String>,
    /// Why tresor-guard refuses the policy (bad signature, unknown key, a user
    /// change to a locked item); None when it loads.
    pub error: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct PolicyItem {
    pub key: String,
    pub value: String,
    pub locked: bool,
}

/// Where a policy may be, first match wins.
pub fn candidates(data_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::env::var_os("TRESOR_POLICY").filter(|p| !p.is_empty()).map(PathBuf::from).into_iter().collect();
    v.push(PathBuf::from("/etc/tresor/policy.toml"));
    v.push(data_dir.join("policy.toml"));
    v
}

pub fn view(data_dir: &Path) -> Result<PolicyView> {
    let (signed_by, error) = match tresor_guard::policy::PolicyPaths::for_data_dir(data_dir).load() {
        Ok(p) => (p.files.iter().filter_map(|f| f.signed_by.as_ref().map(|k| format!("{}: {k}", f.path.display()))).collect(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let Some(path) = candidates(data_dir).into_iter().find(|p| p.is_file()) else {
        return Ok(PolicyView { path: None, text: None, items: Vec::new(), signed_by, error });
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let items = items(&text).with_context(|| format!("policy {}", path.display()))?;
    Ok(PolicyView { path: Some(path.display().to_string()), text: Some(text), items, signed_by, error })
}

/// The settings of a policy text, flattened to dotted keys; a key is locked
/// when it or a table above it is named in a `locked` array.
pub fn items(text: &str) -> Result<Vec<PolicyItem>> {
    let doc: toml::Table = toml::from_str(text)?;
    let mut locked: Vec<String> = Vec::new();
    collect_locked(&doc, "", &mut locked);
    let mut out = Vec::new();
    flatten(&doc, "", &mut out);
    for it in &mut out {
        it.locked = locked.iter().any(|l| it.key == *l || it.key.starts_with(&format!("{l}.")));
    }
    Ok(out)
}

fn collect_locked(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        match v {
            toml::Value::Boolean(true) if k == "locked" && !prefix.is_empty() => out.push(prefix.to_string()),
            toml::Value::Array(a) if k == "locked" => {
                out.extend(a.iter().filter_map(|x| x.as_str()).map(|s| if prefix.is_empty() { s.to_string() } else { format!("{prefix}.{s}") }))
            }
            toml::Value::Table(sub) => collect_locked(sub, &join(prefix, k), out),
            _ => {}
        }
    }
}

fn flatten(t: &toml::Table, prefix: &str, out: &mut Vec<PolicyItem>) {
    for (k, v) in t {
        if k == "locked" || k == "signature" {
            continue;
        }
        match v {
            toml::Value::Table(sub) => flatten(sub, &join(prefix, k), out),
            other => out.push(PolicyItem { key: join(prefix, k), value: other.to_string(), locked: false }),
        }
    }
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}.{k}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_items_are_marked() {
        let text = "locked = [\"network\", \"answers.max_tokens\"]\n[network]\nallow_pull = false\n[answers]\nmax_tokens = 200\nlanguage = \"de\"\n[injection]\nlocked = true\naction = \"block\"\n";
        let all = items(text).unwrap();
        let get = |k: &str| all.iter().find(|i| i.key == k).unwrap();
        assert!(get("network.allow_pull").locked);
        assert!(get("answers.max_tokens").locked);
        assert!(!get("answers.language").locked);
        assert_eq!(get("answers.language").value, "\"de\"");
        assert!(get("injection.action").locked, "a table with locked = true");
        assert!(items("this is = not toml [").is_err());
    }

    #[test]
    fn no_policy_file_is_no_policy() {
        let dir = tempfile::tempdir().unwrap();
        if !Path::new("/etc/tresor/policy.toml").exists() && std::env::var_os("TRESOR_POLICY").is_none() {
            let v = view(dir.path()).unwrap();
            assert!(v.path.is_none() && v.items.is_empty());
        }
        std::fs::write(dir.path().join("policy.toml"), "locked = [\"a\"]\na = 1\n").unwrap();
        let v = view(dir.path()).unwrap();
        assert_eq!(v.items, vec![PolicyItem { key: "a".into(), value: "1".into(), locked: true }]);
        // tresor-guard refuses a user file that locks items or has unknown keys: shown, not hidden
        assert!(v.error.is_some(), "{v:?}");
    }
}
