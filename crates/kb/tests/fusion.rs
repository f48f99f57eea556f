//! Hybrid fusion and the sentence max-sim reranker through the library, on
//! real files, with an embedder of the test's own whose geometry the test
//! controls: each word of a small vocabulary adds to one axis ("monday"
//! and "deadline" share one, as synonyms would in a real model).

use std::path::Path;

use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::rerank::{passage_sentences, SentenceMaxSim};
use tresor_kb::retrieve::Fusion;
use tresor_kb::{ingest, search, IngestOptions, Kb, Mode, NoProgress, RerankChoice, SearchOptions, TextEmbedder, TextReranker};

struct AxisEmbedder;

const AXES: &[(&str, usize)] = &[("report", 0), ("deadline", 1), ("monday", 1), ("friday", 2), ("lunch", 3), ("menu", 3), ("parking", 4)];

impl TextEmbedder for AxisEmbedder {
    fn embed(&self, texts: &[&str]) -> tresor_kb::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.05f32; 6];
                for w in t.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
                    if let Some((_, a)) = AXES.iter().find(|(x, _)| *x == w) {
                        v[*a] += 1.0;
                    }
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
    fn dim(&self) -> usize {
        6
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
    fn max_tokens(&self) -> usize {
        256
    }
    fn model_id(&self) -> String {
        "axis-test-embedder".into()
    }
}

fn kb_with(dir: &Path, files: &[(&str, &str)]) -> Kb {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for (name, text) in files {
        std::fs::write(docs.join(name), text).unwrap();
    }
    let mut kb = Kb::open(&dir.join("kb"), &WorkspaceKey::from_bytes([7; 32])).unwrap();
    let rep = ingest(&mut kb, &AxisEmbedder, &[docs], &IngestOptions::default(), &NoProgress).unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    kb
}

/// `weekly` near-identical weekly reports about lunch, and one more file.
fn weekly_reports_and(dir: &Path, weekly: usize, last: (&str, &str)) -> Kb {
    let mut files: Vec<(String, String)> = (0..weekly).map(|i| (format!("f{i:02}.txt"), format!("Weekly report number {i} about lunch."))).collect();
    files.push((last.0.into(), last.1.into()));
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    kb_with(dir, &refs)
}

fn first(kb: &mut Kb, q: &str, opts: &SearchOptions) -> String {
    let res = search(kb, q, Some(&AxisEmbedder), None, opts).unwrap();
    let name = Path::new(&res.hits[0].source).file_name().unwrap().to_string_lossy().to_string();
    name
}

#[test]
fn convex_fusion_lets_the_embedding_decide_a_bm25_tie_and_keeps_a_clear_bm25_winner() {
    let tmp = tempfile::tempdir().unwrap();
    // same length, same query-term counts: BM25 cannot tell them apart
    let mut kb = kb_with(
        tmp.path(),
        &[
            ("a-friday.txt", "The report deadline moved to friday this time."),
            ("b-monday.txt", "The report deadline moved to monday this time."),
            ("c-menu.txt", "The lunch menu changes every week."),
        ],
    );
    let hybrid = SearchOptions { k: 3, mode: Mode::Hybrid, rerank: RerankChoice::Off, ..Default::default() };
    assert_eq!(hybrid.fusion, Fusion::Convex, "convex fusion is the default");
    // "monday" sits on the deadline axis, so b is closer to the query
    assert_eq!(first(&mut kb, "report deadline", &hybrid), "b-monday.txt");
    let res = search(&mut kb, "report deadline", Some(&AxisEmbedder), None, &hybrid).unwrap();
    assert_eq!(res.trace.fusion, "convex");
    // scores are the fused ones: w_bm25 + w_vector at most, best first
    assert!(res.hits.windows(2).all(|w| w[0].score >= w[1].score) && res.hits[0].score <= 2.0 + 1e-4);
    // a vector-only candidate (no query term) still comes through the union
    let res = search(&mut kb, "menu", Some(&AxisEmbedder), None, &SearchOptions { k: 3, ..hybrid.clone() }).unwrap();
    assert!(res.hits[0].source.ends_with("c-menu.txt"));

    // with the vector weight at 0 BM25 alone decides (either fusion): the tie stays a tie
    // broken by chunk id, so insertion order (a before b) wins
    for fusion in [Fusion::Convex, Fusion::Rrf] {
        let bm25_only = SearchOptions { fusion, w_vector: 0.0, ..hybrid.clone() };
        assert_eq!(first(&mut kb, "report deadline", &bm25_only), "a-friday.txt", "{fusion:?}");
    }
}

