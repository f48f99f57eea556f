//! Admin policy signatures and keys: ed25519 key pairs in files
//! (`NAME.key` private, `NAME.pub` public, base64), `FILE.sig` next to a
//! signed policy, and the trusted admin keys a policy is verified against.
//!
//! Owns: the key and signature file formats, and whether a signature
//! verifies. Never: decides what an unsigned policy means (the loader does)
//! or overwrites a key file.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

use super::{read, Layer, Policy, PolicyError, Result, SYSTEM_ADMIN_KEYS};

/// `policy.toml` → `policy.toml.sig`.
pub fn sig_path(policy: &Path) -> PathBuf {
    let mut s = policy.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Checks `FILE.sig` when it exists: Ok(Some(key name)) when a trusted key
/// verifies it, Ok(None) when there is no signature file, an error otherwise.
pub fn verify_signature(path: &Path, bytes: &[u8], keys: &[(String, VerifyingKey)]) -> Result<Option<String>> {
    let sp = sig_path(path);
    let sig_text = match std::fs::read_to_string(&sp) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(PolicyError::Io { path: sp, source }),
    };
    let bad = |reason: String| PolicyError::Signature { path: path.to_path_buf(), reason };
    let raw = b64().decode(sig_text.trim()).map_err(|e| bad(format!("{} is not base64: {e}", sp.display())))?;
    let sig = Signature::from_slice(&raw).map_err(|_| bad(format!("{} is not an ed25519 signature (64 bytes)", sp.display())))?;
    if keys.is_empty() {
        return Err(bad(format!(
            "the file is signed but no trusted admin keys are installed ({SYSTEM_ADMIN_KEYS}/*.pub or TRESOR_ADMIN_KEYS)"
        )));
    }
    for (name, k) in keys {
        if k.verify(bytes, &sig).is_ok() {
            return Ok(Some(name.clone()));
        }
    }
    Err(bad(format!("no trusted admin key ({}) verifies {}", keys.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "), sp.display())))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// `*.pub` files in `dir` (base64 of a 32-byte ed25519 public key), by file name.
pub fn load_public_keys(dir: &Path) -> Result<Vec<(String, VerifyingKey)>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PolicyError::Io { path: dir.to_path_buf(), source }),
    };
    let mut keys = Vec::new();
    let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "pub")).collect();
    paths.sort();
    for p in paths {
        let k = read_public_key(&p)?;
        keys.push((p.file_name().unwrap_or_default().to_string_lossy().into_owned(), k));
    }
    Ok(keys)
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let arr = read_key_bytes(path, "public key")?;
    VerifyingKey::from_bytes(&arr).map_err(|e| PolicyError::Key { path: path.to_path_buf(), reason: e.to_string() })
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_key_bytes(path, "private key (seed)")?))
}

/// A key file's 32 bytes (base64, one line); `what` names the key in errors.
fn read_key_bytes(path: &Path, what: &str) -> Result<[u8; 32]> {
    let text = read(path)?;
    let bad = |reason: String| PolicyError::Key { path: path.to_path_buf(), reason };
    let raw = b64().decode(text.trim()).map_err(|e| bad(format!("not base64: {e}")))?;
    raw.try_into().map_err(|_| bad(format!("not a 32-byte ed25519 {what}")))
}

/// Writes `PREFIX.key` (private, mode 0600) and `PREFIX.pub`; refuses to overwrite.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf)> {
    let key_path = prefix.with_extension("key");
    let pub_path = prefix.with_extension("pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(PolicyError::Key { path: p.clone(), reason: "already exists (not overwritten)".into() });
        }
    }
    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| PolicyError::Io { path: dir.to_path_buf(), source })?;
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    let sk = SigningKey::from_bytes(&seed);
    write_private(&key_path, format!("{}\n", b64().encode(seed)).as_bytes())?;
    std::fs::write(&pub_path, format!("{}\n", b64().encode(sk.verifying_key().to_bytes())))
        .map_err(|source| PolicyError::Io { path: pub_path.clone(), source })?;
    Ok((key_path, pub_path))
}

/// Creates `path` with mode 0600 (on Unix) and writes `bytes`.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(path).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|source| PolicyError::Io { path: path.to_path_buf(), source })
}

/// Signs the policy file's exact bytes into `FILE.sig` (base64). Validates the policy first.
pub fn sign(policy: &Path, key: &Path) -> Result<PathBuf> {
    let text = read(policy)?;
    Policy::check_text(&text, policy, Layer::Admin)?;
    let sk = read_signing_key(key)?;
    let sig = sk.sign(text.as_bytes());
    let sp = sig_path(policy);
    std::fs::write(&sp, format!("{}\n", b64().encode(sig.to_bytes()))).map_err(|source| PolicyError::Io { path: sp.clone(), source })?;
    Ok(sp)
}
