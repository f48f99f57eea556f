//! Is a model installed, and intact? sha256 of every file, with a small stamp
//! file (`.tresor-verified.json` in the models dir) that remembers each
//! file's hash keyed by size + mtime, so that re-checks of unchanged files are
//! instant. Also `remove` and the helpers that write files atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::error::{IoContext, ModelsError, Result};
use crate::manifest::{FileEntry, ModelEntry, Role};

/// Name of the stamp file inside the models dir.
pub const STAMP_FILE: &str = ".tresor-verified.json";

/// How hard to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Trust a stamp whose size and mtime still match; hash otherwise.
    Cached,
    /// Hash every file, whatever the stamps say (and refresh them).
    Full,
}

/// The state of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FileState {
    /// Present and its sha256 matches the manifest.
    Ok,
    /// Present, but the manifest does not know its sha256 yet.
    Unverified,
    Missing,
    WrongSize { expected: u64, actual: u64 },
    WrongHash { expected: String, actual: String },
}

impl FileState {
    pub fn is_bad(&self) -> bool {
        matches!(self, FileState::WrongSize { .. } | FileState::WrongHash { .. })
    }
    pub fn is_present(&self) -> bool {
        !matches!(self, FileState::Missing)
    }
}

/// One file's check.
#[derive(Debug, Clone, Serialize)]
pub struct FileStatus {
    /// As in the manifest, relative to the models dir.
    pub path: String,
    #[serde(flatten)]
    pub state: FileState,
    /// The file's actual sha256, when it was hashed (or a fresh stamp knew it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A model's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelStatus {
    /// Every file present and verified.
    Installed,
    /// Every file present, some without a known sha256 to check against.
    Unverified,
    /// No file present.
    Missing,
    /// Some files present (and fine), some missing.
    Incomplete,
    /// A file has the wrong size or hash.
    Corrupt,
}

impl ModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Installed => "installed",
            ModelStatus::Unverified => "installed (sha256 unknown)",
            ModelStatus::Missing => "missing",
            ModelStatus::Incomplete => "incomplete",
            ModelStatus::Corrupt => "corrupt",
        }
    }
    /// Usable by the runtime (present; verified or at least not known bad).
    pub fn is_usable(self) -> bool {
        matches!(self, ModelStatus::Installed | ModelStatus::Unverified)
    }

    fn from_files(files: &[FileStatus]) -> ModelStatus {
        if files.iter().any(|f| f.state.is_bad()) {
            ModelStatus::Corrupt
        } else if files.iter().all(|f| f.state == FileState::Missing) {
            ModelStatus::Missing
        } else if files.iter().any(|f| f.state == FileState::Missing) {
            ModelStatus::Incomplete
        } else if files.iter().all(|f| f.state == FileState::Ok) {
            ModelStatus::Installed
        } else {
            ModelStatus::Unverified
        }
    }
}

impl std::fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The check of one model.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyResult {
    pub id: String,
    pub role: Role,
    pub status: ModelStatus,
    /// What the runtime loads (absolute): the file, or the dir of a directory model.
    pub path: PathBuf,
    pub files: Vec<FileStatus>,
}

/// Check every model of the catalogue in `models_dir`, hashing every present
/// file (the thorough check behind `tresor models verify`).
pub fn verify(models_dir: &Path) -> Result<Vec<VerifyResult>> {
    verify_with(models_dir, Check::Full, false)
}

/// Like [`verify`], choosing how hard to look and whether to draw progress bars.
pub fn verify_with(models_dir: &Path, check: Check, progress: bool) -> Result<Vec<VerifyResult>> {
    let catalog = Catalog::load(models_dir)?;
    let mut stamps = Stamps::load(catalog.models_dir());
    let results = catalog
        .models()
        .iter()
        .map(|m| check_model(&catalog, m, check, &mut stamps, progress))
        .collect();
    stamps.save();
    Ok(results)
}

pub(crate) fn check_model(catalog: &Catalog, model: &ModelEntry, check: Check, stamps: &mut Stamps, progress: bool) -> VerifyResult {
    let files: Vec<FileStatus> = model
        .files
        .iter()
        .map(|f| check_file(catalog.models_dir(), f, check, stamps, progress))
        .collect();
    VerifyResult {
        id: model.id.clone(),
        role: model.role,
        status: ModelStatus::from_files(&files),
        path: catalog.models_dir().join(model.load_path()),
        files,
    }
}