#[test]
fn convex_fusion_keeps_a_wide_bm25_margin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = kb_with(
        tmp.path(),
        &[
            // every query term, twice: a clear BM25 winner, but "parking" pulls its vector away
            ("a-strong.txt", "Parking report: the parking deadline report for parking spaces, deadline parking."),
            // one query term, and its vector sits right on the query's axes
            ("b-weak.txt", "Monday report."),
            ("c-other.txt", "Lunch menu for friday."),
        ],
    );
    let opts = SearchOptions { k: 3, mode: Mode::Hybrid, rerank: RerankChoice::Off, ..Default::default() };
    let res = search(&mut kb, "deadline report parking", Some(&AxisEmbedder), None, &opts).unwrap();
    let names: Vec<&str> = res.hits.iter().map(|h| Path::new(&h.source).file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(names[0], "a-strong.txt", "{names:?}");
}

#[test]
fn sentence_max_sim_prefers_the_passage_with_the_answering_sentence() {
    let e = AxisEmbedder;
    let rr = SentenceMaxSim::new(&e);
    assert_eq!(rr.max_passages(), 10);
    assert!(!rr.with_heading() && rr.weight() > 0.0 && rr.weight() < 1.0);
    assert!(rr.model_id().starts_with("sentence-maxsim:axis-test-embedder"));
    let passages = [
        // mentions the topic throughout, diluted by other words
        "Lunch report. The menu report for friday. Parking menu report lunch.",
        // one sentence answers exactly
        "Lunch is at noon. The report deadline is monday. Parking is free.",
        "",
    ];
    let s = rr.score("When is the report deadline?", &passages).unwrap();
    assert_eq!(s.len(), 3);
    assert!(s[1] > s[0], "{s:?}");
    assert!(s[2] < s[0], "an empty passage ranks last: {s:?}");
    assert_eq!(passage_sentences("Nr. 5 gilt z. B. hier. Second line.\nThird"), vec!["Nr. 5 gilt z. B. hier.", "Second line.", "Third"]);
}

#[test]
fn sentence_max_sim_reranks_hybrid_results_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = kb_with(
        tmp.path(),
        &[
            ("a.txt", "Report report report. Friday lunch menu, friday parking, friday report."),
            ("b.txt", "Parking rules. The report deadline is monday. Lunch."),
        ],
    );
    let e = AxisEmbedder;
    let rr = SentenceMaxSim::new(&e);
    let opts = SearchOptions { k: 2, mode: Mode::Hybrid, rerank: RerankChoice::On, ..Default::default() };
    let res = search(&mut kb, "report deadline", Some(&e), Some(&rr as &dyn TextReranker), &opts).unwrap();
    assert!(res.trace.reranked);
    assert_eq!(res.trace.reranker.as_deref(), Some("sentence-maxsim:axis-test-embedder"));
    assert!(res.hits[0].source.ends_with("b.txt"), "{:?}", res.hits);
    assert!(res.hits.iter().all(|h| h.rerank_score.is_some()));
    // blended scores stay in [0, 1]
    assert!(res.hits.iter().all(|h| (0.0..=1.0 + 1e-5).contains(&h.score)), "{:?}", res.hits);
}

