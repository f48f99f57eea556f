//! `tresor models pull HUB_REPO FILE`: fetch one file of a Hugging Face hub
//! repo (or a mirror with the same URL layout) straight into the models dir.
//!
//! hf-hub 0.4 supplies the hub's URL layout (`{endpoint}/{repo}/resolve/{revision}/{file}`,
//! revision escaping), its local cache (a file already downloaded by other
//! tools is reused without network) and the login token. The transfer itself
//! is done here with ureq, because hf-hub 0.4.3's sync `download` falls short
//! for Tresor (see docs/models.md): its resume appends whatever the server
//! sends to the `.part` file without checking for `206 Partial Content`, so a
//! server that ignores `Range` corrupts the file; it never checks the final
//! size or a sha256; it insists on `X-Repo-Commit`/`ETag`/`Content-Range`
//! headers that plain mirrors lack; and it writes into the HF cache, which
//! would need a second copy in the models dir.
//!
//! Here: download into `<dest>.partial` (+ a small `.partial.json` noting the
//! URL and ETag), resume with `Range: bytes=N-` and `If-Range`, accept only a
//! matching `206` (a `200` restarts from zero), hash while writing, compare
//! with the manifest's sha256, `--sha256`, and the hub's `X-Linked-Etag` (the
//! sha256 of LFS files), then rename into place. An unknown sha256 is
//! recorded in `pulled.toml` at the first pull.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::{Catalog, PULLED_MANIFEST};
use crate::error::{IoContext, ModelsError, Result};
use crate::integrity::{file_name, hash_file, partial_path, write_atomic, Stamps};
use crate::manifest::{is_sha256_hex, valid_id, FileEntry, ManifestFile, ModelEntry, Role, Source};

/// The public hub, used when neither `--endpoint` nor `HF_ENDPOINT` is set.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How `pull` runs.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Branch, tag or commit; None: the catalogue's, else `main`.
    pub revision: Option<String>,
    /// Hub or mirror base URL; None: `$HF_ENDPOINT`, else https://huggingface.co.
    pub endpoint: Option<String>,
    /// Expected sha256 (overrides nothing: must agree with the manifest if it has one).
    pub sha256: Option<String>,
    /// Catalogue id to file the model under; None: the catalogue entry for
    /// this repo+file, else derived from the file name (GGUF) or repo name.
    pub id: Option<String>,
    /// Role for a model new to the catalogue; None: chat-small for GGUF files.
    pub role: Option<Role>,
    /// Hugging Face cache to look in before downloading; None: `$HF_HOME/hub`,
    /// else `~/.cache/huggingface/hub`.
    pub hf_cache: Option<PathBuf>,
    /// Bearer token; None: `$HF_TOKEN`, else the HF cache's `token` file.
    pub token: Option<String>,
    /// Status lines and a progress bar on stderr.
    pub progress: bool,
}

/// Pull one file of a hub repo into `models_dir`; returns the installed file's path.
pub fn pull(models_dir: &Path, repo: &str, file: &str, opts: &PullOptions) -> Result<PathBuf> {
    let catalog = Catalog::load(models_dir)?;
    let plan = plan(&catalog, repo, file, opts)?;
    execute(&catalog, plan, opts)
}

/// Pull every file of a hub-sourced catalogue model (e.g. a reranker's
/// config, weights and tokenizer); returns the model's load path.
pub fn pull_model(models_dir: &Path, id: &str, opts: &PullOptions) -> Result<PathBuf> {
    let catalog = Catalog::load(models_dir)?;
    let model = catalog.require(id)?.clone();
    let Some((repo, _)) = model.hub() else {
        return Err(ModelsError::InvalidArgument(format!(
            "model `{id}` comes from registry packages, not the hub: {}",
            model.install_hint()
        )));
    };
    let opts = PullOptions { id: Some(id.to_string()), ..opts.clone() };
    for f in &model.files {
        // Reload: an earlier file's pull may have recorded a sha256.
        let catalog = Catalog::load(models_dir)?;
        let plan = plan(&catalog, repo, f.hub_file.as_deref().unwrap_or(&f.path), &opts)?;
        execute(&catalog, plan, &opts)?;
    }
    Ok(catalog.model_path(&model))
}

/// The catalogue models whose source is hub `repo` (to pull them whole).
pub fn models_for_repo<'a>(catalog: &'a Catalog, repo: &str) -> Vec<&'a ModelEntry> {
    catalog.models().iter().filter(|m| m.hub().is_some_and(|(r, _)| r.eq_ignore_ascii_case(repo))).collect()
}

