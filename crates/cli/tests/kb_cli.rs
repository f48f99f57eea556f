//! End to end: the real `tresor` binary, the real MiniLM embedder, real
//! files. Ingest, search (every mode, filters, German and English), the kb
//! subcommands, bad files, the retrieval eval, a bench smoke run, and a crash
//! test that kills `tresor ingest` at random moments.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};


mod common;

use common::{models_dir_with_embedder, repo, Cli};

const PASSPHRASE: &str = "kb-test-passphrase";

fn cli(home: &Path) -> Cli {
    models_dir_with_embedder();
    Cli::new(home, Some(PASSPHRASE))
}

fn sample() -> String {
    repo().join("assets/sample-kb").display().to_string()
}

#[test]
fn ingest_search_and_kb_commands() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let out = cli(h).ok(&["ingest", &sample()]);
    assert!(out.contains("9 added"), "{out}");
    let stats = cli(h).json(&["kb", "stats", "--json"]);
    assert_eq!(stats["documents"], 9);
    let chunks = stats["chunks"].as_u64().unwrap();
    assert!(chunks >= 20, "{stats}");

    // the --json contract
    let hits = cli(h).json(&["search", "Wie viele Urlaubstage habe ich im Jahr?", "--json"]);
    let first = &hits.as_array().unwrap()[0];
    for key in ["rank", "score", "source", "title", "heading", "page", "chunk_id", "text"] {
        assert!(first.get(key).is_some(), "missing {key}: {first}");
    }
    assert_eq!(first["rank"], 1);
    assert!(first["source"].as_str().unwrap().ends_with("urlaub-und-abwesenheit.md"), "{first}");
    assert!(first["text"].as_str().unwrap().contains("30 Arbeitstage"), "{first}");

    // German compound → its parts; every mode; English
    let hits = cli(h).json(&["search", "Urlaubsanspruch bei Teilzeit", "--mode", "bm25", "--json"]);
    assert!(hits[0]["text"].as_str().unwrap().contains("Teilzeit"), "{hits}");
    for mode in ["bm25", "vector", "hybrid"] {
        let hits = cli(h).json(&["search", "What is the hotel limit per night in London?", "--mode", mode, "--k", "3", "--json"]);
        assert_eq!(hits.as_array().unwrap().len(), 3, "{mode}");
        let any = hits.as_array().unwrap().iter().any(|x| x["text"].as_str().unwrap().contains("160 EUR"));
        assert!(any, "{mode}: {hits}");
    }
    // the PDF keeps page numbers
    let hits = cli(h).json(&["search", "Verpflegungspauschale volle Tage", "--filter", "source=*.pdf", "--json"]);
    assert!(hits.as_array().unwrap().iter().all(|x| x["source"].as_str().unwrap().ends_with(".pdf")));
    assert_eq!(hits[0]["page"], 2, "{hits}");
    // filters
    let hits = cli(h).json(&["search", "password", "--filter", "source=*handbook/*", "--json"]);
    assert!(hits.as_array().unwrap().iter().all(|x| x["source"].as_str().unwrap().contains("/handbook/")));
    let bad = cli(h).run(&["search", "x", "--filter", "colour=red"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("invalid filter"));
    // DOCX and CSV are searchable
    let hits = cli(h).json(&["search", "data protection training minutes", "--json", "--k", "3"]);
    assert!(hits.as_array().unwrap().iter().any(|x| x["source"].as_str().unwrap().ends_with(".docx")), "{hits}");
    let hits = cli(h).json(&["search", "Preis Business Edition", "--json", "--k", "3", "--mode", "bm25"]);
    assert!(hits[0]["text"].as_str().unwrap().contains("4.900"), "{hits}");
    // --rerank without a cross-encoder: sentence max-sim with the embedder, said in --json
    let q = "What is the hotel limit per night in London?";
    let hits = cli(h).json(&["search", q, "--rerank", "--k", "3", "--json"]);
    assert_eq!(hits[0]["reranked"], true, "{hits}");
    assert!(hits[0]["rerank_score"].as_f64().is_some(), "{hits}");
    assert!(hits.as_array().unwrap().iter().any(|x| x["text"].as_str().unwrap().contains("160 EUR")), "{hits}");
    let hits = cli(h).json(&["search", q, "--k", "3", "--json"]);
    assert_eq!(hits[0]["reranked"], false, "no cross-encoder: not reranked by default");
    // ... but not for a German query with the English-only MiniLM: hybrid's order stays
    let de = "Wie viele Urlaubstage habe ich im Jahr?";
    let hits = cli(h).json(&["search", de, "--rerank", "--json"]);
    assert_eq!(hits[0]["reranked"], false, "{hits}");
    assert!(hits[0]["text"].as_str().unwrap().contains("30 Arbeitstage"), "{hits}");
    // both fusions
    for fusion in ["convex", "rrf"] {
        let hits = cli(h).json(&["search", "hotel limit per night in London", "--fusion", fusion, "--k", "3", "--json"]);
        assert!(hits.as_array().unwrap().iter().any(|x| x["text"].as_str().unwrap().contains("160 EUR")), "{fusion}: {hits}");
    }
    // human output
    let text = cli(h).ok(&["search", "Homeoffice Pauschale"]);
    assert!(text.starts_with("1. ") && text.contains("300 EUR"), "{text}");

    // list / check / remove / incremental re-ingest / rebuild-index
    let list = cli(h).json(&["kb", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 9);
    cli(h).ok(&["kb", "check"]);
    let again = cli(h).ok(&["ingest", &sample()]);
    assert!(again.contains("9 unchanged") && again.contains(" 0 chunks"), "{again}");
    let csv = format!("{}/preisliste.csv", sample());
    assert!(cli(h).ok(&["kb", "remove", &csv]).contains("removed"));
    assert_eq!(cli(h).json(&["kb", "stats", "--json"])["documents"], 8);
    let missing = cli(h).run(&["kb", "remove", &csv]);
    assert!(!missing.status.success());
    cli(h).ok(&["kb", "rebuild-index"]);
    cli(h).ok(&["kb", "check"]);
    let back = cli(h).ok(&["ingest", &sample()]);
    assert!(back.contains("1 added"), "{back}");
    assert_eq!(cli(h).json(&["kb", "stats", "--json"])["chunks"].as_u64().unwrap(), chunks);
    // a knowledge base that does not exist
    let none = cli(h).run(&["kb", "stats", "--kb", "nope"]);
    assert!(!none.status.success() && String::from_utf8_lossy(&none.stderr).contains("does not exist"));
}

/// The static tier end to end: distilled from the real MiniLM into a models
/// dir of the test's own, a knowledge base ingested with it, searched
/// without naming it (the knowledge base's own embedder is found), and
/// refused when another embedder is named.
#[test]
fn static_embedder_distils_ingests_and_searches() {
    let home = tempfile::tempdir().unwrap();
    let models = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(models_dir_with_embedder().join("all-minilm-l6-v2"), models.path().join("all-minilm-l6-v2")).unwrap();
    let cli = Cli::with_models(home.path(), Some(PASSPHRASE), models.path());
    let d = cli.json(&["models", "distill", "--json"]);
    assert_eq!((d["vocab"].as_u64(), d["dim"].as_u64()), (Some(30522), Some(384)), "{d}");
    let dir = models.path().join("all-minilm-l6-v2-static");
    assert_eq!(d["path"].as_str(), dir.to_str());
    for f in ["config.json", "tokenizer.json", "embeddings.safetensors"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let e = cli.fails(&["models", "distill"]);
    assert!(e.contains("already holds a static embedder") && e.contains("--force"), "{e}");
    let again = cli.json(&["models", "distill", "--force", "--json"]);
    assert_eq!(again["vocab"], d["vocab"], "{again}");

    let out = cli.ok(&["ingest", &sample(), "--kb", "fast", "--embed-model", "all-minilm-l6-v2-static"]);
    assert!(out.contains("9 added"), "{out}");
    let stats = cli.json(&["kb", "stats", "--kb", "fast", "--json"]);
    assert!(stats["embedder"].as_str().unwrap().starts_with("all-minilm-l6-v2-static@"), "{stats}");
    for mode in ["vector", "hybrid"] {
        let hits = cli.json(&["search", "Wie viele Urlaubstage habe ich im Jahr?", "--kb", "fast", "--mode", mode, "--json"]);
        let any = hits.as_array().unwrap().iter().take(3).any(|h| h["source"].as_str().unwrap().ends_with("urlaub-und-abwesenheit.md"));
        assert!(any, "{mode}: {hits}");
    }
    let e = cli.fails(&["search", "Urlaub", "--kb", "fast", "--mode", "vector", "--embed-model", "all-minilm-l6-v2"]);
    assert!(e.contains("was built with embedder `all-minilm-l6-v2-static@"), "{e}");
}

#[test]
fn bad_files_are_reported_and_skipped_and_prune_works() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let docs = home.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("good.md"), "# Firewall\n\nThe firewall blocks inbound traffic by default.\n").unwrap();
    std::fs::write(docs.join("gone.md"), "# Gone\n\nThis file will be deleted.\n").unwrap();
    std::fs::write(docs.join("empty.md"), "").unwrap();
    std::fs::write(docs.join("locked.pdf"), b"%PDF-1.4\ntrailer\n<< /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n").unwrap();
    std::fs::write(docs.join("binary.txt"), b"\xff\xfe\x00bad").unwrap();
    std::fs::write(docs.join(".gitignore"), "ignored.md\n").unwrap();
    std::fs::write(docs.join("ignored.md"), "# Ignored\n\nNever ingested.\n").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/hostname", docs.join("outside.txt")).unwrap();
    let d = docs.display().to_string();
    let out = cli(h).run(&["ingest", &d]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("2 added") && stdout.contains("3 failed"), "{stdout}");
    assert!(stderr.contains("empty.md: empty file"), "{stderr}");
    assert!(stderr.contains("locked.pdf: encrypted PDF"), "{stderr}");
    assert!(stderr.contains("binary.txt: not valid UTF-8"), "{stderr}");
    #[cfg(unix)]
    assert!(stderr.contains("outside.txt: symlink points outside"), "{stderr}");
    let list = cli(h).json(&["kb", "list", "--json"]);
    let sources: Vec<&str> = list.as_array().unwrap().iter().map(|d| d["source"].as_str().unwrap()).collect();
    assert!(sources.iter().all(|s| !s.ends_with("ignored.md")), "{sources:?}");
    std::fs::remove_file(docs.join("gone.md")).unwrap();
    let out = cli(h).ok(&["ingest", &d, "--prune"]);
    assert!(out.contains("pruned:") && out.contains("gone.md"), "{out}");
    assert_eq!(cli(h).json(&["kb", "stats", "--json"])["documents"], 1);
    // nothing ingestible at all is an error
    let only_bad = home.path().join("only-bad");
    std::fs::create_dir_all(&only_bad).unwrap();
    std::fs::write(only_bad.join("empty.md"), "").unwrap();
    let out = cli(h).run(&["ingest", only_bad.to_str().unwrap(), "--kb", "other"]);
    assert!(!out.status.success());
}

