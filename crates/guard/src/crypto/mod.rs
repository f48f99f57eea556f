//! Encryption at rest: one random 32-byte data key per data directory (a
//! workspace), wrapped (XChaCha20-Poly1305) by a key-encryption key (KEK)
//! that comes from the OS keyring where there is one, otherwise from a
//! passphrase through Argon2id. The wrapped key, the Argon2 salt and
//! parameters live in `<data dir>/tresor-key.json` (docs/encryption.md).
//!
//! Owns: the key file, the data key and what is derived from it — the
//! SQLCipher key of every SQLite database ([`WorkspaceKey::open_db`]), AEAD
//! sealing of every other file Tresor writes under the data dir
//! ([`WorkspaceKey::seal`], [`WorkspaceKey::write_file`]), labelled subkeys
//! for other uses ([`WorkspaceKey::subkey`]), and key rotation
//! ([`rotate`]).
//!
//! Must never: keep a key in a process-global (a server holds several
//! workspaces at once; a key is passed explicitly to every store), write a
//! key or passphrase anywhere in plaintext, log one, or overwrite anything
//! when a passphrase is wrong.

mod keyfile;
mod keyring_kek;
mod rotate;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use keyfile::{KeyStatus, KEY_FILE};
pub use rotate::{abort_rotation, change_passphrase, hold_in_use, rotate, InUse, RotateReport, IN_USE_FILE};

/// What the key file of `data_dir` says (no passphrase needed).
pub fn key_status(data_dir: &Path) -> Result<KeyStatus> {
    keyfile::status(data_dir)
}

/// Whether `data_dir` has a key file yet.
pub fn has_key(data_dir: &Path) -> bool {
    data_dir.join(KEY_FILE).exists()
}

/// Length of the data key, the KEK and every subkey.
pub const KEY_LEN: usize = 32;

/// First bytes of every AEAD-sealed file or blob: magic (8) + key id (8) + nonce (24).
const MAGIC: &[u8; 8] = b"TRSRAE01";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "wrong passphrase for the data directory {dir} (the key file {} is unchanged); \
         check TRESOR_PASSPHRASE / --passphrase-file",
        dir.join(KEY_FILE).display()
    )]
    WrongPassphrase { dir: PathBuf },
    #[error(
        "no key for the data directory {dir}: no OS keyring is available and no passphrase was given; \
         set TRESOR_PASSPHRASE, pass --passphrase-file FILE, or run in a terminal to be asked"
    )]
    NoKeySource { dir: PathBuf },
    #[error(
        "the data directory {dir} is protected by the OS keyring entry `{entry}`, which cannot be read here ({reason}); \
         unlock the keyring, or run where it is available"
    )]
    KeyringUnavailable { dir: PathBuf, entry: String, reason: String },
    #[error(
        "{path} cannot be opened with this workspace's key (wrong key, or the file is not a Tresor database); nothing was changed"
    )]
    WrongKey { path: PathBuf },
    #[error("{path}: decryption failed: the file was encrypted with another key, or it was modified")]
    Decrypt { path: PathBuf },
    #[error("{path}: not a file encrypted by Tresor ({reason})")]
    NotSealed { path: PathBuf, reason: String },
    #[error("key file {path}: {reason}")]
    BadKeyFile { path: PathBuf, reason: String },
    #[error(
        "a key rotation of {dir} was interrupted: run `tresor key rotate` again to finish it (with the same passphrase)"
    )]
    RotationInterrupted { dir: PathBuf },
    #[error(
        "the workspace {dir} is in use (a running `tresor serve`, the desktop app or another `tresor key` holds it); \
         stop it and run the command again — nothing was changed"
    )]
    InUse { dir: PathBuf },
    #[error(
        "database {path} could not be checkpointed (its write-ahead log is busy: another process has it open); \
         stop it and run `tresor key rotate` again — this file was not converted"
    )]
    CheckpointBusy { path: PathBuf },
    #[error(
        "database {path} opens with neither the current nor the new key: the rotation stopped before the key file \
         changed, so nothing is lost; restore the file from a backup or move it away, then run `tresor key rotate` \
         again (or `--abort`)"
    )]
    UnknownDatabase { path: PathBuf },
    #[error("no key rotation of {dir} is in progress: nothing to abort")]
    NothingToAbort { dir: PathBuf },
    #[error("passphrase: {0}")]
    Passphrase(String),
    #[error("database {path}: {source}")]
    Db { path: PathBuf, source: rusqlite::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

pub(crate) trait IoCtx<T> {
    fn io(self, path: &Path) -> Result<T>;
}

impl<T> IoCtx<T> for std::result::Result<T, std::io::Error> {
    fn io(self, path: &Path) -> Result<T> {
        self.map_err(|source| CryptoError::Io { path: path.to_path_buf(), source })
    }
}

/// A passphrase; zeroed on drop, never printed.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    pub fn new(s: impl Into<String>) -> Passphrase {
        Passphrase(Zeroizing::new(s.into()))
    }
    /// Reads a passphrase file: its first line, without the line ending.
    pub fn from_file(path: &Path) -> Result<Passphrase> {
        let s = Zeroizing::new(std::fs::read_to_string(path).io(path)?);
        let line = s.lines().next().unwrap_or("");
        if line.is_empty() {
            return Err(CryptoError::Passphrase(format!("{} is empty", path.display())));
        }
        Ok(Passphrase::new(line))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(***)")
    }
}