/// What to fetch and where it goes.
#[derive(Debug)]
struct Plan {
    /// The entry as it will be recorded (new, or the catalogue's with this file added).
    entry: ModelEntry,
    /// Index of the file being pulled in `entry.files`.
    idx: usize,
    repo: String,
    revision: String,
    hub_file: String,
    expected: Option<(String, &'static str)>,
    /// The entry differs from the catalogue (new model/file, changed role or revision).
    changed: bool,
}

fn plan(catalog: &Catalog, repo: &str, file: &str, opts: &PullOptions) -> Result<Plan> {
    let repo = repo.trim().trim_matches('/');
    if repo.split('/').count() != 2 || repo.split('/').any(str::is_empty) {
        return Err(ModelsError::InvalidArgument(format!("hub repo `{repo}` must look like OWNER/NAME")));
    }
    let file = file.trim().trim_start_matches('/');
    if !crate::manifest::valid_rel_path(file) {
        return Err(ModelsError::InvalidArgument(format!("`{file}` is not a file path inside a repo")));
    }
    let flag_sha = match opts.sha256.as_deref().map(|s| s.trim().to_ascii_lowercase()) {
        Some(s) if is_sha256_hex(&s) => Some(s),
        Some(s) => return Err(ModelsError::InvalidArgument(format!("--sha256 `{s}` is not 64 hex digits"))),
        None => None,
    };
    let same_repo = |m: &ModelEntry| m.hub().is_some_and(|(r, _)| r.eq_ignore_ascii_case(repo));

    let existing: Option<&ModelEntry> = match opts.id.as_deref() {
        Some(id) => {
            if !valid_id(id) {
                return Err(ModelsError::InvalidArgument(format!("`{id}` is not a valid model id (A-Z a-z 0-9 . _ -)")));
            }
            catalog.get(id)
        }
        None => catalog
            .models()
            .iter()
            .find(|m| same_repo(m) && m.files.iter().any(|f| f.hub_file.as_deref() == Some(file)))
            .or_else(|| catalog.get(&derive_id(repo, file))),
    };
    let (mut entry, changed) = match existing {
        Some(m) if same_repo(m) => (m.clone(), false),
        Some(m) => {
            return Err(ModelsError::InvalidArgument(format!(
                "model id `{}` is already taken by a model from {}; choose another with --id",
                m.id,
                match m.hub() {
                    Some((r, _)) => format!("hub repo {r}"),
                    None => "registry packages".to_string(),
                }
            )))
        }
        None => (new_entry(opts.id.clone().unwrap_or_else(|| derive_id(repo, file)), repo, file, opts)?, true),
    };
    let mut changed = changed;
    if let Some(role) = opts.role {
        changed |= entry.role != role;
        entry.role = role;
    }
    let catalogue_revision = entry.hub().map(|(_, r)| r.to_string()).unwrap_or_else(|| "main".into());
    let revision = opts.revision.clone().unwrap_or_else(|| catalogue_revision.clone());
    if revision != catalogue_revision {
        changed = true;
        entry.source = Source::Hub { repo: repo.to_string(), revision: revision.clone() };
    }

    let idx = match entry.files.iter().position(|f| f.hub_file.as_deref() == Some(file)) {
        Some(i) => {
            if revision != catalogue_revision {
                // Another revision: the recorded checksum is for other bytes.
                entry.files[i].sha256.clear();
                entry.files[i].size = None;
            }
            i
        }
        None => {
            let Some(dir) = entry.dir.clone() else {
                return Err(ModelsError::InvalidArgument(format!(
                    "model `{}` is the single file {}; to pull `{file}` as another model pass --id NEW_ID",
                    entry.id, entry.files[0].path
                )));
            };
            entry.files.push(FileEntry { path: format!("{dir}/{file}"), size: None, sha256: String::new(), from: vec![], hub_file: Some(file.to_string()) });
            changed = true;
            entry.files.len() - 1
        }
    };
    let manifest_sha = entry.files[idx].expected_sha256().map(str::to_string);
    let expected = match (flag_sha, manifest_sha) {
        (Some(f), Some(m)) if f != m => {
            return Err(ModelsError::InvalidArgument(format!(
                "--sha256 {f} disagrees with the catalogue's sha256 {m} for {}",
                entry.files[idx].path
            )))
        }
        (Some(f), _) => Some((f, "--sha256")),
        (None, Some(m)) => Some((m, "the model manifest")),
        (None, None) => None,
    };
    Ok(Plan { entry, idx, repo: repo.to_string(), revision, hub_file: file.to_string(), expected, changed })
}

/// GGUF: the file stem (`Llama-3.2-1B-Instruct-Q4_K_M.gguf` → `llama-3.2-1b-instruct-q4_k_m`);
/// otherwise the repo name, lowercased.
fn derive_id(repo: &str, file: &str) -> String {
    let base = if is_gguf(file) {
        let name = file_name(Path::new(file));
        name[..name.len() - ".gguf".len()].to_string()
    } else {
        repo.rsplit('/').next().unwrap_or(repo).to_string()
    };
    let id: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    id.trim_start_matches('.').to_string()
}

fn is_gguf(file: &str) -> bool {
    file.to_ascii_lowercase().ends_with(".gguf")
}

fn new_entry(id: String, repo: &str, file: &str, opts: &PullOptions) -> Result<ModelEntry> {
    if !valid_id(&id) {
        return Err(ModelsError::InvalidArgument(format!("cannot derive a model id from `{file}`; pass --id")));
    }
    let gguf = is_gguf(file);
    let role = match (opts.role, gguf) {
        (Some(r), _) => r,
        (None, true) => Role::ChatSmall,
        (None, false) => {
            return Err(ModelsError::InvalidArgument(format!(
                "`{repo}` is not in the catalogue: pass --role (chat-small, chat-premium, embed, rerank) to say what `{file}` is for"
            )))
        }
    };
    let (dir, path) = if gguf { (None, file_name(Path::new(file))) } else { (Some(id.clone()), format!("{id}/{file}")) };
    Ok(ModelEntry {
        id,
        name: None,
        role,
        default: false,
        architecture: None,
        format: gguf.then(|| "gguf".to_string()),
        quantization: None,
        chat_template: None,
        context_length: None,
        license: None,
        upstream: None,
        dir,
        source: Source::Hub { repo: repo.to_string(), revision: "main".to_string() },
        files: vec![FileEntry { path, size: None, sha256: String::new(), from: vec![], hub_file: Some(file.to_string()) }],
    })
}

fn say(progress: bool, msg: impl AsRef<str>) {
    if progress {
        eprintln!("{}", msg.as_ref());
    }
    tracing::info!("{}", msg.as_ref());
}

fn execute(catalog: &Catalog, mut plan: Plan, opts: &PullOptions) -> Result<PathBuf> {
    let models_dir = catalog.models_dir();
    let rel = plan.entry.files[plan.idx].path.clone();
    let dest = models_dir.join(&rel);
    let mut stamps = Stamps::load(models_dir);
    let expected = plan.expected.clone();
    let matches = |sha: &str| expected.as_ref().is_none_or(|(e, _)| e == sha);

    let endpoint = opts
        .endpoint
        .clone()
        .or_else(|| std::env::var("HF_ENDPOINT").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let endpoint = endpoint.trim_end_matches('/').to_string();
    let hf_cache = opts.hf_cache.clone().map(hf_hub::Cache::new).unwrap_or_else(hf_hub::Cache::from_env);
    let hub_repo = hf_hub::Repo::with_revision(plan.repo.clone(), hf_hub::RepoType::Model, plan.revision.clone());
    let url = hf_hub::api::sync::ApiBuilder::from_cache(hf_cache.clone())
        .with_endpoint(endpoint.clone())
        .with_progress(false)
        .build()
        .map_err(|e| ModelsError::Http { url: endpoint.clone(), detail: e.to_string() })?
        .repo(hub_repo.clone())
        .url(&plan.hub_file);

    // 1. Already in place (installed earlier, or placed by hand)?
    let mut sha = None;
    if dest.is_file() {
        let meta = fs::metadata(&dest).io_ctx("reading", &dest)?;
        let actual = match stamps.fresh(&rel, &meta) {
            Some(s) => s,
            None => hash_file(&dest, opts.progress).io_ctx("reading", &dest)?,
        };
        stamps.record(&rel, &meta, &actual);
        if matches(&actual) {
            say(opts.progress, format!("{} is already in place ({})", rel, dest.display()));
            sha = Some(actual);
        } else {
            say(opts.progress, format!("{} is in place but its sha256 {actual} is wrong; downloading it again", dest.display()));
        }
    }
    // 2. In the local Hugging Face cache (downloaded earlier by other tools)?
    if sha.is_none() {
        if let Some(cached) = hf_cache.repo(hub_repo).get(&plan.hub_file) {
            say(opts.progress, format!("copying {} from the Hugging Face cache ({})", plan.hub_file, cached.display()));
            match copy_verified(&cached, &dest, expected.as_ref().map(|(e, _)| e.as_str()), opts.progress) {
                Ok(s) => sha = Some(s),
                Err(e) => say(opts.progress, format!("not using the cached copy: {e}")),
            }
        }
    }
    // 3. Download.
    let sha = match sha {
        Some(s) => s,
        None => {
            say(opts.progress, format!("pulling {}/{} ({}) from {endpoint}", plan.repo, plan.hub_file, plan.revision));
            let token = opts
                .token
                .clone()
                .or_else(|| std::env::var("HF_TOKEN").ok().filter(|v| !v.is_empty()))
                .or_else(|| hf_cache.token());
            let dl = Download { url: &url, endpoint: &endpoint, repo: &plan.repo, hub_file: &plan.hub_file, revision: &plan.revision, dest: &dest, token, progress: opts.progress };
            dl.run(expected.as_ref().map(|(e, w)| (e.as_str(), *w)))?
        }
    };
    stamps.record_path(models_dir, &rel, &sha);
    stamps.save();

    // 4. Record what the catalogue did not know.
    let size = fs::metadata(&dest).io_ctx("reading", &dest)?.len();
    let f = &mut plan.entry.files[plan.idx];
    if f.sha256 != sha || f.size != Some(size) {
        if f.expected_sha256().is_none() {
            say(opts.progress, format!("recorded sha256 {sha} for {rel} in {PULLED_MANIFEST}"));
        }
        f.sha256 = sha;
        f.size = Some(size);
        plan.changed = true;
    }
    if plan.entry.architecture.is_none() {
        fill_metadata(&mut plan.entry, models_dir);
        plan.changed |= plan.entry.architecture.is_some();
    }
    if plan.changed {
        record_pulled(models_dir, &plan.entry)?;
    }
    say(opts.progress, format!("{}: {} verified ({})", plan.entry.id, rel, dest.display()));
    Ok(dest)
}

/// Architecture and context length of a new model, read from its files.
fn fill_metadata(entry: &mut ModelEntry, models_dir: &Path) {
    let load = models_dir.join(entry.load_path());
    if entry.dir.is_none() {
        if let Some(info) = crate::gguf::read_info(&load) {
            entry.architecture = info.architecture;
            entry.context_length = entry.context_length.or(info.context_length);
        }
    } else if let Ok(text) = fs::read_to_string(load.join("config.json")) {
        if let Ok(cfg) = serde_json::from_str::<serde_json::Value>(&text) {
            entry.architecture = cfg["model_type"].as_str().map(str::to_string);
            entry.context_length = entry.context_length.or(cfg["max_position_embeddings"].as_u64().map(|n| n as usize));
        }
    }
}

/// Upsert `entry` into `<models_dir>/pulled.toml`.
fn record_pulled(models_dir: &Path, entry: &ModelEntry) -> Result<()> {
    let path = models_dir.join(PULLED_MANIFEST);
    let mut file = match fs::read_to_string(&path) {
        Ok(text) => ManifestFile::parse(&text, &path.display().to_string())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ManifestFile { schema: 1, models: vec![] },
        Err(e) => return Err(ModelsError::io("reading", path, e)),
    };
    match file.models.iter_mut().find(|m| m.id == entry.id) {
        Some(slot) => *slot = entry.clone(),
        None => file.models.push(entry.clone()),
    }
    let text = format!(
        "# Written by `tresor models pull`: models and sha256s recorded at first pull.\n\
         # Entries here override the built-in catalogue by id (see docs/models.md).\n\n{}",
        file.to_toml()
    );
    write_atomic(&path, text.as_bytes())
}

/// Copy `src` to `<dest>.partial`, hashing; rename into place if it matches.
fn copy_verified(src: &Path, dest: &Path, expected: Option<&str>, progress: bool) -> Result<String> {
    let partial = partial_path(dest);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).io_ctx("creating", parent)?;
    }
    let mut input = fs::File::open(src).io_ctx("opening", src)?;
    let len = input.metadata().map(|m| m.len()).unwrap_or(0);
    let mut out = fs::File::create(&partial).io_ctx("creating", &partial)?;
    let bar = crate::progress::bytes_bar(progress, len, format!("copying {}", file_name(dest)));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let result = (|| -> std::io::Result<()> {
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                return out.sync_all();
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            bar.inc(n as u64);
        }
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        let _ = fs::remove_file(&partial);
        return Err(ModelsError::io("copying to", partial, e));
    }
    let actual = hex::encode(hasher.finalize());
    if let Some(exp) = expected {
        if exp != actual {
            let _ = fs::remove_file(&partial);
            return Err(ModelsError::ChecksumMismatch { file: src.to_path_buf(), expected: exp.into(), actual, against: "the model manifest".into() });
        }
    }
    fs::rename(&partial, dest).io_ctx("renaming into place", dest)?;
    Ok(actual)
}

