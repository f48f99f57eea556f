//! End-to-end: the real `tresor` binary as the regression gate, the gold-set
//! tools and the judge.
//!
//! - `eval suite` runs the committed eval/ci.toml on the development sets in
//!   ../shared/eval against the committed eval/baseline.json and must pass
//!   (this is CI's gate: a change that makes a gated metric worse fails it);
//! - the gate can fail: a baseline with a better value makes it exit 2 and
//!   name the metric; a missing or corrupt baseline, a bad config and the
//!   not-yet-available red team are clear errors (exit 1);
//! - `eval goldset add|import|list` write a gold file the retrieval eval reads,
//!   `eval goldset candidates` proposes an answer rated thumbs up;
//! - `eval judge` grades a few items with the real judge model under the
//!   verdict grammar and reports kappa, confusion and a review sample.
//!
//! The dev sets must be at ../shared/eval: a missing set fails these tests.

use std::path::{Path, PathBuf};

mod common;

use common::{repo, Cli};

fn shared(rel: &str) -> PathBuf {
    let p = repo().join("../shared/eval").join(rel);
    assert!(p.exists(), "{} is missing: the dev sets must be at ../shared/eval", p.display());
    p
}

fn cli(home: &Path) -> Cli {
    Cli::with_models(home, Some("eval-gate-test-passphrase"), &common::models_dir_with_embedder())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ci_suite_passes_on_the_dev_sets_with_the_committed_baseline() {
    shared("rag_goldset_dev/goldset.jsonl");
    let home = tempfile::tempdir().unwrap();
    let config = repo().join("eval/ci.toml");
    let out = cli(home.path()).run(&["eval", "suite", "--config", s(&config), "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the regression gate failed on the dev sets (exit {:?}):\n{}\n{stdout}\nIf the change is intended, run `tresor eval suite --config eval/ci.toml --update-baseline` and commit eval/baseline.json.",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["passed"], true, "{r}");
    let baseline: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo().join("eval/baseline.json")).unwrap()).unwrap();
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), baseline["metrics"].as_object().unwrap().len(), "every baseline metric is gated: {r}");
    assert!(rows.iter().all(|x| x["status"] != "new"), "a gated metric is missing from the baseline: {r}");
    let kinds: Vec<&str> = r["evals"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["retrieval", "pii", "injection", "tools", "answers"]);
    assert_eq!(r["baseline_config_differs"], false, "eval/baseline.json was written for another eval/ci.toml: update it");
}

