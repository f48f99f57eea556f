use super::*;
use serde_json::json;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const CONFIG: &str = r#"
baseline = "base.json"
[defaults]
tolerance = 0.01

[[eval]]
kind = "pii"
cases = "cases.jsonl"
[eval.metrics]
"overlap.micro.recall" = {}
"overlap.micro.fp" = { direction = "lower", tolerance = 2 }
"#;

#[test]
fn config_loads_resolves_paths_and_hashes_its_bytes() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "suite.toml", CONFIG);
    let c = load_config(&p).unwrap();
    assert_eq!(c.config.evals.len(), 1);
    assert_eq!(c.config.evals[0].name(), "pii");
    assert_eq!(c.baseline_path(None), d.path().join("base.json"));
    assert_eq!(c.baseline_path(Some(Path::new("/x/b.json"))), PathBuf::from("/x/b.json"));
    assert_eq!(c.resolve(Path::new("cases.jsonl")), d.path().join("cases.jsonl"));
    assert_eq!(c.hash.len(), 64);
    let p2 = write(d.path(), "other.toml", &CONFIG.replace("0.01", "0.02"));
    assert_ne!(load_config(&p2).unwrap().hash, c.hash);
}

#[test]
fn bad_configs_are_refused_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("", "no [[eval]]"),
        ("[[eval]]\nkind = \"pii\"\n[eval.metrics]\nx = {}\n", "needs `cases`"),
        ("[[eval]]\nkind = \"retrieval\"\ndocs = \"d\"\n[eval.metrics]\nx = {}\n", "needs `goldset`"),
        ("[[eval]]\nkind = \"pii\"\ncases = \"c\"\n", "gates no metric"),
        ("[[eval]]\nkind = \"pii\"\ncases = \"c\"\n[eval.metrics]\nx = {}\n[[eval]]\nkind = \"pii\"\ncases = \"c\"\n[eval.metrics]\nx = {}\n", "unique"),
        ("[[eval]]\nkind = \"vibes\"\n", "unknown variant"),
        ("[[eval]]\nkind = \"pii\"\ncases = \"c\"\ntypo = 1\n[eval.metrics]\nx = {}\n", "unknown field"),
        ("[[eval]]\nkind = \"pii\"\ncases = \"c\"\n[eval.metrics]\nx = { tolerance = -1 }\n", "tolerance"),
        ("[[eval]]\nkind = \"pii\"\ncases = \"c\"\n[eval.metrics]\nx = { direction = \"up\" }\n", "unknown variant"),
        ("[[eval]]\nkind = \"retrieval\"\ngoldset = \"g\"\ndocs = \"d\"\nfusion = \"max\"\n[eval.metrics]\nx = {}\n", "fusion"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = write(d.path(), &format!("c{i}.toml"), text);
        let e = load_config(&p).unwrap_err().to_string();
        assert!(e.contains(want), "config {i}: `{e}` should say {want}");
    }
    assert!(load_config(&d.path().join("missing.toml")).is_err());
}

#[test]
fn reports_flatten_to_dot_paths() {
    let v = json!({
        "questions": 45,
        "reranker": "x",
        "modes": [{"mode": "hybrid", "recall_at_5": 0.9, "missed_at_5": ["a"]}, {"mode": "bm25", "mrr": 0.5}],
        "all": {"selection_accuracy": {"rate": 1.0, "k": 3, "n": 3}, "argument_accuracy": {"rate": null}},
        "items": [{"id": "q1", "f1": 0.3}],
    });
    let f = flatten(&v);
    assert_eq!(f.get("questions"), Some(&45.0));
    assert_eq!(f.get("modes.hybrid.recall_at_5"), Some(&0.9));
    assert_eq!(f.get("modes.bm25.mrr"), Some(&0.5));
    assert_eq!(f.get("all.selection_accuracy.rate"), Some(&1.0));
    assert!(!f.contains_key("all.argument_accuracy.rate"), "null is no metric");
    assert!(f.keys().all(|k| !k.starts_with("items")), "{f:?}");
    assert!(!f.contains_key("reranker"));
}

fn g(name: &str, v: f64, d: Direction, t: f64) -> (String, f64, Direction, f64) {
    (name.into(), v, d, t)
}

