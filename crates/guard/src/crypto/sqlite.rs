//! SQLCipher: opening a database with the workspace key, migrating a
//! plaintext SQLite file (from before encryption) and re-encrypting under
//! a new key. Both conversions go through `sqlcipher_export` into a new
//! file next to the database, then an atomic rename: a crash leaves either
//! the old file or the new one, never a mix.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{CryptoError, IoCtx, Result, WorkspaceKey};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> CryptoError + '_ {
    move |source| CryptoError::Db { path: path.to_path_buf(), source }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn is_not_a_db(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::NotADatabase)
}

/// Whether `path` is an unencrypted SQLite database.
pub(crate) fn is_plaintext(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == SQLITE_MAGIC
}

fn apply_key(conn: &Connection, key: &WorkspaceKey, path: &Path) -> Result<()> {
    let k = key.sqlcipher_key();
    // SQLCipher would log every failed page decryption (a wrong key) to stderr: the typed error says it
    conn.execute_batch(&format!("PRAGMA cipher_log_level = NONE; PRAGMA key = \"{}\"; PRAGMA temp_store = MEMORY;", k.as_str()))
        .map_err(db_err(path))
}

/// Reads the schema: the first read that needs the key. `Ok(false)`: wrong key / not a database.
fn probe(conn: &Connection, path: &Path) -> Result<bool> {
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)) {
        Ok(_) => Ok(true),
        Err(e) if is_not_a_db(&e) => Ok(false),
        Err(e) => Err(db_err(path)(e)),
    }
}

/// How often a connection is opened and keyed before a failing `PRAGMA key`
/// is reported. SQLCipher has refused a valid, non-empty key once in many
/// hundred test runs ("An error occurred with PRAGMA key or rekey", CI,
/// 2026-12-08): its provider failed to set up the codec while other threads
/// opened and closed databases. Nothing reaches the file before the key is
/// set, so a fresh connection is a safe retry; a wrong key is not affected
/// (it fails at the first read, in [`probe`], never here).
const KEY_ATTEMPTS: u32 = 3;

fn connect(path: &Path, key: Option<&WorkspaceKey>, flags: OpenFlags) -> Result<Connection> {
    connect_keyed_by(path, key, flags, apply_key)
}

fn connect_keyed_by(
    path: &Path,
    key: Option<&WorkspaceKey>,
    flags: OpenFlags,
    keyer: impl Fn(&Connection, &WorkspaceKey, &Path) -> Result<()>,
) -> Result<Connection> {
    let mut attempt = 1;
    loop {
        let conn = Connection::open_with_flags(path, flags).map_err(db_err(path))?;
        // Before the key probe reads anything: another process may hold the
        // write lock for a moment (two `tresor ask` on one data dir).
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(db_err(path))?;
        let Some(k) = key else {
            conn.execute_batch("PRAGMA temp_store = MEMORY;").map_err(db_err(path))?;
            return Ok(conn);
        };
        match keyer(&conn, k, path) {
            Ok(()) => return Ok(conn),
            Err(e) if attempt < KEY_ATTEMPTS => {
                tracing::warn!("keying {} failed (attempt {attempt} of {KEY_ATTEMPTS}), retrying on a new connection: {e}", path.display());
                drop(conn);
                std::thread::sleep(std::time::Duration::from_millis(20 * u64::from(attempt)));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn open(key: &WorkspaceKey, path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).io(dir)?;
    }
    let conn = connect(path, Some(key), OpenFlags::default())?;
    if probe(&conn, path)? {
        return Ok(conn);
    }
    drop(conn);
    if is_plaintext(path) {
        tracing::info!("encrypting the plaintext database {} (sqlcipher_export)", path.display());
        reencrypt(path, None, key)?;
        let conn = connect(path, Some(key), OpenFlags::default())?;
        if probe(&conn, path)? {
            return Ok(conn);
        }
    }
    Err(CryptoError::WrongKey { path: path.to_path_buf() })
}

/// Puts the database behind `conn` in WAL mode. Switching needs the file
/// to itself and SQLite does not run the busy handler for it, so two
/// processes opening a fresh database at once (two `tresor ask` on a new
/// data dir) would get "database is locked" however long the busy timeout.
/// WAL is a property of the file: once one connection has switched, the
/// others find it set and take no lock; until then this retries with
/// backoff for up to `budget`.
pub(crate) fn use_wal(conn: &Connection, path: &Path, budget: std::time::Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + budget;
    let mut wait = std::time::Duration::from_millis(5);
    loop {
        let attempt = conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0)).and_then(|mode| {
            if mode.eq_ignore_ascii_case("wal") {
                return Ok(mode);
            }
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
        });
        let last = match attempt {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            // the switch was refused: another connection holds a lock on the file
            Ok(mode) => rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(format!("could not switch to WAL (journal mode is still {mode})")),
            ),
            Err(e) if is_busy(&e) => e,
            Err(e) => return Err(db_err(path)(e)),
        };
        if std::time::Instant::now() >= deadline {
            return Err(db_err(path)(last));
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(std::time::Duration::from_millis(100));
    }
}

