//! Where things live: the models directory, the platform data dir, the wheel cache.

use std::path::{Path, PathBuf};

/// The models directory to use.
///
/// In order: `flag` (`--models-dir`, which clap also fills from
/// `TRESOR_MODELS`); the `TRESOR_MODELS` environment variable; the `models/`
/// directory of a Tresor checkout that contains the current directory (the
/// nearest ancestor with `models/manifest.toml`); the same next to the running
/// executable, then in the checkout the binary was built from; finally
/// `platform_data_dir()/models`. The result is absolute.
pub fn resolve_models_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(dir) = flag.filter(|p| !p.as_os_str().is_empty()) {
        return absolute(dir);
    }
    if let Some(dir) = std::env::var_os("TRESOR_MODELS").filter(|v| !v.is_empty()) {
        return absolute(Path::new(&dir));
    }
    if let Some(dir) = std::env::current_dir().ok().and_then(|cwd| checkout_models_dir(&cwd)) {
        return dir;
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(checkout_models_dir))
    {
        return dir;
    }
    // The checkout this binary was compiled from (the cargo target dir usually
    // lives outside the clone, so the executable's ancestors miss it).
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    if built_from.join("manifest.toml").is_file() {
        if let Ok(dir) = built_from.canonicalize() {
            return dir;
        }
    }
    platform_data_dir().join("models")
}

/// `start` or its nearest ancestor that holds `models/manifest.toml`, as that `models/` dir.
pub fn checkout_models_dir(start: &Path) -> Option<PathBuf> {
    let start = absolute(start);
    start
        .ancestors()
        .find(|dir| dir.join("models").join("manifest.toml").is_file())
        .map(|dir| dir.join("models"))
}

/// Where Tresor keeps its data when installed: `dirs::data_dir()/tresor`
/// (`~/.local/share/tresor` on Linux), else `~/.tresor`.
pub fn platform_data_dir() -> PathBuf {
    if let Some(d) = dirs::data_dir() {
        return d.join("tresor");
    }
    if let Some(h) = dirs::home_dir() {
        return h.join(".tresor");
    }
    PathBuf::from(".tresor")
}

/// The wheel cache `setup` downloads into: `$TRESOR_CACHE/wheels`, else
/// `~/.cache/tresor/wheels`. Kept outside the models dir and the clone, so a
/// fresh clone on the same machine reuses it.
pub fn default_wheel_cache() -> PathBuf {
    if let Some(c) = std::env::var_os("TRESOR_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(c).join("wheels");
    }
    match dirs::home_dir() {
        Some(h) => h.join(".cache").join("tresor").join("wheels"),
        None => std::env::temp_dir().join("tresor-wheels"),
    }
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_wins_and_is_made_absolute() {
        let got = resolve_models_dir(Some(Path::new("some/rel")));
        assert!(got.is_absolute());
        assert!(got.ends_with("some/rel"));
    }

    #[test]
    fn checkout_is_found_from_a_nested_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("models")).unwrap();
        std::fs::write(tmp.path().join("models/manifest.toml"), "").unwrap();
        let deep = tmp.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(checkout_models_dir(&deep).unwrap(), tmp.path().join("models"));
        let other = tempfile::tempdir().unwrap();
        // A temp dir has no checkout above it (unless /tmp itself is one).
        if checkout_models_dir(Path::new("/")).is_none() {
            assert_eq!(checkout_models_dir(other.path()), None);
        }
    }

    #[test]
    fn this_crate_sits_in_a_checkout() {
        // cargo runs tests in crates/models; the workspace root has models/manifest.toml.
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let found = checkout_models_dir(here).unwrap();
        assert!(found.join("manifest.toml").is_file());
    }

    #[test]
    fn platform_dir_ends_in_tresor() {
        let d = platform_data_dir();
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        assert!(name == "tresor" || name == ".tresor", "{}", d.display());
    }
}
