//! The tamper-evident audit log: who did what, when — never the raw text.
//!
//! Owns `<data_dir>/audit/`: `log.jsonl` (one entry per line, canonical JSON
//! with sorted keys: `seq`, `time`, `actor`, `workspace`, `event`, `data`,
//! `prev` = the previous entry's `hash`, `hash` = SHA-256 of the entry's
//! canonical JSON without `hash`), `checkpoints.jsonl` (after every append,
//! an ed25519 signature over `seq` and `hash` of the head), `checkpoint.key`
//! (the data dir's signing seed, mode 0600) and `lock` (an exclusive file
//! lock held while appending, so server threads and several CLI processes
//! never interleave). [`AuditLog::verify`] names the first bad entry.
//! Never: rewrites or deletes an entry, records question text (only a keyed
//! hash, [`AuditLog::question_id`]) or any free text a caller did not mask.
//! The threat model and what cannot be detected are in docs/audit.md.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const LOG_FILE: &str = "log.jsonl";
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
pub const KEY_FILE: &str = "checkpoint.key";
pub const PUB_FILE: &str = "checkpoint.pub";
const LOCK_FILE: &str = "lock";
/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The log cannot be appended to safely (its tail is damaged or unreadable).
    #[error("audit log {}: {reason} (run `tresor audit verify`)", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("audit key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("bad --since `{0}` (use RFC 3339, e.g. 2026-11-25T10:00:00Z, or YYYY-MM-DD)")]
    BadTime(String),
}

type Result<T, E = AuditError> = std::result::Result<T, E>;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io { path: path.to_path_buf(), source }
}

/// What a caller records. `data` must hold ids, hashes, names, counts — text
/// only after `redact::for_log`.
#[derive(Debug, Clone)]
pub struct Event {
    /// e.g. "answer", "kb.ingest", "kb.remove", "policy.refuse", "tool.call".
    pub event: String,
    /// OS user ("user:alice") or API token id ("token:3f2a…").
    pub actor: String,
    pub workspace: String,
    pub data: Value,
}

/// The actor for a local process: `user:$USER`.
pub fn os_actor() -> String {
    let u = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_else(|_| "unknown".into());
    format!("user:{u}")
}

/// An API token's actor id: a short hash, never the token.
pub fn token_actor(token: &str) -> String {
    format!("token:{}", &hex::encode(Sha256::digest(token.as_bytes()))[..12])
}

/// One data dir's audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    dir: PathBuf,
}

/// One torn tail [`AuditLog::repair`] cut.
#[derive(Debug, Clone, Serialize)]
pub struct Repaired {
    pub file: PathBuf,
    pub cut_bytes: u64,
    /// Where the cut bytes are kept.
    pub kept_in: PathBuf,
}

/// What `append` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Appended {
    pub seq: u64,
    pub hash: String,
}

impl AuditLog {
    /// The log under `<data_dir>/audit/` (created on the first append).
    pub fn for_data_dir(data_dir: &Path) -> AuditLog {
        AuditLog { dir: data_dir.join("audit") }
    }