/// `<dest>.partial.json`: which URL (and ETag) the partial file belongs to.
pub(crate) fn resume_info_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".partial.json");
    PathBuf::from(s)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ResumeInfo {
    url: String,
    etag: Option<String>,
    total: Option<u64>,
}

struct Download<'a> {
    url: &'a str,
    endpoint: &'a str,
    repo: &'a str,
    hub_file: &'a str,
    revision: &'a str,
    dest: &'a Path,
    token: Option<String>,
    progress: bool,
}

/// Scheme + authority of a URL (`http://127.0.0.1:8080`).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Resolve a `Location` header against the URL that sent it.
fn join_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let path_end = base.split('?').next().unwrap_or(base);
        match path_end.rfind('/') {
            Some(i) if i + 1 > origin(base).len() => format!("{}{location}", &path_end[..=i]),
            _ => format!("{}/{location}", origin(base)),
        }
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let start = range.split('-').next()?.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

fn unquote(etag: &str) -> String {
    etag.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

impl Download<'_> {
    fn offline(&self, detail: String) -> ModelsError {
        ModelsError::HubOffline {
            endpoint: self.endpoint.to_string(),
            what: format!("{}/{} (revision {})", self.repo, self.hub_file, self.revision),
            url: self.url.to_string(),
            dest: self.dest.to_path_buf(),
            detail,
        }
    }

    fn status_error(&self, status: u16, resp: ureq::Response) -> ModelsError {
        match status {
            404 => ModelsError::HubNotFound {
                repo: self.repo.to_string(),
                file: self.hub_file.to_string(),
                revision: self.revision.to_string(),
                url: self.url.to_string(),
            },
            401 | 403 => ModelsError::HubAuth { url: self.url.to_string(), status, dest: self.dest.to_path_buf() },
            _ => {
                let body: String = resp.into_string().unwrap_or_default().chars().take(300).collect();
                ModelsError::Http { url: self.url.to_string(), detail: format!("HTTP {status} {}", body.trim()) }
            }
        }
    }

    /// GET with manual redirects (so the hub's `X-Linked-Etag` is seen and
    /// the token never leaves the endpoint's host). Returns the final
    /// response and the sha256 the hub announced for an LFS file, if any.
    fn get(&self, agent: &ureq::Agent, range: Option<(u64, Option<&str>)>) -> Result<(ureq::Response, Option<String>)> {
        let mut url = self.url.to_string();
        let mut linked_sha = None;
        for _ in 0..10 {
            let mut req = agent.get(&url).set("User-Agent", concat!("tresor/", env!("CARGO_PKG_VERSION")));
            if let Some((start, if_range)) = range {
                req = req.set("Range", &format!("bytes={start}-"));
                if let Some(tag) = if_range {
                    req = req.set("If-Range", tag);
                }
            }
            if let Some(token) = &self.token {
                if origin(&url) == origin(self.url) {
                    req = req.set("Authorization", &format!("Bearer {token}"));
                }
            }
            let resp = match req.call() {
                Ok(r) => r,
                // Range not satisfiable: the caller starts over.
                Err(ureq::Error::Status(416, resp)) if range.is_some() => resp,
                Err(ureq::Error::Status(status, resp)) => return Err(self.status_error(status, resp)),
                Err(ureq::Error::Transport(t)) => {
                    return Err(match t.kind() {
                        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
                            ModelsError::Http { url: url.clone(), detail: t.to_string() }
                        }
                        _ => self.offline(t.to_string()),
                    })
                }
            };
            if let Some(tag) = resp.header("x-linked-etag").map(unquote) {
                if is_sha256_hex(&tag) {
                    linked_sha = Some(tag.to_ascii_lowercase());
                }
            }
            if (300..400).contains(&resp.status()) {
                let Some(loc) = resp.header("location") else {
                    return Err(ModelsError::Http { url, detail: format!("HTTP {} without a Location header", resp.status()) });
                };
                url = join_location(&url, loc);
                continue;
            }
            return Ok((resp, linked_sha));
        }
        Err(ModelsError::Http { url, detail: "too many redirects".into() })
    }

    /// Download (resuming a partial file if there is one), verify, rename.
    fn run(&self, expected: Option<(&str, &'static str)>) -> Result<String> {
        if let Some(parent) = self.dest.parent() {
            fs::create_dir_all(parent).io_ctx("creating", parent)?;
        }
        let partial = partial_path(self.dest);
        let info_path = resume_info_path(self.dest);
        let agent = ureq::AgentBuilder::new()
            .try_proxy_from_env(true)
            .redirects(0)
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(60))
            .build();

        let prev: Option<ResumeInfo> = fs::read(&info_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let mut start = match (&prev, fs::metadata(&partial)) {
            (Some(p), Ok(m)) if p.url == self.url => m.len(),
            _ => 0,
        };
        let mut etag = prev.as_ref().and_then(|p| p.etag.clone());
        let mut linked_sha = None;
        let mut attempts = 0;
        let (resp, total) = loop {
            attempts += 1;
            // Only a strong ETag may go in If-Range.
            let if_range = etag.as_deref().filter(|t| !t.starts_with("W/"));
            let (resp, linked) = self.get(&agent, (start > 0).then_some((start, if_range)))?;
            linked_sha = linked.or(linked_sha);
            let status = resp.status();
            let len = resp.header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
            match status {
                206 => {
                    let cr = resp.header("content-range").and_then(parse_content_range);
                    match cr {
                        Some((s, total)) if s == start => break (resp, total.or(len.map(|l| l + start))),
                        _ if attempts < 3 => {
                            // Not the range we asked for: start over from zero.
                            start = 0;
                            etag = None;
                            continue;
                        }
                        _ => return Err(ModelsError::Http { url: self.url.into(), detail: "server sent a Content-Range that does not match the request".into() }),
                    }
                }
                416 if attempts < 3 => {
                    // The partial is as long as the file, or longer: start over.
                    start = 0;
                    etag = None;
                    continue;
                }
                200 => {
                    if start > 0 {
                        say(self.progress, "the server did not resume the partial download (it sent the whole file); starting over");
                        start = 0;
                    }
                    break (resp, len);
                }
                other => return Err(ModelsError::Http { url: self.url.into(), detail: format!("unexpected HTTP {other}") }),
            }
        };
        let new_etag = resp.header("etag").map(str::to_string);
        let info = ResumeInfo { url: self.url.to_string(), etag: new_etag, total };
        write_atomic(&info_path, &serde_json::to_vec(&info).unwrap_or_default())?;

        // Open the partial: append after `start` bytes, or truncate.
        let mut out = fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&partial).io_ctx("opening", &partial)?;
        out.set_len(start).io_ctx("truncating", &partial)?;
        let mut hasher = Sha256::new();
        if start > 0 {
            say(self.progress, format!("resuming at byte {start}"));
            out.seek(SeekFrom::Start(0)).io_ctx("reading", &partial)?;
            let mut prefix = (&mut out).take(start);
            std::io::copy(&mut prefix, &mut HashWriter(&mut hasher)).io_ctx("reading", &partial)?;
        }
        out.seek(SeekFrom::Start(start)).io_ctx("writing", &partial)?;

        let bar = crate::progress::bytes_bar(self.progress, total.unwrap_or(0), file_name(self.dest));
        bar.set_position(start);
        let mut got = start;
        let mut body = resp.into_reader();
        let mut buf = vec![0u8; 1 << 20];
        let interrupted = |got: u64, detail: String| ModelsError::Interrupted {
            url: self.url.to_string(),
            partial: partial.clone(),
            got,
            total: total.map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
            detail,
        };
        loop {
            let n = match body.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = out.sync_all();
                    bar.abandon();
                    return Err(interrupted(got, e.to_string()));
                }
            };
            if n == 0 {
                break;
            }
            out.write_all(&buf[..n]).io_ctx("writing", &partial)?;
            hasher.update(&buf[..n]);
            got += n as u64;
            bar.set_position(got);
        }
        out.sync_all().io_ctx("writing", &partial)?;
        drop(out);
        bar.finish_and_clear();
        if let Some(t) = total {
            if got != t {
                return Err(interrupted(got, "the connection closed early".into()));
            }
        }

        let actual = hex::encode(hasher.finalize());
        let discard = || {
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_file(&info_path);
        };
        if let Some((exp, against)) = expected {
            if exp != actual {
                discard();
                return Err(ModelsError::ChecksumMismatch { file: self.dest.to_path_buf(), expected: exp.into(), actual, against: against.into() });
            }
        }
        if let Some(hub_sha) = linked_sha {
            if hub_sha != actual {
                discard();
                return Err(ModelsError::ChecksumMismatch { file: self.dest.to_path_buf(), expected: hub_sha, actual, against: "the hub's X-Linked-Etag".into() });
            }
        }
        fs::rename(&partial, self.dest).io_ctx("renaming into place", self.dest)?;
        let _ = fs::remove_file(&info_path);
        Ok(actual)
    }
}

