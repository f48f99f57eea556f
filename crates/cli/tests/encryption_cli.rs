//! End to end, encryption at rest (issue 7 §5): the real `tresor` binary,
//! the shipped models, real files. Documents with unique marker strings
//! are ingested and asked about; afterwards no file under the data dir
//! (databases, WAL/SHM, vector files, audit log, everything) holds a
//! marker in plaintext, in any case or in UTF-16. A wrong passphrase is a
//! clear error that changes no byte; `tresor key rotate` leaves the old
//! passphrase and the old key useless while search still works.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

const PASS: &str = "correct horse battery staple";

/// Unique words that appear only in the test documents (and one question).
const MARKERS: &[&str] = &["Vexillumqortz", "ZEBRAFALKNER", "quokkabrisant", "Jubelkrötenwald"];

mod common;

fn run(home: &Path, pass: Option<&str>, args: &[&str]) -> Output {
    common::tresor_with(home, pass).stdin(Stdio::null()).args(args).output().expect("run tresor")
}

fn ok(out: &Output, what: &str) -> String {
    common::ok_output(out, what)
}

fn write_docs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("travel.md"),
        "# Travel policy\n\n## Booking\n\nBusiness trips are booked through the Vexillumqortz portal at least two weeks ahead. \
         The ZEBRAFALKNER rate applies to train tickets in first class.\n\n## Expenses\n\nReceipts are uploaded within 30 days; \
         the quokkabrisant form covers meals abroad.\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("reise.md"),
        "# Reiserichtlinie\n\n## Hotels\n\nHotels bis 120 Euro pro Nacht sind ohne Freigabe erlaubt. Das Jubelkrötenwald-Verfahren \
         gilt für Messen und Konferenzen.\n",
    )
    .unwrap();
}

/// Every file under `dir` (recursively) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn utf16(s: &str, le: bool) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| if le { u.to_le_bytes() } else { u.to_be_bytes() }).collect()
}

/// The byte strings no file may contain: each marker as written, lower and
/// upper case (FTS terms are lower case), a 9-character lower-case prefix
/// (stems and compound parts), and UTF-16 LE/BE of each.
fn needles() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for m in MARKERS {
        let lower = m.to_lowercase();
        let prefix: String = lower.chars().take(9).collect();
        for form in [m.to_string(), lower.clone(), m.to_uppercase(), prefix] {
            v.push((form.clone(), form.as_bytes().to_vec()));
            v.push((format!("{form} (UTF-16LE)"), utf16(&form, true)));
            v.push((format!("{form} (UTF-16BE)"), utf16(&form, false)));
        }
    }
    v
}

fn assert_no_plaintext(home: &Path) {
    let files = snapshot(home);
    assert!(files.keys().any(|p| p.ends_with("kb/default/kb.sqlite")), "no knowledge base in {files:?}", files = files.keys());
    assert!(files.keys().any(|p| p.extension().is_some_and(|x| x == "usearch")), "no vector file");
    assert!(files.keys().any(|p| p.ends_with("assistant.sqlite")), "no assistant database");
    for (path, bytes) in &files {
        for (name, n) in needles() {
            assert!(!bytes.windows(n.len()).any(|w| w == n.as_slice()), "{} contains the marker `{name}` in plaintext", path.display());
        }
    }
}

fn search_hits(home: &Path, pass: &str, query: &str) -> usize {
    let out = run(home, Some(pass), &["search", query, "--mode", "bm25", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&out, "search")).unwrap();
    let hits = v.get("hits").and_then(|h| h.as_array()).or_else(|| v.as_array()).cloned().unwrap_or_default();
    hits.len()
}

/// Nothing under the data dir is readable by other local users: files 0600 (no group or other
/// bits) and folders 0700, whatever the umask the tests run under.
fn assert_owner_only(home: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fn walk(p: &Path) {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
            if p.is_dir() {
                for e in std::fs::read_dir(p).unwrap() {
                    walk(&e.unwrap().path());
                }
            }
        }
        walk(home);
    }
}

fn ingested_home() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("data");
    let docs = t.path().join("docs");
    write_docs(&docs);
    ok(&run(&home, Some(PASS), &["ingest", docs.to_str().unwrap()]), "ingest");
    (t, home)
}

