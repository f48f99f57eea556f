//! Key rotation and passphrase change.
//!
//! Rotation is resumable: (1) the next data key is written into the key
//! file as `pending` (wrapped by the current KEK) — from then on ordinary
//! opens refuse with `RotationInterrupted`; (2) every file of the data dir
//! is converted, each one atomically (databases: `sqlcipher_export` + rename;
//! sealed files: re-sealed + rename), skipping those already under the new
//! key; (3) the key file is replaced by one holding only the new key
//! (wrapped by the new KEK when a new passphrase is given). A crash at any
//! point leaves every file readable by the old or the new key, both in the
//! key file; running `tresor key rotate` again finishes the job.
//!
//! Rotation needs exclusive use of the data dir: it takes an exclusive lock
//! on `<data_dir>/in-use.lock` and refuses ([`CryptoError::InUse`]) while a
//! `tresor serve` worker or the desktop app holds its shared lock
//! ([`hold_in_use`]). Every database's WAL checkpoint is checked (a busy one
//! stops the rotation before its WAL is touched). Left-over temp files of an
//! interrupted conversion (`*.rekey-*`, `*.tmp-<pid>`) are removed, never
//! converted. [`abort_rotation`] (`tresor key rotate --abort`) goes back:
//! files already under the new key are converted back to the old one and
//! the pending key is dropped. Nested data dirs (other workspaces: folders
//! with their own key file) are skipped.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::keyfile::{self, Kek, KeyFile};
use super::{is_sealed, keyring_kek, sealed_header, sqlite, write_atomic, CryptoError, IoCtx, KeySource, Result, WorkspaceKey, KEY_FILE};

#[derive(Debug, Clone, Serialize)]
pub struct RotateReport {
    pub old_key_id: String,
    pub new_key_id: String,
    /// Whether this run finished a rotation that had been interrupted.
    pub resumed: bool,
    pub databases: usize,
    pub files: usize,
    /// Files already under the new key (a resumed rotation).
    pub already_done: usize,
    /// Files that are neither a Tresor database nor a sealed file (left as they are).
    pub not_encrypted: Vec<PathBuf>,
    /// "passphrase" or "keyring": how the new key file is protected.
    pub protection: String,
}

enum Kind {
    Sealed,
    Database,
    Other,
}

fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).io(dir)? {
        let e = e.io(dir)?;
        let ft = e.file_type().io(&e.path())?;
        let p = e.path();
        if ft.is_dir() {
            if p != root && (p.join(KEY_FILE).exists() || p.join(crate::workspace::MARKER).exists()) {
                continue; // another workspace, with its own key
            }
            files(root, &p, out)?;
        } else if ft.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

fn skip(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    name.starts_with(KEY_FILE) || name.ends_with("-wal") || name.ends_with("-shm") || name.ends_with("-journal") || name.ends_with(".lock")
}

fn classify(p: &Path, old: &WorkspaceKey, new: &WorkspaceKey) -> Result<(Kind, bool)> {
    let bytes_head = {
        use std::io::Read;
        let mut b = Vec::with_capacity(64);
        std::fs::File::open(p).and_then(|f| f.take(64).read_to_end(&mut b)).io(p)?;
        b
    };
    if is_sealed(&bytes_head) || (bytes_head.len() >= 16 && &bytes_head[..8] == b"TRSRAE01") {
        let done = sealed_header(&bytes_head).map(|h| h.key_id == new.id_bytes()).unwrap_or(false);
        return Ok((Kind::Sealed, done));
    }
    if sqlite::is_plaintext(p) {
        return Ok((Kind::Database, false));
    }
    if bytes_head.is_empty() {
        return Ok((Kind::Other, false));
    }
    if sqlite::opens_with(p, Some(new)) {
        return Ok((Kind::Database, true));
    }
    if sqlite::opens_with(p, Some(old)) {
        return Ok((Kind::Database, false));
    }
    Ok((Kind::Other, false))
}

/// The lock file whose shared lock marks a workspace in use.
pub const IN_USE_FILE: &str = "in-use.lock";

/// A held lock on a workspace's [`IN_USE_FILE`] (released when dropped).
#[derive(Debug)]
pub struct InUse(#[allow(dead_code)] std::fs::File);

fn in_use_file(data_dir: &Path) -> Result<std::fs::File> {
    let p = data_dir.join(IN_USE_FILE);
    crate::private::open_private(std::fs::OpenOptions::new().create(true).truncate(false).write(true), &p).io(&p)
}

/// Marks `data_dir` in use for as long as the returned value lives (a shared
/// lock: several servers and apps may hold it; a rotation may not start).
pub fn hold_in_use(data_dir: &Path) -> Result<InUse> {
    let f = in_use_file(data_dir)?;
    f.lock_shared().io(&data_dir.join(IN_USE_FILE))?;
    Ok(InUse(f))
}

/// The exclusive lock a rotation holds, or [`CryptoError::InUse`].
fn exclusive(data_dir: &Path) -> Result<InUse> {
    let f = in_use_file(data_dir)?;
    match f.try_lock() {
        Ok(()) => Ok(InUse(f)),
        Err(std::fs::TryLockError::WouldBlock) => Err(CryptoError::InUse { dir: data_dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(e)) => Err(CryptoError::Io { path: data_dir.join(IN_USE_FILE), source: e }),
    }
}

/// The names Tresor gives its SQLCipher databases (`kb.sqlite`, `assistant.sqlite`, …).
fn is_database_name(name: &str) -> bool {
    name.ends_with(".sqlite") || name.ends_with(".db")
}

/// A temp file of an interrupted conversion: `*.rekey-*` (databases) or
/// `*.tmp-<pid>` (atomic writes); removed, never converted.
fn leftover(name: &str) -> bool {
    name.contains(".rekey-") || name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Converts every file of `data_dir` from key `from` to key `to` (files
/// already under `to` are counted in `already_done`).
fn convert_all(data_dir: &Path, from: &WorkspaceKey, to: &WorkspaceKey, report: &mut RotateReport) -> Result<()> {
    let mut all = Vec::new();
    files(data_dir, data_dir, &mut all)?;
    all.sort();
    for p in all {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        if leftover(&name) {
            let _ = std::fs::remove_file(&p); // left by an interrupted conversion
            continue;
        }
        if skip(&p) || name == IN_USE_FILE {
            continue;
        }
        let (kind, done) = classify(&p, from, to)?;
        match kind {
            Kind::Sealed if done => report.already_done += 1,
            Kind::Sealed => {
                let plain = zeroize::Zeroizing::new(from.read_file(&p)?);
                write_atomic(&p, &to.seal(&plain, b""))?;
                report.files += 1;
            }
            Kind::Database if done => report.already_done += 1,
            Kind::Database => {
                let f = if sqlite::is_plaintext(&p) { None } else { Some(from) };
                sqlite::reencrypt(&p, f, to)?;
                report.databases += 1;
            }
            // A Tresor database that opens with neither key must stop the rotation: skipping it
            // and then replacing the key file would leave it under a key nobody has any more.
            Kind::Other if is_database_name(&name) && std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(true) => {
                return Err(CryptoError::UnknownDatabase { path: p });
            }
            Kind::Other => report.not_encrypted.push(p),
        }
        #[cfg(test)]
        if STOP_AFTER.with(|s| s.get()) == Some(report.databases + report.files) {
            return Err(CryptoError::Passphrase("test: simulated crash".into()));
        }
    }
    Ok(())
}

/// `tresor key rotate --abort`: undoes an interrupted rotation — every file
/// already under the pending key goes back to the current one, then the
/// pending key is dropped. Same lock as [`rotate`].
pub fn abort_rotation(data_dir: &Path, source: &KeySource) -> Result<RotateReport> {
    let (kf, _kek, old, pending) = keyfile::unlock(data_dir, source)?;
    let _lock = exclusive(data_dir)?;
    let Some(new) = pending else { return Err(CryptoError::NothingToAbort { dir: data_dir.to_path_buf() }) };
    let mut report = RotateReport {
        old_key_id: new.id(),
        new_key_id: old.id(),
        resumed: true,
        databases: 0,
        files: 0,
        already_done: 0,
        not_encrypted: Vec::new(),
        protection: protection(&kf.kek),
    };
    convert_all(data_dir, &new, &old, &mut report)?;
    keyfile::write(data_dir, &KeyFile { pending: None, ..kf })?;
    Ok(report)
}

/// Rotates the data key of `data_dir` (unlocked through `source`), or
/// finishes an interrupted rotation. `new_source` with a passphrase also
/// changes the passphrase (the old one no longer opens the key file).
pub fn rotate(data_dir: &Path, source: &KeySource, new_source: Option<&KeySource>) -> Result<RotateReport> {
    // the passphrase first: a wrong one changes no byte (not even the lock file)
    let (kf, kek, old, pending) = keyfile::unlock(data_dir, source)?;
    let _lock = exclusive(data_dir)?;
    let resumed = pending.is_some();
    let new = match pending {
        Some(k) => k,
        None => {
            let k = WorkspaceKey::ephemeral();
            let mut staged = kf.clone();
            staged.pending = Some(keyfile::wrap(&kek, &k));
            keyfile::write(data_dir, &staged)?;
            k
        }
    };
    let mut report = RotateReport {
        old_key_id: old.id(),
        new_key_id: new.id(),
        resumed,
        databases: 0,
        files: 0,
        already_done: 0,
        not_encrypted: Vec::new(),
        protection: String::new(),
    };
    convert_all(data_dir, &old, &new, &mut report)?;
    // the new key file: new KEK if asked, otherwise the current one
    let (kek_meta, new_kek) = match new_source {
        Some(ns) => keyfile::new_kek(data_dir, ns)?,
        None => (kf.kek.clone(), kek),
    };
    let done = KeyFile {
        format: kf.format.clone(),
        kek: kek_meta.clone(),
        key: keyfile::wrap(&new_kek, &new),
        pending: None,
        created_at: kf.created_at,
        rotated_at: Some(keyfile::now()),
    };
    keyfile::write(data_dir, &done)?;
    if let (Kek::Keyring { entry: old_entry, .. }, true) = (&kf.kek, new_source.is_some()) {
        if !matches!(&kek_meta, Kek::Keyring { entry, .. } if entry == old_entry) {
            keyring_kek::delete(old_entry);
        }
    }
    report.protection = protection(&kek_meta);
    Ok(report)
}

#[cfg(test)]
thread_local! {
    /// Simulates a crash after this many converted files (tests only).
    static STOP_AFTER: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

fn protection(k: &Kek) -> String {
    match k {
        Kek::Argon2id { .. } => "passphrase".into(),
        Kek::Keyring { .. } => "keyring".into(),
    }
}

/// Re-wraps the data key under a new KEK (`new_source`: a new passphrase,
/// or the keyring); the data itself is untouched. Returns the protection.
pub fn change_passphrase(data_dir: &Path, source: &KeySource, new_source: &KeySource) -> Result<String> {
    let (kf, _kek, key, pending) = keyfile::unlock(data_dir, source)?;
    if pending.is_some() {
        return Err(CryptoError::RotationInterrupted { dir: data_dir.to_path_buf() });
    }
    let (kek_meta, new_kek) = keyfile::new_kek(data_dir, new_source)?;
    let kf2 = KeyFile { kek: kek_meta.clone(), key: keyfile::wrap(&new_kek, &key), ..kf.clone() };
    keyfile::write(data_dir, &kf2)?;
    if let Kek::Keyring { entry, .. } = &kf.kek {
        keyring_kek::delete(entry);
    }
    Ok(protection(&kek_meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_rotation_refuses_opens_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = WorkspaceKey::open(d, &src).unwrap();
        for name in ["a.sqlite", "sub/b.sqlite"] {
            let c = k.open_db(&d.join(name)).unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('secret');").unwrap();
        }
        k.write_file(&d.join("sub/v.bin"), b"vectors").unwrap();
        std::fs::write(d.join("notes.txt"), b"plain").unwrap();
        // another workspace inside: never touched
        std::fs::create_dir_all(d.join("workspaces/other")).unwrap();
        std::fs::write(d.join("workspaces/other").join(crate::workspace::MARKER), b"{}").unwrap();
        let other = WorkspaceKey::ephemeral();
        other.write_file(&d.join("workspaces/other/x.bin"), b"theirs").unwrap();

        STOP_AFTER.with(|s| s.set(Some(1)));
        assert!(rotate(d, &src, None).is_err());
        STOP_AFTER.with(|s| s.set(None));
        assert!(matches!(WorkspaceKey::open(d, &src), Err(CryptoError::RotationInterrupted { .. })));
        assert!(keyfile::status(d).unwrap().rotation_pending);

        let r = rotate(d, &src, None).unwrap();
        assert!(r.resumed);
        assert_eq!(r.already_done, 1);
        assert_eq!(r.databases + r.files + r.already_done, 3);
        assert_eq!(r.not_encrypted, vec![d.join("notes.txt")]);
        let k2 = WorkspaceKey::open(d, &src).unwrap();
        assert_ne!(k2.id(), k.id());
        for name in ["a.sqlite", "sub/b.sqlite"] {
            let c = k2.open_db(&d.join(name)).unwrap();
            let x: String = c.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(x, "secret");
            assert!(matches!(k.open_db(&d.join(name)), Err(CryptoError::WrongKey { .. })));
        }
        assert_eq!(k2.read_file(&d.join("sub/v.bin")).unwrap(), b"vectors");
        assert!(k.read_file(&d.join("sub/v.bin")).is_err());
        assert_eq!(other.read_file(&d.join("workspaces/other/x.bin")).unwrap(), b"theirs");
    }

    #[test]
    fn a_database_a_killed_writer_left_with_a_hot_wal_is_converted_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = WorkspaceKey::open(d, &src).unwrap();
        // a writer with uncheckpointed pages in its WAL; copying the files while it is open is
        // what a kill -9 leaves behind (database + -wal + -shm)
        let scratch = tempfile::tempdir().unwrap();
        let c = k.open_db(&scratch.path().join("kb.sqlite")).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x); INSERT INTO t VALUES ('secret');")
            .unwrap();
        std::fs::create_dir_all(d.join("kb/x")).unwrap();
        for s in ["", "-wal", "-shm"] {
            let from = scratch.path().join(format!("kb.sqlite{s}"));
            if from.exists() {
                std::fs::copy(&from, d.join(format!("kb/x/kb.sqlite{s}"))).unwrap();
            }
        }
        drop(c);
        let r = rotate(d, &src, None).unwrap();
        assert!(!r.not_encrypted.iter().any(|p| p.ends_with("kb.sqlite")), "skipped: {:?}", r.not_encrypted);
        let k2 = WorkspaceKey::open(d, &src).unwrap();
        let c = k2.open_db(&d.join("kb/x/kb.sqlite")).unwrap();
        let x: String = c.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, "secret");
    }

    #[test]
    fn a_database_no_key_opens_stops_the_rotation_before_the_key_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = WorkspaceKey::open(d, &src).unwrap();
        let c = k.open_db(&d.join("assistant.sqlite")).unwrap();
        c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('secret');").unwrap();
        drop(c);
        // a database under some third key (a restored backup of another workspace, say)
        let other = WorkspaceKey::ephemeral();
        other.open_db(&d.join("kb.sqlite")).unwrap().execute_batch("CREATE TABLE t(x);").unwrap();
        let e = rotate(d, &src, None).unwrap_err();
        assert!(matches!(e, CryptoError::UnknownDatabase { .. }), "{e}");
        assert!(e.to_string().contains("kb.sqlite"), "{e}");
        // --abort refuses on the same file (it would drop the pending key just the same) …
        assert!(matches!(abort_rotation(d, &src), Err(CryptoError::UnknownDatabase { .. })));
        // … and once the stranger is moved away, goes back to the old key: nothing lost
        let aside = tempfile::tempdir().unwrap();
        std::fs::rename(d.join("kb.sqlite"), aside.path().join("stranger.sqlite")).unwrap();
        abort_rotation(d, &src).unwrap();
        let k1 = WorkspaceKey::open(d, &src).unwrap();
        assert_eq!(k1.id(), k.id());
        let x: String = k1.open_db(&d.join("assistant.sqlite")).unwrap().query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, "secret");
    }

    fn seeded(d: &Path, src: &KeySource) -> WorkspaceKey {
        let k = WorkspaceKey::open(d, src).unwrap();
        for name in ["a.sqlite", "sub/b.sqlite"] {
            let c = k.open_db(&d.join(name)).unwrap();
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('secret');").unwrap();
        }
        k.write_file(&d.join("sub/v.bin"), b"vectors").unwrap();
        k
    }

    #[test]
    fn a_workspace_in_use_refuses_rotation_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = seeded(d, &src);
        let held = hold_in_use(d).unwrap();
        let _second = hold_in_use(d).unwrap(); // several servers / apps may share it
        assert!(matches!(rotate(d, &src, None), Err(CryptoError::InUse { .. })));
        assert!(matches!(abort_rotation(d, &src), Err(CryptoError::InUse { .. })));
        assert!(!keyfile::status(d).unwrap().rotation_pending, "nothing staged");
        assert_eq!(WorkspaceKey::open(d, &src).unwrap().id(), k.id());
        drop(held);
        drop(_second);
        rotate(d, &src, None).unwrap();
    }

    #[test]
    fn a_leftover_partial_temp_file_is_removed_not_converted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = seeded(d, &src);
        // a kill -9 inside write_atomic / reencrypt: half a sealed file, half a database
        let sealed = std::fs::read(d.join("sub/v.bin")).unwrap();
        std::fs::write(d.join("sub/v.bin.tmp-4242"), &sealed[..sealed.len() / 2]).unwrap();
        std::fs::write(d.join("a.sqlite.rekey-4242"), b"SQLite format 3\0 half").unwrap();
        let r = rotate(d, &src, None).unwrap();
        assert_eq!(r.databases + r.files, 3, "{r:?}");
        assert!(!d.join("sub/v.bin.tmp-4242").exists() && !d.join("a.sqlite.rekey-4242").exists());
        let k2 = WorkspaceKey::open(d, &src).unwrap();
        assert_ne!(k2.id(), k.id());
        assert_eq!(k2.read_file(&d.join("sub/v.bin")).unwrap(), b"vectors");
    }

    #[test]
    fn a_busy_wal_stops_the_rotation_before_its_wal_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = seeded(d, &src);
        // another connection holds a read transaction: a TRUNCATE checkpoint cannot finish
        let other = k.open_db(&d.join("a.sqlite")).unwrap();
        other.execute_batch("PRAGMA journal_mode=WAL; INSERT INTO t VALUES ('only in the wal');").unwrap();
        other.execute_batch("BEGIN; SELECT count(*) FROM t;").unwrap();
        let e = rotate(d, &src, None).unwrap_err();
        assert!(matches!(e, CryptoError::CheckpointBusy { .. }), "{e}");
        other.execute_batch("COMMIT").unwrap();
        drop(other);
        // the rotation resumes and nothing the WAL held is lost
        rotate(d, &src, None).unwrap();
        let k2 = WorkspaceKey::open(d, &src).unwrap();
        let n: i64 = k2.open_db(&d.join("a.sqlite")).unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn abort_goes_back_to_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = KeySource::passphrase("pw");
        let k = seeded(d, &src);
        assert!(matches!(abort_rotation(d, &src), Err(CryptoError::NothingToAbort { .. })));
        STOP_AFTER.with(|s| s.set(Some(2)));
        assert!(rotate(d, &src, None).is_err());
        STOP_AFTER.with(|s| s.set(None));
        assert!(matches!(WorkspaceKey::open(d, &src), Err(CryptoError::RotationInterrupted { .. })));
        let r = abort_rotation(d, &src).unwrap();
        assert_eq!(r.databases + r.files, 2, "the two converted files went back: {r:?}");
        let k2 = WorkspaceKey::open(d, &src).unwrap();
        assert_eq!(k2.id(), k.id());
        for name in ["a.sqlite", "sub/b.sqlite"] {
            let x: String = k.open_db(&d.join(name)).unwrap().query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(x, "secret");
        }
        assert_eq!(k.read_file(&d.join("sub/v.bin")).unwrap(), b"vectors");
    }

    #[test]
    fn change_passphrase_rewraps_only() {
        let dir = tempfile::tempdir().unwrap();
        let k = WorkspaceKey::open(dir.path(), &KeySource::passphrase("old")).unwrap();
        change_passphrase(dir.path(), &KeySource::passphrase("old"), &KeySource::passphrase("new")).unwrap();
        assert!(matches!(WorkspaceKey::open(dir.path(), &KeySource::passphrase("old")), Err(CryptoError::WrongPassphrase { .. })));
        assert_eq!(WorkspaceKey::open(dir.path(), &KeySource::passphrase("new")).unwrap().id(), k.id());
    }
}
