//! End-to-end (issue 18): the first questions a new user asks — the README
//! demo on the sample knowledge base (assets/sample-kb) with the shipped
//! models — are answered with the fact asked for, and the sick-leave
//! procedure is answered while a diagnosis request is still refused.

use std::path::PathBuf;
use std::sync::OnceLock;

mod common;

use common::repo;

/// One data dir with the sample knowledge base ingested as `default`, shared by the tests.
fn home() -> &'static PathBuf {
    static HOME: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &HOME
        .get_or_init(|| {
            common::models_dir_with_embedder();
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            let out = common::tresor_with(&p, Some("demo-test-passphrase")).args(["ingest", repo().join("assets/sample-kb").to_str().unwrap()]).output().unwrap();
            assert!(out.status.success(), "ingest failed: {}", String::from_utf8_lossy(&out.stderr));
            (t, p)
        })
        .1
}

fn ask(q: &str) -> serde_json::Value {
    let out = common::tresor_with(home(), Some("demo-test-passphrase")).args(["ask", "--json", "--no-cache", q]).output().unwrap();
    assert!(out.status.success(), "ask failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn answer_of(a: &serde_json::Value) -> String {
    a["answer"].as_str().unwrap().to_string()
}

#[test]
fn the_readme_demo_questions_are_answered_with_the_asked_fact() {
    for (q, fact, file) in [
        ("How much is the hotel allowance per night on business trips?", "120 EUR", "travel-and-expenses.md"),
        ("How many vacation days do full-time employees get?", "30", "vacation-policy.md"),
        ("Wie viele Urlaubstage habe ich bei einer Fünf-Tage-Woche?", "30 Arbeitstage", "urlaub-und-abwesenheit.md"),
    ] {
        let a = ask(q);
        let text = answer_of(&a);
        assert_eq!(a["refused"], false, "{q}: {a}");
        assert!(text.contains(fact), "{q}: the answer lacks {fact}: {text}\n{}", a["trace"]["evidence_sentences"]);
        assert!(!text.to_lowercase().contains("taxi"), "{q}: {text}");
        let sources = a["sources"].as_array().unwrap();
        assert!(sources.iter().any(|s| s["source"].as_str().unwrap().ends_with(file)), "{q}: {sources:?}");
        // honest latency: the visible first token is never before the model's first token
        let t = &a["timings"];
        let (visible, model) = (t["ttft_ms"].as_f64().unwrap(), t["model_first_token_ms"].as_f64().unwrap());
        assert!(visible > 0.0 && visible + 0.5 >= model && visible <= t["total_ms"].as_f64().unwrap(), "{t}");
    }
}

#[test]
fn sick_leave_procedure_is_answered_and_a_diagnosis_request_refused() {
    let a = ask("Wie melde ich mich krank?");
    assert_eq!(a["route"], "kb_question", "{a}");
    assert_eq!(a["refused"], false, "{a}");
    assert!(answer_of(&a).contains("9:30"), "{}", answer_of(&a));
    // a real diagnosis request, without any keyword of the topic: refused by similarity
    let d = ask("My throat hurts and I have a fever, what is wrong with me?");
    assert_eq!(d["refused"], true, "{d}");
    assert_eq!(d["trace"]["policy"]["topic"], "medical_diagnosis", "{}", d["trace"]["policy"]);
}