#[test]
fn no_file_under_the_data_dir_holds_a_marker_in_plaintext() {
    let (t, home) = ingested_home();
    // the markers are there (search finds them) ...
    assert!(search_hits(&home, PASS, "Vexillumqortz") >= 1);
    assert!(search_hits(&home, PASS, "jubelkrötenwald") >= 1);
    // ... and a question with a marker lands in the thread store and the cache
    let q = "Which portal is Vexillumqortz, and what does the quokkabrisant form cover?";
    let out = run(&home, Some(PASS), &["ask", q, "--json"]);
    let ans: serde_json::Value = serde_json::from_str(&ok(&out, "ask")).unwrap();
    assert!(!ans["answer"].as_str().unwrap_or("").is_empty(), "{ans}");
    let again: serde_json::Value = serde_json::from_str(&ok(&run(&home, Some(PASS), &["ask", q, "--json"]), "ask again")).unwrap();
    assert_eq!(again["cache_hit"], serde_json::Value::Bool(true), "the second ask should come from the (encrypted) cache: {again}");
    // and the vector index is saved (sealed) by a check + rebuild
    ok(&run(&home, Some(PASS), &["kb", "check"]), "kb check");
    ok(&run(&home, Some(PASS), &["kb", "rebuild-index"]), "kb rebuild-index");
    assert_no_plaintext(&home);
    assert_owner_only(&home);
    // a torn last audit line (a crash mid-append): verify names it, the explicit repair cuts it
    let log = home.join("audit").join("log.jsonl");
    let before = std::fs::read(&log).unwrap();
    std::fs::OpenOptions::new().append(true).open(&log).and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"actor\":\"user:x\",\"da")).unwrap();
    assert!(!run(&home, Some(PASS), &["audit", "verify"]).status.success());
    let out = ok(&run(&home, Some(PASS), &["audit", "repair"]), "audit repair");
    assert!(out.contains("cut 21 torn bytes") && out.contains("audit log OK"), "{out}");
    assert_eq!(std::fs::read(&log).unwrap(), before);
    // the documents themselves (outside the data dir) do hold the markers: the check can fail
    let docs = snapshot(&t.path().join("docs"));
    assert!(docs.values().any(|b| b.windows(13).any(|w| w == b"Vexillumqortz")));
}

