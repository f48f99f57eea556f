//! `<data dir>/tresor-key.json`: the data key wrapped by the KEK, with what
//! is needed to get the KEK back (Argon2id salt and parameters, or the name
//! of the OS keyring entry). Written atomically, mode 0600; during a key
//! rotation it also holds the next data key (`pending`).

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{keyring_kek, CryptoError, IoCtx, KeySource, Passphrase, PromptKind, Result, WorkspaceKey, KEY_LEN};

pub const KEY_FILE: &str = "tresor-key.json";
const FORMAT: &str = "tresor-key/1";

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended
/// option with one lane); stored per key file, so it can be raised later.
const ARGON2_M_KIB: u32 = 64 * 1024;
const ARGON2_T: u32 = 3;
const ARGON2_P: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Kek {
    Argon2id { salt: String, m_kib: u32, t: u32, p: u32 },
    Keyring { service: String, entry: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Wrapped {
    /// Public fingerprint of the data key (`WorkspaceKey::id`).
    pub id: String,
    pub nonce: String,
    pub wrapped: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyFile {
    pub format: String,
    pub kek: Kek,
    pub key: Wrapped,
    /// The next data key while a rotation is in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Wrapped>,
    pub created_at: i64,
    #[serde(default)]
    pub rotated_at: Option<i64>,
}

/// What `tresor key status` prints.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    /// "passphrase" (Argon2id) or "keyring".
    pub protection: String,
    pub key_id: String,
    pub argon2: Option<String>,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
    pub rotation_pending: bool,
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub(crate) fn path(dir: &Path) -> PathBuf {
    dir.join(KEY_FILE)
}

pub(crate) fn read(dir: &Path) -> Result<KeyFile> {
    let p = path(dir);
    let text = std::fs::read_to_string(&p).io(&p)?;
    let kf: KeyFile = serde_json::from_str(&text).map_err(|e| CryptoError::BadKeyFile { path: p.clone(), reason: e.to_string() })?;
    if kf.format != FORMAT {
        return Err(CryptoError::BadKeyFile { path: p, reason: format!("format `{}`, this Tresor reads `{FORMAT}`", kf.format) });
    }
    Ok(kf)
}

fn serialize(kf: &KeyFile) -> Vec<u8> {
    let mut s = serde_json::to_vec_pretty(kf).expect("key file serializes");
    s.push(b'\n');
    s
}

/// Replaces the key file atomically (0600).
pub(crate) fn write(dir: &Path, kf: &KeyFile) -> Result<()> {
    let p = path(dir);
    super::write_atomic(&p, &serialize(kf))?;
    restrict(&p);
    Ok(())
}

#[cfg(unix)]
fn restrict(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600));
}
#[cfg(not(unix))]
fn restrict(_p: &Path) {}

pub(crate) fn status(dir: &Path) -> Result<KeyStatus> {
    let kf = read(dir)?;
    let (protection, argon2) = match &kf.kek {
        Kek::Argon2id { m_kib, t, p, .. } => ("passphrase".to_string(), Some(format!("argon2id m={m_kib} KiB t={t} p={p}"))),
        Kek::Keyring { service, entry } => (format!("keyring ({service}/{entry})"), None),
    };
    Ok(KeyStatus {
        data_dir: dir.to_path_buf(),
        key_file: path(dir),
        protection,
        key_id: kf.key.id.clone(),
        argon2,
        created_at: kf.created_at,
        rotated_at: kf.rotated_at,
        rotation_pending: kf.pending.is_some(),
    })
}

fn b64d(p: &Path, what: &str, s: &str) -> Result<Vec<u8>> {
    B64.decode(s).map_err(|e| CryptoError::BadKeyFile { path: p.to_path_buf(), reason: format!("{what}: {e}") })
}

fn argon2(pass: &Passphrase, salt: &[u8], m_kib: u32, t: u32, p: u32) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let params = argon2::Params::new(m_kib, t, p, Some(KEY_LEN)).map_err(|e| CryptoError::Passphrase(e.to_string()))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    a.hash_password_into(pass.as_str().as_bytes(), salt, &mut out[..]).map_err(|e| CryptoError::Passphrase(e.to_string()))?;
    Ok(out)
}

fn wrap_aad(id: &str) -> Vec<u8> {
    format!("tresor-key-wrap-v1:{id}").into_bytes()
}

pub(crate) fn wrap(kek: &[u8; KEY_LEN], key: &WorkspaceKey) -> Wrapped {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let id = key.id();
    let ct = XChaCha20Poly1305::new_from_slice(kek)
        .expect("32-byte key")
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: key.raw(), aad: &wrap_aad(&id) })
        .expect("in-memory encryption");
    Wrapped { id, nonce: B64.encode(nonce), wrapped: B64.encode(ct) }
}