/// Check one file: present, right size, right sha256.
pub(crate) fn check_file(models_dir: &Path, file: &FileEntry, check: Check, stamps: &mut Stamps, progress: bool) -> FileStatus {
    let path = models_dir.join(&file.path);
    let status = |state, sha256| FileStatus { path: file.path.clone(), state, sha256 };
    let meta = match fs::metadata(&path) {
        Ok(m) if m.is_file() => m,
        _ => return status(FileState::Missing, None),
    };
    if let Some(expected) = file.size {
        if meta.len() != expected {
            return status(FileState::WrongSize { expected, actual: meta.len() }, None);
        }
    }
    let actual = match (check, stamps.fresh(&file.path, &meta)) {
        (Check::Cached, Some(sha)) => sha,
        _ => match hash_file(&path, progress) {
            Ok(sha) => {
                stamps.record(&file.path, &meta, &sha);
                sha
            }
            // Unreadable: as good as corrupt, and say why in the hash slot.
            Err(e) => {
                let actual = format!("unreadable: {e}");
                let expected = file.sha256.clone();
                return status(FileState::WrongHash { expected, actual }, None);
            }
        },
    };
    let state = match file.expected_sha256() {
        None => FileState::Unverified,
        Some(exp) if exp == actual => FileState::Ok,
        Some(exp) => FileState::WrongHash { expected: exp.to_string(), actual: actual.clone() },
    };
    status(state, Some(actual))
}

/// Cheap presence check used on every model resolution: files exist with the
/// right size, and no fresh stamp says the content is wrong. No hashing.
pub(crate) fn quick_check(models_dir: &Path, model: &ModelEntry, stamps: &Stamps) -> std::result::Result<(), QuickProblem> {
    for f in &model.files {
        let path = models_dir.join(&f.path);
        let meta = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            _ => return Err(QuickProblem::Missing(path)),
        };
        if let Some(size) = f.size {
            if meta.len() != size {
                return Err(QuickProblem::Corrupt(format!("{} has {} bytes, expected {size}", path.display(), meta.len())));
            }
        }
        if let (Some(exp), Some(actual)) = (f.expected_sha256(), stamps.fresh(&f.path, &meta)) {
            if exp != actual {
                return Err(QuickProblem::Corrupt(format!("{} has sha256 {actual}, expected {exp}", path.display())));
            }
        }
    }
    Ok(())
}

pub(crate) enum QuickProblem {
    Missing(PathBuf),
    Corrupt(String),
}

/// sha256 of a file as lowercase hex; a progress bar for big files if asked.
pub fn hash_file(path: &Path, progress: bool) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let len = f.metadata()?.len();
    let bar = crate::progress::bytes_bar(progress && len > 32 << 20, len, format!("checking {}", file_name(path)));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(hex::encode(hasher.finalize()))
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}

/// What `remove` deleted.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveReport {
    pub id: String,
    /// Files (and partial downloads) deleted; empty when nothing was installed.
    pub removed: Vec<PathBuf>,
}

/// Delete a model's files (and any partial download of them) from `models_dir`.
/// Its catalogue entry stays, so `list` shows it as missing and a later
/// `setup`/`pull` can bring it back.
pub fn remove(models_dir: &Path, id: &str) -> Result<RemoveReport> {
    let catalog = Catalog::load(models_dir)?;
    let model = catalog.require(id)?;
    let mut stamps = Stamps::load(catalog.models_dir());
    let mut removed = Vec::new();
    for f in &model.files {
        let path = catalog.models_dir().join(&f.path);
        for p in [path.clone(), partial_path(&path), crate::pull::resume_info_path(&path)] {
            match fs::remove_file(&p) {
                Ok(()) => removed.push(p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ModelsError::io("removing", p, e)),
            }
        }
        stamps.forget(&f.path);
    }
    if let Some(dir) = &model.dir {
        // Only if empty: never delete files the manifest does not list.
        let _ = fs::remove_dir(catalog.models_dir().join(dir));
    }
    stamps.save();
    Ok(RemoveReport { id: model.id.clone(), removed })
}