struct HashWriter<'a>(&'a mut Sha256);
impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn opts(server: &HubServer, hf: &Path) -> PullOptions {
        PullOptions { endpoint: Some(server.endpoint()), hf_cache: Some(hf.to_path_buf()), token: None, ..Default::default() }
    }

    fn gguf_bytes(n: usize) -> Vec<u8> {
        let mut v = tiny_gguf("llama", 4096);
        v.extend((0..n).map(|i| (i * 7 % 251) as u8));
        v
    }

    #[test]
    fn helpers() {
        assert_eq!(derive_id("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf"), "llama-3.2-1b-instruct-q4_k_m");
        assert_eq!(derive_id("cross-encoder/ms-marco-MiniLM-L-6-v2", "config.json"), "ms-marco-minilm-l-6-v2");
        assert_eq!(origin("http://127.0.0.1:9/a/b?c"), "http://127.0.0.1:9");
        assert_eq!(join_location("http://h:1/a/resolve/main/f", "/lfs/x"), "http://h:1/lfs/x");
        assert_eq!(join_location("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(join_location("https://h/a", "https://cdn/x?sig=1"), "https://cdn/x?sig=1");
        assert_eq!(parse_content_range("bytes 10-99/100"), Some((10, Some(100))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
    }

    #[test]
    fn pulls_a_new_gguf_records_it_and_skips_the_network_next_time() {
        let tmp = tempfile::tempdir().unwrap();
        let (models, hf) = (tmp.path().join("models"), tmp.path().join("hf"));
        let server = HubServer::start();
        let body = gguf_bytes(300_000);
        server.add("acme/Tiny-GGUF", "main", "Tiny-Q4_K_M.gguf", &body);

        let path = pull(&models, "acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", &opts(&server, &hf)).unwrap();
        assert_eq!(path, models.join("Tiny-Q4_K_M.gguf"));
        assert_eq!(fs::read(&path).unwrap(), body);
        assert!(!partial_path(&path).exists() && !resume_info_path(&path).exists());
        // The hub answered with a redirect carrying the LFS sha256; it was followed.
        assert!(server.requests().iter().any(|r| r.path.starts_with("/lfs/")));

        let c = Catalog::load(&models).unwrap();
        let m = c.get("tiny-q4_k_m").expect("recorded in pulled.toml");
        assert_eq!(m.role, Role::ChatSmall);
        assert_eq!(m.files[0].sha256, sha256_hex(&body));
        assert_eq!(m.files[0].size, Some(body.len() as u64));
        assert_eq!(m.architecture.as_deref(), Some("llama"), "read from the GGUF header");
        assert_eq!(m.context_length, Some(4096));
        assert_eq!(c.resolve(Some("tiny-q4_k_m"), Role::ChatSmall).unwrap().path, path);
        let v = crate::verify(&models).unwrap();
        assert_eq!(v.iter().find(|v| v.id == "tiny-q4_k_m").unwrap().status, crate::ModelStatus::Installed);

        let before = server.requests().len();
        pull(&models, "acme/Tiny-GGUF", "Tiny-Q4_K_M.gguf", &opts(&server, &hf)).unwrap();
        assert_eq!(server.requests().len(), before, "a verified file is not fetched again");
    }

    #[test]
    fn resumes_an_interrupted_download_with_a_range_request() {
        let tmp = tempfile::tempdir().unwrap();
        let (models, hf) = (tmp.path().join("models"), tmp.path().join("hf"));
        let server = HubServer::start();
        let body = gguf_bytes(2_000_000);
        server.add("acme/Tiny-GGUF", "main", "t.gguf", &body);
        server.cut_next_body(700_000);

        let o = PullOptions { sha256: Some(sha256_hex(&body)), ..opts(&server, &hf) };
        let err = pull(&models, "acme/Tiny-GGUF", "t.gguf", &o).unwrap_err();
        assert!(matches!(err, ModelsError::Interrupted { .. }), "{err}");
        assert!(err.to_string().contains("run the same command again to resume"), "{err}");
        let dest = models.join("t.gguf");
        assert!(!dest.exists(), "nothing under the final name");
        assert_eq!(fs::metadata(partial_path(&dest)).unwrap().len(), 700_000);

        let path = pull(&models, "acme/Tiny-GGUF", "t.gguf", &o).unwrap();
        assert_eq!(fs::read(&path).unwrap(), body);
        let last = server.requests().into_iter().rev().find(|r| r.path.starts_with("/lfs/")).unwrap();
        assert_eq!(last.range.as_deref(), Some("bytes=700000-"));
        assert_eq!(last.status, 206);
    }

    #[test]
    fn a_server_that_ignores_range_restarts_cleanly() {
        let tmp = tempfile::tempdir().unwrap();
        let (models, hf) = (tmp.path().join("models"), tmp.path().join("hf"));
        let server = HubServer::start();
        let body = gguf_bytes(500_000);
        server.add("acme/Tiny-GGUF", "main", "t.gguf", &body);
        server.cut_next_body(100_000);
        assert!(pull(&models, "acme/Tiny-GGUF", "t.gguf", &opts(&server, &hf)).is_err());
        server.set_ignore_range(true);
        let path = pull(&models, "acme/Tiny-GGUF", "t.gguf", &opts(&server, &hf)).unwrap();
        assert_eq!(fs::read(&path).unwrap(), body, "the 200 body replaced the partial, not appended to it");
    }

    #[test]
    fn not_found_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let server = HubServer::start();
        let err = pull(&tmp.path().join("m"), "acme/Nothing", "x.gguf", &opts(&server, &tmp.path().join("hf"))).unwrap_err();
        assert!(matches!(err, ModelsError::HubNotFound { .. }), "{err}");
        assert!(err.to_string().contains("404") && err.to_string().contains("acme/Nothing/x.gguf"), "{err}");
        assert!(!tmp.path().join("m/x.gguf").exists());
    }

    #[test]
    fn checksum_mismatch_discards_the_download() {
        let tmp = tempfile::tempdir().unwrap();
        let (models, hf) = (tmp.path().join("models"), tmp.path().join("hf"));
        let server = HubServer::start();
        server.add("acme/Tiny-GGUF", "main", "t.gguf", &gguf_bytes(1000));
        let wrong = "0".repeat(64);
        let err = pull(&models, "acme/Tiny-GGUF", "t.gguf", &PullOptions { sha256: Some(wrong.clone()), ..opts(&server, &hf) }).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("checksum mismatch") && msg.contains(&wrong) && msg.contains("--sha256"), "{msg}");
        let dest = models.join("t.gguf");
        assert!(!dest.exists() && !partial_path(&dest).exists());
        assert!(!models.join(PULLED_MANIFEST).exists(), "nothing recorded");

        // Bytes that differ from what the hub announces (X-Linked-Etag) are caught too.
        server.add_with_announced_sha("acme/Liar", "main", "l.gguf", &gguf_bytes(1000), &"ab".repeat(32));
        let msg = pull(&models, "acme/Liar", "l.gguf", &opts(&server, &hf)).unwrap_err().to_string();
        assert!(msg.contains("X-Linked-Etag"), "{msg}");
    }

    #[test]
    fn offline_says_how_to_place_the_file_by_hand() {
        let tmp = tempfile::tempdir().unwrap();
        let models = tmp.path().join("models");
        let o = PullOptions { endpoint: Some(closed_endpoint()), hf_cache: Some(tmp.path().join("hf")), ..Default::default() };
        let err = pull(&models, "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", &o).unwrap_err();
        assert!(matches!(err, ModelsError::HubOffline { .. }), "{err}");
        let msg = err.to_string();
        let dest = models.join("Llama-3.2-1B-Instruct-Q4_K_M.gguf");
        assert!(msg.contains(&dest.display().to_string()), "{msg}");
        assert!(msg.contains("tresor models verify"), "{msg}");
        assert!(msg.contains("/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf"), "{msg}");

        // Placed by hand: pull finds it, records its sha256, needs no network.
        fs::create_dir_all(&models).unwrap();
        fs::write(&dest, gguf_bytes(10)).unwrap();
        let p = pull(&models, "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", &o).unwrap();
        assert_eq!(p, dest);
        let c = Catalog::load(&models).unwrap();
        let m = c.get("llama-3.2-1b-instruct").unwrap();
        assert_eq!(m.files[0].sha256, sha256_hex(&gguf_bytes(10)));
        assert_eq!(m.chat_template.as_deref(), Some("llama3"), "the built-in entry, with the sha256 filled in");
    }

    #[test]
    fn a_directory_model_is_pulled_file_by_file_and_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (models, hf) = (tmp.path().join("models"), tmp.path().join("hf"));
        let server = HubServer::start();
        let repo = "cross-encoder/ms-marco-MiniLM-L-6-v2";
        server.add(repo, "main", "config.json", br#"{"model_type": "bert", "max_position_embeddings": 512}"#);
        server.add(repo, "main", "model.safetensors", &gguf_bytes(5000));
        server.add(repo, "main", "tokenizer.json", b"{}");
        let p = pull_model(&models, "ms-marco-minilm-l6-v2", &opts(&server, &hf)).unwrap();
        assert_eq!(p, models.join("ms-marco-minilm-l6-v2"));
        let c = Catalog::load(&models).unwrap();
        let m = c.get("ms-marco-minilm-l6-v2").unwrap();
        assert!(m.files.iter().all(|f| f.expected_sha256().is_some()), "all recorded");
        assert_eq!(c.resolve(None, Role::Rerank).unwrap().path, p);

        // A repo not in the catalogue needs a role for non-GGUF files.
        server.add("acme/embedder", "main", "config.json", b"{}");
        let e = pull(&models, "acme/embedder", "config.json", &opts(&server, &hf)).unwrap_err();
        assert!(e.to_string().contains("--role"), "{e}");
        let p = pull(&models, "acme/embedder", "config.json", &PullOptions { role: Some(Role::Embed), ..opts(&server, &hf) }).unwrap();
        assert_eq!(p, models.join("embedder/config.json"));
    }

    #[test]
    fn the_local_hf_cache_is_used_without_network() {
        let tmp = tempfile::tempdir().unwrap();
        let (models, hf) = (tmp.path().join("models"), tmp.path().join("hf"));
        let body = gguf_bytes(100);
        // HF cache layout: models--OWNER--NAME/{refs/main, snapshots/COMMIT/FILE}.
        let repo_dir = hf.join("models--acme--Cached-GGUF");
        fs::create_dir_all(repo_dir.join("refs")).unwrap();
        fs::write(repo_dir.join("refs/main"), "abc123").unwrap();
        fs::create_dir_all(repo_dir.join("snapshots/abc123")).unwrap();
        fs::write(repo_dir.join("snapshots/abc123/c.gguf"), &body).unwrap();
        let o = PullOptions { endpoint: Some(closed_endpoint()), hf_cache: Some(hf), ..Default::default() };
        let p = pull(&models, "acme/Cached-GGUF", "c.gguf", &o).unwrap();
        assert_eq!(fs::read(p).unwrap(), body);
    }

    #[test]
    fn bad_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let o = PullOptions { endpoint: Some(closed_endpoint()), hf_cache: Some(tmp.path().join("hf")), ..Default::default() };
        let m = tmp.path().join("m");
        assert!(pull(&m, "norepo", "x.gguf", &o).unwrap_err().to_string().contains("OWNER/NAME"));
        assert!(pull(&m, "a/b", "../x.gguf", &o).is_err());
        let e = pull(&m, "a/b", "x.gguf", &PullOptions { sha256: Some("xyz".into()), ..o.clone() }).unwrap_err();
        assert!(e.to_string().contains("64 hex"), "{e}");
        let e = pull(&m, "a/b", "x.gguf", &PullOptions { id: Some("smollm2-135m-instruct".into()), ..o.clone() }).unwrap_err();
        assert!(e.to_string().contains("already taken"), "{e}");
        let e = pull(&m, "bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf", &PullOptions { sha256: Some("a".repeat(64)), ..o.clone() });
        // The catalogue does not know this sha256 yet, so the flag is simply the expectation.
        assert!(matches!(e, Err(ModelsError::HubOffline { .. })));
    }
}
