//! Issue 19 §1: a folder of hostile documents (small scale: each big enough
//! to show its bug) beside a normal one. Every hostile file ends with a
//! correct result or a per-file error naming its limit and variable; the
//! normal file is ingested (deep.html is refused by the nesting limit: its
//! walker is tested without the limit in `parse/html.rs`); the knowledge base checks clean; a search with a
//! 200+-letter German query ends. Before the fixes this binary died of a
//! stack overflow in the HTML walker (deep.html), and the JSON member and
//! the long-compound query ran for minutes.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::hostile::{write_all, Scale};
use tresor_kb::{ingest, search, HashEmbedder, IngestOptions, IngestProgress, Kb, SearchOptions};

/// The time of each file of the ingest (from its start to the next's).
#[derive(Default)]
struct Clock(RefCell<Vec<(String, Instant)>>);

impl IngestProgress for Clock {
    fn file(&self, source: &str) {
        self.0.borrow_mut().push((source.rsplit('/').next().unwrap_or(source).to_string(), Instant::now()));
    }
}

impl Clock {
    fn per_file(&self, end: Instant) -> Vec<(String, Duration)> {
        let v = self.0.borrow();
        v.iter().enumerate().map(|(i, (n, t))| (n.clone(), v.get(i + 1).map(|x| x.1).unwrap_or(end) - *t)).collect()
    }
}

#[test]
fn hostile_folder_ends_quickly_with_named_limits_and_the_rest_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let docs = tmp.path().join("docs");
    let files = write_all(&docs, Scale::Small).unwrap();
    std::fs::write(docs.join("gut.md"), "# Urlaub\n\nJeder Mitarbeiter hat 30 Tage Urlaub im Jahr.\n").unwrap();
    let mut kb = Kb::open(&tmp.path().join("kb"), &WorkspaceKey::from_bytes([7; 32])).unwrap();
    let t0 = Instant::now();
    let clock = Clock::default();
    let rep = ingest(&mut kb, &HashEmbedder::new(64), &[docs.clone()], &IngestOptions::default(), &clock).unwrap();
    let took = t0.elapsed();
    let times = clock.per_file(Instant::now());
    eprintln!("{times:?}");
    for (name, t) in &times {
        assert!(*t < Duration::from_secs(20), "{name} took {t:?}");
    }
    let failed = |name: &str| rep.failed.iter().find(|f| f.source.ends_with(name)).map(|f| f.reason.clone());
    // refused, each naming its limit and how to change it
    for (name, var) in [
        ("bomb.pdf", "TRESOR_MAX_PDF_INFLATED"),
        ("field.csv", "TRESOR_MAX_BLOCK"),
        ("nonewline.csv", "TRESOR_MAX_BLOCK"),
        ("deep.html", "TRESOR_MAX_HTML_DEPTH"),
    ] {
        let why = failed(name).unwrap_or_else(|| panic!("{name} should be refused; failures: {:?}", rep.failed));
        assert!(why.contains(var), "{name}: {why}");
    }
    // read correctly
    let sources = kb.sources().unwrap();
    for name in ["gut.md", "paragraph.md", "fence.md", "scalars.json", "member.json", "komposita.md", "deep.docx"] {
        assert!(sources.iter().any(|s| s.ends_with(name)), "{name} not ingested: {:?}", failed(name));
    }
    assert_eq!(rep.failed.len() + sources.len(), files.len() + 1, "{:?}", rep.failed);
    let deep = sources.iter().find(|s| s.ends_with("deep.docx")).unwrap();
    assert!(kb.chunks_of(deep).unwrap().iter().any(|c| c.text.contains("Tief verschachtelt.")));
    assert!(kb.check().unwrap().ok);
    // the compound splitter also runs on queries
    let q = format!("{}q Urlaub", "reisekostenabrechnungs".repeat(10));
    let t1 = Instant::now();
    let e = HashEmbedder::new(64);
    let hits = search(&mut kb, &q, Some(&e), None, &SearchOptions::default()).unwrap();
    assert!(t1.elapsed() < Duration::from_secs(10), "query took {:?}", t1.elapsed());
    assert!(!hits.hits.is_empty());
    assert!(took < Duration::from_secs(90), "hostile ingest took {took:?}");
}