/// (source, ord, text) of every chunk of a knowledge base.
fn chunk_set(dir: &Path) -> BTreeSet<(String, usize, String)> {
    // dir is <data dir>/kb/<name>
    let data_dir = dir.parent().and_then(Path::parent).unwrap();
    let key = tresor_guard::crypto::WorkspaceKey::open(data_dir, &tresor_guard::crypto::KeySource::passphrase(PASSPHRASE)).unwrap();
    let kb = tresor_kb::Kb::open_existing(dir, &key).unwrap();
    let mut out = BTreeSet::new();
    for src in kb.sources().unwrap() {
        for (i, c) in kb.chunks_of(&src).unwrap().into_iter().enumerate() {
            out.insert((src.clone(), i, c.text));
        }
    }
    out
}

#[test]
fn killed_ingest_leaves_a_consistent_kb_and_reingest_equals_a_clean_one() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // a corpus that takes a few seconds to ingest: the sample KB plus generated files
    let corpus = home.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    for e in std::fs::read_dir(repo().join("assets/sample-kb")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, corpus.join(p.file_name().unwrap())).unwrap();
        }
    }
    for i in 0..12 {
        let mut s = format!("# Report {i}\n\n");
        for j in 0..6 {
            s.push_str(&format!("## Section {j}\n\n"));
            s.push_str(&format!("Quarter {i} section {j}: the team shipped {} features and fixed {} bugs. ", i * j + 3, j + 7).repeat(6));
            s.push_str("\n\n");
        }
        std::fs::write(corpus.join(format!("report-{i:02}.md")), s).unwrap();
    }
    let c = corpus.display().to_string();
    let kb_dir = h.join("kb/crash");
    // The clean ingest first: its duration scales the kill moments, so the kills
    // land inside an ingest however fast this machine (or the embedder) is today.
    let t = Instant::now();
    cli(h).ok(&["ingest", &c, "--kb", "clean"]);
    let clean_ingest = t.elapsed();
    // pseudo-random kill moments, different each run, printed to reproduce
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("clean ingest took {clean_ingest:?}; seed {seed}");
    let mut rng = tresor_llm::synthetic::XorShift::new(seed);
    let mut next = || rng.next_u64();
    let mut kills = 0;
    let mut rounds = 0;
    // five kills, each between 5 % and 70 % of a clean ingest's time after the start
    // (a resumed ingest has less to do, so one may finish first: then it starts over)
    while kills < 5 {
        rounds += 1;
        assert!(rounds <= 15, "the ingest finished before the kill in {rounds} rounds (clean ingest {clean_ingest:?})");
        let fraction = 0.05 + (next() % 650) as f64 / 1000.0;
        let delay = clean_ingest.mul_f64(fraction);
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
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        eprintln!("round {rounds}: kill at {delay:?} ({:.0} % of a clean ingest; finished first: {finished})", fraction * 100.0);
        if tresor_kb::Kb::exists(&kb_dir) {
            let out = cli(h).run(&["kb", "check", "--kb", "crash"]);
            assert!(
                out.status.success(),
                "kb check after kill at {delay:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if finished {
            // start over so the next kill lands in an ingest again
            std::fs::remove_dir_all(&kb_dir).unwrap();
        }
    }
    cli(h).ok(&["ingest", &c, "--kb", "crash"]);
    cli(h).ok(&["kb", "check", "--kb", "crash"]);
    let crashed = chunk_set(&kb_dir);
    let clean = chunk_set(&h.join("kb/clean"));
    assert_eq!(crashed.len(), clean.len());
    assert!(crashed == clean, "re-ingest after kills differs from a clean ingest");
}