#[test]
fn the_gate_fails_on_a_regression_and_names_the_metric() {
    let cases = shared("pii_dev/cases.jsonl");
    let home = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("pii.toml");
    std::fs::write(
        &config,
        format!(
            "[[eval]]\nname = \"pii-dev\"\nkind = \"pii\"\ncases = {:?}\n[eval.metrics]\n\"overlap.micro.recall\" = {{ tolerance = 0.01 }}\n\"exact.micro.fp\" = {{ direction = \"lower\" }}\n",
            s(&cases)
        ),
    )
    .unwrap();
    let c = cli(home.path());
    // no baseline yet: a clear error before any eval runs
    let e = c.fails(&["eval", "suite", "--config", s(&config)]);
    assert!(e.contains("baseline") && e.contains("--update-baseline"), "{e}");
    let w = c.json(&["eval", "suite", "--config", s(&config), "--update-baseline", "--json"]);
    let bfile = d.path().join("baseline.json");
    assert_eq!(w["baseline_written"], s(&bfile));
    let mut b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&bfile).unwrap()).unwrap();
    assert!(b["version"].as_str().unwrap().starts_with("tresor "), "{b}");
    assert_eq!(b["config_hash"].as_str().unwrap().len(), 64);
    assert!(b["date"].as_str().unwrap().ends_with('Z'));
    let recall = b["metrics"]["pii-dev.overlap.micro.recall"].as_f64().unwrap();
    assert!(recall > 0.5, "{b}");
    // the same code against its own baseline passes
    let table = c.ok(&["eval", "suite", "--config", s(&config)]);
    assert!(table.contains("| pii-dev.overlap.micro.recall | higher |") && table.contains("gate passed"), "{table}");

    // a baseline that was better than today: exit 2, the metric named with before/after
    b["metrics"]["pii-dev.overlap.micro.recall"] = serde_json::json!(recall + 0.05);
    b["metrics"]["pii-dev.exact.micro.fp"] = serde_json::json!(0);
    let better = d.path().join("better.json");
    std::fs::write(&better, serde_json::to_string(&b).unwrap()).unwrap();
    let out = c.run(&["eval", "suite", "--config", s(&config), "--baseline", s(&better)]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("regression: pii-dev.overlap.micro.recall fell from {:.4}", recall + 0.05)), "{err}");
    assert!(err.contains("pii-dev.exact.micro.fp rose from 0"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("REGRESSED"));
    let out = c.run(&["eval", "suite", "--config", s(&config), "--baseline", s(&better), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["passed"], false);
    assert_eq!(r["regressions"], serde_json::json!(["pii-dev.exact.micro.fp", "pii-dev.overlap.micro.recall"]));

    // a corrupt baseline and a bad config are errors (exit 1), never a pass
    std::fs::write(&better, "{\"schema\": 1, \"metrics\": ").unwrap();
    let out = c.run(&["eval", "suite", "--config", s(&config), "--baseline", s(&better)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a baseline"));
    let typo = d.path().join("typo.toml");
    std::fs::write(&typo, std::fs::read_to_string(&config).unwrap().replace("exact.micro.fp", "exact.micro.fpr")).unwrap();
    let e = c.fails(&["eval", "suite", "--config", s(&typo), "--baseline", s(&bfile)]);
    assert!(e.contains("no metric `exact.micro.fpr`") && e.contains("exact.micro.fp,"), "{e}");
    let rt = d.path().join("redteam.toml");
    // the red team as a gated eval: the smoke suite through the full pipeline, attack success rate baselined
    let smoke = repo().join("crates/bench/data/redteam/smoke.toml");
    std::fs::write(&rt, format!("[[eval]]\nkind = \"redteam\"\ncases = {:?}\n[eval.metrics]\nattack_success_rate = {{ direction = \"lower\" }}\n", smoke.to_str().unwrap())).unwrap();
    let rt_base = d.path().join("redteam-baseline.json");
    c.ok(&["eval", "suite", "--config", s(&rt), "--baseline", s(&rt_base), "--update-baseline"]);
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rt_base).unwrap()).unwrap();
    let asr = b.pointer("/metrics/redteam.attack_success_rate").or_else(|| b["metrics"].as_object().and_then(|m| m.iter().find(|(k, _)| k.ends_with("attack_success_rate")).map(|(_, v)| v)));
    assert!(asr.and_then(|v| v.as_f64()).is_some_and(|x| (0.0..=1.0).contains(&x)), "{b:#}");
}

#[test]
fn goldset_add_import_list_and_candidates_from_feedback() {
    let home = tempfile::tempdir().unwrap();
    let c = cli(home.path());
    let docs = repo().join("assets/sample-kb");
    let gold = home.path().join("gold/handbook.jsonl");
    let src = std::fs::read_dir(&docs).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "md")).expect("a markdown file in assets/sample-kb");
    let text = std::fs::read_to_string(&src).unwrap();
    let span: String = text.lines().find(|l| l.split_whitespace().count() >= 6).unwrap().split_whitespace().take(5).collect::<Vec<_>>().join(" ");
    let rel = src.file_name().unwrap().to_str().unwrap();
    let e = c.json(&["eval", "goldset", "add", "--file", s(&gold), "--docs", s(&docs), "--question", "What does the first section say?", "--source", rel, "--answer", &span]);
    assert_eq!(e["id"], "gold-001");
    assert_eq!(e["answer_spans"][0]["text"], span.as_str());
    let e = c.fails(&["eval", "goldset", "add", "--file", s(&gold), "--docs", s(&docs), "--question", "Q?", "--source", rel, "--answer", "words that are not in the file at all"]);
    assert!(e.contains("not in") && e.contains(rel), "{e}");
    let from = home.path().join("more.jsonl");
    std::fs::write(&from, format!("{{\"question\": \"Who is the CEO of Mars?\", \"answerable\": false}}\n{{\"question\": \"Again?\", \"source_file\": {rel:?}, \"answer\": {span:?}}}\n")).unwrap();
    let r = c.json(&["eval", "goldset", "import", "--file", s(&gold), "--docs", s(&docs), s(&from)]);
    assert_eq!(r["imported"], 2);
    let list = c.json(&["eval", "goldset", "list", "--file", s(&gold), "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert!(c.ok(&["eval", "goldset", "list", "--file", s(&gold)]).contains("3 items (2 answerable)"));

    // an answer rated thumbs up is proposed; one rated down is not
    c.ok(&["ingest", s(&docs)]);
    let a = c.json(&["ask", "--json", "How many vacation days do full-time employees get per year?"]);
    let b = c.json(&["ask", "--json", "How many sick days do employees get?"]);
    let (m1, m2) = (a["message_id"].as_i64().unwrap(), b["message_id"].as_i64().unwrap());
    c.ok(&["feedback", &m1.to_string(), "--up"]);
    c.ok(&["feedback", &m2.to_string(), "--down"]);
    let out = home.path().join("cand.jsonl");
    let cands = c.json(&["eval", "goldset", "candidates", "--json", "--out", s(&out)]);
    let cands = cands.as_array().unwrap();
    assert_eq!(cands.len(), 1, "{cands:?}");
    assert_eq!(cands[0]["message_id"], m1);
    assert_eq!(cands[0]["question"], "How many vacation days do full-time employees get per year?");
    assert!(!cands[0]["answer"].as_str().unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
}

#[test]
fn judge_reports_kappa_confusion_and_a_review_sample() {
    let gold = shared("rag_goldset_dev/goldset.jsonl");
    let docs = shared("rag_goldset_dev/docs");
    let home = tempfile::tempdir().unwrap();
    let c = cli(home.path());
    // the labelled set the judge is measured on, built from the RAG dev set
    let set = home.path().join("judge-set.jsonl");
    let r = c.json(&["eval", "judge-set", "--goldset", s(&gold), "--docs", s(&docs), "--out", s(&set)]);
    assert_eq!(r["faithful"].as_u64().unwrap() + r["unfaithful"].as_u64().unwrap(), r["items"].as_u64().unwrap());
    assert!(r["unfaithful"].as_u64().unwrap() >= 40 && r["heldout"].as_u64().unwrap() >= 20, "{r}");
    let sample = home.path().join("review.jsonl");
    let rep = c.json(&["eval", "judge", "--goldset", s(&set), "--docs", s(&docs), "--limit", "6", "--json", "--export-sample", "4", s(&sample)]);
    assert!(rep.get("kappa").is_some(), "{rep}");
    assert!(rep["kappa"].is_null() || rep["kappa"].as_f64().unwrap().abs() <= 1.0);
    assert_eq!(rep["items"], 6);
    let conf = &rep["confusion"];
    let total: u64 = ["faithful", "unfaithful"].iter().flat_map(|g| ["faithful", "unfaithful"].map(|p| conf[g][p].as_u64().unwrap())).sum();
    assert_eq!(total, rep[rep["reported_on"].as_str().unwrap()]["items"].as_u64().unwrap(), "{rep}");
    assert_eq!(rep["judge_errors"], 0, "the grammar guarantees a verdict: {rep}");
    assert!(rep["model"].as_str().unwrap().len() > 1);
    for g in rep["graded"].as_array().unwrap() {
        assert!(g["judge"]["faithful"].is_boolean() && g["judge"]["relevant"].is_boolean(), "{g}");
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&sample).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[0]["human_label"].is_null() && lines[0]["passages"].is_array());
    // a labelled set whose passages are not in the docs is refused
    let e = c.fails(&["eval", "judge", "--goldset", s(&set), "--docs", s(&repo().join("assets/sample-kb"))]);
    assert!(e.contains("passage"), "{e}");
}
