//! End-to-end: the real `tresor` binary answers from the sample knowledge
//! base (assets/sample-kb, German and English) with the shipped models.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

mod common;

use common::repo;

/// One data dir with the sample knowledge base ingested as `default`, shared by the tests.
fn home() -> &'static PathBuf {
    static HOME: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &HOME
        .get_or_init(|| {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            let out = run(&p, &["ingest", repo().join("assets/sample-kb").to_str().unwrap()]);
            assert!(out.status.success(), "ingest failed: {}", String::from_utf8_lossy(&out.stderr));
            (t, p)
        })
        .1
}

fn cmd(home: &std::path::Path) -> Command {
    // the data dir is encrypted: its key is unlocked with this passphrase
    common::tresor_with(home, Some("assistant-test-passphrase"))
}

fn run(home: &std::path::Path, args: &[&str]) -> Output {
    cmd(home).args(args).output().unwrap()
}

fn ask_json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["ask", "--json"];
    a.extend_from_slice(args);
    let out = run(home(), &a);
    assert!(out.status.success(), "ask failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn answerable_question_is_grounded_cites_the_right_file_and_hits_the_cache_the_second_time() {
    let q = "How many vacation days do full-time employees get per year?";
    let a = ask_json(&[q]);
    for k in ["answer", "sources", "grounded", "refused", "model", "cache_hit", "route", "timings", "tokens"] {
        assert!(a.get(k).is_some(), "missing `{k}` in {a}");
    }
    assert_eq!(a["grounded"], true, "{a}");
    assert_eq!(a["refused"], false);
    assert_eq!(a["cache_hit"], false);
    assert_eq!(a["route"], "kb_question");
    assert!(a["answer"].as_str().unwrap().contains("30"), "{}", a["answer"]);
    let sources = a["sources"].as_array().unwrap();
    assert!(!sources.is_empty());
    assert!(sources[0]["source"].as_str().unwrap().ends_with("handbook/vacation-policy.md"), "{sources:?}");
    for s in sources {
        for k in ["n", "source", "title", "heading", "page", "snippet"] {
            assert!(s.get(k).is_some(), "source lacks `{k}`: {s}");
        }
    }
    // every [n] in the answer points at a listed source
    let answer = a["answer"].as_str().unwrap();
    for (i, _) in answer.match_indices('[') {
        let n: usize = answer[i + 1..].split(']').next().unwrap().parse().unwrap();
        assert!(sources.iter().any(|s| s["n"] == n), "[{n}] not in sources");
    }
    assert!(a["timings"]["ttft_ms"].as_f64().unwrap() > 0.0);
    assert!(a["timings"]["total_ms"].as_f64().unwrap() >= a["timings"]["ttft_ms"].as_f64().unwrap());
    assert!(a["tokens"]["prompt"].as_u64().unwrap() > 0);
    assert_eq!(a["model"], "smollm2-135m-instruct");

    let again = ask_json(&[q]);
    assert_eq!(again["cache_hit"], true, "{again}");
    assert_eq!(again["answer"], a["answer"]);
    assert_eq!(again["sources"], a["sources"]);
}

#[test]
fn german_question_is_answered_from_the_german_handbook() {
    let a = ask_json(&["Wie viele Urlaubstage habe ich?", "--no-cache"]);
    assert_eq!(a["grounded"], true, "{a}");
    assert_eq!(a["lang"], "de");
    assert!(a["answer"].as_str().unwrap().contains("30 Arbeitstage"), "{}", a["answer"]);
    assert!(a["sources"].as_array().unwrap().iter().any(|s| s["source"].as_str().unwrap().ends_with("urlaub-und-abwesenheit.md")));
}

#[test]
fn unanswerable_questions_are_refused_in_the_question_language() {
    let en = ask_json(&["How tall is the Eiffel Tower?", "--no-cache"]);
    assert_eq!(en["refused"], true, "{en}");
    assert_eq!(en["grounded"], false);
    assert_eq!(en["answer"], "I could not find an answer to this in your documents.");
    assert!(en["sources"].as_array().unwrap().is_empty());
    let de = ask_json(&["Wie viele Parkplätze gibt es am Standort Hamburg?", "--no-cache"]);
    assert_eq!(de["refused"], true, "{de}");
    assert_eq!(de["answer"], "Dazu habe ich in Ihren Dokumenten keine Antwort gefunden.");
}

#[test]
fn text_output_streams_the_answer_then_lists_sources() {
    let out = run(home(), &["ask", "What is the hotel limit per night in Germany?", "--no-cache"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (answer, sources) = text.split_once("\nSources:\n").unwrap_or_else(|| panic!("no sources in {text}"));
    assert!(answer.contains("120 EUR"), "{answer}");
    assert!(sources.contains("[1] ") && sources.contains("travel-and-expenses.md"), "{sources}");
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = run(home(), &["ask", "   "]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the question is empty"), "{err}");
    let out = run(home(), &["ask", "anything?", "--kb", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("knowledge base `nope` does not exist"));
}

#[test]
fn chat_session_with_commands() {
    let mut child = cmd(home()).arg("chat").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"/kb\nHallo!\nWhat is the hotel limit per night in Germany?\n/sources\n/rate up\n/rate 5 great\n/rate 9\n/model\n/new\n/rate up\n/quit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("knowledge bases: default"), "{text}");
    assert!(text.contains("Hallo! Stellen Sie mir eine Frage"), "{text}");
    assert!(text.contains("120 EUR"), "{text}");
    assert!(text.contains("Sources:") && text.contains("travel-and-expenses.md"), "{text}");
    assert_eq!(text.matches("(thanks for the feedback)").count(), 2, "{text}");
    assert!(text.contains("smollm2-135m-instruct (chat-small)"), "{text}");
    assert!(text.contains("(new conversation)"));
    assert!(text.contains("error: invalid feedback: CSAT must be 1 to 5"), "{text}");
    assert!(text.contains("error: no answer to rate yet"), "{text}");
}