/// `<file>.partial`: where a file is written before it is verified and renamed.
pub fn partial_path(final_path: &Path) -> PathBuf {
    let mut s = final_path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Write `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).io_ctx("creating", parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ModelsError::io("writing", path, e)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_s: u64,
    mtime_ns: u32,
    sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StampFile {
    files: BTreeMap<String, Stamp>,
}

/// The verification cache: path → (size, mtime, sha256).
#[derive(Debug)]
pub(crate) struct Stamps {
    path: PathBuf,
    data: StampFile,
    dirty: bool,
}

fn mtime(meta: &fs::Metadata) -> Option<(u64, u32)> {
    let d = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((d.as_secs(), d.subsec_nanos()))
}

impl Stamps {
    pub(crate) fn load(models_dir: &Path) -> Stamps {
        let path = models_dir.join(STAMP_FILE);
        let data = fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Stamps { path, data, dirty: false }
    }

    /// The recorded sha256 if the file is unchanged since it was hashed.
    pub(crate) fn fresh(&self, rel: &str, meta: &fs::Metadata) -> Option<String> {
        let s = self.data.files.get(rel)?;
        let (secs, nanos) = mtime(meta)?;
        (s.size == meta.len() && s.mtime_s == secs && s.mtime_ns == nanos).then(|| s.sha256.clone())
    }

    pub(crate) fn record(&mut self, rel: &str, meta: &fs::Metadata, sha256: &str) {
        if let Some((mtime_s, mtime_ns)) = mtime(meta) {
            let stamp = Stamp { size: meta.len(), mtime_s, mtime_ns, sha256: sha256.to_string() };
            if self.data.files.get(rel) != Some(&stamp) {
                self.data.files.insert(rel.to_string(), stamp);
                self.dirty = true;
            }
        }
    }

    /// Record a file just written whose hash is known.
    pub(crate) fn record_path(&mut self, models_dir: &Path, rel: &str, sha256: &str) {
        if let Ok(meta) = fs::metadata(models_dir.join(rel)) {
            self.record(rel, &meta, sha256);
        }
    }

    pub(crate) fn forget(&mut self, rel: &str) {
        if self.data.files.remove(rel).is_some() {
            self.dirty = true;
        }
    }

    /// Best effort: a read-only models dir just means no cache.
    pub(crate) fn save(&mut self) {
        if !self.dirty || !self.path.parent().is_some_and(Path::is_dir) {
            return;
        }
        let bytes = serde_json::to_vec_pretty(&self.data).unwrap_or_default();
        match write_atomic(&self.path, &bytes) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!("cannot save the verification cache: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{sha256_hex, write_manifest, TestModel};

    fn setup_dir() -> (tempfile::TempDir, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        let content = b"GGUF tiny test model".to_vec();
        write_manifest(tmp.path(), &[TestModel::hub_file("tiny", "chat-small", "tiny.gguf", Some(&content))]);
        (tmp, content)
    }

    #[test]
    fn verify_reports_missing_installed_and_corrupt() {
        let (tmp, content) = setup_dir();
        let find = |r: &[VerifyResult]| r.iter().find(|v| v.id == "tiny").unwrap().clone();
        let r = verify(tmp.path()).unwrap();
        assert_eq!(find(&r).status, ModelStatus::Missing);
        // Built-in defaults are listed too (missing in an empty dir).
        assert!(r.iter().any(|v| v.id == "smollm2-135m-instruct" && v.status == ModelStatus::Missing));

        fs::write(tmp.path().join("tiny.gguf"), &content).unwrap();
        let r = verify(tmp.path()).unwrap();
        assert_eq!(find(&r).status, ModelStatus::Installed);
        assert!(tmp.path().join(STAMP_FILE).is_file());

        // Same size, one byte flipped: only hashing can tell.
        let mut bad = content.clone();
        bad[0] ^= 1;
        fs::write(tmp.path().join("tiny.gguf"), &bad).unwrap();
        let v = find(&verify(tmp.path()).unwrap());
        assert_eq!(v.status, ModelStatus::Corrupt);
        match &v.files[0].state {
            FileState::WrongHash { expected, actual } => {
                assert_eq!(expected, &sha256_hex(&content));
                assert_eq!(actual, &sha256_hex(&bad));
            }
            other => panic!("{other:?}"),
        }
        // The cached check sees it too (mtime/size changed, or the stamp records the bad hash).
        let v = find(&verify_with(tmp.path(), Check::Cached, false).unwrap());
        assert_eq!(v.status, ModelStatus::Corrupt);

        fs::write(tmp.path().join("tiny.gguf"), b"short").unwrap();
        let v = find(&verify(tmp.path()).unwrap());
        assert!(matches!(v.files[0].state, FileState::WrongSize { actual: 5, .. }));
    }

    #[test]
    fn cached_check_trusts_a_fresh_stamp() {
        let (tmp, content) = setup_dir();
        let path = tmp.path().join("tiny.gguf");
        fs::write(&path, &content).unwrap();
        let catalog = Catalog::load(tmp.path()).unwrap();
        let model = catalog.get("tiny").unwrap().clone();
        let mut stamps = Stamps::load(tmp.path());
        assert_eq!(check_model(&catalog, &model, Check::Cached, &mut stamps, false).status, ModelStatus::Installed);
        stamps.save();
        // Overwrite the stamp with a wrong hash but matching size/mtime: the
        // cached check believes it (no re-hash), the full check does not.
        let mut raw: serde_json::Value = serde_json::from_slice(&fs::read(tmp.path().join(STAMP_FILE)).unwrap()).unwrap();
        raw["files"]["tiny.gguf"]["sha256"] = serde_json::json!("0".repeat(64));
        fs::write(tmp.path().join(STAMP_FILE), serde_json::to_vec(&raw).unwrap()).unwrap();
        let mut stamps = Stamps::load(tmp.path());
        assert_eq!(check_model(&catalog, &model, Check::Cached, &mut stamps, false).status, ModelStatus::Corrupt);
        assert_eq!(check_model(&catalog, &model, Check::Full, &mut stamps, false).status, ModelStatus::Installed);
    }

    #[test]
    fn remove_deletes_files_and_partials_but_keeps_the_entry() {
        let (tmp, content) = setup_dir();
        let path = tmp.path().join("tiny.gguf");
        fs::write(&path, &content).unwrap();
        fs::write(partial_path(&path), b"half").unwrap();
        let report = remove(tmp.path(), "tiny").unwrap();
        assert_eq!(report.removed.len(), 2);
        assert!(!path.exists() && !partial_path(&path).exists());
        let again = remove(tmp.path(), "tiny").unwrap();
        assert!(again.removed.is_empty());
        let err = remove(tmp.path(), "nope").unwrap_err().to_string();
        assert!(err.contains("no model `nope`") && err.contains("tiny"), "{err}");
        assert!(Catalog::load(tmp.path()).unwrap().get("tiny").is_some());
    }

    #[test]
    fn remove_of_a_directory_model_removes_only_listed_files() {
        let tmp = tempfile::tempdir().unwrap();
        write_manifest(tmp.path(), &[TestModel::hub_dir("rr", "rerank", &[("config.json", b"{}"), ("model.safetensors", b"weights")])]);
        let dir = tmp.path().join("rr");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.json"), b"{}").unwrap();
        fs::write(dir.join("model.safetensors"), b"weights").unwrap();
        let r = verify(tmp.path()).unwrap();
        assert_eq!(r.iter().find(|v| v.id == "rr").unwrap().status, ModelStatus::Installed);
        fs::write(dir.join("notes.txt"), b"mine").unwrap();
        remove(tmp.path(), "rr").unwrap();
        assert!(dir.join("notes.txt").exists(), "unlisted files survive");
        assert!(!dir.join("config.json").exists());
        fs::remove_file(dir.join("notes.txt")).unwrap();
        fs::write(dir.join("config.json"), b"{}").unwrap();
        remove(tmp.path(), "rr").unwrap();
        assert!(!dir.exists(), "an emptied model dir goes too");
    }

    #[test]
    fn incomplete_directory_model() {
        let tmp = tempfile::tempdir().unwrap();
        write_manifest(tmp.path(), &[TestModel::hub_dir("rr", "rerank", &[("config.json", b"{}"), ("model.safetensors", b"weights")])]);
        fs::create_dir_all(tmp.path().join("rr")).unwrap();
        fs::write(tmp.path().join("rr/config.json"), b"{}").unwrap();
        let r = verify(tmp.path()).unwrap();
        assert_eq!(r.iter().find(|v| v.id == "rr").unwrap().status, ModelStatus::Incomplete);
    }
}