fn base(metrics: &[(&str, f64)]) -> Baseline {
    Baseline { schema: 1, config_hash: "h".into(), version: "tresor test".into(), date: "d".into(), metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
}

#[test]
fn compare_respects_direction_and_tolerance() {
    let b = base(&[("a", 0.90), ("b", 0.90), ("c", 0.10), ("d", 0.10), ("e", 0.5)]);
    let rows = compare(
        &[
            g("a", 0.885, Direction::Higher, 0.02), // within tolerance
            g("b", 0.85, Direction::Higher, 0.02),  // fell too far
            g("c", 0.13, Direction::Lower, 0.02),   // rose too far
            g("d", 0.05, Direction::Lower, 0.02),   // better
            g("e", 0.5 + 1e-12, Direction::Higher, 0.0), // float noise
            g("f", 0.7, Direction::Higher, 0.0),    // not in the baseline
        ],
        Some(&b),
    );
    let st: Vec<Status> = rows.iter().map(|r| r.status).collect();
    assert_eq!(st, [Status::Ok, Status::Regressed, Status::Regressed, Status::Improved, Status::Ok, Status::New]);
    assert!((rows[1].delta.unwrap() + 0.05).abs() < 1e-9);
    let msg = rows[1].regression_message();
    assert!(msg.starts_with("b fell from 0.9000 to 0.8500"), "{msg}");
    assert!(rows[2].regression_message().contains("rose"), "{}", rows[2].regression_message());
    let t = table(&rows);
    assert!(t.contains("| b | higher | 0.9000 | 0.8500 | -0.0500 | 0.0200 | REGRESSED |"), "{t}");
    assert!(t.contains("| f | higher | – | 0.7000 | – | 0 | new |"), "{t}");
    // tolerance exactly met is not a regression
    let edge = compare(&[g("a", 0.88, Direction::Higher, 0.02)], Some(&b));
    assert_eq!(edge[0].status, Status::Ok);
}

#[test]
fn a_missing_metric_names_what_the_report_has() {
    let d = tempfile::tempdir().unwrap();
    let c = load_config(&write(d.path(), "s.toml", CONFIG)).unwrap();
    let report: BTreeMap<String, f64> = [("overlap.micro.recall".to_string(), 0.9)].into();
    let e = gated_metrics(&c.config.evals[0], &c.config.defaults, &report).unwrap_err().to_string();
    assert!(e.contains("no metric `overlap.micro.fp`") && e.contains("overlap.micro.recall"), "{e}");
    let report: BTreeMap<String, f64> = [("overlap.micro.recall".to_string(), 0.9), ("overlap.micro.fp".to_string(), 3.0)].into();
    let gm = gated_metrics(&c.config.evals[0], &c.config.defaults, &report).unwrap();
    assert_eq!(gm, vec![g("pii.overlap.micro.fp", 3.0, Direction::Lower, 2.0), g("pii.overlap.micro.recall", 0.9, Direction::Higher, 0.01)]);
}

#[test]
fn suite_run_compares_with_the_written_baseline() {
    let d = tempfile::tempdir().unwrap();
    let c = load_config(&write(d.path(), "s.toml", CONFIG)).unwrap();
    let mut value = 0.9;
    let mut run = |_: &EvalSpec| -> Result<Value> { Ok(json!({"overlap": {"micro": {"recall": value, "fp": 3}}})) };
    let (outs, gated) = run_suite(&c, &mut run, &mut |_| {}).unwrap();
    assert_eq!(outs[0].metrics.len(), 2);
    let bp = c.baseline_path(None);
    assert!(read_baseline(&bp).unwrap_err().to_string().contains("--update-baseline"));
    write_baseline(&bp, &new_baseline(&c, &gated, "tresor test".into())).unwrap();
    let b = read_baseline(&bp).unwrap();
    assert_eq!(b.config_hash, c.hash);
    assert_eq!(b.metrics.get("pii.overlap.micro.recall"), Some(&0.9));
    let r = report(&c, &bp, Some(&b), outs, &gated);
    assert!(r.passed && !r.baseline_config_differs);

    value = 0.8;
    let mut run = |_: &EvalSpec| -> Result<Value> { Ok(json!({"overlap": {"micro": {"recall": value, "fp": 3}}})) };
    let (outs, gated) = run_suite(&c, &mut run, &mut |_| {}).unwrap();
    let r = report(&c, &bp, Some(&b), outs, &gated);
    assert!(!r.passed);
    assert_eq!(r.regressions, ["pii.overlap.micro.recall"]);
}

#[test]
fn a_corrupt_baseline_is_an_error_and_writing_is_atomic() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "b.json", "{not json");
    assert!(read_baseline(&p).unwrap_err().to_string().contains("not a baseline"));
    let p2 = write(d.path(), "b2.json", r#"{"schema": 2, "config_hash": "", "version": "", "date": "", "metrics": {}}"#);
    assert!(read_baseline(&p2).unwrap_err().to_string().contains("schema 2"));
    write_baseline(&p, &base(&[("x", 1.0)])).unwrap();
    assert_eq!(read_baseline(&p).unwrap(), base(&[("x", 1.0)]));
    assert!(!d.path().join("b.json.tmp").exists());
}