    pub fn at(dir: &Path) -> AuditLog {
        AuditLog { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }
    pub fn checkpoints_path(&self) -> PathBuf {
        self.dir.join(CHECKPOINTS_FILE)
    }

    /// A question's id: SHA-256 keyed with this data dir's secret, so the
    /// audit log cannot be searched for a guessed question.
    pub fn question_id(&self, question: &str) -> Result<String> {
        let sk = self.signing_key()?;
        let mut h = Sha256::new();
        h.update(b"tresor-audit-question\0");
        h.update(sk.to_bytes());
        h.update(question.trim().to_lowercase().as_bytes());
        Ok(hex::encode(&h.finalize()[..16]))
    }

    /// The signing key, created (0600) with its pinned public key on first use.
    fn signing_key(&self) -> Result<SigningKey> {
        let path = self.dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let raw = b64().decode(text.trim()).map_err(|e| AuditError::Key { path: path.clone(), reason: format!("not base64: {e}") })?;
                let seed: [u8; 32] = raw.try_into().map_err(|_| AuditError::Key { path: path.clone(), reason: "not a 32-byte seed".into() })?;
                Ok(SigningKey::from_bytes(&seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
                let mut seed = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
                let sk = SigningKey::from_bytes(&seed);
                match crate::policy::write_private(&path, format!("{}\n", b64().encode(seed)).as_bytes()) {
                    Ok(()) => {}
                    // another process created it first: use theirs
                    Err(crate::policy::PolicyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                        return self.signing_key();
                    }
                    Err(e) => return Err(AuditError::Key { path, reason: e.to_string() }),
                }
                let pub_path = self.dir.join(PUB_FILE);
                std::fs::write(&pub_path, format!("{}\n", b64().encode(sk.verifying_key().to_bytes()))).map_err(io(&pub_path))?;
                Ok(sk)
            }
            Err(source) => Err(AuditError::Io { path, source }),
        }
    }

    /// Appends one entry and a signed checkpoint over it, under the file lock.
    pub fn append(&self, ev: &Event) -> Result<Appended> {
        crate::private::create_dir_private(&self.dir).map_err(io(&self.dir))?;
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = crate::private::open_private(OpenOptions::new().create(true).truncate(false).write(true), &lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let r = self.append_locked(ev);
        let _ = lock.unlock();
        r
    }

    fn append_locked(&self, ev: &Event) -> Result<Appended> {
        let sk = self.signing_key()?;
        let log_path = self.log_path();
        let mut log = crate::private::open_private(OpenOptions::new().create(true).read(true).append(true), &log_path).map_err(io(&log_path))?;
        let (seq, prev) = match last_line(&mut log, &log_path)? {
            None => {
                // a first entry pins the checkpoint key
                (1, GENESIS.to_string())
            }
            Some(line) => {
                let v: Value = serde_json::from_str(&line)
                    .map_err(|e| AuditError::Damaged { path: log_path.clone(), reason: format!("the last entry is not JSON ({e})") })?;
                let seq = v["seq"].as_u64().ok_or_else(|| AuditError::Damaged { path: log_path.clone(), reason: "the last entry has no seq".into() })?;
                let hash = v["hash"].as_str().ok_or_else(|| AuditError::Damaged { path: log_path.clone(), reason: "the last entry has no hash".into() })?;
                (seq + 1, hash.to_string())
            }
        };
        let mut data = stable_numbers(&ev.data);
        if seq == 1 {
            if let Value::Object(m) = &mut data {
                m.insert("checkpoint_key".into(), Value::String(b64().encode(sk.verifying_key().to_bytes())));
            }
        }
        let mut entry = Map::new();
        entry.insert("seq".into(), seq.into());
        entry.insert("time".into(), Value::String(now_rfc3339()));
        entry.insert("actor".into(), Value::String(ev.actor.clone()));
        entry.insert("workspace".into(), Value::String(ev.workspace.clone()));
        entry.insert("event".into(), Value::String(ev.event.clone()));
        entry.insert("data".into(), data);
        entry.insert("prev".into(), Value::String(prev));
        let hash = entry_hash(&Value::Object(entry.clone()));
        entry.insert("hash".into(), Value::String(hash.clone()));
        let mut line = canonical(&Value::Object(entry));
        line.push('\n');
        log.write_all(line.as_bytes()).and_then(|_| log.sync_data()).map_err(io(&log_path))?;

        let cp_path = self.checkpoints_path();
        let mut cp = crate::private::open_private(OpenOptions::new().create(true).append(true), &cp_path).map_err(io(&cp_path))?;
        let sig = sk.sign(checkpoint_message(seq, &hash).as_bytes());
        let mut c = Map::new();
        c.insert("seq".into(), seq.into());
        c.insert("hash".into(), Value::String(hash.clone()));
        c.insert("sig".into(), Value::String(b64().encode(sig.to_bytes())));
        let mut cl = canonical(&Value::Object(c));
        cl.push('\n');
        cp.write_all(cl.as_bytes()).and_then(|_| cp.sync_data()).map_err(io(&cp_path))?;
        Ok(Appended { seq, hash })
    }

    /// `tresor audit repair`: cuts a torn last line (a write cut off by a
    /// crash or a full disk) from the log and from the checkpoints, under the
    /// append lock. The cut bytes are kept in `audit/torn-<unix secs>-<file>`
    /// (mode 0600) as evidence; whole entries are never touched, so a log
    /// that was tampered with stays as it is and `verify` still names it.
    /// Returns what was cut (empty: nothing to repair).
    pub fn repair(&self) -> Result<Vec<Repaired>> {
        if !self.dir.is_dir() {
            return Ok(Vec::new());
        }
        let lock_path = self.dir.join(LOCK_FILE);
        let lock = crate::private::open_private(OpenOptions::new().create(true).truncate(false).write(true), &lock_path).map_err(io(&lock_path))?;
        lock.lock().map_err(io(&lock_path))?;
        let mut out = Vec::new();
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut r = Ok(());
        for (path, name) in [(self.log_path(), LOG_FILE), (self.checkpoints_path(), CHECKPOINTS_FILE)] {
            match self.cut_torn(&path, &self.dir.join(format!("torn-{stamp}-{name}"))) {
                Ok(Some(rep)) => out.push(rep),
                Ok(None) => {}
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        let _ = lock.unlock();
        r.map(|()| out)
    }

    fn cut_torn(&self, path: &Path, keep: &Path) -> Result<Option<Repaired>> {
        let Some(bytes) = read_opt(path)? else { return Ok(None) };
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(None);
        }
        let keep_from = bytes.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
        let torn = &bytes[keep_from..];
        let mut f = crate::private::open_private(OpenOptions::new().create_new(true).write(true), keep).map_err(io(keep))?;
        f.write_all(torn).and_then(|_| f.sync_all()).map_err(io(keep))?;
        let log = OpenOptions::new().write(true).open(path).map_err(io(path))?;
        log.set_len(keep_from as u64).and_then(|_| log.sync_all()).map_err(io(path))?;
        Ok(Some(Repaired { file: path.to_path_buf(), cut_bytes: torn.len() as u64, kept_in: keep.to_path_buf() }))
    }

    /// Every entry as parsed JSON (for export); `since`: RFC 3339 or YYYY-MM-DD.
    pub fn entries(&self, since: Option<&str>) -> Result<Vec<Value>> {
        let since = since.map(|s| parse_time(s).ok_or_else(|| AuditError::BadTime(s.to_string()))).transpose()?;
        let path = self.log_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(AuditError::Io { path, source }),
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let v: Value = serde_json::from_str(line).map_err(|e| AuditError::Damaged { path: path.clone(), reason: format!("line {} is not JSON ({e})", i + 1) })?;
            if let Some(s) = since {
                match v["time"].as_str().and_then(parse_time) {
                    Some(t) if t >= s => {}
                    _ => continue,
                }
            }
            out.push(v);
        }
        Ok(out)
    }

    /// Checks every byte of the audit storage. `pinned`: a public key kept
    /// outside the data dir (else the key pinned in entry 1 is used).
    pub fn verify(&self, pinned: Option<&VerifyingKey>) -> Result<VerifyReport> {
        let log_path = self.log_path();
        let cp_path = self.checkpoints_path();
        let log = read_opt(&log_path)?;
        let cps = read_opt(&cp_path)?;
        let mut rep = VerifyReport { ok: true, entries: 0, checkpoints: 0, head: None, first_bad: None, problem: None };
        let Some(log) = log else {
            if cps.as_ref().is_some_and(|c| !c.is_empty()) {
                return Ok(rep.fail(1, "the log file is missing but checkpoints exist (log deleted)"));
            }
            return Ok(rep);
        };

        let lines: Vec<&[u8]> = split_lines(&log);
        let torn = !log.is_empty() && !log.ends_with(b"\n");

        // 1. the checkpoint key: pinned outside, else the one entry 1 pinned
        let key = match pinned {
            Some(k) => Some(*k),
            None => match lines.first() {
                None => None,
                Some(first) => {
                    let k = serde_json::from_slice::<Value>(first).ok().and_then(|v| v["data"]["checkpoint_key"].as_str().map(str::to_string));
                    match k.and_then(|k| b64().decode(k).ok()).and_then(|b| <[u8; 32]>::try_from(b).ok()).and_then(|b| VerifyingKey::from_bytes(&b).ok()) {
                        Some(k) => Some(k),
                        None => return Ok(rep.fail(1, "it does not pin a valid checkpoint key (modified)")),
                    }
                }
            },
        };

        // 2. the checkpoints: canonical, signed by that key, in increasing order
        let cps = cps.unwrap_or_default();
        let cp_lines = split_lines(&cps);
        let mut signed: Vec<(u64, String)> = Vec::new();
        if !cps.is_empty() && !cps.ends_with(b"\n") {
            return Ok(rep.fail(cp_lines.len() as u64, "the checkpoint file's last line is incomplete (checkpoints truncated or modified)"));
        }
        if !cp_lines.is_empty() {
            let Some(key) = key else {
                return Ok(rep.fail(1, "the log is empty but checkpoints exist (entries deleted)"));
            };
            let mut covered = 0u64;
            for (i, raw) in cp_lines.iter().enumerate() {
                let n = i + 1;
                let v = serde_json::from_slice::<Value>(raw).ok().filter(|v| canonical(v).as_bytes() == *raw);
                let fields = v.as_ref().and_then(|v| Some((v["seq"].as_u64()?, v["hash"].as_str()?.to_string(), v["sig"].as_str()?.to_string())));
                let Some((seq, hash, sig)) = fields else {
                    return Ok(rep.fail(covered + 1, &format!("checkpoint line {n} was modified")));
                };
                let sig_ok = b64()
                    .decode(&sig)
                    .ok()
                    .and_then(|b| Signature::from_slice(&b).ok())
                    .is_some_and(|s| key.verify(checkpoint_message(seq, &hash).as_bytes(), &s).is_ok());
                if !sig_ok {
                    return Ok(rep.fail(
                        seq.max(1),
                        &format!("checkpoint line {n} (entry {seq}) has a bad signature (modified, or signed with a key other than the pinned one)"),
                    ));
                }
                if seq <= covered {
                    return Ok(rep.fail(seq, &format!("checkpoint line {n} repeats or reorders entry {seq}")));
                }
                covered = seq;
                signed.push((seq, hash));
            }
        }

        // 3. the chain, line by line, against the signed checkpoints
        let seqs: Vec<Option<u64>> = lines.iter().map(|l| serde_json::from_slice::<Value>(l).ok().and_then(|v| v["seq"].as_u64())).collect();
        let mut prev = GENESIS.to_string();
        let mut cp = signed.iter().peekable();
        let mut covered = 0u64;
        for (i, raw) in lines.iter().enumerate() {
            let expected = i as u64 + 1;
            if torn && i + 1 == lines.len() {
                return Ok(rep.fail(expected, "the last line is incomplete (the log was truncated or a write was cut off)"));
            }
            let Ok(v) = serde_json::from_slice::<Value>(raw) else {
                return Ok(rep.fail(expected, "not valid JSON (modified)"));
            };
            let seq = v["seq"].as_u64();
            if seq != Some(expected) {
                let why = match seq {
                    None => "has no sequence number (modified)".to_string(),
                    Some(s) if s > expected && !seqs[i + 1..].contains(&Some(expected)) => {
                        format!("entry {expected} is missing (deleted; entry {s} follows entry {})", expected - 1)
                    }
                    Some(s) if s < expected && seqs[..i].contains(&Some(s)) => format!("a second entry {s} was inserted after entry {}", expected - 1),
                    Some(s) => format!("entry {expected} is out of order (found entry {s} in its place: entries reordered)"),
                };
                return Ok(rep.fail(expected, &why));
            }
            if canonical(&v).as_bytes() != *raw {
                return Ok(rep.fail(expected, "its bytes are not the canonical form of its content (modified)"));
            }
            let Some(stored) = v["hash"].as_str() else {
                return Ok(rep.fail(expected, "has no hash (modified)"));
            };
            let mut body = v.clone();
            body.as_object_mut().map(|m| m.remove("hash"));
            if entry_hash(&body) != stored {
                return Ok(rep.fail(expected, "its content does not match its hash (modified)"));
            }
            if let Some((s, h)) = cp.peek() {
                if *s == expected {
                    if h != stored {
                        return Ok(rep.fail(expected, "it does not match its signed checkpoint (modified, replaced or inserted)"));
                    }
                    covered = expected;
                    cp.next();
                }
            }
            if v["prev"].as_str() != Some(prev.as_str()) {
                return Ok(rep.fail(expected, "its prev hash does not match the entry before it (an entry was inserted, deleted or replaced)"));
            }
            prev = stored.to_string();
            rep.entries = expected;
            rep.head = Some(Head { seq: expected, hash: prev.clone() });
        }
        rep.checkpoints = signed.len() as u64;
        if cp.next().is_some() {
            let s = signed.last().map(|(s, _)| *s).unwrap_or_default();
            let n = rep.entries;
            return Ok(rep.fail(n + 1, &format!("entries {}..{s} are missing: a signed checkpoint covers entry {s} but the log ends at entry {n} (truncated)", n + 1)));
        }
        if covered < rep.entries {
            return Ok(rep.fail(covered + 1, "no signed checkpoint covers this entry (appended without the checkpoint key)"));
        }
        Ok(rep)
    }
}

/// The outcome of [`AuditLog::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Entries that verified (before the first bad one).
    pub entries: u64,
    pub checkpoints: u64,
    /// The last good entry: note it down outside the machine to detect rollback.
    pub head: Option<Head>,
    /// The sequence number of the first bad entry.
    pub first_bad: Option<u64>,
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl VerifyReport {
    fn fail(mut self, seq: u64, why: &str) -> VerifyReport {
        self.ok = false;
        self.first_bad = Some(seq);
        self.problem = Some(format!("entry {seq}: {why}"));
        self
    }
}

fn checkpoint_message(seq: u64, hash: &str) -> String {
    format!("tresor-audit-checkpoint\n{seq}\n{hash}\n")
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io { path: path.to_path_buf(), source }),
    }
}

