//! The catalogue: the built-in manifest, extended by the models dir's own
//! `manifest.toml` and `pulled.toml`; and `resolve`, which turns `--model`
//! (an id, a path, or nothing) into the files a runtime loads.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{IoContext, ModelsError, Result};
use crate::integrity::{quick_check, QuickProblem, Stamps};
use crate::manifest::{ManifestFile, ModelEntry, Role, BUILTIN_MANIFEST};
use crate::paths::absolute;

/// The user's own additions/overrides, in the models dir.
pub const USER_MANIFEST: &str = "manifest.toml";
/// What `tresor models pull` records (sha256s seen at first pull, new models).
pub const PULLED_MANIFEST: &str = "pulled.toml";

/// Every model Tresor knows, for one models directory.
#[derive(Debug, Clone)]
pub struct Catalog {
    models_dir: PathBuf,
    models: Vec<ModelEntry>,
}

/// What a runtime needs to load a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedModel {
    /// Catalogue id; for a path outside the catalogue, its file (or dir) name.
    pub id: String,
    pub role: Role,
    /// From the manifest; None for a path outside the catalogue (read it from the file).
    pub architecture: Option<String>,
    /// Absolute: the file, or the directory of a directory model.
    pub path: PathBuf,
    /// From the manifest; None: use the file's own (GGUF `tokenizer.chat_template`).
    pub chat_template: Option<String>,
    pub context_length: Option<usize>,
}