/// Why a passphrase is being asked for (the front door's prompt text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// Unlock an existing data directory.
    Unlock,
    /// Choose the passphrase of a new data directory (or a new passphrase).
    New,
    /// Repeat the new passphrase.
    Confirm,
}

/// Asks the user for a passphrase (e.g. a terminal prompt); `None` if it cannot.
pub type Prompt = Arc<dyn Fn(PromptKind, &Path) -> Option<Passphrase> + Send + Sync>;

/// Where the key-encryption key comes from, in this order: an explicit
/// passphrase; the OS keyring (when `keyring` is true and there is one);
/// the prompt; otherwise [`CryptoError::NoKeySource`]. An existing key file
/// decides between passphrase and keyring by how it was wrapped.
#[derive(Clone)]
pub struct KeySource {
    pub passphrase: Option<Passphrase>,
    /// Use the OS keyring when no passphrase is given (default: true).
    pub keyring: bool,
    pub prompt: Option<Prompt>,
}

impl Default for KeySource {
    fn default() -> Self {
        KeySource { passphrase: None, keyring: true, prompt: None }
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySource")
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("keyring", &self.keyring)
            .field("prompt", &self.prompt.is_some())
            .finish()
    }
}

impl KeySource {
    /// A fixed passphrase (tests, `--passphrase-file`); the keyring is not used.
    pub fn passphrase(p: impl Into<String>) -> KeySource {
        KeySource { passphrase: Some(Passphrase::new(p)), keyring: false, prompt: None }
    }
    /// `TRESOR_PASSPHRASE` if set and non-empty, otherwise the OS keyring.
    pub fn from_env() -> KeySource {
        let passphrase = std::env::var("TRESOR_PASSPHRASE").ok().filter(|s| !s.is_empty()).map(Passphrase::new);
        KeySource { passphrase, keyring: true, prompt: None }
    }
    pub fn with_prompt(mut self, prompt: Prompt) -> KeySource {
        self.prompt = Some(prompt);
        self
    }
}

/// The unwrapped data key of one data directory. Cheap to clone; hand it
/// explicitly to every store that reads or writes under that directory.
#[derive(Clone)]
pub struct WorkspaceKey {
    key: Arc<Zeroizing<[u8; KEY_LEN]>>,
    id: [u8; KEY_ID_LEN],
}

impl fmt::Debug for WorkspaceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkspaceKey({})", self.id())
    }
}

impl WorkspaceKey {
    /// Opens the data key of `data_dir`, creating the directory and a new
    /// random key (wrapped by `source`) if it has none yet. A wrong
    /// passphrase is [`CryptoError::WrongPassphrase`] and writes nothing.
    pub fn open(data_dir: &Path, source: &KeySource) -> Result<WorkspaceKey> {
        keyfile::open_or_create(data_dir, source)
    }