/// Unwraps with `kek`; `None` if the KEK is wrong (or the entry modified).
pub(crate) fn unwrap(dir: &Path, kek: &[u8; KEY_LEN], w: &Wrapped) -> Result<Option<WorkspaceKey>> {
    let p = path(dir);
    let nonce = b64d(&p, "nonce", &w.nonce)?;
    let ct = b64d(&p, "wrapped", &w.wrapped)?;
    if nonce.len() != 24 {
        return Err(CryptoError::BadKeyFile { path: p, reason: "nonce is not 24 bytes".into() });
    }
    let Ok(raw) = XChaCha20Poly1305::new_from_slice(kek)
        .expect("32-byte key")
        .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ct, aad: &wrap_aad(&w.id) })
    else {
        return Ok(None);
    };
    let raw = Zeroizing::new(raw);
    let arr: [u8; KEY_LEN] =
        raw.as_slice().try_into().map_err(|_| CryptoError::BadKeyFile { path: p.clone(), reason: "wrapped key is not 32 bytes".into() })?;
    let key = WorkspaceKey::from_bytes(arr);
    if key.id() != w.id {
        return Err(CryptoError::BadKeyFile { path: p, reason: "key id does not match the key".into() });
    }
    Ok(Some(key))
}

/// The passphrase to use for `kind`: the explicit one, else the prompt.
fn passphrase(dir: &Path, source: &KeySource, kind: PromptKind) -> Result<Option<Passphrase>> {
    if let Some(p) = &source.passphrase {
        if p.is_empty() {
            return Err(CryptoError::Passphrase("the passphrase is empty".into()));
        }
        return Ok(Some(p.clone()));
    }
    let Some(prompt) = &source.prompt else { return Ok(None) };
    match prompt(kind, dir) {
        Some(p) if p.is_empty() => Err(CryptoError::Passphrase("the passphrase is empty".into())),
        Some(p) => Ok(Some(p)),
        None => Ok(None),
    }
}

/// A new passphrase, asked twice when it comes from the prompt.
pub(crate) fn new_passphrase(dir: &Path, source: &KeySource) -> Result<Option<Passphrase>> {
    if source.passphrase.is_some() {
        return passphrase(dir, source, PromptKind::New);
    }
    let Some(first) = passphrase(dir, source, PromptKind::New)? else { return Ok(None) };
    match passphrase(dir, source, PromptKind::Confirm)? {
        Some(second) if second.as_str() == first.as_str() => Ok(Some(first)),
        Some(_) => Err(CryptoError::Passphrase("the two passphrases differ".into())),
        None => Ok(None),
    }
}

/// A new Argon2id KEK from `pass`.
pub(crate) fn new_argon2_kek(pass: &Passphrase) -> Result<(Kek, Zeroizing<[u8; KEY_LEN]>)> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let kek = argon2(pass, &salt, ARGON2_M_KIB, ARGON2_T, ARGON2_P)?;
    Ok((Kek::Argon2id { salt: B64.encode(salt), m_kib: ARGON2_M_KIB, t: ARGON2_T, p: ARGON2_P }, kek))
}

/// The KEK of an existing key file, from `source`.
pub(crate) fn kek_of(dir: &Path, kf: &KeyFile, source: &KeySource) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    match &kf.kek {
        Kek::Argon2id { salt, m_kib, t, p } => {
            let salt = b64d(&path(dir), "salt", salt)?;
            let pass = passphrase(dir, source, PromptKind::Unlock)?.ok_or_else(|| CryptoError::NoKeySource { dir: dir.to_path_buf() })?;
            argon2(&pass, &salt, *m_kib, *t, *p)
        }
        Kek::Keyring { entry, .. } => keyring_kek::load(entry).map_err(|reason| CryptoError::KeyringUnavailable {
            dir: dir.to_path_buf(),
            entry: entry.clone(),
            reason,
        }),
    }
}

/// Unlocks the current data key (and the pending one, during a rotation).
pub(crate) fn unlock(dir: &Path, source: &KeySource) -> Result<(KeyFile, Zeroizing<[u8; KEY_LEN]>, WorkspaceKey, Option<WorkspaceKey>)> {
    let kf = read(dir)?;
    let kek = kek_of(dir, &kf, source)?;
    let key = unwrap(dir, &kek, &kf.key)?.ok_or_else(|| match kf.kek {
        Kek::Argon2id { .. } => CryptoError::WrongPassphrase { dir: dir.to_path_buf() },
        Kek::Keyring { .. } => CryptoError::BadKeyFile { path: path(dir), reason: "the keyring's key does not unwrap the data key".into() },
    })?;
    let pending = match &kf.pending {
        Some(w) => Some(unwrap(dir, &kek, w)?.ok_or_else(|| CryptoError::BadKeyFile {
            path: path(dir),
            reason: "the pending key does not unwrap".into(),
        })?),
        None => None,
    };
    Ok((kf, kek, key, pending))
}