/// Lines without their '\n' (a final line without one is kept).
fn split_lines(b: &[u8]) -> Vec<&[u8]> {
    if b.is_empty() {
        return Vec::new();
    }
    let body = b.strip_suffix(b"\n").unwrap_or(b);
    body.split(|&c| c == b'\n').collect()
}

/// The last line of an open log (None when empty); a tail without its newline is damage.
fn last_line(f: &mut File, path: &Path) -> Result<Option<String>> {
    let len = f.seek(SeekFrom::End(0)).map_err(io(path))?;
    if len == 0 {
        return Ok(None);
    }
    let mut back = 4096u64.min(len);
    loop {
        f.seek(SeekFrom::Start(len - back)).map_err(io(path))?;
        let mut buf = vec![0u8; back as usize];
        f.read_exact(&mut buf).map_err(io(path))?;
        if buf.last() != Some(&b'\n') {
            return Err(AuditError::Damaged { path: path.to_path_buf(), reason: "the last entry is incomplete".into() });
        }
        let body = &buf[..buf.len() - 1];
        if let Some(i) = body.iter().rposition(|&c| c == b'\n') {
            return Ok(Some(String::from_utf8_lossy(&body[i + 1..]).into_owned()));
        }
        if back == len {
            return Ok(Some(String::from_utf8_lossy(body).into_owned()));
        }
        back = (back * 4).min(len);
    }
}