    /// Opens the data key of `data_dir` only if it already has a key file
    /// (`Ok(None)` otherwise; creates nothing).
    pub fn open_existing(data_dir: &Path, source: &KeySource) -> Result<Option<WorkspaceKey>> {
        if !data_dir.join(KEY_FILE).exists() {
            return Ok(None);
        }
        keyfile::open_or_create(data_dir, source).map(Some)
    }

    /// A random key that lives only in memory (tests, benches, scratch stores).
    pub fn ephemeral() -> WorkspaceKey {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        WorkspaceKey::from_bytes(k)
    }

    /// A key from raw bytes (tests, key rotation).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> WorkspaceKey {
        let key = Arc::new(Zeroizing::new(bytes));
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&derive(&key, "key-id")[..KEY_ID_LEN]);
        WorkspaceKey { key, id }
    }

    /// Public fingerprint of the key (16 hex digits): safe to print and log.
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// A 32-byte subkey for `label` (e.g. "pii-pseudonym", "audit-signing"):
    /// SHA-256 over a domain tag, the label and the data key. Different
    /// labels give independent keys; none reveals the data key.
    pub fn subkey(&self, label: &str) -> Zeroizing<[u8; KEY_LEN]> {
        derive(&self.key, label)
    }

    /// The value for SQLCipher's `PRAGMA key` (a raw 256-bit key, so no
    /// PBKDF2 on every open): `x'<64 hex digits>'` of the "sqlcipher" subkey.
    pub fn sqlcipher_key(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(*self.subkey("sqlcipher"))))
    }

    /// Opens (creating if needed) the SQLite database at `path` through
    /// SQLCipher with this key. A plaintext SQLite database from before
    /// encryption is migrated in place (`sqlcipher_export`, atomic rename).
    /// A database under another key is [`CryptoError::WrongKey`], untouched.
    /// Callers set their own pragmas (journal mode, foreign keys) afterwards.
    pub fn open_db(&self, path: &Path) -> Result<rusqlite::Connection> {
        sqlite::open(self, path)
    }

    /// [`WorkspaceKey::open_db`], then WAL mode (readers never wait for the
    /// writer). Safe when several processes open a fresh database at once:
    /// the switch to WAL is retried while another holds the file.
    pub fn open_db_wal(&self, path: &Path) -> Result<rusqlite::Connection> {
        let conn = sqlite::open(self, path)?;
        sqlite::use_wal(&conn, path, std::time::Duration::from_secs(10))?;
        Ok(conn)
    }

    /// Seals `plaintext` (XChaCha20-Poly1305, random nonce); `aad` is
    /// authenticated but not stored: the same `aad` must be given to
    /// [`WorkspaceKey::unseal`]. Output: magic, key id, nonce, ciphertext+tag.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        let full_aad = [&out[..MAGIC.len() + KEY_ID_LEN], aad].concat();
        let ct = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad: &full_aad })
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        out.extend_from_slice(&ct);
        out
    }

    /// Opens what [`WorkspaceKey::seal`] produced. `what` names the blob in errors.
    pub fn unseal(&self, sealed: &[u8], aad: &[u8], what: &Path) -> Result<Vec<u8>> {
        let header = sealed_header(sealed).ok_or_else(|| CryptoError::NotSealed {
            path: what.to_path_buf(),
            reason: "no Tresor encryption header".into(),
        })?;
        if header.key_id != self.id {
            return Err(CryptoError::Decrypt { path: what.to_path_buf() });
        }
        let full_aad = [&sealed[..MAGIC.len() + KEY_ID_LEN], aad].concat();
        self.cipher()
            .decrypt(XNonce::from_slice(header.nonce), Payload { msg: &sealed[HEADER_LEN..], aad: &full_aad })
            .map_err(|_| CryptoError::Decrypt { path: what.to_path_buf() })
    }

    /// Seals `plaintext` and writes it to `path` atomically (temp file in the
    /// same folder, fsync, rename, fsync the folder).
    pub fn write_file(&self, path: &Path, plaintext: &[u8]) -> Result<()> {
        write_atomic(path, &self.seal(plaintext, b""))
    }

    /// Reads and opens a file written by [`WorkspaceKey::write_file`].
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).io(path)?;
        self.unseal(&bytes, b"", path)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new_from_slice(&self.key[..]).expect("32-byte key")
    }

    pub(crate) fn raw(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    pub(crate) fn id_bytes(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }
}