#[test]
fn an_english_only_embedder_does_not_rerank_german_queries() {
    let e = AxisEmbedder;
    let rr = SentenceMaxSim::new(&e);
    assert!(rr.covers("When is the report deadline?"));
    assert!(!rr.covers("Wann ist die Frist für den Bericht?"));
    assert!(tresor_kb::rerank::english_only("all-minilm-l6-v2@688305f1"));
    assert!(!tresor_kb::rerank::english_only("paraphrase-multilingual-MiniLM-L12-v2"));
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = kb_with(tmp.path(), &[("a.txt", "Der Bericht ist am Montag fällig. Report deadline.")]);
    let opts = SearchOptions { k: 1, rerank: RerankChoice::On, ..Default::default() };
    let res = search(&mut kb, "Wann ist der Bericht fällig?", Some(&e), Some(&rr as &dyn TextReranker), &opts).unwrap();
    assert!(!res.trace.reranked && res.trace.rerank_note.as_deref().unwrap().contains("does not cover"), "{:?}", res.trace);
}

#[test]
fn bm25_leaves_out_frequent_terms_only_past_the_postings_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = weekly_reports_and(tmp.path(), 12, ("zz-parking.txt", "The parking report is due."));
    let bm25 = SearchOptions { k: 3, mode: Mode::Bm25, rerank: RerankChoice::Off, mmr_lambda: 1.0, ..Default::default() };
    // within the budget: nothing is left out
    let res = search(&mut kb, "parking report", Some(&AxisEmbedder), None, &bm25).unwrap();
    assert!(res.trace.bm25_pruned_terms.is_empty(), "{:?}", res.trace);
    assert!(res.hits[0].source.ends_with("zz-parking.txt"));
    // "report" occurs in 13 chunks, "parking" in 1: with a budget of 5 only "parking" is matched
    let small = SearchOptions { bm25_max_postings: 5, ..bm25.clone() };
    let res = search(&mut kb, "parking report", Some(&AxisEmbedder), None, &small).unwrap();
    assert_eq!(res.trace.bm25_pruned_terms, vec!["report".to_string()], "{:?}", res.trace);
    assert_eq!(res.hits.len(), 1);
    assert!(res.hits[0].source.ends_with("zz-parking.txt"));
    // the rarest term is always kept, even past the budget
    let res = search(&mut kb, "report lunch", Some(&AxisEmbedder), None, &small).unwrap();
    assert_eq!(res.trace.bm25_pruned_terms, vec!["report".to_string()], "{:?}", res.trace);
    // (the twelve weekly reports embed alike, so near-duplicate removal keeps one)
    assert!(!res.hits.is_empty() && res.hits.iter().all(|h| h.text.contains("lunch")), "{:?}", res.hits);
}

#[test]
fn term_idf_ranks_rare_terms_above_frequent_ones_and_folds_diacritics() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = weekly_reports_and(tmp.path(), 9, ("zz.txt", "The parking report is due at the café."));
    let n = kb.chunk_count().unwrap();
    assert_eq!(n, 10);
    let stem = |w: &str| tresor_kb::analyze::stem(w, tresor_kb::lang::Lang::En);
    assert_eq!(kb.term_docs(&stem("report")), 10);
    assert_eq!(kb.term_docs(&stem("lunch")), 9);
    assert_eq!(kb.term_docs(&stem("parking")), 1);
    // FTS5 stores "café" folded; the lookup folds the same way
    assert_eq!(kb.term_docs("café"), 1);
    let (report, lunch, parking, absent) =
        (kb.term_idf(&stem("report"), n), kb.term_idf(&stem("lunch"), n), kb.term_idf(&stem("parking"), n), kb.term_idf("stockoption", n));
    assert!(report < lunch && lunch < parking && parking < absent, "{report} {lunch} {parking} {absent}");
    assert!(report > 0.0 && report < 0.1, "{report}");
}