pub(crate) fn open_or_create(dir: &Path, source: &KeySource) -> Result<WorkspaceKey> {
    if path(dir).exists() {
        let (_, _, key, pending) = unlock(dir, source)?;
        if pending.is_some() {
            return Err(CryptoError::RotationInterrupted { dir: dir.to_path_buf() });
        }
        return Ok(key);
    }
    std::fs::create_dir_all(dir).io(dir)?;
    let key = WorkspaceKey::ephemeral();
    let (kek_meta, kek) = new_kek(dir, source)?;
    // the in-use lock file exists from the workspace's first key on, so a later command that
    // takes its shared lock (and may then fail on a wrong passphrase) writes no byte
    let lock = dir.join(super::rotate::IN_USE_FILE);
    if !lock.exists() {
        crate::private::open_private(std::fs::OpenOptions::new().create(true).truncate(false).write(true), &lock).io(&lock)?;
    }
    let kf = KeyFile { format: FORMAT.into(), kek: kek_meta, key: wrap(&kek, &key), pending: None, created_at: now(), rotated_at: None };
    // publish without overwriting: a concurrent first open wins, we use its key
    let p = path(dir);
    let tmp = dir.join(format!("{KEY_FILE}.new-{}", std::process::id()));
    super::write_atomic(&tmp, &serialize(&kf))?;
    restrict(&tmp);
    let linked = std::fs::hard_link(&tmp, &p);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Kek::Keyring { entry, .. } = &kf.kek {
                keyring_kek::delete(entry);
            }
            open_or_create(dir, source)
        }
        Err(e) => Err(CryptoError::Io { path: p, source: e }),
    }
}

/// A KEK for a new key file: explicit passphrase, else the OS keyring, else a prompted one.
pub(crate) fn new_kek(dir: &Path, source: &KeySource) -> Result<(Kek, Zeroizing<[u8; KEY_LEN]>)> {
    if source.passphrase.is_some() {
        let pass = passphrase(dir, source, PromptKind::New)?.expect("given");
        return new_argon2_kek(&pass);
    }
    let mut keyring_reason = None;
    if source.keyring {
        let mut kek = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut kek[..]);
        let mut id = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let entry = format!("data-key-{}", hex::encode(id));
        match keyring_kek::store(&entry, &kek) {
            Ok(()) => return Ok((Kek::Keyring { service: "tresor".into(), entry }, kek)),
            Err(reason) => keyring_reason = Some(reason),
        }
    }
    match new_passphrase(dir, source)? {
        Some(pass) => new_argon2_kek(&pass),
        None => {
            if let Some(r) = keyring_reason {
                tracing::debug!("no OS keyring: {r}");
            }
            Err(CryptoError::NoKeySource { dir: dir.to_path_buf() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_open_wrong_passphrase_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("ws");
        let k = WorkspaceKey::open(&d, &KeySource::passphrase("correct horse")).unwrap();
        let again = WorkspaceKey::open(&d, &KeySource::passphrase("correct horse")).unwrap();
        assert_eq!(k.id(), again.id());
        assert_eq!(*k.subkey("x"), *again.subkey("x"));
        let before = std::fs::read(path(&d)).unwrap();
        let err = WorkspaceKey::open(&d, &KeySource::passphrase("wrong")).unwrap_err();
        assert!(matches!(err, CryptoError::WrongPassphrase { .. }), "{err}");
        assert_eq!(std::fs::read(path(&d)).unwrap(), before);
        let none = KeySource { passphrase: None, keyring: false, prompt: None };
        assert!(matches!(WorkspaceKey::open(&d, &none), Err(CryptoError::NoKeySource { .. })));
        let text = String::from_utf8(before).unwrap();
        assert!(!text.contains(&hex::encode(k.raw())));
        let st = status(&d).unwrap();
        assert_eq!(st.key_id, k.id());
        assert_eq!(st.protection, "passphrase");
    }

    #[test]
    fn no_source_on_a_new_dir_is_a_clear_error_and_creates_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let none = KeySource { passphrase: None, keyring: false, prompt: None };
        let err = WorkspaceKey::open(dir.path(), &none).unwrap_err();
        assert!(err.to_string().contains("TRESOR_PASSPHRASE"), "{err}");
        assert!(!path(dir.path()).exists());
    }

    #[test]
    fn prompt_asks_twice_for_a_new_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let src = KeySource { passphrase: None, keyring: false, prompt: None }.with_prompt(std::sync::Arc::new(move |k, _| {
            s2.lock().unwrap().push(k);
            Some(Passphrase::new("typed"))
        }));
        let k = WorkspaceKey::open(dir.path(), &src).unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![PromptKind::New, PromptKind::Confirm]);
        assert_eq!(WorkspaceKey::open(dir.path(), &KeySource::passphrase("typed")).unwrap().id(), k.id());
    }
}
