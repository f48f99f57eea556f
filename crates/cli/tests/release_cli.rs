//! End-to-end: the real `tresor` binary — releases (create with validated
//! files, list, diff, promote, canary, rollback with the reason shown), the
//! variant every `ask --json` reports and the events carry (`kpi --by
//! variant`), `release compare` and `canary-step`; and the red team's smoke
//! suite on the shipped models (`redteam --json` contract). `bench ab` is
//! tested next to its code (tresor-bench's `ab`), not here twice.

use std::collections::HashSet;

mod common;

use common::{repo, Cli};

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn releases_canary_rollback_and_the_variant_of_each_answer() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::with_models(&dir.path().join("home"), Some("release-test-passphrase"), &common::models_dir_with_embedder());
    cli.ok(&["ingest", repo().join("assets/sample-kb").to_str().unwrap()]);
    let prompt = write(dir.path(), "prompt.toml", "en = \"Answer only from the sources, in one short sentence.\"\n");
    let config = write(dir.path(), "assistant.toml", "max_passages = 2\n");
    let policy = write(dir.path(), "policy.toml", "[blocked_terms]\nterms = [\"zebra\"]\n");
    let gate = write(dir.path(), "gate.json", r#"{"passed": true, "regressions": []}"#);
    let bad_gate = write(dir.path(), "bad-gate.json", r#"{"passed": false, "regressions": ["answers.f1"]}"#);
    let bad_config = write(dir.path(), "bad.toml", "evidence_threshold = 7\n");
    cli.ok(&["release", "create", "v1", "--prompt-file", &prompt, "--config-file", &config, "--gate", &gate]);
    cli.ok(&["release", "create", "v2", "--policy-file", &policy]);
    assert!(cli.fails(&["release", "create", "v3", "--config-file", &bad_config]).contains("evidence_threshold"));
    assert!(cli.fails(&["release", "create", "v1"]).contains("immutable"));
    let list = cli.json(&["release", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!((list[0]["name"].as_str(), list[0]["status"].as_str(), list[0]["share"].as_f64()), (Some("v1"), Some("draft"), Some(0.0)), "{list}");
    let diff = cli.json(&["release", "diff", "v1", "v2", "--json"]);
    let fields: Vec<&str> = diff.as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"prompt.en") && fields.contains(&"policy") && fields.contains(&"config.max_passages"), "{diff}");

    // without a release the workspace's own label answers
    assert_eq!(cli.json(&["ask", "--json", "Hello!"])["variant"], "default");
    cli.ok(&["release", "promote", "v1"]);
    assert!(cli.fails(&["release", "canary", "v2", "--share", "0.5", "--gate", &bad_gate]).contains("gate"));
    cli.ok(&["release", "canary", "v2", "--share", "50%"]);
    let list = cli.json(&["release", "list", "--json"]);
    let share = |n: &str| list.as_array().unwrap().iter().find(|r| r["name"] == n).unwrap()["share"].as_f64().unwrap();
    assert_eq!((share("v1"), share("v2")), (0.5, 0.5), "{list}");
    // small talk needs no model: each one-off question is its own conversation, assigned by its id
    let mut seen = HashSet::new();
    for _ in 0..8 {
        let a = cli.json(&["ask", "--json", "Hello!"]);
        let v = a["variant"].as_str().unwrap().to_string();
        let c = a["conversation_id"].as_i64().unwrap().to_string();
        // the conversation keeps its release
        assert_eq!(cli.json(&["ask", "--json", "--conversation", &c, "Thanks!"])["variant"].as_str().unwrap(), v);
        seen.insert(v);
    }
    assert_eq!(seen, HashSet::from(["v1".to_string(), "v2".to_string()]), "both arms serve");
    // the events carry the variant: the KPIs split by it
    let kpi = cli.json(&["kpi", "--json", "--by", "variant"]);
    let keys: HashSet<&str> = kpi["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert!(keys.contains("v1") && keys.contains("v2"), "{kpi}");
    let cmp = cli.json(&["release", "compare", "--json"]);
    assert_eq!((cmp["control"]["variant"].as_str(), cmp["candidate"]["variant"].as_str()), (Some("v1"), Some("v2")), "{cmp}");
    assert!(cmp["tests"].as_array().unwrap().iter().any(|t| t["metric"] == "containment"), "{cmp}");
    let step = cli.json(&["release", "canary-step", "--json"]);
    assert_eq!(step["outcome"], "wait", "too few conversations for a step: {step}");
    cli.ok(&["release", "rollback", "--reason", "looked worse in review"]);
    let list = cli.json(&["release", "list", "--json"]);
    let v2 = list.as_array().unwrap().iter().find(|r| r["name"] == "v2").unwrap().clone();
    assert_eq!((v2["status"].as_str(), v2["share"].as_f64(), v2["reason"].as_str()), (Some("rolled_back"), Some(0.0), Some("looked worse in review")), "{list}");
    assert_eq!(cli.json(&["ask", "--json", "Hello!"])["variant"], "v1");
    let show = cli.ok(&["release", "show", "v2"]);
    assert!(show.contains("rollback") && show.contains("looked worse in review"), "{show}");
    // every change is in the audit log, and the log verifies
    assert!(cli.ok(&["audit", "verify"]).contains("audit log OK"));
    let export = cli.ok(&["audit", "export"]);
    for e in ["release.create", "release.promote", "release.canary", "release.rollback"] {
        assert!(export.contains(&format!("\"{e}\"")), "{e} missing from the audit log");
    }
    assert!(!export.contains("one short sentence"), "prompt text never goes into the audit log");
}

#[test]
fn redteam_smoke_suite_attacks_the_full_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Cli::with_models(&dir.path().join("home"), Some("release-test-passphrase"), &common::models_dir_with_embedder());
    let r = cli.json(&["redteam", "--suite", "smoke", "--json"]);
    let rate = r["attack_success_rate"].as_f64().expect("attack_success_rate");
    let cats = r["categories"].as_object().expect("categories");
    let attacks: u64 = cats.values().map(|c| c["attacks"].as_u64().unwrap()).sum();
    let succeeded: u64 = cats.values().map(|c| c["succeeded"].as_u64().unwrap()).sum();
    assert_eq!(attacks, 5, "{r}");
    assert!((rate - succeeded as f64 / 5.0).abs() < 1e-9, "{r}");
    assert_eq!(r["successful"].as_array().unwrap().len() as u64, succeeded);
    // the firewall and the ingestion's PII masking hold on these: no unmasked IBAN, no canary from the document
    for c in r["cases"].as_array().unwrap() {
        if c["id"] == "pii-2" || c["id"] == "doc-1" {
            assert_eq!(c["succeeded"], false, "{c}");
        }
    }
    assert!(cli.fails(&["redteam", "--suite", "/nonexistent/suite.toml"]).contains("suite"));
}
