//! Which release answers a conversation: a deterministic bucket per
//! conversation (SHA-256 of the canary's name and the conversation key), so
//! every turn of a conversation gets the same release and a new canary
//! reshuffles nobody's assignment but its own share.
//!
//! Owns: the bucket function and the choice between the canary and the active
//! release. Never: reads the store or the engine.

use sha2::{Digest, Sha256};

use super::{Release, ReleaseSet};

/// The conversation's bucket in [0, 1) for experiment `salt`.
pub fn bucket(salt: &str, conversation: &str) -> f64 {
    let h = Sha256::digest(format!("{salt}\0{conversation}").as_bytes());
    let n = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    // 53 bits: exactly representable in an f64
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// The release that answers `conversation`: the canary when its bucket falls under the canary's
/// share, else the active release; None when neither exists (the workspace's own settings answer).
pub fn pick<'a>(set: &'a ReleaseSet, conversation: &str) -> Option<&'a Release> {
    if let Some(c) = set.canary_release() {
        if bucket(&c.name, conversation) < c.share {
            return Some(c);
        }
    }
    set.active()
}