#[test]
fn wrong_or_missing_passphrase_is_a_clear_error_and_changes_nothing() {
    let (t, home) = ingested_home();
    let before = snapshot(&home);
    let docs = t.path().join("docs");
    for args in [
        vec!["kb", "list"],
        vec!["search", "Vexillumqortz"],
        vec!["ingest", docs.to_str().unwrap()],
        vec!["ask", "Which portal is Vexillumqortz?"],
        vec!["key", "rotate"],
    ] {
        let out = run(&home, Some("not the passphrase"), &args);
        assert!(!out.status.success(), "{args:?} succeeded with a wrong passphrase");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("wrong passphrase"), "{args:?}: {err}");
        assert_eq!(snapshot(&home), before, "{args:?} with a wrong passphrase changed files");
    }
    let out = run(&home, None, &["kb", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TRESOR_PASSPHRASE") && err.contains("--passphrase-file"), "{err}");
    assert_eq!(snapshot(&home), before);
    // --passphrase-file works like the variable
    let pf = t.path().join("pass.txt");
    std::fs::write(&pf, format!("{PASS}\n")).unwrap();
    ok(&run(&home, None, &["--passphrase-file", pf.to_str().unwrap(), "kb", "list"]), "kb list with --passphrase-file");
    // a fresh data dir without any passphrase: error, and no key file is created
    let fresh = t.path().join("fresh");
    let out = run(&fresh, None, &["ingest", docs.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!fresh.join("tresor-key.json").exists());
}

#[test]
fn key_rotate_makes_the_old_passphrase_and_key_useless_and_keeps_the_data() {
    let (t, home) = ingested_home();
    ok(&run(&home, Some(PASS), &["ask", "What does the quokkabrisant form cover?", "--json"]), "ask");
    let status_before: serde_json::Value =
        serde_json::from_str(&ok(&run(&home, None, &["key", "status", "--json"]), "key status")).unwrap();
    let old_key_file = std::fs::read(home.join("tresor-key.json")).unwrap();
    let before = snapshot(&home);
    let new_pass = t.path().join("new-pass.txt");
    std::fs::write(&new_pass, "a brand new passphrase\n").unwrap();
    let out = run(&home, Some(PASS), &["key", "rotate", "--new-passphrase-file", new_pass.to_str().unwrap(), "--json"]);
    let rep: serde_json::Value = serde_json::from_str(&ok(&out, "key rotate")).unwrap();
    assert!(rep["databases"].as_u64().unwrap() >= 2, "{rep}"); // kb.sqlite + assistant.sqlite
    assert!(rep["files"].as_u64().unwrap() >= 1, "{rep}"); // the vector file
    assert_ne!(rep["new_key_id"], status_before["key_id"]);
    // every database, vector and BM25 index file was rewritten
    let after = snapshot(&home);
    for (p, b) in &before {
        let name = p.file_name().unwrap().to_string_lossy();
        if name.ends_with(".sqlite") || name.ends_with(".usearch") || name.ends_with(".idx") {
            assert_ne!(after.get(p), Some(b), "{} was not re-encrypted", p.display());
        }
    }
    // the old passphrase no longer opens the workspace
    let out = run(&home, Some(PASS), &["kb", "list"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    // the new one does, and search and the vector index still work
    let np = "a brand new passphrase";
    assert!(search_hits(&home, np, "Vexillumqortz") >= 1);
    let out = run(&home, Some(np), &["search", "booking business trips train tickets", "--mode", "vector", "--json"]);
    ok(&out, "vector search after rotation");
    ok(&run(&home, Some(np), &["kb", "check"]), "kb check after rotation");
    let threads = run(&home, Some(np), &["ask", "What does the quokkabrisant form cover?", "--json"]);
    ok(&threads, "ask after rotation");
    assert_no_plaintext(&home);
    // the old key (old key file + old passphrase) unlocks the old data key, which opens nothing any more
    let copy = t.path().join("copy");
    for (p, b) in snapshot(&home) {
        let to = copy.join(p.strip_prefix(&home).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, b).unwrap();
    }
    std::fs::write(copy.join("tresor-key.json"), &old_key_file).unwrap();
    let out = run(&copy, Some(PASS), &["kb", "list"]);
    assert!(!out.status.success(), "the old key still opens the knowledge base");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be opened with this workspace's key"), "{err}");
}

/// Whether some process holds `lock` (shared or exclusive); takes and drops it otherwise.
fn held(lock: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new().write(true).open(lock) else { return false };
    matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Issue 19 §4: `tresor key rotate` refused only while `serve` or the app ran;
/// a plain `tresor ingest` (or `kb remove`, `ask` ...) took no lock, so a
/// rotation could re-encrypt the stores under its feet. The ingest is
/// stopped (SIGSTOP) while it holds the workspace, so the check is no race.
#[test]
fn key_rotate_refuses_while_a_plain_ingest_runs() {
    let (t, home) = ingested_home();
    let more = t.path().join("more");
    write_docs(&more);
    let mut ingest = common::tresor_with(&home, Some(PASS))
        .args(["ingest", more.to_str().unwrap(), "--kb", "second"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = home.join("in-use.lock");
    let t0 = std::time::Instant::now();
    while !held(&lock) {
        assert!(ingest.try_wait().unwrap().is_none(), "the ingest ended before it was seen holding the workspace");
        assert!(t0.elapsed() < std::time::Duration::from_secs(60));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let pid = ingest.id().to_string();
    let signal = |sig: &str| assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    signal("-STOP");
    let out = run(&home, Some(PASS), &["key", "rotate"]);
    signal("-CONT");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && err.contains("is in use"), "key rotate during an ingest: {err}");
    let done = ingest.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    // the ingest finished unharmed, and with nothing running the rotation goes ahead
    assert!(!held(&lock));
    ok(&run(&home, Some(PASS), &["key", "rotate"]), "key rotate after the ingest");
    ok(&run(&home, Some(PASS), &["kb", "check", "--kb", "second"]), "kb check");
}