impl Catalog {
    /// The built-in catalogue, then `<models_dir>/manifest.toml`, then
    /// `<models_dir>/pulled.toml`; an entry replaces an earlier one with the same id.
    /// A models dir that does not exist yet is fine (built-in catalogue only).
    pub fn load(models_dir: &Path) -> Result<Catalog> {
        let models_dir = absolute(models_dir);
        let mut catalog = Catalog { models: ManifestFile::builtin()?.models, models_dir };
        for name in [USER_MANIFEST, PULLED_MANIFEST] {
            let path = catalog.models_dir.join(name);
            let text = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ModelsError::io("reading", path, e)),
            };
            // The checkout's models/manifest.toml is the built-in one.
            if text == BUILTIN_MANIFEST {
                continue;
            }
            let file = ManifestFile::parse(&text, &path.display().to_string())?;
            catalog.merge(file.models);
        }
        Ok(catalog)
    }

    /// A catalogue from explicit entries only (no built-in models, no files read).
    pub fn from_entries(models_dir: &Path, models: Vec<ModelEntry>) -> Catalog {
        Catalog { models_dir: absolute(models_dir), models }
    }

    fn merge(&mut self, entries: Vec<ModelEntry>) {
        for e in entries {
            match self.models.iter_mut().find(|m| m.id == e.id) {
                Some(slot) => *slot = e,
                None => self.models.push(e),
            }
        }
    }

    /// The (absolute) models directory this catalogue describes.
    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    /// Every model, built-in first, in manifest order.
    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// Like `get`, with an error that lists the known ids.
    pub fn require(&self, id: &str) -> Result<&ModelEntry> {
        self.get(id).ok_or_else(|| ModelsError::NoSuchModel { id: id.to_string(), known: self.known_ids() })
    }

    /// Models of this role, shipped defaults first, then manifest order.
    pub fn by_role(&self, role: Role) -> Vec<&ModelEntry> {
        let mut v: Vec<&ModelEntry> = self.models.iter().filter(|m| m.role == role).collect();
        v.sort_by_key(|m| !m.default);
        v
    }

    /// The shipped defaults (`default = true`): what `setup` installs.
    pub fn defaults(&self) -> Vec<&ModelEntry> {
        self.models.iter().filter(|m| m.default).collect()
    }

    /// Absolute path the runtime loads for `model`.
    pub fn model_path(&self, model: &ModelEntry) -> PathBuf {
        self.models_dir.join(model.load_path())
    }

    /// Absolute path of one file (`path` as in the manifest).
    pub fn file_path(&self, rel: &str) -> PathBuf {
        self.models_dir.join(rel)
    }

    /// Are all of the model's files in place with the right size (no hashing)?
    pub fn is_installed(&self, model: &ModelEntry) -> bool {
        quick_check(&self.models_dir, model, &Stamps::load(&self.models_dir)).is_ok()
    }

    /// Turn `--model SPEC` into what a runtime loads.
    ///
    /// `spec` is a catalogue id, or a path to a file/directory (relative to the
    /// current directory). A path that is a catalogue model's file gets that
    /// model's metadata; any other existing path is accepted with architecture
    /// and template left to the file; last, a folder of that name in the
    /// models directory (placed there by hand or by `tresor models distill`).
    /// `None` picks the installed model for
    /// `role` (shipped default first). Missing files give an error that says
    /// how to install them (`tresor models setup` / `pull`).
    pub fn resolve(&self, spec: Option<&str>, role: Role) -> Result<ResolvedModel> {
        let stamps = Stamps::load(&self.models_dir);
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return self.resolve_role(role, &stamps);
        };
        if let Some(model) = self.get(spec) {
            self.check_role(model, role)?;
            self.ensure_installed(model, &stamps)?;
            return Ok(self.resolved(model));
        }
        let path = Path::new(spec);
        if path.exists() {
            let abs = path.canonicalize().io_ctx("resolving", path)?;
            if let Some(model) = self
                .models
                .iter()
                .find(|m| self.model_path(m).canonicalize().is_ok_and(|p| p == abs))
            {
                self.check_role(model, role)?;
                return Ok(ResolvedModel { path: abs, ..self.resolved(model) });
            }
            let id = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| spec.to_string());
            return Ok(ResolvedModel { id, role, architecture: None, path: abs, chat_template: None, context_length: None });
        }
        // a folder placed in the models directory by name (e.g. `tresor models distill`'s output)
        let in_dir = self.models_dir.join(spec);
        if !spec.contains(['/', '\\']) && in_dir.is_dir() {
            return Ok(ResolvedModel { id: spec.to_string(), role, architecture: None, path: in_dir, chat_template: None, context_length: None });
        }
        Err(ModelsError::UnknownModel { spec: spec.to_string(), known: self.known_ids() })
    }

    fn resolve_role(&self, role: Role, stamps: &Stamps) -> Result<ResolvedModel> {
        let candidates = self.by_role(role);
        if let Some(model) = candidates.iter().find(|m| quick_check(&self.models_dir, m, stamps).is_ok()) {
            return Ok(self.resolved(model));
        }
        let hint = match candidates.first() {
            Some(first) if first.default => "run `tresor models setup` to install the shipped defaults".to_string(),
            Some(_) => {
                let hints: Vec<String> = candidates.iter().map(|m| format!("{} ({})", m.id, m.install_hint())).collect();
                format!("install one of: {}", hints.join("; "))
            }
            None => "the catalogue has no model for this role; pass --model PATH".to_string(),
        };
        Err(ModelsError::NoModelForRole { role: role.to_string(), models_dir: self.models_dir.clone(), hint })
    }

    fn check_role(&self, model: &ModelEntry, wanted: Role) -> Result<()> {
        if model.role.serves(wanted) {
            Ok(())
        } else {
            Err(ModelsError::WrongRole { id: model.id.clone(), role: model.role.to_string(), wanted: wanted.to_string() })
        }
    }

    fn ensure_installed(&self, model: &ModelEntry, stamps: &Stamps) -> Result<()> {
        match quick_check(&self.models_dir, model, stamps) {
            Ok(()) => Ok(()),
            Err(QuickProblem::Missing(path)) => {
                Err(ModelsError::NotInstalled { id: model.id.clone(), path, hint: model.install_hint() })
            }
            Err(QuickProblem::Corrupt(detail)) => Err(ModelsError::Corrupt {
                id: model.id.clone(),
                detail,
                hint: format!("run `tresor models remove {}`, then {}", model.id, model.install_hint()),
            }),
        }
    }

    fn resolved(&self, model: &ModelEntry) -> ResolvedModel {
        ResolvedModel {
            id: model.id.clone(),
            role: model.role,
            architecture: model.architecture.clone(),
            path: self.model_path(model),
            chat_template: model.chat_template.clone(),
            context_length: model.context_length,
        }
    }

    pub(crate) fn known_ids(&self) -> String {
        self.models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{write_manifest, TestModel};

    fn dir_with(models: &[TestModel]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        write_manifest(tmp.path(), models);
        tmp
    }

    #[test]
    fn empty_dir_gives_the_builtin_catalogue() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Catalog::load(&tmp.path().join("not-yet")).unwrap();
        assert!(c.get("smollm2-135m-instruct").is_some());
        assert_eq!(c.defaults().len(), 3);
        assert_eq!(c.by_role(Role::Embed)[0].id, "all-minilm-l6-v2");
        assert_eq!(c.by_role(Role::ChatSmall)[0].id, "smollm2-135m-instruct", "defaults come first");
        assert_eq!(c.by_role(Role::Rerank)[0].id, "ms-marco-minilm-l6-v2");
    }

    #[test]
    fn user_manifest_and_pulled_toml_extend_and_override() {
        let tmp = dir_with(&[TestModel::hub_file("extra", "chat-small", "extra.gguf", None)]);
        fs::write(
            tmp.path().join(PULLED_MANIFEST),
            r#"
[[model]]
id = "smollm2-135m-instruct"
role = "chat-small"
context_length = 2048
source = { type = "hub", repo = "me/smol" }
files = [{ path = "smol.gguf", hub_file = "smol.gguf" }]
"#,
        )
        .unwrap();
        let c = Catalog::load(tmp.path()).unwrap();
        assert!(c.get("extra").is_some());
        let smol = c.get("smollm2-135m-instruct").unwrap();
        assert_eq!(smol.context_length, Some(2048));
        assert_eq!(smol.files[0].path, "smol.gguf");
        assert_eq!(c.models().iter().filter(|m| m.id == "smollm2-135m-instruct").count(), 1);
    }

    #[test]
    fn a_broken_user_manifest_is_an_error_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(USER_MANIFEST), "[[model]]\nid = 3\n").unwrap();
        let e = Catalog::load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains(&tmp.path().join(USER_MANIFEST).display().to_string()), "{e}");
    }

    #[test]
    fn resolve_by_id_role_and_path() {
        let tmp = dir_with(&[
            TestModel::hub_file("tiny-chat", "chat-small", "tiny.gguf", Some(b"tiny")),
            TestModel::hub_dir("tiny-embed", "embed", &[("config.json", b"{}"), ("model.safetensors", b"w")]),
        ]);
        let c = Catalog::load(tmp.path()).unwrap();

        // Not installed yet: the error says how to install.
        let e = c.resolve(Some("tiny-chat"), Role::ChatSmall).unwrap_err();
        assert!(matches!(e, ModelsError::NotInstalled { .. }));
        assert!(e.to_string().contains("tresor models pull"), "{e}");
        let e = c.resolve(None, Role::ChatSmall).unwrap_err().to_string();
        assert!(e.contains("no chat-small model is installed") && e.contains("tresor models setup"), "{e}");

        fs::write(tmp.path().join("tiny.gguf"), b"tiny").unwrap();
        fs::create_dir_all(tmp.path().join("tiny-embed")).unwrap();
        fs::write(tmp.path().join("tiny-embed/config.json"), b"{}").unwrap();
        fs::write(tmp.path().join("tiny-embed/model.safetensors"), b"w").unwrap();

        let r = c.resolve(Some("tiny-chat"), Role::ChatSmall).unwrap();
        assert_eq!(r.id, "tiny-chat");
        assert_eq!(r.path, tmp.path().join("tiny.gguf"));
        assert!(r.path.is_absolute());
        assert_eq!(r.chat_template.as_deref(), Some("chatml"));
        assert_eq!(r.architecture.as_deref(), Some("llama"));

        // By role: the only installed chat-small model (the default SmolLM2 is missing).
        assert_eq!(c.resolve(None, Role::ChatSmall).unwrap().id, "tiny-chat");
        // A chat-small model serves a chat-premium request when named explicitly.
        assert_eq!(c.resolve(Some("tiny-chat"), Role::ChatPremium).unwrap().role, Role::ChatSmall);
        // But an embedder is not a chat model.
        let e = c.resolve(Some("tiny-embed"), Role::ChatSmall).unwrap_err();
        assert!(matches!(e, ModelsError::WrongRole { .. }), "{e}");
        // Directory models resolve to their directory.
        let r = c.resolve(None, Role::Embed).unwrap();
        assert_eq!((r.id.as_str(), r.path.clone()), ("tiny-embed", tmp.path().join("tiny-embed")));

        // A path to a catalogue file gets the catalogue's metadata.
        let r = c.resolve(Some(tmp.path().join("tiny.gguf").to_str().unwrap()), Role::ChatSmall).unwrap();
        assert_eq!(r.id, "tiny-chat");
        assert_eq!(r.chat_template.as_deref(), Some("chatml"));
        // A path outside the catalogue: accepted, metadata left to the file.
        let other = tmp.path().join("elsewhere.gguf");
        fs::write(&other, b"x").unwrap();
        let r = c.resolve(Some(other.to_str().unwrap()), Role::ChatSmall).unwrap();
        assert_eq!(r.id, "elsewhere.gguf");
        assert_eq!((r.architecture, r.chat_template, r.context_length), (None, None, None));
        assert_eq!(r.role, Role::ChatSmall);

        let e = c.resolve(Some("no-such-thing"), Role::ChatSmall).unwrap_err().to_string();
        assert!(e.contains("neither a model id") && e.contains("tiny-chat"), "{e}");

        // A folder in the models dir by name (`tresor models distill` writes one), from any cwd.
        fs::create_dir_all(tmp.path().join("tiny-embed-static")).unwrap();
        let r = c.resolve(Some("tiny-embed-static"), Role::Embed).unwrap();
        assert_eq!((r.id.as_str(), r.path.clone()), ("tiny-embed-static", tmp.path().join("tiny-embed-static")));
        assert!(c.resolve(Some("../tiny-embed-static"), Role::Embed).is_err(), "only a plain name is looked up there");
    }

    #[test]
    fn resolve_flags_a_wrong_size_as_corrupt() {
        let tmp = dir_with(&[TestModel::hub_file("tiny-chat", "chat-small", "tiny.gguf", Some(b"tiny"))]);
        fs::write(tmp.path().join("tiny.gguf"), b"tiny but longer").unwrap();
        let c = Catalog::load(tmp.path()).unwrap();
        let e = c.resolve(Some("tiny-chat"), Role::ChatSmall).unwrap_err();
        assert!(matches!(e, ModelsError::Corrupt { .. }), "{e}");
        assert!(!c.is_installed(c.get("tiny-chat").unwrap()));
    }

    #[test]
    fn shipped_defaults_resolve_in_this_checkout_when_installed() {
        // The checkout's models/ dir (weights are git-ignored; skip when absent).
        let dir = crate::paths::checkout_models_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let c = Catalog::load(&dir).unwrap();
        let smol = c.get("smollm2-135m-instruct").unwrap();
        if !c.is_installed(smol) {
            eprintln!("shipped models not installed in {}; skipping", dir.display());
            return;
        }
        let r = c.resolve(None, Role::ChatSmall).unwrap();
        assert_eq!(r.id, "smollm2-135m-instruct");
        assert_eq!(r.context_length, Some(8192));
    }
}