/// `v` with every fractional number rounded to 6 decimals (integers above 1e9 to whole numbers).
/// An entry's bytes must survive a parse and re-serialisation unchanged (that is how `verify` tells
/// a modified entry), and serde_json's default parser does not round every 17-digit float (an f32
/// widened to f64 prints that long) to the same f64; numbers with at most 15 significant digits it
/// parses exactly.
fn stable_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().expect("an f64 number");
            let r = if x.abs() >= 1e9 { x.round() } else { (x * 1e6).round() / 1e6 };
            serde_json::Number::from_f64(r).map(Value::Number).unwrap_or(Value::Null)
        }
        Value::Array(a) => Value::Array(a.iter().map(stable_numbers).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), stable_numbers(x))).collect()),
        other => other.clone(),
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).expect("a string serialises"));
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&serde_json::to_string(other).expect("a JSON value serialises")),
    }
}

/// SHA-256 (hex) of an entry's canonical JSON without its `hash` field.
pub fn entry_hash(body: &Value) -> String {
    hex::encode(Sha256::digest(canonical(body).as_bytes()))
}

/// Now, UTC, RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format_time(d.as_secs() as i64, d.subsec_millis())
}

fn format_time(secs: i64, millis: u32) -> String {
    match jiff::Timestamp::new(secs, millis.min(999) as i32 * 1_000_000) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // outside jiff's range (years -9999..=9999): never for a clock reading
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// RFC 3339 (`2026-11-25T10:00:00Z`, fractions and `±HH:MM` offsets) or
/// `YYYY-MM-DD` (midnight UTC) → milliseconds since the epoch (jiff parses;
/// no calendar arithmetic of our own).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    if s.len() == 10 {
        let d: jiff::civil::Date = s.parse().ok()?;
        return d.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp().as_millisecond());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log_with(n: usize) -> (tempfile::TempDir, AuditLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::for_data_dir(dir.path());
        for i in 0..n {
            log.append(&Event {
                event: "answer".into(),
                actor: "user:test".into(),
                workspace: "default".into(),
                data: json!({"question_id": format!("q{i}"), "sources": ["a.md"], "model": "m", "cache_hit": false}),
            })
            .unwrap();
        }
        (dir, log)
    }

    fn lines(log: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(log.log_path()).unwrap().lines().map(str::to_string).collect()
    }

    fn write_lines(log: &AuditLog, l: &[String]) {
        std::fs::write(log.log_path(), l.iter().map(|s| format!("{s}\n")).collect::<String>()).unwrap();
    }

    fn bad(log: &AuditLog) -> (u64, String) {
        let r = log.verify(None).unwrap();
        assert!(!r.ok, "verify passed: {r:?}");
        (r.first_bad.unwrap(), r.problem.unwrap())
    }

    #[test]
    fn a_torn_last_line_is_refused_then_cut_by_repair_never_concatenated() {
        let (_d, log) = log_with(3);
        let good = std::fs::read(log.log_path()).unwrap();
        // a crash mid-write: half of a fourth entry, no newline
        let mut torn = good.clone();
        torn.extend_from_slice(b"{\"actor\":\"user:test\",\"data\":{\"qu");
        std::fs::write(log.log_path(), &torn).unwrap();
        let (seq, problem) = bad(&log);
        assert_eq!(seq, 4);
        assert!(problem.contains("incomplete"), "{problem}");
        let ev = Event { event: "answer".into(), actor: "user:test".into(), workspace: "default".into(), data: json!({}) };
        assert!(matches!(log.append(&ev), Err(AuditError::Damaged { .. })), "nothing is chained onto a torn line");
        assert_eq!(std::fs::read(log.log_path()).unwrap(), torn, "the refused append wrote nothing");
        // the explicit repair cuts the tail, keeps it as evidence, and the log verifies again
        let cut = log.repair().unwrap();
        assert_eq!(cut.len(), 1);
        assert_eq!(std::fs::read(log.log_path()).unwrap(), good);
        assert_eq!(std::fs::read(&cut[0].kept_in).unwrap(), &torn[good.len()..]);
        assert!(log.verify(None).unwrap().ok);
        log.append(&ev).unwrap();
        assert_eq!(log.verify(None).unwrap().entries, 4);
        // a second repair finds nothing; a tampered (not torn) log is left as it is
        assert!(log.repair().unwrap().is_empty());
        let mut l = lines(&log);
        l[1] = l[1].replace("user:test", "user:evil");
        write_lines(&log, &l);
        assert!(log.repair().unwrap().is_empty());
        assert_eq!(bad(&log).0, 2);
    }

    #[test]
    fn entries_with_float_scores_verify() {
        // f32 scores widened to f64 print with up to 17 digits; the log must still read back byte-exact
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::for_data_dir(dir.path());
        let mut x: u32 = 12345;
        let scores: Vec<f32> = (0..2000)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 8) as f32 / (1u32 << 24) as f32
            })
            .collect();
        log.append(&Event {
            event: "answer".into(),
            actor: "user:test".into(),
            workspace: "default".into(),
            data: json!({"scores": scores, "ms": 12.345678901234_f64, "big": 12345678901.5_f64}),
        })
        .unwrap();
        let r = log.verify(None).unwrap();
        assert!(r.ok, "{r:?}");
        let line = &lines(&log)[0];
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(&canonical(&v), line);
        assert_eq!(v["data"]["ms"], json!(12.345679));
    }

    #[test]
    fn a_fresh_chain_verifies_and_entries_are_canonical_and_linked() {
        let (_d, log) = log_with(5);
        let r = log.verify(None).unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!((r.entries, r.checkpoints), (5, 5));
        let l = lines(&log);
        let e1: Value = serde_json::from_str(&l[0]).unwrap();
        let e2: Value = serde_json::from_str(&l[1]).unwrap();
        assert_eq!(e1["prev"], GENESIS);
        assert_eq!(e2["prev"], e1["hash"]);
        assert_eq!(canonical(&e2), l[1]);
        assert!(e1["data"]["checkpoint_key"].is_string());
        for k in ["seq", "time", "actor", "workspace", "event", "data", "prev", "hash"] {
            assert!(e2.get(k).is_some(), "{k}");
        }
        assert_eq!(r.head.unwrap(), Head { seq: 5, hash: e2_hash(&l[4]) });
        // an empty or missing log verifies
        let empty = tempfile::tempdir().unwrap();
        assert!(AuditLog::for_data_dir(empty.path()).verify(None).unwrap().ok);
    }

    fn e2_hash(line: &str) -> String {
        serde_json::from_str::<Value>(line).unwrap()["hash"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_modified_entry_is_named_even_when_its_hash_is_recomputed() {
        let (_d, log) = log_with(5);
        let mut l = lines(&log);
        l[2] = l[2].replace("\"model\":\"m\"", "\"model\":\"x\"");
        write_lines(&log, &l);
        assert_eq!(bad(&log).0, 3);
        // the attacker fixes the hash of entry 3 and the prev of entry 4.. : the signed checkpoint catches it
        let mut v: Value = serde_json::from_str(&l[2]).unwrap();
        v.as_object_mut().unwrap().remove("hash");
        let h = entry_hash(&v);
        v["hash"] = Value::String(h.clone());
        l[2] = canonical(&v);
        let mut prev = h;
        for line in l.iter_mut().skip(3) {
            let mut v: Value = serde_json::from_str(line).unwrap();
            v["prev"] = Value::String(prev.clone());
            v.as_object_mut().unwrap().remove("hash");
            prev = entry_hash(&v);
            v["hash"] = Value::String(prev.clone());
            *line = canonical(&v);
        }
        write_lines(&log, &l);
        let (n, why) = bad(&log);
        assert_eq!(n, 3, "{why}");
        assert!(why.contains("checkpoint"), "{why}");
    }

    #[test]
    fn deleted_reordered_and_inserted_entries_are_named() {
        let (_d, log) = log_with(5);
        let orig = lines(&log);
        // delete entry 2
        let mut l = orig.clone();
        l.remove(1);
        write_lines(&log, &l);
        let (n, why) = bad(&log);
        assert_eq!(n, 2);
        assert!(why.contains("missing"), "{why}");
        // swap entries 3 and 4
        let mut l = orig.clone();
        l.swap(2, 3);
        write_lines(&log, &l);
        let (n, why) = bad(&log);
        assert_eq!(n, 3);
        assert!(why.contains("reordered"), "{why}");
        // insert a copy of entry 2 after it
        let mut l = orig.clone();
        l.insert(2, orig[1].clone());
        write_lines(&log, &l);
        let (n, why) = bad(&log);
        assert_eq!(n, 3);
        assert!(why.contains("inserted"), "{why}");
        // insert a well-formed forged entry 3 (right seq, prev and hash; later entries renumbered)
        let mut forged: Value = serde_json::from_str(&orig[2]).unwrap();
        forged["data"] = json!({"question_id": "forged"});
        forged.as_object_mut().unwrap().remove("hash");
        let h = entry_hash(&forged);
        forged["hash"] = Value::String(h);
        let mut l = orig.clone();
        l[2] = canonical(&forged);
        write_lines(&log, &l);
        assert_eq!(bad(&log).0, 3);
        // back to the original: fine again
        write_lines(&log, &orig);
        assert!(log.verify(None).unwrap().ok);
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let (_d, log) = log_with(3);
        for path in [log.log_path(), log.checkpoints_path()] {
            let orig = std::fs::read(&path).unwrap();
            for i in 0..orig.len() {
                let mut b = orig.clone();
                b[i] ^= 0x01;
                std::fs::write(&path, &b).unwrap();
                let r = log.verify(None).unwrap();
                assert!(!r.ok, "flip at byte {i} of {} undetected", path.display());
            }
            std::fs::write(&path, &orig).unwrap();
        }
        // the entry named is the one holding the byte
        let orig = std::fs::read(log.log_path()).unwrap();
        let second_line_start = orig.iter().position(|&c| c == b'\n').unwrap() + 1;
        let mut b = orig.clone();
        b[second_line_start + 20] ^= 0x01;
        std::fs::write(log.log_path(), &b).unwrap();
        assert_eq!(bad(&log).0, 2);
    }

    #[test]
    fn truncation_is_detected_up_to_the_last_checkpoint() {
        let (_d, log) = log_with(4);
        let orig = std::fs::read(log.log_path()).unwrap();
        // cut mid-entry
        std::fs::write(log.log_path(), &orig[..orig.len() - 10]).unwrap();
        assert_eq!(bad(&log).0, 4);
        // cut whole entries: the checkpoints still cover them
        let l = lines_of(&orig);
        std::fs::write(log.log_path(), format!("{}\n{}\n", l[0], l[1])).unwrap();
        let (n, why) = bad(&log);
        assert_eq!(n, 3);
        assert!(why.contains("truncated"), "{why}");
        // the whole log deleted
        std::fs::remove_file(log.log_path()).unwrap();
        assert!(!log.verify(None).unwrap().ok);
        // an appended entry without a checkpoint
        std::fs::write(log.log_path(), &orig).unwrap();
        let cps = std::fs::read_to_string(log.checkpoints_path()).unwrap();
        let kept: String = cps.lines().take(3).map(|s| format!("{s}\n")).collect();
        std::fs::write(log.checkpoints_path(), kept).unwrap();
        let (n, why) = bad(&log);
        assert_eq!(n, 4, "{why}");
        // appending to a log whose tail was cut off is refused, not papered over
        std::fs::write(log.log_path(), &orig[..orig.len() - 10]).unwrap();
        let e = log.append(&Event { event: "x".into(), actor: "a".into(), workspace: "w".into(), data: json!({}) }).unwrap_err();
        assert!(matches!(e, AuditError::Damaged { .. }), "{e}");
    }

    fn lines_of(b: &[u8]) -> Vec<String> {
        String::from_utf8(b.to_vec()).unwrap().lines().map(str::to_string).collect()
    }

    #[test]
    fn a_pinned_key_outside_the_data_dir_catches_a_re_signed_log() {
        let (d, log) = log_with(2);
        let pinned = {
            let t = std::fs::read_to_string(d.path().join("audit").join(PUB_FILE)).unwrap();
            VerifyingKey::from_bytes(&b64().decode(t.trim()).unwrap().try_into().unwrap()).unwrap()
        };
        assert!(log.verify(Some(&pinned)).unwrap().ok);
        // an attacker replaces key, log and checkpoints with a fresh chain of their own
        std::fs::remove_dir_all(log.dir()).unwrap();
        log.append(&Event { event: "answer".into(), actor: "user:mallory".into(), workspace: "default".into(), data: json!({}) }).unwrap();
        assert!(log.verify(None).unwrap().ok, "self-consistent without an external pin");
        let r = log.verify(Some(&pinned)).unwrap();
        assert!(!r.ok);
        assert_eq!(r.first_bad, Some(1));
    }

    #[test]
    fn concurrent_writers_keep_one_chain() {
        let (_d, log) = log_with(0);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..15 {
                        log.append(&Event { event: "answer".into(), actor: format!("user:{t}"), workspace: "w".into(), data: json!({"i": i}) }).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let r = log.verify(None).unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.entries, 60);
    }

    #[test]
    fn question_ids_are_keyed_hashes_and_export_filters_by_time() {
        let (_d, log) = log_with(2);
        let a = log.question_id("How many vacation days?").unwrap();
        assert_eq!(a, log.question_id("how many vacation days?  ").unwrap());
        assert_ne!(a, hex::encode(&Sha256::digest(b"how many vacation days?")[..16]));
        assert!(!a.contains("vacation"));
        assert_eq!(log.entries(None).unwrap().len(), 2);
        assert_eq!(log.entries(Some("2000-01-01")).unwrap().len(), 2);
        assert_eq!(log.entries(Some("2999-01-01T00:00:00Z")).unwrap().len(), 0);
        assert!(matches!(log.entries(Some("yesterday")), Err(AuditError::BadTime(_))));
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(format_time(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_795_606_245, 7), "2026-11-25T11:30:45.007Z");
        assert_eq!(parse_time("2026-11-25T11:30:45.007Z"), Some(1_795_606_245_007));
        assert_eq!(parse_time("2026-11-25T12:30:45+01:00"), Some(1_795_606_245_000));
        assert_eq!(parse_time("2026-11-24"), Some(1_795_478_400_000));
        assert_eq!(parse_time("2026-13-01"), None);
        assert_eq!(parse_time("2026-11-25T11:30:45"), None, "a time without an offset is ambiguous");
        assert_eq!(parse_time("2026-02-30"), None);
        assert_eq!(parse_time("soon"), None);
    }
}