#[test]
fn eval_retrieval_on_the_dev_goldset() {
    let gold = repo().join("../shared/eval/rag_goldset_dev");
    assert!(gold.join("goldset.jsonl").exists(), "the dev gold set is missing: {} (../shared beside the repo)", gold.display());
    let home = tempfile::tempdir().unwrap();
    let r = cli(home.path()).json(&[
            "eval",
            "retrieval",
            "--goldset",
            gold.join("goldset.jsonl").to_str().unwrap(),
            "--docs",
            gold.join("docs").to_str().unwrap(),
            "--record",
            "--record-kb",
            "handbook",
            "--json",
        ],
    );
    let mode = |m: &str| r["modes"].as_array().unwrap().iter().find(|x| x["mode"] == m).unwrap().clone();
    for m in ["bm25", "vector", "hybrid"] {
        for k in ["recall_at_1", "recall_at_5", "recall_at_10", "mrr", "ndcg_at_10"] {
            let v = mode(m)[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{m} {k} {v}");
        }
    }
    assert!(mode("hybrid")["recall_at_5"].as_f64().unwrap() >= 0.9, "{r}");
    assert_eq!(r["questions"], 45);
    // hybrid (convex fusion) beats both single modes on the ranking measures,
    // and is at least as good on every recall
    let get = |m: &str, k: &str| mode(m)[k].as_f64().unwrap();
    for single in ["bm25", "vector"] {
        for k in ["recall_at_1", "mrr", "ndcg_at_10"] {
            assert!(get("hybrid", k) > get(single, k), "hybrid vs {single} on {k}: {r}");
        }
        for k in ["recall_at_5", "recall_at_10"] {
            assert!(get("hybrid", k) >= get(single, k), "hybrid vs {single} on {k}: {r}");
        }
    }
    // the other fusion and the reranked row are reported; without a cross-encoder
    // the reranker is sentence max-sim with the embedder, and it must not hurt
    assert!(get("hybrid-rrf", "recall_at_5") > 0.0);
    assert!(r["reranker"].as_str().unwrap().starts_with("sentence-maxsim:"), "{r}");
    assert!(r["rerank_note"].as_str().unwrap().contains("no cross-encoder installed"), "{r}");
    assert!(get("hybrid+rerank", "mrr") >= get("hybrid", "mrr"), "{r}");
    // --record: the run is an eval_run event, and tresor kpi carries its recall and the rerank lift
    let k = cli(home.path()).json(&["kpi", "--json"]);
    let rq = &k["retrieval"];
    assert_eq!((rq["runs"].as_u64(), rq["kb"].as_str(), rq["dataset"].as_str(), rq["cases"].as_u64()), (Some(1), Some("handbook"), Some("goldset.jsonl"), Some(45)), "{k:#}");
    assert_eq!(rq["recall_at_1"].as_f64(), Some(get("hybrid+rerank", "recall_at_1")), "{k:#}");
    let lift = get("hybrid+rerank", "recall_at_1") - get("hybrid", "recall_at_1");
    assert!((rq["rerank_lift"].as_f64().unwrap() - lift).abs() < 1e-12, "{k:#}");
    assert_eq!(k["conversations"], 0, "an eval run is no conversation");
}

#[test]
fn bench_kb_smoke() {
    let home = tempfile::tempdir().unwrap();
    let r = cli(home.path()).json(&["bench", "kb", "--skip-ingest", "--scales", "2000", "--queries", "20", "--json"]);
    let s = &r["scales"][0];
    assert_eq!(s["chunks"], 2000);
    assert_eq!(s["synthetic"], true);
    let modes: Vec<&str> = s["latency"].as_array().unwrap().iter().map(|l| l["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["bm25", "vector", "hybrid"]);
    let recall = s["index_recall_at_10"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&recall));
}