/// Whether `bytes` start like a blob or file sealed by [`WorkspaceKey::seal`].
pub fn is_sealed(bytes: &[u8]) -> bool {
    sealed_header(bytes).is_some()
}

pub(crate) struct SealedHeader<'a> {
    pub key_id: &'a [u8],
    pub nonce: &'a [u8],
}

pub(crate) fn sealed_header(b: &[u8]) -> Option<SealedHeader<'_>> {
    if b.len() < HEADER_LEN + 16 || &b[..MAGIC.len()] != MAGIC {
        return None;
    }
    Some(SealedHeader { key_id: &b[MAGIC.len()..MAGIC.len() + KEY_ID_LEN], nonce: &b[MAGIC.len() + KEY_ID_LEN..HEADER_LEN] })
}

fn derive(key: &[u8; KEY_LEN], label: &str) -> Zeroizing<[u8; KEY_LEN]> {
    let mut h = Sha256::new();
    h.update(b"tresor-subkey-v1\0");
    h.update((label.len() as u64).to_le_bytes());
    h.update(label.as_bytes());
    h.update(key);
    Zeroizing::new(h.finalize().into())
}

/// Writes `bytes` to `path` atomically: `<name>.tmp-<pid>` in the same
/// folder, fsync, rename over `path`, fsync the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!("{name}.tmp-{}", std::process::id()));
    let res = (|| {
        let mut f = crate::private::open_private(std::fs::OpenOptions::new().write(true).create(true).truncate(true), &tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(CryptoError::Io { path: tmp, source: e });
    }
    std::fs::rename(&tmp, path).io(path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_unseal_roundtrip_and_tamper() {
        let k = WorkspaceKey::ephemeral();
        let s = k.seal(b"geheim marker", b"ctx");
        assert!(is_sealed(&s));
        assert!(!s.windows(6).any(|w| w == b"marker"));
        assert_eq!(k.unseal(&s, b"ctx", Path::new("x")).unwrap(), b"geheim marker");
        assert!(matches!(k.unseal(&s, b"other", Path::new("x")), Err(CryptoError::Decrypt { .. })));
        let mut t = s.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(matches!(k.unseal(&t, b"ctx", Path::new("x")), Err(CryptoError::Decrypt { .. })));
        let other = WorkspaceKey::ephemeral();
        assert!(matches!(other.unseal(&s, b"ctx", Path::new("x")), Err(CryptoError::Decrypt { .. })));
        assert!(matches!(k.unseal(b"plain text here, long enough to have a header...", b"", Path::new("x")), Err(CryptoError::NotSealed { .. })));
    }

    #[test]
    fn subkeys_differ_by_label_and_key() {
        let k = WorkspaceKey::from_bytes([7; 32]);
        assert_ne!(*k.subkey("a"), *k.subkey("b"));
        assert_eq!(*k.subkey("a"), *WorkspaceKey::from_bytes([7; 32]).subkey("a"));
        assert_ne!(*k.subkey("a"), *WorkspaceKey::from_bytes([8; 32]).subkey("a"));
        assert_ne!(&k.subkey("a")[..], &k.raw()[..]);
        assert_eq!(k.sqlcipher_key().len(), 67);
        assert_eq!(k.id().len(), 16);
    }

    #[test]
    fn write_read_file_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let k = WorkspaceKey::ephemeral();
        let p = dir.path().join("f.bin");
        k.write_file(&p, b"hello").unwrap();
        assert_eq!(k.read_file(&p).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
