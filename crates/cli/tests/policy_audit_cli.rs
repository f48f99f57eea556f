//! End-to-end: the real `tresor` binary with an admin policy (check, show,
//! locks, signatures, a refused topic) and the audit log (verify, export,
//! tampering), on real files in a temporary data dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::have_models;

/// `tresor` with its data in `home`, no system policy or admin keys unless the test sets them.
fn cmd(home: &Path) -> Command {
    let admin = home.join("admin-policy.toml");
    if !admin.exists() {
        std::fs::write(&admin, "").unwrap();
    }
    let mut c = common::tresor_with(home, Some("policy-test-passphrase"));
    c.env("TRESOR_POLICY", admin).env("TRESOR_ADMIN_KEYS", home.join("admin-keys"));
    c
}

fn run(home: &Path, args: &[&str]) -> Output {
    cmd(home).args(args).output().unwrap()
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn ok(o: &Output) -> String {
    common::ok_output(o, "tresor")
}

#[test]
fn policy_check_names_the_line_and_key_of_a_malformed_file() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let f = home.join("bad.toml");
    std::fs::write(&f, "# my policy\n[answer]\nmax_chars = 400\nmax_char = 5\n").unwrap();
    let o = run(home, &["policy", "check", f.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{}:4: key `answer.max_char`", f.display())), "{err}");
    assert!(err.contains("unknown field"), "{err}");
    // a wrong value type
    std::fs::write(&f, "[topics.medical_diagnosis]\nenabled = \"no\"\n").unwrap();
    let err = text(&run(home, &["policy", "check", f.to_str().unwrap()]).stderr);
    assert!(err.contains(&format!("{}:2: key `topics.medical_diagnosis.enabled`", f.display())), "{err}");
    // broken syntax
    std::fs::write(&f, "[tools]\nallowed = [\"prices\"\n").unwrap();
    let o = run(home, &["policy", "check", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains(&format!("{}:", f.display())), "{}", text(&o.stderr));
    // the shipped example is valid
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/policy.example.toml");
    let out = ok(&run(home, &["policy", "check", example.to_str().unwrap()]));
    assert!(out.contains("OK (3 topics"), "{out}");
}

#[test]
fn admin_locks_and_signatures_are_enforced_and_shown() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let admin = home.join("admin-policy.toml");
    let keys = home.join("admin-keys");
    std::fs::write(&admin, "locked = [\"topics.medical_diagnosis\"]\n\n[answer]\nmax_chars = 600\nlocked = true\n").unwrap();
    // show marks the locked items and where they come from
    let out = ok(&run(home, &["policy", "show"]));
    assert!(out.contains("medical_diagnosis — refuse [locked]"), "{out}");
    assert!(out.contains("max answer length: 600 characters [locked]"), "{out}");
    assert!(out.contains("legal_advice — refuse (from built-in)"), "{out}");
    let js: serde_json::Value = serde_json::from_str(&ok(&run(home, &["policy", "show", "--json"]))).unwrap();
    assert_eq!(js["max_answer_chars"], 600);
    assert!(js["locked"].as_array().unwrap().iter().any(|v| v == "answer"));
    // the user may change unlocked items, not locked ones
    std::fs::write(home.join("policy.toml"), "[topics.legal_advice]\nenabled = false\n").unwrap();
    let out = ok(&run(home, &["policy", "show"]));
    assert!(out.contains(&format!("legal_advice — disabled (from {})", home.join("policy.toml").display())), "{out}");
    std::fs::write(home.join("policy.toml"), "[disclaimer]\nen = \"x\"\n\n[answer]\nmax_chars = 5000\n").unwrap();
    let o = run(home, &["policy", "show"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{}:4: key `answer`: this item is locked", home.join("policy.toml").display())), "{err}");
    std::fs::remove_file(home.join("policy.toml")).unwrap();

    // signatures: keygen, sign, trust the key
    let prefix = home.join("admin1");
    ok(&run(home, &["policy", "keygen", prefix.to_str().unwrap()]));
    ok(&run(home, &["policy", "sign", "--key", home.join("admin1.key").to_str().unwrap(), admin.to_str().unwrap()]));
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::copy(home.join("admin1.pub"), keys.join("admin1.pub")).unwrap();
    assert!(ok(&run(home, &["policy", "show"])).contains("(admin, signed by admin1.pub)"));
    assert!(ok(&run(home, &["policy", "check", admin.to_str().unwrap()])).contains("signature verified with admin1.pub"));
    // one changed byte in the signed policy: an error, never silently ignored
    let body = std::fs::read_to_string(&admin).unwrap().replace("600", "900");
    std::fs::write(&admin, body).unwrap();
    let o = run(home, &["policy", "show"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("signature does not verify"), "{}", text(&o.stderr));
    // asking fails too rather than running without the admin's policy
    if have_models() {
        let o = run(home, &["ask", "How many vacation days do I get?"]);
        assert!(!o.status.success());
        assert!(text(&o.stderr).contains("signature does not verify"), "{}", text(&o.stderr));
    }
}

#[test]
fn german_medical_question_is_refused_in_german_and_the_audit_log_detects_a_changed_byte() {
    if !have_models() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let home = t.path();
    let docs = home.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("urlaub.md"),
        "# Urlaub\n\n## Urlaubsanspruch\n\nVollzeitbeschäftigte haben Anspruch auf 30 Arbeitstage bezahlten Urlaub pro Kalenderjahr. \
         Der Urlaub wird im Personalportal beantragt.\n",
    )
    .unwrap();
    ok(&run(home, &["ingest", docs.to_str().unwrap()]));

    // a diagnosis question in German (caught by the topic's German keywords; MiniLM similarity is weak for German)
    let q = "Ich habe seit drei Tagen Fieber und Halsschmerzen, was fehlt mir?";
    let a: serde_json::Value = serde_json::from_str(&ok(&run(home, &["ask", "--json", q]))).unwrap();
    assert_eq!(a["refused"], true, "{a}");
    assert_eq!(a["grounded"], false);
    assert_eq!(a["lang"], "de");
    assert_eq!(a["route"], "policy");
    let answer = a["answer"].as_str().unwrap();
    assert!(answer.contains("medizinische Diagnose") && answer.contains("Ärztin"), "{answer}");
    assert_eq!(a["trace"]["policy"]["topic"], "medical_diagnosis", "{}", a["trace"]["policy"]);
    assert_eq!(a["trace"]["policy"]["action"], "refuse");
    for k in ["answer", "sources", "grounded", "refused", "model", "cache_hit", "route", "timings", "tokens"] {
        assert!(a.get(k).is_some(), "missing `{k}`");
    }
    // an English one without keywords: caught by embedding similarity to the example prompts
    let e: serde_json::Value =
        serde_json::from_str(&ok(&run(home, &["ask", "--json", "I have had a cough and fever for a week, what could it be?"]))).unwrap();
    assert_eq!(e["refused"], true, "{e}");
    assert_eq!(e["trace"]["policy"]["via"], "similarity", "{}", e["trace"]["policy"]);
    assert!(e["answer"].as_str().unwrap().contains("\"medical diagnosis\""), "{}", e["answer"]);
    // an ordinary question is not refused by the default policy
    let b: serde_json::Value = serde_json::from_str(&ok(&run(home, &["ask", "--json", "Wie viele Urlaubstage haben Vollzeitbeschäftigte?"]))).unwrap();
    assert_eq!(b["refused"], false, "{b}");
    assert_eq!(b["trace"]["policy"]["action"], "allow", "{}", b["trace"]["policy"]);

    // ingest + three answers: four entries, all verified
    let out = ok(&run(home, &["audit", "verify"]));
    assert!(out.contains("audit log OK: 4 entries, 4 signed checkpoints"), "{out}");
    let export = ok(&run(home, &["audit", "export"]));
    let lines: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["event"], "kb.ingest");
    assert_eq!(lines[1]["event"], "answer");
    assert_eq!(lines[1]["data"]["policy"]["topic"], "medical_diagnosis");
    assert_eq!(lines[3]["data"]["sources"][0]["source"].as_str().map(|s| s.ends_with("urlaub.md")), Some(true), "{}", lines[3]);
    assert_eq!(lines[3]["prev"], lines[2]["hash"]);
    // never the question text
    assert!(!export.contains("Fieber") && !export.contains("Urlaubstage"), "{export}");
    assert_eq!(ok(&run(home, &["audit", "export", "--since", "2999-01-01"])).lines().count(), 0);
    assert!(!run(home, &["audit", "export", "--since", "last tuesday"]).status.success());

    // change one byte of entry 2: verify fails and names it
    let log = home.join("audit").join("log.jsonl");
    let orig = std::fs::read(&log).unwrap();
    let mut bytes = orig.clone();
    let start2 = bytes.iter().position(|&c| c == b'\n').unwrap() + 1;
    let at = start2 + text(&bytes[start2..]).find("\"refused\":true").unwrap() + "\"refused\":".len();
    bytes[at..at + 4].copy_from_slice(b"fals");
    bytes.insert(at + 4, b'e');
    std::fs::write(&log, &bytes).unwrap();
    let o = run(home, &["audit", "verify"]);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("entry 2:"), "{err}");
    let js: serde_json::Value = serde_json::from_slice(&run(home, &["audit", "verify", "--json"]).stdout).unwrap();
    assert_eq!(js["ok"], false);
    assert_eq!(js["first_bad"], 2);
    // a single flipped bit in entry 3
    let mut bytes = orig.clone();
    let start3 = start2 + orig[start2..].iter().position(|&c| c == b'\n').unwrap() + 1;
    bytes[start3 + 30] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let err = text(&run(home, &["audit", "verify"]).stderr);
    assert!(err.contains("entry 3:"), "{err}");
    // restored: fine again
    std::fs::write(&log, &orig).unwrap();
    ok(&run(home, &["audit", "verify"]));
}