/// Whether `key` opens the database at `path` (read-only, changes nothing).
pub(crate) fn opens_with(path: &Path, key: Option<&WorkspaceKey>) -> bool {
    // read-write, never create: a database a killed process left with a hot WAL needs
    // recovery, which a read-only connection may refuse ("opens with no key")
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match connect(path, key, flags) {
        Ok(c) => probe(&c, path).unwrap_or(false),
        Err(_) => false,
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    path.with_file_name(format!("{name}.rekey-{}", std::process::id()))
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Re-encrypts the database at `path` from `from` (None: plaintext) to
/// `to`: checkpoint, `sqlcipher_export` into `<name>.rekey-<pid>`, fsync,
/// atomic rename over the original. Needs exclusive use of the database.
pub(crate) fn reencrypt(path: &Path, from: Option<&WorkspaceKey>, to: &WorkspaceKey) -> Result<()> {
    let tmp = temp_path(path);
    let _ = std::fs::remove_file(&tmp);
    {
        let conn = connect(path, from, OpenFlags::default())?;
        if !probe(&conn, path)? {
            return Err(CryptoError::WrongKey { path: path.to_path_buf() });
        }
        // the WAL must be empty before its files are removed below: a busy or partial checkpoint
        // (another process holds the database) would lose what only the WAL holds
        let (busy, log, done): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).map_err(db_err(path))?;
        if busy != 0 || (log >= 0 && done < log) {
            return Err(CryptoError::CheckpointBusy { path: path.to_path_buf() });
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(db_err(path))?;
        let tmp_s = tmp.to_str().ok_or_else(|| CryptoError::Io {
            path: tmp.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
        })?;
        let k = to.sqlcipher_key();
        let res = conn.execute_batch(&format!(
            "ATTACH DATABASE '{}' AS rekeyed KEY \"{}\";
             SELECT sqlcipher_export('rekeyed');
             PRAGMA rekeyed.user_version = {version};
             DETACH DATABASE rekeyed;",
            tmp_s.replace('\'', "''"),
            k.as_str()
        ));
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(db_err(path)(e));
        }
    }
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).io(&tmp)?;
    // the old database is checkpointed and closed: its WAL holds nothing
    for s in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sidecar(path, s));
    }
    std::fs::rename(&tmp, path).io(path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_refused(path: &Path) -> CryptoError {
        let sql = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR), Some("An error occurred with PRAGMA key or rekey".into()));
        CryptoError::Db { path: path.to_path_buf(), source: sql }
    }

    #[test]
    fn a_refused_key_is_retried_on_a_new_connection_and_then_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.sqlite");
        let key = WorkspaceKey::from_bytes([3; 32]);
        // refused once, then keyed: the database is created under the key and reads back
        let calls = std::cell::Cell::new(0);
        let conn = connect_keyed_by(&path, Some(&key), OpenFlags::default(), |c, k, p| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 { Err(key_refused(p)) } else { apply_key(c, k, p) }
        })
        .unwrap();
        assert_eq!(calls.get(), 2);
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (7);").unwrap();
        drop(conn);
        assert!(!is_plaintext(&path), "the retried connection must have encrypted the file");
        let again = open(&key, &path).unwrap();
        assert_eq!(again.query_row("SELECT x FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 7);
        // refused every time: the error comes back after KEY_ATTEMPTS tries, the file untouched
        let calls = std::cell::Cell::new(0);
        let other = dir.path().join("b.sqlite");
        let e = connect_keyed_by(&other, Some(&key), OpenFlags::default(), |_, _, p| {
            calls.set(calls.get() + 1);
            Err(key_refused(p))
        })
        .unwrap_err();
        assert_eq!(calls.get(), KEY_ATTEMPTS);
        assert!(e.to_string().contains("b.sqlite") || format!("{e:?}").contains("PRAGMA key"), "{e:?}");
        assert_eq!(std::fs::metadata(&other).map(|m| m.len()).unwrap_or(0), 0, "nothing was written");
    }

    fn fill(conn: &Connection) {
        conn.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT);
             CREATE VIRTUAL TABLE f USING fts5(body);
             INSERT INTO t(body) VALUES ('zebramarker one'), ('two');
             INSERT INTO f(rowid, body) SELECT id, body FROM t;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }

    fn check(conn: &Connection) {
        let n: i64 = conn.query_row("SELECT count(*) FROM f WHERE f MATCH 'zebramarker'", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
        let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, 3);
        let seq: i64 = conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = 't'", [], |r| r.get(0)).unwrap();
        assert_eq!(seq, 2);
    }

    fn contains(path: &Path, needle: &[u8]) -> bool {
        std::fs::read(path).unwrap().windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn wal_switch_waits_for_a_lock_held_by_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.sqlite");
        let k = WorkspaceKey::ephemeral();
        let holder = k.open_db(&p).unwrap();
        holder.execute_batch("CREATE TABLE t(x); BEGIN; SELECT count(*) FROM t;").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let release = std::thread::spawn(move || {
            rx.recv().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            holder.execute_batch("COMMIT;").unwrap();
            holder
        });
        let c = k.open_db(&p).unwrap();
        // while the reader holds its lock the switch is refused at once
        assert!(use_wal(&c, &p, std::time::Duration::ZERO).is_err());
        tx.send(()).unwrap();
        use_wal(&c, &p, std::time::Duration::from_secs(10)).unwrap();
        let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(release.join().unwrap());
        // many connections opening a fresh file at once all end up in WAL
        let q = dir.path().join("fresh.sqlite");
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (k, q) = (k.clone(), q.clone());
                std::thread::spawn(move || {
                    let c = k.open_db_wal(&q)?;
                    c.execute_batch("CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (1);").map_err(db_err(&q))
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let n: i64 = k.open_db(&q).unwrap().query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 12);
    }

    #[test]
    fn encrypted_db_wrong_key_and_fts5() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.sqlite");
        let k = WorkspaceKey::ephemeral();
        {
            let c = k.open_db(&p).unwrap();
            c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
            fill(&c);
        }
        assert!(!contains(&p, b"zebramarker"));
        assert!(!is_plaintext(&p));
        check(&k.open_db(&p).unwrap());
        let before = std::fs::read(&p).unwrap();
        let err = WorkspaceKey::ephemeral().open_db(&p).unwrap_err();
        assert!(matches!(err, CryptoError::WrongKey { .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert!(opens_with(&p, Some(&k)) && !opens_with(&p, None));
    }

    #[test]
    fn plaintext_db_is_migrated_and_rekey_works() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
            fill(&c);
        }
        assert!(is_plaintext(&p) && contains(&p, b"zebramarker"));
        let k = WorkspaceKey::ephemeral();
        check(&k.open_db(&p).unwrap());
        assert!(!is_plaintext(&p) && !contains(&p, b"zebramarker"));
        let k2 = WorkspaceKey::ephemeral();
        reencrypt(&p, Some(&k), &k2).unwrap();
        check(&k2.open_db(&p).unwrap());
        assert!(matches!(k.open_db(&p), Err(CryptoError::WrongKey { .. })));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains(".rekey-")), "{names:?}");
    }
}
