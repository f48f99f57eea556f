//! Where the library's own tests find the shipped models (test-only):
//! `$TRESOR_MODELS`, else the checkout's `models/` (what `tresor models
//! setup` fills). Owns that lookup; never loads a model.

use std::path::PathBuf;

pub(crate) fn models_dir() -> PathBuf {
    std::env::var_os("TRESOR_MODELS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// A shipped model file; fails the test, naming the fix, when it is missing.
pub(crate) fn shipped(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(p.is_file(), "{} is missing: run `tresor models setup` first", p.display());
    p
}
